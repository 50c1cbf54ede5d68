package aof

import (
	"github.com/aof2/aof2/flush"
	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
)

// Record is one record read back from the log (Read, a Reader, Follow,
// ReadRange): Seq, Timestamp, Segment, Offset, Size (of its frame on disk)
// and Payload; ID returns its RecordID. Whether the caller owns Payload
// depends on the call that returned it: Read copies it, Readers and Follow
// return a read-only view unless CopyPayloads. The reader package defines
// it.
type Record = reader.Record

// record converts a record the segment s decoded.
func record(s *seg, rec segment.Record) Record {
	return reader.MakeRecord(s.Segment, rec)
}

// RetryPolicy bounds how a sync that failed with a transient error
// (EINTR, EAGAIN, EBUSY, ETIMEDOUT) is retried: Config.Retry. Its fields
// are Attempts (the first included), BaseDelay (doubling per retry),
// MaxDelay and Jitter (a fraction in [0, 1]); Validate checks them.
type RetryPolicy = flush.RetryPolicy

// DefaultRetryPolicy returns the retry policy a zero Config.Retry takes:
// up to 5 attempts, waiting 1, 2, 4, 8 ms (capped at 100 ms), each ±20%.
func DefaultRetryPolicy() RetryPolicy { return flush.DefaultRetryPolicy }

// FlushReason says what made a flush happen; Metrics counts flushes by
// reason and mode. Its String is the name used in metrics and traces.
type FlushReason = flush.Reason

// Flush reasons, in increasing priority: a flush asked for by several is
// counted under the highest.
const (
	// ReasonInterval: the flush interval passed with bytes not durable.
	ReasonInterval FlushReason = flush.ReasonInterval
	// ReasonWatermark: the bytes not durable reached the watermark.
	ReasonWatermark FlushReason = flush.ReasonWatermark
	// ReasonRollover: a segment filled up; its tail is flushed and it is
	// sealed.
	ReasonRollover FlushReason = flush.ReasonRollover
	// ReasonRecovery: Open found bytes to make durable again.
	ReasonRecovery FlushReason = flush.ReasonRecovery
	// ReasonBackpressure: the bytes not durable reached
	// Config.MaxUnflushed and an appender flushed on its own goroutine.
	ReasonBackpressure FlushReason = flush.ReasonBackpressure
	// ReasonExplicit: a caller waited in FlushUntil, FlushUntilSeq, Sync,
	// a truncation or Close.
	ReasonExplicit FlushReason = flush.ReasonExplicit
)

// FlushMode says which goroutine ran a flush.
type FlushMode = flush.Mode

const (
	// ModeAsync: the background flusher.
	ModeAsync FlushMode = flush.ModeAsync
	// ModeSync: a caller's goroutine (a waiter that led a group commit,
	// an appender under backpressure, any waiter while the flusher is
	// stopped).
	ModeSync FlushMode = flush.ModeSync
)

// FlushReasons lists every flush reason, in order, for iterating over
// Metrics.Flushes.
func FlushReasons() []FlushReason {
	return []FlushReason{ReasonInterval, ReasonWatermark, ReasonRollover, ReasonRecovery, ReasonBackpressure, ReasonExplicit}
}

// FlushModes lists every flush mode: ModeAsync, then ModeSync.
func FlushModes() []FlushMode { return []FlushMode{ModeAsync, ModeSync} }
