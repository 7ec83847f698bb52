package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/proxy"
)

// h2cServer is an upstream that speaks only cleartext HTTP/2 with prior
// knowledge, as a gRPC server without TLS does, and answers with trailers.
func h2cServer(t *testing.T) string {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Protocols:         &p,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Status")
			io.WriteString(w, r.Proto+" "+r.Header.Get("X-Sessiongate-User-Id"))
			// Streamed (no Content-Length), as gRPC answers are: an
			// HTTP/1.1 client then gets the trailers in the chunked body.
			http.NewResponseController(w).Flush()
			w.Header().Set("X-Status", "done")
		}),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func TestH2CUpstream(t *testing.T) {
	t.Parallel()
	addr := h2cServer(t)
	f := newFixture(t, func(*url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/", Upstream: mustURL(t, "h2c://"+addr), Auth: proxy.Public}}
	}, nil)
	front := httptest.NewServer(f.proxy)
	t.Cleanup(front.Close)
	// An HTTP/1.1 client; the upstream is reached over HTTP/2 all the same,
	// and its trailers come back.
	resp, err := http.Get(front.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "HTTP/2.0") || resp.Trailer.Get("X-Status") != "done" {
		t.Fatalf("%d %q trailer %v", resp.StatusCode, body, resp.Trailer)
	}
}

func TestRouteWithoutUpstreamOnlyDecidesForwardAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(*url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/", Auth: proxy.Public}}
	}, nil)
	w, _ := f.do(t, get("/page", ""))
	if w.Code != 404 || !strings.Contains(w.Body.String(), "this route has no upstream: it only decides forward-auth requests") {
		t.Fatalf("proxied: %d %s", w.Code, w.Body)
	}
	r := get(proxy.ForwardAuthPath, "")
	r.RemoteAddr = "127.0.0.1:1234"
	r.Header.Set("X-Forwarded-Uri", "/page")
	if w, _ := f.do(t, r); w.Code != 200 {
		t.Fatalf("forward-auth: %d %s", w.Code, w.Body)
	}
}
