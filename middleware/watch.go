package middleware

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/logctx"
)

// A request is checked once; a WebSocket or a server-sent event stream it
// opens may stay open for hours. A Watcher re-checks such long-lived work
// after the request was let through (docs/sessions.md): it hands
// out a context that is cancelled when the session is revoked, so that an
// application serving WebSockets itself can close them, as the proxy does
// for the connections it passes through.

// DefaultRecheckInterval is how often a Watcher re-checks by default.
const DefaultRecheckInterval = 5 * time.Second

// RevocationSource reports revocations as they happen. The deny list of
// package sessioncheck implements it: admin revokes, webhooks, inactive
// statuses seen and revocations from other replicas (through Redis) all
// reach it.
type RevocationSource interface {
	// Subscribe calls fn with the key (a session id) of every revocation
	// from now on, until unsubscribe is called. fn MUST NOT block.
	Subscribe(fn func(key string)) (unsubscribe func())
	// Denied reports whether key is revoked now.
	Denied(key string) bool
}

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Revocations wakes the watches of a revoked key at once. Nil: only the
	// periodic re-check applies.
	Revocations RevocationSource
	// Sessions re-checks, every Interval, the sessions passed to Watch
	// (typically the SessionChecker of the Gate's Config). Nil: Watch
	// re-checks against Revocations only.
	Sessions SessionChecker
	// Interval between two re-checks. Zero means DefaultRecheckInterval.
	Interval time.Duration
	// Logger gets re-checks that could not decide (a Backend API outage).
	// Nil means zap.NewNop().
	Logger *zap.Logger
}

// Watcher cancels the contexts of long-lived work whose session ends: at
// once when its RevocationSource reports the session revoked, and
// otherwise at the first periodic re-check (every Interval) that finds it
// no longer active. A re-check that cannot decide (session status
// unavailable) keeps the work going: only an answer that the session is
// over ends it. The watches of one session with one checker are re-checked
// once per interval, however many there are (a user with ten tabs costs one
// status lookup on a strict route, not ten). It is safe for concurrent use.
//
// A Watcher runs a goroutine only while it has something to watch.
//
// Stability: new in this release; the method set may grow (machine
// credentials will be watched the same way).
type Watcher struct {
	src         RevocationSource
	sessions    SessionChecker
	interval    atomic.Int64 // time.Duration
	log         *zap.Logger
	unsubscribe func()
	quit        chan struct{}
	wg          sync.WaitGroup

	mu      sync.Mutex // guards following
	byKey   map[string]map[*watch]struct{}
	n       int
	running bool // loop runs; it stops when there is nothing to watch
	closed  bool
}

// watch is one context being watched.
type watch struct {
	key    string // "" for none (only check applies)
	check  func(context.Context) error
	group  any // the watches of one group share one re-check per sweep
	ctx    context.Context
	cancel context.CancelCauseFunc
	// reqID is the request id of the context passed to Watch (the request
	// that opened the connection), for the re-check's log lines.
	reqID string
}

// sessionGroup groups the watches of one session re-checked by one
// checker: one check answers for all of them.
type sessionGroup struct {
	sid string
	sc  SessionChecker
}

// recheckTimeout bounds one re-check of one watch.
const recheckTimeout = 10 * time.Second

// recheckWorkers bounds the re-checks in flight during one sweep.
const recheckWorkers = 16

// NewWatcher builds a Watcher and subscribes it to cfg.Revocations. Close
// unsubscribes it.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Interval < 0 {
		return nil, errors.New("middleware: WatcherConfig.Interval is negative")
	}
	w := &Watcher{
		src:      cfg.Revocations,
		sessions: cfg.Sessions,
		log:      cfg.Logger,
		quit:     make(chan struct{}),
		byKey:    map[string]map[*watch]struct{}{},
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	w.SetInterval(cfg.Interval)
	if w.src != nil {
		w.unsubscribe = w.src.Subscribe(w.revoked)
	}
	return w, nil
}

// SetInterval changes the re-check interval from the next re-check on.
// Zero or negative means DefaultRecheckInterval.
func (w *Watcher) SetInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultRecheckInterval
	}
	w.interval.Store(int64(d))
}

// Interval is the re-check interval.
func (w *Watcher) Interval() time.Duration { return time.Duration(w.interval.Load()) }

// Watch returns a copy of ctx that is cancelled when the session of c ends,
// with context.Cause an *Error: session-revoked for a revocation, or the
// re-check's own 401 outcome. It is also cancelled when ctx is, or when
// cancel is called, which releases the watch: call it when the work ends.
//
// A handler serving a WebSocket runs its read and write loops on the
// returned context and, when it is done with a cause that is an *Error,
// closes the WebSocket with code 4401 and the Reason as its close reason,
// as the proxy does.
func (w *Watcher) Watch(ctx context.Context, c *Claims) (context.Context, context.CancelFunc) {
	return w.WatchSession(ctx, c, w.sessions)
}

// WatchSession is Watch with an explicit re-check (a route's own
// SessionChecker); nil re-checks against the RevocationSource only.
func (w *Watcher) WatchSession(ctx context.Context, c *Claims, sc SessionChecker) (context.Context, context.CancelFunc) {
	if c == nil {
		return w.WatchKey(ctx, "", nil)
	}
	var check func(context.Context) error
	var group any
	if sc != nil {
		check = func(ctx context.Context) error { return sc.CheckSession(ctx, c) }
		if c.SessionID != "" && reflect.TypeOf(sc).Comparable() {
			group = sessionGroup{sid: c.SessionID, sc: sc}
		}
	}
	return w.watch(ctx, c.SessionID, check, group)
}

