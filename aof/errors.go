package aof

import (
	"errors"
	"fmt"

	"github.com/aof2/aof2/flush"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// Errors callers can test with errors.Is. Errors returned by the log wrap
// one of them and add detail (file, offset, sequence number).
var (
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("aof2: log closed")
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
	// ErrNotFound: no record has that sequence number or RecordID (not
	// yet appended, or not in this log).
	ErrNotFound = segment.ErrNotFound
	// ErrCorrupt: bytes on disk fail a check.
	ErrCorrupt = segment.ErrCorrupt
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
	ErrTruncated = errors.New("aof2: records truncated")
)

// TruncatedError is the error for a read of records that retention or
// TruncateBack removed. A follower that falls behind retention gets it,
// and can continue from First.
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

func (e *TruncatedError) Error() string {
	if e.Back {
		return fmt.Sprintf("aof2: records truncated: seq %d was removed by TruncateBack, which ended the log before seq %d", e.Seq, e.Next)
	}
	return fmt.Sprintf("aof2: records truncated: seq %d was removed by retention; the first available is %d", e.Seq, e.First)
}

// Is makes errors.Is(err, ErrTruncated) true.
func (e *TruncatedError) Is(target error) bool { return target == ErrTruncated }

// Errors and types of the packages below aof, reachable from aof (issue
// 12: one import for users).

// FailError is the error of a log that fail-stopped: every waiter and
// every later Append gets it. errors.Is matches ErrFailed and the cause
// (an errno such as syscall.EIO); Durable is the durable frontier when
// the log failed (every record below it is durable, none at or above it
// is known to be).
type FailError = flush.FailError
