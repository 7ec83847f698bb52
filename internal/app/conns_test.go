package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/redistest"
	"github.com/sessiongate/sessiongate/internal/testwait"
	"github.com/sessiongate/sessiongate/internal/wstest"
)

// recheckInterval is connections.recheck_interval in these tests: its
// default. Revocations must close connections well within it (they are
// events); the bound below is what the tests allow.
const recheckInterval = 5 * time.Second

// wsApp is an upstream for long-lived connections: "/ws" echoes text
// messages over a WebSocket and reports the close frame it receives on
// closes; "/sse" streams server-sent events until the client goes.
func wsApp(closes chan<- wstest.Frame) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/ws"):
			c, err := wstest.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				f, err := c.ReadFrame()
				if err != nil {
					return
				}
				switch f.Op {
				case wstest.OpText:
					_ = c.WriteMessage(wstest.OpText, f.Payload)
				case wstest.OpClose:
					if closes != nil {
						closes <- f
					}
					_ = c.WriteClose(1000, "")
					return
				}
			}
		case strings.HasSuffix(r.URL.Path, "/sse"):
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: hello\n\n")
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		default:
			fmt.Fprint(w, "ok")
		}
	}
}

// dialWS opens a WebSocket through the proxy and checks that it echoes.
func dialWS(t *testing.T, proxyURL, path, token string) *wstest.Conn {
	t.Helper()
	c := wstest.MustDial(t, proxyURL+path, token)
	wstest.Echo(t, c, "ping")
	return c
}

// expectClose reads the close frame within bound, checks it, answers it and
// waits for the proxy to close the connection. It returns how long the
// frame took.
func expectClose(t *testing.T, c *wstest.Conn, code int, reason string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	cf, _, err := c.ReadUntilClose(start.Add(bound))
	if err != nil {
		t.Fatalf("no close frame within %v: %v", bound, err)
	}
	took := time.Since(start)
	if gotCode, gotReason := cf.CloseCode(); gotCode != code || gotReason != reason {
		t.Fatalf("close %d %q, want %d %q", gotCode, gotReason, code, reason)
	}
	_ = c.WriteClose(code, "")
	if err := c.WaitEOF(time.Now().Add(bound)); err != nil {
		t.Fatalf("the TCP connection stayed open after the close handshake: %v", err)
	}
	return took
}

func openSSE(t *testing.T, u, token string) *bufio.Reader {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: hello\n" {
		t.Fatalf("first event %q %v", line, err)
	}
	return br
}

// expectCut reads the rest of a stream: it must fail (not end cleanly)
// within bound.
func expectCut(t *testing.T, body *bufio.Reader, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, body)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the event stream ended cleanly; want it cut")
		}
	case <-time.After(bound):
		t.Fatalf("the event stream is still open after %v", bound)
	}
	return time.Since(start)
}

func postRevoke(t *testing.T, adminURL, sid string) {
	t.Helper()
	resp, err := http.Post(adminURL+"/sessions/"+sid+"/revoke", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

func wsURL(h *harness) string { return "ws" + strings.TrimPrefix(h.proxyURL, "http") }

func TestWebSocketAndEventStreamClosedByAdminRevoke(t *testing.T) {
	t.Parallel()
	closes := make(chan wstest.Frame, 4)
	h := start(t, nil, wsApp(closes))
	h.waitReady(t, 200)
	sid, tok := session(t, h.inst)
	_, other := session(t, h.inst)
	c := dialWS(t, wsURL(h), "/ws", tok)
	keep := dialWS(t, wsURL(h), "/ws", other)
	sse := openSSE(t, h.proxyURL+"/sse", tok)
	if got := metric(t, h.adminURL, `sessiongate_long_lived_connections_open{kind="websocket"}`); got != 2 {
		t.Errorf("websockets open: %v, want 2", got)
	}
	if got := metric(t, h.adminURL, `sessiongate_long_lived_connections_open{kind="stream"}`); got != 1 {
		t.Errorf("streams open: %v, want 1", got)
	}

	postRevoke(t, h.adminURL, sid)
	took := expectClose(t, c, 4401, "session-revoked", recheckInterval)
	cut := expectCut(t, sse, recheckInterval)
	t.Logf("after the admin revoke: close frame in %v, stream cut in %v (recheck_interval %v)", took, cut, recheckInterval)
	select {
	case f := <-closes:
		if code, reason := f.CloseCode(); code != 4401 || reason != "session-revoked" || !f.Masked {
			t.Errorf("the upstream got close %d %q (masked %v)", code, reason, f.Masked)
		}
	case <-time.After(recheckInterval):
		t.Error("the upstream got no close frame")
	}
	if err := keep.WriteMessage(wstest.OpText, []byte("still")); err != nil {
		t.Fatal(err)
	}
	if f, err := keep.ReadFrame(); err != nil || string(f.Payload) != "still" {
		t.Fatalf("another session's WebSocket was disturbed: %v", err)
	}
	testwait.Eventually(t, "the metrics count the closes", func() bool {
		return metric(t, h.adminURL, `sessiongate_long_lived_connections_closed_total{kind="websocket",reason="session-revoked"}`) == 1 &&
			metric(t, h.adminURL, `sessiongate_long_lived_connections_closed_total{kind="stream",reason="session-revoked"}`) == 1 &&
			metric(t, h.adminURL, `sessiongate_long_lived_connections_open{kind="websocket"}`) == 1
	})
}

func TestWebSocketClosedByWebhook(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *config.Config, _ *clerktest.Instance) { c.Clerk.WebhookSecret = webhookSecret }, wsApp(nil))
	h.waitReady(t, 200)
	sid, tok := session(t, h.inst)
	c := dialWS(t, wsURL(h), "/ws", tok)
	sse := openSSE(t, h.proxyURL+"/sse", tok)
	resp, err := h.inst.SendWebhook(context.Background(), h.proxyURL+"/_sessiongate/webhooks/clerk", webhookSecret, "session.revoked", sid)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	took := expectClose(t, c, 4401, "session-revoked", recheckInterval)
	expectCut(t, sse, recheckInterval)
	t.Logf("close frame %v after the webhook was answered", took)
}

