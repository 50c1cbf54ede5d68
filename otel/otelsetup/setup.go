// Package otelsetup installs an OpenTelemetry SDK for applications that
// embed aof2 and want its traces and metrics exported without writing the
// glue themselves. The aof2 library itself never imports this package.
//
// Setup reads the standard environment variables: when
// OTEL_EXPORTER_OTLP_ENDPOINT (or the _TRACES_ / _METRICS_ variants) is set,
// traces and metrics go there over OTLP/gRPC, with OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_EXPORTER_OTLP_INSECURE and the rest honoured by the exporters;
// otherwise both are written to a writer (stdout by default) as JSON lines.
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES set the resource;
// OTEL_TRACES_SAMPLER and OTEL_METRIC_EXPORT_INTERVAL are honoured by the SDK.
package otelsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	gootel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Config chooses the service name and where telemetry goes when no OTLP
// endpoint is configured.
type Config struct {
	// ServiceName is the service.name resource attribute unless
	// OTEL_SERVICE_NAME overrides it. Default "aof2".
	ServiceName string
	// Writer receives traces and metrics as JSON lines when no OTLP
	// endpoint is set. Default os.Stdout.
	Writer io.Writer
	// MetricInterval is how often metrics are exported. Default 10 s.
	// OTEL_METRIC_EXPORT_INTERVAL (milliseconds), when set, wins over it
	// and is read by the SDK (which falls back to its own 60 s default
	// if the value is invalid). Shutdown always exports a last time.
	MetricInterval time.Duration
}

// Providers are the installed SDK providers.
type Providers struct {
	Tracer *sdktrace.TracerProvider
	Meter  *sdkmetric.MeterProvider
	// OTLP is true when telemetry goes to an OTLP endpoint, false when
	// to the Writer.
	OTLP bool
}

// Shutdown flushes and stops both providers.
func (p *Providers) Shutdown(ctx context.Context) error {
	return errors.Join(p.Tracer.Shutdown(ctx), p.Meter.Shutdown(ctx))
}

// OTLPConfigured reports whether the environment names an OTLP endpoint.
func OTLPConfigured() bool {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return false
}

// Setup creates the SDK providers, installs them as the global providers
// (with the W3C trace-context propagator) and returns them; call Shutdown
// before the program exits so the last spans and metrics are exported.
func Setup(ctx context.Context, cfg Config) (*Providers, error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = "aof2"
	}
	if cfg.Writer == nil {
		cfg.Writer = os.Stdout
	}
	if cfg.MetricInterval == 0 {
		cfg.MetricInterval = 10 * time.Second
	}
	// Later options win: the environment overrides the default name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("otelsetup: resource: %w", err)
	}
	var (
		spanExp   sdktrace.SpanExporter
		metricExp sdkmetric.Exporter
	)
	otlp := OTLPConfigured()
	if otlp {
		if spanExp, err = otlptracegrpc.New(ctx); err != nil {
			return nil, fmt.Errorf("otelsetup: OTLP trace exporter: %w", err)
		}
		if metricExp, err = otlpmetricgrpc.New(ctx); err != nil {
			return nil, fmt.Errorf("otelsetup: OTLP metric exporter: %w", err)
		}
	} else {
		if spanExp, err = stdouttrace.New(stdouttrace.WithWriter(cfg.Writer)); err != nil {
			return nil, fmt.Errorf("otelsetup: stdout trace exporter: %w", err)
		}
		if metricExp, err = stdoutmetric.New(stdoutmetric.WithWriter(cfg.Writer)); err != nil {
			return nil, fmt.Errorf("otelsetup: stdout metric exporter: %w", err)
		}
	}
	// The SDK reads OTEL_METRIC_EXPORT_INTERVAL itself, but WithInterval
	// overrides it: pass the configured interval only when the variable
	// is not set.
	var readerOpts []sdkmetric.PeriodicReaderOption
	if os.Getenv("OTEL_METRIC_EXPORT_INTERVAL") == "" {
		readerOpts = append(readerOpts, sdkmetric.WithInterval(cfg.MetricInterval))
	}
	p := &Providers{
		Tracer: sdktrace.NewTracerProvider(sdktrace.WithBatcher(spanExp), sdktrace.WithResource(res)),
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExp, readerOpts...))),
		OTLP: otlp,
	}
	gootel.SetTracerProvider(p.Tracer)
	gootel.SetMeterProvider(p.Meter)
	gootel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return p, nil
}
