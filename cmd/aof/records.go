package main

import (
	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/reader"
)

// logReader is how dump, tail and stats read records: package reader's
// Reader over the log directory as an inspect.Source, the rules the
// library's own readers follow.
type logReader struct {
	src *inspect.Source
	r   *reader.Reader
	err error
}

// openReader opens the log at path for reading from seq from. Errors are
// reported; code is the exit status then.
func (e *env) openReader(cmd, path string, from uint64) (lr *logReader, code int) {
	src, err := inspect.OpenSource(e.fs, path)
	if err != nil {
		e.errorf(cmd, "%v", err)
		return nil, exitError
	}
	lr = &logReader{src: src}
	if err := lr.restart(from); err != nil {
		src.Close()
		return nil, e.readErr(cmd, path, err)
	}
	return lr, exitOK
}

// restart reads from seq from again (after the writer removed records).
func (lr *logReader) restart(from uint64) error {
	if lr.r != nil {
		lr.r.Close()
	}
	lr.err = nil
	r, err := reader.New(lr.src, from, reader.Written)
	lr.r = r
	return err
}

// Next advances to the next record. At the frontier it asks the Source
// what it learnt meanwhile (inspect.Source.Poll) and goes on while that is
// new records, a moved front or a finished cut; Err then says why it
// stopped.
func (lr *logReader) Next() bool {
	for {
		if lr.r.Next() {
			return true
		}
		again, err := lr.src.Poll()
		if lr.err = lr.r.Err(); lr.err != nil {
			return false
		}
		if lr.err = err; !again || err != nil {
			return false
		}
	}
}

// Err says why Next returned false: nil at the end of the written
// records; an error wrapping inspect.ErrTornTail at bytes that are not a
// record and that nothing vouches were durable (a torn tail, or a write in
// progress); a *inspect.TruncatedError when the writer removed records
// (retention, TruncateBack); an error wrapping segment.ErrCorrupt for
// damage to durable data; another error when the log could not be read.
func (lr *logReader) Err() error { return lr.err }

// Record returns the record Next advanced to, and the name of the segment
// file holding it. Its payload is valid until the next call to Next.
func (lr *logReader) Record() (reader.Record, string) {
	rec := lr.r.Record()
	return rec, lr.src.File(rec.Segment)
}

// Close ends the Reader and closes the Source.
func (lr *logReader) Close() {
	lr.r.Close()
	lr.src.Close()
}
