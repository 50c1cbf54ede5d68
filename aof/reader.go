package aof

import (
	"context"
	"fmt"
	"iter"
	"sort"

	"github.com/aof2/aof2/reader"
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
//
// The reading itself is package reader's: the log is its Source through
// readSource, below, and Reader and Follow here only convert its records
// to Record.

// Level is how far a Reader or a follower may read: Written or Durable.
type Level = reader.Level

const (
	// Written: records that are published in the log's memory, that is
	// whose Append has copied them (Append returns right after). They
	// may not be durable yet: after a crash they can be gone.
	Written = reader.Written
	// Durable: records below the durable frontier (Metrics().DurableSeq),
	// for which FlushUntil has returned or would return nil at once.
	Durable = reader.Durable
)

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
type Reader struct{ r *reader.Reader }

// ReaderOption changes how a Reader returns records.
type ReaderOption = reader.Option

// CopyPayloads makes the Reader return each payload as a fresh copy that
// the caller owns, instead of a zero-copy slice valid until the next Next.
func CopyPayloads() ReaderOption { return reader.CopyPayloads() }

// NewReader returns a Reader whose first record is from, up to level's
// frontier. from must be in [FirstSeq(), NextSeq()]: from equal to the
// next sequence number starts at the end, and the Reader returns records
// as they are appended. A from before the first retained record is a
// *TruncatedError naming the first available sequence number; a from past
// the end wraps ErrNotFound; from 0 wraps ErrInvalidArgument. NewReader
// fails with ErrClosed on a closed log.
func (l *Log) NewReader(from uint64, level Level, opts ...ReaderOption) (*Reader, error) {
	r, err := reader.New(readSource{l}, from, level, opts...)
	if err != nil {
		return nil, err
	}
	return &Reader{r}, nil
}

// Next advances to the next record and reports whether there is one. It
// returns false, with Err nil, at the level's frontier (and for the moment
// a TruncateBack runs); it never blocks (beyond a moment while
// positioning, if an appender is copying a record before from). A later
// call continues once more records are available, so a Reader can be
// polled. Next returns false for good, with Err set, on a corrupt record
// (an error wrapping *CorruptError (errors.Is ErrCorrupt) naming file, segment and offset), on a record
// that retention or TruncateBack removed before the Reader got to it (a
// *TruncatedError), once the Reader or the log is closed (ErrClosed), or,
// for a Durable reader at its frontier, once the log has failed (the
// *FailError).
func (r *Reader) Next() bool { return r.r.Next() }

// Close ends the Reader and its lease: payloads it returned without
// CopyPayloads must not be used after. Next returns false from then on,
// with Err ErrClosed. Close is idempotent.
func (r *Reader) Close() { r.r.Close() }

// Record returns the record Next advanced to. Without CopyPayloads its
// Payload is read-only and valid until the next call to Next or Close;
// copy it to keep it longer.
func (r *Reader) Record() Record { return *r.r.Current() }

// Err returns the error that stopped the Reader, or nil if Next returned
// false only because it reached the frontier.
func (r *Reader) Err() error { return r.r.Err() }

// Seq returns the sequence number of the record the next call to Next
// will return.
func (r *Reader) Seq() uint64 { return r.r.Seq() }

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
// visible only when something else flushes); a FlushUntil that made
// records durable yields its processor to the followers it woke, so they
// see them at once. At the Written level it is woken by the appends
// themselves.
//
// Each record is yielded with a nil error; its Payload is valid until the
// next iteration (zero-copy; opts as for NewReader). The iteration ends
// when the caller stops it, or with one final zero Record and an error:
// ctx's error, ErrClosed once the log is closed, the error of NewReader
// (an invalid from), an *CorruptError (errors.Is ErrCorrupt) naming file, segment and offset, a
// *TruncatedError if retention removed records before the follower got to
// them (its First says where to continue), or the log's *FailError.
func (l *Log) Follow(ctx context.Context, from uint64, level Level, opts ...ReaderOption) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for rec, err := range reader.Follow(ctx, readSource{l}, from, level, opts...) {
			if !yield(rec, err) {
				return
			}
		}
	}
}

// readSource is the log as its readers see it (reader.Source). It is a
// separate type so that the Source's methods are not part of Log's API.
type readSource struct{ l *Log }

// Check implements reader.Source: the errors of NewReader.
func (s readSource) Check(from uint64) error {
	l := s.l
	if l.closed.Load() {
		return ErrClosed
	}
	if from == 0 {
		return fmt.Errorf("%w: cannot read from seq 0: sequence numbers start at 1", ErrInvalidArgument)
	}
	if from < l.front.Load() {
		return l.truncated(from)
	}
	if next := l.nextSeq(); from > next {
		return fmt.Errorf("%w: cannot read from seq %d: the first available is %d and the next to be appended is %d", ErrNotFound, from, l.front.Load(), next)
	}
	return nil
}

// Look implements reader.Source.
func (s readSource) Look() (closed bool, front, durable uint64) {
	return s.l.closed.Load(), s.l.front.Load(), s.l.pipe.Durable()
}

// NextSeq implements reader.Source.
func (s readSource) NextSeq() uint64 { return s.l.nextSeq() }

// Failed implements reader.Source: the log's *FailError.
func (s readSource) Failed() error { return s.l.pipe.Err() }

// Segment implements reader.Source.
func (s readSource) Segment(seq uint64) *segment.Segment {
	if sg := s.l.segmentOf(seq); sg != nil {
		return sg.Segment
	}
	return nil
}

// Successor implements reader.Source.
func (s readSource) Successor(sg *segment.Segment) *segment.Segment {
	l := s.l
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	idx := sg.Header().Index
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].Header().Index > idx })
	if i == len(l.segs) || l.segs[i].Header().Index != idx+1 {
		return nil
	}
	return l.segs[i].Segment
}

// Recheck implements reader.Source: the log's Cuts are in step with its
// cuts (Begin runs before a cut changes anything), so there is nothing to
// look at again.
func (s readSource) Recheck() {}

// Cuts implements reader.Source.
func (s readSource) Cuts() *reader.Cuts { return &s.l.cuts }

// Epoch implements reader.Source: the flush pipeline's epoch, which a
// cut advances.
func (s readSource) Epoch() uint64 { return s.l.pipe.Epoch() }

// WaitDurable implements reader.Source.
func (s readSource) WaitDurable(ctx context.Context, past, epoch uint64) error {
	return s.l.pipe.WaitAdvanceSince(ctx, past, epoch)
}

// Arm implements reader.Source: appends, cuts and Close wake the channel.
func (s readSource) Arm() <-chan struct{} { return s.l.tail.arm() }

// Disarm implements reader.Source.
func (s readSource) Disarm() { s.l.tail.disarm() }
