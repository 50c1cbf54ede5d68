// Package flush is the flush pipeline of a log: what makes appended bytes
// durable, when, on which goroutine, and what waiters are told.
//
// # Model
//
// A [Pipeline] drives a [Target] (the log). The Target knows how to write
// and sync every complete byte; the Pipeline decides when: on a watermark
// (appenders call Request when the bytes not durable reach it), on an
// interval timer (armed when the first byte after a durable point is
// appended, so an idle log makes its last bytes durable within one
// interval), on backpressure (the appender flushes on its own goroutine),
// or on explicit request (FlushUntil, Sync, Close).
//
// At most one flush runs at a time, log-wide: the flush lock is a
// one-slot semaphore, so durability is always a prefix of the log and at
// most one flush is in flight per segment. The background goroutine and
// synchronous callers (ModeSync) share the same lock and the same Target
// code, so both give the same guarantees and the same retry policy.
//
// Durability is tracked as a sequence-number frontier: every record with a
// sequence number below Durable() is durable. The Target reports the
// frontier it reached; it must compute it from what was in place before
// its sync began, never after.
//
// Group commit: a waiter registers on the channel of the next flush to
// start, then asks for a flush; every waiter registered before a flush
// starts is woken when it ends, and one sync serves them all. An explicit
// flush first gathers: it waits, at most half as long as the last flush
// took, for as many waiters as there were around the last one (the
// writers that flush released come back with their next record), and
// does not wait at all when they are all there, or when there was one
// (see gather).
//
// Tail followers (WaitAdvanceSince) are woken by every flush that
// advances the frontier; a waiter that led that flush on its own
// goroutine then yields its processor to them, so they see the records at
// once instead of waiting for another thread to take them.
//
// Failure: when the Target reports an error (a sync failed for good), the
// pipeline fail-stops. Every waiter, now and later, gets a *FailError that
// wraps the cause and names the last durable sequence number; no later
// flush runs. Only reopening the log clears it.
package flush

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aof2/aof2/internal/wake"
)

// ErrFailed is wrapped by every error of a log that fail-stopped after a
// sync or write failed for good.
var ErrFailed = errors.New("aof2: log failed; reopen it to recover")

// ErrLowered is returned by WaitDurableSince when an Exclusive call
// lowered the durable frontier below the awaited record after the wait
// began: the record was removed (it was made durable first).
var ErrLowered = errors.New("aof2: durable frontier lowered: the record was removed")

// FailError is the error of a fail-stopped log. errors.Is matches both
// ErrFailed and the cause (an errno such as EIO, say).
type FailError struct {
	// Cause is the failure.
	Cause error
	// Durable is the durable frontier when the log failed: every record
	// with a sequence number below it is durable, none at or above it is
	// known to be.
	Durable uint64
}

func (e *FailError) Error() string {
	return fmt.Sprintf("%v: records below seq %d are durable, later ones are not: %v", ErrFailed, e.Durable, e.Cause)
}

// Unwrap returns ErrFailed and the cause.
func (e *FailError) Unwrap() []error { return []error{ErrFailed, e.Cause} }

// Target is what a pipeline flushes.
type Target interface {
	// Flush writes every complete byte not yet written, syncs it and
	// returns the durable frontier it reached (every sequence number
	// below it is durable) and whether it synced anything. It is never
	// called concurrently with itself.
	Flush(ctx context.Context, r Reason, m Mode) (durable uint64, flushed bool, err error)
	// OldestPending returns the append time (Unix nanoseconds) of the
	// oldest record not yet durable; ok is false when there is none.
	OldestPending() (appendedAt int64, ok bool)
	// Backlog returns the number of bytes appended but not yet durable.
	// The background goroutine keeps flushing while it is at or above
	// the watermark, and arms the interval timer while it is not zero.
	Backlog() int64
}

