package app

import (
	"testing"

	"github.com/sessiongate/sessiongate/config"
)

func TestTracingIsOnOnlyWithACollectorAndNotDisabled(t *testing.T) {
	t.Parallel()
	withEndpoint := config.Tracing{Endpoint: "http://127.0.0.1:4318"}
	for _, tc := range []struct {
		name string
		t    config.Tracing
		env  map[string]string
		want bool
	}{
		{"nothing set: off", config.Tracing{}, nil, false},
		{"tracing.endpoint", withEndpoint, nil, true},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", config.Tracing{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", config.Tracing{}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{"OTEL_SDK_DISABLED=true wins", withEndpoint, map[string]string{"OTEL_SDK_DISABLED": "true"}, false},
		{"OTEL_SDK_DISABLED=false", withEndpoint, map[string]string{"OTEL_SDK_DISABLED": "false"}, true},
		{"OTEL_TRACES_EXPORTER=none wins", config.Tracing{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{"a sampler alone is not a collector", config.Tracing{}, map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, false},
	} {
		if got := tracingOn(tc.t, func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%s: tracing on = %v, want %v", tc.name, got, tc.want)
		}
	}
}
