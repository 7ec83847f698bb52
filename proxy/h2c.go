package proxy

import (
	"net/http"
)

// registerH2C teaches t the h2c scheme: a route whose upstream is
// h2c://host:port is reached over cleartext HTTP/2 with prior knowledge,
// the way gRPC servers without TLS listen. (https:// upstreams already get
// HTTP/2 through ALPN: t has ForceAttemptHTTP2.) Requests to such an
// upstream go over HTTP/2 whatever the client spoke, so an HTTP/1.1
// WebSocket upgrade cannot reach it; gRPC, with its trailers and streams,
// passes through ReverseProxy unchanged.
func registerH2C(t *http.Transport) {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Transport{
		Proxy:                 nil,
		DialContext:           t.DialContext,
		MaxIdleConns:          t.MaxIdleConns,
		MaxIdleConnsPerHost:   t.MaxIdleConnsPerHost,
		IdleConnTimeout:       t.IdleConnTimeout,
		ResponseHeaderTimeout: t.ResponseHeaderTimeout,
		ExpectContinueTimeout: t.ExpectContinueTimeout,
		Protocols:             &protocols,
	}
	t.RegisterProtocol("h2c", h2cRoundTripper{h2c})
}

// h2cRoundTripper sends an h2c:// request as the http:// request it stands
// for through a transport that speaks only cleartext HTTP/2.
type h2cRoundTripper struct{ t *http.Transport }

func (rt h2cRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	// A shallow copy with its own URL: the caller's request is not changed
	// (http.RoundTripper's contract), and nothing else needs copying.
	out := new(http.Request)
	*out = *r
	u := *r.URL
	u.Scheme = "http"
	out.URL = &u
	return rt.t.RoundTrip(out)
}

// CloseIdleConnections closes the h2c transport's idle connections.
func (rt h2cRoundTripper) CloseIdleConnections() { rt.t.CloseIdleConnections() }
