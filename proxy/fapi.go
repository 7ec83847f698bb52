package proxy

// The Frontend API proxy: Clerk's Frontend API served under a path of the
// application's own origin (clerk.proxy_url, https://app.example.com/__clerk),
// so that browsers reach Clerk first-party and an application behind the
// sidecar needs no other proxy. Clerk's requirements
// (https://clerk.com/docs/guides/dashboard/dns-domains/proxy-fapi): each
// request is forwarded with Clerk-Proxy-Url (the proxy's public URL),
// Clerk-Secret-Key and X-Forwarded-For (the client's address). Clerk's own
// implementation is clerkFrontendApiProxy in @clerk/backend
// (packages/backend/src/proxy.ts, https://github.com/clerk/javascript).
//
// What sessiongate adds to it:
//   - only the path prefix is forwarded ("/__clerk" and below, never
//     "/__clerkx"), and a path that another server could read as another
//     one (dot or empty segments, encoded slashes or backslashes, ';') is
//     refused;
//   - the secret key never reaches the browser: response headers that name
//     or contain it are dropped and the body is redacted as it streams
//     (bodies are asked for without compression, and one that comes back
//     compressed anyway is refused, 502);
//   - the request's identity headers are never sent (ServeHTTP strips
//     them before anything else), Clerk-Proxy-Url and Clerk-Secret-Key are
//     always sessiongate's own, X-Forwarded-For is the client address by
//     trusted_proxies (a client's own X-Forwarded-For is not believed, where
//     Clerk's implementation takes the first entry), and only Clerk's and
//     Cloudflare's cookies go to Clerk (the application's own stay home).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/middleware"
)

// DefaultFrontendAPIURL is where the Frontend API proxy forwards by
// default, as Clerk's own proxy does: Clerk's Frontend API, which tells the
// instance by the secret key and the proxy URL.
const DefaultFrontendAPIURL = "https://frontend-api.clerk.dev"

// Headers of the Frontend API proxy.
const (
	ClerkProxyURLHeader  = "Clerk-Proxy-Url"
	ClerkSecretKeyHeader = "Clerk-Secret-Key"
)

// Reasons of the Frontend API proxy's refusals.
const (
	// ReasonFrontendAPIPath: 400, a path under the proxy prefix that is not
	// clean (dot or empty segments, an encoded slash or backslash, ';').
	ReasonFrontendAPIPath middleware.Reason = "frontend-api-path-invalid"
	// ReasonFrontendAPIUnavailable: 502/504, Clerk's Frontend API could
	// not be reached, or answered in a form sessiongate does not pass on.
	ReasonFrontendAPIUnavailable middleware.Reason = "frontend-api-unavailable"
)

// FrontendAPI configures the Frontend API proxy (Options.FrontendAPI).
type FrontendAPI struct {
	// Path is the prefix served: the path of clerk.proxy_url ("/__clerk").
	// The prefix itself and every path below it are forwarded; nothing
	// else. Required: a clean absolute path other than "/", outside
	// /_sessiongate/; a trailing "/" is ignored.
	Path string
	// ProxyURL is the Clerk-Proxy-Url sent: clerk.proxy_url when it is an
	// absolute URL. Empty: the request's public origin (Options.PublicOrigin,
	// else its Host, or a trusted proxy's X-Forwarded-Host/Proto) + Path.
	ProxyURL string
	// Target is the Frontend API forwarded to, an absolute http(s) URL
	// without query or fragment. Nil: DefaultFrontendAPIURL.
	Target *url.URL
	// SecretKey is sent as Clerk-Secret-Key. Required. It MUST NOT reach a
	// browser or a log: it is removed from whatever the Frontend API sends
	// back.
	SecretKey string
	// Transport reaches the Frontend API. Nil: NewTransport(TransportOptions{}).
	Transport http.RoundTripper
}

