package aof

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/aof2/aof2/flush"
	"github.com/aof2/aof2/reader"
)

// What an index-addressed user (a Raft log store, a replicated journal)
// needs: the log's bounds in one consistent read, waiting for a sequence
// number to be durable, and reading a range of records in batches.

// Bounds returns the first sequence number the log holds and the one the
// next Append will get, read together: the log held exactly the records
// [first, next) at one moment during the call, even while TruncateFront,
// TruncateBack, retention and appends run. first == next when the log
// holds no record. (FirstSeq and NextSeq, called one after the other, can
// straddle a truncation.)
func (l *Log) Bounds() (first, next uint64) {
	for {
		// TruncateBack and Reset lower the end only while a cut runs
		// (reader.Cuts), and otherwise the front only grows: a read
		// that no cut overlapped and that saw the same front before and
		// after its look at the end saw both together. A cut running
		// is waited for; a front that moved is looked at again.
		gen := l.cuts.WaitIdle()
		first = l.front.Load()
		if l.boundsPeek != nil {
			l.boundsPeek() // tests: change the log between the loads
		}
		next = l.nextSeq()
		if l.front.Load() == first && l.cuts.Stable(gen) {
			return first, next
		}
	}
}

// FlushUntilSeq is FlushUntil by sequence number, for callers that keep
// sequence numbers rather than RecordIDs: it returns once the record seq
// and every record before it are durable. seq must have been appended
// (below NextSeq()), else the error wraps ErrNotFound (ErrInvalidArgument
// for seq 0, which no Append returns); a seq that
// retention or TruncateBack removed is a *TruncatedError, as for
// FlushUntil. Its other errors are FlushUntil's: the log's *FailError,
// ErrClosed, ctx's error.
func (l *Log) FlushUntilSeq(ctx context.Context, seq uint64) error {
	epoch := l.pipe.Epoch()
	if seq > 0 && seq < l.front.Load() {
		return l.truncated(seq)
	}
	if seq == 0 {
		return fmt.Errorf("%w: flush until seq 0: sequence numbers start at 1", ErrInvalidArgument)
	}
	if next := l.nextSeq(); seq >= next {
		return fmt.Errorf("%w: seq %d: the log holds [%d, %d)", ErrNotFound, seq, l.front.Load(), next)
	}
	return l.flushUntil(ctx, seq, epoch)
}

// flushUntil waits until seq, checked when the pipeline's epoch was
// epoch, is durable (see FlushUntil).
func (l *Log) flushUntil(ctx context.Context, seq, epoch uint64) error {
	err := l.waitDurable(ctx, seq, epoch)
	if errors.Is(err, flush.ErrLowered) {
		// TruncateBack or Reset removed the record (after making it
		// durable).
		return &TruncatedError{Seq: seq, First: l.front.Load(), Next: l.nextSeq(), Back: true}
	}
	if err == nil && l.pipe.Epoch() != epoch && seq < l.front.Load() {
		// A Reset moved the front past the record (after making it
		// durable) while it was waited for.
		return l.truncated(seq)
	}
	return err
}

// ReadRange returns an iterator over the records [lo, hi) in order, at
// the Written level (appended, maybe not durable yet), stopping early
// once the payloads yielded reach maxBytes: the record that crosses the
// budget is not yielded, except the first, which always is, so every
// call makes progress. maxBytes <= 0 means no budget. The caller sees
// where a batch stopped from the last Seq it got, and asks for the rest
// from there.
//
// lo and hi are checked against Bounds at the call: lo below the first
// record is a *TruncatedError (its First says where the log starts); hi
// past NextSeq() wraps ErrNotFound, lo > hi ErrInvalidArgument (hi is not clamped: a
// range read returns all of [lo, hi) or an error). lo == hi yields
// nothing. Each error is yielded once, with a zero Record, and ends the
// iteration.
//
// Payloads are zero-copy, read-only and valid until the next iteration,
// as for a Reader; with CopyPayloads each is a copy the caller owns.
// While iterating, the other errors of a Reader can end the range: a
// *TruncatedError if retention or TruncateBack removes records of the
// range first, an error wrapping ErrCorrupt, ErrClosed. A record of the
// range that an appender is still copying is waited for (moments).
func (l *Log) ReadRange(lo, hi uint64, maxBytes int64, opts ...ReaderOption) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		first, next := l.Bounds()
		switch {
		case lo > hi:
			yield(Record{}, fmt.Errorf("%w: range [%d, %d) is reversed", ErrInvalidArgument, lo, hi))
			return
		case lo == hi:
			return
		case lo < first:
			yield(Record{}, &TruncatedError{Seq: lo, First: first, Next: next})
			return
		case hi > next:
			yield(Record{}, fmt.Errorf("%w: range [%d, %d): the log holds [%d, %d)", ErrNotFound, lo, hi, first, next))
			return
		}
		// Every record of the range was appended: the Reader returns
		// each (waiting only for appenders still copying) or an error.
		r, err := reader.New(readSource{l}, lo, Written, opts...)
		if err != nil {
			yield(Record{}, err)
			return
		}
		defer r.Close()
		var size int64
		for {
			rec, err := l.rangeNext(r)
			if err != nil {
				yield(Record{}, err)
				return
			}
			size += int64(len(rec.Payload))
			if maxBytes > 0 && size > maxBytes && rec.Seq > lo {
				return
			}
			if !yield(rec, nil) || rec.Seq+1 == hi {
				return
			}
		}
	}
}

// rangeNext returns r's next record for ReadRange, whose records were
// all appended when it began: it waits for an appender still copying one
// or for a cut running, and returns r's error, or a *TruncatedError (Back
// set) if a cut ended the log at or before r's next record (a Reader at
// the new end would wait there for new records, which may never come).
func (l *Log) rangeNext(r *reader.Reader) (Record, error) {
	for {
		if r.Next() {
			return r.Record(), nil
		}
		if err := r.Err(); err != nil {
			return Record{}, err
		}
		// Armed before looking: a publish, a cut or Close after the
		// look wakes ch.
		ch := l.tail.arm()
		l.cuts.WaitIdle()
		// The end goes down only with a cut: the record, below the end
		// when the range began, is gone if it is not below it now.
		if seq, next := r.Seq(), l.nextSeq(); seq >= next {
			l.tail.disarm()
			return Record{}, &TruncatedError{Seq: seq, First: l.front.Load(), Next: next, Back: true}
		}
		if r.Next() {
			l.tail.disarm()
			return r.Record(), nil
		}
		if r.Err() == nil {
			<-ch
		}
		l.tail.disarm()
	}
}
