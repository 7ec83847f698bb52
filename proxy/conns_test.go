package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/testwait"
	"github.com/sessiongate/sessiongate/internal/wstest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// closeBound is how long a test waits for a close that should be (nearly)
// immediate; measured latencies are logged. It is generous: it only tells
// such a close from one that never comes (the fixture re-checks sessions
// every hour), not how fast a loaded machine is.
const closeBound = testwait.Generous

// statuses is a fake Backend API session lookup.
type statuses struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *statuses) SessionStatus(_ context.Context, sid string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[sid]; ok {
		return st, nil
	}
	return "active", nil
}

func (s *statuses) set(sid, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[sid] = status
}

// connObserver counts what proxy.Connections reports.
type connObserver struct {
	mu     sync.Mutex
	open   map[string]int
	closed map[string]int // kind/reason
}

func (o *connObserver) ConnectionOpened(kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open[kind]++
}

func (o *connObserver) ConnectionClosed(kind, reason string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open[kind]--
	o.closed[kind+"/"+reason]++
}

func (o *connObserver) closedCount(kind, reason string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed[kind+"/"+reason]
}

// wsUpstream is an upstream with a WebSocket echo ("/ws"), a WebSocket
// that sends a frame in two halves ("/ws/split", the second half when
// release is closed), server-sent events ("/sse") and a chunked stream
// ("/chunked"). Every frame its WebSockets receive goes to frames.
type wsUpstream struct {
	*httptest.Server
	frames  chan wstest.Frame
	release chan struct{}
	partial chan struct{} // "/ws/partial" received the first 100 bytes of a 308-byte frame
}

func newWSUpstream(t *testing.T) *wsUpstream {
	t.Helper()
	u := &wsUpstream{frames: make(chan wstest.Frame, 64), release: make(chan struct{}), partial: make(chan struct{}, 1)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/public"), "/cached")
		switch path {
		case "/ws", "/ws/split", "/ws/partial":
			c, err := wstest.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			if path == "/ws/split" {
				// A 1000-byte binary frame: its first half now.
				whole := wstest.Encode(true, wstest.OpBinary, []byte(strings.Repeat("x", 1000)), false)
				_ = c.WriteRaw(whole[:504])
				go func() {
					<-u.release
					_ = c.WriteRaw(whole[504:])
				}()
			}
			if path == "/ws/partial" {
				// A masked 300-byte binary frame, read in two parts.
				buf := make([]byte, 308)
				if _, err := io.ReadFull(c, buf[:100]); err != nil {
					return
				}
				u.partial <- struct{}{}
				if _, err := io.ReadFull(c, buf[100:]); err != nil {
					return
				}
				p := buf[8:]
				for i := range p {
					p[i] ^= buf[4+i&3]
				}
				u.frames <- wstest.Frame{Fin: buf[0]&0x80 != 0, Op: buf[0] & 0x0f, Masked: true, Payload: p}
			}
			for {
				f, err := c.ReadFrame()
				if err != nil {
					return
				}
				u.frames <- f
				switch f.Op {
				case wstest.OpText:
					_ = c.WriteMessage(wstest.OpText, f.Payload)
				case wstest.OpClose:
					return
				}
			}
		case "/raw":
			// Another protocol than WebSocket: raw bytes echoed.
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			_, _ = io.Copy(c, brw)
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: hello\n\n")
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		case "/chunked":
			_, _ = io.WriteString(w, "part 1\n")
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.CloseClientConnections()
		u.Close()
	})
	return u
}

type connFixture struct {
	inst     *clerktest.Instance
	deny     *sessioncheck.DenyList
	statuses *statuses
	watcher  *middleware.Watcher
	conns    *proxy.Connections
	obs      *connObserver
	up       *wsUpstream
	srv      *httptest.Server // the proxy
}

type connOptions struct {
	interval, maxLifetime, grace time.Duration
}

