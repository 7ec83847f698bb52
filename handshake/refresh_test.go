package handshake_test

// The __refresh flow. An expired session token with the Frontend
// API's refresh token on a GET is renewed through the Backend API without a
// redirect; a refusal falls back to the handshake with Clerk's reason; only
// the instance's own token, within the Backend API budget, buys a call.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// stubRefresher records refreshes and answers with answer.
type stubRefresher struct {
	mu     sync.Mutex
	calls  []refreshCall
	answer func(sid string, r handshake.RefreshRequest) ([]string, error)
}

type refreshCall struct {
	sid string
	req handshake.RefreshRequest
}

func (s *stubRefresher) RefreshSession(_ context.Context, sid string, r handshake.RefreshRequest) ([]string, error) {
	s.mu.Lock()
	s.calls = append(s.calls, refreshCall{sid, r})
	answer := s.answer
	s.mu.Unlock()
	return answer(sid, r)
}

func (s *stubRefresher) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// newRefreshEnv is a production env with a Refresher and the Gate factory.
func newRefreshEnv(t *testing.T, rf handshake.Refresher, mutate func(*handshake.Config)) *env {
	t.Helper()
	var e *env
	e = newEnv(t, func(c *handshake.Config) {
		c.Refresher = rf
		c.GateAt = func(at time.Time) (*middleware.Gate, error) {
			return middleware.New(middleware.Config{Issuer: issuer, Keys: jwks.NewMemory(e.inst.PublicKeys()...),
				Now: func() time.Time { return at }, TokenCacheSize: -1})
		}
		if mutate != nil {
			mutate(c)
		}
	})
	return e
}

func TestRefreshFlow(t *testing.T) {
	_, foreignKey := keys(t)
	R := "__refresh_" + suffix
	for _, tc := range []struct {
		name string
		// expired: the session cookie (nil: a genuine expired token).
		expired func(e *env) string
		method  string
		hdr     map[string]string
		cookies []kv
		answer  func(e *env) ([]string, error)
		// signedIn: refreshed; else a handshake with reason (or, for a
		// request that cannot redirect, signed out).
		signedIn bool
		reason   string
		calls    int
		// suffixed: the session in the suffixed cookies.
		suffixed bool
	}{
		{name: "a navigation is refreshed without a redirect", hdr: nav, cookies: []kv{{R, "rt_1"}}, signedIn: true, calls: 1},
		{name: "a fetch too (its only renewal)", hdr: fetchHdr, cookies: []kv{{R, "rt_1"}}, signedIn: true, calls: 1},
		{name: "a POST is not eligible", method: "POST", hdr: nav, cookies: []kv{{R, "rt_1"}},
			reason: "session-token-expired-refresh-non-eligible-non-get"},
		{name: "no refresh cookie", hdr: nav, reason: "session-token-expired-refresh-non-eligible-no-refresh-cookie"},
		{name: "the refresh cookie is always suffixed", hdr: nav, cookies: []kv{{"__refresh", "rt_1"}},
			reason: "session-token-expired-refresh-non-eligible-no-refresh-cookie"},
		{name: "Clerk refuses (401 with its code): the handshake says why", hdr: nav, cookies: []kv{{R, "rt_1"}}, calls: 1,
			answer: func(*env) ([]string, error) {
				return nil, &handshake.RefreshError{Code: "refresh_token_invalid"}
			}, reason: "session-token-expired-refresh-refresh_token_invalid"},
		{name: "Clerk's unexpected_error is fetch-error", hdr: nav, cookies: []kv{{R, "rt_1"}}, calls: 1,
			answer: func(*env) ([]string, error) { return nil, &handshake.RefreshError{Code: "unexpected_error"} },
			reason: "session-token-expired-refresh-fetch-error"},
		{name: "a code that is not an identifier is not echoed", hdr: nav, cookies: []kv{{R, "rt_1"}}, calls: 1,
			answer: func(*env) ([]string, error) { return nil, &handshake.RefreshError{Code: "x\r\nSet-Cookie: a=b"} },
			reason: "session-token-expired-refresh-unexpected-bapi-error"},
		{name: "the Backend API unreachable", hdr: nav, cookies: []kv{{R, "rt_1"}}, calls: 1,
			answer: func(*env) ([]string, error) { return nil, errors.New("dial tcp: connection refused") },
			reason: "session-token-expired-refresh-unexpected-bapi-error"},
		{name: "a forged expired token buys no call", hdr: nav, cookies: []kv{{R, "rt_1"}},
			expired: func(e *env) string {
				return e.mint(t, clerktest.WithIssuedAt(e.clk.Now().Add(-2*time.Minute)), clerktest.WithSigningKey(foreignKey))
			}, reason: "session-token-expired-refresh-invalid-session-token"},
		{name: "an expired token of another issuer buys no call", hdr: nav, cookies: []kv{{R, "rt_1"}}, suffixed: true,
			expired: func(e *env) string {
				return e.inst.MustMint(t, clerktest.WithUser("user_1"), clerktest.WithIssuedAt(e.clk.Now().Add(-2*time.Minute)))
			}, reason: "session-token-expired-refresh-invalid-session-token"},
		{name: "an oversized refresh cookie buys no call", hdr: nav, cookies: []kv{{R, strings.Repeat("r", 5000)}},
			reason: "session-token-expired-refresh-unexpected-sdk-error"},
		{name: "a refreshed token that does not verify: the handshake", hdr: nav, cookies: []kv{{R, "rt_1"}}, calls: 1,
			answer: func(e *env) ([]string, error) {
				return []string{"__session=" + e.mint(t, clerktest.WithSigningKey(foreignKey)) + "; Path=/"}, nil
			}, reason: "session-token-expired-refresh-invalid-session-token"},
		{name: "an answer without a session cookie: the handshake", hdr: nav, cookies: []kv{{R, "rt_1"}}, calls: 1,
			answer: func(*env) ([]string, error) { return []string{"evil=1; Path=/"}, nil },
			reason: "session-token-expired-refresh-invalid-session-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rf := &stubRefresher{}
			e := newRefreshEnv(t, rf, nil)
			fresh := e.mint(t)
			answer := func(*env) ([]string, error) {
				return []string{"__session=" + fresh + "; Path=/", "evil=1; Path=/", "__session_" + suffix + "=" + fresh + "; Path=/"}, nil
			}
			if tc.answer != nil {
				answer = tc.answer
			}
			rf.answer = func(string, handshake.RefreshRequest) ([]string, error) { return answer(e) }
			then := e.clk.Now().Add(-2 * time.Minute)
			expired := e.mint(t, clerktest.WithIssuedAt(then))
			if tc.expired != nil {
				expired = tc.expired(e)
			}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			hdr := map[string]string{"User-Agent": "ua/1"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			S, U := "__session", "__client_uat"
			if tc.suffixed {
				S, U = S+"_"+suffix, U+"_"+suffix
			}
			cookies := append([]kv{{S, expired}, {U, itoa(then.Unix())}}, tc.cookies...)
			o := e.run(request(method, "/p?x=1", hdr, cookies...))
			if rf.count() != tc.calls {
				t.Errorf("%d refresh calls, want %d", rf.count(), tc.calls)
			}
			if tc.signedIn {
				wantSignedIn(t, o, "user_1")
				want := []string{"__session=" + fresh + "; Path=/", "__session_" + suffix + "=" + fresh + "; Path=/"}
				if !slices.Equal(o.SetCookie, want) || !o.NoStore {
					t.Errorf("SetCookie %q no-store %v", o.SetCookie, o.NoStore)
				}
				c := rf.calls[0]
				if c.sid == "" || c.req.ExpiredToken != expired || c.req.RefreshToken != "rt_1" || c.req.RequestOrigin != appURL ||
					c.req.UserAgent != "ua/1" || c.req.SuffixedCookies || c.req.ClientIP != "192.0.2.1" {
					t.Errorf("refresh request %+v %+v", c.sid, c.req)
				}
				return
			}
			if tc.hdr["Sec-Fetch-Dest"] == "empty" || method != "GET" {
				wantSignedOut(t, o, middleware.ReasonTokenExpired, tc.reason)
				return
			}
			wantRedirect(t, o, tc.reason)
		})
	}
}

