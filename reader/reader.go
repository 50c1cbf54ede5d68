// Package reader owns sequential reading of an aof2 log: a Reader walks
// the records in sequence-number order from any retained one, verifying
// every checksum, and Follow blocks for new ones. It reads through a
// Source, a small interface over where the segments come from: the live
// log implements it (package aof, through an unexported adapter), and
// package inspect implements it over a log directory that another
// process may be writing (the aof tool's dump, tail and stats), so that
// every reader shares one set of rules for segment leases, the frontier,
// retention and cuts (see Cuts).
//
// Users import package aof alone: its Record, RecordID, Level,
// ReaderOption, TruncatedError, ErrTruncated and ErrClosed are this
// package's under aof's names (type aliases), and its Reader and Follow
// wrap this package's.
package reader

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"path/filepath"

	"github.com/aof2/aof2/segment"
)

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

// String returns "written" or "durable".
func (v Level) String() string {
	switch v {
	case Written:
		return "written"
	case Durable:
		return "durable"
	}
	return fmt.Sprintf("Level(%d)", uint8(v))
}

// ErrClosed is the error of a Reader that was closed, or whose log was.
// Package aof's ErrClosed is this error.
var ErrClosed = errors.New("aof2: log closed")

// ErrTruncated is wrapped by *TruncatedError: the records asked for were
// removed by retention (TruncateFront, automatic retention), TruncateBack
// or Reset. Package aof's ErrTruncated is this error.
var ErrTruncated = errors.New("aof2: records truncated")

// TruncatedError is the error for a read of records that retention or
// TruncateBack removed. A follower that falls behind retention gets it,
// and can continue from First (Continue says where).
type TruncatedError struct {
	Seq   uint64 // the sequence number asked for
	First uint64 // the first sequence number the log holds now
	// Next is, when Back is false, the sequence number the next append
	// gets. When Back is true it is where TruncateBack ended the log:
	// records from Next on were removed, and appends since may have
	// given their sequence numbers to new records, so a reader that
	// wants the new records continues from Next.
	Next uint64
	// Back is true when TruncateBack removed Seq (it is at or past
	// Next), false when the front of the log moved past it.
	Back bool
}

// Error says which records were removed, by what, and where the log
// goes on.
func (e *TruncatedError) Error() string {
	if e.Back {
		return fmt.Sprintf("aof2: records truncated: seq %d was removed by TruncateBack, which ended the log before seq %d", e.Seq, e.Next)
	}
	return fmt.Sprintf("aof2: records truncated: seq %d was removed by retention; the first available is %d", e.Seq, e.First)
}

// Is makes errors.Is(err, ErrTruncated) true.
func (e *TruncatedError) Is(target error) bool { return target == ErrTruncated }

// Continue returns the sequence number a reader that wants to go on
// starts again from: Next after a TruncateBack, First after retention.
func (e *TruncatedError) Continue() uint64 {
	if e.Back {
		return e.Next
	}
	return e.First
}

// RecordID locates a record: Seq is its dense sequence number (the first
// record of a log has Seq 1); Segment and Offset say where its frame is.
// Package aof's Append returns it (aof.RecordID is this type).
type RecordID struct {
	Seq     uint64 // sequence number
	Segment uint64 // index of the segment holding it
	Offset  int64  // offset of its frame in the segment file
}

// Record is one record a Reader read (aof.Record is this type).
type Record struct {
	// Seq is the record's sequence number.
	Seq uint64
	// Timestamp is its append time, in Unix nanoseconds.
	Timestamp int64
	// Segment is the index of the segment holding it, and Offset the
	// offset of its frame in that segment's file.
	Segment uint64
	Offset  int64
	// Size is the size of its frame on disk: the 32-byte frame header,
	// the payload and the padding to 8 bytes.
	Size int64
	// Payload is the record's payload.
	Payload []byte
}

// ID returns the record's RecordID, the one Append returned for it.
func (r Record) ID() RecordID {
	return RecordID{Seq: r.Seq, Segment: r.Segment, Offset: r.Offset}
}

// MakeRecord returns the Record for rec, which s decoded.
func MakeRecord(s *segment.Segment, rec segment.Record) Record {
	return Record{
		Seq:       rec.Seq,
		Timestamp: rec.Timestamp,
		Segment:   s.Header().Index,
		Offset:    rec.Offset,
		Size:      segment.FrameSize(len(rec.Payload)),
		Payload:   rec.Payload,
	}
}

