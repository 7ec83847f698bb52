package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
)

func pemText(tb testing.TB, typ string, der []byte) string {
	tb.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// bareBody strips the armor of a PEM, as Clerk's dashboard shows the key.
func bareBody(p string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(p), "\n") {
		if !strings.HasPrefix(l, "-----") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func TestNewStatic(t *testing.T) {
	t.Parallel()
	priv := rsaKey(t, 0)
	pkix, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(&priv.PublicKey)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	shortDER, err := x509.MarshalPKIXPublicKey(&shortKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemPKIX := pemText(t, "PUBLIC KEY", pkix)

	tests := []struct {
		name    string
		in      string
		wantErr string // "" means accepted
	}{
		{name: "PEM PUBLIC KEY", in: pemPKIX},
		{name: "PEM with surrounding whitespace", in: "\n  " + pemPKIX + "\n\n"},
		{name: "PEM with escaped newlines on one line", in: strings.ReplaceAll(pemPKIX, "\n", `\n`)},
		{name: "bare base64 body over several lines", in: bareBody(pemPKIX)},
		{name: "bare base64 body on one line", in: base64.StdEncoding.EncodeToString(pkix)},
		{name: "PEM RSA PUBLIC KEY (PKCS1)", in: pemText(t, "RSA PUBLIC KEY", pkcs1)},
		{name: "bare PKCS1 body", in: base64.StdEncoding.EncodeToString(pkcs1)},

		{name: "empty", in: "  \n", wantErr: "empty"},
		{name: "garbage", in: "not a key at all!", wantErr: "neither PEM nor base64"},
		{name: "base64 of garbage", in: base64.StdEncoding.EncodeToString([]byte("hello world")), wantErr: "not a DER public key"},
		{name: "broken PEM", in: "-----BEGIN PUBLIC KEY-----\nAAAA", wantErr: "malformed PEM"},
		{name: "corrupt PEM body", in: pemText(t, "PUBLIC KEY", pkix[:100]), wantErr: "malformed PUBLIC KEY"},
		{name: "PKCS8 private key", in: pemText(t, "PRIVATE KEY", pkcs8), wantErr: "private key"},
		{name: "PKCS1 private key", in: pemText(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv)), wantErr: "private key"},
		{name: "bare PKCS8 private key", in: base64.StdEncoding.EncodeToString(pkcs8), wantErr: "private key"},
		{name: "bare PKCS1 private key", in: base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PrivateKey(priv)), wantErr: "private key"},
		{name: "EC public key", in: pemText(t, "PUBLIC KEY", ecDER), wantErr: "not an RSA key"},
		{name: "bare EC public key", in: base64.StdEncoding.EncodeToString(ecDER), wantErr: "not an RSA key"},
		{name: "Ed25519 public key", in: pemText(t, "PUBLIC KEY", edDER), wantErr: "not an RSA key"},
		{name: "1024-bit key", in: pemText(t, "PUBLIC KEY", shortDER), wantErr: "shorter than 2048"},
		{name: "certificate", in: pemText(t, "CERTIFICATE", pkix), wantErr: "not a PUBLIC KEY"},
		{name: "two PEM blocks", in: pemPKIX + pemPKIX, wantErr: "more than one PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewStatic(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewStatic: %v", err)
			}
			k, err := s.Key(context.Background(), "ins_anything")
			if err != nil {
				t.Fatal(err)
			}
			if k.ID != StaticKeyID || k.Algorithm != RS256 || k.Public.N.Cmp(priv.N) != 0 || k.Public.E != priv.E {
				t.Errorf("key = %s/%s, want %s/RS256 with the configured modulus", k.ID, k.Algorithm, StaticKeyID)
			}
		})
	}
}

func TestStaticAnswersEveryKid(t *testing.T) {
	t.Parallel()
	pkix, _ := x509.MarshalPKIXPublicKey(&rsaKey(t, 1).PublicKey)
	s, err := NewStatic(pemText(t, "PUBLIC KEY", pkix))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.Key(context.Background(), "")
	for _, kid := range []string{"", "ins_1", "ins_2", "static", strings.Repeat("x", 1000)} {
		k, err := s.Key(context.Background(), kid)
		if err != nil || k != first {
			t.Errorf("Key(%q) = %p, %v; want the one key", kid, k, err)
		}
	}
	if !s.Ready() {
		t.Error("Ready() = false")
	}
	if st := s.Stats(); st.Keys != 1 || st.Fetches != 0 || st.LastSuccess.IsZero() {
		t.Errorf("Stats = %+v", st)
	}
}
