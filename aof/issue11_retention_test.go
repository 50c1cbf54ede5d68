package aof

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/segment"
)

// Tests of issue 11's retention defects: each one failed before the fix
// that came with it.

// fillActive appends records of size bytes to l until the active segment
// has room for fewer than two more frames, and returns the next sequence
// number.
func fillActive(t testing.TB, l *Log, size int) uint64 {
	t.Helper()
	n := segment.FrameSize(size)
	for l.active.Load().Free() >= 2*n {
		mustAppend(t, l, make([]byte, size))
	}
	return l.NextSeq()
}

// Pins issue 11 defect 1: TruncateBack waits for the appenders of every
// pending segment, not only the active one's, before it cuts.
func TestDefect01TruncateBackWaitsForEveryPendingSegment(t *testing.T) {
	for _, tc := range []struct {
		name string
		// last is where the cut ends the log, given the first record of
		// segment A (the one whose last frame X reserved).
		last func(baseA uint64) uint64
	}{
		{"keeps-A", func(baseA uint64) uint64 { return baseA + 5 }},
		{"removes-A", func(baseA uint64) uint64 { return baseA - 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var (
				mu        sync.Mutex
				xPub      = true // X's frame published when the cut began
				draining  = make(chan struct{})
				drainOnce sync.Once
				xs        *seg
				xOff      int64
			)
			l := openT(t, dir, retentionCfg, withCrashPoint(func(p string) {
				switch p {
				case crashCutDrain:
					drainOnce.Do(func() { close(draining) })
				case crashCutBegin:
					// Everything is flushed by now: X's frame is
					// durable if X had copied it.
					mu.Lock()
					xPub = xs.Durable() >= xOff+segment.FrameSize(300)
					mu.Unlock()
				}
			}))
			defer l.Close()
			appendN(t, l, 1, 401) // segment 1 full, segment 2 begun
			fillActive(t, l, 300)
			// X reserves the last frame of segment A and pauses before
			// its copy.
			a := l.active.Load()
			baseA := a.Header().BaseSeq
			off, xSeq, err := a.Reserve(segment.FrameSize(300), 1)
			if err != nil {
				t.Fatal(err)
			}
			if a.Free() >= segment.FrameSize(300) {
				t.Fatalf("segment A has room for %d more bytes after X", a.Free())
			}
			mu.Lock()
			xs, xOff = a, off
			mu.Unlock()
			// Y finds A full and rolls over to B.
			y := mustAppend(t, l, make([]byte, 300))
			if y.Segment == a.Header().Index {
				t.Fatal("Y did not roll over")
			}
			last := tc.last(baseA)
			done := make(chan error, 1)
			go func() { done <- l.TruncateBack(ctx, last) }()
			var cutErr error
			filled := false
			select {
			case <-draining:
				// X finishes its copy while TruncateBack drains.
				a.Fill(off, xSeq, make([]byte, 300), time.Now().UnixNano())
				filled = true
				cutErr = <-done
			case cutErr = <-done:
				// TruncateBack did not wait for X. Let X finish
				// unless A was released (its buffer unmapped), so
				// that Close does not wait for X forever.
				if cutErr != nil {
					a.Fill(off, xSeq, make([]byte, 300), time.Now().UnixNano())
				}
			}
			mu.Lock()
			pub := xPub
			mu.Unlock()
			if !pub {
				t.Errorf("TruncateBack(%d) began its cut while X (seq %d) was still copying into segment %d", last, xSeq, a.Header().Index)
			}
			if cutErr != nil {
				t.Fatalf("TruncateBack(%d) of a healthy log: %v", last, cutErr)
			}
			if !filled {
				t.FailNow()
			}
			if next := l.NextSeq(); next != last+1 {
				t.Fatalf("NextSeq after TruncateBack(%d): %d", last, next)
			}
			appendN(t, l, last+1, last+101)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, mode := range []RecoveryMode{RecoverStrict, RecoverRepair} {
				l2, err := Open(dir, Config{SegmentSize: retentionCfg.SegmentSize, Recovery: mode})
				if err != nil {
					t.Fatalf("reopen (recovery mode %d) after TruncateBack(%d): %v", mode, last, err)
				}
				if next := l2.NextSeq(); next != last+101 {
					t.Errorf("reopened log ends before %d, want %d", next, last+101)
				}
				checkRecords(t, l2, last+1, last+101, 300)
				l2.Close()
			}
		})
	}
}

// Pins issue 11 defect 2: the interval timer keeps working across
// StopFlusher and StartFlusher, so an idle log's last record becomes
// durable.
func TestDefect02IntervalTimerSurvivesStopStartFlusher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := openT(t, t.TempDir(), Config{FlushInterval: 100 * time.Millisecond})
		defer l.Close()
		mustAppend(t, l, []byte("first"))
		synctest.Wait() // the flusher armed the interval timer
		l.StopFlusher()
		l.StartFlusher()
		synctest.Wait()
		id := mustAppend(t, l, []byte("last words"))
		time.Sleep(2 * time.Second) // twenty intervals (fake time)
		synctest.Wait()
		if m := l.Metrics(); m.DurableSeq <= id.Seq {
			t.Fatalf("an idle log's last record (seq %d) is not durable 2 s after StopFlusher/StartFlusher: %+v", id.Seq, m)
		}
	})
}

