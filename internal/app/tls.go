package app

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
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
// ALPN (and HTTP/1.1) when tls is configured; HTTP/1.1 and cleartext
// HTTP/2 with prior knowledge with h2c; HTTP/1.1 alone otherwise.
func (a *App) configureListener(s *http.Server) {
	if a.certs != nil {
		s.TLSConfig = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			GetConfigForClient: a.certs.configForClient,
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

// certReloader gives each TLS handshake the current certificate and client
// CAs. The files are checked for a change (modification time, size, or a
// new file at the path, as when a Kubernetes Secret volume swaps its
// symlink) at most once per interval, by the handshake that finds the check
// due; the others never wait for it. New files that do not load (a key
// written after its certificate, a bad file) leave the previous ones in
// use; the error is logged once per change, and the next check tries again.
type certReloader struct {
	files    config.TLS
	interval time.Duration
	log      *zap.Logger

	current   atomic.Pointer[tls.Config]
	nextCheck atomic.Int64 // unix nanoseconds

	mu       sync.Mutex // guards following; TryLock: one checker at a time
	loaded   [3]os.FileInfo
	reported [3]os.FileInfo // the files whose failure was logged last
}

// newCertReloader loads the files of t: nil, nil when t is not enabled.
func newCertReloader(t config.TLS, interval time.Duration, log *zap.Logger) (*certReloader, error) {
	if !t.Enabled() {
		return nil, nil
	}
	c := &certReloader{files: t, interval: interval, log: log}
	stamps := c.stat()
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	c.install(cfg, stamps)
	c.nextCheck.Store(time.Now().Add(interval).UnixNano())
	return c, nil
}

// configForClient is tls.Config.GetConfigForClient.
func (c *certReloader) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	if time.Now().UnixNano() >= c.nextCheck.Load() && c.mu.TryLock() {
		c.checkLocked()
		c.mu.Unlock()
	}
	return c.current.Load(), nil
}

// recheck checks the files now, whatever the interval: a configuration
// reload (SIGHUP) picks up renewed certificates at once. Nil: nothing.
func (c *certReloader) recheck() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
}

func (c *certReloader) checkLocked() {
	c.nextCheck.Store(time.Now().Add(c.interval).UnixNano())
	stamps := c.stat()
	if sameFiles(stamps, c.loaded) {
		return
	}
	cfg, err := c.load()
	if err != nil {
		if !sameFiles(stamps, c.reported) {
			c.reported = stamps
			c.log.Error("tls: the changed certificate files do not load; the previous certificate stays in use", zap.Error(err))
		}
		return
	}
	c.install(cfg, stamps)
}

// stat returns the files' current state (nil entries for missing files).
func (c *certReloader) stat() [3]os.FileInfo {
	var out [3]os.FileInfo
	for i, name := range []string{c.files.CertFile, c.files.KeyFile, c.files.ClientCAFile} {
		if name != "" {
			out[i], _ = os.Stat(name)
		}
	}
	return out
}

func sameFiles(a, b [3]os.FileInfo) bool {
	for i := range a {
		switch {
		case a[i] == nil && b[i] == nil:
		case a[i] == nil || b[i] == nil:
			return false
		case !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() || !os.SameFile(a[i], b[i]):
			return false
		}
	}
	return true
}

// load reads the files into the configuration handshakes get.
func (c *certReloader) load() (*tls.Config, error) {
	cert, err := c.files.LoadCertificate()
	if err != nil {
		return nil, err
	}
	pool, err := c.files.LoadClientCAs()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*cert},
		// GetConfigForClient's answer replaces the server's configuration,
		// ALPN included: HTTP/2 first.
		NextProtos: []string{"h2", "http/1.1"},
	}
	if pool != nil {
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func (c *certReloader) install(cfg *tls.Config, stamps [3]os.FileInfo) {
	prev := c.current.Swap(cfg)
	c.loaded = stamps
	c.reported = [3]os.FileInfo{}
	leaf := cfg.Certificates[0].Leaf
	if leaf == nil {
		return
	}
	fields := []zap.Field{zap.String("subject", leaf.Subject.String()), zap.Strings("dns_names", leaf.DNSNames),
		zap.Time("not_after", leaf.NotAfter), zap.Bool("client_certificates_required", cfg.ClientAuth == tls.RequireAndVerifyClientCert)}
	msg := "tls: certificate loaded"
	if prev != nil {
		msg = "tls: certificate reloaded"
	}
	switch now := time.Now(); {
	case now.After(leaf.NotAfter):
		c.log.Warn(msg+"; it has EXPIRED: clients will refuse it", fields...)
	case now.Before(leaf.NotBefore):
		c.log.Warn(msg+"; it is not valid yet: clients will refuse it", fields...)
	default:
		c.log.Info(msg, fields...)
	}
}

// leaf is the certificate handshakes present now, for metrics.
func (c *certReloader) leaf() *x509.Certificate {
	cfg := c.current.Load()
	if cfg == nil || len(cfg.Certificates) == 0 {
		return nil
	}
	return cfg.Certificates[0].Leaf
}

// registerTLS exports when the served certificate expires, for an alert
// well before it does (nothing without tls).
func (m *metrics) registerTLS(c *certReloader) {
	if c == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sessiongate_tls_certificate_expiry_timestamp_seconds",
		Help: "When the proxy listener's current TLS certificate expires (Unix time); it follows certificate reloads.",
	}, func() float64 {
		if leaf := c.leaf(); leaf != nil {
			return float64(leaf.NotAfter.Unix())
		}
		return 0
	}))
}
