package aof

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/vfs/vfstest"
)

// int64Value sums the data points of an int64 sum or gauge whose
// attributes include every one of want.
func int64Value(t *testing.T, m metricdata.Metrics, want ...attribute.KeyValue) int64 {
	t.Helper()
	var pts []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		pts = d.DataPoints
	case metricdata.Gauge[int64]:
		pts = d.DataPoints
	default:
		t.Fatalf("%s: data %T", m.Name, m.Data)
	}
	var v int64
	for _, p := range pts {
		ok := true
		for _, kv := range want {
			if got, has := p.Attributes.Value(kv.Key); !has || got != kv.Value {
				ok = false
			}
		}
		if ok {
			v += p.Value
		}
	}
	return v
}

func histCount(t *testing.T, m metricdata.Metrics) uint64 {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s: data %T", m.Name, m.Data)
	}
	var n uint64
	for _, p := range h.DataPoints {
		n += p.Count
	}
	return n
}

func TestAppendAndFlushSpansAreLinked(t *testing.T) {
	tt := newTelemetry(t)
	l := openT(t, t.TempDir(), Config{}, tt.opts()...)
	defer l.Close()
	ctx, parent := tt.tp.Tracer("test").Start(context.Background(), "request")
	id := mustAppend(t, l, []byte("traced"))           // unsampled context: no span
	traced, err := l.Append(ctx, []byte("traced too")) // sampled: a child span
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FlushUntil(ctx, traced); err != nil {
		t.Fatal(err)
	}
	parent.End()
	_ = id
	spans := tt.spans.Ended()
	appends := spansNamed(spans, aofotel.SpanAppend)
	if len(appends) != 1 || appends[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("append spans: %d, want 1 child of the request", len(appends))
	}
	var linked sdktrace.ReadOnlySpan
	for _, f := range spansNamed(spans, aofotel.SpanFlush) {
		for _, link := range f.Links() {
			if link.SpanContext.SpanID() == appends[0].SpanContext().SpanID() {
				linked = f
			}
		}
	}
	if linked == nil {
		t.Fatal("no flush span links to the append span")
	}
	attrs := attribute.NewSet(linked.Attributes()...)
	if v, _ := attrs.Value(aofotel.AttrFlushReason); v.AsString() == "" {
		t.Fatalf("flush span without a reason: %v", linked.Attributes())
	}
	if v, _ := attrs.Value(aofotel.AttrDurableSeq); v.AsInt64() <= int64(traced.Seq) {
		t.Fatalf("flush span durable seq %d, want > %d", v.AsInt64(), traced.Seq)
	}
	waits := spansNamed(spans, aofotel.SpanFlushUntil)
	if len(waits) != 1 {
		t.Fatalf("flush_until spans: %d, want 1", len(waits))
	}
	// The wait either led the flush (the flush is its child) or is linked
	// to it.
	led := linked.Parent().SpanID() == waits[0].SpanContext().SpanID()
	var linkedToFlush bool
	for _, link := range waits[0].Links() {
		linkedToFlush = linkedToFlush || link.SpanContext.SpanID() == linked.SpanContext().SpanID()
	}
	if !led && !linkedToFlush {
		t.Fatal("flush_until span is neither the flush's parent nor linked to it")
	}
}

func TestRetryEventsAndCounters(t *testing.T) {
	tt := newTelemetry(t)
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{}, append(tt.opts(), WithFS(fs))...)
	defer l.Close()
	fails := 0
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(vfstest.Op) error {
		if fails < 2 {
			fails++
			return unix.EINTR
		}
		return nil
	}))
	if err := l.FlushUntil(ctx, mustAppend(t, l, []byte("retry"))); err != nil {
		t.Fatal(err)
	}
	var events int
	for _, f := range spansNamed(tt.spans.Ended(), aofotel.SpanFlush) {
		for _, e := range f.Events() {
			if e.Name == aofotel.EventFsyncRetry {
				set := attribute.NewSet(e.Attributes...)
				if v, _ := set.Value(aofotel.AttrErrno); v.AsString() != "EINTR" {
					t.Fatalf("retry event errno %q", v.AsString())
				}
				events++
			}
		}
	}
	if events != 2 {
		t.Fatalf("%d retry events, want 2", events)
	}
	ms := tt.collect(t)
	if v := int64Value(t, ms[aofotel.MetricFsyncRetries]); v != 2 || int64(l.Metrics().RetryAttempts) != v {
		t.Fatalf("retry counter %d, Metrics %d, want 2", v, l.Metrics().RetryAttempts)
	}
	if histCount(t, ms[aofotel.MetricFsyncDuration]) < 3 {
		t.Fatal("fsync duration histogram missed attempts")
	}
}

