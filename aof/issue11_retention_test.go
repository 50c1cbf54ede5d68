package aof

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

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
