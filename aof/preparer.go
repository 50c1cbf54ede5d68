package aof

import (
	"io/fs"
	"sync"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// preparer makes the next segment file, created, preallocated and mapped,
// when asked (kick: the log asks once the active segment is half full), so
// a rollover only writes a header and renames a file; and it faults in the
// active segment's append buffer ahead of the appenders when they ask
// (warm: segment.WarmAt). It owns one goroutine, stopped by stop.
type preparer struct {
	fs   vfs.FS
	dir  string
	size int64
	perm fs.FileMode
	pool *pool // the source of recycled files, before new ones

	mu    sync.Mutex
	cond  sync.Cond
	ready *segment.Segment // prepared, not yet taken
	busy  bool             // the goroutine is preparing one
	next  uint64           // temporary-name counter

	active func() *segment.Segment // the segment appenders write to

	kickc chan struct{}
	warmc chan struct{}
	stopc chan struct{}
	done  chan struct{}
}

func startPreparer(fsys vfs.FS, dir string, size int64, perm fs.FileMode, pool *pool, active func() *segment.Segment) *preparer {
	p := &preparer{
		pool:   pool,
		fs:     fsys,
		dir:    dir,
		size:   size,
		perm:   perm,
		active: active,
		kickc:  make(chan struct{}, 1),
		warmc:  make(chan struct{}, 1),
		stopc:  make(chan struct{}),
		done:   make(chan struct{}),
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
		id := p.next
		p.next++
		p.mu.Unlock()
		// A failure (a full disk, say) is not kept: take retries on the
		// appender's goroutine and returns the error there.
		s, _ := p.prepare(id)
		p.mu.Lock()
		p.ready, p.busy = s, false
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// take returns a prepared segment, preparing one on the caller's goroutine
// if none is ready.
func (p *preparer) take() (*segment.Segment, error) {
	p.mu.Lock()
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

// stop stops the goroutine and removes a prepared segment nobody took.
func (p *preparer) stop() {
	close(p.stopc)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready != nil {
		p.ready.Discard()
		p.ready = nil
	}
}
