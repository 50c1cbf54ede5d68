package reader

import (
	"testing"
	"testing/synctest"
)

// Issue 12 §2: a cut's readers wait on one wake-up, not by polling.
// WaitIdle blocks (durably, on a channel) while a cut runs and returns
// once End wakes it, with the generation after the cut.
func TestCutsWaitIdleBlocksUntilEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Cuts
		if g := c.WaitIdle(); g != 0 {
			t.Fatalf("WaitIdle with no cut = %d, want 0", g)
		}
		c.Begin()
		if !Cutting(c.Gen()) {
			t.Fatalf("Gen %d during a cut is even", c.Gen())
		}
		const waiters = 3
		got := make(chan uint64, waiters)
		for range waiters {
			go func() { got <- c.WaitIdle() }()
		}
		synctest.Wait() // every waiter is blocked on the wake-up channel
		select {
		case g := <-got:
			t.Fatalf("WaitIdle returned %d while the cut runs", g)
		default:
		}
		c.End(10, true)
		for range waiters {
			if g := <-got; g != 2 {
				t.Fatalf("WaitIdle after the cut = %d, want 2", g)
			}
		}
	})
}

// Issue 12 §2: Stable tells a look that no cut overlapped from one that a
// cut ran through or began under.
func TestCutsStable(t *testing.T) {
	var c Cuts
	g := c.Gen()
	if !c.Stable(g) {
		t.Fatal("no cut ran, but the look is not stable")
	}
	c.Begin()
	if c.Stable(g) {
		t.Fatal("a cut began during the look, but it is stable")
	}
	if c.Stable(c.Gen()) {
		t.Fatal("a look taken during a cut is stable")
	}
	if s := c.Settled(); s != g {
		t.Fatalf("Settled during the cut = %d, want the generation before it, %d", s, g)
	}
	c.End(5, true)
	if c.Stable(g) {
		t.Fatal("a cut ran through the look, but it is stable")
	}
	if !c.Stable(c.Gen()) {
		t.Fatal("a look after the cut is not stable")
	}
}

// Issue 12 §2: Floor gives a reader positioned at a generation the lowest
// end the later completed cuts left; a failed cut records nothing, and a
// later cut as low or lower hides an earlier one.
func TestCutsFloor(t *testing.T) {
	var c Cuts
	g0 := c.Gen()
	if _, ok := c.Floor(g0); ok {
		t.Fatal("Floor with no cut reports one")
	}
	c.Begin()
	c.End(50, true) // gen 2: the log ends before 50
	g2 := c.Gen()
	c.Begin()
	c.End(0, false) // gen 4: failed, nothing recorded
	g4 := c.Gen()
	c.Begin()
	c.End(80, true) // gen 6: ends before 80 (appends after the first cut)
	for _, tc := range []struct {
		gen  uint64
		want uint64
		ok   bool
	}{{g0, 50, true}, {g2, 80, true}, {g4, 80, true}, {c.Gen(), 0, false}} {
		if got, ok := c.Floor(tc.gen); got != tc.want || ok != tc.ok {
			t.Errorf("Floor(%d) = %d, %v; want %d, %v", tc.gen, got, ok, tc.want, tc.ok)
		}
	}
	c.Begin()
	c.End(30, true) // gen 8: lower than both: hides them
	if got, ok := c.Floor(g0); got != 30 || !ok {
		t.Errorf("Floor(%d) after a lower cut = %d, %v; want 30, true", g0, got, ok)
	}
}

// Issue 12 §2: TruncatedError.Continue says where a reader goes on.
func TestTruncatedErrorContinue(t *testing.T) {
	front := &TruncatedError{Seq: 3, First: 10, Next: 20}
	back := &TruncatedError{Seq: 15, First: 10, Next: 12, Back: true}
	if got := front.Continue(); got != 10 {
		t.Errorf("retention: Continue = %d, want First 10", got)
	}
	if got := back.Continue(); got != 12 {
		t.Errorf("TruncateBack: Continue = %d, want Next 12", got)
	}
}