// Config sets the pipeline's triggers.
type Config struct {
	// Interval is the longest a byte waits before a flush starts.
	Interval time.Duration
	// Watermark is the backlog in bytes at which a flush starts at once.
	Watermark int64
}

const armBit = 1 << numReasons // Request bit that only arms the interval timer

// Pipeline schedules flushes of a Target. See the package comment.
type Pipeline struct {
	target  Target
	cfg     Config
	metrics *Metrics

	lock    chan struct{} // the flush lock: a one-slot semaphore
	durable atomic.Uint64
	// epoch counts the Exclusive calls that set the frontier, which may
	// lower it; it is incremented after the frontier is stored.
	epoch  atomic.Uint64
	failed atomic.Pointer[FailError]
	closed atomic.Pointer[error] // set by Close, under the flush lock

	// waiters is woken when the next flush to start ends: group-commit
	// waiters register on it, then ask for a flush.
	waiters wake.Broadcast
	// advance is woken whenever the durable frontier advances, the
	// pipeline fails or it closes (see WaitAdvanceSince).
	advance wake.Broadcast
	// following counts the goroutines in WaitAdvanceSince.
	following atomic.Int32

	// Adaptive group commit (gather). arrivals counts the calls of
	// WaitDurableSince that had to wait, inWait those still waiting, and
	// peak the most inWait reached since the last explicit flush started.
	// flushFrom is arrivals when that flush started: the waiters that came
	// after may have records it did not take. gatherFor is, while a leader
	// gathers, the arrivals count it waits for (0 otherwise); the arrival
	// that reaches it pokes gathered. Under the flush lock: group, the peak
	// when the last explicit flush started (the writers that may come
	// back), and lastFlush, how long the last flush that synced took.
	arrivals    atomic.Int64
	inWait      atomic.Int64
	peak        atomic.Int64
	flushFrom   atomic.Int64
	gatherFor   atomic.Int64
	gathered    chan struct{}
	group       int64
	lastFlush   time.Duration
	gatherTimer *time.Timer

	pending    atomic.Uint32 // requested reasons, as bits
	kick       chan struct{}
	timerArmed atomic.Bool // the interval timer runs

	runMu   sync.Mutex // serialises Start and Stop
	stop    chan struct{}
	done    chan struct{}
	running atomic.Bool
}

// New returns a pipeline over t whose durable frontier starts at durable.
// Its background goroutine is not running until Start.
func New(t Target, cfg Config, m *Metrics, durable uint64) *Pipeline {
	p := &Pipeline{
		target:   t,
		cfg:      cfg,
		metrics:  m,
		lock:     make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		gathered: make(chan struct{}, 1),
	}
	p.durable.Store(durable)
	return p
}

// Durable returns the durable frontier: every record with a sequence
// number below it is durable.
func (p *Pipeline) Durable() uint64 { return p.durable.Load() }

// Err returns the *FailError if the pipeline fail-stopped, else nil.
func (p *Pipeline) Err() error {
	if f := p.failed.Load(); f != nil {
		return f
	}
	return nil
}

// Start starts the background goroutine. It is a no-op if it runs.
func (p *Pipeline) Start() {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.running.Load() || p.closed.Load() != nil {
		return
	}
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	p.running.Store(true)
	go p.run(p.stop, p.done)
}

// Stop stops the background goroutine and waits for it to exit, finishing
// a flush in progress first. Waiters then flush on their own goroutines
// (ModeSync). It is a no-op if the goroutine is not running.
func (p *Pipeline) Stop() {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	p.stopLocked()
}

func (p *Pipeline) stopLocked() {
	if !p.running.Load() {
		return
	}
	close(p.stop)
	<-p.done
	p.running.Store(false)
	p.waiters.Wake()
}

