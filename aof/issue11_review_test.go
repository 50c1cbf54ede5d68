package aof

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/vfs"
)

// Second review of the issue 11 fixes: each test failed before the fix
// that came with it.

// Pins a regression of issue 11 defects 3/4: the retainer sealed a segment
// before the front with a flush of its own, holding retainMu while a
// stalled sync held the flush lock, so TruncateFront ignored its context.
func TestRetainerNeverWaitsForAFlushUnderRetainMu(t *testing.T) {
	fs := vfs.NewFaultFS(nil)
	dir := t.TempDir()
	var frontMarked sync.Once
	marked := make(chan struct{})
	cfg := retentionCfg
	cfg.RetainBytes = 1 // only the active segment is kept
	l := openT(t, dir, cfg, WithFS(fs), withCrashPoint(func(p string) {
		if p == crashFrontMarked {
			frontMarked.Do(func() { close(marked) })
		}
	}))
	defer l.Close()
	release := make(chan struct{})
	var released sync.Once
	defer released.Do(func() { close(release) }) // before Close
	sub := l.Subscribe()
	defer sub.Close()
	fillActive(t, l, 300)
	first := l.active.Load()
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// Roll over with no flusher, then let one segment sync through (the
	// seal of segment 1) and stall the next (segment 2's records): the
	// flush seals segment 1, kicks the retainer, and stalls holding the
	// flush lock.
	l.StopFlusher()
	mustAppend(t, l, make([]byte, 2*int(first.Free())))
	entered := make(chan int, 1)
	stall := vfs.StallUntil(release, entered)
	var segSyncs atomic.Int32
	fs.SetSyncHook(func(n int, name string) error {
		if !strings.HasPrefix(name, l.segDir) || segSyncs.Add(1) == 1 {
			return nil
		}
		return stall(n, name)
	})
	l.StartFlusher()
	<-entered
	<-marked // the retainer moved the front past segment 1

	c, cancel := context.WithCancel(ctx)
	cancel()
	done := make(chan error, 1)
	go func() { done <- l.TruncateFront(c, l.FirstSeq()) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("TruncateFront with a cancelled context: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("TruncateFront with a cancelled context still waits after a minute: the retainer holds retention behind a stalled flush")
	}
	if !first.Sealed() {
		t.Fatal("segment 1 not sealed by the stalled flush")
	}
	// Once the flush is done with segment 1, the retainer removes it.
	released.Do(func() { close(release) })
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	for {
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("segment 1 not removed after the stall: %v", err)
		}
		if ev.Kind == EventRemoved && ev.Segment == first.Header().Index {
			break
		}
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
