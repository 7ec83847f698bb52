package devmode

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestDemoUpstream(t *testing.T) {
	d := &DemoUpstream{Prefix: "X-Sessiongate-", SignInURL: "http://127.0.0.1:1/sign-in?redirect_url=x", SignOutURL: "http://127.0.0.1:1/sign-out"}
	for _, tc := range []struct {
		name    string
		hdr     map[string]string
		html    bool
		want    []string
		notWant []string
	}{
		{"json identity", map[string]string{"X-Sessiongate-User-Id": "user_1", "X-Sessiongate-Org-Permissions": "org:a:b, org:c:d", "Cookie": "__session=secret", "Authorization": "Bearer secret"},
			false, []string{`"user_id": "user_1"`, `"org:a:b"`, `"org:c:d"`, `"Cookie": "[redacted]"`}, []string{"secret"}},
		{"json anonymous", nil, false, []string{`"identity": null`}, nil},
		{"html identity", map[string]string{"Accept": "text/html", "X-Sessiongate-User-Id": "<b>u</b>", "Cookie": "__session=secret"},
			true, []string{`&lt;b&gt;u&lt;/b&gt;`, "Sign out"}, []string{"<b>u</b>", "secret"}},
		{"html anonymous", map[string]string{"Accept": "text/html"}, true, []string{"Not signed in", "sign-in?redirect_url=x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://demo/p", nil)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			rec := &recorder{h: http.Header{}}
			d.ServeHTTP(rec, req)
			ct := rec.h.Get("Content-Type")
			if tc.html != strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q", ct)
			}
			body := rec.b.String()
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("body has %q:\n%s", w, body)
				}
			}
		})
	}
}

type recorder struct {
	h      http.Header
	b      bytes.Buffer
	status int
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(p []byte) (int, error) { return r.b.Write(p) }
func (r *recorder) WriteHeader(s int)           { r.status = s }
