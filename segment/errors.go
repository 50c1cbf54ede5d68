package segment

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error about bytes that fail a check. The
// error that wraps it is a *CorruptError naming the file, the segment and
// the offset (errors.As finds it through every layer that adds context).
var ErrCorrupt = errors.New("aof2: corrupt segment")

// ErrUnsupportedVersion is wrapped by the error about a segment whose
// header says it was written by a newer format version than this code
// reads: a file of a newer aof2, not damage. It never wraps ErrCorrupt,
// and recovery never cuts, moves or rewrites such a file, in repair mode
// neither. The version is read from a header whose checksum holds (every
// format version keeps the header's magic, version and checksum where
// they are): a flipped bit in it is corruption. The marks (DURABLE, FRONT,
// CUT) carry no version.
var ErrUnsupportedVersion = errors.New("aof2: written by a newer format version")

// CorruptError is the error for bytes on disk that fail a check: a header,
// frame, footer, trailer or mark whose checksum, magic or fields are
// wrong, or files that contradict each other. errors.Is(err, ErrCorrupt)
// holds for it.
type CorruptError struct {
	// File is the base name of the file holding the bad bytes: a
	// segment file in the log's segments directory, or a mark file
	// (DurableFile, FrontFile, CutFile) in the log directory. It is
	// empty only in the error of a decoder given bytes, not a file
	// (DecodeHeader, VerifyFrame, DecodeFooter, ...), whose Offset is
	// then relative to those bytes; the callers that read files place
	// it with At.
	File string
	// Segment is the index of the segment File is, or 0 when File is
	// not a segment file (a mark).
	Segment uint64
	// Offset is the byte offset in File where the bad bytes start (0
	// for a segment's header), or -1 when the problem is not at one
	// place: a gap between segments, a mark that contradicts the
	// segments, a whole file's size or data checksum.
	Offset int64
	// Reason says what failed, for people.
	Reason string
}

// Error returns "aof2: corrupt segment: segment N (FILE) offset O: REASON",
// leaving out what is unknown or not applicable.
func (e *CorruptError) Error() string {
	loc := e.File
	if e.Segment != 0 {
		loc = fmt.Sprintf("segment %d", e.Segment)
		if e.File != "" {
			loc += " (" + e.File + ")"
		}
	}
	if e.Offset >= 0 {
		if loc != "" {
			loc += " "
		}
		loc += fmt.Sprintf("offset %d", e.Offset)
	}
	if loc == "" {
		return ErrCorrupt.Error() + ": " + e.Reason
	}
	return ErrCorrupt.Error() + ": " + loc + ": " + e.Reason
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// corrupt returns the *CorruptError of a decoder: off is relative to the
// bytes it was given, File and Segment are not known yet (see At).
func corrupt(off int64, format string, args ...any) *CorruptError {
	return &CorruptError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Corrupt returns a *CorruptError for the file named file (a segment with
// index seg, or 0 for a mark), at offset off in it (or -1).
func Corrupt(file string, seg uint64, off int64, format string, args ...any) *CorruptError {
	return &CorruptError{File: file, Segment: seg, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// At places the error of a decoder (DecodeHeader, VerifyFrame,
// DecodeFooter, DecodeTrailer, the mark decoders) in a file: if err is or
// wraps a *CorruptError that names no file yet, it returns a copy naming
// file (segment seg, or 0 for a mark), with its Offset, relative to the
// bytes the decoder was given, made relative to the file by adding base,
// where those bytes start in it. Any other error is returned as it is.
func At(err error, file string, seg uint64, base int64) error {
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != "" {
		return err
	}
	c := *ce
	c.File, c.Segment = file, seg
	if c.Offset >= 0 {
		c.Offset += base
	}
	return &c
}
