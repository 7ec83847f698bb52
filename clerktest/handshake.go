package clerktest

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// HandshakePath is the Frontend API handshake endpoint: GET with
// redirect_url, format (nonce or token), suffixed_cookies,
// __clerk_api_version, __clerk_hs_reason and __session. It answers 307 to
// redirect_url with the handshake payload in a cookie.
const HandshakePath = "/v1/client/handshake"

// Cookies the handshake endpoint sets for the application.
const (
	HandshakeCookie      = clerkwire.HandshakeCookie      // "__clerk_handshake"
	HandshakeNonceCookie = clerkwire.HandshakeNonceCookie // "__clerk_handshake_nonce"
)

// HandshakeFormat chooses how the handshake endpoint delivers its payload.
type HandshakeFormat int

// Handshake formats.
const (
	// HandshakeAuto is Clerk's behavior: the signed JWT in the
	// __clerk_handshake cookie for payloads up to 2 KiB, or when the request
	// did not ask for format=nonce; a nonce in __clerk_handshake_nonce for
	// larger payloads of format=nonce requests.
	HandshakeAuto HandshakeFormat = iota
	// HandshakeToken always sends the JWT.
	HandshakeToken
	// HandshakeNonce always sends a nonce, whose directives the Backend API
	// handshake_payload endpoint returns.
	HandshakeNonce
)

// maxTokenPayload is Clerk's threshold between the two formats.
const maxTokenPayload = 2 << 10

// handshakeCookieMaxAge bounds the payload cookies: they only live for the
// redirect back.
const handshakeCookieMaxAge = 60

// SetHandshakeFormat sets how the handshake endpoint delivers its payload
// from now on. The default is HandshakeAuto.
func (i *Instance) SetHandshakeFormat(f HandshakeFormat) {
	i.frontend.mu.Lock()
	defer i.frontend.mu.Unlock()
	i.frontend.format = f
}

func (i *Instance) handshakeFormat() HandshakeFormat {
	i.frontend.mu.Lock()
	defer i.frontend.mu.Unlock()
	return i.frontend.format
}

// serveHandshake is GET /v1/client/handshake, the production shape of
// Clerk's Frontend API: it reads the browser's __client cookie, decides
// signed-in (the client's session is active or pending) or signed-out, and
// sends the browser back to redirect_url with the directives: a fresh
// __session and __client_uat (and their suffixed twins with
// suffixed_cookies=true), or their deletions. Cookies are host-only, Path=/,
// SameSite=Lax. redirect_url is checked like the sign-in page's (loopback
// only): the endpoint is not an open redirect.
//
// On a development instance (Options.Development) the browser is the dev
// browser named by the __clerk_db_jwt parameter (a new, signed-out one when
// it is missing or unknown), the directives also set __clerk_db_jwt, and
// the payload goes back in the redirect URL's query (__clerk_handshake or
// __clerk_handshake_nonce), not in a cookie.
func (i *Instance) serveHandshake(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := checkRedirectURL(q.Get("redirect_url"))
	if err != nil {
		writeClerkError(w, http.StatusBadRequest, "form_param_value_invalid", "redirect_url is invalid", err.Error())
		return
	}
	var (
		bc       browserClient
		signedIn bool
		dev      string
	)
	if i.frontend.development {
		dev, bc, signedIn = i.devClient(q.Get(DevBrowserCookie))
	} else {
		bc, signedIn = i.activeClient(r)
	}
	i.answerHandshake(w, r, redirect, handshakeBrowser{client: bc, signedIn: signedIn, devBrowser: dev})
}

// handshakeBrowser is what a handshake answer is about: the browser's
// client, whether it can have tokens, its dev browser (development), and
// the azp of its tokens ("" for the instance's).
type handshakeBrowser struct {
	client     browserClient
	signedIn   bool
	devBrowser string
	azp        string
}

