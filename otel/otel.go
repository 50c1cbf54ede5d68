// Package otel is aof2's OpenTelemetry instrumentation: the span and
// instrument definitions the log uses, built on the OpenTelemetry API only.
// The log takes its providers from aof.WithTracerProvider and
// aof.WithMeterProvider, or the global ones (no-ops until the application
// installs an SDK). This package never installs an SDK or an exporter;
// package otelsetup does, for applications that want it.
//
// # Cost
//
// Appends are traced only when the caller's context carries a sampled span,
// so an unsampled or untraced Append costs one context lookup. Counters and
// gauges are read from the log's Metrics() snapshot at collection time, so
// they cost nothing on the append path. Gauges are observable and equal
// Metrics(). Counters are given what Metrics() counted since the last
// collection: a series (one per aof.log value and MeterProvider) counts
// since the instrument's start time, across every Open of the log in the
// process, never goes down and stays after Close; for a log opened once it
// equals Metrics(). Histograms (fsync duration, flush duration, durable
// lag) get one point per sync or flush, not per record.
//
// # Spans
//
//   - aof.append: child of a sampled caller span; attributes aof.segment,
//     aof.seq, aof.record.size.
//   - aof.flush: one per flush (a group commit); attributes aof.log,
//     aof.flush.reason, aof.flush.mode, aof.segment, aof.flush.bytes,
//     aof.flush.records, aof.durable.seq; links to the sampled aof.append
//     spans it made durable; an event per failed fsync attempt
//     (aof.fsync.retry with attempt, errno and backoff in seconds, or
//     aof.fsync.failed with attempt and errno); status Error and
//     error.type when the flush failed.
//   - aof.fsync: child of a recorded flush, one per sync attempt, from
//     the sync call to its return; attributes aof.log, aof.segment,
//     aof.fsync.target (data, directory or footer), aof.fsync.attempt
//     and, for a failed attempt, aof.fsync.errno, error.type and status Error, plus
//     aof.fsync.backoff (seconds) when a retry follows: the next
//     attempt's span starts after that wait. None when the flush is not
//     recorded.
//   - aof.flush_until: from FlushUntil's or Sync's call to its return, when
//     the caller's context is sampled; a flush it led itself is its child,
//     otherwise it is linked to the flush that made its record durable
//     (even one that ran before the call), if that flush was sampled. It
//     has no link when that flush was not sampled, is older than the last
//     64 flushes, or the wait failed: never a link to another flush.
//   - aof.seal: child of the flush that sealed a segment.
//   - aof.recover: at Open; an event per segment (trusted, scanned,
//     truncated with offset, bytes and aof.corrupt, removed).
//   - aof.truncate: one per TruncateFront, TruncateBack, Reset or
//     retention pass that changed the log; attributes aof.truncate.end
//     (front, back, or all for a Reset), aof.reason (truncate-front,
//     truncate-back, retain-bytes, retain-age, reset), aof.seq (the new
//     first record, the last one kept, or a Reset's next) and
//     aof.segments.removed; status Error when it failed.
package otel

import (
	"context"
	"fmt"
	"sync"
	"time"

	gootel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/aof2/aof2/flush"
)

// ScopeName is the instrumentation scope of every span and instrument: the
// module path.
const ScopeName = "github.com/aof2/aof2"

// Version is the instrumentation scope's version.
const Version = "0.1.0"

// Span names.
const (
	SpanAppend     = "aof.append"
	SpanFlush      = "aof.flush"
	SpanFlushUntil = "aof.flush_until"
	SpanFsync      = "aof.fsync"
	SpanSeal       = "aof.seal"
	SpanRecover    = "aof.recover"
	SpanTruncate   = "aof.truncate"
	SpanPrewrite   = "aof.prewrite"
)

// Event names.
const (
	EventFsyncRetry       = "aof.fsync.retry"
	EventFsyncFailed      = "aof.fsync.failed"
	EventSegmentTrusted   = "aof.recover.segment.trusted"
	EventSegmentScanned   = "aof.recover.segment.scanned"
	EventSegmentTruncated = "aof.recover.segment.truncated"
	EventSegmentRemoved   = "aof.recover.segment.removed"
)

