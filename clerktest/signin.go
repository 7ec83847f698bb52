package clerktest

import (
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/netutil"
)

// Paths of the hosted sign-in pages and the dev token endpoint.
const (
	// SignInPath is the hosted sign-in page, the fake's stand-in for Clerk's
	// Account Portal: GET serves a form, POST signs in and redirects to
	// redirect_url with the __session, __client_uat and __client cookies set.
	SignInPath = "/sign-in"
	// SignOutPath clears the __session, __client_uat and __client cookies,
	// ends the browser's session and redirects to redirect_url.
	SignOutPath = "/sign-out"
	// TestingTokensPath mints a session token on request (behind the secret
	// key). It is the fake's own endpoint, not a Clerk Backend API one:
	// `sessiongate dev token` calls it.
	TestingTokensPath = "/v1/testing/tokens"
)

// DemoUserID is the user id the sign-in form is prefilled with.
const DemoUserID = "user_demo"

// Cookie names the sign-in page sets, as Clerk's Frontend API does on the
// application's domain.
const (
	SessionCookie   = clerkwire.SessionCookie   // "__session"
	ClientUATCookie = clerkwire.ClientUATCookie // "__client_uat"
)

// maxTokenRequestBytes bounds the JSON body of TestingTokensPath.
const maxTokenRequestBytes = 64 << 10

// SignInURL returns the URL of the hosted sign-in page that sends the browser
// back to redirectURL once signed in. redirectURL must be an absolute http(s)
// URL on a loopback host or "localhost", or the page answers 400.
func (i *Instance) SignInURL(redirectURL string) string {
	return i.url + SignInPath + "?redirect_url=" + url.QueryEscape(redirectURL)
}

// SignOutURL returns the URL that clears the session cookies and sends the
// browser back to redirectURL (same rules as SignInURL).
func (i *Instance) SignOutURL(redirectURL string) string {
	return i.url + SignOutPath + "?redirect_url=" + url.QueryEscape(redirectURL)
}

// signInRoutes registers the hosted pages and the token endpoint.
//
// About the cookies: the sign-in page sets __session and __client_uat without
// a Domain attribute, so they are host-only cookies of the fake's host
// (127.0.0.1). Cookies are not isolated by port (RFC 6265 §8.5): a browser
// sends them to every port of that host, which is how the gate, listening on
// another port of 127.0.0.1, receives __session after the redirect. Use the
// same host name for the fake and the gate (both 127.0.0.1, or both
// localhost), or the cookie never reaches the gate.
//
// The pages have no CSRF protection and no password: anyone who can reach the
// fake can sign in as anyone. That is why the fake only listens on loopback.
func (i *Instance) signInRoutes() {
	i.mux.Handle("GET "+SignInPath, i.frontendAPI(i.serveSignInForm))
	i.mux.Handle("POST "+SignInPath, i.frontendAPI(i.serveSignIn))
	i.mux.Handle("GET "+SignOutPath, i.frontendAPI(i.serveSignOut))
	i.mux.Handle("GET "+HandshakePath, i.frontendAPI(i.serveHandshake))
	i.mux.Handle("POST "+DevBrowserPath, i.frontendAPI(i.serveDevBrowser))
	i.mux.Handle("GET "+SatelliteSyncPath, i.frontendAPI(i.serveSatelliteSync))
	i.mux.Handle("POST "+SessionsPath+"/{id}/refresh", i.apiHandler(i.serveSessionRefresh)) // refresh.go
	i.mux.HandleFunc("POST "+TestingTokensPath, i.serveTestingToken)
}

