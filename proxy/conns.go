package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/middleware"
)

// Long-lived connections (docs/sessions.md#long-lived-connections).
//
// A request is authenticated once; what it opens may stay open for hours.
// The proxy tracks, in a Connections registry shared by every Proxy built
// from successive configurations (so a reload neither forgets nor doubles
// them):
//
//   - WebSockets and any other protocol switch (kind "websocket"): from the
//     upstream's 101 until both ends are closed;
//   - streamed responses on a session (kind "stream"): server-sent events
//     (text/event-stream), and any response without a Content-Length,
//     which ReverseProxy streams as it comes. A server-sent event stream is
//     tracked on every route (for shutdown); another streamed response only
//     when it carries a session (for revocation).
//
// Each tracked connection that carries a session is watched by a
// middleware.Watcher with its route's session check: the deny list's
// revocations (admin, webhook, Redis from another replica, an inactive
// status seen) wake it at once, and the Watcher re-checks it every
// connections.recheck_interval. A revoked connection is closed: a WebSocket
// with close code 4401 and reason "session-revoked" (websocket.go), a
// stream by cutting it (the client sees the response end in error, never a
// clean end that could pass for a complete body). A WebSocket is closed
// after connections.max_lifetime (4408 max-lifetime) and at shutdown (1001
// shutdown). http.Server.Shutdown does not know hijacked connections: the
// App calls Connections.Shutdown next to it.

// Kinds of long-lived connections, as metrics label them.
const (
	ConnWebSocket = "websocket"
	ConnStream    = "stream"
)

// Why a long-lived connection closed, as metrics label it. The first three
// are the proxy's doing and are also the reason of the WebSocket close
// frame.
const (
	ClosedSessionRevoked = "session-revoked"
	ClosedMaxLifetime    = "max-lifetime"
	ClosedShutdown       = "shutdown"
	ClosedClient         = "client"
	ClosedUpstream       = "upstream"
)

// ConnectionKinds returns every kind, for metrics to export from the start.
func ConnectionKinds() []string { return []string{ConnWebSocket, ConnStream} }

// CloseReasons returns every close reason, for metrics to export from the
// start.
func CloseReasons() []string {
	return []string{ClosedSessionRevoked, ClosedMaxLifetime, ClosedShutdown, ClosedClient, ClosedUpstream}
}

// ConnectionObserver is told when long-lived connections open and close.
// Its methods must be fast and safe for concurrent use.
type ConnectionObserver interface {
	// ConnectionOpened is called when a connection of kind (ConnWebSocket,
	// ConnStream) starts to be tracked.
	ConnectionOpened(kind string)
	// ConnectionClosed is called once per opened connection when it ends:
	// reason is one of CloseReasons, open how long it was open.
	ConnectionClosed(kind, reason string, open time.Duration)
}

// DefaultCloseGrace bounds an orderly WebSocket close by default.
const DefaultCloseGrace = time.Second

// ConnectionsConfig configures a Connections registry.
type ConnectionsConfig struct {
	// Watcher re-checks the sessions of the connections (at once on a
	// revocation, and every interval). Nil: connections are closed only by
	// MaxLifetime and Shutdown.
	Watcher *middleware.Watcher
	// MaxLifetime bounds every WebSocket (any upgraded connection), whatever
	// its session. Zero means no bound.
	MaxLifetime time.Duration
	// CloseGrace bounds an orderly WebSocket close: how long the proxy
	// waits for the frame in flight to end and for the client to answer
	// the close frame before it closes the TCP connections. Zero means
	// DefaultCloseGrace.
	CloseGrace time.Duration
	// Observer is told of every connection opened and closed. Nil: none.
	Observer ConnectionObserver
	// Logger gets the connections the proxy closes. Nil means zap.NewNop().
	Logger *zap.Logger
}

// Connections tracks the long-lived connections of one process. It is safe
// for concurrent use; pass the same one to every Proxy (Options.Connections).
type Connections struct {
	watcher     *middleware.Watcher
	maxLifetime atomic.Int64 // time.Duration
	grace       time.Duration
	obs         ConnectionObserver
	log         *zap.Logger

	mu       sync.Mutex // guards following
	open     map[*longLived]struct{}
	shutting bool
	emptied  chan struct{} // closed when Shutdown has nothing left to wait for
}

