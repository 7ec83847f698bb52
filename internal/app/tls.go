package app

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// defaultPollInterval is Options.PollInterval's default.
const defaultPollInterval = 2 * time.Second

func (a *App) pollInterval(opts Options) time.Duration {
	if opts.PollInterval > 0 {
		return opts.PollInterval
	}
	return defaultPollInterval
}

// configureListener sets the proxy server's protocols: TLS with HTTP/2 by
// ALPN (and HTTP/1.1) when tls is configured, the certificate from a.certs
// (internal/certreload); HTTP/1.1 and cleartext HTTP/2 with prior knowledge
// with h2c; HTTP/1.1 alone otherwise.
func (a *App) configureListener(s *http.Server) {
	if a.certs != nil {
		s.TLSConfig = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			GetConfigForClient: a.certs.GetConfigForClient,
		}
	}
	if a.cfg.H2C {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		s.Protocols = &p
	}
}

// serveOn serves s on l, over TLS when s has a TLS configuration. It must
// be called before s starts serving: net/http fills in s.TLSConfig for
// HTTP/2 even for a cleartext server.
func serveOn(s *http.Server, l net.Listener) error {
	if s.TLSConfig != nil {
		return s.ServeTLS(l, "", "") // the certificate comes from TLSConfig
	}
	return s.Serve(l)
}