// fapiProxy is a compiled FrontendAPI.
type fapiProxy struct {
	prefix   string // no trailing slash
	proxyURL string // "" when derived per request
	target   *url.URL
	secret   []byte
	rp       *httputil.ReverseProxy
	route    *route // labels the requests in events and the access log
	log      *zap.Logger
	redacted atomic.Uint64
}

// fapiRequest is what serveFrontendAPI works out for the outbound request.
type fapiRequest struct {
	proxyURL  string
	client    string // X-Forwarded-For
	host      string // X-Forwarded-Host
	proto     string // X-Forwarded-Proto
	rest      string // the path below the prefix, "/…"
	requestID string
}

type fapiKey struct{}

// errFAPIEncoded: the Frontend API answered with a compressed body, which
// cannot be checked for the secret.
var errFAPIEncoded = errors.New("proxy: the Frontend API answered with a Content-Encoding, though sessiongate asked for none")

func newFAPIProxy(cfg *FrontendAPI, log *zap.Logger) (*fapiProxy, error) {
	prefix := strings.TrimSuffix(cfg.Path, "/")
	switch {
	case prefix == "" || !strings.HasPrefix(prefix, "/"):
		return nil, fmt.Errorf("proxy: FrontendAPI.Path %q must be an absolute path other than /", cfg.Path)
	case !cleanPath(prefix), strings.ContainsAny(prefix, ";?#%"):
		return nil, fmt.Errorf("proxy: FrontendAPI.Path %q is not a clean path", cfg.Path)
	case prefix+"/" == ReservedPrefix || strings.HasPrefix(prefix, ReservedPrefix):
		return nil, fmt.Errorf("proxy: FrontendAPI.Path %q is under %s", cfg.Path, ReservedPrefix)
	}
	if cfg.SecretKey == "" {
		return nil, errors.New("proxy: FrontendAPI.SecretKey is required")
	}
	target := cfg.Target
	if target == nil {
		target, _ = url.Parse(DefaultFrontendAPIURL)
	}
	if (target.Scheme != "https" && target.Scheme != "http") || target.Host == "" || target.User != nil ||
		target.RawQuery != "" || target.ForceQuery || target.Fragment != "" {
		return nil, fmt.Errorf("proxy: FrontendAPI.Target %q is not an http(s) URL without query or fragment", target.Redacted())
	}
	if cfg.ProxyURL != "" {
		u, err := url.Parse(cfg.ProxyURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" || strings.TrimSuffix(u.Path, "/") != prefix {
			return nil, fmt.Errorf("proxy: FrontendAPI.ProxyURL %q is not an http(s) URL whose path is %s", cfg.ProxyURL, prefix)
		}
	}
	if log == nil {
		log = zap.NewNop()
	}
	f := &fapiProxy{
		prefix:   prefix,
		proxyURL: strings.TrimSuffix(cfg.ProxyURL, "/"),
		target:   target,
		secret:   []byte(cfg.SecretKey),
		route:    &route{Route: Route{Path: prefix, Name: prefix}, prefix: prefix},
		log:      log,
	}
	transport := cfg.Transport
	if transport == nil {
		transport = NewTransport(TransportOptions{})
	}
	f.rp = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		Transport:      transport,
		ModifyResponse: f.modifyResponse,
		ErrorHandler:   f.fail,
		ErrorLog:       zap.NewStdLog(log),
		BufferPool:     newBufferPool(),
	}
	return f, nil
}

// matches reports a path the proxy serves: the prefix, or below it.
func (f *fapiProxy) matches(p string) bool {
	return strings.HasPrefix(p, f.prefix) && (len(p) == len(f.prefix) || p[len(f.prefix)] == '/')
}