// Attribute keys.
const (
	AttrLog          = attribute.Key("aof.log")
	AttrSegment      = attribute.Key("aof.segment")
	AttrSeq          = attribute.Key("aof.seq")
	AttrRecordSize   = attribute.Key("aof.record.size")
	AttrFlushReason  = attribute.Key("aof.flush.reason")
	AttrFlushMode    = attribute.Key("aof.flush.mode")
	AttrFlushBytes   = attribute.Key("aof.flush.bytes")
	AttrFlushRecords = attribute.Key("aof.flush.records")
	AttrDurableSeq   = attribute.Key("aof.durable.seq")
	AttrAttempt      = attribute.Key("aof.fsync.attempt")
	AttrBackoff      = attribute.Key("aof.fsync.backoff") // seconds
	AttrErrno        = attribute.Key("aof.fsync.errno")
	AttrErrorType    = attribute.Key("error.type")
	AttrFile         = attribute.Key("file.name")
	AttrOffset       = attribute.Key("aof.offset")
	AttrBytes        = attribute.Key("aof.bytes")
	AttrRecords      = attribute.Key("aof.records")
	AttrReason       = attribute.Key("aof.reason")
	AttrCorrupt      = attribute.Key("aof.corrupt")
	AttrTruncateEnd  = attribute.Key("aof.truncate.end")
	AttrRemoved      = attribute.Key("aof.segments.removed")
	AttrSyncTarget   = attribute.Key("aof.fsync.target")
	AttrSegmentSize  = attribute.Key("aof.segment.size")
)

// Values of aof.fsync.target: what a sync attempt makes durable.
const (
	SyncData      = "data"      // a segment's records
	SyncDirectory = "directory" // the segments directory, after a segment was created
	SyncFooter    = "footer"    // a segment's footer, when it is sealed
)

// MaxLinks caps the links of one aof.flush span (the SDK's default limit
// is 128): appends past it are made durable by the flush but not linked.
const MaxLinks = 128

// maxPending caps the sampled appends waiting for a flush, and
// recentFlushes the flushes a flush_until span can be linked to.
const (
	maxPending    = 4096
	recentFlushes = 64
)

// Telemetry is one log's instrumentation. All methods are safe for
// concurrent use, and cheap when the providers are no-ops.
type Telemetry struct {
	tracer trace.Tracer
	logKV  attribute.KeyValue
	logSet metric.MeasurementOption
	// Built once, so a flush allocates nothing for them.
	recordOpts []metric.RecordOption
	flushOpts  [flush.NumReasons][flush.NumModes][]trace.SpanStartOption
	// flush is the flush being traced: flushes run one at a time (the
	// pipeline's flush lock), so one is reused.
	flush Flush

	inst         instruments
	registration metric.Registration

	mu      sync.Mutex
	pending []pendingLink // sampled appends not yet linked, by seq
	// recent are the last flushes, recent[n%recentFlushes] the n-th;
	// flushes counts them.
	recent  [recentFlushes]flushRecord
	flushes uint64
}

type pendingLink struct {
	seq uint64
	sc  trace.SpanContext
}

// flushRecord is one finished flush: it made the records [from, durable)
// durable; sc is its span's context (not sampled if it was not recorded)
// and parent the span it ran under (a wait that led it), if any.
type flushRecord struct {
	from, durable uint64
	sc            trace.SpanContext
	parent        trace.SpanID
}

// New returns the instrumentation of the log named logName. Nil providers
// mean the global ones.
func New(tp trace.TracerProvider, mp metric.MeterProvider, logName string) (*Telemetry, error) {
	if tp == nil {
		tp = gootel.GetTracerProvider()
	}
	if mp == nil {
		mp = gootel.GetMeterProvider()
	}
	t := &Telemetry{
		tracer: tp.Tracer(ScopeName, trace.WithInstrumentationVersion(Version)),
		logKV:  AttrLog.String(logName),
	}
	t.logSet = metric.WithAttributeSet(attribute.NewSet(t.logKV))
	t.recordOpts = []metric.RecordOption{t.logSet}
	for r := range flush.NumReasons {
		for m := range flush.NumModes {
			reason, mode := flush.Reason(r), flush.Mode(m)
			t.flushOpts[r][m] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(t.logKV, AttrFlushReason.String(reason.String()), AttrFlushMode.String(mode.String()))}
		}
	}
	meter := mp.Meter(ScopeName, metric.WithInstrumentationVersion(Version))
	if err := t.inst.create(meter); err != nil {
		return nil, fmt.Errorf("aof2: telemetry: %w", err)
	}
	return t, nil
}

