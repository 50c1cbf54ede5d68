package aof

import (
	"context"
	"slices"
	"testing"
	"time"

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
// Compare with benchstat; see the README for figures. Each case is timed
// on its own, so on a shared machine the spread between runs (10-30 %)
// hides a difference of a few percent: BenchmarkAppend256TelemetryOverhead
// measures the unsampled cases paired.
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

// BenchmarkAppend256TelemetryOverhead: what Append's telemetry costs when
// nothing is sampled, measured paired: one log, and chunks of 100 appends
// that alternate between the uninstrumented path and Append (in
// alternating order). Each chunk is timed, and each path's time is the
// median of its chunks: a preemption (this machine is shared) lands in a
// few chunks of one path and moves no median, where it would move a mean
// by tens of percent. One op is one append of each path; it reports
// base-ns/append (uninstrumented), ns/append (Append) and overhead-%.
// Run it with -benchtime 100000x (no rollover in the run) -count 10 and
// read overhead-% with benchstat:
//
//   - none: no providers (the global no-ops), background context;
//   - unsampled: an SDK tracer provider; every context carries a span
//     that is not sampled.
func BenchmarkAppend256TelemetryOverhead(b *testing.B) {
	for _, c := range []struct {
		name   string
		traces bool
	}{{"none", false}, {"unsampled", true}} {
		b.Run(c.name, func(b *testing.B) {
			var opts []Option
			ctxs := make([]context.Context, 1000)
			for i := range ctxs {
				ctxs[i] = context.Background()
			}
			if c.traces {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
				b.Cleanup(func() { tp.Shutdown(context.Background()) })
				opts = append(opts, WithTracerProvider(tp))
				for i := range ctxs {
					ctxs[i], _ = tp.Tracer("bench").Start(context.Background(), "request")
				}
			}
			l, err := Open(b.TempDir(), Config{NoBackgroundFlush: true, MaxUnflushed: 1 << 30}, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			settle()
			p := make([]byte, 256)
			uninstrumented := func(ctx context.Context, p []byte) (RecordID, error) { return l.append(ctx, p, nil) }
			paths := [2]func(context.Context, []byte) (RecordID, error){uninstrumented, l.Append}
			const chunk = 100
			var chunks [2][]time.Duration
			for j := range chunks {
				chunks[j] = make([]time.Duration, 0, b.N/chunk+1)
			}
			b.ReportAllocs()
			b.SetBytes(2 * 256)
			b.ResetTimer()
			for done, k := 0, 0; done < b.N; k++ {
				n := min(chunk, b.N-done)
				for j := range 2 {
					path := (j + k) % 2 // alternate which goes first
					start := time.Now()
					for i := range n {
						if _, err := paths[path](ctxs[(done+i)%len(ctxs)], p); err != nil {
							b.Fatal(err)
						}
					}
					if n == chunk {
						chunks[path] = append(chunks[path], time.Since(start))
					}
				}
				done += n
			}
			b.StopTimer()
			if len(chunks[0]) == 0 {
				return // the b.N=1 probe
			}
			median := func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[len(d)/2].Nanoseconds()) / chunk
			}
			base, instr := median(chunks[0]), median(chunks[1])
			b.ReportMetric(base, "base-ns/append")
			b.ReportMetric(instr, "ns/append")
			b.ReportMetric(100*(instr-base)/base, "overhead-%")
		})
	}
}
