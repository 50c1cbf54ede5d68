package aof

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// Tests from the second review of reading and retention: each one failed
// before the fix that came with it.

// TestReviewLeasedAppendBufferOutlivesRemoval: a zero-copy payload read
// from the append buffer of the active segment stays mapped after that
// segment is sealed (the buffer is retired, not unmapped, while a lease
// holds it) and then removed by retention. The owner's Release used to
// unmap the retired buffer although the Reader's lease still held it:
// reading the payload then faulted (SIGSEGV).
func TestReviewLeasedAppendBufferOutlivesRemoval(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	defer l.Close()
	mustAppend(t, l, payloadFor(1, 300))
	r, err := l.NewReader(1, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() {
		t.Fatal(r.Err())
	}
	held := r.Record().Payload // a slice of segment 1's append buffer
	// Roll over and seal segment 1 while the Reader leases it.
	appendN(t, l, 2, 1001)
	if l.sealedCount.Load() == 0 {
		t.Fatal("no segment sealed")
	}
	// Remove it: the owner releases it, the lease remains.
	if err := l.TruncateFront(ctx, 900); err != nil {
		t.Fatal(err)
	}
	if _, base, _ := parseFirst(t, dir); base == 1 {
		t.Fatal("segment 1 was not removed")
	}
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("reading a leased payload faulted: %v", p)
			}
		}()
		if !bytes.Equal(held, payloadFor(1, 300)) {
			t.Fatal("leased payload changed")
		}
	}()
}

func parseFirst(t *testing.T, dir string) (uint64, uint64, bool) {
	t.Helper()
	files := segmentFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no segment files")
	}
	return segment.ParseName(files[0])
}

// TestReviewReaderPastCutAfterRefill: a Reader that returned records
// which TruncateBack then removed must get a *TruncatedError (Back set),
// also when appends after the cut have already reached its position. It
// used to compare its position with the current NextSeq only, so once new
// records filled the numbers again it carried on with them: the caller
// got old records up to its position, then new ones after it, a mix of
// two histories.
func TestReviewReaderPastCutAfterRefill(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 1001)
	r, _ := l.NewReader(1, Written)
	defer r.Close()
	for i := 0; i < 900; i++ {
		if !r.Next() {
			t.Fatal(r.Err())
		}
	}
	if err := l.TruncateBack(ctx, 500); err != nil {
		t.Fatal(err)
	}
	// New records with the same numbers, different payloads, past the
	// reader's position.
	for i := uint64(501); i < 1001; i++ {
		mustAppend(t, l, payloadFor(i+1e6, 300))
	}
	if r.Next() {
		t.Fatalf("reader that returned removed records 501..900 went on with seq %d of the new history", r.Record().Seq)
	}
	wantTruncated(t, r.Err(), 1, true)
}

// TestReviewDurableFollowerAcrossCut: a Durable follower waiting past the
// cut point is told at once that its records were removed. It used to
// wait for the durable frontier to pass its old position, which after a
// cut only new appends can do (never, on an idle log), and then carried
// on with the new records.
func TestReviewDurableFollowerAcrossCut(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 1001)
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got := make(chan error, 1)
	seen := make(chan struct{})
	go func() {
		for rec, err := range l.Follow(fctx, 1, Durable) {
			if err != nil {
				got <- err
				return
			}
			if rec.Seq == 1000 {
				close(seen)
			}
		}
		got <- nil
	}()
	<-seen
	time.Sleep(20 * time.Millisecond) // the follower waits at 1001
	if err := l.TruncateBack(ctx, 500); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		wantTruncated(t, err, 1, true)
	case <-time.After(2 * time.Second):
		t.Fatal("the Durable follower past the cut is still waiting 2s after TruncateBack")
	}
}

