// Package certreload serves a TLS listener the certificate and client CAs
// of the configured files (config.TLS), re-read when the files change, so
// that a renewed certificate is served without a restart.
package certreload

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
)

// Reloader gives each TLS handshake the current certificate and client
// CAs. The files are checked for a change (modification time, size, or a
// new file at the path, as when a Kubernetes Secret volume swaps its
// symlink) at most once per interval, by the handshake that finds the check
// due; the others never wait for it. New files that do not load (a key
// written after its certificate, a bad file) leave the previous ones in
// use; the error is logged once per change, and the next check tries again.
type Reloader struct {
	files    config.TLS
	interval time.Duration
	log      *zap.Logger

	current   atomic.Pointer[tls.Config]
	nextCheck atomic.Int64 // unix nanoseconds

	mu       sync.Mutex // guards following; TryLock: one checker at a time
	loaded   [3]os.FileInfo
	reported [3]os.FileInfo // the files whose failure was logged last
}

// New loads the files of t, to be checked for a change at most once per
// interval: nil, nil when t is not enabled.
func New(t config.TLS, interval time.Duration, log *zap.Logger) (*Reloader, error) {
	if !t.Enabled() {
		return nil, nil
	}
	c := &Reloader{files: t, interval: interval, log: log}
	stamps := c.stat()
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	c.install(cfg, stamps)
	c.nextCheck.Store(time.Now().Add(interval).UnixNano())
	return c, nil
}

// GetConfigForClient is tls.Config.GetConfigForClient: the configuration
// of the current files, HTTP/2 and HTTP/1.1 offered by ALPN, client
// certificates required when a client CA file is configured.
func (c *Reloader) GetConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	if time.Now().UnixNano() >= c.nextCheck.Load() && c.mu.TryLock() {
		c.checkLocked()
		c.mu.Unlock()
	}
	return c.current.Load(), nil
}

// Recheck checks the files now, whatever the interval: a configuration
// reload (SIGHUP) picks up renewed certificates at once. Nil: nothing.
func (c *Reloader) Recheck() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
}

// Leaf is the parsed certificate handshakes present now, for metrics and
// alerts on its expiry; nil when crypto/tls left it unparsed (GODEBUG
// x509keypairleaf=0).
func (c *Reloader) Leaf() *x509.Certificate {
	cfg := c.current.Load()
	if cfg == nil || len(cfg.Certificates) == 0 {
		return nil
	}
	return cfg.Certificates[0].Leaf
}

func (c *Reloader) checkLocked() {
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
func (c *Reloader) stat() [3]os.FileInfo {
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
func (c *Reloader) load() (*tls.Config, error) {
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

func (c *Reloader) install(cfg *tls.Config, stamps [3]os.FileInfo) {
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
