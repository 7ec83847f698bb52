package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/internal/admin"
	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/testport"
)

type fakeClerk struct{ err error }

func (f fakeClerk) Revoke(_ context.Context, sid string) (*clerkapi.Session, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &clerkapi.Session{ID: sid, Status: "revoked"}, nil
}

const sid = "sess_2abcdefghijklmnopqrstuvwxyz"

var until = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func serve(t *testing.T, clerk admin.Revoker) (*httptest.Server, *[]string) {
	t.Helper()
	var denied []string
	srv := &admin.Server{
		DenyLocally: func(_ context.Context, s string) time.Time { denied = append(denied, s); return until },
		Clerk:       clerk,
	}
	mux := http.NewServeMux()
	mux.Handle(admin.RevokePattern, srv.RevokeHandler())
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts, &denied
}

// legacy is the body as the server wrote it before the wire type existed:
// a map, marshalled with its keys sorted.
func legacy(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b) + "\n"
}

// TestRevokeBodies: the reply is byte for byte the body the endpoint
// always answered, in each of its outcomes.
func TestRevokeBodies(t *testing.T) {
	base := map[string]any{"session_id": sid, "denied_locally": true, "denied_until": "2030-01-02T03:04:05Z"}
	with := func(kv ...string) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		clerk  admin.Revoker
		sid    string
		status int
		body   string
	}{
		{"no secret key", nil, sid, 200, legacy(with("clerk", admin.ClerkSkipped))},
		{"revoked", fakeClerk{}, sid, 200, legacy(with("clerk", "revoked", "status", "revoked"))},
		{"clerk failed", fakeClerk{err: errors.New("boom")}, sid, 502,
			legacy(with("error", "bad_gateway", "message", "denied locally; Clerk did not confirm the revocation: boom"))},
		{"bad session id", nil, "nope", 400, `{"error":"bad_request","message":"not a session id (` + clerkwire.SessionIDShape + `)"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, denied := serve(t, tc.clerk)
			resp, err := http.Post(ts.URL+"/sessions/"+tc.sid+"/revoke", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 400 {
				if len(*denied) != 0 {
					t.Errorf("denied %v on a bad id", *denied)
				}
			}
			if string(b) != tc.body {
				t.Errorf("body\n%s\nwant\n%s", b, tc.body)
			}
			if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
}

// TestClientRoundTrip: the client decodes what the server answers.
func TestClientRoundTrip(t *testing.T) {
	ts, denied := serve(t, fakeClerk{})
	endpoint, err := admin.RevokeURL(ts.URL+"/", sid)
	if err != nil {
		t.Fatal(err)
	}
	ans, status, err := admin.Revoke(endpoint, "tok")
	if err != nil || status != 200 {
		t.Fatalf("Revoke: %d %v", status, err)
	}
	want := admin.RevokeReply{Clerk: admin.ClerkRevoked, DeniedLocally: true, DeniedUntil: "2030-01-02T03:04:05Z", SessionID: sid, Status: "revoked"}
	if ans != want {
		t.Errorf("reply %+v, want %+v", ans, want)
	}
	if len(*denied) != 1 || (*denied)[0] != sid {
		t.Errorf("denied %v", *denied)
	}
}

func TestClientUnreachable(t *testing.T) {
	addr := testport.Reserve(t) // reserved, never listening: the dial is refused
	endpoint, _ := admin.RevokeURL("http://"+addr, sid)
	if _, _, err := admin.Revoke(endpoint, ""); !errors.Is(err, admin.ErrUnreachable) {
		t.Errorf("err %v, want ErrUnreachable", err)
	}
}

func TestRevokeURL(t *testing.T) {
	for base, want := range map[string]string{
		"http://127.0.0.1:9090": "http://127.0.0.1:9090/sessions/" + sid + "/revoke",
		"https://h/prefix/":     "https://h/prefix/sessions/" + sid + "/revoke",
		"ftp://h":               "",
		"http://u:p@h":          "",
		"http://h?x=1":          "",
		"http:///nohost":        "",
	} {
		got, err := admin.RevokeURL(base, sid)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("RevokeURL(%q) = %q, %v; want %q", base, got, err, want)
		}
	}
}