var signInPage = template.Must(template.New("sign-in").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sign in — fake Clerk</title>
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input{width:100%;padding:.4rem;box-sizing:border-box;font:inherit}
button{margin-top:1.2rem;padding:.5rem 1.2rem;font:inherit}
.note{color:#666;font-size:.9em}
</style>
</head>
<body>
<h1>Sign in</h1>
<p class="note">This is sessiongate's fake Clerk instance: no password, any user id. It sets the
<code>__session</code> cookie on this host and returns you to <code>{{.RedirectURL}}</code>.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="redirect_url" value="{{.RedirectURL}}">
{{- if .DevBrowser}}
<input type="hidden" name="__clerk_db_jwt" value="{{.DevBrowser}}">
{{- end}}
<label for="user_id">User id</label>
<input id="user_id" name="user_id" value="{{.UserID}}" required>
<label for="org_id">Organization id (optional)</label>
<input id="org_id" name="org_id" placeholder="org_456">
<label for="org_role">Organization role (optional, default admin)</label>
<input id="org_role" name="org_role" placeholder="admin">
<label for="org_slug">Organization slug (optional)</label>
<input id="org_slug" name="org_slug" placeholder="acme">
<label for="features">Billing features, fea (optional, comma-separated)</label>
<input id="features" name="features" placeholder="u:export, o:analytics">
<label for="plan">Billing plan, pla (optional)</label>
<input id="plan" name="plan" placeholder="u:pro">
<label for="fva">Factor verification age, fva (minutes since first, second factor; -1: none)</label>
<input id="fva" name="fva" placeholder="0, -1">
<label for="claims">Custom claims (optional JSON object, as a session-token template adds)</label>
<textarea id="claims" name="claims" rows="3" style="width:100%;box-sizing:border-box;font:inherit" placeholder='{"email": "ada@example.com"}'></textarea>
<button type="submit">Sign in</button>
</form>
</body>
</html>
`))

// serveSignInForm serves the sign-in form, or, like Clerk's Account
// Portal, sends a browser that is signed in already straight back to
// redirect_url (on a development instance with its dev-browser token).
func (i *Instance) serveSignInForm(w http.ResponseWriter, r *http.Request) {
	redirect, err := checkRedirectURL(r.URL.Query().Get("redirect_url"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	dev := ""
	if i.frontend.development {
		if t := r.URL.Query().Get(DevBrowserCookie); t != "" {
			if _, known := i.frontend.devBrowserClient(t); known {
				dev = t
			}
		}
		if dev != "" && i.devSignedIn(dev) {
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, withParam(redirect, DevBrowserCookie, dev), http.StatusSeeOther)
			return
		}
	} else if _, signedIn := i.activeClient(r); signedIn {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = signInPage.Execute(w, struct{ Action, RedirectURL, UserID, DevBrowser string }{
		Action: SignInPath, RedirectURL: redirect, UserID: DemoUserID, DevBrowser: dev,
	})
}

func (i *Instance) serveSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	redirect, err := checkRedirectURL(r.PostForm.Get("redirect_url"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := tokenRequest{
		UserID:   strings.TrimSpace(r.PostForm.Get("user_id")),
		OrgID:    strings.TrimSpace(r.PostForm.Get("org_id")),
		OrgRole:  strings.TrimSpace(r.PostForm.Get("org_role")),
		OrgSlug:  strings.TrimSpace(r.PostForm.Get("org_slug")),
		Features: strings.TrimSpace(r.PostForm.Get("features")),
		Plan:     strings.TrimSpace(r.PostForm.Get("plan")),
	}
	if v := strings.TrimSpace(r.PostForm.Get("fva")); v != "" {
		a, b, ok := strings.Cut(v, ",")
		x, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		y, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if !ok || err1 != nil || err2 != nil {
			http.Error(w, "fva: want two integers, e.g. 0, -1", http.StatusBadRequest)
			return
		}
		req.FactorAge = &[2]int64{x, y}
	}
	if v := strings.TrimSpace(r.PostForm.Get("claims")); v != "" {
		if err := json.Unmarshal([]byte(v), &req.Claims); err != nil {
			http.Error(w, "claims: want a JSON object: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	if p := req.problem(); p != nil {
		http.Error(w, p.param+": "+p.msg, http.StatusBadRequest)
		return
	}
	dev := ""
	if i.frontend.development {
		// The dev browser the application sent (a new one otherwise) goes
		// back to it in the URL, signed in: its handshake syncs from it.
		dev = i.frontend.knownDevBrowser(r.PostForm.Get(DevBrowserCookie))
		redirect = withParam(redirect, DevBrowserCookie, dev)
	}
	if err := i.signInBrowser(w, req, dev); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, redirect, http.StatusSeeOther)
}

func (i *Instance) serveSignOut(w http.ResponseWriter, r *http.Request) {
	redirect, err := checkRedirectURL(r.URL.Query().Get("redirect_url"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	i.signOutBrowser(w, r)
	for _, name := range []string{SessionCookie, ClientUATCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, redirect, http.StatusSeeOther)
}

// checkRedirectURL accepts only absolute http(s) URLs on a loopback host or
// "localhost": the sign-in pages MUST NOT be an open redirect.
func checkRedirectURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("redirect_url is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("redirect_url is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("redirect_url must be an absolute http or https URL")
	}
	if u.User != nil {
		return "", errors.New("redirect_url must not carry user information")
	}
	host := u.Hostname()
	if host == "" {
		return "", errors.New("redirect_url has no host")
	}
	if !netutil.IsLoopbackHost(host) {
		return "", errors.New("redirect_url must point to a loopback address or localhost")
	}
	return u.String(), nil
}

// tokenRequest is the body of TestingTokensPath, and the sign-in form.
type tokenRequest struct {
	UserID          string `json:"user_id"`
	OrgID           string `json:"org_id"`
	OrgRole         string `json:"org_role"`
	OrgSlug         string `json:"org_slug"`
	LifetimeSeconds int64  `json:"lifetime_seconds"`
	// Features is fea's user and org features, comma-separated ("u:export,
	// o:analytics"; a name without a scope is a user feature).
	Features string `json:"features"`
	// Plan is pla ("u:pro", "o:enterprise").
	Plan string `json:"plan"`
	// FactorAge is fva: minutes since the first and the second factor were
	// verified, -1 for none. Nil: Clerk's default for a fresh sign-in.
	FactorAge *[2]int64 `json:"fva"`
	// Claims are custom claims, as a session-token template adds them; a
	// standard claim's name is refused.
	Claims map[string]any `json:"claims"`
}

type paramProblem struct{ param, msg string }

// maxIDLen bounds ids and slugs: they end up in headers and cookies.
const maxIDLen = 128

func (t *tokenRequest) problem() *paramProblem {
	if t.UserID == "" {
		return &paramProblem{"user_id", "is missing"}
	}
	for _, f := range []struct{ name, v string }{
		{"user_id", t.UserID}, {"org_id", t.OrgID}, {"org_role", t.OrgRole}, {"org_slug", t.OrgSlug},
	} {
		if len(f.v) > maxIDLen {
			return &paramProblem{f.name, "is longer than " + strconv.Itoa(maxIDLen) + " characters"}
		}
		for _, c := range f.v {
			if c <= ' ' || c == 0x7f || c == ',' || c == ';' || c == '"' || c == '\\' {
				return &paramProblem{f.name, "may only contain printable characters other than space , ; \" \\"}
			}
		}
	}
	for _, f := range []struct{ name, v string }{{"features", t.Features}, {"plan", t.Plan}} {
		if len(f.v) > 1024 {
			return &paramProblem{f.name, "is longer than 1024 characters"}
		}
		for _, c := range f.v {
			if c < ' ' || c == 0x7f || c == ';' || c == '"' || c == '\\' {
				return &paramProblem{f.name, "may only contain printable characters other than ; \" \\"}
			}
		}
	}
	if a := t.FactorAge; a != nil && (a[0] < -1 || a[1] < -1) {
		return &paramProblem{"fva", "ages are minutes, or -1 for no factor of that kind"}
	}
	for name := range t.Claims {
		if reservedClaims[name] {
			return &paramProblem{"claims", name + " is a claim Clerk sets itself"}
		}
	}
	if t.OrgID == "" && (t.OrgRole != "" || t.OrgSlug != "") {
		return &paramProblem{"org_id", "is required with org_role or org_slug"}
	}
	if t.LifetimeSeconds < 0 {
		return &paramProblem{"lifetime_seconds", "must not be negative"}
	}
	if t.LifetimeSeconds > int64(24*time.Hour/time.Second) {
		return &paramProblem{"lifetime_seconds", "must be at most 86400 (24 h)"}
	}
	return nil
}

// options are the Mint options of the request: a new session of the user,
// the org (role "admin" by default) and the lifetime (the instance's when 0).
func (t *tokenRequest) options() []TokenOption {
	opts := []TokenOption{WithUser(t.UserID)}
	if t.OrgID != "" {
		role := t.OrgRole
		if role == "" {
			role = "admin"
		}
		opts = append(opts, WithOrg(Org{ID: t.OrgID, Slug: t.OrgSlug, Role: role}))
	}
	if t.LifetimeSeconds > 0 {
		opts = append(opts, WithLifetime(time.Duration(t.LifetimeSeconds)*time.Second))
	}
	if t.Features != "" {
		var fs []string
		for _, f := range strings.Split(t.Features, ",") {
			if f = strings.TrimSpace(f); f != "" {
				fs = append(fs, f)
			}
		}
		opts = append(opts, WithUserFeatures(fs...))
	}
	if t.Plan != "" {
		opts = append(opts, WithPlan(t.Plan))
	}
	if t.FactorAge != nil {
		opts = append(opts, WithFactorVerificationAge(t.FactorAge[0], t.FactorAge[1]))
	}
	names := make([]string, 0, len(t.Claims))
	for name := range t.Claims {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		opts = append(opts, WithClaim(name, t.Claims[name]))
	}
	return opts
}

// reservedClaims are the claims Clerk sets in every session token; custom
// claims may not replace them (Clerk refuses such templates too).
var reservedClaims = map[string]bool{
	"azp": true, "exp": true, "iat": true, "iss": true, "jti": true, "nbf": true, "sid": true, "sub": true,
	"v": true, "fva": true, "fea": true, "pla": true, "sts": true, "o": true, "act": true,
	"org_id": true, "org_slug": true, "org_role": true, "org_permissions": true,
}

func (i *Instance) serveTestingToken(w http.ResponseWriter, r *http.Request) {
	if !i.authorized(r) {
		writeAuthInvalid(w)
		return
	}
	var req tokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxTokenRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeClerkError(w, http.StatusBadRequest, "request_body_invalid",
			"Request body invalid", "The request body is not a valid JSON object of the expected fields: "+err.Error())
		return
	}
	if p := req.problem(); p != nil {
		code := "form_param_value_invalid"
		if p.msg == "is missing" {
			code = "form_param_missing"
		}
		writeClerkError(w, http.StatusUnprocessableEntity, code, p.param+" "+p.msg, p.param+" "+p.msg)
		return
	}
	tok, err := i.Mint(req.options()...)
	if err != nil {
		writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error", "Something went wrong", err.Error())
		return
	}
	body, _ := json.Marshal(struct {
		Object string `json:"object"`
		JWT    string `json:"jwt"`
	}{"token", tok})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}
