package clerktest

// A satellite domain's Frontend API: a second origin of the same instance
// that shares the primary domain's sessions
// (https://clerk.com/docs/guides/dashboard/dns-domains/satellite-domains).
// In production a satellite's Frontend API (clerk.<satellite domain>) has
// its own __client cookie; a browser that has none there is sent to the
// primary's Frontend API, which knows it by the primary's __client cookie,
// and comes back with a one-time code. The fake does the same with a second
// loopback listener: use another host than the primary's (127.0.0.2 beside
// 127.0.0.1), so that the browser keeps separate cookies for the two, as
// for two registrable domains.

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SatelliteSyncPath is the primary Frontend API's endpoint a satellite's
// Frontend API sends a browser without a client to: GET with redirect_url
// (the satellite's handshake URL, which must be on a satellite of the
// instance), answered with a 307 back there carrying a one-time
// __clerk_sync_code for the browser's client (or for "signed out").
const SatelliteSyncPath = "/v1/client/sync"

// syncCodeParam carries the one-time code from the primary's Frontend API to
// the satellite's.
const syncCodeParam = "__clerk_sync_code"

// SatelliteOptions configures a satellite's Frontend API.
type SatelliteOptions struct {
	// Addr is the loopback address to listen on, "127.0.0.2:0" for
	// instance. Its host should differ from the primary's, or the browser
	// shares the two's cookies. Required.
	Addr string
	// AuthorizedParty is the azp of the session tokens minted through the
	// satellite: the satellite application's origin. Empty: the
	// instance's.
	AuthorizedParty string
}

// Satellite is a satellite domain's Frontend API of an Instance. Close it
// when done (StartSatellite does it for tests).
type Satellite struct {
	i          *Instance
	url        string
	origin     string
	azp        string
	srv        *http.Server
	done       chan struct{}
	handshakes atomic.Int64

	mu      sync.Mutex        // guards following
	clients map[string]string // the satellite's __client → the primary's client id
}

