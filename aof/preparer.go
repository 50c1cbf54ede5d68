package aof

import (
	"io/fs"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// preparer makes the next segment file, created, preallocated and mapped,
// when asked (kick: the log asks once the active segment is half full), so
// a rollover only writes a header and renames a file; and it faults in the
// active segment's append buffer ahead of the appenders when they ask
// (warm: segment.WarmAt). Unless Config.NoPrewrite it
// then writes zeros over the new file, a chunk at a time, each made
// written back before the next (prewrite). It owns one goroutine, stopped by
// stop, and while it prewrites a second one that serves warm requests
// (warmMeanwhile).
type preparer struct {
	fs   vfs.FS
	dir  string
	size int64
	perm fs.FileMode
	pool *pool // the source of recycled files, before new ones
	pw   prewriteConfig

	mu    sync.Mutex
	cond  sync.Cond
	ready *segment.Segment // prepared, not yet taken
	busy  bool             // the goroutine is preparing one
	next  uint64           // temporary-name counter
	// hurry is closed by take while the goroutine is preparing (busy):
	// a rollover waits, so the prewrite stops after its current chunk.
	// A fresh channel for each preparation; hurried says it was closed.
	hurry   chan struct{}
	hurried bool

	active func() *segment.Segment // the segment appenders write to

	kickc chan struct{}
	warmc chan struct{}
	stopc chan struct{}
	done  chan struct{}
}

// prewriteConfig says whether and how the preparer prewrites segments.
type prewriteConfig struct {
	on bool
	// chunk is how many bytes one write and write-back cover (a
	// rollover waits for at most one).
	chunk int
	// zeros is chunk bytes of anonymous memory never written: reads of
	// it map the kernel's zero page, so it costs no memory. Set by
	// startPreparer, unmapped by stop.
	zeros []byte
	// report is told of every prewrite: when it started, how many bytes
	// it wrote back of how many, and its failure if any.
	report func(start time.Time, done, size int64, err error)
	// hook, set by tests only, runs before each chunk with its offset.
	hook func(off int64)
	// idle runs the prewrite in the idle I/O scheduling class (idleIO).
	idle bool
	// paused, set by tests only, is told of every pause of the
	// prewrite (prewritePause).
	paused func(d time.Duration)
}

// defaultPrewriteChunk is the prewrite's write and write-back unit: large
// enough that calls are few (64 for a 64 MiB segment), small enough that
// a rollover that finds the prewrite running waits for about one.
const defaultPrewriteChunk = 1 << 20

func startPreparer(fsys vfs.FS, dir string, size int64, perm fs.FileMode, pool *pool, pw prewriteConfig, active func() *segment.Segment) *preparer {
	p := &preparer{
		pool:   pool,
		fs:     fsys,
		dir:    dir,
		size:   size,
		perm:   perm,
		pw:     pw,
		active: active,
		kickc:  make(chan struct{}, 1),
		warmc:  make(chan struct{}, 1),
		stopc:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	if p.pw.on {
		p.pw.chunk = int(min(int64(p.pw.chunk), size))
		// Without the zeros (no memory for a mapping), no prewrite.
		z, err := unix.Mmap(-1, 0, p.pw.chunk, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		p.pw.on, p.pw.zeros = err == nil, z
	}
	p.cond.L = &p.mu
	go p.run()
	return p
}

// kick asks for a segment to be prepared if none is ready.
func (p *preparer) kick() {
	select {
	case p.kickc <- struct{}{}:
	default:
	}
}

// warm asks for the active segment's append buffer to be faulted in
// further ahead (Segment.Warm).
func (p *preparer) warm() {
	select {
	case p.warmc <- struct{}{}:
	default:
	}
}

func (p *preparer) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stopc:
			return
		case <-p.warmc:
			p.active().Warm()
			continue
		case <-p.kickc:
		}
		p.mu.Lock()
		if p.ready != nil {
			p.mu.Unlock()
			continue
		}
		p.busy = true
		p.hurry, p.hurried = make(chan struct{}), false
		id := p.next
		p.next++
		hurry := p.hurry
		p.mu.Unlock()
		// A failure (a full disk, say) is not kept: take retries on the
		// appender's goroutine and returns the error there.
		s, _ := p.prepare(id)
		if s != nil && p.pw.on && !written(s) {
			// A recycled file's blocks are written ones, but for
			// the room an early rollover left unused.
			s = p.prewrite(s, hurry)
		}
		p.mu.Lock()
		p.ready, p.busy = s, false
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// prewrite writes zeros over the blocks of s past its written ones (all of
// a new file), chunk by chunk, each written back to the device before the
// next and the last one synced (segment.Prewrite), so that no dirty page
// is left for the appenders' first sync to pay. It stops
// between chunks when a rollover waits for s (hurry) or the log closes,
// leaving s partly prewritten: its first blocks, the ones written first,
// are. A failure is reported, and s,
// whose device just failed a write or a sync, is discarded for a fresh
// segment that is not prewritten (nil if that fails too: take prepares
// one itself).
func (p *preparer) prewrite(s *segment.Segment, hurry <-chan struct{}) *segment.Segment {
	defer p.warmMeanwhile()()
	if p.pw.idle {
		defer idleIO()()
	}
	start := time.Now()
	size := s.Header().Size
	from := s.WrittenTo()
	off := from
	var err error
	pace := p.newPacer()
	for off < size {
		if p.pw.hook != nil {
			p.pw.hook(off)
		}
		if p.interrupted(hurry) {
			break
		}
		n := min(int64(p.pw.chunk), size-off)
		t := time.Now()
		if err = s.Prewrite(off, p.pw.zeros[:n], off+n == size); err != nil {
			break
		}
		off += n
		if off < size {
			p.pause(pace.after(n, time.Since(t), size-off), hurry)
		}
	}
	if p.pw.report != nil {
		p.pw.report(start, off-from, size-from, err)
	}
	if err == nil {
		return s
	}
	s.Discard()
	p.mu.Lock()
	id := p.next
	p.next++
	p.mu.Unlock()
	s, _ = segment.Prepare(p.fs, p.dir, id, p.size, p.perm)
	return s
}

// The prewrite is paced: a segment's zeros written at the device's full
// speed sit in its cache, and the appenders' syncs, each a flush of that
// cache, pay for writing them out. So once a chunk is done the prewrite
// waits, when it is ahead, until it is on course to finish within
// prewritePaceShare of the time the active segment takes to fill at its
// recent append rate. Measured on the development VM (a 3-node
// hashicorp/raft cluster on one disk, 64 callers applying 4 KiB commands,
// each node's segments prewritten beside its syncs, unpaced and paced
// builds run alternately, three runs each): Apply p99 16.4-17.5 ms
// unpaced, 9.7-11.4 ms paced, commands/s unchanged.
// It does not wait while nobody appends (nothing to disturb), when the
// active segment's own blocks are not all written (an early rollover
// waits for this prewrite to end), or when it is late.
const (
	prewritePaceShare = 0.6
	// maxPrewritePause bounds one wait, so that a log that was quiet
	// and then appends fast finds the prewrite back at full speed
	// within a chunk.
	maxPrewritePause = 50 * time.Millisecond
)

// prewritePause returns how long the prewrite waits after a chunk of
// chunk bytes that took took, with left bytes still to prewrite, when the
// active segment took appended bytes in the last window and has free
// bytes left: the wait that spreads what is left evenly over
// prewritePaceShare of the time the active segment takes to fill at that
// rate, minus what the chunk took; 0 when nothing was appended or it is
// late, at most maxPrewritePause.
func prewritePause(chunk int64, took time.Duration, left, appended int64, window time.Duration, free int64) time.Duration {
	if appended <= 0 || window <= 0 || left <= 0 || free <= 0 {
		return 0
	}
	fill := float64(window) * float64(free) / float64(appended)
	// In float until capped: a quiet log's fill time can exceed
	// time.Duration's range.
	pause := prewritePaceShare*fill*float64(chunk)/float64(left) - float64(took)
	if pause <= 0 {
		return 0
	}
	return time.Duration(min(pause, float64(maxPrewritePause)))
}

// pacer follows the active segment's appends during a prewrite.
type pacer struct {
	p    *preparer
	seg  *segment.Segment // the active segment when last looked at
	end  int64            // its reserved end then
	when time.Time
}

func (p *preparer) newPacer() *pacer {
	pc := &pacer{p: p}
	pc.look(time.Now())
	return pc
}

// look notes the active segment and its reserved end at now; it returns
// the bytes appended to it since the last look (0 if the active segment
// changed meanwhile).
func (pc *pacer) look(now time.Time) (appended int64, window time.Duration) {
	s := pc.p.active()
	end, _ := s.Reserved()
	if s == pc.seg {
		appended, window = end-pc.end, now.Sub(pc.when)
	}
	pc.seg, pc.end, pc.when = s, end, now
	return appended, window
}

// after returns the pause after a chunk of n bytes that took took, with
// left bytes still to prewrite (prewritePause); 0 while the active
// segment's blocks are not all written.
func (pc *pacer) after(n int64, took time.Duration, left int64) time.Duration {
	appended, window := pc.look(time.Now())
	if !written(pc.seg) {
		return 0
	}
	return prewritePause(n, took, left, appended, window, pc.seg.Header().Size-pc.end)
}

// pause waits d, or less if a rollover waits or the log closes.
func (p *preparer) pause(d time.Duration, hurry <-chan struct{}) {
	if d <= 0 {
		return
	}
	if p.pw.paused != nil {
		p.pw.paused(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-hurry:
	case <-p.stopc:
	}
}

// warmMeanwhile serves warm requests on a goroutine of their own until
// stop returns: the prewrite of a segment takes about as long as the
// appenders take to fill one, and without it they would fault the append
// buffer in themselves all that time. The goroutine lives only while the
// caller runs, so an idle log keeps its goroutine count. Stopping it waits
// for a Warm under way, so a rollover that takes the segment may wait for
// one Warm (at most warmAhead of the buffer faulted in) besides the chunk.
func (p *preparer) warmMeanwhile() (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-p.warmc:
				p.active().Warm()
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// Linux I/O priorities (ioprio_set(2)).
const (
	ioprioWhoProcess = 1
	ioprioClassIdle  = 3
	ioprioClassShift = 13
)

// idleIO locks the calling goroutine to its OS thread and puts the thread
// in the idle I/O scheduling class: the block layer's schedulers that
// honour it (mq-deadline, BFQ) serve its writes, and the write-back its
// syncs start, only when no other I/O waits. restore puts the thread's
// class back and unlocks it; a thread whose class cannot be put back stays
// locked, and ends with the goroutine. Where the class cannot be set,
// nothing changes.
func idleIO() (restore func()) {
	runtime.LockOSThread()
	old, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, 0, 0)
	if errno == 0 {
		_, _, errno = unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, ioprioClassIdle<<ioprioClassShift)
	}
	if errno != 0 {
		runtime.UnlockOSThread()
		return func() {}
	}
	return func() {
		if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, old); errno == 0 {
			runtime.UnlockOSThread()
		}
	}
}

// interrupted reports whether the log closes or a rollover waits.
func (p *preparer) interrupted(hurry <-chan struct{}) bool {
	select {
	case <-hurry:
		return true
	case <-p.stopc:
		return true
	default:
		return false
	}
}

// take returns a prepared segment, preparing one on the caller's goroutine
// if none is ready. If one is being prepared it waits for it, but not for
// the rest of its prewrite.
func (p *preparer) take() (*segment.Segment, error) {
	p.mu.Lock()
	if p.busy && !p.hurried {
		close(p.hurry)
		p.hurried = true
	}
	for p.busy {
		p.cond.Wait()
	}
	s := p.ready
	p.ready = nil
	id := p.next
	p.next++
	p.mu.Unlock()
	if s != nil {
		return s, nil
	}
	return p.prepare(id)
}

// written reports whether s's blocks are all written ones (prewritten to
// the end, or recycled).
func written(s *segment.Segment) bool { return s.WrittenTo() >= s.Header().Size }

// readyWritten reports whether a prepared segment is ready and all its
// blocks are written.
func (p *preparer) readyWritten() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready != nil && written(p.ready)
}