func TestEIOSetsErrorStatus(t *testing.T) {
	tt := newTelemetry(t)
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{}, append(tt.opts(), WithFS(fs))...)
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))
	err := l.FlushUntil(ctx, mustAppend(t, l, []byte("doomed")))
	if !errors.Is(err, unix.EIO) {
		t.Fatalf("FlushUntil: %v", err)
	}
	if v := int64Value(t, tt.collect(t)[aofotel.MetricFsyncFailures]); v != 1 {
		t.Fatalf("failure counter %d, want 1", v)
	}
	l.Close()
	var failed sdktrace.ReadOnlySpan
	for _, f := range spansNamed(tt.spans.Ended(), aofotel.SpanFlush) {
		if f.Status().Code == codes.Error {
			failed = f
		}
	}
	if failed == nil {
		t.Fatal("no flush span with error status")
	}
	var finalEvent bool
	for _, e := range failed.Events() {
		finalEvent = finalEvent || e.Name == aofotel.EventFsyncFailed
	}
	if !finalEvent {
		t.Fatalf("failed flush has no %s event: %v", aofotel.EventFsyncFailed, failed.Events())
	}
}

func TestRecoverySpanReportsTruncation(t *testing.T) {
	dir := t.TempDir()
	ids := buildLog(t, dir, 20, false)
	last := ids[len(ids)-1]
	patch(t, segPath(t, dir, last.Segment), frameEnd(last), []byte("garbage after the tail"))
	tt := newTelemetry(t)
	l := openT(t, dir, Config{}, tt.opts()...)
	defer l.Close()
	recs := spansNamed(tt.spans.Ended(), aofotel.SpanRecover)
	if len(recs) != 1 {
		t.Fatalf("%d recover spans", len(recs))
	}
	var found bool
	for _, e := range recs[0].Events() {
		if e.Name != aofotel.EventSegmentTruncated {
			continue
		}
		set := attribute.NewSet(e.Attributes...)
		off, _ := set.Value(aofotel.AttrOffset)
		n, _ := set.Value(aofotel.AttrBytes)
		found = off.AsInt64() == frameEnd(last) && n.AsInt64() > 0
	}
	if !found {
		t.Fatalf("no truncation event naming offset %d and bytes: %v", frameEnd(last), recs[0].Events())
	}
	ms := tt.collect(t)
	if v := int64Value(t, ms[aofotel.MetricRecoveryTruncated]); v != l.Recovery().TruncatedBytes || v == 0 {
		t.Fatalf("truncated bytes metric %d, report %d", v, l.Recovery().TruncatedBytes)
	}
	if histCount(t, ms[aofotel.MetricRecoveryDuration]) != 1 {
		t.Fatal("recovery duration not recorded")
	}
}

func TestBacklogGaugeFollowsMetrics(t *testing.T) {
	tt := newTelemetry(t)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, tt.opts()...)
	defer l.Close()
	var last RecordID
	for i := range 10 {
		last = mustAppend(t, l, make([]byte, 100+i))
	}
	ms := tt.collect(t)
	if v := int64Value(t, ms[aofotel.MetricBacklogSize]); v == 0 || v != l.Metrics().BacklogBytes {
		t.Fatalf("backlog gauge %d, Metrics %d, want > 0 and equal", v, l.Metrics().BacklogBytes)
	}
	if v := int64Value(t, ms[aofotel.MetricAppendRecords]); v != 10 {
		t.Fatalf("append records %d, want 10", v)
	}
	if err := l.FlushUntil(ctx, last); err != nil {
		t.Fatal(err)
	}
	ms = tt.collect(t)
	if v := int64Value(t, ms[aofotel.MetricBacklogSize]); v != 0 {
		t.Fatalf("backlog gauge %d after FlushUntil, want 0", v)
	}
	m := l.Metrics()
	explicit := int64Value(t, ms[aofotel.MetricFlushes], aofotel.AttrFlushReason.String("explicit"), aofotel.AttrFlushMode.String("sync"))
	if explicit == 0 || uint64(explicit) != m.Flushes(ReasonExplicit, ModeSync) {
		t.Fatalf("explicit sync flushes: metric %d, Metrics %d", explicit, m.Flushes(ReasonExplicit, ModeSync))
	}
	if histCount(t, ms[aofotel.MetricDurableLag]) == 0 || histCount(t, ms[aofotel.MetricFlushDuration]) == 0 {
		t.Fatal("durable lag or flush duration not recorded")
	}
	if v := int64Value(t, ms[aofotel.MetricSegments]); v != int64(m.Segments) {
		t.Fatalf("segments gauge %d, Metrics %d", v, m.Segments)
	}
}