// NewConnections builds a registry.
func NewConnections(cfg ConnectionsConfig) (*Connections, error) {
	if cfg.MaxLifetime < 0 {
		return nil, errors.New("proxy: ConnectionsConfig.MaxLifetime is negative")
	}
	if cfg.CloseGrace < 0 {
		return nil, errors.New("proxy: ConnectionsConfig.CloseGrace is negative")
	}
	c := &Connections{watcher: cfg.Watcher, grace: cfg.CloseGrace, obs: cfg.Observer, log: cfg.Logger,
		open: map[*longLived]struct{}{}}
	if c.grace == 0 {
		c.grace = DefaultCloseGrace
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.maxLifetime.Store(int64(cfg.MaxLifetime))
	return c, nil
}

// SetMaxLifetime changes MaxLifetime for the connections opened from now
// on (a configuration reload); zero means none.
func (c *Connections) SetMaxLifetime(d time.Duration) { c.maxLifetime.Store(int64(max(d, 0))) }

// Len is the number of connections open.
func (c *Connections) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// Shutdown closes every WebSocket (close code 1001, reason "shutdown") and
// every server-sent event stream, and waits until they are gone or ctx is
// done. Other streamed responses are left to finish like any request in
// flight (http.Server.Shutdown waits for those). A WebSocket or event stream
// opened after Shutdown is closed at once.
func (c *Connections) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.shutting = true
	var list []*longLived
	for l := range c.open {
		if l.closesAtShutdown() {
			list = append(list, l)
		}
	}
	var emptied chan struct{}
	if len(list) > 0 {
		if c.emptied == nil {
			c.emptied = make(chan struct{})
		}
		emptied = c.emptied
	}
	c.mu.Unlock()
	for _, l := range list {
		l.close(ClosedShutdown, CloseCodeGoingAway)
	}
	if emptied == nil {
		return nil
	}
	select {
	case <-emptied:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closingAtShutdownLocked reports whether a connection that Shutdown closes
// (and waits for) is still open. O(n), during a shutdown only.
func (c *Connections) closingAtShutdownLocked() bool {
	for l := range c.open {
		if l.closesAtShutdown() {
			return true
		}
	}
	return false
}

// longLived is one tracked connection.
type longLived struct {
	reg   *Connections
	kind  string
	sse   bool // a server-sent event stream
	route string
	sid   string // for the log: "" without a session
	reqID string // the request id, for the log
	start time.Time
	abort func(code int, reason string) // closes it; must not block
	end   func()                        // runs when the request ends

	// Set by register, read by release: both run on the request's
	// goroutine.
	stopWatch context.CancelFunc
	stopAfter func() bool
	timer     *time.Timer

	mu       sync.Mutex // guards following
	reason   string     // why it closed, the first one known
	closing  bool
	released bool
}

func (l *longLived) closesAtShutdown() bool { return l.kind == ConnWebSocket || l.sse }

// close closes the connection on the proxy's initiative.
func (l *longLived) close(reason string, code int) {
	l.mu.Lock()
	if l.closing || l.released {
		l.mu.Unlock()
		return
	}
	l.closing = true
	if l.reason == "" {
		l.reason = reason
	}
	l.mu.Unlock()
	l.abort(code, reason)
}

// ended records an end that one side caused (the first one counts).
func (l *longLived) ended(reason string) {
	l.mu.Lock()
	if l.reason == "" {
		l.reason = reason
	}
	l.mu.Unlock()
}

// watchFunc starts watching what let a connection through; its context is
// cancelled, with an *middleware.Error cause, when that is revoked.
type watchFunc func() (context.Context, context.CancelFunc)

// watchFor is what a connection opened by st is re-checked against. A
// session: by session id (what the deny list's revocations name), with
// its route's session check. A machine credential: verified again every
// interval under its route's policy (through the verification cache, so a
// revocation is seen within cache.machine_ttl plus the interval) and ended
// at its expiration. Nil: nothing to re-check (a public or anonymous
// request).
func (p *Proxy) watchFor(st *state) watchFunc {
	w := p.conns.watcher
	if w == nil {
		return nil
	}
	if m := st.machine; m != nil && st.machTok != "" && st.route != nil {
		tok, pol, gate := st.machTok, st.route.Policy, p.gate
		exp := m.Expiration
		check := func(ctx context.Context) error {
			if !exp.IsZero() && !time.Now().Before(exp) {
				return middleware.ErrMachineTokenExpired
			}
			_, err := gate.VerifyAny(ctx, tok, pol)
			return err
		}
		return func() (context.Context, context.CancelFunc) {
			return w.WatchKey(watchContext(st.requestID), "", check)
		}
	}
	c := st.claims
	if c == nil || c.SessionID == "" {
		return nil
	}
	var sc middleware.SessionChecker
	if st.route != nil {
		sc = st.route.Policy.Sessions
	}
	return func() (context.Context, context.CancelFunc) {
		return w.WatchSession(watchContext(st.requestID), c, sc)
	}
}

// watchContext is the context a connection is watched on: not the
// request's (the connection outlives it), but carrying its request id,
// which the re-checks' log lines carry.
func watchContext(requestID string) context.Context {
	return logctx.WithRequestID(context.Background(), requestID)
}

// register starts tracking l: the registry, its watch, its lifetime.
func (c *Connections) register(l *longLived, watch watchFunc) {
	c.mu.Lock()
	c.open[l] = struct{}{}
	shutting := c.shutting
	c.mu.Unlock()
	if c.obs != nil {
		c.obs.ConnectionOpened(l.kind)
	}
	if watch != nil {
		ctx, cancel := watch()
		l.stopWatch = cancel
		l.stopAfter = context.AfterFunc(ctx, func() {
			var e *middleware.Error
			if errors.As(context.Cause(ctx), &e) {
				l.close(closeReasonOf(e), CloseCodeSessionRevoked)
			}
		})
	}
	if d := time.Duration(c.maxLifetime.Load()); d > 0 && l.kind == ConnWebSocket {
		l.timer = time.AfterFunc(d, func() { l.close(ClosedMaxLifetime, CloseCodeMaxLifetime) })
	}
	if shutting && l.closesAtShutdown() {
		l.close(ClosedShutdown, CloseCodeGoingAway)
	}
}

// closeReasonOf names the close of a connection whose re-check failed.
// Sessions are "session-revoked" whatever the status that ended them.
func closeReasonOf(e *middleware.Error) string {
	if r := string(e.Reason); strings.HasPrefix(r, "machine-token-") {
		return r
	}
	return ClosedSessionRevoked
}

// release stops tracking l; the request is over.
func (l *longLived) release() {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	l.released = true
	reason, ours := l.reason, l.closing
	l.mu.Unlock()
	if l.stopAfter != nil {
		l.stopAfter()
	}
	if l.stopWatch != nil {
		l.stopWatch()
	}
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.end != nil {
		l.end()
	}
	if reason == "" {
		reason = ClosedClient
	}
	c := l.reg
	c.mu.Lock()
	_, tracked := c.open[l]
	delete(c.open, l)
	if c.emptied != nil && !c.closingAtShutdownLocked() {
		close(c.emptied)
		c.emptied = nil
	}
	c.mu.Unlock()
	if !tracked {
		return
	}
	d := time.Since(l.start)
	if c.obs != nil {
		c.obs.ConnectionClosed(l.kind, reason, d)
	}
	lvl := zap.DebugLevel
	if ours {
		lvl = zap.InfoLevel
	}
	if ce := c.log.Check(lvl, "long-lived connection closed"); ce != nil {
		ce.Write(zap.String("kind", l.kind), zap.String("reason", reason), zap.String("route", l.route),
			zap.String("sid", l.sid), zap.Duration("open", d), zap.String("request_id", l.reqID))
	}
}

// isUpgradeRequest reports a request asking to switch protocols.
func isUpgradeRequest(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && netutil.HeaderHasToken(r.Header, "Connection", "upgrade")
}

// forward sends r to the upstream through ReverseProxy, with what a
// long-lived connection needs: the upgrade hook on the ResponseWriter, and
// the end of its tracking when the request ends. ReverseProxy aborts a
// streamed response that fails midway by panicking with
// http.ErrAbortHandler; forward records it so that ServeHTTP writes its
// access-log line and metrics first, then panics again (the server then
// cuts the connection or resets the stream).
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, st *state) {
	if p.conns != nil && isUpgradeRequest(r) {
		w = &upgradeWriter{ResponseWriter: w, p: p, st: st}
	}
	defer func() {
		if st.ll != nil {
			st.ll.release()
		}
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // ReverseProxy panics with the value itself
				st.aborted = true
				p.logAborted(r, st)
				return
			}
			panic(v)
		}
	}()
	p.rp.ServeHTTP(w, r)
}

