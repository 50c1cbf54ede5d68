package aof

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPrewritePause: the prewrite spreads what it has left over a share
// of the time the active segment takes to fill at its recent rate, and
// never waits when nobody appends, when it is already late, or longer
// than maxPrewritePause.
func TestPrewritePause(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		name string
		// chunk bytes prewritten in took; left still to prewrite; the
		// active segment took appended bytes in window and has free
		// bytes left.
		chunk    int64
		took     time.Duration
		left     int64
		appended int64
		window   time.Duration
		free     int64
		want     time.Duration
	}{
		{"nobody appends", MiB, time.Millisecond, 32 * MiB, 0, 10 * time.Millisecond, 32 * MiB, 0},
		{"done", MiB, time.Millisecond, 0, MiB, 10 * time.Millisecond, 32 * MiB, 0},
		// 32 MiB free at 100 MiB/s: full in 320 ms, of which the
		// prewrite may take 60 % (192 ms) for its 32 MiB: 6 ms per
		// MiB, 1 ms of which the chunk took.
		{"on pace", MiB, time.Millisecond, 32 * MiB, MiB, 10 * time.Millisecond, 32 * MiB, 5 * time.Millisecond},
		// The same log at 1 GiB/s: 32 ms to fill, 0.6 ms per MiB
		// allowed, the chunk took 1 ms: late, no pause.
		{"late", MiB, time.Millisecond, 32 * MiB, 10 * MiB, 10 * time.Millisecond, 32 * MiB, 0},
		// A slow log: 1 MiB/s leaves 19.2 s; the pause is capped.
		{"capped", MiB, time.Millisecond, 32 * MiB, MiB, time.Second, 32 * MiB, maxPrewritePause},
		// A byte a minute into a GiB of room: a fill time beyond
		// time.Duration's range still gives the cap (it overflowed
		// to a negative Duration, and no pause, before).
		{"overflow", MiB, 0, MiB, 1, time.Minute, 1 << 30, maxPrewritePause},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := prewritePause(c.chunk, c.took, c.left, c.appended, c.window, c.free)
			if d := got - c.want; d < -time.Microsecond || d > time.Microsecond {
				t.Fatalf("prewritePause = %v, want %v", got, c.want)
			}
		})
	}
}

func withPrewritePaused(f func(d time.Duration)) Option {
	return func(o *options) { o.prewritePaused = f }
}

// TestPrewritePacedBesideAppends: a prewrite pauses between chunks while
// records go slowly into an active segment of written blocks, and not
// while the active segment is the new log's preallocated first one (an
// early rollover waits for that prewrite).
func TestPrewritePacedBesideAppends(t *testing.T) {
	var mu sync.Mutex
	var pauses []time.Duration
	var lp atomic.Pointer[Log]
	var next atomic.Uint64
	l := openT(t, t.TempDir(), Config{SegmentSize: prewriteSeg}, withPrewriteChunk(8<<10),
		withPrewriteHook(func(int64) {
			// A slow appender: 1 KiB every 2 ms, beside the prewrite.
			// Eight chunks add 8 KiB to a segment past half full: no
			// rollover (which would wait for this goroutine).
			if l := lp.Load(); l != nil {
				seq := next.Add(1) - 1
				if _, err := l.Append(context.Background(), payloadFor(seq, 1<<10)); err != nil {
					t.Error(err)
				}
			}
			time.Sleep(2 * time.Millisecond)
		}),
		withPrewritePaused(func(d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			pauses = append(pauses, d)
		}))
	defer l.Close()
	paused := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(pauses)
	}
	next.Store(halfFill(t, l, 1))
	lp.Store(l)
	waitPrepared(l)
	if n := paused(); n != 0 {
		t.Fatalf("the prewrite beside the preallocated first segment paused %d times", n)
	}
	lp.Store(nil)
	next.Store(rollOver(t, l, next.Load()))
	if !written(l.active.Load().Segment) {
		t.Fatalf("segment %d is not prewritten", l.active.Load().Header().Index)
	}
	next.Store(halfFill(t, l, next.Load()))
	lp.Store(l)
	waitPrepared(l)
	lp.Store(nil)
	if n := paused(); n == 0 {
		t.Fatal("the prewrite beside a slow appender into written blocks never paused")
	}
	mu.Lock()
	for _, d := range pauses {
		if d <= 0 || d > maxPrewritePause {
			t.Errorf("pause %v, want in (0, %v]", d, maxPrewritePause)
		}
	}
	mu.Unlock()
}
