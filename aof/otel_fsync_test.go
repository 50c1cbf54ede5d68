package aof

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/sys/unix"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/vfs/vfstest"
)

// fsyncChildren returns the aof.fsync spans whose parent is span.
func fsyncChildren(spans []sdktrace.ReadOnlySpan, parent sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spansNamed(spans, aofotel.SpanFsync) {
		if s.Parent().SpanID() == parent.SpanContext().SpanID() {
			out = append(out, s)
		}
	}
	return out
}

// Issue 12: a recorded flush has one aof.fsync child span per sync
// attempt, so a trace shows each retry and the backoff between them.
func TestFsyncSpanPerSyncAttempt(t *testing.T) {
	tt := newTelemetry(t)
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, append(tt.opts(), WithFS(fs))...)
	defer l.Close()
	fails := 0
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(vfstest.Op) error {
		if fails < 2 {
			fails++
			return unix.EINTR
		}
		return nil
	}))
	id := mustAppend(t, l, []byte("retry"))
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
	spans := tt.spans.Ended()
	flushes := spansNamed(spans, aofotel.SpanFlush)
	if len(flushes) != 1 {
		t.Fatalf("%d flush spans, want 1", len(flushes))
	}
	// The sync of the segment's data: attempts 1 and 2 fail with EINTR,
	// 3 succeeds (a directory sync, if the flush made one, is another
	// span).
	byAttempt := map[int64]sdktrace.ReadOnlySpan{}
	for _, s := range fsyncChildren(spans, flushes[0]) {
		set := attribute.NewSet(s.Attributes()...)
		n, _ := set.Value(aofotel.AttrAttempt)
		target, _ := set.Value(aofotel.AttrSyncTarget)
		seg, _ := set.Value(aofotel.AttrSegment)
		if target.AsString() == aofotel.SyncData {
			if seg.AsInt64() != int64(id.Segment) {
				t.Fatalf("data sync span of segment %d, want %d", seg.AsInt64(), id.Segment)
			}
			byAttempt[n.AsInt64()] = s
		}
	}
	if len(byAttempt) != 3 {
		t.Fatalf("%d data sync spans, want 3", len(byAttempt))
	}
	for n := int64(1); n <= 3; n++ {
		s := byAttempt[n]
		if s == nil {
			t.Fatalf("no aof.fsync span for attempt %d of the segment's sync; fsync children: %d", n, len(fsyncChildren(spans, flushes[0])))
		}
		set := attribute.NewSet(s.Attributes()...)
		errno, hasErrno := set.Value(aofotel.AttrErrno)
		backoff, hasBackoff := set.Value(aofotel.AttrBackoff)
		if n < 3 {
			if s.Status().Code != codes.Error || errno.AsString() != "EINTR" {
				t.Fatalf("attempt %d: status %v, errno %q; want Error, EINTR", n, s.Status(), errno.AsString())
			}
			if !hasBackoff || backoff.Type() != attribute.FLOAT64 || backoff.AsFloat64() <= 0 {
				t.Fatalf("attempt %d: backoff %v, want a positive number of seconds", n, backoff.String())
			}
			// The next attempt starts after this one and its backoff.
			if next := byAttempt[n+1]; next != nil && next.StartTime().Before(s.EndTime()) {
				t.Fatalf("attempt %d starts at %v, before attempt %d ended at %v", n+1, next.StartTime(), n, s.EndTime())
			}
		} else if s.Status().Code == codes.Error || hasErrno || hasBackoff {
			t.Fatalf("successful attempt %d: status %v, attributes %v", n, s.Status(), s.Attributes())
		}
		if s.EndTime().Before(s.StartTime()) {
			t.Fatalf("attempt %d ends before it starts", n)
		}
	}
	// The events stay, with the backoff as a number too.
	var events int
	for _, e := range flushes[0].Events() {
		if e.Name == aofotel.EventFsyncRetry {
			set := attribute.NewSet(e.Attributes...)
			if v, ok := set.Value(aofotel.AttrBackoff); !ok || v.AsFloat64() <= 0 {
				t.Fatalf("retry event backoff %v", v.String())
			}
			events++
		}
	}
	if events != 2 {
		t.Fatalf("%d retry events, want 2", events)
	}
}

