package proxy

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/middleware"
)

// Handshake runs the browser cookie path of a route: Clerk's suffixed and
// unsuffixed cookies, __client_uat, and the handshake redirect and its
// return trip. *handshake.Handshaker implements it. It is consulted only for
// requests without an Authorization Bearer token: a Bearer token never
// triggers a handshake (docs/browser-sessions.md).
type Handshake interface {
	// Authenticate decides r under policy p. publicURL builds the
	// redirect_url; mayRedirect is false on forward-auth.
	Authenticate(r *http.Request, p middleware.Policy, publicURL func() string, mayRedirect bool) *handshake.Outcome
}

var _ Handshake = (*handshake.Handshaker)(nil)

// ReasonHandshake is the Event reason of a request answered with the
// handshake redirect (it is not a rejection).
const ReasonHandshake middleware.Reason = "handshake"

// verifyRequest is the verification step of authenticate: the route's
// Handshake for cookie requests when it has one, the Gate otherwise. Cookies
// the handshake sets are added to w's header here, so that they ride on
// whatever response follows (the upstream's, a rejection, the sign-in
// redirect, the forward-auth answer). redirected means the handshake
// answered (its redirect, or a development handshake's failure) and the
// request is done.
func (p *Proxy) verifyRequest(w http.ResponseWriter, r *http.Request, rt *route, st *state, forwardAuth bool) (a *middleware.Auth, redirected bool, err error) {
	vstart := time.Now()
	defer func() { st.verify = time.Since(vstart) }()
	// Machine credentials come only as Bearer, and a route that takes no
	// session token has no browser session to renew: the Gate decides.
	if rt.Handshake == nil || bearerRequest(r) || !rt.Policy.AcceptsType(middleware.SessionToken) {
		a, err = p.gate.AuthenticateAny(r, rt.Policy)
		return a, false, err
	}
	o := rt.Handshake.Authenticate(r, rt.Policy, func() string { return p.publicURL(r, st) }, !forwardAuth)
	switch o.Status {
	case handshake.Redirect:
		st.reason = ReasonHandshake
		o.WriteRedirect(w)
		return nil, true, nil
	case handshake.Failed:
		p.writeHandshakeFailure(w, o, st)
		return nil, true, nil
	case handshake.SignedIn:
		addCookies(w.Header(), o, st)
		forwardDirectives(r.Header, o.SetCookie, time.Now())
		return &middleware.Auth{Type: middleware.SessionToken, Session: o.Claims}, false, nil
	default:
		addCookies(w.Header(), o, st)
		forwardDirectives(r.Header, o.SetCookie, time.Now())
		if o.Err == nil {
			return nil, false, &middleware.Error{Reason: middleware.ReasonTokenInvalid, Message: "the session could not be established"}
		}
		return nil, false, o.Err
	}
}

// addCookies puts the outcome's cookies on the response header. Cache-Control
// is left to the answer that follows: the rejections and the forward-auth
// answer always say no-store, and modifyResponse overrides the upstream's
// (ReverseProxy adds the upstream's headers to these, so setting it here
// would send it twice).
func addCookies(h http.Header, o *handshake.Outcome, st *state) {
	for _, c := range o.SetCookie {
		h.Add("Set-Cookie", c)
	}
	st.noStore = o.NoStore
}

// forwardDirectives makes the Cookie header sent upstream what the browser
// will send once it has applied the directives: a cookie a directive sets
// replaces the browser's (or is added), one it deletes or empties is removed.
// On the return trip of a handshake the browser still sends its expired
// __session; an upstream that reads the cookie itself sees the new token,
// consistent with the identity headers. Domain and Path are not modelled.
func forwardDirectives(h http.Header, directives []string, now time.Time) {
	if len(directives) == 0 {
		return
	}
	set := map[string]string{}
	touched := map[string]bool{}
	for _, d := range directives {
		c, err := http.ParseSetCookie(d)
		if err != nil {
			continue
		}
		touched[c.Name] = true
		if c.Value == "" || c.MaxAge < 0 || (!c.Expires.IsZero() && !c.Expires.After(now)) {
			delete(set, c.Name)
			continue
		}
		set[c.Name] = c.Value
	}
	removeCookies(h, func(name string) bool { return touched[name] })
	if len(set) == 0 {
		return
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names)+1)
	if v := h.Get("Cookie"); v != "" {
		parts = append(parts, v)
	}
	for _, n := range names {
		parts = append(parts, n+"="+set[n])
	}
	h.Set("Cookie", strings.Join(parts, "; "))
}

// bearerRequest reports a request whose token comes from the Authorization
// header (or that has several Authorization headers, which the Gate refuses).
func bearerRequest(r *http.Request) bool {
	_, src, _ := middleware.ExtractToken(r)
	return src == middleware.SourceHeader
}

// modifyResponse marks an upstream response not storable when the handshake
// set session cookies on it (the cookies themselves were put on the
// ResponseWriter before proxying; ReverseProxy appends the upstream's
// Set-Cookie headers after them).
func (p *Proxy) modifyResponse(res *http.Response) error {
	if res.Request == nil {
		return nil
	}
	if st := stateOf(res.Request.Context()); st != nil && st.noStore {
		res.Header.Set("Cache-Control", "no-store")
	}
	return nil
}

// stripClerkCookies removes from the upstream request the cookies that are
// Clerk's business only: the handshake payload, its nonce and the redirect
// counter on every route; with forwardToken false also the refresh token
// (__refresh, __refresh_<suffix>), a credential like the session cookies,
// which stripSessionCookies removes. __client_uat is kept: it is a
// timestamp, not a credential.
func stripClerkCookies(h http.Header, forwardToken bool) {
	removeCookies(h, func(name string) bool {
		switch name {
		case handshake.HandshakeCookie, handshake.HandshakeNonceCookie, handshake.RedirectCountCookie:
			return true
		case handshake.RefreshCookie:
			return !forwardToken
		}
		return !forwardToken && strings.HasPrefix(name, handshake.RefreshCookie+"_")
	})
}

// removeCookies rewrites the Cookie header without the cookies drop
// matches, keeping every other one as it was.
func removeCookies(h http.Header, drop func(name string) bool) {
	vals := h["Cookie"]
	if len(vals) == 0 {
		return
	}
	var kept []string
	changed := false
	for _, line := range vals {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, _, _ := strings.Cut(part, "=")
			if drop(strings.TrimSpace(name)) {
				changed = true
				continue
			}
			kept = append(kept, part)
		}
	}
	if !changed {
		return
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}
