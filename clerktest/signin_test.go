package clerktest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// noRedirect is a client that returns redirects instead of following them.
func noRedirect() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func postForm(t *testing.T, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func getURL(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSignInURL(t *testing.T) {
	i := start(t, Options{})
	got := i.SignInURL("http://127.0.0.1:8080/a?b=c&d")
	want := i.URL() + "/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A8080%2Fa%3Fb%3Dc%26d"
	if got != want {
		t.Errorf("SignInURL = %q, want %q", got, want)
	}
	if got, want := i.SignOutURL("http://localhost/"), i.URL()+"/sign-out?redirect_url=http%3A%2F%2Flocalhost%2F"; got != want {
		t.Errorf("SignOutURL = %q, want %q", got, want)
	}
}

func TestCheckRedirectURL(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"http://127.0.0.1:8080/", true},
		{"https://127.0.0.1/x?y=1#f", true},
		{"http://localhost:3000/", true},
		{"http://LOCALHOST/", true},
		{"http://[::1]:8080/", true},
		{"http://127.1.2.3/", true},
		{"", false},
		{"/relative", false},
		{"//evil.example/", false},
		{"https://evil.example/", false},
		{"http://127.0.0.1.evil.example/", false},
		{"http://localhost.evil.example/", false},
		{"http://0.0.0.0/", false},
		{"http://10.0.0.1/", false},
		{"javascript:alert(1)", false},
		{"ftp://127.0.0.1/", false},
		{"http://user:pw@127.0.0.1/", false},
		{"http://%zz/", false},
	} {
		_, err := checkRedirectURL(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("checkRedirectURL(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestSignInForm(t *testing.T) {
	i := start(t, Options{})
	redirect := `http://127.0.0.1:8080/"><script>alert(1)</script>`
	resp, body := getURL(t, i.SignInURL(redirect))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, want := range []string{`name="user_id" value="user_demo"`, `action="/sign-in"`, `method="post"`, `name="org_id"`, `name="org_role"`} {
		if !strings.Contains(body, want) {
			t.Errorf("form lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Errorf("redirect_url not escaped:\n%s", body)
	}

	for _, bad := range []string{"https://evil.example/", ""} {
		resp, _ := getURL(t, i.URL()+"/sign-in?redirect_url="+url.QueryEscape(bad))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET sign-in redirect_url=%q: status %d, want 400", bad, resp.StatusCode)
		}
	}
}

func TestSignInPost(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	i := start(t, Options{Now: func() time.Time { return now }, AuthorizedParty: "http://127.0.0.1:8080"})
	for _, tc := range []struct {
		name     string
		form     url.Values
		status   int
		sub, org string
		role     string
	}{
		{"demo user", url.Values{"user_id": {"user_demo"}}, http.StatusSeeOther, "user_demo", "", ""},
		{"org default role", url.Values{"user_id": {"user_1"}, "org_id": {"org_2"}}, http.StatusSeeOther, "user_1", "org_2", "admin"},
		{"org role slug", url.Values{"user_id": {"user_1"}, "org_id": {"org_2"}, "org_role": {"org:member"}, "org_slug": {"acme"}}, http.StatusSeeOther, "user_1", "org_2", "member"},
		{"no user", url.Values{"user_id": {" "}}, http.StatusBadRequest, "", "", ""},
		{"role without org", url.Values{"user_id": {"u"}, "org_role": {"admin"}}, http.StatusBadRequest, "", "", ""},
		{"bad char", url.Values{"user_id": {"u;x"}}, http.StatusBadRequest, "", "", ""},
		{"open redirect", url.Values{"user_id": {"u"}, "redirect_url": {"https://evil.example/"}}, http.StatusBadRequest, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := tc.form
			if _, ok := form["redirect_url"]; !ok {
				form.Set("redirect_url", "http://127.0.0.1:8080/back?x=1")
			}
			resp, body := postForm(t, i.URL()+SignInPath, form)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != http.StatusSeeOther {
				if len(resp.Cookies()) != 0 {
					t.Errorf("cookies set on failure: %v", resp.Cookies())
				}
				return
			}
			if loc := resp.Header.Get("Location"); loc != "http://127.0.0.1:8080/back?x=1" {
				t.Errorf("Location = %q", loc)
			}
			sc := cookieNamed(resp, SessionCookie)
			uat := cookieNamed(resp, ClientUATCookie)
			if sc == nil || uat == nil {
				t.Fatalf("cookies = %v", resp.Header.Values("Set-Cookie"))
			}
			for _, c := range []*http.Cookie{sc, uat} {
				if c.Path != "/" || c.Domain != "" || c.HttpOnly || c.Secure || c.SameSite != http.SameSiteLaxMode || c.MaxAge != 0 {
					t.Errorf("cookie %s attributes: %q", c.Name, c.Raw)
				}
			}
			if uat.Value != strconv.FormatInt(now.Unix(), 10) {
				t.Errorf("__client_uat = %q", uat.Value)
			}
			p := parseToken(t, sc.Value)
			if got := p.str(t, p.claims, "sub"); got != tc.sub {
				t.Errorf("sub = %q, want %q", got, tc.sub)
			}
			if got := p.str(t, p.claims, "azp"); got != "http://127.0.0.1:8080" {
				t.Errorf("azp = %q", got)
			}
			if err := p.verifyRS256(&i.SigningKey().Private.PublicKey); err != nil {
				t.Errorf("signature: %v", err)
			}
			sid := p.str(t, p.claims, "sid")
			if s, ok := i.sessions.get(sid); !ok || s.UserID != tc.sub || s.Status != statusActive {
				t.Errorf("session %s recorded = %+v, %v", sid, s, ok)
			}
			if tc.org != "" {
				var o struct {
					ID  string `json:"id"`
					Rol string `json:"rol"`
				}
				if err := json.Unmarshal(p.claims["o"], &o); err != nil || o.ID != tc.org || o.Rol != tc.role {
					t.Errorf("o = %s (%v), want id %s rol %s", p.claims["o"], err, tc.org, tc.role)
				}
			}
		})
	}

	// Two sign-ins of one user are two sessions.
	a, _ := postForm(t, i.URL()+SignInPath, url.Values{"user_id": {"u"}, "redirect_url": {"http://localhost/"}})
	b, _ := postForm(t, i.URL()+SignInPath, url.Values{"user_id": {"u"}, "redirect_url": {"http://localhost/"}})
	pa, pb := parseToken(t, cookieNamed(a, SessionCookie).Value), parseToken(t, cookieNamed(b, SessionCookie).Value)
	if pa.str(t, pa.claims, "sid") == pb.str(t, pb.claims, "sid") {
		t.Error("two sign-ins share a session")
	}
}

func TestSignOut(t *testing.T) {
	i := start(t, Options{})
	resp, body := getURL(t, i.SignOutURL("http://127.0.0.1:8080/"))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "http://127.0.0.1:8080/" {
		t.Fatalf("status %d Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	for _, name := range []string{SessionCookie, ClientUATCookie} {
		c := cookieNamed(resp, name)
		if c == nil || c.MaxAge >= 0 || c.Value != "" || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %s not cleared: %v", name, c)
		} else if !strings.Contains(c.Raw, "Max-Age=0") {
			t.Errorf("cookie %s: %q lacks Max-Age=0", name, c.Raw)
		}
	}
	resp, _ = getURL(t, i.URL()+SignOutPath+"?redirect_url="+url.QueryEscape("https://evil.example/"))
	if resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
		t.Errorf("open redirect: status %d cookies %v", resp.StatusCode, resp.Cookies())
	}
}

func TestTestingTokens(t *testing.T) {
	i := start(t, Options{SecretKey: "sk_test_x", TokenLifetime: time.Minute})
	post := func(t *testing.T, auth, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, i.URL()+TestingTokensPath, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Content-Type", "application/json")
		return do(t, req)
	}
	for _, tc := range []struct {
		name, auth, body string
		status           int
		code             string
		lifetime         int64
	}{
		{"ok", "Bearer sk_test_x", `{"user_id":"user_123"}`, 200, "", 60},
		{"lifetime and org", "Bearer sk_test_x", `{"user_id":"user_123","org_id":"org_456","org_role":"admin","org_slug":"acme","lifetime_seconds":3600}`, 200, "", 3600},
		{"no auth", "", `{"user_id":"u"}`, 401, "authentication_invalid", 0},
		{"wrong key", "Bearer sk_test_y", `{"user_id":"u"}`, 401, "authentication_invalid", 0},
		{"basic scheme", "Basic sk_test_x", `{"user_id":"u"}`, 401, "authentication_invalid", 0},
		{"not json", "Bearer sk_test_x", `user_id=u`, 400, "request_body_invalid", 0},
		{"unknown field", "Bearer sk_test_x", `{"user_id":"u","admin":true}`, 400, "request_body_invalid", 0},
		{"missing user", "Bearer sk_test_x", `{}`, 422, "form_param_missing", 0},
		{"negative lifetime", "Bearer sk_test_x", `{"user_id":"u","lifetime_seconds":-1}`, 422, "form_param_value_invalid", 0},
		{"huge lifetime", "Bearer sk_test_x", `{"user_id":"u","lifetime_seconds":86401}`, 422, "form_param_value_invalid", 0},
		{"slug without org", "Bearer sk_test_x", `{"user_id":"u","org_slug":"a"}`, 422, "form_param_value_invalid", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, tc.auth, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				var ce clerkErrors
				if err := json.Unmarshal([]byte(body), &ce); err != nil || len(ce.Errors) != 1 || ce.Errors[0].Code != tc.code || ce.ClerkTraceID == "" {
					t.Errorf("body %s (%v), want ClerkErrors code %s", body, err, tc.code)
				}
				return
			}
			var out struct{ Object, JWT string }
			if err := json.Unmarshal([]byte(body), &out); err != nil || out.Object != "token" {
				t.Fatalf("body %s: %v", body, err)
			}
			p := parseToken(t, out.JWT)
			if got := p.str(t, p.claims, "sub"); got != "user_123" {
				t.Errorf("sub = %q", got)
			}
			if got := p.num(t, "exp") - p.num(t, "iat"); got != tc.lifetime {
				t.Errorf("exp - iat = %d, want %d", got, tc.lifetime)
			}
			if _, ok := i.sessions.get(p.str(t, p.claims, "sid")); !ok {
				t.Error("session not recorded")
			}
		})
	}
	// GET is not minting.
	resp, _ := getURL(t, i.URL()+TestingTokensPath)
	if resp.StatusCode == http.StatusOK {
		t.Error("GET minted")
	}
}

