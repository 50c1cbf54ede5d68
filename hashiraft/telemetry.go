package hashiraft

import (
	"context"
	"errors"
	"sync"
	"time"

	gootel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the store's spans and
// instruments (the log's own use aof2's).
const ScopeName = "github.com/aof2/aof2/hashiraft"

// SpanStoreLogs is the span of the entries of one StoreLogs that carry one
// trace context (Inject): a child of the remote span, and the parent of
// the log's aof.append span for them.
const SpanStoreLogs = "hashiraft.store_logs"

// Attribute keys of the store's spans and instruments.
const (
	AttrStore       = attribute.Key("hashiraft.store")
	AttrFirstIndex  = attribute.Key("raft.index.first")
	AttrLastIndex   = attribute.Key("raft.index.last")
	AttrTruncateEnd = attribute.Key("hashiraft.truncate.end")
)

// Values of hashiraft.truncate.end.
const (
	endHead = "head" // a prefix deleted (compaction)
	endTail = "tail" // a suffix deleted (conflicting entries)
	endAll  = "all"  // every entry deleted (a snapshot installed)
)

// Instrument names. Counters count since Open.
const (
	MetricEntriesWritten = "hashiraft.entries.written"  // entries StoreLogs made durable
	MetricBytesWritten   = "hashiraft.bytes.written"    // their encoded bytes
	MetricEntriesRead    = "hashiraft.entries.read"     // entries GetLog returned
	MetricBytesRead      = "hashiraft.bytes.read"       // their encoded bytes
	MetricTruncations    = "hashiraft.truncations"      // DeleteRange calls that deleted, by hashiraft.truncate.end
	MetricStableSets     = "hashiraft.stable.sets"      // stable store Sets
	MetricOldestAge      = "hashiraft.oldest_entry.age" // seconds since the first entry was stored on this node
)

// telemetry holds the store's tracer and instruments.
type telemetry struct {
	s      *Store
	tracer trace.Tracer
	attrs  metric.MeasurementOption

	entriesW, bytesW, entriesR, bytesR, truncs, sets metric.Int64Counter
	reg                                              metric.Registration

	mu         sync.Mutex
	oldestSeq  uint64 // the first entry whose time oldestTime caches
	oldestTime int64  // its append time, Unix nanoseconds
}

func newTelemetry(s *Store, name string, mp metric.MeterProvider, tp trace.TracerProvider) (*telemetry, error) {
	if mp == nil {
		mp = gootel.GetMeterProvider()
	}
	if tp == nil {
		tp = gootel.GetTracerProvider()
	}
	t := &telemetry{
		s:      s,
		tracer: tp.Tracer(ScopeName),
		attrs:  metric.WithAttributeSet(attribute.NewSet(AttrStore.String(name))),
	}
	m := mp.Meter(ScopeName)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	t.entriesW = counter(MetricEntriesWritten, "{entry}", "Raft entries stored durably.")
	t.bytesW = counter(MetricBytesWritten, "By", "Encoded bytes of the raft entries stored.")
	t.entriesR = counter(MetricEntriesRead, "{entry}", "Raft entries read.")
	t.bytesR = counter(MetricBytesRead, "By", "Encoded bytes of the raft entries read.")
	t.truncs = counter(MetricTruncations, "{truncation}", "DeleteRange calls that deleted entries, by end (head, tail, all).")
	t.sets = counter(MetricStableSets, "{set}", "Stable store writes.")
	age, err := m.Float64ObservableGauge(MetricOldestAge, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest raft entry the store holds (since this node stored it)."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if ts, ok := t.oldest(); ok {
			o.ObserveFloat64(age, time.Since(time.Unix(0, ts)).Seconds(), t.attrs)
		}
		return nil
	}, age)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// oldest returns the append time of the store's first entry, read once
// per first entry.
func (t *telemetry) oldest() (int64, bool) {
	first, next := t.s.log.Bounds()
	if first == next {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.oldestSeq != first {
		rec, err := t.s.log.Read(first, nil)
		if err != nil {
			return 0, false // removed meanwhile, or the log closed
		}
		t.oldestSeq, t.oldestTime = first, rec.Timestamp
	}
	return t.oldestTime, true
}

// forget drops the cached time of the first entry: the store deleted every
// entry, and the index of the old first entry may come back holding a new
// one.
func (t *telemetry) forget() {
	t.mu.Lock()
	t.oldestSeq = 0
	t.mu.Unlock()
}

func (t *telemetry) close() error { return t.reg.Unregister() }

func (t *telemetry) written(entries, bytes int) {
	ctx := context.Background()
	t.entriesW.Add(ctx, int64(entries), t.attrs)
	t.bytesW.Add(ctx, int64(bytes), t.attrs)
}

// read counts an entry GetLog returned, of size encoded bytes.
func (t *telemetry) read(size int) {
	ctx := context.Background()
	t.entriesR.Add(ctx, 1, t.attrs)
	t.bytesR.Add(ctx, int64(size), t.attrs)
}

func (t *telemetry) truncated(end string) {
	t.truncs.Add(context.Background(), 1, t.attrs, metric.WithAttributes(AttrTruncateEnd.String(end)))
}

func (t *telemetry) stableSet() { t.sets.Add(context.Background(), 1, t.attrs) }

// startStore starts the hashiraft.store_logs span of the entries [first,
// last], child of the remote span sc.
func (t *telemetry) startStore(ctx context.Context, sc trace.SpanContext, first, last uint64) (context.Context, trace.Span) {
	return t.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, sc), SpanStoreLogs,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrFirstIndex.Int64(int64(first)), AttrLastIndex.Int64(int64(last))))
}

func (t *telemetry) endSpan(sp trace.Span, err error) {
	if err != nil {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}
