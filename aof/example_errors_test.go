package aof_test

// This file imports only aof and the standard library: a program that
// appends, reads, follows, truncates and handles every error the log
// returns needs nothing else.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aof2/aof2/aof"
)

// Every error the log returns, triggered and told apart with errors.Is and
// errors.As, with only aof and the standard library imported.
//
// Two errors are not triggered here. ErrUnsupportedVersion needs a segment
// header with a newer format version and a valid xxhash64 checksum, which
// the standard library cannot compute; TestUnsupportedVersionIsNeverRepaired
// covers it. A *FailError needs a disk whose sync fails: the fault-injecting
// file system (vfstest.FaultFS, given with aof.WithFS) is the only way to get
// one in a test, and it lives outside aof; TestEIOFailsStop and
// TestEIOOnNthSync cover it. The branch that handles it is shown below.
func Example_errors() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()

	// ErrInvalidConfig: a segment size that is not a power of two.
	_, err := aof.Open(dir, aof.Config{SegmentSize: 100 << 10})
	fmt.Println("invalid config:", errors.Is(err, aof.ErrInvalidConfig))

	log, err := aof.Open(dir, aof.Config{SegmentSize: 64 << 10})
	if err != nil {
		fmt.Println(err)
		return
	}

	// ErrLocked: the directory is already open.
	_, err = aof.Open(dir, aof.Config{})
	fmt.Println("locked:", errors.Is(err, aof.ErrLocked))

	// ErrRecordTooLarge: the payload does not fit in a segment.
	_, err = log.Append(ctx, make([]byte, log.MaxRecordSize()+1))
	fmt.Println("too large:", errors.Is(err, aof.ErrRecordTooLarge))

	var last aof.RecordID
	for i := range 10 {
		if last, err = log.Append(ctx, fmt.Appendf(nil, "record %d", i+1)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := log.FlushUntil(ctx, last); err != nil {
		var fe *aof.FailError // the disk failed: the log refuses writes until reopened
		if errors.As(err, &fe) {
			fmt.Println("failed; durable below", fe.Durable, errors.Is(err, aof.ErrFailed))
		}
		return
	}

	// ErrInvalidArgument: no log holds seq 0. ErrNotFound: a record not
	// appended yet.
	_, err = log.Read(0, nil)
	fmt.Println("seq 0:", errors.Is(err, aof.ErrInvalidArgument))
	_, err = log.Read(11, nil)
	fmt.Println("seq 11:", errors.Is(err, aof.ErrNotFound))

	// *TruncatedError from the front: records before 4 were removed.
	if err := log.TruncateFront(ctx, 4); err != nil {
		fmt.Println(err)
		return
	}
	_, err = log.Read(2, nil)
	var te *aof.TruncatedError
	if errors.As(err, &te) {
		fmt.Println("front: first available", te.First, "back", te.Back, errors.Is(err, aof.ErrTruncated))
	}

	// *TruncatedError from the back: a reader that returned record 8 when
	// TruncateBack removed it.
	r, err := log.NewReader(8, aof.Written)
	if err != nil {
		fmt.Println(err)
		return
	}
	r.Next()
	if err := log.TruncateBack(ctx, 6); err != nil {
		fmt.Println(err)
		return
	}
	for r.Next() {
		fmt.Println("unexpected record", r.Record().Seq)
	}
	if errors.As(r.Err(), &te) {
		fmt.Println("back: the log ends before", te.Next, "back", te.Back)
	}
	r.Close()

	// Following: records as they come, then the iterator ends with ctx's
	// error once ctx ends while it waits for the next record.
	fctx, cancel := context.WithCancel(ctx)
	for rec, err := range log.Follow(fctx, 4, aof.Written) {
		if err != nil {
			fmt.Println("follow ended:", errors.Is(err, context.Canceled))
			break
		}
		fmt.Println("followed", rec.Seq, string(rec.Payload))
		if rec.Seq == 6 { // the last record: stop waiting
			cancel()
		}
	}
	cancel()

	// Appends continue after the cut, in a fresh segment.
	for _, p := range []string{"new 7", "new 8"} {
		if _, err := log.Append(ctx, []byte(p)); err != nil {
			fmt.Println(err)
			return
		}
	}

	// ErrClosed: the log was closed.
	if err := log.Close(); err != nil {
		fmt.Println(err)
		return
	}
	_, err = log.Append(ctx, []byte("late"))
	fmt.Println("closed:", errors.Is(err, aof.ErrClosed))

	// *CorruptError: a byte of a durable record (Close made it durable)
	// flipped while the log was closed. Strict Open refuses, naming the
	// file, segment and offset, and changes nothing on disk.
	seg, err := flipInPayload(dir, []byte("new 7"))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = aof.Open(dir, aof.Config{SegmentSize: 64 << 10})
	var ce *aof.CorruptError
	if errors.As(err, &ce) {
		fmt.Println("corrupt:", ce.File == seg, ce.Segment, ce.Offset, errors.Is(err, aof.ErrCorrupt))
	} else {
		fmt.Println("open after damage:", err)
	}

	// ErrNotRegular: a file of the log is a symbolic link.
	other, done2 := tempDir()
	defer done2()
	if err := os.Symlink(os.DevNull, filepath.Join(other, "LOCK")); err != nil {
		fmt.Println(err)
		return
	}
	_, err = aof.Open(other, aof.Config{})
	fmt.Println("not regular:", errors.Is(err, aof.ErrNotRegular))

	// Output:
	// invalid config: true
	// locked: true
	// too large: true
	// seq 0: true
	// seq 11: true
	// front: first available 4 back false true
	// back: the log ends before 7 back true
	// followed 4 record 4
	// followed 5 record 5
	// followed 6 record 6
	// follow ended: true
	// closed: true
	// corrupt: true 2 64 true
	// not regular: true
}

// flipInPayload flips a bit of the first segment file holding payload and
// returns that file's name.
func flipInPayload(dir string, payload []byte) (string, error) {
	files, err := os.ReadDir(filepath.Join(dir, "segments"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		path := filepath.Join(dir, "segments", f.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		if i := bytes.Index(b, payload); i >= 0 {
			b[i] ^= 1
			return f.Name(), os.WriteFile(path, b, 0o600)
		}
	}
	return "", fmt.Errorf("no segment of %s holds %q", dir, payload)
}
