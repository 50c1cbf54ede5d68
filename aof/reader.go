package aof

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"sort"

	"github.com/aof2/aof2/segment"
)

// Sequential reading and tail following.
//
// A Reader walks the log's frames in order from any retained sequence
// number, across sealed segments and into the active one, up to the
// written or the durable frontier, verifying every checksum. Payloads are
// zero-copy slices of the segment mappings by default: the Reader holds a
// lease on the segment of its current record, so retention and Close
// never unmap memory it may still read. Reader.All iterates over the same
// code, and Follow blocks for new records instead of stopping at the
// frontier.

// Level is how far a Reader or a follower may read.
type Level uint8

const (
	// Written: records that are published in the log's memory, that is
	// whose Append has copied them (Append returns right after). They
	// may not be durable yet: after a crash they can be gone.
	Written Level = iota
	// Durable: records below the durable frontier (Metrics().DurableSeq),
	// for which FlushUntil has returned or would return nil at once.
	Durable
)

func (v Level) String() string {
	switch v {
	case Written:
		return "written"
	case Durable:
		return "durable"
	}
	return fmt.Sprintf("Level(%d)", uint8(v))
}

// Reader reads records in sequence-number order. Create one with
// Log.NewReader and Close it when done. A Reader is not safe for
// concurrent use; any number of Readers may run at once, alongside
// appenders, the flusher and retention.
//
// Reading is sequential: each Next decodes the frame after the previous
// one (O(1) per record); only positioning at the start uses the sparse
// index. Every record's checksum is verified, and a corrupt record is never
// returned.
//
// By default Record's Payload is a read-only slice of the segment's
// memory map (zero-copy), valid until the next call to Next or Close: the
// Reader holds a lease on that segment, which keeps it mapped even if
// retention deletes it or the log closes. With CopyPayloads every Payload
// is a fresh copy the caller owns.
type Reader struct {
	l     *Log
	level Level
	copy  bool

	seq uint64 // sequence number of the next record to return
	s   *seg   // segment holding seq, leased; nil until positioned
	off int64  // offset of seq's frame in s
	gen uint64 // the log's cutGen when positioned

	rec Record
	err error
}

// ReaderOption changes how a Reader returns records.
type ReaderOption func(*Reader)

// CopyPayloads makes the Reader return each payload as a fresh copy that
// the caller owns, instead of a zero-copy slice valid until the next Next.
func CopyPayloads() ReaderOption { return func(r *Reader) { r.copy = true } }

// NewReader returns a Reader whose first record is from, up to level's
// frontier. from must be in [FirstSeq(), NextSeq()]: from equal to the
// next sequence number starts at the end, and the Reader returns records
// as they are appended. A from before the first retained record is a
// *TruncatedError naming the first available sequence number; a from past
// the end wraps ErrNotFound; from 0 wraps ErrInvalidArgument. NewReader
// fails with ErrClosed on a closed log.
func (l *Log) NewReader(from uint64, level Level, opts ...ReaderOption) (*Reader, error) {
	if level != Written && level != Durable {
		return nil, fmt.Errorf("aof2: new reader: unknown level %v", level)
	}
	// The cut generation is taken before from is checked against the
	// log's end; during a cut, the one before it (Next waits for the cut
	// to end, then checks from against it).
	gen := l.cutGen.Load() &^ 1
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if from == 0 {
		return nil, fmt.Errorf("%w: cannot read from seq 0: sequence numbers start at 1", ErrInvalidArgument)
	}
	if from < l.front.Load() {
		return nil, l.truncated(from)
	}
	if next := l.nextSeq(); from > next {
		return nil, fmt.Errorf("%w: cannot read from seq %d: the first available is %d and the next to be appended is %d", ErrNotFound, from, l.front.Load(), next)
	}
	r := &Reader{l: l, level: level, seq: from, gen: gen}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// successor returns the segment after s, or nil if s is the last one. A
// segment with a successor is closed: its reservations are final.
func (l *Log) successor(s *seg) *seg {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	idx := s.Header().Index
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].Header().Index > idx })
	if i == len(l.segs) || l.segs[i].Header().Index != idx+1 {
		return nil
	}
	return l.segs[i]
}

