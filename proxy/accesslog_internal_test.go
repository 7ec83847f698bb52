package proxy

import (
	"bytes"
	"math"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// fixedClock is a zapcore.Clock that always answers t.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                         { return c.t }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// zapAccessLine is the line ServeHTTP's zap path writes for l, through the
// sessiongate binary's encoder configuration (internal/app.NewLogger).
func zapAccessLine(t testing.TB, now time.Time, name string, l *accessLine) []byte {
	t.Helper()
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var buf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(&buf), zap.InfoLevel), zap.WithClock(fixedClock{now}))
	if name != "" {
		log = log.Named(name)
	}
	trace := zap.Skip()
	if l.traceID != "" {
		trace = zap.String("trace_id", l.traceID)
	}
	log.Info("request",
		zap.String("method", l.method),
		zap.String("path", l.path),
		zap.String("original_path", l.originalPath),
		zap.String("route", l.route),
		zap.Int("status", l.status),
		zap.String("reason", l.reason),
		zap.Duration("duration", l.duration),
		zap.String("user_id", l.userID),
		zap.String("request_id", l.requestID),
		trace,
	)
	return buf.Bytes()
}

// hostileStrings are what a client controls in an access line (the path,
// the method) and what a token carries (the user id): quotes, backslashes,
// every control byte, line separators, invalid and truncated UTF-8.
var hostileStrings = []string{
	"", "GET", "/api/items", `/a"b\c`, "/x\ny\rz\tw", "\x00\x01\x1f\x7f", "/caf\u00e9/\u2028\u2029/\U0001F600",
	"/\xff\xfe", "/\xe2\x82", "/ok\xc3", "\xed\xa0\x80", `{"level":"error"}`, "user_2abc\n{\"forged\":1}",
}

// TestAccessLineMatchesZap holds the hand-written access line to zap's
// output byte for byte: if the escaping (log injection), a field's name or
// order, the time format or the number formats drift, it fails.
func TestAccessLineMatchesZap(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("plus0530", 5*3600+1800), time.FixedZone("minus8", -8*3600)}
	durations := []time.Duration{0, 1, 312 * time.Microsecond, 1500 * time.Millisecond, time.Hour, math.MaxInt64}
	n := 0
	for zi, zone := range zones {
		now := time.Date(2026, 12, 5, 8, 30, 1, 123456789, zone)
		for i, s := range hostileStrings {
			for _, name := range []string{"", "proxy"} {
				l := &accessLine{method: s, path: s, originalPath: hostileStrings[(i+1)%len(hostileStrings)], route: s,
					status: 200 + i, reason: s, duration: durations[(i+zi)%len(durations)], userID: s, requestID: s}
				if i%2 == 1 {
					l.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
				}
				want := zapAccessLine(t, now, name, l)
				got := appendAccessLine(nil, now, name, l)
				if !bytes.Equal(got, want) {
					t.Fatalf("string %q, zone %s, name %q:\n got %s\nwant %s", s, zone, name, got, want)
				}
				n++
			}
		}
	}
	t.Logf("%d lines identical to zap's", n)
}

func FuzzAccessLineMatchesZap(f *testing.F) {
	for _, s := range hostileStrings {
		f.Add(s, s, 200, int64(312000))
	}
	now := time.Date(2026, 12, 5, 8, 30, 1, 0, time.UTC)
	f.Fuzz(func(t *testing.T, path, user string, status int, d int64) {
		l := &accessLine{method: "GET", path: path, route: "app", status: status, duration: time.Duration(d), userID: user, requestID: path}
		if got, want := appendAccessLine(nil, now, "proxy", l), zapAccessLine(t, now, "proxy", l); !bytes.Equal(got, want) {
			t.Fatalf("path %q user %q:\n got %s\nwant %s", path, user, got, want)
		}
	})
}

// BenchmarkAccessLine compares the two ways to write one access line.
func BenchmarkAccessLine(b *testing.B) {
	l := &accessLine{method: "GET", path: "/api/items", route: "app", status: 200, duration: 312 * time.Microsecond,
		userID: "user_2abcdefghijklmnopqrstuvwxyz", requestID: "0123456789abcdef0123456789abcdef"}
	b.Run("zap", func(b *testing.B) {
		ec := zap.NewProductionEncoderConfig()
		ec.TimeKey = "ts"
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(discard{}), zap.InfoLevel)).Named("proxy")
		b.ReportAllocs()
		for b.Loop() {
			if ce := log.Check(zap.InfoLevel, "request"); ce != nil {
				ce.Write(zap.String("method", l.method), zap.String("path", l.path), zap.String("original_path", l.originalPath),
					zap.String("route", l.route), zap.Int("status", l.status), zap.String("reason", l.reason),
					zap.Duration("duration", l.duration), zap.String("user_id", l.userID), zap.String("request_id", l.requestID),
					zap.Skip())
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		a := newAccessWriter(discard{}, "proxy")
		b.ReportAllocs()
		for b.Loop() {
			a.write(l)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Sync() error                 { return nil }