// newConnFixture serves a proxy with routes "/" (deny list), "/cached"
// (cached status) and "/public", all to one upstream.
func newConnFixture(t *testing.T, o connOptions) *connFixture {
	t.Helper()
	if o.interval == 0 {
		o.interval = time.Hour // only events close, unless a test asks
	}
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	deny := sessioncheck.NewDenyList(time.Hour, 0, nil)
	st := &statuses{m: map[string]string{}}
	svc, err := sessioncheck.New(sessioncheck.Config{Lookup: st, DenyList: deny, TTL: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	off, _ := svc.Checker(sessioncheck.Off, sessioncheck.Deny, false)
	cached, _ := svc.Checker(sessioncheck.Cached, sessioncheck.Deny, false)
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...), Sessions: off})
	if err != nil {
		t.Fatal(err)
	}
	w, err := middleware.NewWatcher(middleware.WatcherConfig{Revocations: deny, Interval: o.interval})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	obs := &connObserver{open: map[string]int{}, closed: map[string]int{}}
	conns, err := proxy.NewConnections(proxy.ConnectionsConfig{Watcher: w, MaxLifetime: o.maxLifetime, CloseGrace: o.grace, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	up := newWSUpstream(t)
	upURL := mustURL(t, up.URL)
	p, err := proxy.New(proxy.Options{Gate: gate, Connections: conns, Routes: []proxy.Route{
		{Path: "/", Upstream: upURL, Policy: middleware.Policy{Sessions: off}, Name: "/"},
		{Path: "/cached", Upstream: mustURL(t, up.URL+"/"), Policy: middleware.Policy{Sessions: cached}, Name: "/cached"},
		{Path: "/public", Upstream: upURL, Auth: proxy.Public, Name: "/public"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return &connFixture{inst: inst, deny: deny, statuses: st, watcher: w, conns: conns, obs: obs, up: up, srv: srv}
}

// session returns a new session and a token for it.
func (f *connFixture) session(t *testing.T) (string, string) {
	t.Helper()
	sid := f.inst.CreateSession("")
	return sid, f.inst.MustMint(t, clerktest.WithSession(sid))
}

func (f *connFixture) dial(t *testing.T, path, token string) *wstest.Conn {
	t.Helper()
	return wstest.MustDial(t, "ws"+strings.TrimPrefix(f.srv.URL, "http")+path, token)
}

// wantClose reads until the close frame and checks its code and reason;
// it answers it like a browser and waits for the proxy to close the TCP
// connection.
func wantClose(t *testing.T, c *wstest.Conn, code int, reason string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	cf, _, err := c.ReadUntilClose(start.Add(within))
	if err != nil {
		t.Fatalf("no close frame within %v: %v", within, err)
	}
	took := time.Since(start)
	if cf.Masked {
		t.Error("the close frame toward the client is masked")
	}
	if gotCode, gotReason := cf.CloseCode(); gotCode != code || gotReason != reason {
		t.Fatalf("close %d %q, want %d %q", gotCode, gotReason, code, reason)
	}
	_ = c.WriteClose(code, "")
	if err := c.WaitEOF(time.Now().Add(within)); err != nil {
		t.Fatalf("the proxy did not close the TCP connection after the close handshake: %v", err)
	}
	return took
}

// upstreamClose waits for the close frame the upstream receives.
func (f *connFixture) upstreamClose(t *testing.T, code int, reason string) {
	t.Helper()
	timeout := time.After(closeBound)
	for {
		select {
		case fr := <-f.up.frames:
			if fr.Op != wstest.OpClose {
				continue
			}
			if !fr.Masked {
				t.Error("the close frame toward the upstream is not masked")
			}
			if gotCode, gotReason := fr.CloseCode(); gotCode != code || gotReason != reason {
				t.Fatalf("upstream got close %d %q, want %d %q", gotCode, gotReason, code, reason)
			}
			return
		case <-timeout:
			t.Fatalf("the upstream got no close frame within %v", closeBound)
		}
	}
}

func (f *connFixture) waitNoConnections(t *testing.T) {
	t.Helper()
	testwait.Until(t, closeBound, "no connection to be tracked", func() bool { return f.conns.Len() == 0 })
}

func TestWebSocketClosedWhenItsSessionIsRevoked(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{}) // re-check every hour: only the revocation event can close it
	sid, tok := f.session(t)
	_, other := f.session(t)
	c := f.dial(t, "/ws", tok)
	bystander := f.dial(t, "/ws", other)
	wstest.Echo(t, c, "hello")

	f.deny.Deny(sid)
	took := wantClose(t, c, proxy.CloseCodeSessionRevoked, "session-revoked", closeBound)
	t.Logf("close frame %v after the revocation", took)
	f.upstreamClose(t, proxy.CloseCodeSessionRevoked, "session-revoked")
	wstest.Echo(t, bystander, "still here") // another session's WebSocket stays
	bystander.Close()
	f.waitNoConnections(t)
	if n := f.obs.closedCount(proxy.ConnWebSocket, proxy.ClosedSessionRevoked); n != 1 {
		t.Errorf("closed by revocation: %d, want 1", n)
	}
}

func TestWebSocketClosedWhenARecheckFindsTheSessionInactive(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{interval: 50 * time.Millisecond})
	sid, tok := f.session(t)
	c := f.dial(t, "/cached/ws", tok)
	wstest.Echo(t, c, "hello")
	f.statuses.set(sid, "ended") // at Clerk, not through sessiongate
	took := wantClose(t, c, proxy.CloseCodeSessionRevoked, "session-revoked", closeBound)
	t.Logf("closed %v after the status changed (interval 50ms, cache TTL 20ms)", took)
	if !f.deny.Denied(sid) {
		t.Error("the inactive status was not put on the deny list")
	}
}

func TestWebSocketCloseWaitsForTheFrameInFlight(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{grace: 5 * time.Second})
	sid, tok := f.session(t)
	c := f.dial(t, "/ws/split", tok)
	// The first half of a 1000-byte frame arrives; then the revocation.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	head := make([]byte, 504)
	if _, err := io.ReadFull(c, head[:4]); err != nil {
		t.Fatal(err)
	}
	f.deny.Deny(sid)
	close(f.up.release) // the second half follows
	rest := make([]byte, 500+len(head)-4)
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatalf("the frame in flight was cut: %v", err)
	}
	for i, b := range rest {
		if b != 'x' {
			t.Fatalf("byte %d of the payload is %q: the close frame was injected into the frame", i, b)
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	wantClose(t, c, proxy.CloseCodeSessionRevoked, "session-revoked", closeBound)
}

func TestWebSocketCutWhenTheFrameInFlightNeverEnds(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{grace: 100 * time.Millisecond})
	sid, tok := f.session(t)
	c := f.dial(t, "/ws/split", tok) // the second half never comes
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 504)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f.deny.Deny(sid)
	if err := c.WaitEOF(time.Now().Add(closeBound)); err != nil {
		t.Fatalf("not cut within %v: %v", closeBound, err)
	}
	t.Logf("cut %v after the revocation (grace 100ms)", time.Since(start))
	f.waitNoConnections(t)
}

func TestWebSocketClientFrameInFlightReachesTheUpstreamWhole(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{grace: 5 * time.Second})
	sid, tok := f.session(t)
	c := f.dial(t, "/ws/partial", tok)
	msg := wstest.Encode(true, wstest.OpBinary, []byte(strings.Repeat("y", 300)), true)
	if err := c.WriteRaw(msg[:100]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.up.partial: // the proxy is in the middle of the frame
	case <-time.After(closeBound):
		t.Fatal("the first part of the frame did not reach the upstream")
	}
	f.deny.Deny(sid)
	// Toward the client the direction is idle: the close frame comes now.
	cf, _, err := c.ReadUntilClose(time.Now().Add(closeBound))
	if err != nil || cf == nil {
		t.Fatalf("no close frame: %v", err)
	}
	if err := c.WriteRaw(msg[100:]); err != nil {
		t.Fatal(err)
	}
	_ = c.WriteClose(proxy.CloseCodeSessionRevoked, "")
	var got wstest.Frame
	select {
	case got = <-f.up.frames:
	case <-time.After(closeBound):
		t.Fatal("the upstream got nothing")
	}
	if got.Op != wstest.OpBinary || string(got.Payload) != strings.Repeat("y", 300) {
		t.Fatalf("upstream got %d %d bytes, want the whole binary frame", got.Op, len(got.Payload))
	}
	f.upstreamClose(t, proxy.CloseCodeSessionRevoked, "session-revoked")
	if err := c.WaitEOF(time.Now().Add(closeBound)); err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketMaxLifetime(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{maxLifetime: 200 * time.Millisecond})
	_, tok := f.session(t)
	c := f.dial(t, "/ws", tok)
	pub := f.dial(t, "/public/ws", "") // any upgraded connection, session or not
	start := time.Now()
	wantClose(t, c, proxy.CloseCodeMaxLifetime, "max-lifetime", closeBound)
	wantClose(t, pub, proxy.CloseCodeMaxLifetime, "max-lifetime", closeBound)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v, before max_lifetime", d)
	}
	f.waitNoConnections(t)
	if n := f.obs.closedCount(proxy.ConnWebSocket, proxy.ClosedMaxLifetime); n != 2 {
		t.Errorf("closed by max lifetime: %d, want 2", n)
	}
}

