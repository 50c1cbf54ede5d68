package aof_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aof2/aof2/aof"
)

// tempDir returns a fresh directory for an example's log; done removes it.
func tempDir() (dir string, done func()) {
	dir, err := os.MkdirTemp("", "aof-example-")
	if err != nil {
		panic(err)
	}
	return dir, func() { os.RemoveAll(dir) }
}

// Open a log, append a record, wait until it is durable, read it back.
func Example() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()

	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()

	id, err := log.Append(ctx, []byte("hello")) // appended: in memory
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := log.FlushUntil(ctx, id); err != nil { // durable: on disk
		var fe *aof.FailError // the disk failed: errors.Is(err, aof.ErrFailed)
		if errors.As(err, &fe) {
			fmt.Println("durable below", fe.Durable)
		}
		return
	}
	rec, err := log.Read(id.Seq, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rec.Seq, string(rec.Payload), rec.ID() == id)
	// Output: 1 hello true
}

// Read sequentially with a Reader, and follow the tail with Follow.
func ExampleLog_Follow() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for _, p := range []string{"a", "b", "c"} {
		if _, err := log.Append(ctx, []byte(p)); err != nil {
			fmt.Println(err)
			return
		}
	}

	r, err := log.NewReader(1, aof.Written) // or aof.Durable
	if err != nil {
		fmt.Println(err)
		return
	}
	var got []string
	for rec, err := range r.All() {
		if err != nil {
			fmt.Println(err) // ErrCorrupt, a *TruncatedError, ErrClosed
			break
		}
		got = append(got, string(rec.Payload)) // zero-copy: valid until the next record
	}
	r.Close()
	fmt.Println(got)

	// Follow blocks for new records until ctx ends.
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	go log.Append(ctx, []byte("d")) // appended while following
	for rec, err := range log.Follow(fctx, 2, aof.Written) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(rec.Seq, string(rec.Payload))
		if rec.Seq == 4 {
			break
		}
	}
	// Output:
	// [a b c]
	// 2 b
	// 3 c
	// 4 d
}

// Read records [lo, hi) in batches of at most about maxBytes of payload,
// as a Raft log store serves entries.
func ExampleLog_ReadRange() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for i := range 10 {
		if _, err := log.Append(ctx, fmt.Appendf(nil, "entry %d", i+1)); err != nil {
			fmt.Println(err)
			return
		}
	}

	lo, hi := uint64(3), uint64(9)
	for lo < hi {
		var batch []string
		for rec, err := range log.ReadRange(lo, hi, 24, aof.CopyPayloads()) {
			if err != nil { // *TruncatedError below the front, ErrNotFound past the end
				fmt.Println(err)
				return
			}
			batch = append(batch, string(rec.Payload))
			lo = rec.Seq + 1
		}
		fmt.Printf("%q\n", batch)
	}
	// Output:
	// ["entry 3" "entry 4" "entry 5"]
	// ["entry 6" "entry 7" "entry 8"]
}

// An index-addressed user (a Raft log store) keeps sequence numbers, not
// RecordIDs: Bounds, FlushUntilSeq and TruncateBack work with them.
func ExampleLog_Bounds() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for i := range 5 {
		if _, err := log.Append(ctx, fmt.Appendf(nil, "entry %d", i+1)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := log.FlushUntilSeq(ctx, 5); err != nil { // entries 1..5 are durable
		fmt.Println(err)
		return
	}
	first, next := log.Bounds() // one consistent read of [first, next)
	fmt.Println("holds", first, "to", next-1)

	if err := log.TruncateBack(ctx, 3); err != nil { // a conflicting leader: drop 4 and 5
		fmt.Println(err)
		return
	}
	if err := log.TruncateFront(ctx, 2); err != nil { // compacted by a snapshot
		fmt.Println(err)
		return
	}
	first, next = log.Bounds()
	fmt.Println("holds", first, "to", next-1)

	_, err = log.Read(1, nil)
	var te *aof.TruncatedError
	fmt.Println(errors.As(err, &te), te.First)
	// Output:
	// holds 1 to 5
	// holds 2 to 3
	// true 2
}

// Metrics is a plain snapshot, no OpenTelemetry needed.
func ExampleLog_Metrics() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{NoBackgroundFlush: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	if _, err := log.Append(ctx, []byte("x")); err != nil {
		fmt.Println(err)
		return
	}
	if err := log.Sync(ctx); err != nil {
		fmt.Println(err)
		return
	}
	m := log.Metrics()
	fmt.Println("appended", m.AppendedRecords, "durable below", m.DurableSeq, "backlog", m.BacklogBytes)
	fmt.Println("explicit flushes on the caller's goroutine:", m.Flushes(aof.ReasonExplicit, aof.ModeSync))
	for _, s := range m.Samples() {
		if s.Name == "aof_append_records_total" {
			fmt.Println(s.Name, s.Value)
		}
	}
	// Output:
	// appended 1 durable below 2 backlog 0
	// explicit flushes on the caller's goroutine: 1
	// aof_append_records_total 1
}

// CloseContext bounds how long Close waits for a stalled disk.
func ExampleLog_CloseContext() {
	dir, done := tempDir()
	defer done()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = log.CloseContext(ctx)
	var ce *aof.CloseError
	if errors.As(err, &ce) {
		// The disk stalled: records [ce.Durable, ce.Next) were not yet
		// durable; the close finishes in the background.
		fmt.Println("not durable:", ce.Durable, ce.Next)
	}
	fmt.Println(err)
	// Output: <nil>
}
