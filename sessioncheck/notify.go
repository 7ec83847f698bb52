package sessioncheck

import (
	"sync"
	"sync/atomic"

	"github.com/sessiongate/sessiongate/middleware"
)

// Long-lived connections (WebSockets, SSE streams) outlive the request that
// was checked (docs/sessions.md#long-lived-connections).
// DenyList.Subscribe reports every revocation as it is added, whatever its
// origin: an admin revoke, a webhook, an inactive status seen, and a
// revocation another replica made that a shared store applies (Apply). A
// middleware.Watcher subscribes to it; its periodic re-checks use the
// route's own checker.

var _ middleware.RevocationSource = (*DenyList)(nil)

// Subscribe calls fn with the session id of every revocation added from now
// on (Deny, DenyUntil and Apply alike; a later expiry of a session already
// on the list is reported again), until the returned function is called. fn
// runs on the goroutine that added the revocation (a request, the admin
// API, a webhook, a shared store's subscriber) and MUST NOT block. It
// implements middleware.RevocationSource.
func (d *DenyList) Subscribe(fn func(sid string)) (unsubscribe func()) {
	return d.subs.add(fn)
}

// subscribers is a copy-on-write list: notify, on every revocation, takes
// no lock; Subscribe and its unsubscribe copy the list.
type subscribers struct {
	mu   sync.Mutex // guards writes of list
	list atomic.Pointer[[]*subscriber]
}

type subscriber struct{ fn func(string) }

func (s *subscribers) add(fn func(string)) func() {
	sub := &subscriber{fn: fn}
	s.mu.Lock()
	var next []*subscriber
	if cur := s.list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, sub)
	s.list.Store(&next)
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { s.remove(sub) }) }
}

func (s *subscribers) remove(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.list.Load()
	if cur == nil {
		return
	}
	next := make([]*subscriber, 0, len(*cur))
	for _, x := range *cur {
		if x != sub {
			next = append(next, x)
		}
	}
	s.list.Store(&next)
}

func (s *subscribers) notify(sid string) {
	cur := s.list.Load()
	if cur == nil {
		return
	}
	for _, x := range *cur {
		x.fn(sid)
	}
}