// logAborted writes the line of a response cut midway, with the request
// id that ReverseProxy's own line (reverseProxyLog) cannot carry: a warning
// when the upstream failed, a debug line when the client had gone (its
// context ended), which is no fault of anyone's.
func (p *Proxy) logAborted(r *http.Request, st *state) {
	lvl, msg := zap.WarnLevel, "upstream response cut short: the upstream failed mid-body"
	if r.Context().Err() != nil {
		lvl, msg = zap.DebugLevel, "response cut short: the client went away mid-body"
	}
	if ce := p.log.Check(lvl, msg); ce != nil {
		ce.Write(zap.String("route", st.route.Name), zap.String("request_id", st.requestID))
	}
}

// onResponse is ReverseProxy's ModifyResponse: the handshake's no-store,
// then the tracking of a 101 or a streamed response.
func (p *Proxy) onResponse(res *http.Response) error {
	if err := p.modifyResponse(res); err != nil {
		return err
	}
	if p.conns == nil || res.Request == nil {
		return nil
	}
	st := stateOf(res.Request.Context())
	if st == nil || st.ll != nil || st.route == nil {
		return nil
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		p.trackUpgrade(res, st)
		return nil
	}
	p.trackStream(res, st)
	return nil
}

func (p *Proxy) newLongLived(kind string, st *state) *longLived {
	l := &longLived{reg: p.conns, kind: kind, route: st.route.Name, reqID: st.requestID, start: time.Now()}
	if st.claims != nil {
		l.sid = st.claims.SessionID
	}
	return l
}