// serveFrontendAPI forwards r to Clerk's Frontend API. The identity headers
// are gone already (ServeHTTP); nothing here authenticates: the Frontend
// API is public, as it is at Clerk.
func (p *Proxy) serveFrontendAPI(w http.ResponseWriter, r *http.Request, st *state) {
	f := p.fapi
	st.route = f.route
	if !f.confined(r.URL) {
		st.reason = ReasonFrontendAPIPath
		writeJSON(w, http.StatusBadRequest, "bad_request", st.reason,
			"the path has dot segments, empty segments, encoded slashes or backslashes, or ';'")
		return
	}
	fr := &fapiRequest{rest: strings.TrimPrefix(r.URL.Path, f.prefix), requestID: st.requestID}
	if fr.rest == "" {
		fr.rest = "/"
	}
	if pu, err := url.Parse(p.publicURL(r, st)); err == nil {
		fr.proto, fr.host = pu.Scheme, pu.Host
	}
	fr.proxyURL = f.proxyURL
	if fr.proxyURL == "" {
		fr.proxyURL = fr.proto + "://" + fr.host + f.prefix
	}
	if a := ClientAddr(r, p.trusted); a.IsValid() {
		fr.client = a.String()
	}
	f.rp.ServeHTTP(w, r.WithContext(context.WithValue(st, fapiKey{}, fr)))
}

// confined reports a path that means the same to every server: clean
// (no dot or empty segments, backslash or NUL), no ';' parameters, and no
// encoded slash or backslash that would decode into another path.
func (f *fapiProxy) confined(u *url.URL) bool {
	if !cleanPath(u.Path) || strings.IndexByte(u.Path, ';') >= 0 {
		return false
	}
	raw := strings.ToLower(u.EscapedPath())
	return !strings.Contains(raw, "%2f") && !strings.Contains(raw, "%5c") && !strings.Contains(raw, "%00")
}

// rewrite builds the request to the Frontend API. ReverseProxy has removed
// the hop-by-hop headers and every X-Forwarded-* and Forwarded header.
func (f *fapiProxy) rewrite(pr *httputil.ProxyRequest) {
	fr, _ := pr.In.Context().Value(fapiKey{}).(*fapiRequest)
	out := pr.Out
	out.URL = &url.URL{
		Scheme:   f.target.Scheme,
		Host:     f.target.Host,
		Path:     strings.TrimSuffix(f.target.Path, "/") + fr.rest,
		RawQuery: pr.In.URL.RawQuery,
	}
	out.Host = "" // the Frontend API's own host
	h := out.Header
	h.Set(ClerkProxyURLHeader, fr.proxyURL)
	h.Set(ClerkSecretKeyHeader, string(f.secret))
	if fr.client != "" {
		h.Set("X-Forwarded-For", fr.client)
	}
	if fr.host != "" {
		h.Set("X-Forwarded-Host", fr.host)
		h.Set("X-Forwarded-Proto", fr.proto)
	}
	// Uncompressed, so that the body can be checked for the secret.
	h.Set("Accept-Encoding", "identity")
	removeCookies(h, func(name string) bool { return !clerkCookie(name) })
}

