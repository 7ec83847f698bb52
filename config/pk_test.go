package config

import (
	"strings"
	"testing"
)

const (
	pkLivePuma = "pk_live_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
	pkTestPuma = "pk_test_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
)

func TestParsePublishableKeyVectors(t *testing.T) {
	t.Parallel()
	// notes/clerk-handshake.md §2.1 (host) and §4 (suffix).
	tests := []struct {
		pk     string
		live   bool
		host   string
		suffix string
	}{
		{pkLivePuma, true, "clerk.inspired.puma-74.lcl.dev", "MqCvchyS"},
		{pkTestPuma, false, "clerk.inspired.puma-74.lcl.dev", "vWCgMp3A"},
		{"pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ=", true, "fake-clerk-test.clerk.accounts.dev", "qReyu04C"},
		{"pk_test_Y2xlcmsuY2xlcmsuZGV2JA", false, "clerk.clerk.dev", "QvfNY2dr"},
		{"pk_test_ZW5vdWdoLWFscGFjYS04Mi5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k", false, "enough-alpaca-82.clerk.accounts.lclclerk.com", "jtYvyt_H"},
		{"pk_test_eHh4eHh4LXhhYWFhYS1hYS5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k", false, "xxxxxx-xaaaaa-aa.clerk.accounts.lclclerk.com", "tZJdb-5s"},
	}
	for _, tt := range tests {
		t.Run(tt.pk, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePublishableKey(tt.pk)
			if err != nil {
				t.Fatal(err)
			}
			want := PublishableKey{Live: tt.live, FrontendAPI: tt.host, CookieSuffix: tt.suffix}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestParsePublishableKeyRejects(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string {
		return strings.TrimRight(encodeStd(s), "=")
	}
	tests := []struct {
		name, pk, want string
	}{
		{"missing $", "pk_live_" + b64("clerk.example.com"), "does not end with $"},
		{"extra $", "pk_live_" + b64("clerk.$example.com$"), "more than one $"},
		{"no dot", "pk_live_" + b64("localhost$"), "no dot"},
		{"two underscores only", "pk_live", "pk_live_ or pk_test_"},
		{"four parts", "pk_live_" + b64("clerk.example.com$") + "_x", "three"},
		{"bad base64", "pk_live_!!!not-base64!!!", "not base64"},
		{"secret key prefix", "sk_live_" + b64("clerk.example.com$"), "pk_live_ or pk_test_"},
		{"empty", "", "pk_live_ or pk_test_"},
		{"slash in host", "pk_live_" + b64("clerk.example.com/x$"), "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePublishableKey(tt.pk)
			if err == nil {
				t.Fatalf("ParsePublishableKey(%q) = nil error", tt.pk)
			}
			mustContain(t, err.Error(), tt.want, "config: publishable key")
		})
	}
}

func FuzzParsePublishableKey(f *testing.F) {
	f.Add(pkLivePuma)
	f.Add("pk_test_Y2xlcmsuY2xlcmsuZGV2JA==")
	f.Fuzz(func(t *testing.T, pk string) {
		k, err := ParsePublishableKey(pk)
		if err != nil {
			return
		}
		if !strings.Contains(k.FrontendAPI, ".") || strings.Contains(k.FrontendAPI, "$") || len(k.CookieSuffix) != 8 {
			t.Errorf("accepted %q as %+v", pk, k)
		}
	})
}