// The sign-in page and the testing-token endpoint set what a session-token
// template and Clerk Billing add: custom claims, fea, pla and fva. A
// browser's later tokens (the handshake's) keep them.
func TestSignInWithClaimsFeaturesPlanAndFVA(t *testing.T) {
	i := start(t, Options{SecretKey: "sk_test_x"})
	form := url.Values{
		"user_id": {"user_1"}, "redirect_url": {"http://127.0.0.1:8080/"},
		"features": {"export, o:analytics"}, "plan": {"u:pro"}, "fva": {"3, -1"},
		"claims": {`{"email":"ada@example.com","public_metadata":{"plan":"pro"}}`},
	}
	resp, body := postForm(t, i.URL()+SignInPath, form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	p := parseToken(t, cookieNamed(resp, SessionCookie).Value)
	for name, want := range map[string]string{
		"fea": `"u:export,o:analytics"`, "pla": `"u:pro"`, "fva": `[3,-1]`,
		"email": `"ada@example.com"`, "public_metadata": `{"plan":"pro"}`,
	} {
		if got := string(p.claims[name]); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	// The handshake renews the session with the same claims.
	hs, _ := handshake(t, i, cookieNamed(resp, ClientCookie).Value, url.Values{"format": {"token"}})
	d, _ := payload(t, i, hs)
	renewed := ""
	for _, directive := range d {
		if v, ok := strings.CutPrefix(directive, SessionCookie+"="); ok {
			renewed, _, _ = strings.Cut(v, ";")
		}
	}
	if renewed == "" {
		t.Fatalf("handshake directives %q", d)
	}
	rp := parseToken(t, renewed)
	for _, name := range []string{"fea", "pla", "fva", "email", "public_metadata"} {
		if string(rp.claims[name]) != string(p.claims[name]) {
			t.Errorf("handshake token %s = %s, sign-in's %s", name, rp.claims[name], p.claims[name])
		}
	}
	for _, bad := range []url.Values{
		{"fva": {"3"}},
		{"fva": {"x, 1"}},
		{"fva": {"-2, 0"}},
		{"claims": {`["not","an","object"]`}},
		{"claims": {`{"sub":"user_admin"}`}},
		{"plan": {`u:"pro"`}},
	} {
		bad.Set("user_id", "user_1")
		bad.Set("redirect_url", "http://127.0.0.1:8080/")
		if resp, _ := postForm(t, i.URL()+SignInPath, bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%v: status %d, want 400", bad, resp.StatusCode)
		}
	}
	// The testing-token endpoint takes the same fields as JSON.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, i.URL()+TestingTokensPath,
		strings.NewReader(`{"user_id":"user_2","plan":"o:team","fva":[0,5],"claims":{"tier":3}}`))
	req.Header.Set("Authorization", "Bearer sk_test_x")
	resp, body = do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("testing token: %d %s", resp.StatusCode, body)
	}
	var out struct{ JWT string }
	_ = json.Unmarshal([]byte(body), &out)
	p = parseToken(t, out.JWT)
	if string(p.claims["pla"]) != `"o:team"` || string(p.claims["fva"]) != `[0,5]` || string(p.claims["tier"]) != `3` {
		t.Errorf("testing token claims %s %s %s", p.claims["pla"], p.claims["fva"], p.claims["tier"])
	}
}
