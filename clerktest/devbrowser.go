package clerktest

// A development instance's dev browser (Options.Development), as Clerk's
// development Frontend API and clerk-js use it: the Frontend API is another
// site than the application, so its __client cookie cannot identify the
// browser; a dev-browser token does, carried in URLs (__clerk_db_jwt) and
// kept by the application in a cookie of the same name. clerk-js gets one
// with POST /v1/dev_browser; the handshake endpoint makes one for a browser
// that comes without; the sign-in page hands it back in the redirect URL.

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// DevBrowserPath is the Frontend API endpoint that creates a dev browser on
// a development instance: POST, answering {"object":"dev_browser","id":
// "<token>","token":"<token>"} and the token in the Clerk-Db-Jwt header
// (clerk-js reads "id"). A production instance answers 404.
const DevBrowserPath = "/v1/dev_browser"

// DevBrowserCookie is the dev-browser token's name: a query parameter of
// Frontend API requests, and the application's cookie.
const DevBrowserCookie = clerkwire.DevBrowserCookie // "__clerk_db_jwt"

// Development reports whether the instance is a development one
// (Options.Development).
func (i *Instance) Development() bool { return i.frontend.development }

// NewDevBrowser creates a signed-out dev browser and returns its token, as
// POST /v1/dev_browser does. Meaningful on a development instance only.
func (i *Instance) NewDevBrowser() string { return i.frontend.newDevBrowser() }

// DevBrowserSession returns the session id a dev browser is signed in to
// ("" when signed out or unknown).
func (i *Instance) DevBrowserSession(token string) string {
	id, _ := i.frontend.devBrowserClient(token)
	if bc, ok := i.frontend.get(id); ok {
		return bc.sessionID
	}
	return ""
}

func (f *frontendState) newDevBrowser() string {
	tok := "dvb_" + randomBase62(32)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devBrowsers == nil {
		f.devBrowsers = make(map[string]string)
	}
	f.devBrowsers[tok] = ""
	return tok
}

// bindDevBrowser signs the dev browser tok in to clientID ("" signs out).
func (f *frontendState) bindDevBrowser(tok, clientID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devBrowsers == nil {
		f.devBrowsers = make(map[string]string)
	}
	f.devBrowsers[tok] = clientID
}

// devBrowserClient is the client id tok is signed in to, and whether the
// token is known.
func (f *frontendState) devBrowserClient(tok string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.devBrowsers[tok]
	return id, ok
}

// knownDevBrowser returns tok when it names a dev browser, else a new one.
func (f *frontendState) knownDevBrowser(tok string) string {
	if _, ok := f.devBrowserClient(tok); ok && tok != "" {
		return tok
	}
	return f.newDevBrowser()
}

func (i *Instance) serveDevBrowser(w http.ResponseWriter, r *http.Request) {
	if !i.frontend.development {
		notFound(w, r)
		return
	}
	tok := i.frontend.newDevBrowser()
	body, _ := json.Marshal(struct {
		Object string `json:"object"`
		ID     string `json:"id"`
		Token  string `json:"token"`
	}{"dev_browser", tok, tok})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Clerk-Db-Jwt", tok)
	_, _ = w.Write(body)
}

// devClient is the handshake's view of a development browser: the dev
// browser named by tok (a new, signed-out one when tok is missing or
// unknown) and its client, when that client's session can have tokens.
func (i *Instance) devClient(tok string) (string, browserClient, bool) {
	tok = i.frontend.knownDevBrowser(tok)
	id, _ := i.frontend.devBrowserClient(tok)
	bc, ok := i.frontend.get(id)
	if !ok {
		return tok, browserClient{}, false
	}
	s, ok := i.Session(bc.sessionID)
	if !ok || (s.Status != statusActive && s.Status != statusPending) {
		return tok, browserClient{}, false
	}
	return tok, bc, true
}

// requestDevBrowser is the dev browser a sign-out names: the URL's, else
// the __clerk_db_jwt cookie. (A real development Frontend API never sees
// the application's cookies; the fake shares the application's host name,
// so the browser sends them, and the demo's sign-out link needs no token.)
func (i *Instance) requestDevBrowser(r *http.Request) string {
	if t := r.URL.Query().Get(DevBrowserCookie); t != "" {
		return t
	}
	for _, name := range []string{DevBrowserCookie + "_" + i.CookieSuffix(), DevBrowserCookie} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// signOutDevBrowser ends the session of the request's dev browser.
func (i *Instance) signOutDevBrowser(r *http.Request) {
	tok := i.requestDevBrowser(r)
	id, ok := i.frontend.devBrowserClient(tok)
	if !ok {
		return
	}
	i.frontend.bindDevBrowser(tok, "")
	if bc, ok := i.frontend.remove(id); ok {
		i.sessions.setStatus(bc.sessionID, statusEnded, i.now())
	}
}

// withParam returns raw with the query parameter name set to value.
func withParam(raw, name, value string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// devSignedIn reports whether the known dev browser tok is signed in to a
// session that can have tokens.
func (i *Instance) devSignedIn(tok string) bool {
	_, _, ok := i.devClient(tok)
	return ok
}
