package reader

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/aof2/aof2/internal/wake"
)

// Cuts is the protocol between a log's cuts (TruncateBack and Reset,
// which lower the log's end) and everything that reads the log without
// its locks: Readers, random reads, and snapshots of the log's bounds and
// counters. It is the one place where that protocol lives.
//
// The protocol:
//
//   - The generation counts cuts twice: Begin makes it odd before the cut
//     changes anything, End makes it even again once the cut is complete.
//     A look at the log that read the same even generation before and
//     after saw no cut (Stable).
//   - A reader that must not see a cut half done waits for it to end
//     with WaitIdle. The wait blocks on a wake.Broadcast that End wakes:
//     there is no polling and no sleep.
//   - End records where each cut ended the log, so that a Reader
//     positioned before a cut can tell, with Floor, whether the cut removed
//     records it had already returned (then it fails with a
//     *TruncatedError) or only records it had not got to (it goes on).
//
// The zero value is ready to use. A log has one Cuts; its methods are safe
// for concurrent use, but only one cut runs at a time (the log serializes
// them).
type Cuts struct {
	gen  atomic.Uint64
	idle wake.Broadcast // woken by End

	mu sync.Mutex
	// points holds, increasing in both gen and next, where the cuts
	// ended the log (see End).
	points []cutPoint
}

// cutPoint says that the cut which made the generation gen ended the log
// before seq next.
type cutPoint struct{ gen, next uint64 }

// Gen returns the current generation: odd while a cut runs.
func (c *Cuts) Gen() uint64 { return c.gen.Load() }

// Cutting reports whether gen, a value of Gen, is taken while a cut runs.
func Cutting(gen uint64) bool { return gen&1 == 1 }

// Settled returns the generation of the log as it was before any cut
// running now: Gen, made even. A Reader positioned under a running cut
// takes it, so that it checks its position against that cut once it ends.
func (c *Cuts) Settled() uint64 { return c.gen.Load() &^ 1 }

// Stable reports whether no cut began or ended since Gen returned gen,
// nor was running then: a look at the log between the two calls saw it
// whole.
func (c *Cuts) Stable(gen uint64) bool { return !Cutting(gen) && c.gen.Load() == gen }

// WaitIdle returns once no cut runs, with the (even) generation then. It
// blocks while a cut runs, until End wakes it.
func (c *Cuts) WaitIdle() uint64 {
	for {
		// Take the channel first, then look: an End after the look
		// closes the channel taken.
		ch := c.idle.Current()
		if gen := c.gen.Load(); !Cutting(gen) {
			return gen
		}
		<-ch
	}
}

// Begin marks the start of a cut: the generation becomes odd. The log
// calls it before it changes anything, and End once the cut is over.
func (c *Cuts) Begin() { c.gen.Add(1) }

// End marks the end of the cut Begin started, and wakes the WaitIdle
// callers. With done, the cut completed and ended the log before seq
// next; without, it failed (the log fail-stops) and nothing is recorded.
func (c *Cuts) End(next uint64, done bool) {
	if done {
		c.record(c.gen.Load()+1, next)
	}
	c.gen.Add(1)
	c.idle.Wake()
}

// record records that the cut which makes the generation gen ended the
// log before next. points is kept increasing in both gen and next: a cut
// made later that cuts as low or lower hides an earlier one from every
// reader that sees both.
func (c *Cuts) record(gen, next uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.points)
	for i > 0 && c.points[i-1].next >= next {
		i--
	}
	c.points = append(c.points[:i], cutPoint{gen, next})
}

// Floor returns the lowest end of the log that the cuts completed after
// the generation was gen left (every record at or after it that existed
// at gen was removed), and whether there was such a cut.
func (c *Cuts) Floor(gen uint64) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.points), func(i int) bool { return c.points[i].gen > gen })
	if i == len(c.points) {
		return 0, false
	}
	return c.points[i].next, true
}
