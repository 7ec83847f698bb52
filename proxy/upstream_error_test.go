package proxy_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testport"
	"github.com/sessiongate/sessiongate/proxy"
)

// TestUpstreamErrorKind classifies real round-trip failures, each made
// against a real socket.
func TestUpstreamErrorKind(t *testing.T) {
	t.Parallel()
	closedAddr := func(t *testing.T) string { return testport.Reserve(t) } // refuses connections
	// A server that accepts and closes without answering.
	hangUp := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 1024)
				_, _ = c.Read(buf)
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST rather than FIN
				}
				c.Close()
			}
		}()
		return l.Addr().String()
	}
	// A server that reads the request and never answers.
	silent := func(t *testing.T) string {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		t.Cleanup(func() { close(release); srv.Close() })
		return srv.Listener.Addr().String()
	}
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	for _, tc := range []struct {
		name   string
		url    func(t *testing.T) string
		cancel bool
		want   string
	}{
		{"connection refused", func(t *testing.T) string { return "http://" + closedAddr(t) + "/" }, false, proxy.UpstreamDial},
		{"unresolvable host", func(*testing.T) string { return "http://sessiongate-upstream.invalid/" }, false, proxy.UpstreamDial},
		{"no answer in time", func(t *testing.T) string { return "http://" + silent(t) + "/" }, false, proxy.UpstreamTimeout},
		{"connection reset", func(t *testing.T) string { return "http://" + hangUp(t) + "/" }, false, proxy.UpstreamReset},
		{"untrusted certificate", func(*testing.T) string { return tlsSrv.URL + "/" }, false, proxy.UpstreamTLS},
		{"client went away", func(t *testing.T) string { return "http://" + silent(t) + "/" }, true, proxy.UpstreamCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := &http.Transport{ResponseHeaderTimeout: 200 * time.Millisecond}
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			reqCtx := ctx
			if tc.cancel {
				var stop context.CancelFunc
				reqCtx, stop = context.WithCancel(ctx)
				tr.ResponseHeaderTimeout = 0
				time.AfterFunc(100*time.Millisecond, stop)
			}
			req, err := http.NewRequestWithContext(reqCtx, "GET", tc.url(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("the round trip succeeded")
			}
			if got := proxy.UpstreamErrorKind(reqCtx, err); got != tc.want {
				t.Fatalf("UpstreamErrorKind(%v) = %q, want %q", err, got, tc.want)
			}
			if !slices.Contains(proxy.UpstreamErrorKinds, tc.want) {
				t.Fatalf("%q is not in UpstreamErrorKinds", tc.want)
			}
		})
	}
	// A cancellation the request's own context did not see (a transport
	// shutting down) is not the client's.
	if got := proxy.UpstreamErrorKind(context.Background(), context.Canceled); got != proxy.UpstreamOther {
		t.Errorf("a bare context.Canceled = %q, want other", got)
	}
	if got := proxy.UpstreamErrorKind(context.Background(), errors.New("boom")); got != proxy.UpstreamOther {
		t.Errorf("an unknown error = %q, want other", got)
	}
}
