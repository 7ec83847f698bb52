package config

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestTracingFromFileAndDefaults(t *testing.T) {
	t.Parallel()
	if d := Defaults().Tracing; d.Endpoint != "" || d.SampleRatio != 1 || d.ServiceName != "sessiongate" {
		t.Fatalf("tracing defaults %+v, want endpoint \"\", sample_ratio 1, service_name sessiongate", d)
	}
	p := writeFile(t, `
upstream: http://127.0.0.1:3000
clerk: {issuer: https://clerk.example.com}
tracing:
  endpoint: http://otel-collector:4318
  sample_ratio: 0.25
  service_name: edge-gate
`)
	c, err := Load(Sources{File: p, Env: envMap()})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Tracing{Endpoint: "http://otel-collector:4318", SampleRatio: 0.25, ServiceName: "edge-gate"}); c.Tracing != want {
		t.Fatalf("tracing %+v, want %+v", c.Tracing, want)
	}
	p = writeFile(t, "upstream: http://127.0.0.1:3000\nclerk: {issuer: https://clerk.example.com}\ntracing: {sample_rate: 1}\n")
	if _, err := Load(Sources{File: p, Env: envMap()}); err == nil {
		t.Fatal("a misspelt tracing key was accepted")
	}
}

func TestTracingValidationNamesTheKey(t *testing.T) {
	t.Parallel()
	ok := DefaultTracing()
	for _, tc := range []struct {
		name  string
		edit  func(*Tracing)
		key   string // "": valid
		never string // must not appear in the error
	}{
		{"defaults: off", func(*Tracing) {}, "", ""},
		{"an http collector", func(t *Tracing) { t.Endpoint = "http://otel-collector:4318" }, "", ""},
		{"an https collector with a path prefix", func(t *Tracing) { t.Endpoint = "https://otlp.example.com/otlp/" }, "", ""},
		{"sample none of the new traces", func(t *Tracing) { t.SampleRatio = 0 }, "", ""},
		{"not a URL", func(t *Tracing) { t.Endpoint = "otel-collector:4318" }, "tracing.endpoint", ""},
		{"a gRPC scheme", func(t *Tracing) { t.Endpoint = "grpc://otel-collector:4317" }, "tracing.endpoint", ""},
		{"credentials in the URL", func(t *Tracing) { t.Endpoint = "https://user:hunter2@otlp.example.com" }, "tracing.endpoint", "hunter2"},
		{"a malformed URL with a credential", func(t *Tracing) { t.Endpoint = "https://user:hunter2@otlp.example.com:bad/" }, "tracing.endpoint", "hunter2"},
		{"a query", func(t *Tracing) { t.Endpoint = "https://otlp.example.com?key=1" }, "tracing.endpoint", ""},
		{"the traces path", func(t *Tracing) { t.Endpoint = "http://otel-collector:4318/v1/traces" }, "tracing.endpoint", ""},
		{"a ratio above 1", func(t *Tracing) { t.SampleRatio = 1.5 }, "tracing.sample_ratio", ""},
		{"a negative ratio", func(t *Tracing) { t.SampleRatio = -0.1 }, "tracing.sample_ratio", ""},
		{"NaN", func(t *Tracing) { t.SampleRatio = math.NaN() }, "tracing.sample_ratio", ""},
		{"no service name", func(t *Tracing) { t.ServiceName = " " }, "tracing.service_name", ""},
	} {
		c := validConfig()
		c.Tracing = ok
		tc.edit(&c.Tracing)
		err := c.Validate()
		if tc.key == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Key != tc.key {
			t.Errorf("%s: %v, want one problem with %s", tc.name, err, tc.key)
			continue
		}
		if tc.never != "" && strings.Contains(err.Error(), tc.never) {
			t.Errorf("%s: the error shows a credential: %v", tc.name, err)
		}
	}
}