// takeWritten returns the ready segment if all its blocks are written,
// else nil; it never waits.
func (p *preparer) takeWritten() *segment.Segment {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.ready
	if s == nil || !written(s) {
		return nil
	}
	p.ready = nil
	return s
}

// prepare makes a segment ready for activation from the file's source: a
// pooled file if there is one (segment.Recycle), else a new file (id
// makes its temporary name unique). A pooled file that cannot be reused
// is removed, and a new one made.
func (p *preparer) prepare(id uint64) (*segment.Segment, error) {
	if path, ok := p.pool.take(); ok {
		if s, err := segment.Recycle(p.fs, path, p.size); err == nil {
			return s, nil
		}
		p.fs.Remove(path)
	}
	return segment.Prepare(p.fs, p.dir, id, p.size, p.perm)
}

// stop stops the goroutine (a prewrite stops after its current chunk) and
// puts away a prepared segment nobody took: a recycled one stays a pool
// file, a new one prewritten to the end joins the pool if it has room
// (its written blocks are kept for the next open), any other is removed.
func (p *preparer) stop() {
	close(p.stopc)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.ready; s != nil {
		p.ready = nil
		if s.Recycled() || !written(s) {
			s.Discard()
		} else {
			s.Release()
			p.pool.keep(s.Path())
		}
	}
	if p.pw.zeros != nil {
		unix.Munmap(p.pw.zeros)
		p.pw.zeros = nil
	}
}