// trackUpgrade wraps the upstream end of a 101; Hijack wraps the client
// end and registers the connection (ReverseProxy calls ModifyResponse,
// then hijacks).
func (p *Proxy) trackUpgrade(res *http.Response, st *state) {
	rwc, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		return // ReverseProxy refuses it
	}
	l := p.newLongLived(ConnWebSocket, st)
	u := &upgraded{ll: l, grace: p.conns.grace, dead: make(chan struct{}),
		ws: netutil.HeaderHasToken(res.Header, "Upgrade", "websocket")}
	u.upstream = &upstreamConn{rwc: rwc, w: rwc, ll: l}
	if u.ws {
		u.uw = newFrameWriter(rwc, false)
		u.upstream.w = u.uw
	}
	l.abort, l.end = u.abort, u.release
	res.Body = u.upstream
	st.ll, st.upgraded = l, u
}

// upgradeWriter is the ResponseWriter of an upgrade request: its Hijack
// hands ReverseProxy the wrapped client connection.
type upgradeWriter struct {
	http.ResponseWriter
	p  *Proxy
	st *state
}

func (w *upgradeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack takes the client connection over for a 101 that trackUpgrade
// saw, wraps it, and starts tracking the connection.
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	st := w.st
	if st.sw.status == 0 {
		st.sw.status = http.StatusSwitchingProtocols
	}
	u := st.upgraded
	if u == nil {
		return conn, brw, nil
	}
	cc := &clientConn{Conn: conn, br: brw.Reader, w: conn, ll: u.ll}
	if u.ws {
		u.cw = newFrameWriter(conn, true) // the 101 head goes through it first
		cc.w = u.cw
	}
	u.client = cc
	// ReverseProxy writes the 101 head through brw: through cc, so that
	// nothing the proxy injects can come before it.
	if brw.Writer.Buffered() > 0 {
		_ = brw.Writer.Flush()
	}
	brw.Writer.Reset(cc)
	w.p.conns.register(u.ll, w.p.watchFor(st))
	return cc, brw, nil
}

// trackStream tracks a streamed response: server-sent events on every
// route, any other body of unknown length when it carries a session.
func (p *Proxy) trackStream(res *http.Response, st *state) {
	if res.Request.Method == http.MethodHead || res.StatusCode < 200 ||
		res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified {
		return
	}
	sse := isEventStream(res.Header.Get("Content-Type"))
	hasSession := st.claims != nil && st.claims.SessionID != ""
	if !sse && (res.ContentLength >= 0 || !hasSession) {
		return
	}
	l := p.newLongLived(ConnStream, st)
	l.sse = sse
	b := &streamBody{ReadCloser: res.Body, ll: l}
	l.abort = b.abort
	res.Body = b
	st.ll = l
	p.conns.register(l, p.watchFor(st))
}

// isEventStream reports a text/event-stream media type, parameters aside.
// It runs on every proxied response, so it allocates nothing.
func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// streamBody is a streamed response's body: abort ends the copy in error.
type streamBody struct {
	io.ReadCloser
	ll      *longLived
	aborted atomic.Bool
}

// Read reports context.Canceled once aborted: ReverseProxy then stops
// without logging a read error, and aborts the response.
func (b *streamBody) Read(p []byte) (int, error) {
	if b.aborted.Load() {
		return 0, context.Canceled
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		if b.aborted.Load() {
			return n, context.Canceled
		}
		b.ll.ended(ClosedUpstream) // the end of the body, or a failure
	}
	return n, err
}

// abort closes the upstream body under the copy (the transport's bodies
// allow a Close concurrent with a Read: it unblocks it).
func (b *streamBody) abort(int, string) {
	b.aborted.Store(true)
	_ = b.ReadCloser.Close()
}
