package certreload_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/certreload"
	"github.com/sessiongate/sessiongate/internal/testcert"
)

// files writes a certificate of ca with serial into a temporary directory.
func files(t *testing.T, ca *testcert.CA, serial int64) (config.TLS, string) {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := ca.Issue(t, serial, false)
	return config.TLS{
		CertFile: testcert.WriteFile(t, dir, "tls.crt", certPEM),
		KeyFile:  testcert.WriteFile(t, dir, "tls.key", keyPEM),
	}, dir
}

// served is the serial of the certificate the next handshake gets.
func served(t *testing.T, r *certreload.Reloader) int64 {
	t.Helper()
	cfg, err := r.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Certificates[0].Leaf.SerialNumber.Int64()
}

func newReloader(t *testing.T, files config.TLS, interval time.Duration) (*certreload.Reloader, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	r, err := certreload.New(files, interval, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	return r, logs
}

func TestNewWithoutTLSIsNil(t *testing.T) {
	r, err := certreload.New(config.TLS{}, time.Second, zap.NewNop())
	if r != nil || err != nil {
		t.Fatalf("got %v, %v; want nil, nil", r, err)
	}
	r.Recheck() // nil-safe
}

func TestNewRefusesFilesThatDoNotLoad(t *testing.T) {
	ca := testcert.NewCA(t)
	f, dir := files(t, ca, 1)
	f.KeyFile = dir + "/none.key"
	if _, err := certreload.New(f, time.Second, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Fatalf("got %v, want an error naming tls.key_file", err)
	}
}

func TestServesTheCertificateAndClientCAs(t *testing.T) {
	ca := testcert.NewCA(t)
	f, dir := files(t, ca, 10)
	f.ClientCAFile = testcert.WriteFile(t, dir, "ca.crt", testcert.NewCA(t).PEM)
	r, logs := newReloader(t, f, time.Hour)
	cfg, _ := r.GetConfigForClient(&tls.ClientHelloInfo{})
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil ||
		strings.Join(cfg.NextProtos, ",") != "h2,http/1.1" {
		t.Fatalf("config: min %x, client auth %v, ALPN %v", cfg.MinVersion, cfg.ClientAuth, cfg.NextProtos)
	}
	if got := served(t, r); got != 10 {
		t.Fatalf("serial %d, want 10", got)
	}
	if leaf := r.Leaf(); leaf == nil || leaf.SerialNumber.Int64() != 10 {
		t.Fatalf("Leaf %v, want serial 10", leaf)
	}
	if logs.FilterMessage("tls: certificate loaded").Len() != 1 {
		t.Fatalf("want one load log line, got %v", logs.All())
	}
}

func TestReloadsWhenTheFilesChange(t *testing.T) {
	ca := testcert.NewCA(t)
	f, dir := files(t, ca, 100)
	r, logs := newReloader(t, f, time.Nanosecond) // checked on every handshake

	// A key that does not match the certificate (a rotation caught half
	// way): the previous certificate stays, and the problem is logged once.
	newCert, newKey := ca.Issue(t, 101, false)
	testcert.WriteFile(t, dir, "tls.crt", newCert)
	for range 3 {
		if got := served(t, r); got != 100 {
			t.Fatalf("serial %d after a half rotation, want the previous certificate 100", got)
		}
	}
	failed := logs.FilterMessageSnippet("do not load").All()
	if len(failed) != 1 || failed[0].Level != zapcore.ErrorLevel || !strings.Contains(failed[0].ContextMap()["error"].(string), "tls.key_file") {
		t.Fatalf("logs %v: want one error naming tls.key_file", failed)
	}

	// The key arrives: the next handshake presents the new certificate.
	testcert.WriteFile(t, dir, "tls.key", newKey)
	if got := served(t, r); got != 101 {
		t.Fatalf("serial %d, want 101", got)
	}
	if r.Leaf().SerialNumber.Int64() != 101 {
		t.Fatalf("Leaf is not the new certificate")
	}
	if logs.FilterMessage("tls: certificate reloaded").Len() != 1 {
		t.Fatalf("want one reload log line, got %v", logs.All())
	}
}

func TestRecheckIgnoresTheInterval(t *testing.T) {
	ca := testcert.NewCA(t)
	f, dir := files(t, ca, 200)
	r, _ := newReloader(t, f, time.Hour)
	certPEM, keyPEM := ca.Issue(t, 201, false)
	testcert.WriteFile(t, dir, "tls.key", keyPEM)
	testcert.WriteFile(t, dir, "tls.crt", certPEM)
	if got := served(t, r); got != 200 {
		t.Fatalf("serial %d before the interval, want 200", got)
	}
	r.Recheck()
	if got := served(t, r); got != 201 {
		t.Fatalf("serial %d after Recheck, want 201", got)
	}
}
