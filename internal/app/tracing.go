package app

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/buildinfo"
)

// traceFlushTimeout bounds the export of the spans still buffered when the
// App closes.
const traceFlushTimeout = 5 * time.Second

// tracingOn reports whether the process exports traces: the tracing block
// or the standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT names a collector,
// and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none turns
// the SDK off (docs/deployment.md#tracing).
func tracingOn(t config.Tracing, getenv func(string) string) bool {
	if v, _ := strconv.ParseBool(strings.TrimSpace(getenv("OTEL_SDK_DISABLED"))); v {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return t.Endpoint != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// setupTracing builds the OpenTelemetry SDK's tracer provider, batching
// spans to an OTLP/HTTP exporter, when tracingOn; a.tp stays nil (tracing
// off everywhere) otherwise. The exporter reads the other standard
// OTEL_EXPORTER_OTLP_* variables itself; the SDK reads OTEL_TRACES_SAMPLER
// (which then replaces tracing.sample_ratio) and the resource
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. No OpenTelemetry global
// is set: the provider is handed to each package that makes spans.
func (a *App) setupTracing(cfg *config.Config, getenv func(string) string) error {
	t := cfg.Tracing
	if !tracingOn(t, getenv) {
		return nil
	}
	log := a.log.Named("tracing")
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		log.Warn("tracing: sessiongate exports OTLP over HTTP with protobuf only; the protocol asked for is ignored", zap.String("protocol", proto))
	}
	var eopts []otlptracehttp.Option
	if t.Endpoint != "" {
		eopts = append(eopts, otlptracehttp.WithEndpointURL(strings.TrimRight(t.Endpoint, "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(context.Background(), eopts...)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.New(context.Background(),
		resource.WithAttributes(
			attribute.String("service.name", t.ServiceName),
			attribute.String("service.version", buildinfo.Read().Version),
		),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES: what could be read is used.
		log.Warn("tracing: the resource attributes are partly unreadable", zap.Error(err))
	}
	popts := []sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: log}),
		sdktrace.WithResource(res),
	}
	if getenv("OTEL_TRACES_SAMPLER") == "" {
		popts = append(popts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(t.SampleRatio))))
	}
	a.tp = sdktrace.NewTracerProvider(popts...)
	endpoint := t.Endpoint
	if endpoint == "" {
		endpoint = "(OTEL_EXPORTER_OTLP_ENDPOINT)"
	}
	log.Info("tracing on: exporting spans over OTLP/HTTP", zap.String("endpoint", endpoint),
		zap.String("service_name", t.ServiceName))
	return nil
}

// tracerProvider is a.tp as the interface the packages take (a nil
// *TracerProvider must be a nil interface: tracing off).
func (a *App) tracerProvider() trace.TracerProvider {
	if a.tp == nil {
		return nil
	}
	return a.tp
}

// shutdownTracing exports the spans still buffered and stops the exporter.
func (a *App) shutdownTracing() {
	if a.tp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
	defer cancel()
	if err := a.tp.Shutdown(ctx); err != nil {
		a.log.Warn("tracing: flushing the last spans failed", zap.Error(err))
	}
}

// loggingExporter logs failed exports through the App's logger, once when
// they start failing and once when they recover, instead of the
// OpenTelemetry global error handler (the standard library's log on
// stderr, for every batch).
type loggingExporter struct {
	sdktrace.SpanExporter
	log *zap.Logger

	mu      sync.Mutex // guards following
	failing bool
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.mu.Lock()
	changed := (err != nil) != e.failing
	e.failing = err != nil
	e.mu.Unlock()
	switch {
	case changed && err != nil:
		e.log.Warn("tracing: exporting spans failed; spans are dropped until the collector answers", zap.Error(err))
	case changed:
		e.log.Info("tracing: exporting spans again")
	}
	return nil // reported here; the batcher has nothing to retry
}