// Observe registers the collection callback; read fills in the values at
// each collection, from the log's Metrics snapshot (counted since Open).
// The counters add up those values over every Open of the log in this
// process (see instruments), so they agree with Metrics for a log opened
// once.
func (t *Telemetry) Observe(read func(*Values)) error {
	reg, err := t.inst.register(t.logKV, read)
	if err != nil {
		return fmt.Errorf("aof2: telemetry: %w", err)
	}
	t.registration = reg
	return nil
}

// Close unregisters the observable instruments and gives the counters the
// log's last values; call it while the log can still be read. The
// counters' series stay, at those values.
func (t *Telemetry) Close() error {
	if t.registration == nil {
		return nil
	}
	err := t.registration.Unregister()
	t.inst.final()
	return err
}

// Traced reports whether ctx carries a span being recorded (sampled), so an
// append under it gets its own span. For an untraced or unsampled context
// it costs one context lookup and one interface call.
func Traced(ctx context.Context) bool {
	return trace.SpanFromContext(ctx).IsRecording()
}

// StartAppend starts an aof.append span, for a ctx that is Traced.
func (t *Telemetry) StartAppend(ctx context.Context) trace.Span {
	_, span := t.tracer.Start(ctx, SpanAppend, trace.WithSpanKind(trace.SpanKindInternal))
	return span
}

// AppendReserved remembers an append span, so the flush that makes seq
// durable links to it. Call it once seq is reserved and before the record
// is published: from then on a flush may make it durable, and that flush
// must find it here.
func (t *Telemetry) AppendReserved(span trace.Span, seq uint64) {
	sc := span.SpanContext()
	if !sc.IsSampled() {
		return
	}
	t.mu.Lock()
	if len(t.pending) < maxPending {
		t.pending = append(t.pending, pendingLink{seq: seq, sc: sc})
	}
	t.mu.Unlock()
}