func TestConnectionsShutdownClosesWebSocketsAndEventStreams(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{})
	_, tok := f.session(t)
	c := f.dial(t, "/ws", tok)
	pub := f.dial(t, "/public/ws", "")
	body := openStream(t, f.srv.URL+"/public/sse", "")
	download := openStream(t, f.srv.URL+"/chunked", tok) // drains like any request: not waited for

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- f.conns.Shutdown(ctx)
	}()
	wantClose(t, c, proxy.CloseCodeGoingAway, "shutdown", closeBound)
	wantClose(t, pub, proxy.CloseCodeGoingAway, "shutdown", closeBound)
	wantCut(t, body)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if f.conns.Len() != 1 {
		t.Fatalf("%d connections left after Shutdown, want the download only", f.conns.Len())
	}
	_ = download
	// A WebSocket opened after Shutdown is closed at once.
	late := f.dial(t, "/ws", tok)
	wantClose(t, late, proxy.CloseCodeGoingAway, "shutdown", closeBound)
}

// openStream GETs a streamed response and returns its body after the first
// line.
func openStream(t *testing.T, u, token string) *bufio.Reader {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return br
}

// wantCut reads the rest of a streamed body: it must end in an error
// (never a clean end that could pass for a complete response).
func wantCut(t *testing.T, body *bufio.Reader) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, body)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("the stream ended cleanly (%v), want it cut", err)
		}
	case <-time.After(closeBound):
		t.Fatalf("the stream is still open %v later", closeBound)
	}
}

