package app_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testcert"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// protoUpstream answers with the protocol it was reached over and the
// identity the gate sent.
func protoUpstream(t *testing.T) string {
	return upstream(t, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"user": r.Header.Get("X-Sessiongate-User-Id"), "xfp": r.Header.Get("X-Forwarded-Proto")})
	})
}

// tlsGate starts a gate serving TLS with a certificate of ca, the files in
// a temporary directory; clientCA, when set, requires client certificates.
func tlsGate(t *testing.T, ca *testcert.CA, clientCA *testcert.CA, poll time.Duration) (*opsGate, string) {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := ca.Issue(t, 100, false)
	certFile := writeFile(t, dir, "tls.crt", certPEM)
	keyFile := writeFile(t, dir, "tls.key", keyPEM)
	up := protoUpstream(t)
	g := startOps(t, opsOptions{
		config: func(c *config.Config, _ *clerktest.Instance) {
			c.Upstream = up
			c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
			if clientCA != nil {
				c.TLS.ClientCAFile = writeFile(t, dir, "ca.crt", clientCA.PEM)
			}
		},
		options: func(o *app.Options) { o.PollInterval = poll },
	})
	return g, dir
}

func tlsClient(ca *testcert.CA, h2 bool, certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: certs}}
	var p http.Protocols
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	tr.Protocols = &p
	return &http.Client{Transport: tr}
}

func get(t *testing.T, c *http.Client, url, token string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

func TestTLSListenerServesHTTP2AndHTTP1(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	g, _ := tlsGate(t, ca, nil, time.Hour)
	tok := g.token(t, "user_tls")
	for _, tc := range []struct {
		name  string
		h2    bool
		proto string
	}{
		{"HTTP/2 by ALPN", true, "HTTP/2.0"},
		{"HTTP/1.1", false, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsClient(ca, tc.h2)
			resp, body, err := get(t, c, "https://localhost:"+port(g.addr)+"/x", tok)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Proto != tc.proto || resp.StatusCode != 200 {
				t.Fatalf("got %s %d, want %s 200: %s", resp.Proto, resp.StatusCode, tc.proto, body)
			}
			if !strings.Contains(body, `"user":"user_tls"`) || !strings.Contains(body, `"xfp":"https"`) {
				t.Fatalf("upstream saw %s; want the user and X-Forwarded-Proto https", body)
			}
			resp, body, err = get(t, c, "https://localhost:"+port(g.addr)+"/x", "")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 401 || resp.Header.Get("X-Clerk-Auth-Reason") != "session-token-missing" {
				t.Fatalf("without a token: %d %s", resp.StatusCode, body)
			}
		})
	}
	// A cleartext request to the TLS port is not served.
	resp, err := http.Get("http://" + g.addr + "/x")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("cleartext request to the TLS listener: %d", resp.StatusCode)
		}
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// serial is the serial number of the certificate the listener presents.
func serial(t *testing.T, ca *testcert.CA, addr string) int64 {
	t.Helper()
	return testcert.Serial(t, ca.Pool(), addr)
}

func TestTLSCertificateReloadsWhenTheFilesChange(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	g, dir := tlsGate(t, ca, nil, 1) // the files checked on every handshake
	if got := serial(t, ca, g.addr); got != 100 {
		t.Fatalf("serial %d, want 100", got)
	}

	// A key that does not match the certificate (a rotation caught half
	// way): the previous certificate stays, and the problem is logged.
	newCert, newKey := ca.Issue(t, 101, false)
	writeFile(t, dir, "tls.crt", newCert)
	testwait.Eventually(t, "the half-written rotation is logged", func() bool {
		_ = serial(t, ca, g.addr)
		return g.logs.FilterMessageSnippet("do not load").Len() > 0
	})
	if got := serial(t, ca, g.addr); got != 100 {
		t.Fatalf("serial %d after a half rotation, want the previous certificate 100", got)
	}
	e := g.logs.FilterMessageSnippet("do not load").All()[0]
	if e.Level != zapcore.ErrorLevel || !strings.Contains(e.ContextMap()["error"].(string), "tls.key_file") {
		t.Fatalf("log %v %v: want an error naming tls.key_file", e.Level, e.ContextMap())
	}

	// The key arrives: the next handshakes present the new certificate.
	writeFile(t, dir, "tls.key", newKey)
	testwait.Eventually(t, "the new certificate is presented", func() bool { return serial(t, ca, g.addr) == 101 })
	if g.logs.FilterMessage("tls: certificate reloaded").Len() != 1 {
		t.Fatalf("want one reload log line")
	}
	// Connections made with the new certificate serve requests.
	resp, body, err := get(t, tlsClient(ca, true), "https://localhost:"+port(g.addr)+"/", g.token(t, "user_rotated"))
	if err != nil || resp.StatusCode != 200 || !strings.Contains(body, "user_rotated") {
		t.Fatalf("after the reload: %v %v %s", err, resp, body)
	}
}