// Pins issue 11 defect 3: TruncateFront removes a segment whose records are
// all before the new front although its seal was still pending (no
// background flusher, or the flusher stopped).
func TestDefect03TruncateFrontRemovesSegmentWithPendingSeal(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		stop bool
	}{
		{"no-background-flush", Config{SegmentSize: retentionCfg.SegmentSize, NoBackgroundFlush: true}, false},
		{"flusher-stopped", retentionCfg, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, tc.cfg)
			defer l.Close()
			if tc.stop {
				l.StopFlusher()
			}
			sub := l.Subscribe()
			defer sub.Close()
			next := fillActive(t, l, 300)
			if err := l.Sync(ctx); err != nil { // segment 1 durable, not closed
				t.Fatal(err)
			}
			first := l.active.Load()
			// Roll over: segment 1 closes; its seal waits for a flush.
			id := mustAppend(t, l, make([]byte, 2*int(first.Free())))
			if id.Seq != next || id.Segment == first.Header().Index {
				t.Fatalf("no rollover: %+v", id)
			}
			if first.Sealed() {
				t.Fatal("segment 1 sealed without a flush")
			}
			for range 2 { // a repeated TruncateFront changes nothing more
				if err := l.TruncateFront(ctx, next); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(first.Path()); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("TruncateFront(%d) left %s, whose records are all removed (stat: %v)", next, filepath.Base(first.Path()), err)
				}
			}
			if m := l.Metrics(); m.RemovedSegments != 1 || m.Segments != 1 {
				t.Fatalf("after TruncateFront: %d segments, %d removed; want 1 and 1", m.Segments, m.RemovedSegments)
			}
			var kinds []EventKind
			for {
				nctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				ev, err := sub.Next(nctx)
				cancel()
				if err != nil {
					break
				}
				if ev.Segment == first.Header().Index {
					kinds = append(kinds, ev.Kind)
				}
			}
			if want := []EventKind{EventSealing, EventSealed, EventRemoved}; !slices.Equal(kinds, want) {
				t.Fatalf("events of segment 1: %v, want %v", kinds, want)
			}
			if _, err := l.Read(next-1, nil); !errors.Is(err, ErrTruncated) {
				t.Fatalf("Read(%d) below the front: %v", next-1, err)
			}
			if _, err := l.Read(next, nil); err != nil {
				t.Fatalf("Read(%d) at the front: %v", next, err)
			}
		})
	}
}

// blockingSeal is a span processor that holds the flush which sealed a
// segment inside the seal span's end: after FinishSeal, before the flush
// publishes EventSealed.
type blockingSeal struct {
	sealed  chan struct{} // closed when the first seal span ends
	release chan struct{} // closed to let that flush go on
	once    sync.Once
}

func (b *blockingSeal) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (b *blockingSeal) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.Name() != aofotel.SpanSeal {
		return
	}
	b.once.Do(func() {
		close(b.sealed)
		<-b.release
	})
}
func (b *blockingSeal) Shutdown(context.Context) error   { return nil }
func (b *blockingSeal) ForceFlush(context.Context) error { return nil }

// Pins issue 11 defect 4: retention never removes a segment before its
// EventSealed was published, so a subscriber sees sealing, sealed, removed
// in that order.
func TestDefect04RemovedNeverPrecedesSealed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &blockingSeal{sealed: make(chan struct{}), release: make(chan struct{})}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bs))
		defer tp.Shutdown(ctx)
		l := openT(t, t.TempDir(), retentionCfg, WithTracerProvider(tp))
		defer l.Close()
		sub := l.Subscribe()
		defer sub.Close()
		next := fillActive(t, l, 300)
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		first := l.active.Load()
		mustAppend(t, l, make([]byte, 2*int(first.Free()))) // roll over: the flusher seals segment 1
		<-bs.sealed
		if !first.Sealed() {
			t.Fatal("seal span ended before FinishSeal")
		}
		// A retention pass while the flush that sealed segment 1 has
		// not yet published EventSealed.
		done := make(chan error, 1)
		go func() { done <- l.TruncateFront(ctx, next) }()
		synctest.Wait() // TruncateFront finished, or waits for that flush
		close(bs.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var kinds []EventKind
		for {
			nctx, cancel := context.WithTimeout(ctx, time.Second)
			ev, err := sub.Next(nctx)
			cancel()
			if err != nil {
				break
			}
			if ev.Segment == first.Header().Index {
				kinds = append(kinds, ev.Kind)
			}
		}
		if want := []EventKind{EventSealing, EventSealed, EventRemoved}; !slices.Equal(kinds, want) {
			t.Fatalf("events of segment 1: %v, want %v", kinds, want)
		}
	})
}