// AppendDone ends an append span: seq is the record's (the batch's last
// one), 0 if none was appended.
func (t *Telemetry) AppendDone(span trace.Span, segment, seq uint64, size int, err error) {
	if seq != 0 {
		span.SetAttributes(t.logKV, AttrSegment.Int64(int64(segment)), AttrSeq.Int64(int64(seq)), AttrRecordSize.Int(size))
	} else {
		span.SetAttributes(t.logKV, AttrRecordSize.Int(size))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// flushed records a finished flush that made [from, durable) durable, and
// removes and returns the links of pending appends below durable, at most
// MaxLinks of them.
func (t *Telemetry) flushed(from, durable uint64, sc trace.SpanContext, parent trace.SpanID) []trace.Link {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushes++
	t.recent[t.flushes%recentFlushes] = flushRecord{from: from, durable: durable, sc: sc, parent: parent}
	if len(t.pending) == 0 {
		return nil
	}
	var links []trace.Link
	kept := t.pending[:0]
	for _, p := range t.pending {
		switch {
		case p.seq >= durable:
			kept = append(kept, p)
		case len(links) < MaxLinks:
			links = append(links, trace.Link{SpanContext: p.sc, Attributes: []attribute.KeyValue{AttrSeq.Int64(int64(p.seq))}})
		}
	}
	t.pending = kept
	return links
}

// Flush is one flush being traced.
type Flush struct {
	t      *Telemetry
	ctx    context.Context
	span   trace.Span
	parent trace.SpanID
	start  time.Time
	// What the next sync attempts are for (see Syncing).
	syncSegment uint64
	syncTarget  string
}

// StartFlush starts the aof.flush span of one flush; ctx is the context
// the flush runs under (a FlushUntil caller's, for a flush it leads).
// Flushes are traced one at a time: the Flush returned is valid until the
// next StartFlush, which the caller's flush lock orders after Done.
func (t *Telemetry) StartFlush(ctx context.Context, r flush.Reason, m flush.Mode) *Flush {
	f := &t.flush
	f.t, f.start = t, time.Now()
	f.syncSegment, f.syncTarget = 0, ""
	f.parent = trace.SpanContextFromContext(ctx).SpanID()
	f.ctx, f.span = t.tracer.Start(ctx, SpanFlush, t.flushOpts[r][m]...)
	return f
}

// Context returns the flush's context, for child spans and exemplars.
func (f *Flush) Context() context.Context { return f.ctx }

// Syncing names what the next sync attempts make durable: target (one of
// the Sync* values) of segment. It only sets the aof.fsync spans'
// attributes.
func (f *Flush) Syncing(segment uint64, target string) {
	f.syncSegment, f.syncTarget = segment, target
}

// SyncAttempt records one sync attempt: its duration in the fsync
// histogram and, when the flush span is recorded, an aof.fsync child span
// over the sync call (attempt; errno and status Error when it failed; the
// backoff in seconds when a retry follows) and, for a failure, an event on
// the flush span. An unrecorded flush gets neither: no span is started.
func (f *Flush) SyncAttempt(a flush.SyncAttempt) {
	ctx := f.ctx
	if f.span.IsRecording() {
		ctx = f.fsyncSpan(a)
	}
	f.t.inst.fsyncDuration.Record(ctx, a.Duration.Seconds(), f.t.recordOpts...)
}

// fsyncSpan records the aof.fsync span of one attempt of a recorded flush
// (and its event, when it failed) and returns a context carrying it, for
// the histogram's exemplar.
func (f *Flush) fsyncSpan(a flush.SyncAttempt) context.Context {
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, AttrAttempt.Int(a.Attempt))
	if a.Err != nil {
		attrs = append(attrs, AttrErrno.String(errnoName(a.Err)))
		if a.Backoff > 0 {
			attrs = append(attrs, AttrBackoff.Float64(a.Backoff.Seconds()))
		}
	}
	// The event has the attempt, errno and backoff; the span also says
	// which log, segment and target.
	event := attrs
	attrs = append(attrs, f.t.logKV, AttrSegment.Int64(int64(f.syncSegment)), AttrSyncTarget.String(f.syncTarget))
	ctx, span := f.t.tracer.Start(f.ctx, SpanFsync, trace.WithTimestamp(a.Start), trace.WithAttributes(attrs...))
	if a.Err != nil {
		name := EventFsyncRetry
		if a.Final {
			name = EventFsyncFailed
		}
		f.span.AddEvent(name, trace.WithTimestamp(a.Start.Add(a.Duration)), trace.WithAttributes(event...))
	}
	endSpan(span, a.Err, trace.WithTimestamp(a.Start.Add(a.Duration)))
	return ctx
}

// Sealed records the seal of a segment as a child span of the flush.
func (f *Flush) Sealed(segment uint64, start time.Time, err error) {
	_, span := f.t.tracer.Start(f.ctx, SpanSeal, trace.WithTimestamp(start),
		trace.WithAttributes(f.t.logKV, AttrSegment.Int64(int64(segment))))
	endSpan(span, err)
}

// Done ends the flush span: what it wrote, the durable frontier it reached,
// links to the sampled appends it made durable, and the lag of the oldest
// record it made durable (appendedAt, Unix nanoseconds; 0 if none).
func (f *Flush) Done(segment uint64, bytes int64, records, durable uint64, appendedAt int64, err error) {
	now := time.Now()
	f.t.inst.flushDuration.Record(f.ctx, now.Sub(f.start).Seconds(), f.t.recordOpts...)
	if appendedAt > 0 {
		f.t.inst.durableLag.Record(f.ctx, now.Sub(time.Unix(0, appendedAt)).Seconds(), f.t.recordOpts...)
	}
	// Links are taken even when this flush is not recorded, so appends
	// made durable by an unsampled flush are not linked to a later one.
	links := f.t.flushed(durable-records, durable, f.span.SpanContext(), f.parent)
	if f.span.IsRecording() {
		f.span.SetAttributes(AttrSegment.Int64(int64(segment)), AttrFlushBytes.Int64(bytes),
			AttrFlushRecords.Int64(int64(records)), AttrDurableSeq.Int64(int64(durable)))
		for _, l := range links {
			f.span.AddLink(l)
		}
	}
	endSpan(f.span, err)
}

// StartWait starts an aof.flush_until span if ctx is Traced;
// the returned context carries it.
func (t *Telemetry) StartWait(ctx context.Context, seq uint64) (context.Context, trace.Span) {
	if !Traced(ctx) {
		return ctx, nil
	}
	return t.tracer.Start(ctx, SpanFlushUntil, trace.WithAttributes(t.logKV, AttrSeq.Int64(int64(seq))))
}

// WaitDone ends the flush_until span of a wait for seq (a nil span is a
// no-op). When the wait succeeded, the span is linked to the flush that
// made seq durable if that flush was sampled and is not the span's own
// child; otherwise it has no link.
func (t *Telemetry) WaitDone(span trace.Span, seq uint64, err error) {
	if span == nil {
		return
	}
	if err == nil {
		// A flush the wait led is its child, not a link; one led by
		// another span of the same trace is linked.
		if r := t.madeDurable(seq); r.sc.IsSampled() && r.parent != span.SpanContext().SpanID() {
			span.AddLink(trace.Link{SpanContext: r.sc})
		}
	}
	endSpan(span, err)
}

// madeDurable returns the latest of the recent flushes that made seq
// durable: the zero record (an invalid span context) if none of them did.
func (t *Telemetry) madeDurable(seq uint64) flushRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	for n := t.flushes; n > 0 && t.flushes-n < recentFlushes; n-- {
		if r := t.recent[n%recentFlushes]; r.from <= seq && seq < r.durable {
			return r
		}
	}
	return flushRecord{}
}

