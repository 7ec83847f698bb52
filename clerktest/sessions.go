package clerktest

import (
	"fmt"
	"sync"
	"time"
)

// Session statuses, as in the Backend API Session schema.
const (
	statusActive    = "active"
	statusPending   = "pending"
	statusRevoked   = "revoked"
	statusEnded     = "ended"
	statusExpired   = "expired"
	statusRemoved   = "removed"
	statusAbandoned = "abandoned"
	statusReplaced  = "replaced"
)

// Session lifetimes of a default Clerk instance.
const (
	sessionMaxLifetime = 7 * 24 * time.Hour  // expire_at
	sessionAbandonAge  = 30 * 24 * time.Hour // abandon_at
)

// session is one session of the in-memory store: the fields of the Backend
// API Session object. Timestamps are Unix milliseconds, as Clerk sends them.
type session struct {
	ID                       string
	UserID                   string
	ClientID                 string
	Status                   string
	Actor                    *Actor
	LastActiveOrganizationID string
	CreatedAt                int64
	UpdatedAt                int64
	LastActiveAt             int64
	ExpireAt                 int64
	AbandonAt                int64
	seq                      uint64 // creation order, set by the store
}

// sessionStore holds the sessions minted tokens belong to. Its methods copy
// sessions in and out, so callers never share one with the store.
type sessionStore struct {
	mu   sync.Mutex // guards following
	byID map[string]*session
	seq  uint64 // last seq given
}

func (s *sessionStore) init() { s.byID = make(map[string]*session) }

// newSession fills in a session created at now: a new client id, the
// default lifetimes, and status active unless given.
func newSession(id, userID, status string, now time.Time) session {
	ms := now.UnixMilli()
	if status == "" {
		status = statusActive
	}
	return session{
		ID:           id,
		UserID:       userID,
		ClientID:     newID("client"),
		Status:       status,
		CreatedAt:    ms,
		UpdatedAt:    ms,
		LastActiveAt: ms,
		ExpireAt:     now.Add(sessionMaxLifetime).UnixMilli(),
		AbandonAt:    now.Add(sessionAbandonAge).UnixMilli(),
	}
}

// create adds s; it fails if the id is taken.
func (s *sessionStore) create(sess session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[sess.ID]; ok {
		return fmt.Errorf("clerktest: session %s already exists", sess.ID)
	}
	s.seq++
	sess.seq = s.seq
	s.byID[sess.ID] = &sess
	return nil
}

// getOrCreate returns the session with sess.ID, adding sess first if there
// is none; created reports which.
func (s *sessionStore) getOrCreate(sess session) (got session, created bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.byID[sess.ID]; ok {
		return *p, false
	}
	s.seq++
	sess.seq = s.seq
	s.byID[sess.ID] = &sess
	return sess, true
}

// get returns the session with this id.
func (s *sessionStore) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	return *p, true
}

// setStatus changes a session's status and updated_at, returning the
// updated session.
func (s *sessionStore) setStatus(id, status string, now time.Time) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	p.Status = status
	p.UpdatedAt = now.UnixMilli()
	return *p, true
}

// touch records activity on a session (a token was minted for it).
func (s *sessionStore) touch(id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.byID[id]; ok {
		p.LastActiveAt = now.UnixMilli()
	}
}