func TestSamplesKeepTheOriginalNames(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, WithFS(fs))
	defer l.Close()
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(op vfstest.Op) error {
		if op.N == 1 {
			return unix.EAGAIN
		}
		return nil
	}))
	mustAppend(t, l, []byte("one"))
	got := map[string]float64{}
	for _, s := range l.Metrics().Samples() {
		got[s.Name] = s.Value
	}
	if got["aof_flush_backlog_bytes"] != 40 || got["aof_flush_retry_attempts_total"] != 0 {
		t.Fatalf("before the flush: %v", got)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Metrics().Samples() {
		got[s.Name] = s.Value
	}
	if got["aof_flush_backlog_bytes"] != 0 || got["aof_flush_retry_attempts_total"] != 1 || got["aof_flush_retry_failures_total"] != 0 {
		t.Fatalf("after the flush: %v", got)
	}
}

// TestTruncationSpansAndCounter: TruncateFront and TruncateBack each show
// as an aof.truncate span saying which end, where and how many segment
// files went, and the removed-segments counter agrees with Metrics.
func TestTruncationSpansAndCounter(t *testing.T) {
	tt := newTelemetry(t)
	l := openT(t, t.TempDir(), retentionCfg, tt.opts()...)
	defer l.Close()
	appendN(t, l, 1, 3001)
	if err := l.TruncateFront(ctx, 1500); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateBack(ctx, 2000); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateFront(ctx, 10); err != nil { // behind the front: no span
		t.Fatal(err)
	}
	spans := spansNamed(tt.spans.Ended(), aofotel.SpanTruncate)
	if len(spans) != 2 {
		t.Fatalf("%d aof.truncate spans, want 2", len(spans))
	}
	var removed int64
	for i, want := range []struct {
		end    string
		seq    int64
		reason string
	}{{"front", 1500, "truncate-front"}, {"back", 2000, "truncate-back"}} {
		set := attribute.NewSet(spans[i].Attributes()...)
		end, _ := set.Value(aofotel.AttrTruncateEnd)
		seq, _ := set.Value(aofotel.AttrSeq)
		reason, _ := set.Value(aofotel.AttrReason)
		n, _ := set.Value(aofotel.AttrRemoved)
		if end.AsString() != want.end || seq.AsInt64() != want.seq || reason.AsString() != want.reason || n.AsInt64() == 0 {
			t.Fatalf("span %d: end %v seq %v reason %v removed %v, want %+v and segments removed", i, end, seq, reason, n, want)
		}
		removed += n.AsInt64()
	}
	ms := tt.collect(t)
	if v := int64Value(t, ms[aofotel.MetricSegmentsRemoved]); v != removed || uint64(v) != l.Metrics().RemovedSegments {
		t.Fatalf("removed segments metric %d, spans %d, Metrics %d", v, removed, l.Metrics().RemovedSegments)
	}
}

// hookProcessor is a span processor that records spans and then calls the
// hook, if any, from the goroutine that ended the span: a slow span
// processor, made deterministic.
type hookProcessor struct {
	*tracetest.SpanRecorder
	hook atomic.Pointer[func(sdktrace.ReadOnlySpan)]
}

func (p *hookProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	p.SpanRecorder.OnEnd(s)
	if h := p.hook.Load(); h != nil {
		(*h)(s)
	}
}

// flushRange returns the records [from, durable) a flush span made durable.
func flushRange(f sdktrace.ReadOnlySpan) (from, durable int64) {
	set := attribute.NewSet(f.Attributes()...)
	d, _ := set.Value(aofotel.AttrDurableSeq)
	n, _ := set.Value(aofotel.AttrFlushRecords)
	return d.AsInt64() - n.AsInt64(), d.AsInt64()
}

// linkedBy returns the spans named name that link to sc.
func linkedBy(spans []sdktrace.ReadOnlySpan, name string, sc trace.SpanContext) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spansNamed(spans, name) {
		for _, link := range s.Links() {
			if link.SpanContext.SpanID() == sc.SpanID() {
				out = append(out, s)
			}
		}
	}
	return out
}