// WatchKey is the general form of Watch, for any credential: key is what
// the RevocationSource names when the credential is revoked ("" for none),
// and check, when not nil, re-decides every interval (an error whose
// Outcome is 401 ends the watch; any other error keeps it).
func (w *Watcher) WatchKey(ctx context.Context, key string, check func(context.Context) error) (context.Context, context.CancelFunc) {
	return w.watch(ctx, key, check, nil)
}

// watch starts a watch; a nil group makes it a group of its own.
func (w *Watcher) watch(ctx context.Context, key string, check func(context.Context) error, group any) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancelCause(ctx)
	if key == "" && check == nil {
		return cctx, func() { cancel(context.Canceled) }
	}
	wt := &watch{key: key, check: check, group: group, ctx: cctx, cancel: cancel, reqID: logctx.RequestID(ctx)}
	if wt.group == nil {
		wt.group = wt
	}
	if !w.add(wt) {
		return cctx, func() { cancel(context.Canceled) } // closed: not watched
	}
	// The watch ends with its context, whoever cancels it.
	stop := context.AfterFunc(cctx, func() { w.remove(wt) })
	// Added before this look: a revocation made since the request was
	// checked is either on the list now or reported to revoked.
	if key != "" && w.src != nil && w.src.Denied(key) {
		cancel(revokedCause())
	}
	return cctx, func() {
		if stop() {
			w.remove(wt)
		}
		cancel(context.Canceled)
	}
}

// Len is the number of contexts being watched.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Close unsubscribes the Watcher and stops its re-checks. Contexts already
// handed out are left as they are (not cancelled); nothing is watched after
// Close. It is idempotent.
func (w *Watcher) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	if w.unsubscribe != nil {
		w.unsubscribe()
	}
	close(w.quit)
	w.wg.Wait()
}

func revokedCause() error {
	return &Error{Reason: ReasonSessionRevoked, Message: "the session was revoked"}
}

func (w *Watcher) add(wt *watch) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	set := w.byKey[wt.key]
	if set == nil {
		set = map[*watch]struct{}{}
		w.byKey[wt.key] = set
	}
	set[wt] = struct{}{}
	w.n++
	if !w.running {
		w.running = true
		w.wg.Add(1)
		go w.loop()
	}
	return true
}

func (w *Watcher) remove(wt *watch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.byKey[wt.key]
	if _, ok := set[wt]; !ok {
		return
	}
	delete(set, wt)
	if len(set) == 0 {
		delete(w.byKey, wt.key)
	}
	w.n--
}

// revoked is the RevocationSource's callback: it runs on the revoking
// goroutine, so it only cancels (which never blocks).
func (w *Watcher) revoked(key string) {
	w.mu.Lock()
	set := w.byKey[key]
	if len(set) == 0 {
		w.mu.Unlock()
		return
	}
	hit := make([]*watch, 0, len(set))
	for wt := range set {
		hit = append(hit, wt)
	}
	w.mu.Unlock()
	cause := revokedCause()
	for _, wt := range hit {
		wt.cancel(cause)
	}
}

// loop re-checks every watch each interval, for as long as there is one.
func (w *Watcher) loop() {
	defer w.wg.Done()
	t := time.NewTimer(w.Interval())
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-t.C:
		}
		batch := w.snapshot()
		if batch == nil {
			return
		}
		w.sweep(batch)
		t.Reset(w.Interval())
	}
}

// snapshot copies the watches; with none left it stops the loop (under
// the lock, so that add starts a new one).
func (w *Watcher) snapshot() []*watch {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		w.running = false
		return nil
	}
	out := make([]*watch, 0, w.n)
	for _, set := range w.byKey {
		for wt := range set {
			out = append(out, wt)
		}
	}
	return out
}

// sweep re-checks a batch: the revocation source first (no call), then the
// checks, one per group, at most recheckWorkers at a time. No lock is held
// meanwhile.
func (w *Watcher) sweep(batch []*watch) {
	groups := map[any][]*watch{}
	var checks [][]*watch
	for _, wt := range batch {
		switch {
		case wt.ctx.Err() != nil:
		case wt.key != "" && w.src != nil && w.src.Denied(wt.key):
			wt.cancel(revokedCause())
		case wt.check != nil:
			groups[wt.group] = append(groups[wt.group], wt)
		}
	}
	if len(groups) == 0 {
		return
	}
	for _, g := range groups {
		checks = append(checks, g)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
	defer cancel() // also ends the goroutine below
	go func() {
		select {
		case <-w.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	jobs := make(chan []*watch)
	var wg sync.WaitGroup
	for range min(recheckWorkers, len(checks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range jobs {
				w.recheck(ctx, g)
			}
		}()
	}
	for _, g := range checks {
		jobs <- g
	}
	close(jobs)
	wg.Wait()
}

// recheck runs the check of one group (its first live watch's): a 401
// outcome cancels every watch of the group, anything else (the status
// could not be looked up) keeps them. The check runs on behalf of that
// first watch's request: its request_id goes on the lines written for it
// (here and in the checker).
func (w *Watcher) recheck(ctx context.Context, g []*watch) {
	var first *watch
	for _, wt := range g {
		if wt.ctx.Err() == nil {
			first = wt
			break
		}
	}
	if first == nil || ctx.Err() != nil {
		return
	}
	if first.reqID != "" {
		ctx = logctx.WithRequestID(ctx, first.reqID)
	}
	err := first.check(ctx)
	if err == nil {
		return
	}
	var e *Error
	if errors.As(err, &e) && e.Reason.Status() == http.StatusUnauthorized {
		for _, wt := range g {
			wt.cancel(e)
		}
		return
	}
	if ce := w.log.Check(zap.DebugLevel, "re-check undecided: the connection stays open"); ce != nil {
		ce.Write(zap.String("sid", first.key), zap.Error(err), logctx.Field(ctx))
	}
}