func TestTLSCertificateReloadsOnAConfigReload(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	g, dir := tlsGate(t, ca, nil, time.Hour) // no periodic check within the test
	certPEM, keyPEM := ca.Issue(t, 200, false)
	writeFile(t, dir, "tls.key", keyPEM)
	writeFile(t, dir, "tls.crt", certPEM)
	if got := serial(t, ca, g.addr); got != 100 {
		t.Fatalf("serial %d before the reload, want 100", got)
	}
	_ = g.app.Reload("SIGHUP") // refused (no configuration source); the certificate is re-read all the same
	if got := serial(t, ca, g.addr); got != 200 {
		t.Fatalf("serial %d after SIGHUP, want 200", got)
	}
}

func TestTLSClientCertificatesRequiredWithClientCA(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	clients := testcert.NewCA(t)
	g, _ := tlsGate(t, ca, clients, time.Hour)
	url := "https://localhost:" + port(g.addr) + "/"
	tok := g.token(t, "user_mtls")

	if _, _, err := get(t, tlsClient(ca, true), url, tok); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	stranger := testcert.NewCA(t).KeyPair(t, 7, true)
	if _, _, err := get(t, tlsClient(ca, true, stranger), url, tok); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	resp, body, err := get(t, tlsClient(ca, true, clients.KeyPair(t, 8, true)), url, tok)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(body, "user_mtls") {
		t.Fatalf("a client with a good certificate: %v %v %s", err, resp, body)
	}
	// The client certificate authenticates the connection; the session
	// token still decides the request.
	resp, _, err = get(t, tlsClient(ca, true, clients.KeyPair(t, 9, true)), url, "")
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("a good client certificate without a token: %v %v", err, resp)
	}
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

func TestH2CServesCleartextHTTP2(t *testing.T) {
	t.Parallel()
	up := protoUpstream(t)
	for _, on := range []bool{true, false} {
		g := startOps(t, opsOptions{config: func(c *config.Config, _ *clerktest.Instance) {
			c.Upstream = up
			c.H2C = on
		}})
		tok := g.token(t, "user_h2c")
		resp, body, err := get(t, h2cClient(), "http://"+g.addr+"/", tok)
		if !on {
			// Without h2c, HTTP/2 prior knowledge is not spoken.
			if err == nil && resp.ProtoMajor == 2 {
				t.Fatalf("h2c off: served HTTP/2: %d %s", resp.StatusCode, body)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || !strings.Contains(body, "user_h2c") {
			t.Fatalf("h2c: %s %d %s", resp.Proto, resp.StatusCode, body)
		}
		// HTTP/1.1 keeps working next to it.
		resp, _, err = get(t, http.DefaultClient, "http://"+g.addr+"/", tok)
		if err != nil || resp.ProtoMajor != 1 || resp.StatusCode != 200 {
			t.Fatalf("HTTP/1.1 with h2c on: %v %v", err, resp)
		}
	}
}

func TestTLSFilesAreCheckedAtStart(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	certPEM, keyPEM := ca.Issue(t, 1, false)
	_, otherKey := ca.Issue(t, 2, false)
	cert := writeFile(t, dir, "tls.crt", certPEM)
	key := writeFile(t, dir, "tls.key", keyPEM)
	wrongKey := writeFile(t, dir, "other.key", otherKey)
	for _, tc := range []struct {
		name string
		tls  config.TLS
		h2c  bool
		want string
	}{
		{"missing certificate file", config.TLS{CertFile: dir + "/none.crt", KeyFile: key}, false, "tls.cert_file: open"},
		{"missing key file", config.TLS{CertFile: cert, KeyFile: dir + "/none.key"}, false, "tls.key_file: open"},
		{"a key as the certificate", config.TLS{CertFile: key, KeyFile: key}, false, "tls.cert_file: no PEM certificate found"},
		{"key of another certificate", config.TLS{CertFile: cert, KeyFile: wrongKey}, false, "tls.key_file: tls: private key does not match public key"},
		{"certificate without key", config.TLS{CertFile: cert}, false, "tls.key_file: required with tls.cert_file"},
		{"client CA without tls", config.TLS{ClientCAFile: cert}, false, "tls.client_ca_file: needs tls.cert_file"},
		{"client CA not PEM", config.TLS{CertFile: cert, KeyFile: key, ClientCAFile: key}, false, "tls.client_ca_file: no PEM certificate found"},
		{"h2c with tls", config.TLS{CertFile: cert, KeyFile: key}, true, "h2c: cleartext HTTP/2 and tls exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Clerk.Issuer = "https://clerk.example.com"
			cfg.Upstream = "http://127.0.0.1:1"
			cfg.TLS = tc.tls
			cfg.H2C = tc.h2c
			cfg.Normalize()
			_, err := app.New(&cfg, app.Options{})
			var ve *config.ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a validation error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("the error shows key material: %v", err)
			}
		})
	}
}