// answerHandshake sends the browser back to redirect with the payload for
// b: in a cookie, or in the URL on a development instance.
func (i *Instance) answerHandshake(w http.ResponseWriter, r *http.Request, redirect string, b handshakeBrowser) {
	q := r.URL.Query()
	suffixed := q.Get("suffixed_cookies") == "true"
	secure := isHTTPS(redirect)
	directives, err := i.handshakeDirectives(b, suffixed, secure)
	if err != nil {
		writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error", "Something went wrong", err.Error())
		return
	}
	// Exactly the Frontend API's payload: the directives and no registered
	// claim (no iat, no exp), as in real __clerk_handshake values.
	payload, err := json.Marshal(struct {
		Handshake []string `json:"handshake"`
	}{directives})
	if err != nil {
		writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error", "Something went wrong", err.Error())
		return
	}
	useNonce := false
	switch i.handshakeFormat() {
	case HandshakeNonce:
		useNonce = true
	case HandshakeAuto:
		useNonce = q.Get("format") == "nonce" && len(payload) > maxTokenPayload
	}
	name, value := HandshakeNonceCookie, ""
	if useNonce {
		value = randomBase62(32)
		i.RegisterHandshakeNonce(value, directives)
	} else {
		key := i.keys.signing()
		header, err := encodeObject(map[string]any{"alg": key.Algorithm, "kid": key.ID, "typ": "JWT"})
		if err != nil {
			writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error", "Something went wrong", err.Error())
			return
		}
		name, value = HandshakeCookie, Sign(header, payload, key, key.Algorithm)
	}
	if i.frontend.development {
		redirect = withParam(redirect, name, value)
	} else {
		w.Header().Add("Set-Cookie", name+"="+value+cookieAttrs(secure)+"; HttpOnly; Max-Age="+fmt.Sprint(handshakeCookieMaxAge))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", redirect)
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// handshakeDirectives are the Set-Cookie values of the payload, in Clerk's
// order: the handshake cookie's deletion, the dev browser (development),
// then __client_uat, then __session.
func (i *Instance) handshakeDirectives(b handshakeBrowser, suffixed, secure bool) ([]string, error) {
	sfx := "_" + i.CookieSuffix()
	d := []string{HandshakeCookie + "=" + cookieDeletion}
	if b.devBrowser != "" {
		d = append(d, setDirective(DevBrowserCookie, b.devBrowser, secure))
		if suffixed {
			d = append(d, setDirective(DevBrowserCookie+sfx, b.devBrowser, secure))
		}
	}
	if !b.signedIn {
		d = append(d, uatDirective(ClientUATCookie, "0", secure), SessionCookie+"="+cookieDeletion)
		if suffixed {
			d = append(d, uatDirective(ClientUATCookie+sfx, "0", secure), SessionCookie+sfx+"="+cookieDeletion)
		}
		return d, nil
	}
	bc := b.client
	opts := append(bc.req.options(), WithSession(bc.sessionID))
	if b.azp != "" {
		opts = append(opts, WithAuthorizedParty(b.azp))
	}
	tok, err := i.Mint(opts...)
	if err != nil {
		return nil, err
	}
	uat := fmt.Sprint(bc.uat)
	d = append(d, uatDirective(ClientUATCookie, uat, secure))
	if suffixed {
		d = append(d, uatDirective(ClientUATCookie+sfx, uat, secure))
	}
	d = append(d, setDirective(SessionCookie, tok, secure))
	if suffixed {
		d = append(d, setDirective(SessionCookie+sfx, tok, secure))
	}
	if rd := i.refreshDirective(i.frontend.clientOf(bc.sessionID), secure); rd != "" {
		d = append(d, rd)
	}
	return d, nil
}

// activeClient is the browser's client when its session can have tokens:
// active or pending (by the instance clock; revoked, ended, expired … are
// signed out).
func (i *Instance) activeClient(r *http.Request) (browserClient, bool) {
	c, err := r.Cookie(ClientCookie)
	if err != nil || c.Value == "" {
		return browserClient{}, false
	}
	bc, ok := i.frontend.get(c.Value)
	if !ok {
		return browserClient{}, false
	}
	s, ok := i.Session(bc.sessionID)
	if !ok || (s.Status != statusActive && s.Status != statusPending) {
		return browserClient{}, false
	}
	return bc, true
}