// TestReviewFlushUntilOfCutRecord: a FlushUntil waiting for a record that
// TruncateBack removes returns (the record was made durable, then cut)
// instead of spinning, flush after empty flush, until a new record with
// the same number is appended and made durable.
func TestReviewFlushUntilOfCutRecord(t *testing.T) {
	fs := vfs.NewFaultFS(vfs.Default)
	l := openT(t, t.TempDir(), retentionCfg, WithFS(fs))
	defer l.Close()
	appendN(t, l, 1, 101)
	l.StopFlusher()
	var id RecordID
	for i := uint64(101); i <= 200; i++ {
		id = mustAppend(t, l, payloadFor(i, 300))
	}
	// TruncateBack's flush stalls in its sync until the waiter waits.
	stall, stalled := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs.SetSyncHook(func(int, string) error {
		once.Do(func() { close(stalled); <-stall })
		return nil
	})
	cut := make(chan error, 1)
	go func() { cut <- l.TruncateBack(ctx, 150) }()
	<-stalled
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.FlushUntil(wctx, id) }()
	time.Sleep(50 * time.Millisecond) // the waiter waits for the flush lock
	close(stall)
	if err := <-cut; err != nil {
		t.Fatal(err)
	}
	if err := <-done; errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FlushUntil of seq %d, removed by TruncateBack(150), still waiting after 2s", id.Seq)
	} else if err != nil && !errors.Is(err, ErrTruncated) {
		t.Fatalf("FlushUntil of a record TruncateBack removed: %v", err)
	}
}

// TestReviewFrontAtEndPowerLoss: TruncateFront(NextSeq()) right after a
// rollover removes every sealed segment and leaves only the active one,
// which holds no record: its header was written but never synced (a
// segment's first sync comes with its first record). A power loss then
// keeps the directory entry and loses the header. Recovery removes the
// headerless file and, with no segment left, used to start a new log at
// seq 1 instead of at the durable front.
func TestReviewFrontAtEndPowerLoss(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 1001)
	// TruncateBack leaves a fresh, empty active segment; TruncateFront
	// to its first sequence number then deletes every other segment.
	if err := l.TruncateBack(ctx, 900); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateFront(ctx, 901); err != nil {
		t.Fatal(err)
	}
	files := segmentFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("segment files %v, want only the empty active one", files)
	}
	// The power loss, with the log still open: the empty segment's
	// header was never synced (nothing was flushed into it) and is gone.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	path := filepath.Join(crashed, "segments", files[0])
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, segment.HeaderSize), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l2 := openT(t, crashed, retentionCfg)
	defer l2.Close()
	if first, n := l2.FirstSeq(), l2.NextSeq(); first != 901 || n != 901 {
		t.Fatalf("after a power loss: log [%d, %d), want [901, 901)", first, n)
	}
}

// TestReviewMetricsAfterCutInActiveSegment: the "since open" counters
// never go backwards. TruncateBack measured what it cut after cutting the
// kept segment: when that was the active segment, its end was already the
// new one, so the cut counted 0 records and 0 bytes, and AppendedRecords,
// AppendedBytes and DurableBytes dropped by what was cut.
func TestReviewMetricsAfterCutInActiveSegment(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 101)
	before := l.Metrics()
	if err := l.TruncateBack(ctx, 50); err != nil {
		t.Fatal(err)
	}
	after := l.Metrics()
	if after.AppendedRecords < before.AppendedRecords || after.AppendedBytes < before.AppendedBytes ||
		after.DurableBytes < before.DurableBytes || after.BacklogBytes != 0 {
		t.Fatalf("after TruncateBack(50) of 100 records: appended %d records, %d bytes, durable %d bytes, backlog %d; before: %d, %d, %d",
			after.AppendedRecords, after.AppendedBytes, after.DurableBytes, after.BacklogBytes,
			before.AppendedRecords, before.AppendedBytes, before.DurableBytes)
	}
	appendN(t, l, 51, 61)
	if m := l.Metrics(); m.AppendedRecords != 110 || m.NextSeq != 61 || m.DurableSeq != 61 {
		t.Fatalf("after 10 more: appended %d records (want 110), NextSeq %d, DurableSeq %d (want 61)", m.AppendedRecords, m.NextSeq, m.DurableSeq)
	}
}