// Issue 11 defect 14: an aof.append span was linked from a flush that ran
// after the one that made its record durable.
func TestDefect14AppendLinkedByTheFlushThatMadeItDurable(t *testing.T) {
	hp := &hookProcessor{SpanRecorder: tracetest.NewSpanRecorder()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(hp))
	defer tp.Shutdown(ctx)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, WithTracerProvider(tp))
	defer l.Close()
	// A slow span processor: the record is published before its
	// aof.append span ends, and a flush runs while it ends.
	flushOnAppendEnd := func(s sdktrace.ReadOnlySpan) {
		if s.Name() == aofotel.SpanAppend {
			if err := l.Sync(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}
	hp.hook.Store(&flushOnAppendEnd)
	tctx, parent := tp.Tracer("test").Start(ctx, "request")
	if _, err := l.Append(tctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch(tctx, [][]byte{[]byte("two"), []byte("three")}); err != nil {
		t.Fatal(err)
	}
	hp.hook.Store(nil)
	// Later flushes, which make none of those records durable.
	mustAppend(t, l, []byte("four"))
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	parent.End()
	spans := hp.Ended()
	appends := spansNamed(spans, aofotel.SpanAppend)
	if len(appends) != 2 {
		t.Fatalf("%d append spans, want 2", len(appends))
	}
	for _, a := range appends {
		set := attribute.NewSet(a.Attributes()...)
		seq, _ := set.Value(aofotel.AttrSeq)
		flushes := linkedBy(spans, aofotel.SpanFlush, a.SpanContext())
		if len(flushes) != 1 {
			t.Fatalf("append of seq %d linked by %d flushes, want 1", seq.AsInt64(), len(flushes))
		}
		if from, durable := flushRange(flushes[0]); seq.AsInt64() < from || seq.AsInt64() >= durable {
			t.Fatalf("append of seq %d linked by the flush that made [%d, %d) durable", seq.AsInt64(), from, durable)
		}
	}
}

// Issue 11 defect 14, under load: with concurrent writers and a short
// flush interval, an append is linked only by the flush that made it
// durable (a flush with maxLinks links may have had to drop it).
func TestDefect14AppendLinksUnderConcurrentFlushes(t *testing.T) {
	tt := newTelemetry(t)
	l := openT(t, t.TempDir(), Config{FlushInterval: 100 * time.Microsecond}, tt.opts()...)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			tctx, parent := tt.tp.Tracer("test").Start(ctx, "writer")
			defer parent.End()
			for range 50 {
				if _, err := l.Append(tctx, []byte("concurrent")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	spans := tt.spans.Ended()
	flushes := spansNamed(spans, aofotel.SpanFlush)
	for _, a := range spansNamed(spans, aofotel.SpanAppend) {
		set := attribute.NewSet(a.Attributes()...)
		sv, _ := set.Value(aofotel.AttrSeq)
		seq := sv.AsInt64()
		linking := linkedBy(spans, aofotel.SpanFlush, a.SpanContext())
		if len(linking) > 1 {
			t.Fatalf("append of seq %d linked by %d flushes", seq, len(linking))
		}
		if len(linking) == 1 {
			if from, durable := flushRange(linking[0]); seq < from || seq >= durable {
				t.Fatalf("append of seq %d linked by the flush that made [%d, %d) durable", seq, from, durable)
			}
			continue
		}
		var full bool
		for _, f := range flushes {
			from, durable := flushRange(f)
			full = full || (from <= seq && seq < durable && len(f.Links()) == aofotel.MaxLinks)
		}
		if !full {
			t.Fatalf("append of seq %d not linked", seq)
		}
	}
}

// flushSampler samples every span, except aof.flush spans while drop is
// set: a ratio sampler, made deterministic.
type flushSampler struct{ drop atomic.Bool }

func (s *flushSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	ts := trace.SpanContextFromContext(p.ParentContext).TraceState()
	if p.Name == aofotel.SpanFlush && s.drop.Load() {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: ts}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: ts}
}

func (s *flushSampler) Description() string { return "flushSampler" }

// Issue 11 defect 15: aof.flush_until linked the last recorded flush, not
// the one that made its record durable.
func TestDefect15FlushUntilLinksTheFlushThatMadeItDurable(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	sampler := &flushSampler{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sampler))
	defer tp.Shutdown(ctx)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, WithTracerProvider(tp))
	defer l.Close()
	flushed := func(p string) RecordID {
		id := mustAppend(t, l, []byte(p))
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := flushed("made durable by the first flush")
	flushed("made durable by the second flush")
	wait := func(id RecordID) sdktrace.ReadOnlySpan {
		tctx, parent := tp.Tracer("test").Start(ctx, "request")
		defer parent.End()
		if err := l.FlushUntil(tctx, id); err != nil {
			t.Fatal(err)
		}
		waits := spansNamed(sr.Ended(), aofotel.SpanFlushUntil)
		return waits[len(waits)-1]
	}
	flushes := spansNamed(sr.Ended(), aofotel.SpanFlush)
	if len(flushes) != 2 {
		t.Fatalf("%d flush spans, want 2", len(flushes))
	}
	// Already durable: the first flush made it so, not the latest.
	w := wait(first)
	if len(w.Links()) != 1 || w.Links()[0].SpanContext.SpanID() != flushes[0].SpanContext().SpanID() {
		t.Fatalf("wait for seq %d links %v, want the first flush %v", first.Seq, w.Links(), flushes[0].SpanContext().SpanID())
	}
	// Made durable by a flush that was not sampled: no link at all.
	sampler.drop.Store(true)
	w = wait(mustAppend(t, l, []byte("made durable by an unsampled flush")))
	if len(w.Links()) != 0 {
		t.Fatalf("wait woken by an unsampled flush links %v, want none", w.Links())
	}
}

// Issue 11 defect 16: an empty AppendBatch under a sampled context recorded
// an aof.append span with seq 0 that the next flush linked.
func TestDefect16EmptyBatchRecordsNoAppendSpan(t *testing.T) {
	tt := newTelemetry(t)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, tt.opts()...)
	defer l.Close()
	tctx, parent := tt.tp.Tracer("test").Start(ctx, "request")
	ids, err := l.AppendBatch(tctx, nil)
	parent.End()
	if err != nil || len(ids) != 0 {
		t.Fatalf("empty batch: %v, %v", ids, err)
	}
	mustAppend(t, l, []byte("unrelated"))
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	spans := tt.spans.Ended()
	if a := spansNamed(spans, aofotel.SpanAppend); len(a) != 0 {
		t.Fatalf("%d append spans for an empty batch, want 0: %v", len(a), a[0].Attributes())
	}
	for _, f := range spansNamed(spans, aofotel.SpanFlush) {
		if len(f.Links()) != 0 {
			t.Fatalf("flush links %v, want none", f.Links())
		}
	}
}

// sumPoints returns the data points of an int64 sum by their aof.log.
func sumPoints(t *testing.T, m metricdata.Metrics) map[string]metricdata.DataPoint[int64] {
	t.Helper()
	d, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s: data %T", m.Name, m.Data)
	}
	if !d.IsMonotonic {
		t.Fatalf("%s is not monotonic", m.Name)
	}
	out := map[string]metricdata.DataPoint[int64]{}
	for _, p := range d.DataPoints {
		v, _ := p.Attributes.Value(aofotel.AttrLog)
		if _, dup := out[v.AsString()]; dup {
			t.Fatalf("%s: two points for aof.log %q", m.Name, v.AsString())
		}
		out[v.AsString()] = p
	}
	return out
}

