package aof

import (
	"errors"

	"github.com/aof2/aof2/flush"
	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// Errors callers can test with errors.Is. Errors returned by the log wrap
// one of them and add detail (file, offset, sequence number).
var (
	// ErrClosed: the log was closed (or the Reader: Reader.Close).
	ErrClosed = reader.ErrClosed
	// ErrLocked: another Log, in this process or another, has the
	// directory open.
	ErrLocked = vfs.ErrLocked
	// ErrNotRegular: a file the log reads or writes (a segment, LOCK,
	// DURABLE, FRONT, CUT) is not a regular file: a FIFO, a device, a
	// directory or a symbolic link. Open refuses it, naming it, rather
	// than block on it or follow the link out of the directory.
	ErrNotRegular = vfs.ErrNotRegular
	// ErrRecordTooLarge: the payload does not fit in one segment.
	ErrRecordTooLarge = errors.New("aof2: record too large for a segment")
	// ErrNotFound: a well-formed sequence number or RecordID that the
	// log does not hold: not appended yet (Read, NewReader past the
	// end, FlushUntil), or a RecordID this log did not hand out (its
	// segment or offset is not where the record is). Records removed by
	// retention or TruncateBack are a *TruncatedError instead.
	//
	// The rule between the two: ErrNotFound answers a read or a wait
	// for a record that could exist but is not here; ErrInvalidArgument
	// answers a request that no log could satisfy as asked.
	ErrNotFound = segment.ErrNotFound
	// ErrInvalidArgument: an argument that can never be valid, whatever
	// the log holds: sequence number 0 (numbers start at 1) for Read,
	// NewReader or FlushUntil; a RecordID no Append returns (segment 0,
	// an offset before the first record or not 8-byte aligned); or a
	// truncation outside the log's bounds: TruncateFront past the next
	// sequence number (it would remove records not appended), or
	// TruncateBack to a last record before FirstSeq()-1 (records already
	// removed) or at or past NextSeq() (records not appended).
	ErrInvalidArgument = errors.New("aof2: invalid argument")
	// ErrCorrupt: bytes on disk fail a check. The error is a
	// *CorruptError naming the file, the segment and the offset:
	// errors.As(err, &ce) finds it through every layer of Open, Read
	// and Reader.
	ErrCorrupt = segment.ErrCorrupt
	// ErrUnsupportedVersion: a segment file was written by a newer
	// format version (a newer aof2) than this code reads. It is not
	// corruption: Open fails with it in every recovery mode, and
	// RecoverRepair never cuts, moves or rewrites such a file (nor any
	// other file, since Open fails first).
	ErrUnsupportedVersion = segment.ErrUnsupportedVersion
	// ErrFailed: a write or sync failed for good, and the log refuses
	// writes until it is reopened. The error is a *flush.FailError
	// naming the durable frontier.
	ErrFailed = flush.ErrFailed
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("aof2: invalid config")
	// ErrTruncated: the records asked for were removed by retention
	// (TruncateFront, automatic retention) or by TruncateBack. The
	// error is a *TruncatedError saying where the log now starts and
	// ends.
	ErrTruncated = reader.ErrTruncated
)

// CorruptError is the error for bytes on disk that fail a check (it
// wraps ErrCorrupt): File (a segment file in DIR/segments, or a mark:
// DURABLE, FRONT, CUT in DIR), Segment (the segment's index, 0 for a
// mark), Offset (where the bad bytes start in File, -1 when the problem is
// not at one place, e.g. a gap between segments or a mark contradicting
// them) and Reason.
type CorruptError = segment.CorruptError

// TruncatedError is the error for a read of records that retention or
// TruncateBack removed. A follower that falls behind retention gets it,
// and can continue from First. Its fields are Seq (the sequence number
// asked for), First (the first the log holds now), Next and Back: with
// Back false, the front moved past Seq and Next is the sequence number
// the next append gets; with Back true, TruncateBack removed Seq and Next
// is where it ended the log (appends since may have given the removed
// sequence numbers to new records; continue from Next for those).
// Continue returns where to go on: First, or Next when Back is set.
type TruncatedError = reader.TruncatedError

// Errors and types of the packages below aof, reachable from aof (issue
// 12: one import for users).

// FailError is the error of a log that fail-stopped: every waiter and
// every later Append gets it. errors.Is matches ErrFailed and the cause
// (an errno such as syscall.EIO); Durable is the durable frontier when
// the log failed (every record below it is durable, none at or above it
// is known to be).
type FailError = flush.FailError
