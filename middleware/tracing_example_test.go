package middleware_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// Record an OpenTelemetry span around the requests the Gate guards. Behind
// otelhttp (or any handler that puts a span in the request's context) the
// Gate's span is its child; without one, as here, the Gate continues the
// caller's traceparent with a server span. The span carries the credential
// kind, the user id and, for a rejection, the reason code: never the token.
func ExampleConfig_tracerProvider() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	gate, err := middleware.New(middleware.Config{
		Issuer:         clerk.Issuer(),
		Keys:           jwks.NewMemory(clerk.PublicKeys()...),
		TracerProvider: tp, // nil: no span, no cost
	})
	if err != nil {
		log.Fatal(err)
	}
	h := gate.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))

	token, err := clerk.Mint(clerktest.WithUser("user_2alice"))
	if err != nil {
		log.Fatal(err)
	}
	for _, auth := range []string{"Bearer " + token, "Bearer ak_not_a_real_key"} {
		req := httptest.NewRequest("GET", "/reports", nil)
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		req.Header.Set("Authorization", auth)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for _, s := range spans.Ended() {
		a := map[string]string{}
		for _, kv := range s.Attributes() {
			a[string(kv.Key)] = kv.Value.Emit()
		}
		fmt.Printf("%s %s trace=%s token_type=%s user=%q reason=%q status=%s\n", s.SpanKind(), s.Name(), s.SpanContext().TraceID(),
			a["sessiongate.token_type"], a["enduser.id"], a["sessiongate.reason"], s.Status().Code)
	}
	// Output:
	// server sessiongate.require trace=4bf92f3577b34da6a3ce929d0e0e4736 token_type=session_token user="user_2alice" reason="" status=Unset
	// server sessiongate.require trace=4bf92f3577b34da6a3ce929d0e0e4736 token_type=api_key user="" reason="token-type-not-accepted" status=Error
}