// Issue 11 defect 18: two logs whose directories share a base name
// reported as one series, which went down when one of them closed.
func TestDefect18LogsWithTheSameBaseNameAreSeparateSeries(t *testing.T) {
	tt := newTelemetry(t)
	root := t.TempDir()
	a := openT(t, filepath.Join(root, "a", "wal"), Config{}, tt.opts()...)
	defer a.Close()
	b := openT(t, filepath.Join(root, "b", "wal"), Config{}, tt.opts()...)
	appendN(t, a, 1, 4)
	appendN(t, b, 1, 6)
	before := sumPoints(t, tt.collect(t)[aofotel.MetricAppendRecords])
	if len(before) != 2 {
		t.Fatalf("%d append-records series for two logs, want 2: %v", len(before), before)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	after := sumPoints(t, tt.collect(t)[aofotel.MetricAppendRecords])
	for log, p := range before {
		if q, ok := after[log]; ok && q.Value < p.Value {
			t.Fatalf("aof.log %q: append records went from %d down to %d", log, p.Value, q.Value)
		}
	}
	if p := after[a.Dir()]; p.Value != 3 {
		t.Fatalf("series of %s: %v, want 3 records (points %v)", a.Dir(), p, after)
	}
}

// Issue 11 defect 19: reopening a log in the same process restarted its
// cumulative counters under the instruments' old start time.
func TestDefect19ReopenDoesNotResetCounters(t *testing.T) {
	tt := newTelemetry(t)
	dir := t.TempDir()
	opts := append(tt.opts(), WithName("reopened"))
	l := openT(t, dir, Config{}, opts...)
	appendN(t, l, 1, 6)
	first := sumPoints(t, tt.collect(t)[aofotel.MetricAppendRecords])["reopened"]
	if first.Value != 5 {
		t.Fatalf("append records %d, want 5", first.Value)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, Config{}, opts...)
	defer l.Close()
	appendN(t, l, 6, 8)
	second := sumPoints(t, tt.collect(t)[aofotel.MetricAppendRecords])["reopened"]
	// Either a new start time (a visible reset) or a value that goes on
	// counting; never a smaller value under the old start time.
	if second.StartTime.Equal(first.StartTime) && second.Value != 7 {
		t.Fatalf("after reopen: %d records since %v, want 7 (5 before the reopen, 2 after)", second.Value, second.StartTime)
	}
}

// Pins a gap in the fix of issue 11 defect 15: aof.flush_until was not
// linked to the flush that made its record durable when that flush ran
// in the same trace, although another span (an earlier wait) led it.
func TestFlushUntilLinksAFlushOfItsOwnTraceLedByAnotherWait(t *testing.T) {
	tt := newTelemetry(t)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, tt.opts()...)
	defer l.Close()
	tctx, parent := tt.tp.Tracer("test").Start(ctx, "request")
	id, err := l.Append(tctx, []byte("one request"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(tctx); err != nil { // leads the flush: its child
		t.Fatal(err)
	}
	if err := l.FlushUntil(tctx, id); err != nil { // already durable
		t.Fatal(err)
	}
	parent.End()
	spans := tt.spans.Ended()
	flushes := spansNamed(spans, aofotel.SpanFlush)
	waits := spansNamed(spans, aofotel.SpanFlushUntil)
	if len(flushes) != 1 || len(waits) != 2 {
		t.Fatalf("%d flush spans and %d flush_until spans, want 1 and 2", len(flushes), len(waits))
	}
	if flushes[0].Parent().SpanID() != waits[0].SpanContext().SpanID() || len(waits[0].Links()) != 0 {
		t.Fatalf("Sync's wait: want the flush's parent, with no link; links %v", waits[0].Links())
	}
	if l := waits[1].Links(); len(l) != 1 || l[0].SpanContext.SpanID() != flushes[0].SpanContext().SpanID() {
		t.Fatalf("FlushUntil's wait links %v, want the flush that made seq %d durable (%v), led by Sync's wait", l, id.Seq, flushes[0].SpanContext().SpanID())
	}
}

// Every counter has its series from Open, at 0, so that a failure counter
// that never moved can be alerted on (the collector stack's dashboard
// queries aof_fsync_failures_total and aof_fsync_retries_total).
func TestCountersExistAtZeroFromOpen(t *testing.T) {
	tt := newTelemetry(t)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, tt.opts()...)
	defer l.Close()
	got := tt.collect(t)
	for _, name := range []string{
		aofotel.MetricAppendRecords, aofotel.MetricAppendSize, aofotel.MetricFlushes, aofotel.MetricFsyncs,
		aofotel.MetricFsyncRetries, aofotel.MetricFsyncFailures, aofotel.MetricDurableSize,
		aofotel.MetricRecoveryTruncated, aofotel.MetricSegmentsRemoved,
	} {
		sum, ok := got[name].Data.(metricdata.Sum[int64])
		if !ok || len(sum.DataPoints) == 0 {
			t.Errorf("%s: no series after Open (%T)", name, got[name].Data)
			continue
		}
		for _, dp := range sum.DataPoints {
			if dp.Value != 0 {
				t.Errorf("%s = %d after opening an empty log, want 0", name, dp.Value)
			}
		}
	}
	if sum, _ := got[aofotel.MetricFlushes].Data.(metricdata.Sum[int64]); len(sum.DataPoints) != len(FlushReasons())*len(FlushModes()) {
		t.Errorf("%s: %d series, want one per reason and mode (%d)", aofotel.MetricFlushes, len(sum.DataPoints), len(FlushReasons())*len(FlushModes()))
	}
}