func TestWebSocketClosedByARevokeOnAnotherReplica(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	up := upstream(t, wsApp(nil))
	withWS := func(c *config.Config) { c.Upstream = up; c.Routes = nil }
	a := startReplica(t, inst, srv.URL(), withWS)
	b := startReplica(t, inst, srv.URL(), withWS)
	a.waitReady(t)
	b.waitReady(t)
	sid, tok := session(t, inst)
	c := dialWS(t, "ws"+strings.TrimPrefix(b.proxyURL, "http"), "/ws", tok)
	sse := openSSE(t, b.proxyURL+"/sse", tok)

	a.revoke(t, sid)
	took := expectClose(t, c, 4401, "session-revoked", recheckInterval)
	expectCut(t, sse, recheckInterval)
	t.Logf("replica B closed its WebSocket %v after A's revoke returned", took)
}

func TestWebSocketClosedWhenTheSessionEndsAtClerk(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{{Path: "/", SessionCheck: config.SessionCheckCached}}
		c.Cache.SessionTTL = config.Duration(50 * time.Millisecond)
		c.Connections.RecheckInterval = config.Duration(100 * time.Millisecond)
	}, wsApp(nil))
	h.waitReady(t, 200)
	sid, tok := session(t, h.inst)
	c := dialWS(t, wsURL(h), "/ws", tok)
	// Ended at Clerk, not through sessiongate: only the re-check sees it.
	if err := h.inst.SetSessionStatus(sid, "ended"); err != nil {
		t.Fatal(err)
	}
	took := expectClose(t, c, 4401, "session-revoked", testwait.Generous)
	t.Logf("closed %v after the session ended at Clerk (recheck_interval 100ms, session_ttl 50ms)", took)
}

func TestWebSocketOnAStrictRouteSeesTheSessionEndAtClerkWithinTheInterval(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{{Path: "/", SessionCheck: config.SessionCheckStrict}}
		c.Cache.SessionTTL = config.Duration(time.Hour) // not the cache: strict asks Clerk on every re-check
		c.Connections.RecheckInterval = config.Duration(200 * time.Millisecond)
	}, wsApp(nil))
	h.waitReady(t, 200)
	sid, tok := session(t, h.inst)
	c := dialWS(t, wsURL(h), "/ws", tok)
	if err := h.inst.SetSessionStatus(sid, "revoked"); err != nil {
		t.Fatal(err)
	}
	took := expectClose(t, c, 4401, "session-revoked", testwait.Generous)
	t.Logf("closed %v after the session was revoked at Clerk (strict, recheck_interval 200ms)", took)
}

func TestWebSocketMaxLifetimeFromConfig(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Connections.MaxLifetime = config.Duration(300 * time.Millisecond)
	}, wsApp(nil))
	h.waitReady(t, 200)
	_, tok := session(t, h.inst)
	c := dialWS(t, wsURL(h), "/ws", tok)
	expectClose(t, c, 4408, "max-lifetime", 5*time.Second)
	testwait.Eventually(t, "the max-lifetime close is counted", func() bool {
		return metric(t, h.adminURL, `sessiongate_long_lived_connections_closed_total{kind="websocket",reason="max-lifetime"}`) == 1
	})
}