// Next advances to the next record and reports whether there is one. It
// returns false, with Err nil, at the level's frontier (and for the moment
// a TruncateBack runs); it never blocks (beyond a moment while
// positioning, if an appender is copying a record before from). A later
// call continues once more records are available, so a Reader can be
// polled. Next returns false for good, with Err set, on a corrupt record
// (an error wrapping ErrCorrupt naming segment and offset), on a record
// that retention or TruncateBack removed before the Reader got to it (a
// *TruncatedError), once the Reader or the log is closed (ErrClosed), or,
// for a Durable reader at its frontier, once the log has failed (the
// *FailError).
func (r *Reader) Next() bool {
	if r.err != nil {
		return false
	}
	l := r.l
	if l.closed.Load() {
		return r.fail(ErrClosed)
	}
	if gen := l.cutGen.Load(); gen != r.gen {
		if gen&1 == 1 {
			return false // a TruncateBack is cutting
		}
		// A TruncateBack ran since the Reader was positioned: carry on if
		// what it already returned was kept, and look the next record
		// up again. Compare with the lowest cut, not with the end now:
		// appends after the cut may have reached r.seq again.
		if floor, ok := l.cutFloor(r.gen); ok && r.seq > floor {
			return r.fail(&TruncatedError{Seq: r.seq, First: l.front.Load(), Next: floor, Back: true})
		}
		r.unlease()
		r.gen = gen
	}
	if r.seq < l.front.Load() {
		return r.fail(l.truncated(r.seq))
	}
	if r.level == Durable && r.seq >= l.pipe.Durable() {
		if err := l.pipe.Err(); err != nil {
			return r.fail(err)
		}
		return false
	}
	if r.s == nil && !r.position() {
		return false
	}
	for {
		rec, next, ok, err := r.s.ViewFrame(r.off)
		if err != nil {
			if l.cutGen.Load() != r.gen {
				return false // cut under us: look again on the next call
			}
			return r.fail(err)
		}
		if ok {
			if rec.Seq != r.seq {
				return r.fail(segment.Corrupt(filepath.Base(r.s.Path()), r.s.Header().Index, r.off, "holds seq %d, want %d", rec.Seq, r.seq))
			}
			if r.copy {
				rec.Payload = append([]byte(nil), rec.Payload...)
			}
			r.rec = record(r.s, rec)
			r.off = next
			r.seq++
			return true
		}
		// No published frame at r.off: either a record being copied
		// (the frontier) or the end of a segment that rolled over.
		// Look for the successor first: once it exists, r.s is closed
		// and its reserved end final.
		succ := l.successor(r.s)
		if succ == nil {
			return false
		}
		if end, _ := r.s.Reserved(); r.off < end {
			return false // an appender is still copying
		}
		if base := succ.Header().BaseSeq; base != r.seq {
			if l.cutGen.Load() != r.gen {
				return false
			}
			return r.fail(segment.Corrupt(filepath.Base(succ.Path()), succ.Header().Index, -1, "starts at seq %d, but segment %d before it ends before seq %d",
				base, r.s.Header().Index, r.seq))
		}
		if !succ.Acquire() {
			return r.fail(r.released())
		}
		r.s.Unlease()
		r.s, r.off = succ, segment.HeaderSize
	}
}

// position finds and leases the segment holding r.seq. It returns false
// if the record is not appended yet or on an error (then r.err is set).
func (r *Reader) position() bool {
	l := r.l
	s := l.segmentOf(r.seq)
	if s == nil {
		return false // not appended yet
	}
	if !s.Acquire() {
		return r.fail(r.released())
	}
	off, err := s.Locate(r.seq)
	if err != nil {
		s.Unlease()
		return r.fail(err)
	}
	r.s, r.off = s, off
	return true
}