// Source is what a Reader reads from: a log's segments, its bounds, its
// durable frontier, its cuts and its wake-ups. Its methods are safe for
// concurrent use.
type Source interface {
	// Check returns the error for a Reader asked to start at from, or
	// nil if from is in [first, next] (next: the end, where the Reader
	// waits for new records).
	Check(from uint64) error
	// Look returns what a Reader checks before each record, in one
	// call: whether the log is closed, the first sequence number it
	// holds (front), and its durable frontier (every record below it is
	// durable).
	Look() (closed bool, front, durable uint64)
	// NextSeq returns the sequence number the next append gets.
	NextSeq() uint64
	// Failed returns the error of a log that failed (nothing becomes
	// durable any more), or nil.
	Failed() error
	// Segment returns the segment holding seq (appended, maybe not yet
	// complete), or nil. Successor returns the segment after s, or nil
	// if s is the last one; a segment with a successor is closed: its
	// reservations are final. The Reader leases a segment (Acquire)
	// before it reads it.
	Segment(seq uint64) *segment.Segment
	Successor(s *segment.Segment) *segment.Segment
	// Cuts returns the log's cut protocol.
	Cuts() *Cuts
	// Recheck is called by a Reader before it stops with a read error
	// (a corrupt frame, a segment that does not follow the one before)
	// that a cut would explain: a source whose files another process
	// changes (a log directory) takes a fresh look, and runs its Cuts
	// for a cut it finds (then the Reader looks again instead). The live
	// log's Cuts are always in step with its cuts: it does nothing.
	Recheck()
	// Epoch returns a token taken before a follower looks for records;
	// WaitDurable returns once the durable frontier is past past, or a
	// cut set it after Epoch returned epoch, or with the log's failure
	// or ctx's error.
	Epoch() uint64
	WaitDurable(ctx context.Context, past, epoch uint64) error
	// Arm returns a channel closed when records are next published (or
	// the log is cut or closed); the caller looks once more, then
	// waits, then calls Disarm.
	Arm() <-chan struct{}
	Disarm()
}

// Reader reads records in sequence-number order. A Reader is not safe
// for concurrent use; any number of Readers may run at once, alongside
// appenders, the flusher and retention.
//
// Reading is sequential: each Next decodes the frame after the previous
// one (O(1) per record); only positioning at the start uses the sparse
// index. Every record's checksum is verified, and a corrupt record is
// never returned.
//
// By default Record's Payload is a read-only slice of the segment's
// memory map (zero-copy), valid until the next call to Next or Close: the
// Reader holds a lease on that segment, which keeps it mapped even if
// retention deletes it or the log closes. With CopyPayloads every Payload
// is a fresh copy the caller owns.
type Reader struct {
	src   Source
	cuts  *Cuts
	level Level
	copy  bool

	seq      uint64           // sequence number of the next record to return
	s        *segment.Segment // segment holding seq, leased; nil until positioned
	lease    *segment.Lease   // the lease on s
	off      int64            // offset of seq's frame in s
	segIndex uint64           // s's index, for the records it returns
	salt     uint64           // s's salt (Header.Salt), to verify its frames
	gen      uint64           // the cut generation when positioned
	// win and lim: every frame from off up to lim is complete and lies
	// in win (Lease.Window); lim is 0 until the Reader looks.
	win []byte
	lim int64

	rec Record
	err error
}

// Option changes how a Reader returns records.
type Option func(*Reader)

// CopyPayloads makes the Reader return each payload as a fresh copy that
// the caller owns, instead of a zero-copy slice valid until the next Next.
func CopyPayloads() Option { return func(r *Reader) { r.copy = true } }