// clerkCookie reports the cookies the Frontend API reads: Clerk's
// (__client, __client_uat, __session, __refresh, __clerk_*) and those of
// Cloudflare, which fronts it (__cf_bm, _cfuvid, cf_clearance, …).
func clerkCookie(name string) bool {
	for _, p := range []string{"__client", "__session", "__refresh", "__clerk", "__cf", "_cfuvid", "cf_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// modifyResponse keeps the secret key out of the answer and points the
// Frontend API's redirects to itself back through the proxy.
func (f *fapiProxy) modifyResponse(res *http.Response) error {
	h := res.Header
	for name, vals := range h {
		drop := strings.EqualFold(name, ClerkSecretKeyHeader) || bytes.Contains([]byte(name), f.secret)
		for _, v := range vals {
			drop = drop || strings.Contains(v, string(f.secret))
		}
		if drop {
			delete(h, name)
			f.redactedOnce("a response header", res.Request)
		}
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return errFAPIEncoded
	}
	if res.Body != nil && res.Body != http.NoBody {
		req := res.Request
		res.Body = &redactor{r: res.Body, secret: f.secret, found: func() { f.redactedOnce("the response body", req) }}
		h.Del("Content-Length")
		res.ContentLength = -1
	}
	if loc := h.Get("Location"); loc != "" && res.Request != nil {
		fr, _ := res.Request.Context().Value(fapiKey{}).(*fapiRequest)
		if u, err := f.target.Parse(loc); err == nil && fr != nil && strings.EqualFold(u.Host, f.target.Host) {
			p := strings.TrimPrefix(u.EscapedPath(), strings.TrimSuffix(f.target.Path, "/"))
			rewritten := fr.proxyURL + p
			if u.RawQuery != "" {
				rewritten += "?" + u.RawQuery
			}
			if u.Fragment != "" {
				rewritten += "#" + u.EscapedFragment()
			}
			h.Set("Location", rewritten)
		}
	}
	return nil
}

// redactedOnce counts a removal of the secret and logs it (never the
// value), with the id of the request r (the upstream request) answers.
func (f *fapiProxy) redactedOnce(where string, r *http.Request) {
	if f.redacted.Add(1) == 1 {
		requestID := ""
		if r != nil {
			requestID = logctx.RequestID(r.Context())
		}
		f.log.Warn("the Clerk Frontend API echoed the secret key; it was removed from "+where+" (is clerk.frontend_api_url Clerk's?)",
			zap.String("request_id", requestID))
	}
}

// fail answers a failed Frontend API round trip without internals.
func (f *fapiProxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	kind := UpstreamErrorKind(r.Context(), err)
	if kind == UpstreamCanceled {
		w.WriteHeader(499)
		return
	}
	status, msg := http.StatusBadGateway, "Clerk's Frontend API could not be reached"
	var ne net.Error
	switch {
	case errors.Is(err, errFAPIEncoded):
		msg = "Clerk's Frontend API answered in a form sessiongate does not pass on"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		status, msg = http.StatusGatewayTimeout, "Clerk's Frontend API did not answer in time"
	}
	requestID := ""
	if st != nil {
		st.reason, st.upstreamErr = ReasonFrontendAPIUnavailable, kind
		requestID = st.requestID
	}
	f.log.Warn("Clerk Frontend API proxy error", zap.Int("status", status), zap.String("kind", kind),
		zap.String("request_id", requestID), zap.Error(err))
	writeJSON(w, status, "bad_gateway", ReasonFrontendAPIUnavailable, msg)
}

// redactor replaces every occurrence of secret in a body as it streams,
// holding back the bytes that could begin one.
type redactor struct {
	r      io.ReadCloser
	secret []byte
	found  func()
	out    []byte // ready to return
	tail   []byte // held back: may begin an occurrence
	buf    []byte
	eof    bool
}

// redactedText replaces the secret.
var redactedText = []byte("[redacted]")

func (x *redactor) Read(p []byte) (int, error) {
	for len(x.out) == 0 {
		if x.eof {
			if len(x.tail) == 0 {
				return 0, io.EOF
			}
			x.out, x.tail = x.tail, nil
			break
		}
		if x.buf == nil {
			x.buf = make([]byte, 32<<10)
		}
		n, err := x.r.Read(x.buf)
		data := append(x.tail, x.buf[:n]...)
		x.tail = nil
		switch {
		case err == io.EOF:
			x.eof = true
		case err != nil:
			return 0, err
		}
		if bytes.Contains(data, x.secret) {
			data = bytes.ReplaceAll(data, x.secret, redactedText)
			x.found()
		}
		keep := 0
		if !x.eof {
			keep = min(len(x.secret)-1, len(data))
		}
		x.out = data[:len(data)-keep]
		x.tail = append([]byte(nil), data[len(data)-keep:]...)
	}
	n := copy(p, x.out)
	x.out = x.out[n:]
	return n, nil
}

func (x *redactor) Close() error { return x.r.Close() }
