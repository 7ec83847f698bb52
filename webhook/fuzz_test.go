package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/webhook"
)

// fuzzNow is the verifier's clock in the fuzz targets: fixed, so that a
// seed signed at this instant stays valid in every worker process.
var fuzzNow = time.Unix(1_800_000_000, 0)

// expectedMAC is the Svix HMAC computed without the package under test.
func expectedMAC(id, ts string, body []byte) []byte {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return mac.Sum(nil)
}

// FuzzVerify feeds arbitrary svix-* / webhook-* headers and bodies to
// Verifier.Verify. It must never panic, and it must accept only when one of
// the "v1," signatures decodes to the right HMAC over id.timestamp.body
// (computed independently here) with a timestamp inside the tolerance: the
// fuzzer cannot forge an HMAC, so any other acceptance is a bypass.
func FuzzVerify(f *testing.F) {
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	body := []byte(`{"type":"session.revoked","object":"event","data":{"object":"session","id":"sess_1"}}`)
	good := "v1," + base64.StdEncoding.EncodeToString(expectedMAC("msg_1", ts, body))
	seeds := []struct {
		svixID, svixTS, svixSig string
		whID, whTS, whSig       string
		body                    []byte
	}{
		{"msg_1", ts, good, "", "", "", body},
		{"", "", "", "msg_1", ts, good, body},
		{"msg_1", ts, "v1a,xyz " + good + " v2,AAAA", "", "", "", body},
		{"msg_1", ts, strings.Replace(good, "v1,", "v2,", 1), "", "", "", body},
		{"msg_1", ts, "v1," + base64.RawStdEncoding.EncodeToString(expectedMAC("msg_1", ts, body)), "", "", "", body},
		{"msg_1", ts + "0", good, "", "", "", body},
		{"msg_1", "-" + ts, good, "", "", "", body},
		{"msg_1", " " + ts, good, "", "", "", body},
		{"msg_1", "0x6b49d200", good, "", "", "", body},
		{"msg_1", "1e9", good, "", "", "", body},
		{"msg_1", "99999999999999999999", good, "", "", "", body},
		{"msg_1", ts, "v1,", "", "", "", body},
		{"msg_1", ts, ",,, v1,,", "", "", "", body},
		{"msg_1", ts, "v1,@@@", "", "", "", body},
		{"msg_1", ts, good, "msg_2", ts, "v1,AAAA", body},
		{"msg.1", ts, good, "", "", "", body},
		{"msg_1", ts, good, "", "", "", append(append([]byte{}, body...), ' ')},
		{"msg_1", ts, good, "", "", "", nil},
		{"", ts, good, "", "", "", body},
	}
	for _, s := range seeds {
		f.Add(s.svixID, s.svixTS, s.svixSig, s.whID, s.whTS, s.whSig, s.body)
	}
	v, err := webhook.NewVerifier(secret, func() time.Time { return fuzzNow })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, svixID, svixTS, svixSig, whID, whTS, whSig string, body []byte) {
		h := http.Header{}
		set := func(name, v string) {
			if v != "" {
				h.Set(name, v)
			}
		}
		set("svix-id", svixID)
		set("svix-timestamp", svixTS)
		set("svix-signature", svixSig)
		set("webhook-id", whID)
		set("webhook-timestamp", whTS)
		set("webhook-signature", whSig)
		got, err := v.Verify(h, body)
		if err != nil {
			if got != "" {
				t.Fatalf("Verify returned id %q with error %v", got, err)
			}
			return
		}
		// The headers Verify must have used: svix-* first, else webhook-*.
		pick := func(a, b string) string {
			if a != "" {
				return a
			}
			return b
		}
		id, tsv, sigs := pick(svixID, whID), pick(svixTS, whTS), pick(svixSig, whSig)
		if got != id {
			t.Fatalf("accepted message id %q, want %q", got, id)
		}
		sec, perr := strconv.ParseInt(tsv, 10, 64)
		if perr != nil {
			t.Fatalf("accepted a malformed timestamp %q", tsv)
		}
		if d := fuzzNow.Sub(time.Unix(sec, 0)); d > webhook.Tolerance || d < -webhook.Tolerance {
			t.Fatalf("accepted a timestamp %s away from now", d)
		}
		want := expectedMAC(id, tsv, body)
		for _, entry := range strings.Fields(sigs) {
			if sig, ok := strings.CutPrefix(entry, "v1,"); ok {
				if raw, err := base64.StdEncoding.DecodeString(sig); err == nil && hmac.Equal(raw, want) {
					return
				}
			}
		}
		t.Fatalf("accepted without a valid HMAC: id=%q ts=%q sigs=%q body=%q", id, tsv, sigs, body)
	})
}

// FuzzHandler posts correctly signed deliveries with arbitrary bodies to the
// webhook Handler: a verified but hostile payload must never panic, must be
// answered 200 or 4xx (never 5xx), and may only revoke ids that start with
// sess_ taken from a revoking event of a body that is valid JSON.
func FuzzHandler(f *testing.F) {
	for _, b := range []string{
		`{"type":"session.revoked","object":"event","data":{"object":"session","id":"sess_1"}}`,
		`{"type":"session.ended","data":{"id":"sess_2"}}`,
		`{"type":"session.removed","data":{"id":"user_2"}}`,
		`{"type":"session.created","data":{"id":"sess_3"}}`,
		`{"type":"session.revoked","data":{"id":["sess_4"]}}`,
		`{"type":"session.revoked","data":null}`,
		`{"type":"session.revoked","type":"session.created","data":{"id":"sess_5"}}`,
		`{"type":"session.revoked","data":{"id":"sess_6","id":"sess_7"}}`,
		`{"type":"session.revoked","data":{"id":"sess_\u0000x"}}`,
		`[]`, `null`, `"x"`, ``, `{`, "\xff\xfe",
	} {
		f.Add("msg_seed", []byte(b))
	}
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		if id == "" || strings.ContainsAny(id, "\r\n") || len(body) > webhook.MaxBody {
			return
		}
		v, err := webhook.NewVerifier(secret, func() time.Time { return fuzzNow })
		if err != nil {
			t.Fatal(err)
		}
		var revoked []string
		h := &webhook.Handler{Verifier: v, Revoke: func(sid string) { revoked = append(revoked, sid) }}
		sig, err := webhook.Sign(secret, id, fuzzNow, body)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "/_sessiongate/webhooks/clerk", bytes.NewReader(body))
		r.Header.Set("svix-id", id)
		r.Header.Set("svix-timestamp", fmt.Sprint(fuzzNow.Unix()))
		r.Header.Set("svix-signature", sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 || (w.Code != 200 && w.Code/100 != 4) {
			t.Fatalf("status %d for a signed delivery: %s", w.Code, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("response body is not JSON: %q", w.Body)
		}
		if len(revoked) > 1 {
			t.Fatalf("one delivery revoked %d sessions", len(revoked))
		}
		for _, sid := range revoked {
			if !strings.HasPrefix(sid, "sess_") || !json.Valid(body) {
				t.Fatalf("revoked %q from body %q", sid, body)
			}
			if w.Code != 200 {
				t.Fatalf("revoked %q but answered %d", sid, w.Code)
			}
		}
	})
}