// RecoverEvent is one thing recovery found, for the aof.recover span.
type RecoverEvent struct {
	Name  string // one of the EventSegment* names
	Attrs []attribute.KeyValue
}

// Recovered records Open's recovery: a span from start to now with one
// event per segment, and a point in the recovery duration histogram.
func (t *Telemetry) Recovered(ctx context.Context, start time.Time, events []RecoverEvent, err error) {
	d := time.Since(start)
	_, span := t.tracer.Start(ctx, SpanRecover, trace.WithTimestamp(start), trace.WithAttributes(t.logKV))
	for _, e := range events {
		span.AddEvent(e.Name, trace.WithAttributes(e.Attrs...))
	}
	t.inst.recoveryDuration.Record(trace.ContextWithSpan(ctx, span), d.Seconds(), t.recordOpts...)
	endSpan(span, err)
}

// Truncated records an aof.truncate span from start to now under ctx: end
// is "front" or "back", seq the new first record (front) or the last one
// kept (back), removed the segment files removed.
func (t *Telemetry) Truncated(ctx context.Context, start time.Time, end, reason string, seq uint64, removed int, err error) {
	_, span := t.tracer.Start(ctx, SpanTruncate, trace.WithTimestamp(start), trace.WithAttributes(t.logKV,
		AttrTruncateEnd.String(end), AttrReason.String(reason), AttrSeq.Int64(int64(seq)), AttrRemoved.Int(removed)))
	endSpan(span, err)
}

// Prewritten records an aof.prewrite span from start to now: the
// preparer wrote zeros over done bytes of a new segment file of size bytes
// and wrote them back (unless Config.NoPrewrite); err is why it stopped
// short, if it failed. It runs on the preparer's goroutine, under no
// caller's context.
func (t *Telemetry) Prewritten(start time.Time, done, size int64, err error) {
	_, span := t.tracer.Start(context.Background(), SpanPrewrite, trace.WithTimestamp(start), trace.WithAttributes(t.logKV,
		AttrBytes.Int64(done), AttrSegmentSize.Int64(size)))
	endSpan(span, err)
}

// endSpan ends span, with status Error, the error and error.type if err
// is not nil.
func endSpan(span trace.Span, err error, opts ...trace.SpanEndOption) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(AttrErrorType.String(errnoName(err)))
	}
	span.End(opts...)
}

// errnoName returns the errno inside err ("EIO"), or "_OTHER".
func errnoName(err error) string {
	if name := flush.Errno(err); name != "" {
		return name
	}
	return "_OTHER"
}