// released is the error for a segment found released: the log closed,
// or retention removed it.
func (r *Reader) released() error {
	if r.l.closed.Load() {
		return ErrClosed
	}
	return r.l.truncated(r.seq)
}

func (r *Reader) fail(err error) bool {
	if errors.Is(err, segment.ErrReleased) {
		err = r.released()
	}
	r.err = err
	r.rec = Record{}
	r.unlease()
	return false
}

func (r *Reader) unlease() {
	if r.s != nil {
		r.s.Unlease()
		r.s = nil
	}
}

// Close ends the Reader and its lease: payloads it returned without
// CopyPayloads must not be used after. Next returns false from then on,
// with Err ErrClosed. Close is idempotent.
func (r *Reader) Close() {
	r.unlease()
	r.rec = Record{}
	if r.err == nil {
		r.err = ErrClosed
	}
}

// Record returns the record Next advanced to. Without CopyPayloads its
// Payload is read-only and valid until the next call to Next or Close;
// copy it to keep it longer.
func (r *Reader) Record() Record { return r.rec }

// Err returns the error that stopped the Reader, or nil if Next returned
// false only because it reached the frontier.
func (r *Reader) Err() error { return r.err }

// Seq returns the sequence number of the record the next call to Next
// will return.
func (r *Reader) Seq() uint64 { return r.seq }

// All returns an iterator over the records from the Reader's position to
// the frontier, built on Next: each record is yielded with a nil error,
// and if the Reader stops on an error, that error is yielded last with a
// zero Record. Payloads are valid until the next iteration (without
// CopyPayloads). Ranging over All again continues where the last range
// stopped.
func (r *Reader) All() iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for r.Next() {
			if !yield(r.Record(), nil) {
				return
			}
		}
		if err := r.Err(); err != nil {
			yield(Record{}, err)
		}
	}
}

// Follow returns an iterator over every record from seq from on, in order
// and exactly once, that blocks for new records instead of stopping at the
// frontier. At the Durable level it waits for the durable frontier to
// advance, without asking for syncs of its own (the flush interval bounds
// the wait; with Config.NoBackgroundFlush or StopFlusher, records become
// visible only when something else flushes). At the Written level it is
// woken by the appends themselves.
//
// Each record is yielded with a nil error; its Payload is valid until the
// next iteration (zero-copy; opts as for NewReader). The iteration ends
// when the caller stops it, or with one final zero Record and an error:
// ctx's error, ErrClosed once the log is closed, the error of NewReader
// (an invalid from), an ErrCorrupt naming segment and offset, a
// *TruncatedError if retention removed records before the follower got to
// them (its First says where to continue), or the log's *FailError.
func (l *Log) Follow(ctx context.Context, from uint64, level Level, opts ...ReaderOption) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		r, err := l.NewReader(from, level, opts...)
		if err != nil {
			yield(Record{}, err)
			return
		}
		defer r.Close()
		done := ctx.Done()
		for {
			// Taken before Next looks at the cut generation: a
			// TruncateBack after this point ends WaitAdvanceSince.
			epoch := l.pipe.Epoch()
			for r.Next() {
				select {
				case <-done: // a follower far behind still stops
					yield(Record{}, ctx.Err())
					return
				default:
				}
				if !yield(r.Record(), nil) {
					return
				}
			}
			if err := r.Err(); err != nil {
				yield(Record{}, err)
				return
			}
			if err := ctx.Err(); err != nil {
				yield(Record{}, err)
				return
			}
			var err error
			if level == Durable {
				err = l.pipe.WaitAdvanceSince(ctx, r.seq, epoch)
			} else if ch := l.tail.arm(); r.Next() {
				// Published between the last look and arming.
				l.tail.disarm()
				if !yield(r.Record(), nil) {
					return
				}
			} else if r.Err() != nil {
				l.tail.disarm() // reported at the top of the loop
			} else {
				select {
				case <-ch:
				case <-done:
					err = ctx.Err()
				}
				l.tail.disarm()
			}
			if err != nil {
				yield(Record{}, err)
				return
			}
		}
	}
}
