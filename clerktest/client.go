package clerktest

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientCookie is the Frontend API's own cookie: it identifies the browser's
// Clerk client (Clerk keeps it HttpOnly on the Frontend API host). The fake
// sets it on sign-in to an opaque client id mapped to the session, and the
// handshake endpoint reads it.
const ClientCookie = "__client"

// frontendState is the fake Frontend API's state: browser clients and the
// handshake format. The zero value is ready to use.
type frontendState struct {
	development bool // set once, by New

	mu      sync.Mutex // guards following
	clients map[string]browserClient
	format  HandshakeFormat
	// devBrowsers maps a development instance's dev-browser tokens to the
	// client id they are signed in as ("" for signed out).
	devBrowsers map[string]string
	// syncCodes maps one-time satellite sync codes to a client id ("" for
	// signed out): satellite.go.
	syncCodes  map[string]string
	satellites map[string]*Satellite // by origin
	// proxy: proxied.go.
	proxyURL string
	proxied  []ProxiedRequest
	// refresh tokens: refresh.go.
	refreshOn     bool
	refreshTokens map[string]string // token → client id
}

// browserClient is what a __client cookie stands for: the signed-in session
// and what the sign-in asked for (user, organization), so that the handshake
// mints tokens like the first one.
type browserClient struct {
	sessionID string
	req       tokenRequest
	uat       int64 // __client_uat: when the client last changed (sign-in)
}

func (f *frontendState) put(id string, c browserClient) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clients == nil {
		f.clients = make(map[string]browserClient)
	}
	f.clients[id] = c
}

func (f *frontendState) get(id string) (browserClient, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[id]
	return c, ok
}

func (f *frontendState) remove(id string) (browserClient, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[id]
	delete(f.clients, id)
	return c, ok
}

// PublishableKey returns a publishable key naming the fake as the Frontend
// API: "pk_live_" (or "pk_test_" for Options.Development) + base64("<host:port
// of URL>$"), the form Clerk's SDKs parse. Configure sessiongate with it (clerk.publishable_key)
// and with clerk.proxy_url set to URL, so the handshake redirect reaches the
// fake over http. The host must contain a dot (127.0.0.1, not localhost) for
// the key to parse.
func (i *Instance) PublishableKey() string {
	prefix := "pk_live_"
	if i.frontend.development {
		prefix = "pk_test_" // a development instance (Options.Development)
	}
	return prefix + base64.RawStdEncoding.EncodeToString([]byte(i.addr+"$"))
}

// CookieSuffix returns the cookie suffix of PublishableKey, as Clerk's SDKs
// compute it ("__session_<suffix>").
func (i *Instance) CookieSuffix() string {
	sum := sha1.Sum([]byte(i.PublishableKey()))
	return base64.URLEncoding.EncodeToString(sum[:])[:8]
}

// signInBrowser is the successful end of POST /sign-in: a new session of
// req's user, and the cookies Clerk sets on the application's domain
// (__session, __client_uat) and on its own (__client). The fake has one host
// for both, so all three are host-only cookies of the fake's host. A
// development instance sets none: the session is bound to devBrowser.
func (i *Instance) signInBrowser(w http.ResponseWriter, req tokenRequest, devBrowser string) error {
	now := i.now()
	sid := newID("sess")
	tok, err := i.Mint(append(req.options(), WithSession(sid), WithIssuedAt(now))...)
	if err != nil {
		return err
	}
	sess, _ := i.sessions.get(sid)
	clientID := sess.ClientID
	if clientID == "" {
		clientID = newID("client")
	}
	i.frontend.put(clientID, browserClient{sessionID: sid, req: req, uat: now.Unix()})
	if i.frontend.development {
		// A development Frontend API is another site than the application:
		// it sets no cookie there. The browser carries its dev browser back
		// in the URL (serveSignIn), and the application's handshake gets
		// the session cookies.
		i.frontend.bindDevBrowser(devBrowser, clientID)
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: ClientUATCookie, Value: strconv.FormatInt(now.Unix(), 10), Path: "/", SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: ClientCookie, Value: clientID, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return nil
}

// signOutBrowser forgets the browser's client and ends its session, and
// clears the __client cookie (the caller clears the others). A development
// instance's browser is its dev browser (signOutDevBrowser).
func (i *Instance) signOutBrowser(w http.ResponseWriter, r *http.Request) {
	if i.frontend.development {
		i.signOutDevBrowser(r)
		return
	}
	if c, err := r.Cookie(ClientCookie); err == nil {
		if bc, ok := i.frontend.remove(c.Value); ok {
			i.sessions.setStatus(bc.sessionID, statusEnded, i.now())
		}
	}
	http.SetCookie(w, &http.Cookie{Name: ClientCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// cookieAttrs are the attributes of the cookies the handshake sets for the
// application: host-only, Path=/, SameSite=Lax, Secure over https.
func cookieAttrs(secure bool) string {
	a := "; Path=/; SameSite=Lax"
	if secure {
		a += "; Secure"
	}
	return a
}

const cookieDeletion = "; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0"

// clientUATMaxAge is the Max-Age of __client_uat (ten years, as Clerk's).
const clientUATMaxAge = 10 * 365 * 24 * time.Hour

func setDirective(name, value string, secure bool) string {
	return name + "=" + value + cookieAttrs(secure)
}

func uatDirective(name, value string, secure bool) string {
	return name + "=" + value + cookieAttrs(secure) + "; Max-Age=" + strconv.FormatInt(int64(clientUATMaxAge/time.Second), 10)
}

func isHTTPS(rawURL string) bool { return strings.HasPrefix(strings.ToLower(rawURL), "https://") }