// Issue 12: the attempt that fails the flush is an aof.fsync span with
// status Error, its errno and no backoff.
func TestFsyncSpanOfAFailedSync(t *testing.T) {
	tt := newTelemetry(t)
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, append(tt.opts(), WithFS(fs))...)
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))
	if err := l.FlushUntil(ctx, mustAppend(t, l, []byte("doomed"))); err == nil {
		t.Fatal("FlushUntil succeeded over EIO")
	}
	l.Close()
	spans := tt.spans.Ended()
	var failed []sdktrace.ReadOnlySpan
	for _, f := range spansNamed(spans, aofotel.SpanFlush) {
		if f.Status().Code == codes.Error {
			failed = append(failed, fsyncChildren(spans, f)...)
		}
	}
	if len(failed) != 1 {
		t.Fatalf("%d aof.fsync spans under the failed flush, want 1 (EIO is not retried)", len(failed))
	}
	s := failed[0]
	set := attribute.NewSet(s.Attributes()...)
	errno, _ := set.Value(aofotel.AttrErrno)
	errType, _ := set.Value(aofotel.AttrErrorType)
	_, hasBackoff := set.Value(aofotel.AttrBackoff)
	if s.Status().Code != codes.Error || errno.AsString() != "EIO" || errType.AsString() != "EIO" || hasBackoff {
		t.Fatalf("failed attempt: status %v, attributes %v", s.Status(), s.Attributes())
	}
}

// Issue 12: an unrecorded flush starts no aof.fsync span, even under a
// sampler that would record one; the fsync histogram still counts every
// attempt.
func TestNoFsyncSpanUnderAnUnrecordedFlush(t *testing.T) {
	tt := newTelemetry(t)
	sr := tracetest.NewSpanRecorder()
	sampler := &flushSampler{}
	sampler.drop.Store(true)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sampler))
	defer tp.Shutdown(ctx)
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, WithTracerProvider(tp), WithMeterProvider(tt.mp), WithFS(fs))
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
	if n := len(spansNamed(sr.Ended(), aofotel.SpanFsync)); n != 0 {
		t.Fatalf("%d aof.fsync spans under unrecorded flushes", n)
	}
	if n := histCount(t, tt.collect(t)[aofotel.MetricFsyncDuration]); n < 3 {
		t.Fatalf("fsync histogram has %d points, want every attempt (>= 3)", n)
	}
}

// Issue 12: every sync of a flush has its aof.fsync span, named by
// segment and target: the records of the segment that filled up, its
// footer when the flush seals it, and the new segment's records and
// directory entry.
func TestFsyncSpansNameSegmentAndTarget(t *testing.T) {
	tt := newTelemetry(t)
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}, tt.opts()...)
	defer l.Close()
	first := mustAppend(t, l, make([]byte, 1000))
	last := first
	for last.Segment == first.Segment {
		last = mustAppend(t, l, make([]byte, 1000))
	}
	if err := l.FlushUntil(ctx, last); err != nil {
		t.Fatal(err)
	}
	spans := tt.spans.Ended()
	type key struct {
		segment int64
		target  string
	}
	got := map[key]int{}
	for _, f := range spansNamed(spans, aofotel.SpanFlush) {
		for _, s := range fsyncChildren(spans, f) {
			set := attribute.NewSet(s.Attributes()...)
			seg, _ := set.Value(aofotel.AttrSegment)
			target, _ := set.Value(aofotel.AttrSyncTarget)
			got[key{seg.AsInt64(), target.AsString()}]++
		}
	}
	for _, k := range []key{
		{int64(first.Segment), aofotel.SyncData},
		{int64(first.Segment), aofotel.SyncFooter},
		{int64(last.Segment), aofotel.SyncData},
		{int64(last.Segment), aofotel.SyncDirectory},
	} {
		if got[k] != 1 {
			t.Errorf("%d aof.fsync spans for segment %d, target %s; want 1 (all: %v)", got[k], k.segment, k.target, got)
		}
	}
}
