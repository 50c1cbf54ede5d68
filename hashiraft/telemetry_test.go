package hashiraft

import (
	"bytes"
	"context"
	"testing"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func newTracing() (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	return tp, rec
}

// Inject and Extract round-trip the span context, trace state included,
// and keep the user's own extensions after the trace block; a second
// Inject replaces the block.
func TestInjectExtract(t *testing.T) {
	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled, TraceState: ts,
	})
	l := &raft.Log{Extensions: []byte("user data")}
	Inject(trace.ContextWithSpanContext(context.Background(), sc), l)
	got, user := Extract(l.Extensions)
	if !got.Equal(sc.WithRemote(true)) || string(user) != "user data" {
		t.Fatalf("Extract = %v %q", got, user)
	}
	sc2 := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}})
	Inject(trace.ContextWithSpanContext(context.Background(), sc2), l)
	got, user = Extract(l.Extensions)
	if !got.Equal(sc2.WithRemote(true)) || string(user) != "user data" {
		t.Fatalf("after a second Inject, Extract = %v %q", got, user)
	}
	if len(l.Extensions) != traceBlockMin+len("user data") {
		t.Fatalf("trace block of %d bytes", len(l.Extensions)-len("user data"))
	}
	// No span: unchanged. No trace block: the extensions are the user's.
	plain := &raft.Log{Extensions: []byte("x")}
	Inject(context.Background(), plain)
	if got, user := Extract(plain.Extensions); got.IsValid() || !bytes.Equal(user, []byte("x")) {
		t.Fatalf("plain: %v %q", got, user)
	}
	if got, user := Extract(nil); got.IsValid() || user != nil {
		t.Fatalf("nil: %v %q", got, user)
	}
	ctx := ContextWithLog(context.Background(), l)
	if !trace.SpanContextFromContext(ctx).Equal(sc2.WithRemote(true)) {
		t.Fatal("ContextWithLog lost the span context")
	}
}

// linksTo reports whether an aof.flush span among spans links an
// aof.append span that descends from the span want.
func linksTo(spans []sdktrace.ReadOnlySpan, want trace.SpanContext) bool {
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	descends := func(id trace.SpanID) bool {
		for range 8 {
			s, ok := byID[id]
			if !ok {
				return false
			}
			if s.Parent().SpanID() == want.SpanID() && s.Parent().TraceID() == want.TraceID() {
				return true
			}
			id = s.Parent().SpanID()
		}
		return false
	}
	for _, s := range spans {
		if s.Name() != "aof.flush" {
			continue
		}
		for _, l := range s.Links() {
			if l.SpanContext.TraceID() == want.TraceID() && descends(l.SpanContext.SpanID()) {
				return true
			}
		}
	}
	return false
}

// An entry carrying a client's trace context is appended under a
// hashiraft.store_logs span, child of the client's span, and the aof.flush
// span that made it durable links the append.
func TestStoreLogsTracesInjectedEntries(t *testing.T) {
	tp, rec := newTracing()
	clientTP, _ := newTracing()
	cfg := testConfig()
	cfg.TracerProvider = tp
	s, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, client := clientTP.Tracer("client").Start(context.Background(), "client.apply")
	client.End()
	traced := entry(2)
	traced.Extensions = []byte("mine")
	Inject(ctx, traced)
	if err := s.StoreLogs([]*raft.Log{entry(1), traced, entry(3)}); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(2, &got); err != nil {
		t.Fatal(err)
	}
	if _, user := Extract(got.Extensions); string(user) != "mine" {
		t.Fatalf("user extensions %q", user)
	}
	spans := rec.Ended()
	var store []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.Name() == SpanStoreLogs {
			store = append(store, sp)
		}
	}
	if len(store) != 1 || store[0].Parent().SpanID() != client.SpanContext().SpanID() || !store[0].Parent().IsRemote() {
		t.Fatalf("store_logs spans: %v", store)
	}
	if !linksTo(spans, client.SpanContext()) {
		t.Fatal("no aof.flush span links an append under the client's span")
	}
}

func sumOf(rm metricdata.ResourceMetrics, name string, attr ...attribute.KeyValue) (int64, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				var total int64
				for _, p := range d.DataPoints {
					ok := true
					for _, a := range attr {
						if v, has := p.Attributes.Value(a.Key); !has || v != a.Value {
							ok = false
						}
					}
					if ok {
						total += p.Value
					}
				}
				return total, true
			case metricdata.Gauge[float64]:
				return int64(len(d.DataPoints)), true
			}
		}
	}
	return 0, false
}

// The store's instruments count what it did, beside the log's own.
func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := testConfig()
	cfg.MeterProvider = mp
	s, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ls := entries(1, 10)
	var size int
	for _, l := range ls {
		size += len(appendEntry(nil, l, 0))
	}
	if err := s.StoreLogs(ls); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	for i := uint64(1); i <= 3; i++ {
		if err := s.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
	}
	s.GetLog(99, &l) // a miss reads nothing
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.DeleteRange(1, 2))
	must(s.DeleteRange(9, 10))
	must(s.DeleteRange(3, 8))
	must(s.DeleteRange(3, 8)) // nothing left: no truncation
	must(s.Set([]byte("a"), []byte("b")))
	must(s.SetUint64([]byte("c"), 1))
	var rm metricdata.ResourceMetrics
	must(reader.Collect(context.Background(), &rm))
	want := []struct {
		name string
		attr []attribute.KeyValue
		v    int64
	}{
		{MetricEntriesWritten, nil, 10},
		{MetricBytesWritten, nil, int64(size)},
		{MetricEntriesRead, nil, 3},
		{MetricBytesRead, nil, int64(len(appendEntry(nil, entry(1), 0)) * 3)},
		{MetricTruncations, []attribute.KeyValue{AttrTruncateEnd.String("head")}, 1},
		{MetricTruncations, []attribute.KeyValue{AttrTruncateEnd.String("tail")}, 1},
		{MetricTruncations, []attribute.KeyValue{AttrTruncateEnd.String("all")}, 1},
		{MetricStableSets, nil, 2},
	}
	for _, w := range want {
		got, ok := sumOf(rm, w.name, w.attr...)
		if !ok || got != w.v {
			t.Errorf("%s %v = %d (found %v), want %d", w.name, w.attr, got, ok, w.v)
		}
	}
	// The log's own instruments go to the same provider.
	if n, ok := sumOf(rm, "aof.append.records"); !ok || n != 10 {
		t.Errorf("aof.append.records = %d (found %v), want 10", n, ok)
	}
	// The oldest entry's age is observed while the store holds entries.
	if n, _ := sumOf(rm, MetricOldestAge); n != 0 {
		t.Fatalf("oldest entry age observed on an empty store")
	}
	must(s.StoreLogs(entries(11, 12)))
	rm = metricdata.ResourceMetrics{}
	must(reader.Collect(context.Background(), &rm))
	if n, _ := sumOf(rm, MetricOldestAge); n != 1 {
		t.Fatalf("oldest entry age: %d points", n)
	}
}
