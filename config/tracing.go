package config

import (
	"net/url"
	"strings"
)

// Tracing exports OpenTelemetry traces over OTLP/HTTP
// (docs/deployment.md#tracing). Tracing is on when Endpoint, or the
// standard OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// is set, and OTEL_SDK_DISABLED is not true; off, it costs nothing. The
// other OTEL_EXPORTER_OTLP_* variables (headers, timeout, compression,
// certificates) apply as the OpenTelemetry SDK defines them.
type Tracing struct {
	// Endpoint is the OTLP/HTTP collector's base URL
	// (http://otel-collector:4318): spans are posted to {Endpoint}/v1/traces.
	// It wins over OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT. Default "": the
	// environment decides, else tracing is off.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of new traces recorded, 0 to 1. A request
	// whose caller's trace is sampled is always recorded, one whose
	// caller's is not never is (parent-based). OTEL_TRACES_SAMPLER, when
	// set, replaces it. Default 1.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans. OTEL_SERVICE_NAME wins
	// over it. Default "sessiongate".
	ServiceName string `yaml:"service_name"`
}

// DefaultTracing returns the tracing block's defaults.
func DefaultTracing() Tracing {
	return Tracing{SampleRatio: 1, ServiceName: "sessiongate"}
}

func (c *Config) validateTracing(ps *problems) {
	t := c.Tracing
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			// The value is not echoed: a malformed URL may hold a credential.
			ps.add("tracing.endpoint", "want an http or https URL with a host (http://otel-collector:4318)")
		case u.User != nil:
			ps.add("tracing.endpoint", "must not carry credentials; send them with OTEL_EXPORTER_OTLP_HEADERS")
		case u.RawQuery != "" || u.Fragment != "":
			ps.add("tracing.endpoint", "must not have a query or fragment")
		case strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v1/traces"):
			ps.add("tracing.endpoint", "is the collector's base URL: leave out /v1/traces, which is appended")
		}
	}
	if !(t.SampleRatio >= 0 && t.SampleRatio <= 1) { // NaN included
		ps.add("tracing.sample_ratio", "%v is not between 0 and 1", t.SampleRatio)
	}
	if strings.TrimSpace(t.ServiceName) == "" {
		ps.add("tracing.service_name", "must not be empty (default sessiongate)")
	}
}
