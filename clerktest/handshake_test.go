package clerktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/config"
)

// signIn posts the sign-in form and returns the cookies it set.
func signIn(t *testing.T, i *Instance, user string, extra ...string) map[string]*http.Cookie {
	t.Helper()
	form := url.Values{"user_id": {user}, "redirect_url": {"http://127.0.0.1:8080/"}}
	for k := 0; k+1 < len(extra); k += 2 {
		form.Set(extra[k], extra[k+1])
	}
	resp, body := postForm(t, i.URL()+SignInPath, form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	out := map[string]*http.Cookie{}
	for _, c := range resp.Cookies() {
		out[c.Name] = c
	}
	return out
}

// handshake calls the handshake endpoint with the __client cookie (if any).
func handshake(t *testing.T, i *Instance, client string, q url.Values) (*http.Response, string) {
	t.Helper()
	if q.Get("redirect_url") == "" {
		q.Set("redirect_url", "http://127.0.0.1:8080/page?x=1")
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, i.URL()+HandshakePath+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		req.AddCookie(&http.Cookie{Name: ClientCookie, Value: client})
	}
	return do(t, req)
}

// payload returns the directives of a handshake answer, from its JWT
// (verified with the instance key) or its nonce (through the Backend API).
func payload(t *testing.T, i *Instance, resp *http.Response) (directives []string, format string) {
	t.Helper()
	if c := cookieNamed(resp, HandshakeCookie); c != nil {
		p := parseToken(t, c.Value)
		if err := p.verifyRS256(&i.SigningKey().Private.PublicKey); err != nil {
			t.Fatalf("handshake token signature: %v", err)
		}
		if p.str(t, p.header, "kid") != i.SigningKey().ID {
			t.Error("kid")
		}
		if err := json.Unmarshal(p.claims["handshake"], &directives); err != nil {
			t.Fatalf("handshake claim %s: %v", p.claims["handshake"], err)
		}
		checkPayloadCookie(t, c)
		return directives, "token"
	}
	c := cookieNamed(resp, HandshakeNonceCookie)
	if c == nil {
		t.Fatalf("no payload cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	checkPayloadCookie(t, c)
	r, body := mustGet(t, i.URL()+HandshakePayloadPath+"?nonce="+url.QueryEscape(c.Value), "Bearer "+i.SecretKey())
	if r.StatusCode != 200 {
		t.Fatalf("exchange: %d %s", r.StatusCode, body)
	}
	var p struct {
		Directives []string `json:"directives"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p.Directives, "nonce"
}

func checkPayloadCookie(t *testing.T, c *http.Cookie) {
	t.Helper()
	if c.Domain != "" || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || !c.HttpOnly || c.MaxAge <= 0 {
		t.Errorf("payload cookie attributes: %q", c.Raw)
	}
}

func TestSignInSetsClientCookieAndSignOutEndsIt(t *testing.T) {
	i := start(t, Options{})
	cs := signIn(t, i, "user_a")
	c := cs[ClientCookie]
	if c == nil || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteLaxMode || !strings.HasPrefix(c.Value, "client_") {
		t.Fatalf("__client cookie %v", c)
	}
	sid := parseToken(t, cs[SessionCookie].Value).str(t, parseToken(t, cs[SessionCookie].Value).claims, "sid")
	if s, _ := i.Session(sid); s.ClientID != c.Value {
		t.Errorf("session client %q, cookie %q", s.ClientID, c.Value)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, i.SignOutURL("http://127.0.0.1:8080/"), nil)
	req.AddCookie(c)
	resp, _ := do(t, req)
	if cl := cookieNamed(resp, ClientCookie); cl == nil || cl.MaxAge >= 0 {
		t.Errorf("__client not cleared: %q", resp.Header.Values("Set-Cookie"))
	}
	if s, _ := i.Session(sid); s.Status != statusEnded {
		t.Errorf("session status after sign-out %q", s.Status)
	}
	r, _ := handshake(t, i, c.Value, url.Values{})
	if d, _ := payload(t, i, r); !strings.HasPrefix(d[2], SessionCookie+"=;") {
		t.Errorf("signed-out client still signed in: %q", d)
	}
}

func TestHandshakeSignedIn(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	i := start(t, Options{Now: func() time.Time { return now }})
	cs := signIn(t, i, "user_a")
	client := cs[ClientCookie].Value
	first := parseToken(t, cs[SessionCookie].Value)

	for _, suffixed := range []bool{false, true} {
		resp, body := handshake(t, i, client, url.Values{"suffixed_cookies": {strconv.FormatBool(suffixed)}, "format": {"token"}})
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "http://127.0.0.1:8080/page?x=1" ||
			resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("suffixed=%v: %d %v %s", suffixed, resp.StatusCode, resp.Header, body)
		}
		d, format := payload(t, i, resp)
		if format != "token" {
			t.Errorf("format %s", format)
		}
		names := []string{HandshakeCookie, ClientUATCookie, SessionCookie}
		if suffixed {
			s := "_" + i.CookieSuffix()
			names = []string{HandshakeCookie, ClientUATCookie, ClientUATCookie + s, SessionCookie, SessionCookie + s}
		}
		if len(d) != len(names) {
			t.Fatalf("directives %q", d)
		}
		var tok string
		for k, name := range names {
			if !strings.HasPrefix(d[k], name+"=") {
				t.Errorf("directive %d %q, want %s", k, d[k], name)
			}
			if strings.HasPrefix(name, SessionCookie) {
				v, _, _ := strings.Cut(strings.TrimPrefix(d[k], name+"="), ";")
				if tok != "" && v != tok {
					t.Error("suffixed and unsuffixed sessions differ")
				}
				tok = v
			}
			if strings.HasPrefix(name, ClientUATCookie) && !strings.HasPrefix(d[k], name+"="+strconv.FormatInt(now.Unix(), 10)+";") {
				t.Errorf("uat directive %q", d[k])
			}
		}
		p := parseToken(t, tok)
		if p.str(t, p.claims, "sid") != first.str(t, first.claims, "sid") || p.str(t, p.claims, "sub") != "user_a" {
			t.Errorf("new token of another session: %s", p.rawPayload)
		}
		if err := p.verifyRS256(&i.SigningKey().Private.PublicKey); err != nil {
			t.Error(err)
		}
	}
	if n := i.Requests(HandshakePath); n != 2 {
		t.Errorf("Requests = %d", n)
	}
}

func TestHandshakeFormats(t *testing.T) {
	i := start(t, Options{})
	client := signIn(t, i, "user_a")[ClientCookie].Value
	// Long organization claims make a suffixed payload exceed 2 KiB.
	big := signIn(t, i, "user_b", "org_id", "org_"+strings.Repeat("x", 120), "org_slug", strings.Repeat("s", 120), "org_role", strings.Repeat("r", 120))[ClientCookie].Value
	for _, tc := range []struct {
		set      HandshakeFormat
		q        url.Values
		want     string
		suffixed bool
	}{
		{HandshakeAuto, url.Values{}, "token", true},                                         // Clerk's default format is token
		{HandshakeAuto, url.Values{"format": {"nonce"}}, "token", false},                     // small: still a token
		{HandshakeAuto, url.Values{"format": {"nonce"}}, "nonce", true},                      // over 2 KiB: a nonce
		{HandshakeToken, url.Values{"format": {"nonce"}}, "token", true},                     // forced
		{HandshakeNonce, url.Values{"format": {"token"}}, "nonce", false},                    // forced
		{HandshakeNonce, url.Values{"format": {"nonce"}, "__session": {"x"}}, "nonce", true}, // extra params ignored
	} {
		i.SetHandshakeFormat(tc.set)
		tc.q.Set("suffixed_cookies", strconv.FormatBool(tc.suffixed))
		c := client
		if tc.want == "nonce" && tc.set == HandshakeAuto {
			c = big
		}
		resp, _ := handshake(t, i, c, tc.q)
		d, got := payload(t, i, resp)
		if got != tc.want {
			t.Errorf("%v %v: format %s, want %s", tc.set, tc.q, got, tc.want)
		}
		if !strings.HasPrefix(d[len(d)-1], SessionCookie) || strings.HasPrefix(d[len(d)-1], SessionCookie+"=;") {
			t.Errorf("%v %v: not signed in: %q", tc.set, tc.q, d)
		}
	}
}

func TestHandshakeSignedOut(t *testing.T) {
	i := start(t, Options{})
	cs := signIn(t, i, "user_a")
	client := cs[ClientCookie].Value
	sid := parseToken(t, cs[SessionCookie].Value)
	for name, c := range map[string]string{"no client": "", "unknown client": "client_unknown"} {
		resp, _ := handshake(t, i, c, url.Values{"suffixed_cookies": {"true"}})
		d, _ := payload(t, i, resp)
		s := "_" + i.CookieSuffix()
		want := []string{HandshakeCookie + "=;", ClientUATCookie + "=0;", SessionCookie + "=;", ClientUATCookie + s + "=0;", SessionCookie + s + "=;"}
		if len(d) != len(want) {
			t.Fatalf("%s: %q", name, d)
		}
		for k := range want {
			if !strings.HasPrefix(d[k], want[k]) {
				t.Errorf("%s: directive %q, want %s…", name, d[k], want[k])
			}
		}
	}
	for _, status := range []string{statusRevoked, statusEnded, statusRemoved} {
		if err := i.SetSessionStatus(sid.str(t, sid.claims, "sid"), status); err != nil {
			t.Fatal(err)
		}
		resp, _ := handshake(t, i, client, url.Values{})
		if d, _ := payload(t, i, resp); !strings.HasPrefix(d[len(d)-1], SessionCookie+"=;") {
			t.Errorf("%s session still signed in: %q", status, d)
		}
	}
}

func TestHandshakeRedirectURLIsChecked(t *testing.T) {
	i := start(t, Options{})
	for _, u := range []string{"https://evil.example/", "javascript:alert(1)", "//evil.example/"} {
		resp, _ := handshake(t, i, "", url.Values{"redirect_url": {u}})
		if resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
			t.Errorf("%s: %d %q", u, resp.StatusCode, resp.Header.Values("Set-Cookie"))
		}
	}
}

func TestPublishableKeyNamesTheFake(t *testing.T) {
	i := start(t, Options{})
	pk, err := config.ParsePublishableKey(i.PublishableKey())
	if err != nil {
		t.Fatal(err)
	}
	if !pk.Live || "http://"+pk.FrontendAPI != i.URL() || pk.CookieSuffix != i.CookieSuffix() {
		t.Errorf("%+v for %s (suffix %s)", pk, i.URL(), i.CookieSuffix())
	}
}
