package flush

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Tests of adaptive group commit (gather), under fake time: a flush of
// slowTarget takes exactly took, and the CPU work between flushes takes
// none, so the clock says how long the leaders waited for company.

// slowTarget is a fakeTarget whose flushes take took (fake time) and are
// counted, except those that find nothing to flush: they return at once,
// as the log's do.
type slowTarget struct {
	*fakeTarget
	took    time.Duration
	flushes atomic.Int64
	// gaps are the times from the end of one flush to the start of the
	// next (only the pipeline's goroutines call Flush, one at a time).
	gaps    []time.Duration
	lastEnd time.Time
}

func (s *slowTarget) Flush(ctx context.Context, r Reason, m Mode) (uint64, bool, error) {
	if s.Backlog() == 0 {
		d := <-s.durable
		s.durable <- d
		return d + 1, false, nil
	}
	if !s.lastEnd.IsZero() {
		s.gaps = append(s.gaps, time.Since(s.lastEnd))
	}
	time.Sleep(s.took)
	s.flushes.Add(1)
	defer func() { s.lastEnd = time.Now() }()
	return s.fakeTarget.Flush(ctx, r, m)
}

// add appends one record and returns its sequence number (the fake's
// records are 1, 2, ...; the pipeline starts with durable 1).
func (s *slowTarget) add() uint64 {
	a := <-s.appended
	s.appended <- a + 1
	return a + 1
}

// runWriters runs one goroutine per entry of rounds, each appending and
// waiting until its record is durable that many times, on a started
// pipeline over a slowTarget whose flushes take took. It returns the
// target and the fake time the writers took.
func runWriters(t *testing.T, took time.Duration, rounds ...int) (*slowTarget, time.Duration) {
	t.Helper()
	f := &slowTarget{fakeTarget: newFake(), took: took}
	var m Metrics
	p := New(f, Config{Interval: time.Hour, Watermark: 1 << 30}, &m, 1)
	p.Start()
	defer p.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range rounds {
		wg.Go(func() {
			for range n {
				if err := p.waitDurable(context.Background(), f.add()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return f, time.Since(start)
}

// TestGatherTakesEveryWriter: with 8 writers that each wait for their
// record before appending the next, one flush carries the records of
// all 8 once the pipeline has seen them wait together: the writers the
// last flush released are waited for, instead of syncing without them
// and leaving them for the flush after (two alternating groups of about
// half the writers, twice as many flushes).
func TestGatherTakesEveryWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const writers, rounds = 8, 40
		rs := make([]int, writers)
		for i := range rs {
			rs[i] = rounds
		}
		f, _ := runWriters(t, time.Millisecond, rs...)
		// A few flushes while the group forms, then one per round.
		if n := f.flushes.Load(); n > rounds+rounds/4 {
			t.Fatalf("%d writers x %d records took %d flushes (%.1f records per flush), want at most %d", writers, rounds, n, float64(writers*rounds)/float64(n), rounds+rounds/4)
		}
	})
}

// TestGatherLoneWriterNeverWaits: a writer alone never waits for
// company: each of its records costs one flush and nothing more.
func TestGatherLoneWriterNeverWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rounds, took = 20, time.Millisecond
		f, elapsed := runWriters(t, took, rounds)
		if n := f.flushes.Load(); n != rounds || elapsed != rounds*took {
			t.Fatalf("a lone writer's %d records took %d flushes and %v, want %d and %v", rounds, n, elapsed, rounds, rounds*took)
		}
	})
}

// TestGatherWaitIsBounded: a flush waits for company at most half the
// last flush's duration, and a writer that stops costs that wait once:
// the group then shrinks to the writers that came. Here one of 4 writers
// stops early and the others stop at the end, possibly one flush apart: 4
// departures, so at most 4 waits.
func TestGatherWaitIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const took, departures = time.Millisecond, 4
		f, _ := runWriters(t, took, 30, 30, 30, 5)
		waits := 0
		for i, g := range f.gaps {
			if g > took/gatherShare {
				t.Fatalf("flush %d waited %v for company, want at most %v", i+1, g, took/gatherShare)
			}
			if g > 0 {
				waits++
			}
		}
		if waits > departures {
			t.Fatalf("the flushes waited for company %d times (%v), want at most once per writer that stopped (%d)", waits, f.gaps, departures)
		}
	})
}
