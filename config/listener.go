package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS is the proxy listener's TLS. With CertFile and KeyFile the listener
// serves TLS 1.2 or newer, with HTTP/2 negotiated by ALPN next to
// HTTP/1.1. The files are read at start (a missing or unparsable file
// refuses to start, naming the key) and re-read when they change.
type TLS struct {
	// CertFile is the PEM certificate chain, leaf first.
	// SESSIONGATE_TLS_CERT_FILE.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. SESSIONGATE_TLS_KEY_FILE.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, when set, is a PEM bundle of CA certificates: every
	// client MUST then present a certificate that chains to one of them
	// (mutual TLS), or the handshake fails. SESSIONGATE_TLS_CLIENT_CA_FILE.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the proxy listener serves TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// LoadCertificate reads and parses CertFile and KeyFile. The error names the
// key at fault ("tls.key_file: …") and never holds key material.
func (t TLS) LoadCertificate() (*tls.Certificate, error) {
	cert, key, err := loadKeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return cert, nil
}

// LoadClientCAs reads ClientCAFile: nil, nil without one. The error names
// the key.
func (t TLS) LoadClientCAs() (*x509.CertPool, error) {
	if t.ClientCAFile == "" {
		return nil, nil
	}
	pool, err := loadCertPool(t.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("tls.client_ca_file: %w", err)
	}
	return pool, nil
}

// loadKeyPair returns the certificate, or the key at fault and the error.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, string, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, "tls.cert_file", err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, "tls.key_file", err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(certPEM) {
		return nil, "tls.cert_file", errors.New("no PEM certificate found")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages name what is wrong ("private key does not
		// match public key", "failed to find any PEM data in key input")
		// and never the key's bytes.
		return nil, "tls.key_file", err
	}
	return &cert, "", nil
}

func loadCertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

// validateListener checks tls, h2c and watch_config.
func (c *Config) validateListener(ps *problems) {
	t := c.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		ps.add("tls.key_file", "required with tls.cert_file")
	case t.KeyFile != "" && t.CertFile == "":
		ps.add("tls.cert_file", "required with tls.key_file")
	case t.CertFile != "":
		if _, key, err := loadKeyPair(t.CertFile, t.KeyFile); err != nil {
			ps.add(key, "%v", err)
		}
	}
	if t.ClientCAFile != "" {
		if !t.Enabled() {
			ps.add("tls.client_ca_file", "needs tls.cert_file and tls.key_file: client certificates are asked for in the TLS handshake")
		} else if _, err := loadCertPool(t.ClientCAFile); err != nil {
			ps.add("tls.client_ca_file", "%v", err)
		}
	}
	if c.H2C && t.Enabled() {
		ps.add("h2c", "cleartext HTTP/2 and tls exclude each other: over TLS, HTTP/2 is negotiated by ALPN already (remove h2c)")
	}
}

// ForwardAuthOnly reports whether the configuration only decides
// forward-auth requests (/_sessiongate/auth): it has routes, and neither a
// top-level upstream nor a route with one. A request proxied to such a
// route gets 404.
func (c *Config) ForwardAuthOnly() bool {
	if c.Upstream != "" || len(c.Routes) == 0 {
		return false
	}
	for _, r := range c.Routes {
		if r.Upstream != "" {
			return false
		}
	}
	return true
}
