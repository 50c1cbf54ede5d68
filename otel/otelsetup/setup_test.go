package otelsetup

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	gootel "go.opentelemetry.io/otel"

	"github.com/aof2/aof2/aof"
)

// TestStdoutByDefault: with no OTLP endpoint, a log's spans and metrics
// reach the writer by way of the global providers.
func TestStdoutByDefault(t *testing.T) {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}
	t.Setenv("OTEL_SERVICE_NAME", "setup-test")
	var out bytes.Buffer
	p, err := Setup(context.Background(), Config{Writer: &out})
	if err != nil {
		t.Fatal(err)
	}
	if p.OTLP {
		t.Fatal("OTLP chosen with no endpoint set")
	}
	l, err := aof.Open(t.TempDir(), aof.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := gootel.Tracer("test").Start(context.Background(), "request")
	id, err := l.Append(ctx, []byte("hello"))
	if err == nil {
		err = l.FlushUntil(ctx, id)
	}
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Close()
	s := out.String()
	for _, want := range []string{`"aof.append"`, `"aof.flush"`, `"aof.recover"`, `"aof.backlog.size"`, `"setup-test"`} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

// signalWriter is a writer safe for the exporters' goroutines that closes
// wrote at the first write.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	wrote chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.wrote) })
	return w.buf.Write(p)
}

// Issue 11 defect 17: OTEL_METRIC_EXPORT_INTERVAL was ignored: Setup
// always passed its own interval, which overrides the variable.
func TestDefect17MetricExportIntervalFromEnv(t *testing.T) {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "20") // milliseconds
	w := &signalWriter{wrote: make(chan struct{})}
	// Config's interval is the default the variable overrides: with it
	// alone, nothing would be exported before Shutdown.
	p, err := Setup(context.Background(), Config{Writer: w, MetricInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	select {
	case <-w.wrote:
	case <-ctx.Done():
		t.Fatal("no metrics exported within a minute with OTEL_METRIC_EXPORT_INTERVAL=20")
	}
}