// Close stops the pipeline for good: it stops the goroutine, waits for a
// flush in progress, and makes every later flush and every waiter whose
// record is not durable return err. A Start racing with Close starts
// nothing.
func (p *Pipeline) Close(err error) {
	p.runMu.Lock()
	p.stopLocked()
	p.lock <- struct{}{}
	p.closed.Store(&err)
	<-p.lock
	p.runMu.Unlock()
	p.waiters.Wake()
	p.advance.Wake()
}

// Request asks the background goroutine for a flush for reason r. It never
// blocks and costs one atomic OR and a channel poll.
func (p *Pipeline) Request(r Reason) {
	p.pending.Or(1 << r)
	p.poke()
}

// Arm starts the interval timer if it is not running. While it runs, Arm
// costs one atomic load: an appender on the durable path (backlog going
// from zero to one record on every append) does not wake the goroutine.
func (p *Pipeline) Arm() {
	if p.timerArmed.Load() {
		return
	}
	p.pending.Or(armBit)
	p.poke()
}

func (p *Pipeline) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Pipeline) run(stop, done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// The timer dies with this goroutine: say so, or Arm would go on
	// believing it runs after a Stop and a Start, and an idle log would
	// never make its last bytes durable.
	defer p.timerArmed.Store(false)
	armed := false
	// Bytes appended while no goroutine ran (an Arm then may have seen
	// the old timer still armed) start the interval now.
	if p.Err() == nil && p.target.Backlog() > 0 {
		timer.Reset(p.cfg.Interval)
		armed = true
		p.timerArmed.Store(true)
	}
	ctx := context.Background()
	for {
		select {
		case <-stop:
			return
		case <-p.kick:
		case <-timer.C:
			armed = false
			p.timerArmed.Store(false)
			// Flush only if a byte has waited a whole interval:
			// callers that flush on their own (FlushUntil leaders)
			// keep the backlog young, and a background flush then
			// would only get in their way.
			if at, ok := p.target.OldestPending(); ok {
				if age := time.Since(time.Unix(0, at)); age < p.cfg.Interval {
					timer.Reset(p.cfg.Interval - age)
					armed = true
					p.timerArmed.Store(true)
					continue
				}
				p.pending.Or(1 << ReasonInterval)
			}
		}
		bits := p.pending.Swap(0)
		if r, ok := highest(bits); ok {
			p.flushBacklog(ctx, r)
		}
		// Arm after the flush, from the backlog: a byte appended after
		// the timer fired and after the flush took its snapshot is
		// seen here.
		if !armed && p.Err() == nil && p.target.Backlog() > 0 {
			timer.Reset(p.cfg.Interval)
			armed = true
			p.timerArmed.Store(true)
		}
	}
}

// flushBacklog flushes for reason r, then keeps flushing while the backlog
// stays at or above the watermark and flushes make progress.
func (p *Pipeline) flushBacklog(ctx context.Context, r Reason) {
	for {
		before := p.Durable()
		if p.flush(ctx, r, ModeAsync) != nil || p.Durable() == before ||
			p.target.Backlog() < p.cfg.Watermark {
			return
		}
		r = ReasonWatermark
	}
}

// highest returns the highest-priority reason among the request bits.
func highest(bits uint32) (Reason, bool) {
	for r := int(numReasons) - 1; r >= 0; r-- {
		if bits&(1<<r) != 0 {
			return Reason(r), true
		}
	}
	return 0, false
}

// Flush runs one flush on the caller's goroutine (ModeSync) for reason r,
// waiting for a flush in progress first. It returns ctx's error if ctx ends
// while waiting.
func (p *Pipeline) Flush(ctx context.Context, r Reason) error {
	return p.flush(ctx, r, ModeSync)
}

