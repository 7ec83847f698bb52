package proxy_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/proxy"
)

// lockedBuffer is a concurrency-safe io.Writer.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Sync() error { return nil }

func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// subjectOf is the sub claim of a JWT (unverified: the test minted it).
func subjectOf(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Sub
}

// productionLogger is the sessiongate binary's logger (internal/app's
// LoggerTo) at level, writing to w, named "proxy" as the binary names it.
func productionLogger(w zapcore.WriteSyncer, level zapcore.Level) *zap.Logger {
	return app.LoggerTo(w, level).Named("proxy")
}

// varying are the values that differ between two requests: the time, the
// duration, the request id and the user id (each fake Clerk mints its own).
var varying = regexp.MustCompile(`"(ts|request_id|user_id)":"[^"]*"|"duration":[-+.0-9eE]+`)

func normalizeLine(line []byte) []byte {
	return varying.ReplaceAllFunc(line, func(m []byte) []byte {
		if bytes.HasPrefix(m, []byte(`"duration"`)) {
			return []byte(`"duration":0`)
		}
		return append(m[:bytes.IndexByte(m, ':')+1], `"-"`...)
	})
}

// TestAccessLogWriterWritesWhatTheBinaryLoggerWould sends the same
// requests (allowed, refused with a reason, a hostile path) through a proxy
// that logs access lines through the binary's zap logger and one that
// writes them to AccessLogWriter: the lines must be the same bytes, apart
// from the time, the duration, the request id (each the response's
// X-Request-Id) and the user id. A change to the binary's logger
// (internal/app.LoggerTo) that the hand-written line does not follow fails
// here.
func TestAccessLogWriterWritesWhatTheBinaryLoggerWould(t *testing.T) {
	var viaZap, direct lockedBuffer
	routes := func(up *url.URL) []proxy.Route {
		return []proxy.Route{{Name: "app", Path: "/", Upstream: up}}
	}
	fz := newFixture(t, routes, func(o *proxy.Options) {
		o.Logger = productionLogger(&viaZap, zap.InfoLevel)
		o.AccessLog = true
	})
	fd := newFixture(t, routes, func(o *proxy.Options) {
		o.Logger = productionLogger(zapcore.AddSync(&bytes.Buffer{}), zap.InfoLevel)
		o.AccessLog = true
		o.AccessLogWriter = &direct
	})
	tz, err := fz.inst.Mint()
	if err != nil {
		t.Fatal(err)
	}
	td, err := fd.inst.Mint()
	if err != nil {
		t.Fatal(err)
	}
	var idsZ, idsD []string
	for _, c := range []struct{ path, tz, td string }{
		{"/items", tz, td},
		{"/items", "", ""},
		{"/caf\u00e9\n{\"level\":\"error\"}", "garbage", "garbage"},
	} {
		rz, rd := get("/x", c.tz), get("/x", c.td)
		rz.URL.Path, rd.URL.Path = c.path, c.path
		wz, _ := fz.do(t, rz)
		wd, _ := fd.do(t, rd)
		idsZ = append(idsZ, wz.Header().Get("X-Request-Id"))
		idsD = append(idsD, wd.Header().Get("X-Request-Id"))
	}
	lz, ld := viaZap.lines(t), direct.lines(t)
	if len(lz) != 3 || len(ld) != 3 {
		t.Fatalf("lines: zap %d, direct %d, want 3 each", len(lz), len(ld))
	}
	// Each fixture's fake Clerk mints its own user.
	subjects := []string{subjectOf(t, tz), subjectOf(t, td)}
	rz, rd := bytes.Split(bytes.TrimSpace(viaZap.b.Bytes()), []byte("\n")), bytes.Split(bytes.TrimSpace(direct.b.Bytes()), []byte("\n"))
	for i := range rz {
		if nz, nd := normalizeLine(rz[i]), normalizeLine(rd[i]); !bytes.Equal(nz, nd) {
			t.Errorf("line %d differs:\n  zap    %s\n  direct %s", i, nz, nd)
		}
	}
	for i, d := range ld {
		z := lz[i]
		if d["request_id"] != idsD[i] || z["request_id"] != idsZ[i] {
			t.Errorf("line %d: request_id %v / %v, the responses said %q / %q", i, z["request_id"], d["request_id"], idsZ[i], idsD[i])
		}
		if i == 0 && (z["user_id"] != subjects[0] || d["user_id"] != subjects[1]) {
			t.Errorf("user_id %v / %v, want %v", z["user_id"], d["user_id"], subjects)
		}
		for _, k := range []string{"ts", "duration", "request_id", "user_id"} {
			if _, ok := d[k]; !ok {
				t.Errorf("line %d: no %s in %v", i, k, d)
			}
			delete(d, k)
			delete(z, k)
		}
		zs, _ := json.Marshal(z)
		ds, _ := json.Marshal(d)
		if !bytes.Equal(zs, ds) {
			t.Errorf("line %d:\n  zap    %s\n  direct %s", i, zs, ds)
		}
	}
	if ld[0]["status"] != float64(200) || ld[1]["reason"] != "session-token-missing" || ld[2]["path"] != "/caf\u00e9\n{\"level\":\"error\"}" {
		t.Errorf("unexpected lines: %v", ld)
	}
}

// TestAccessLogWriterFollowsTheLoggerLevel: above info, no access line,
// as with the zap path.
func TestAccessLogWriterFollowsTheLoggerLevel(t *testing.T) {
	var out lockedBuffer
	f := newFixture(t, nil, func(o *proxy.Options) {
		o.Logger = productionLogger(zapcore.AddSync(&bytes.Buffer{}), zap.WarnLevel)
		o.AccessLog = true
		o.AccessLogWriter = &out
	})
	f.do(t, get("/items", ""))
	if n := len(out.lines(t)); n != 0 {
		t.Fatalf("%d access lines at level warn, want 0", n)
	}
	g := newFixture(t, nil, func(o *proxy.Options) { o.AccessLogWriter = &out }) // AccessLog off
	g.do(t, get("/items", ""))
	if n := len(out.lines(t)); n != 0 {
		t.Fatalf("%d access lines with AccessLog off, want 0", n)
	}
}
