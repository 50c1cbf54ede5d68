package aof

import (
	"errors"

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
)