func TestEventStreamCutWhenItsSessionIsRevoked(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{})
	sid, tok := f.session(t)
	sse := openStream(t, f.srv.URL+"/sse", tok)
	chunked := openStream(t, f.srv.URL+"/chunked", tok)
	_, other := f.session(t)
	bystander := openStream(t, f.srv.URL+"/sse", other)
	if n := f.conns.Len(); n != 3 {
		t.Fatalf("%d connections tracked, want 3", n)
	}
	start := time.Now()
	f.deny.Deny(sid)
	wantCut(t, sse)
	wantCut(t, chunked)
	t.Logf("streams cut %v after the revocation", time.Since(start))
	testwait.Until(t, closeBound, "the bystander to be the only connection tracked", func() bool { return f.conns.Len() == 1 })
	_ = bystander
	if n := f.obs.closedCount(proxy.ConnStream, proxy.ClosedSessionRevoked); n != 2 {
		t.Errorf("streams closed by revocation: %d, want 2", n)
	}
}

func TestOnlyStreamsAreTracked(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{})
	_, tok := f.session(t)
	for _, path := range []string{"/plain", "/public/plain"} {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// A chunked body without a session is not tracked (nothing to re-check).
	_ = openStream(t, f.srv.URL+"/public/chunked", "")
	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	if len(f.obs.closed) != 0 || f.obs.open[proxy.ConnStream] != 0 {
		t.Fatalf("tracked: open %v closed %v", f.obs.open, f.obs.closed)
	}
}