// NewSatellite starts a satellite's Frontend API for the instance. The
// instance must be a production one.
func (i *Instance) NewSatellite(opts SatelliteOptions) (*Satellite, error) {
	if i.frontend.development {
		return nil, errors.New("clerktest: satellites of a development instance are not supported")
	}
	if opts.Addr == "" {
		return nil, errors.New("clerktest: SatelliteOptions.Addr is required")
	}
	if err := checkLoopback(opts.Addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("clerktest: satellite listen: %w", err)
	}
	s := &Satellite{
		i: i, url: "http://" + ln.Addr().String(), azp: opts.AuthorizedParty,
		done: make(chan struct{}), clients: map[string]string{},
	}
	s.origin = s.url
	mux := http.NewServeMux()
	mux.Handle("GET "+HandshakePath, i.frontendAPI(s.serveHandshake))
	mux.HandleFunc("/", notFound)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	i.frontend.mu.Lock()
	if i.frontend.satellites == nil {
		i.frontend.satellites = map[string]*Satellite{}
	}
	i.frontend.satellites[s.origin] = s
	i.frontend.mu.Unlock()
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// StartSatellite is NewSatellite for tests: it fails tb at once on error
// and closes the satellite in tb.Cleanup.
func (i *Instance) StartSatellite(tb TB, opts SatelliteOptions) *Satellite {
	tb.Helper()
	s, err := i.NewSatellite(opts)
	if err != nil {
		tb.Fatalf("clerktest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// URL is the satellite Frontend API's base URL (http://host:port): the
// satellite application's clerk.proxy_url in tests, standing in for
// https://clerk.<satellite domain>.
func (s *Satellite) URL() string { return s.url }

// Handshakes is the number of handshake requests the satellite received.
func (s *Satellite) Handshakes() int { return int(s.handshakes.Load()) }

// Close stops the satellite's server. It is idempotent.
func (s *Satellite) Close() {
	s.i.frontend.mu.Lock()
	delete(s.i.frontend.satellites, s.origin)
	s.i.frontend.mu.Unlock()
	_ = s.srv.Close()
	<-s.done
}

// serveHandshake is the satellite's GET /v1/client/handshake: the
// browser's client is the one its __client cookie on the satellite names;
// without one (or with one whose session ended) the browser syncs with the
// primary's Frontend API first. A return to __clerk_synced=false says
// __clerk_synced=true: the sync is done.
func (s *Satellite) serveHandshake(w http.ResponseWriter, r *http.Request) {
	s.handshakes.Add(1)
	q := r.URL.Query()
	redirect, err := checkRedirectURL(q.Get("redirect_url"))
	if err != nil {
		writeClerkError(w, http.StatusBadRequest, "form_param_value_invalid", "redirect_url is invalid", err.Error())
		return
	}
	if u, err := url.Parse(redirect); err == nil && u.Query().Get("__clerk_synced") == "false" {
		redirect = replaceParam(u, "__clerk_synced", "true")
	}
	b := handshakeBrowser{azp: s.azp}
	if code := q.Get(syncCodeParam); code != "" {
		clientID, ok := s.i.frontend.takeSyncCode(code)
		if !ok {
			writeClerkError(w, http.StatusBadRequest, "form_param_value_invalid", "sync code is invalid", "the satellite sync code is unknown or used")
			return
		}
		s.setClient(w, clientID)
		b.client, b.signedIn = s.i.clientByID(clientID)
		s.i.answerHandshake(w, r, redirect, b)
		return
	}
	if c, err := r.Cookie(ClientCookie); err == nil {
		s.mu.Lock()
		id, ok := s.clients[c.Value]
		s.mu.Unlock()
		if ok {
			if b.client, b.signedIn = s.i.clientByID(id); b.signedIn {
				s.i.answerHandshake(w, r, redirect, b)
				return
			}
		}
	}
	// No live client here: ask the primary's Frontend API.
	sync := s.i.url + SatelliteSyncPath + "?redirect_url=" + url.QueryEscape(s.url+r.URL.RequestURI())
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", sync)
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// setClient sets (or, for "", clears) the satellite's own __client cookie.
func (s *Satellite) setClient(w http.ResponseWriter, clientID string) {
	if clientID == "" {
		http.SetCookie(w, &http.Cookie{Name: ClientCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		return
	}
	own := newID("client")
	s.mu.Lock()
	s.clients[own] = clientID
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: ClientCookie, Value: own, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// serveSatelliteSync is the primary's GET /v1/client/sync (see
// SatelliteSyncPath). redirect_url must be the handshake endpoint of one of
// the instance's satellites: the endpoint is not an open redirect.
func (i *Instance) serveSatelliteSync(w http.ResponseWriter, r *http.Request) {
	u, err := url.Parse(r.URL.Query().Get("redirect_url"))
	if err != nil || u.Scheme != "http" || u.Path != HandshakePath {
		writeClerkError(w, http.StatusBadRequest, "form_param_value_invalid", "redirect_url is invalid", "redirect_url must be a satellite's handshake URL")
		return
	}
	i.frontend.mu.Lock()
	_, known := i.frontend.satellites["http://"+u.Host]
	i.frontend.mu.Unlock()
	if !known {
		writeClerkError(w, http.StatusBadRequest, "form_param_value_invalid", "redirect_url is invalid", "redirect_url is not on a satellite of this instance")
		return
	}
	clientID := ""
	if c, err := r.Cookie(ClientCookie); err == nil {
		if _, ok := i.activeClient(r); ok {
			clientID = c.Value
		}
	}
	code := randomBase62(32)
	i.frontend.mu.Lock()
	if i.frontend.syncCodes == nil {
		i.frontend.syncCodes = map[string]string{}
	}
	i.frontend.syncCodes[code] = clientID
	i.frontend.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", withParam(u.String(), syncCodeParam, code))
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// takeSyncCode consumes a one-time sync code.
func (f *frontendState) takeSyncCode(code string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.syncCodes[code]
	delete(f.syncCodes, code)
	return id, ok
}

// clientByID is a client whose session can have tokens.
func (i *Instance) clientByID(id string) (browserClient, bool) {
	bc, ok := i.frontend.get(id)
	if !ok {
		return browserClient{}, false
	}
	s, ok := i.Session(bc.sessionID)
	if !ok || (s.Status != statusActive && s.Status != statusPending) {
		return browserClient{}, false
	}
	return bc, true
}

// replaceParam sets every name parameter of u's query to value, keeping the
// query's order and its other bytes.
func replaceParam(u *url.URL, name, value string) string {
	parts := strings.Split(u.RawQuery, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if dk, err := url.QueryUnescape(k); err == nil && dk == name {
			parts[i] = k + "=" + url.QueryEscape(value)
		}
	}
	c := *u
	c.RawQuery = strings.Join(parts, "&")
	return c.String()
}
