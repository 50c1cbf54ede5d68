package aof

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkAppend256Telemetry: the cost of instrumentation on a 256-byte
// Append, one goroutine, log in b.TempDir(), with no background flusher
// and a backpressure limit above what a run appends (run it with
// -benchtime 200000x), so only Append's own work is timed, not a flusher
// competing for the second core. Each op uses
// one of 1000 contexts prepared beforehand, so span creation by the
// caller is not measured, only what Append adds:
//
//   - uninstrumented: the append path without its telemetry wrapper, the
//     baseline;
//   - none: no providers (the global no-ops), background context;
//   - unsampled: an SDK tracer provider; every context carries a span
//     that is not sampled;
//   - sampled=1%: 10 contexts in 1000 carry a sampled span (the SDK with
//     a batch processor and a discarding exporter);
//   - sampled=100%: every context does;
//   - metrics: an SDK meter provider with a reader (collected once at the
//     end), background context.
//
// Compare with benchstat; see the README for figures.
func BenchmarkAppend256Telemetry(b *testing.B) {
	cases := []struct {
		name    string
		sampled int // of 1000 contexts
		traces  bool
		metrics bool
	}{
		{"uninstrumented", 0, false, false},
		{"none", 0, false, false},
		{"unsampled", 0, true, false},
		{"sampled=1%", 10, true, false},
		{"sampled=100%", 1000, true, false},
		{"metrics", 0, false, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var opts []Option
			ctxs := make([]context.Context, 1000)
			for i := range ctxs {
				ctxs[i] = context.Background()
			}
			if c.traces {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
				b.Cleanup(func() { tp.Shutdown(context.Background()); never.Shutdown(context.Background()) })
				opts = append(opts, WithTracerProvider(tp))
				for i := range ctxs {
					src := never
					if c.sampled > 0 && i%(1000/c.sampled) == 0 {
						src = tp
					}
					ctxs[i], _ = src.Tracer("bench").Start(context.Background(), "request")
				}
			}
			var reader *sdkmetric.ManualReader
			if c.metrics {
				reader = sdkmetric.NewManualReader()
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
				b.Cleanup(func() { mp.Shutdown(context.Background()) })
				opts = append(opts, WithMeterProvider(mp))
			}
			l, err := Open(b.TempDir(), Config{NoBackgroundFlush: true, MaxUnflushed: 1 << 30}, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			settle()
			p := make([]byte, 256)
			b.ReportAllocs()
			b.SetBytes(256)
			b.ResetTimer()
			appendFn := l.Append
			if c.name == "uninstrumented" {
				// The same path without the telemetry wrapper.
				appendFn = func(ctx context.Context, p []byte) (RecordID, error) { return l.append(ctx, p, nil) }
			}
			for i := range b.N {
				if _, err := appendFn(ctxs[i%len(ctxs)], p); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if reader != nil {
				var rm metricdata.ResourceMetrics
				if err := reader.Collect(context.Background(), &rm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
