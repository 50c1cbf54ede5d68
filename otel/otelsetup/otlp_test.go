package otelsetup

import (
	"context"
	"encoding/hex"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gootel "go.opentelemetry.io/otel"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/aof2/aof2/aof"
	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/vfs/vfstest"
)

// receiver is an in-process OTLP/gRPC receiver: it keeps what the
// exporters send.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer

	mu      sync.Mutex
	spans   []*tracepb.ResourceSpans
	metrics []*metricpb.ResourceMetrics
}

func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, req.GetResourceSpans()...)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// metricsService adapts receiver to the metrics service, whose Export
// method has another signature.
type metricsService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	r *receiver
}

func (m metricsService) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	m.r.metrics = append(m.r.metrics, req.GetResourceMetrics()...)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

// startReceiver serves OTLP/gRPC on a loopback port and returns its
// endpoint URL; the server stops when the test ends.
func startReceiver(t *testing.T) (*receiver, string) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	colmetricpb.RegisterMetricsServiceServer(srv, metricsService{r: r})
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return r, "http://" + lis.Addr().String()
}

func attr(kvs []*commonpb.KeyValue, key string) *commonpb.AnyValue {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return nil
}

// Issue 12: Setup's OTLP/gRPC path, end to end: with
// OTEL_EXPORTER_OTLP_ENDPOINT set, the spans and metrics of a short run
// (Open under a span, a traced Append, a FlushUntil whose first fsync
// fails with EINTR, Close) reach an OTLP receiver with the resource, the
// scope, the parents and the attributes they had in the process.
func TestOTLPExportReachesAReceiver(t *testing.T) {
	r, endpoint := startReceiver(t)
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_METRIC_EXPORT_INTERVAL"} {
		t.Setenv(v, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_SERVICE_NAME", "otlp-test")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	ctx := context.Background()
	// An hour: metrics are exported by Shutdown, not by the timer.
	p, err := Setup(ctx, Config{MetricInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !p.OTLP {
		t.Fatal("OTLP not chosen with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	fs := vfstest.NewFaultFS(nil)
	reqCtx, req := gootel.Tracer("test").Start(ctx, "request")
	l, err := aof.OpenContext(reqCtx, t.TempDir(), aof.Config{NoBackgroundFlush: true}, aof.WithFS(fs), aof.WithName("otlp-log"))
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Bool
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(vfstest.Op) error {
		if failed.CompareAndSwap(false, true) {
			return unix.EINTR
		}
		return nil
	}))
	id, err := l.Append(reqCtx, []byte("over the wire"))
	if err == nil {
		err = l.FlushUntil(reqCtx, id)
	}
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Shutdown exports what is left, spans and metrics, before it returns.
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	reqID := req.SpanContext().SpanID()
	spans := map[string][]*tracepb.Span{}
	for _, rs := range r.spans {
		if v := attr(rs.GetResource().GetAttributes(), "service.name"); v.GetStringValue() != "otlp-test" {
			t.Errorf("resource service.name %q, want otlp-test", v.GetStringValue())
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				if s.GetName() != "request" && ss.GetScope().GetName() != aofotel.ScopeName {
					t.Errorf("span %s in scope %q, want %q", s.GetName(), ss.GetScope().GetName(), aofotel.ScopeName)
				}
				spans[s.GetName()] = append(spans[s.GetName()], s)
			}
		}
	}
	for _, name := range []string{aofotel.SpanRecover, aofotel.SpanAppend, aofotel.SpanFlushUntil, aofotel.SpanFlush, aofotel.SpanFsync} {
		if len(spans[name]) == 0 {
			t.Fatalf("no %s span received; got %d span names", name, len(spans))
		}
	}
	for _, name := range []string{aofotel.SpanRecover, aofotel.SpanAppend, aofotel.SpanFlushUntil} {
		s := spans[name][0]
		if got := hex.EncodeToString(s.GetParentSpanId()); got != reqID.String() {
			t.Errorf("%s parent %s, want the request span %s", name, got, reqID)
		}
		if v := attr(s.GetAttributes(), string(aofotel.AttrLog)); v.GetStringValue() != "otlp-log" {
			t.Errorf("%s aof.log %q, want otlp-log", name, v.GetStringValue())
		}
	}
	if v := attr(spans[aofotel.SpanAppend][0].GetAttributes(), string(aofotel.AttrSeq)); v.GetIntValue() != int64(id.Seq) {
		t.Errorf("aof.append aof.seq %d, want %d", v.GetIntValue(), id.Seq)
	}
	// The EINTR attempt: an aof.fsync span with status Error, its errno
	// and a numeric backoff, child of the flush.
	var retried bool
	for _, s := range spans[aofotel.SpanFsync] {
		if s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
			continue
		}
		retried = true
		if v := attr(s.GetAttributes(), string(aofotel.AttrErrno)); v.GetStringValue() != "EINTR" {
			t.Errorf("failed aof.fsync errno %q, want EINTR", v.GetStringValue())
		}
		if v := attr(s.GetAttributes(), string(aofotel.AttrBackoff)); v.GetDoubleValue() <= 0 {
			t.Errorf("failed aof.fsync backoff %v, want a positive double", v)
		}
		var parentIsFlush bool
		for _, f := range spans[aofotel.SpanFlush] {
			parentIsFlush = parentIsFlush || string(f.GetSpanId()) == string(s.GetParentSpanId())
		}
		if !parentIsFlush {
			t.Error("failed aof.fsync span is not a child of an aof.flush span")
		}
	}
	if !retried {
		t.Error("no aof.fsync span with status Error for the EINTR attempt")
	}

	metrics := map[string]*metricpb.Metric{}
	for _, rm := range r.metrics {
		if v := attr(rm.GetResource().GetAttributes(), "service.name"); v.GetStringValue() != "otlp-test" {
			t.Errorf("metrics resource service.name %q, want otlp-test", v.GetStringValue())
		}
		for _, sm := range rm.GetScopeMetrics() {
			if sm.GetScope().GetName() != aofotel.ScopeName {
				continue
			}
			for _, m := range sm.GetMetrics() {
				metrics[m.GetName()] = m // the last export wins
			}
		}
	}
	t.Logf("received %d span names, %d aof metrics", len(spans), len(metrics))
	var records int64 = -1
	for _, dp := range metrics[aofotel.MetricAppendRecords].GetSum().GetDataPoints() {
		if attr(dp.GetAttributes(), string(aofotel.AttrLog)).GetStringValue() == "otlp-log" {
			records = dp.GetAsInt()
		}
	}
	if records != 1 {
		t.Errorf("%s for otlp-log: %d, want 1", aofotel.MetricAppendRecords, records)
	}
	var fsyncs uint64
	for _, dp := range metrics[aofotel.MetricFsyncDuration].GetHistogram().GetDataPoints() {
		fsyncs += dp.GetCount()
	}
	if fsyncs < 2 {
		t.Errorf("%s: %d points, want every attempt (>= 2)", aofotel.MetricFsyncDuration, fsyncs)
	}
	var retries int64
	for _, dp := range metrics[aofotel.MetricFsyncRetries].GetSum().GetDataPoints() {
		retries += dp.GetAsInt()
	}
	if retries != 1 {
		t.Errorf("%s: %d, want 1", aofotel.MetricFsyncRetries, retries)
	}
}