func (p *Pipeline) flush(ctx context.Context, r Reason, m Mode) error {
	select {
	case p.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.flushLocked(ctx, r, m)
}

// tryFlush runs a flush on the caller's goroutine if none is in flight.
func (p *Pipeline) tryFlush(ctx context.Context, r Reason) (ran bool, err error) {
	select {
	case p.lock <- struct{}{}:
		return true, p.flushLocked(ctx, r, ModeSync)
	default:
		return false, nil
	}
}

// flushLocked runs one flush; the caller holds the flush lock, which is
// released on return. A flush on a caller's goroutine that woke tail
// followers (WaitAdvanceSince) then yields the processor, so that they
// run now, on it: see handoff.
func (p *Pipeline) flushLocked(ctx context.Context, r Reason, m Mode) error {
	woke, err := p.flushUnlock(ctx, r, m)
	if woke && m == ModeSync {
		runtime.Gosched()
	}
	return err
}

// flushUnlock is flushLocked up to the hand-off: it releases the flush
// lock and reports whether the flush woke tail followers.
func (p *Pipeline) flushUnlock(ctx context.Context, r Reason, m Mode) (woke bool, err error) {
	defer func() { <-p.lock }()
	// Gather first: the waiters that come meanwhile register on the
	// channel detached below, so this flush, which takes their records,
	// wakes them too.
	if r == ReasonExplicit {
		p.gather(ctx)
	}
	// Every waiter registered until now is woken when this call ends,
	// whatever it finds to do, and looks at the durable frontier again.
	// (Returning early without waking them loses a wake-up: a waiter may
	// have registered after the flush that made its record durable
	// started, and asked for this one.)
	defer p.waiters.Detach().Wake()
	return p.flushHeld(ctx, r, m)
}

// gatherShare is the part of the last flush's duration an explicit flush
// may wait for waiters before it starts: 1/gatherShare.
const gatherShare = 2

// gather runs before an explicit flush, under the flush lock: adaptive
// group commit. The writers the last flush released come back with their
// next record within moments, but the first of them to ask would lead the
// next flush at once, and those that come while it syncs would wait for
// the one after: 64 blocking writers would form two alternating groups of
// ~32 records per sync. So the leader first waits until as many waiters
// came since the last explicit flush started as there were writers
// waiting around it (group: the peak of inWait since then), for at most
// 1/gatherShare of the last flush's duration, or until ctx ends. It does
// not wait when they are all there already, and so never when a writer is
// alone (group 1: itself), nor before a flush has synced, nor when there
// is nothing to flush, nor on a failed or closed pipeline. A writer that does not come back costs the next
// flush that bound once: the group then shrinks to those who came.
func (p *Pipeline) gather(ctx context.Context) {
	target, bound := p.group, p.lastFlush/gatherShare
	need := p.flushFrom.Load() + target
	p.group = 0
	// With nothing to flush (every record of the waiters counted so far
	// is durable), this flush ends at once: no wait.
	if target > 1 && bound > 0 && p.arrivals.Load() < need && p.target.Backlog() > 0 &&
		p.Err() == nil && p.closed.Load() == nil {
		if !p.awaitArrivals(ctx, need, bound) {
			p.group = p.arrivals.Load() - p.flushFrom.Load() // those who came
		}
	}
	p.flushFrom.Store(p.arrivals.Load())
	if peak := p.peak.Swap(p.inWait.Load()); p.group == 0 {
		p.group = peak
	}
}

// awaitArrivals waits until arrivals reaches need, for at most bound or
// until ctx ends, and reports whether it did. The caller holds the flush
// lock.
func (p *Pipeline) awaitArrivals(ctx context.Context, need int64, bound time.Duration) bool {
	select { // a stale poke from an earlier gather
	case <-p.gathered:
	default:
	}
	p.gatherFor.Store(need)
	defer p.gatherFor.Store(0)
	if p.arrivals.Load() >= need { // looked again after announcing
		return true
	}
	if p.gatherTimer == nil {
		p.gatherTimer = time.NewTimer(bound)
	} else {
		p.gatherTimer.Reset(bound)
	}
	defer p.gatherTimer.Stop()
	select {
	case <-p.gathered:
		return true
	case <-p.gatherTimer.C:
	case <-ctx.Done():
	}
	return p.arrivals.Load() >= need
}

// arrive counts a goroutine that starts waiting in WaitDurableSince, and
// pokes a gathering leader (gather) when it is the one it waits for. The
// caller calls leave when it stops waiting.
func (p *Pipeline) arrive() {
	n := p.inWait.Add(1)
	for old := p.peak.Load(); n > old && !p.peak.CompareAndSwap(old, n); old = p.peak.Load() {
	}
	if a, t := p.arrivals.Add(1), p.gatherFor.Load(); t > 0 && a >= t {
		select {
		case p.gathered <- struct{}{}:
		default:
		}
	}
}

func (p *Pipeline) leave() { p.inWait.Add(-1) }

// Exclusive runs a flush on the caller's goroutine (ModeSync) and then fn,
// both under the flush lock, so no other flush runs until fn returns. fn
// returns the durable frontier after it, which may be lower than before:
// it is how the log truncates its end. An error from fn fail-stops the
// pipeline, like a failed flush. ctx bounds the wait for the lock.
func (p *Pipeline) Exclusive(ctx context.Context, r Reason, fn func() (durable uint64, err error)) error {
	select {
	case p.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.lock }()
	defer p.waiters.Detach().Wake()
	if _, err := p.flushHeld(ctx, r, ModeSync); err != nil {
		return err
	}
	durable, err := fn()
	if err != nil {
		p.failed.CompareAndSwap(nil, &FailError{Cause: err, Durable: p.durable.Load()})
		p.advance.Wake()
		return p.Err()
	}
	p.durable.Store(durable)
	p.epoch.Add(1) // after the store: see WaitDurableSince
	p.advance.Wake()
	return nil
}

// Following returns the number of goroutines waiting in
// WaitAdvanceSince: the tail followers a flush that advances the durable
// frontier wakes.
func (p *Pipeline) Following() int { return int(p.following.Load()) }

// Epoch returns the number of Exclusive calls that set the durable
// frontier so far (each may have lowered it). Take it before the sequence
// number to wait for, and pass both to WaitDurableSince or
// WaitAdvanceSince.
func (p *Pipeline) Epoch() uint64 { return p.epoch.Load() }

// flushHeld runs one flush; the caller holds the flush lock. woke says
// whether it advanced the durable frontier while tail followers waited
// for it (WaitAdvanceSince).
func (p *Pipeline) flushHeld(ctx context.Context, r Reason, m Mode) (woke bool, err error) {
	if c := p.closed.Load(); c != nil {
		return false, *c
	}
	if err := p.Err(); err != nil {
		return false, err
	}

	start := time.Now()
	durable, flushed, err := p.target.Flush(ctx, r, m)
	if flushed {
		p.metrics.flushes[r][m].Add(1)
		p.lastFlush = time.Since(start)
	}
	advanced := durable > p.durable.Load()
	if advanced {
		p.durable.Store(durable)
	}
	if err != nil {
		f := &FailError{Cause: err, Durable: p.durable.Load()}
		p.failed.CompareAndSwap(nil, f)
		p.advance.Wake()
		return false, p.Err()
	}
	if advanced {
		woke = p.following.Load() > 0
		p.advance.Wake()
	}
	return woke, nil
}

// unlessDurable returns nil if seq became durable after all (a flush can
// fail in a later segment after syncing the one holding seq), else err.
func (p *Pipeline) unlessDurable(seq uint64, err error) error {
	if seq < p.durable.Load() {
		return nil
	}
	return err
}

// WaitDurableSince returns once the record with sequence number seq,
// taken when Epoch returned epoch, is durable: the log's Sync and durable
// appends wait with it. If no flush is in flight it runs one on the
// caller's goroutine (the group-commit leader, which may first gather the
// writers of the last group: see gather); otherwise it waits for the
// next flush to end, which it asks the background goroutine for, and
// shares it with every other waiter. If the background goroutine is
// stopped it waits for the flush lock and flushes on the caller's
// goroutine. If an Exclusive call lowers the frontier to or below seq
// meanwhile, the record seq was removed (after being made durable), and no
// flush will ever make it durable again: it returns ErrLowered instead of
// waiting for a new record with the same number. It returns the pipeline's
// *FailError if the log failed, the Close error if it closed first, and
// ctx's error if ctx ends first.
func (p *Pipeline) WaitDurableSince(ctx context.Context, seq, epoch uint64) error {
	if seq < p.durable.Load() {
		return nil
	}
	arrived := false
	defer func() {
		if arrived {
			p.leave()
		}
	}()
	for {
		// Register first, then look: a flush or Stop that ends after
		// this point wakes the channel.
		ch := p.waiters.Current()
		if seq < p.durable.Load() {
			return nil
		}
		if p.epoch.Load() != epoch {
			// The frontier is stored before the epoch changes: look
			// at it again, it may have passed seq before the cut.
			if seq < p.durable.Load() {
				return nil
			}
			return ErrLowered
		}
		if err := p.Err(); err != nil {
			return p.unlessDurable(seq, err)
		}
		if c := p.closed.Load(); c != nil {
			return p.unlessDurable(seq, *c)
		}
		if !arrived {
			// Counted once registered on ch: a gathering leader that
			// this arrival completes detaches ch after it, so the
			// flush that takes the record wakes this waiter.
			p.arrive()
			arrived = true
		}
		// No flush in flight: lead one on this goroutine, which saves
		// two goroutine hand-offs on the durable path. Waiters that
		// come while it syncs share the next one. With the flusher
		// stopped, wait for the lock: this is the synchronous fallback.
		ran, err := p.tryFlush(ctx, ReasonExplicit)
		if !ran && !p.running.Load() {
			ran, err = true, p.flush(ctx, ReasonExplicit, ModeSync)
		}
		if err != nil {
			return p.unlessDurable(seq, err)
		}
		if ran {
			if seq >= p.durable.Load() {
				// A record before seq is still being copied by
				// its appender: let it finish.
				if err := ctx.Err(); err != nil {
					return err
				}
				runtime.Gosched()
			}
			continue
		}
		p.Request(ReasonExplicit)
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitAdvanceSince returns once the durable frontier is past past
// (Durable() > past), or once an Exclusive call set the frontier after
// Epoch returned epoch (the frontier may then be lower than before, and
// past may name a record that was removed). It does not ask for a flush:
// it only watches the flushes that run anyway (the interval timer, the
// watermark, other waiters). Tail followers use it so that following the
// log does not add syncs. With the background goroutine stopped, nothing
// guarantees progress and it waits until another caller flushes or ctx
// ends. It returns the pipeline's *FailError if the log failed, the Close
// error if it closed, and ctx's error if ctx ends first.
//
// It does not wait on the group-commit broadcast (waiters): that one is
// closed when the next flush to *start* ends, so a waiter that registers
// while the last flush runs, and looks before that flush stores the new
// frontier, would sleep until some later flush, which on an idle log never
// comes. advance is woken after every store of a new frontier instead.
//
// A flush run on a caller's goroutine (a FlushUntil that led it) yields
// the processor after it woke such waiters: a writer that leads its own
// flushes never blocks, and the waiters it woke would otherwise wait in
// its processor's run queue until another thread takes them (on an idle
// machine, until the interval timer's next tick).
func (p *Pipeline) WaitAdvanceSince(ctx context.Context, past, epoch uint64) error {
	p.following.Add(1)
	defer p.following.Add(-1)
	for {
		// Register first, then look: a frontier stored after this
		// point closes ch.
		ch := p.advance.Current()
		if p.durable.Load() > past || p.epoch.Load() != epoch {
			return nil
		}
		if err := p.Err(); err != nil {
			return err
		}
		if c := p.closed.Load(); c != nil {
			return *c
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
