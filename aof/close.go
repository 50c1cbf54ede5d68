package aof

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aof2/aof2/flush"
)

// closing is a log's close: started once, by the first Close or
// CloseContext, and done when everything is released.
type closing struct {
	once sync.Once
	done chan struct{}
	err  error // the close's result, set before done is closed
}

// doneCh returns the channel closed when the close has finished.
func (c *closing) doneCh() chan struct{} {
	c.once.Do(func() { c.done = make(chan struct{}) })
	return c.done
}

// CloseError is the error of a CloseContext whose ctx ended before the
// log was closed, a stalled disk sync, say. It says what was not durable
// when CloseContext returned: the records [Durable, Next).
type CloseError struct {
	// Err is ctx's error.
	Err error
	// Durable is the durable frontier when CloseContext returned: every
	// record below it is durable.
	Durable uint64
	// Next is the sequence number the next record would have got: the
	// records [Durable, Next) were appended but not known to be durable.
	// The close goes on in the background and may still make them
	// durable; after a crash, Open recovers what reached the disk.
	Next uint64
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("aof2: close: %v: records below seq %d are durable, records [%d, %d) were not yet; the close finishes in the background", e.Err, e.Durable, e.Durable, e.Next)
}

// Unwrap returns ctx's error.
func (e *CloseError) Unwrap() error { return e.Err }

// Close is CloseContext with a context that never ends: it waits for the
// final flush however long the disk takes.
func (l *Log) Close() error { return l.CloseContext(context.Background()) }

// CloseContext makes every appended record durable, stops the log's
// goroutines, unmaps its segments and releases the directory lock.
// Appends that race with it either complete (and are made durable) or
// fail with ErrClosed; reads, Readers and truncations fail with ErrClosed
// from the moment it starts. If the log had failed, it still releases
// everything and returns the failure (the *FailError names the durable
// frontier).
//
// ctx bounds the wait. If ctx ends first (the disk stalls a sync, or a
// truncation in progress waits for one), CloseContext returns a
// *CloseError wrapping ctx's error and naming the records not durable at
// that moment, and the close finishes in the background once the stalled
// operation returns: until then the goroutine of the close, the one stuck
// in the operation, the segment mappings, their file descriptors and the
// directory lock stay (so an Open of the same directory in this process
// fails with ErrLocked; a new process, after this one has exited, recovers
// the log as after a crash). Nothing is leaked beyond the stalled
// operation: the close releases everything as soon as it returns.
//
// A later Close or CloseContext waits, bounded by its ctx, for a close
// still finishing in the background, then returns ErrClosed.
func (l *Log) CloseContext(ctx context.Context) error {
	done := l.closing.doneCh()
	if !l.closed.CompareAndSwap(false, true) {
		select {
		case <-done:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("aof2: close: waiting for the close in progress: %w", ctx.Err())
		}
	}
	if ctx.Done() == nil {
		l.close(done)
		return l.closing.err
	}
	go l.close(done)
	select {
	case <-done:
		return l.closing.err
	case <-ctx.Done():
		return &CloseError{Err: ctx.Err(), Durable: l.pipe.Durable(), Next: l.nextSeq()}
	}
}

// close closes the log, once closed is set, and closes done when it has
// released everything.
func (l *Log) close(done chan struct{}) {
	defer close(done)
	l.retainMu.Lock() // a truncation in progress finishes first
	l.rotateMu.Lock()
	active := l.active.Load()
	active.Close() // no more reservations; rotate refuses from now on
	l.rotateMu.Unlock()
	l.retainMu.Unlock()
	l.tail.notify() // Written followers see ErrClosed

	// Drain: appenders that reserved before the active segment closed
	// finish copying within moments; then one flush makes everything
	// durable.
	l.drainPending()
	err := l.pipe.Flush(context.Background(), flush.ReasonExplicit)
	if b := l.Backlog(); err == nil && b != 0 {
		err = fmt.Errorf("aof2: close: %d bytes still not durable after the final flush", b)
	}
	if err == nil {
		err = l.writeDurableMark(active)
	}
	l.pipe.Close(ErrClosed)
	l.prep.stop()
	l.retainer.stop()
	l.events.close()
	telErr := l.tel.Close() // the counters' last values, read while mapped
	l.closing.err = errors.Join(err, l.releaseSegments(), telErr, l.dirLock.Unlock())
}