func TestReloadChangesConnectionLimits(t *testing.T) {
	t.Parallel()
	up := upstream(t, wsApp(nil))
	g := startOps(t, opsOptions{yaml: "upstream: " + up + "\n"})
	proxyURL := "ws://" + g.addr
	tok := g.inst.MustMint(t, clerktest.WithSession(g.inst.CreateSession("")))
	before := dialWS(t, proxyURL, "/ws", tok)

	g.rewrite(t, "upstream: "+up+"\nconnections: {recheck_interval: 1s, max_lifetime: 200ms}\n")
	if err := g.app.Reload("test"); err != nil {
		t.Fatalf("a reload of the connections block was refused: %v", err)
	}
	after := dialWS(t, proxyURL, "/ws", tok)
	expectClose(t, after, 4408, "max-lifetime", 5*time.Second)
	// The connection opened before the reload keeps the bound it had (none).
	if err := before.WriteMessage(wstest.OpText, []byte("still")); err != nil {
		t.Fatal(err)
	}
	if f, err := before.ReadFrame(); err != nil || string(f.Payload) != "still" {
		t.Fatalf("the WebSocket opened before the reload was closed: %v", err)
	}
}

// TestGracefulShutdownClosesWebSockets (not parallel: it counts the
// process's goroutines): cancelling Serve sends every WebSocket a 1001
// close frame, cuts event streams, returns well within the drain bound,
// and leaves no goroutine of theirs behind.
func TestGracefulShutdownClosesWebSockets(t *testing.T) {
	const drain = 30 * time.Second
	closes := make(chan wstest.Frame, 8)
	h := start(t, func(c *config.Config, _ *clerktest.Instance) { c.Server.ShutdownTimeout = config.Duration(drain) }, wsApp(closes))
	h.waitReady(t, 200)
	_, tok := session(t, h.inst)
	dialWS(t, wsURL(h), "/ws", tok).Close() // warm up
	baseline := testwait.SettledGoroutines()

	var conns []*wstest.Conn
	for range 3 {
		conns = append(conns, dialWS(t, wsURL(h), "/ws", tok))
	}
	sse := openSSE(t, h.proxyURL+"/sse", tok)
	start := time.Now()
	h.cancel()
	for _, c := range conns {
		expectClose(t, c, 1001, "shutdown", drain/3)
	}
	expectCut(t, sse, drain/3)
	select {
	case err := <-h.done:
		h.done <- err // for the harness's cleanup
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(drain / 3): // well within the drain bound, with room for a loaded machine
		t.Fatal("Serve did not return: upgraded connections held the shutdown")
	}
	t.Logf("shutdown with 3 WebSockets and a stream took %v", time.Since(start))
	for range conns {
		select {
		case f := <-closes:
			if code, _ := f.CloseCode(); code != 1001 {
				t.Errorf("the upstream got close %d, want 1001", code)
			}
		case <-time.After(testwait.Generous):
			t.Error("an upstream got no close frame")
		}
	}
	testwait.GoroutinesAtMost(t, baseline+2, fmt.Sprintf("baseline %d before the connections", baseline))
}

// A WebSocket opened with an API key is re-verified every interval through
// the machine-credential cache: revoked at Clerk, it is closed with the
// revocation's reason once the cached verdict expires; a WebSocket of
// another key stays open.
func TestWebSocketOfARevokedAPIKeyIsClosed(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{{Path: "/", Accepts: []string{"api_key"}}}
		c.Cache.MachineTTL = config.Duration(100 * time.Millisecond)
		c.Connections.RecheckInterval = config.Duration(100 * time.Millisecond)
	}, wsApp(nil))
	h.waitReady(t, 200)
	id, key := h.inst.CreateAPIKey(clerktest.APIKeyOptions{Subject: "user_ws"})
	_, other := h.inst.CreateAPIKey(clerktest.APIKeyOptions{Subject: "user_other"})
	c := dialWS(t, wsURL(h), "/ws", key)
	keep := dialWS(t, wsURL(h), "/ws", other)
	if err := h.inst.RevokeMachineCredential(id, "compromised"); err != nil {
		t.Fatal(err)
	}
	took := expectClose(t, c, 4401, "machine-token-revoked", testwait.Generous)
	t.Logf("closed %v after the API key was revoked at Clerk (machine_ttl 100ms, recheck_interval 100ms)", took)
	if err := keep.WriteMessage(wstest.OpText, []byte("still")); err != nil {
		t.Fatal(err)
	}
	if f, err := keep.ReadFrame(); err != nil || string(f.Payload) != "still" {
		t.Fatalf("another key's WebSocket was disturbed: %v", err)
	}
	testwait.Eventually(t, "the metrics count the close", func() bool {
		return metric(t, h.adminURL, `sessiongate_long_lived_connections_closed_total{kind="websocket",reason="machine-token-revoked"}`) == 1
	})
}