// New returns a Reader of src whose first record is from, up to level's
// frontier; the errors are src.Check's.
func New(src Source, from uint64, level Level, opts ...Option) (*Reader, error) {
	if level != Written && level != Durable {
		return nil, fmt.Errorf("aof2: new reader: unknown level %v", level)
	}
	cuts := src.Cuts()
	// The cut generation is taken before from is checked against the
	// log's end; during a cut, the one before it (Next waits for the cut
	// to end, then checks from against it).
	gen := cuts.Settled()
	if err := src.Check(from); err != nil {
		return nil, err
	}
	r := &Reader{src: src, cuts: cuts, level: level, seq: from, gen: gen}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Next advances to the next record and reports whether there is one. It
// returns false, with Err nil, at the level's frontier (and for the moment
// a TruncateBack runs); it never blocks (beyond a moment while
// positioning, if an appender is copying a record before from). A later
// call continues once more records are available, so a Reader can be
// polled. Next returns false for good, with Err set, on a corrupt record
// (an error wrapping segment.ErrCorrupt, a *segment.CorruptError naming file, segment and offset), on a
// record that retention or TruncateBack removed before the Reader got to
// it (a *TruncatedError), once the Reader or the log is closed
// (ErrClosed), or, for a Durable reader at its frontier, once the log has
// failed (its Failed error).
func (r *Reader) Next() bool {
	if r.err != nil {
		return false
	}
	src := r.src
	closed, front, durable := src.Look()
	if closed {
		return r.fail(ErrClosed)
	}
	if gen := r.cuts.Gen(); gen != r.gen {
		if Cutting(gen) {
			return false // a TruncateBack is cutting
		}
		// A TruncateBack ran since the Reader was positioned: carry on if
		// what it already returned was kept, and look the next record
		// up again. Compare with the lowest cut, not with the end now:
		// appends after the cut may have reached r.seq again.
		if floor, ok := r.cuts.Floor(r.gen); ok && r.seq > floor {
			return r.fail(&TruncatedError{Seq: r.seq, First: front, Next: floor, Back: true})
		}
		r.unlease()
		r.gen = gen
	}
	if r.seq < front {
		return r.fail(r.truncated())
	}
	if r.level == Durable && r.seq >= durable {
		if err := src.Failed(); err != nil {
			return r.fail(err)
		}
		return false
	}
	if r.s == nil && !r.position() {
		return false
	}
	for {
		if r.off >= r.lim {
			r.win, r.lim = r.lease.Window(r.off)
		}
		if r.off < r.lim {
			return r.frame()
		}
		// Past the frames known complete: at the reserved end, or in
		// the append buffer where the flusher has not looked yet.
		rec, next, ok, err := r.lease.ViewFrame(r.off)
		if err != nil {
			return r.failRead(err)
		}
		if ok {
			return r.accept(rec.Seq, rec.Timestamp, rec.Payload, next)
		}
		if !r.moveOn() {
			return false
		}
	}
}

// frame returns the frame at r.off from the window of frames known
// complete (Lease.Window), verified as ViewFrame verifies it.
func (r *Reader) frame() bool {
	b := r.win[r.off:]
	if len(b) < segment.FrameHeaderSize {
		return r.failRead(segment.Corrupt(filepath.Base(r.s.Path()), r.segIndex, r.off, "outside the data"))
	}
	seq, ts, payload, size, err := segment.ReadFrame(b, r.salt)
	if err != nil {
		return r.failRead(segment.At(err, filepath.Base(r.s.Path()), r.segIndex, r.off))
	}
	return r.accept(seq, ts, payload, r.off+size)
}

// failRead stops the Reader with err, an error reading the frame at r.off,
// unless a cut explains it: then Next returns false and looks again on
// the next call. If the front has passed r.seq meanwhile, the record was
// removed and the error is a *TruncatedError: the writer may have
// recycled the file of a segment it dropped, and a Reader of a log
// directory (whose mapping the writer knows nothing of) then sees the
// file's next life, whose frames do not verify as this segment's.
func (r *Reader) failRead(err error) bool {
	if r.src.Recheck(); r.cuts.Gen() != r.gen {
		return false // cut under us: look again on the next call
	}
	if _, front, _ := r.src.Look(); r.seq < front {
		return r.fail(r.truncated())
	}
	return r.fail(err)
}

// accept makes the verified frame at r.off, of sequence number seq, the
// current record, and moves the Reader past it to next.
func (r *Reader) accept(seq uint64, ts int64, payload []byte, next int64) bool {
	if seq != r.seq {
		return r.fail(segment.Corrupt(filepath.Base(r.s.Path()), r.segIndex, r.off, "holds seq %d, want %d", seq, r.seq))
	}
	off := r.off
	if r.copy {
		payload = append([]byte(nil), payload...)
		r.lease.Advance(next)
	} else {
		// The payload returned before this one is no longer valid:
		// the append buffer behind this one may go.
		r.lease.Advance(off)
	}
	// Set field by field here rather than through MakeRecord (the index
	// is kept, the size is next-off) or a Record literal (built on the
	// stack, then copied into r.rec): measured, either is 5 to 8 % slower
	// on 256-byte records.
	r.rec.Seq, r.rec.Timestamp, r.rec.Segment, r.rec.Offset = seq, ts, r.segIndex, off
	r.rec.Size, r.rec.Payload = next-off, payload
	r.off = next
	r.seq++
	return true
}

// moveOn is Next's step when no published frame is at r.off: either a
// record being copied (the frontier) or the end of a segment that rolled
// over. It moves the Reader to the start of the successor and returns
// true, or returns false at the frontier or on an error (then r.err is
// set).
func (r *Reader) moveOn() bool {
	// Look for the successor first: once it exists, r.s is closed and
	// its reserved end final.
	succ := r.src.Successor(r.s)
	if succ == nil {
		return false
	}
	if end, _ := r.s.Reserved(); r.off < end {
		return false // an appender is still copying
	}
	if base := succ.Header().BaseSeq; base != r.seq {
		if r.src.Recheck(); r.cuts.Gen() != r.gen {
			return false
		}
		return r.fail(segment.Corrupt(filepath.Base(succ.Path()), succ.Header().Index, -1, "starts at seq %d, but segment %d before it ends before seq %d",
			base, r.s.Header().Index, r.seq))
	}
	lease, err := succ.Acquire()
	if err != nil {
		return r.fail(err) // ErrReleased: the log closed, or retention
	}
	r.lease.Unlease()
	r.s, r.lease, r.off, r.segIndex, r.salt = succ, lease, segment.HeaderSize, succ.Header().Index, succ.Header().Salt
	r.win, r.lim = nil, 0
	return true
}

// position finds and leases the segment holding r.seq. It returns false
// if the record is not appended yet or on an error (then r.err is set).
func (r *Reader) position() bool {
	s := r.src.Segment(r.seq)
	if s == nil {
		return false // not appended yet
	}
	lease, err := s.Acquire()
	if err != nil {
		return r.fail(err) // ErrReleased: the log closed, or retention
	}
	off, err := s.Locate(r.seq)
	if err != nil {
		lease.Unlease()
		return r.fail(err)
	}
	r.s, r.lease, r.off, r.segIndex, r.salt = s, lease, off, s.Header().Index, s.Header().Salt
	r.win, r.lim = nil, 0
	return true
}

// truncated is the error for r.seq, which the log no longer holds.
func (r *Reader) truncated() error {
	next := r.src.NextSeq()
	_, front, _ := r.src.Look()
	return &TruncatedError{Seq: r.seq, First: front, Next: next, Back: r.seq >= next}
}

// released is the error for a segment found released: the log closed,
// or retention removed it.
func (r *Reader) released() error {
	if closed, _, _ := r.src.Look(); closed {
		return ErrClosed
	}
	return r.truncated()
}

// fail stops the Reader with err (a released segment is the log's
// closing or retention) and ends its lease.
func (r *Reader) fail(err error) bool {
	if errors.Is(err, segment.ErrReleased) {
		err = r.released()
	}
	r.err = err
	r.rec = Record{}
	r.unlease()
	return false
}

// unlease ends the lease on the current segment, if any.
func (r *Reader) unlease() {
	if r.s != nil {
		r.lease.Unlease()
		r.s, r.lease = nil, nil
		r.win, r.lim = nil, 0
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

// Current returns a pointer to the record Next advanced to, which Next
// and Close overwrite: a wrapper that returns the Record by value copies
// it once from there (through Record it would copy it twice).
func (r *Reader) Current() *Record { return &r.rec }

// Err returns the error that stopped the Reader, or nil if Next returned
// false only because it reached the frontier.
func (r *Reader) Err() error { return r.err }

// Seq returns the sequence number of the record the next call to Next
// will return.
func (r *Reader) Seq() uint64 { return r.seq }

// Follow returns an iterator over every record of src from seq from on,
// in order and exactly once, that blocks for new records instead of
// stopping at the frontier: at the Durable level it waits with
// src.WaitDurable, at the Written level on src.Arm's channel.
//
// Each record is yielded with a nil error; its Payload is valid until the
// next iteration (zero-copy; opts as for New). The iteration ends when
// the caller stops it, or with one final zero Record and an error: ctx's
// error, ErrClosed once the log is closed, the error of New (an invalid
// from), an error wrapping segment.ErrCorrupt, a *segment.CorruptError naming file, segment and offset, a
// *TruncatedError if records were removed before the follower got to them
// (its Continue says where to go on), or the log's failure.
func Follow(ctx context.Context, src Source, from uint64, level Level, opts ...Option) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		r, err := New(src, from, level, opts...)
		if err != nil {
			yield(Record{}, err)
			return
		}
		defer r.Close()
		done := ctx.Done()
		for {
			// Taken before Next looks at the cut generation: a
			// TruncateBack after this point ends WaitDurable.
			epoch := src.Epoch()
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
				err = src.WaitDurable(ctx, r.seq, epoch)
			} else if ch := src.Arm(); r.Next() {
				// Published between the last look and arming.
				src.Disarm()
				if !yield(r.Record(), nil) {
					return
				}
			} else if r.Err() != nil {
				src.Disarm() // reported at the top of the loop
			} else {
				select {
				case <-ch:
				case <-done:
					err = ctx.Err()
				}
				src.Disarm()
			}
			if err != nil {
				yield(Record{}, err)
				return
			}
		}
	}
}