// Refreshes spend the nonce exchanges' budget: a client over it falls back
// to the handshake without a call.
func TestRefreshRateLimited(t *testing.T) {
	rf := &stubRefresher{}
	e := newRefreshEnv(t, rf, func(c *handshake.Config) {
		c.NonceBurst, c.NonceRate, c.NonceClientBurst, c.NonceClientRate = 2, 0.001, 1, 0.001
	})
	fresh := e.mint(t)
	rf.answer = func(string, handshake.RefreshRequest) ([]string, error) {
		return []string{"__session=" + fresh + "; Path=/"}, nil
	}
	then := e.clk.Now().Add(-2 * time.Minute)
	expired := e.mint(t, clerktest.WithIssuedAt(then))
	var reasons []string
	for range 4 {
		o := e.run(request("GET", "/", nav, kv{"__session", expired}, kv{"__client_uat", itoa(then.Unix())}, kv{"__refresh_" + suffix, "rt"}))
		reasons = append(reasons, o.Status.String()+" "+o.ClerkReason)
	}
	if rf.count() != 1 || reasons[0] != "signed-in " || reasons[3] != "handshake session-token-expired-refresh-rate-limited" {
		t.Errorf("%d calls, outcomes %q", rf.count(), reasons)
	}
	if st := e.hs.NonceStats(); st.Refreshes != 1 || st.RefreshRateLimited != 3 {
		t.Errorf("stats %+v", st)
	}
}

// A refreshed token of a session the route's policy refuses is a final
// answer, with the refreshed cookies.
func TestRefreshPolicyRefusalIsFinal(t *testing.T) {
	rf := &stubRefresher{}
	e := newRefreshEnv(t, rf, nil)
	fresh := e.mint(t)
	rf.answer = func(string, handshake.RefreshRequest) ([]string, error) {
		return []string{"__session=" + fresh + "; Path=/"}, nil
	}
	then := e.clk.Now().Add(-2 * time.Minute)
	r := request("GET", "/", nav, kv{"__session", e.mint(t, clerktest.WithIssuedAt(then))}, kv{"__client_uat", itoa(then.Unix())}, kv{"__refresh_" + suffix, "rt"})
	revoked := middleware.Policy{Sessions: revokedChecker{}}
	o := e.hs.Authenticate(r, revoked, func() string { return appURL + "/" }, true)
	wantSignedOut(t, o, middleware.ReasonSessionRevoked, "")
	if len(o.SetCookie) != 1 {
		t.Errorf("SetCookie %q", o.SetCookie)
	}
}

type revokedChecker struct{}

func (revokedChecker) CheckSession(context.Context, *middleware.Claims) error {
	return &middleware.Error{Reason: middleware.ReasonSessionRevoked, Message: "revoked"}
}