// TestLongLivedConnectionsLeaveNoGoroutine (not parallel: it counts the
// process's goroutines) opens WebSockets and streams, closes them every
// way, and requires the goroutine count to return to its baseline.
func TestLongLivedConnectionsLeaveNoGoroutine(t *testing.T) {
	f := newConnFixture(t, connOptions{interval: 20 * time.Millisecond, grace: 200 * time.Millisecond})
	warm := f.dial(t, "/public/ws", "")
	warm.Close()
	f.waitNoConnections(t)
	baseline := testwait.SettledGoroutines()

	var sids []string
	var streams []*bufio.Reader
	for i := 0; i < 10; i++ {
		sid, tok := f.session(t)
		sids = append(sids, sid)
		c := f.dial(t, "/ws", tok)
		wstest.Echo(t, c, fmt.Sprint(i))
		if i%2 == 0 {
			streams = append(streams, openStream(t, f.srv.URL+"/sse", tok))
		}
		if i%5 == 4 {
			c.Close() // the client goes away by itself
		}
	}
	for _, sid := range sids {
		f.deny.Deny(sid)
	}
	for _, s := range streams {
		wantCut(t, s)
	}
	f.waitNoConnections(t)
	f.up.CloseClientConnections()
	http.DefaultClient.CloseIdleConnections()
	n := testwait.GoroutinesAtMost(t, baseline+2, fmt.Sprintf("baseline %d", baseline))
	if f.watcher.Len() != 0 {
		t.Fatalf("the watcher still watches %d contexts", f.watcher.Len())
	}
	t.Logf("goroutines: baseline %d, after %d connections %d", baseline, len(sids)*3/2, n)
}

func TestOtherUpgradesAreCutOnRevocation(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{})
	sid, tok := f.session(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	_, _ = conn.Write([]byte("abc"))
	got := make([]byte, 3)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "abc" {
		t.Fatalf("echo %q %v", got, err)
	}
	f.deny.Deny(sid)
	_ = conn.SetReadDeadline(time.Now().Add(closeBound))
	if _, err := io.Copy(io.Discard, br); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("not cut within %v", closeBound)
		}
	}
	f.waitNoConnections(t)
	if n := f.obs.closedCount(proxy.ConnWebSocket, proxy.ClosedSessionRevoked); n != 1 {
		t.Errorf("closed by revocation: %d, want 1", n)
	}
}

func TestWebSocketBytesSentWithTheHandshakeArrive(t *testing.T) {
	t.Parallel()
	f := newConnFixture(t, connOptions{})
	_, tok := f.session(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The request and a first message in one write: the server reads both
	// into the buffer the hijack hands over.
	req := fmt.Sprintf("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	if _, err := conn.Write(append([]byte(req), wstest.Encode(true, wstest.OpText, []byte("early"), true)...)); err != nil {
		t.Fatal(err)
	}
	select {
	case fr := <-f.up.frames:
		if string(fr.Payload) != "early" {
			t.Fatalf("upstream got %q", fr.Payload)
		}
	case <-time.After(closeBound):
		t.Fatal("the message sent with the handshake never reached the upstream")
	}
}
