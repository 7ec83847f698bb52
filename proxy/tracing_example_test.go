package proxy_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// Trace the proxy with OpenTelemetry: the caller's W3C traceparent is
// continued, a server span records the route, the credential kind and the
// reason code (never the token), and the upstream gets a traceparent whose
// parent is that span. A real deployment hands it an SDK provider with an
// OTLP exporter (the sessiongate binary does, from its tracing block); a
// nil TracerProvider leaves tracing off at no cost.
func ExampleOptions_tracerProvider() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	gate, err := middleware.New(middleware.Config{Issuer: clerk.Issuer(), Keys: jwks.NewMemory(clerk.PublicKeys()...)})
	if err != nil {
		log.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.Header.Get("Traceparent"), "-")
		fmt.Println("upstream trace:", parts[1], "new parent:", parts[2] != "00f067aa0ba902b7")
	}))
	defer app.Close()
	upstream, _ := url.Parse(app.URL)

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	p, err := proxy.New(proxy.Options{
		Gate:           gate,
		Routes:         []proxy.Route{{Path: "/api", Upstream: upstream}},
		TracerProvider: tp,
	})
	if err != nil {
		log.Fatal(err)
	}

	token, err := clerk.Mint(clerktest.WithUser("user_2alice"))
	if err != nil {
		log.Fatal(err)
	}
	for _, auth := range []string{"Bearer " + token, ""} {
		req := httptest.NewRequest("GET", "http://app.example.com/api/items", nil)
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		p.ServeHTTP(httptest.NewRecorder(), req)
	}
	for _, s := range spans.Ended() {
		a := map[string]string{}
		for _, kv := range s.Attributes() {
			a[string(kv.Key)] = kv.Value.Emit()
		}
		fmt.Printf("%s %s status=%s route=%s token_type=%q reason=%q user=%q\n", s.SpanKind(), s.Name(),
			a["http.response.status_code"], a["sessiongate.route"], a["sessiongate.token_type"], a["sessiongate.reason"], a["enduser.id"])
	}
	// Output:
	// upstream trace: 4bf92f3577b34da6a3ce929d0e0e4736 new parent: true
	// server GET /api status=200 route=/api token_type="session_token" reason="" user="user_2alice"
	// server GET /api status=401 route=/api token_type="" reason="session-token-missing" user=""
}
