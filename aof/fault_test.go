package aof

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/flush"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs/vfstest"
)

func TestAppendDuringSyncIsNotDurable(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, WithFS(fs))
	defer l.Close()
	a := mustAppend(t, l, []byte("before the sync"))
	var during RecordID
	var once sync.Once
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(op vfstest.Op) error {
		once.Do(func() { during = mustAppend(t, l, []byte("during the sync")) })
		return nil
	}))
	if err := l.FlushUntil(ctx, a); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(nil)
	m := l.Metrics()
	if m.DurableSeq != a.Seq+1 || during.Seq != a.Seq+1 {
		t.Fatalf("record appended during the sync: durable frontier %d, want %d (record %d must not be durable yet)", m.DurableSeq, a.Seq+1, during.Seq)
	}
	if m.BacklogBytes != segment.FrameSize(len("during the sync")) {
		t.Fatalf("backlog %d bytes, want the frame appended during the sync", m.BacklogBytes)
	}
	if err := l.FlushUntil(ctx, during); err != nil {
		t.Fatal(err)
	}
	if m := l.Metrics(); m.DurableSeq != during.Seq+1 || m.BacklogBytes != 0 {
		t.Fatalf("after the second FlushUntil: %+v", m)
	}
}

func TestTransientSyncErrorsAreRetried(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{}, WithFS(fs))
	defer l.Close()
	fails := 0
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(op vfstest.Op) error {
		if fails < 2 {
			fails++
			return unix.EINTR
		}
		return nil
	}))
	id := mustAppend(t, l, []byte("retry me"))
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatalf("FlushUntil after two EINTRs: %v", err)
	}
	m := l.Metrics()
	if m.RetryAttempts != 2 || m.RetryFailures != 0 {
		t.Fatalf("retry attempts %d, failures %d; want 2, 0", m.RetryAttempts, m.RetryFailures)
	}
	if _, err := l.Append(ctx, []byte("still open")); err != nil {
		t.Fatal(err)
	}
}

func TestEIOFailsStop(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	dir := t.TempDir()
	l := openT(t, dir, Config{}, WithFS(fs))
	var durable []RecordID
	for i := range 20 {
		durable = append(durable, mustAppend(t, l, fmt.Appendf(nil, "durable %d", i)))
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	frontier := l.Metrics().DurableSeq
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))

	// Many waiters on records that will never be durable: all get the
	// error, none hangs.
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := l.Append(ctx, fmt.Appendf(nil, "doomed %d", i))
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = l.FlushUntil(ctx, id)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var fe *flush.FailError
		if !errors.Is(err, ErrFailed) || !errors.Is(err, unix.EIO) || !errors.As(err, &fe) {
			t.Fatalf("waiter %d: %v; want ErrFailed wrapping EIO", i, err)
		}
		if fe.Durable != frontier {
			t.Fatalf("waiter %d: error names durable frontier %d, want %d", i, fe.Durable, frontier)
		}
	}
	m := l.Metrics()
	if m.DurableSeq != frontier || m.RetryFailures == 0 || m.RetryAttempts != 0 {
		t.Fatalf("after EIO: durable %d (want %d), retry failures %d, attempts %d (EIO is never retried)", m.DurableSeq, frontier, m.RetryFailures, m.RetryAttempts)
	}
	if _, err := l.Append(ctx, []byte("refused")); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after EIO: %v, want ErrFailed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close of a failed log: %v, want the failure", err)
	}

	fs.SetFault(nil)
	l = openT(t, dir, Config{})
	defer l.Close()
	for i, id := range durable {
		rec, err := l.Read(id.Seq, nil)
		if err != nil || string(rec.Payload) != fmt.Sprintf("durable %d", i) {
			t.Fatalf("acknowledged record %d after reopen: %q, %v", id.Seq, rec.Payload, err)
		}
	}
	if rep := l.Recovery(); rep.BacklogBytes == 0 {
		t.Fatalf("records written but never synced should be backlog to sync again: %+v", rep)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFlushUntilFallsBackWhenFlusherStopped(t *testing.T) {
	l := openT(t, t.TempDir(), Config{})
	defer l.Close()
	l.StopFlusher()
	id := mustAppend(t, l, []byte("no flusher"))
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
	m := l.Metrics()
	if m.DurableSeq != id.Seq+1 || m.FlushesByMode(ModeSync) == 0 {
		t.Fatalf("synchronous fallback: durable %d, sync flushes %d", m.DurableSeq, m.FlushesByMode(ModeSync))
	}
	l.StartFlusher()
	id = mustAppend(t, l, []byte("flusher back"))
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverySeedsBacklog: a crash leaves records written but not synced;
// reopening counts them as backlog, requests a flush at once, and a log
// with no flusher drains them on the caller's goroutine.
func TestRecoverySeedsBacklog(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	dir := t.TempDir()
	l := openT(t, dir, Config{NoBackgroundFlush: true}, WithFS(fs))
	first := mustAppend(t, l, []byte("synced"))
	if err := l.FlushUntil(ctx, first); err != nil {
		t.Fatal(err)
	}
	// Written to the file but the sync fails: in the page cache only.
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))
	var last RecordID
	for i := range 10 {
		last = mustAppend(t, l, fmt.Appendf(nil, "unsynced %d", i))
	}
	if err := l.FlushUntil(ctx, last); !errors.Is(err, unix.EIO) {
		t.Fatalf("FlushUntil: %v, want EIO", err)
	}
	image := crashCopy(t, dir)
	l.Close()

	for _, background := range []bool{false, true} {
		t.Run(fmt.Sprintf("background=%v", background), func(t *testing.T) {
			dir := crashCopy(t, image)
			l := openT(t, dir, Config{NoBackgroundFlush: !background})
			defer l.Close()
			rep := l.Recovery()
			if rep.NextSeq != last.Seq+1 || rep.BacklogBytes == 0 {
				t.Fatalf("recovery: %+v", rep)
			}
			if !background {
				m := l.Metrics()
				if m.BacklogBytes != rep.BacklogBytes || m.DurableSeq != first.Seq+1 {
					t.Fatalf("backlog after recovery %d (report %d), durable %d", m.BacklogBytes, rep.BacklogBytes, m.DurableSeq)
				}
			}
			if err := l.FlushUntil(ctx, last); err != nil {
				t.Fatal(err)
			}
			if m := l.Metrics(); m.BacklogBytes != 0 || m.DurableSeq != last.Seq+1 {
				t.Fatalf("after draining: %+v", m)
			}
			for seq := first.Seq + 1; seq <= last.Seq; seq++ {
				rec, err := l.Read(seq, nil)
				if err != nil || !strings.HasPrefix(string(rec.Payload), "unsynced") {
					t.Fatalf("Read(%d) = %q, %v", seq, rec.Payload, err)
				}
			}
		})
	}
}

func TestTornTailIsTruncatedAndReported(t *testing.T) {
	cases := []struct {
		name    string
		tear    func(t *testing.T, path string, last RecordID)
		nextSeq func(last RecordID) uint64
		at      func(last RecordID) int64
	}{
		{"garbage after the last record", func(t *testing.T, path string, last RecordID) {
			patch(t, path, frameEnd(last), bytes.Repeat([]byte{0xa5}, 100))
		}, func(last RecordID) uint64 { return last.Seq + 1 }, frameEnd},
		{"last record half written", func(t *testing.T, path string, last RecordID) {
			patch(t, path, last.Offset+segment.FrameHeaderSize, make([]byte, 1))
			patch(t, path, frameEnd(last)-1, []byte{0xff})
		}, func(last RecordID) uint64 { return last.Seq }, func(last RecordID) int64 { return last.Offset }},
		{"last header torn", func(t *testing.T, path string, last RecordID) {
			patch(t, path, last.Offset, make([]byte, 16))
		}, func(last RecordID) uint64 { return last.Seq }, func(last RecordID) int64 { return last.Offset }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ids := buildLog(t, dir, 100, false)
			last := ids[len(ids)-1]
			path := segPath(t, dir, last.Segment)
			c.tear(t, path, last)
			l := openT(t, dir, Config{})
			rep := l.Recovery()
			if rep.NextSeq != c.nextSeq(last) || len(rep.Truncations) != 1 || rep.TruncatedBytes <= 0 ||
				rep.Truncations[0].Offset != c.at(last) || rep.Truncations[0].Corrupt {
				t.Fatalf("recovery: %+v", rep)
			}
			checkRecords(t, l, 1, rep.NextSeq, 200)
			// The log goes on from the cut, and the cut stays cut.
			id := mustAppend(t, l, payloadFor(rep.NextSeq, 200))
			if id.Seq != rep.NextSeq || id.Offset != c.at(last) {
				t.Fatalf("append after the cut: %+v", id)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openT(t, dir, Config{})
			defer l.Close()
			if rep := l.Recovery(); rep.TruncatedBytes != 0 || rep.NextSeq != id.Seq+1 {
				t.Fatalf("second reopen: %+v", rep)
			}
			checkRecords(t, l, 1, id.Seq+1, 200)
		})
	}
}

func TestCorruptMiddleFailsOpen(t *testing.T) {
	for _, keepMark := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable mark=%v", keepMark), func(t *testing.T) {
			dir := t.TempDir()
			ids := buildLog(t, dir, 100, keepMark)
			// Record 40 is in the first half, vouched by later records;
			// with the mark, record 90 is vouched by the mark.
			victim := ids[40]
			if keepMark {
				victim = ids[90]
			}
			flipBit(t, segPath(t, dir, victim.Segment), victim.Offset+segment.FrameHeaderSize+3)
			_, err := Open(dir, Config{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", victim.Offset)) {
				t.Fatalf("Open: %v; want ErrCorrupt naming offset %d", err, victim.Offset)
			}

			l := openT(t, dir, Config{Recovery: RecoverRepair})
			defer l.Close()
			rep := l.Recovery()
			if rep.NextSeq != victim.Seq || len(rep.Truncations) != 1 || !rep.Truncations[0].Corrupt {
				t.Fatalf("repair: %+v", rep)
			}
			kept, err := os.ReadFile(rep.Truncations[0].KeptAt)
			if err != nil || int64(len(kept)) != rep.Truncations[0].Bytes {
				t.Fatalf("repair kept %d bytes at %s (%v), reported %d", len(kept), rep.Truncations[0].KeptAt, err, rep.Truncations[0].Bytes)
			}
			checkRecords(t, l, 1, victim.Seq, 200)
		})
	}
}

func TestSegmentCreatedButNeverWritten(t *testing.T) {
	dir := t.TempDir()
	ids := buildLog(t, dir, 10, true)
	// The next segment was renamed into place, then the machine stopped
	// before its header reached the disk.
	name := segment.Name(ids[10].Segment+1, 11)
	if err := os.WriteFile(filepath.Join(dir, "segments", name), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	l := openT(t, dir, Config{})
	defer l.Close()
	if rep := l.Recovery(); rep.NextSeq != 11 || len(rep.Removed) != 1 || rep.Removed[0] != name {
		t.Fatalf("recovery: %+v", rep)
	}
	checkRecords(t, l, 1, 11, 200)
	if id := mustAppend(t, l, payloadFor(11, 200)); id.Seq != 11 {
		t.Fatalf("append: %+v", id)
	}
}

// TestTwoUnsealedSegments: a crash during a seal leaves the older segment
// without a valid trailer. The newest segment stays the tail; the older one
// is scanned and sealed again.
func TestTwoUnsealedSegments(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 64 << 10})
	var last RecordID
	for i := uint64(1); last.Segment < 3; i++ {
		last = mustAppend(t, l, payloadFor(i, 200))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "DURABLE"))
	// Break segment 2's trailer: as if the seal never completed.
	path := segPath(t, dir, 2)
	patch(t, path, 64<<10-segment.TrailerSize, make([]byte, segment.TrailerSize))

	l = openT(t, dir, Config{SegmentSize: 64 << 10})
	rep := l.Recovery()
	if rep.Scanned != 2 || rep.Trusted != 1 || rep.NextSeq != last.Seq+1 {
		t.Fatalf("recovery: %+v", rep)
	}
	checkRecords(t, l, 1, last.Seq+1, 200)
	id := mustAppend(t, l, payloadFor(last.Seq+1, 200))
	if id.Segment != 3 {
		t.Fatalf("the tail must be the newest segment: appended to segment %d", id.Segment)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, Config{SegmentSize: 64 << 10})
	defer l.Close()
	if rep := l.Recovery(); rep.Trusted != 2 || rep.Scanned != 1 {
		t.Fatalf("segment 2 was not sealed again: %+v", rep)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{})
	if _, err := Open(dir, Config{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	l.Close()
	l = openT(t, dir, Config{})
	l.Close()
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 64 << 10})
	defer l.Close()
	before := l.Metrics().Segments
	if _, err := l.Append(ctx, make([]byte, l.MaxRecordSize()+1)); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("oversized Append: %v", err)
	}
	if _, err := l.AppendBatch(ctx, [][]byte{{1}, make([]byte, 1<<20)}); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("oversized AppendBatch: %v", err)
	}
	if m := l.Metrics(); m.Segments != before || m.AppendedRecords != 0 {
		t.Fatalf("a refused record changed the log: %+v", m)
	}
	big := mustAppend(t, l, make([]byte, l.MaxRecordSize()))
	empty := mustAppend(t, l, nil)
	if rec, err := l.Read(empty.Seq, nil); err != nil || len(rec.Payload) != 0 {
		t.Fatalf("empty record: %q, %v", rec.Payload, err)
	}
	if rec, err := l.Read(big.Seq, nil); err != nil || len(rec.Payload) != l.MaxRecordSize() {
		t.Fatalf("largest record: %d bytes, %v", len(rec.Payload), err)
	}
	for _, id := range []RecordID{{Seq: 999, Segment: 2, Offset: 64}, {Seq: big.Seq, Segment: 7, Offset: 64}} {
		if err := l.FlushUntil(ctx, id); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("FlushUntil(%+v): %v, want ErrNotFound", id, err)
		}
	}
	// An id no Append returns is an invalid argument, not "not found".
	for _, id := range []RecordID{{}, {Seq: big.Seq, Segment: 0, Offset: big.Offset}, {Seq: big.Seq, Segment: big.Segment, Offset: 8},
		{Seq: big.Seq, Segment: big.Segment, Offset: big.Offset + 1}, {Seq: big.Seq, Segment: big.Segment, Offset: segment.MaxSize}, {Seq: 0, Segment: 1, Offset: 64}} {
		if err := l.FlushUntil(ctx, id); !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrNotFound) {
			t.Fatalf("FlushUntil(%+v): %v, want ErrInvalidArgument", id, err)
		}
	}
	if _, err := l.Read(0, nil); !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrTruncated) {
		t.Fatalf("Read(0): %v, want ErrInvalidArgument", err)
	}
	if _, err := l.Read(999, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read of a future seq: %v", err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := Open(file, Config{}); err == nil {
		t.Fatal("Open of a file succeeded")
	}
	for _, cfg := range []Config{{SegmentSize: 100_000}, {SegmentSize: 32 << 10}, {FlushWatermark: 2 << 20, MaxUnflushed: 1 << 20}, {FlushInterval: -1}} {
		if _, err := Open(t.TempDir(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Open(%+v): %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestFullDiskAtRollover(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 64 << 10}, WithFS(fs))
	defer l.Close()
	fs.SetFault(vfstest.Fail(vfstest.OpAllocate, unix.ENOSPC))
	// The preparer may have a segment ready from before the disk filled:
	// the rollover after that one fails.
	var i uint64
	var err error
	var lastOK RecordID
	for i = 1; err == nil; i++ {
		var id RecordID
		if id, err = l.Append(ctx, payloadFor(i, 200)); err == nil {
			lastOK = id
		}
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Append at a full disk: %v, want ENOSPC", err)
	}
	failed := i - 1
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("what was appended stays durable-able: %v", err)
	}
	fs.SetFault(nil)
	id := mustAppend(t, l, payloadFor(failed, 200))
	if id.Seq != failed || id.Segment != lastOK.Segment+1 {
		t.Fatalf("after space returned: %+v, want seq %d in segment %d", id, failed, lastOK.Segment+1)
	}
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, l, 1, failed+1, 200)
}

func TestBackpressureFlushesOnCaller(t *testing.T) {
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true, FlushWatermark: 16 << 10, MaxUnflushed: 64 << 10})
	defer l.Close()
	for i := uint64(1); i <= 2000; i++ {
		mustAppend(t, l, payloadFor(i, 200))
		// Backpressure acts before a record is reserved: the backlog
		// stays below the limit plus the one record appended after it.
		if b := l.Metrics().BacklogBytes; b >= 64<<10+segment.FrameSize(200) {
			t.Fatalf("backlog %d after append %d, limit %d", b, i, 64<<10)
		}
	}
	if m := l.Metrics(); m.FlushesByReason(ReasonBackpressure) == 0 {
		t.Fatalf("no backpressure flush: %+v", m)
	}
}

// TestRegressionFlushUntilErrorForDurableRecord: the leader of a flush that
// made its record durable (segment 1 synced and sealed) gets the FailError
// of a later sync in the same flush (segment 2, EIO), although the durable
// frontier the error itself names is past its record. FlushUntil is
// documented to return nil exactly when the record is durable. Cause:
// Pipeline.WaitDurable returned the error of tryFlush/flush without looking
// at the frontier again. The same path made a
// FlushUntil racing Close return ErrClosed for a record Close made durable.
func TestRegressionFlushUntilErrorForDurableRecord(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}, WithFS(fs))
	defer l.Close()
	var prev, last RecordID
	for i := uint64(1); last.Segment < 2; i++ {
		prev = last
		last = mustAppend(t, l, payloadFor(i, 200))
	}
	// The flush syncs segment 1's data, then its footer (seal), then
	// segment 2's data: fail the third. (The hook cannot go by file name:
	// every file keeps the temporary name it was created with, see
	// vfs.File.Name.)
	var calls atomic.Int32
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(vfstest.Op) error {
		if calls.Add(1) == 3 {
			return unix.EIO
		}
		return nil
	}))
	err := l.FlushUntil(ctx, prev) // prev is segment 1's last record
	durable := l.Metrics().DurableSeq
	if n := calls.Load(); n < 3 {
		t.Fatalf("the flush made %d syncs: the EIO on the third never fired", n)
	}
	if durable <= prev.Seq {
		t.Fatalf("record %d not durable (frontier %d): the EIO hit segment 1, not segment 2", prev.Seq, durable)
	}
	if err != nil {
		t.Fatalf("FlushUntil(seq %d) = %v, but the record is durable (frontier %d)", prev.Seq, err, durable)
	}
	// The EIO fail-stopped the log: the record it left behind gets it.
	if err := l.FlushUntil(ctx, last); !errors.Is(err, unix.EIO) || !errors.Is(err, ErrFailed) {
		t.Fatalf("FlushUntil(seq %d) after the EIO = %v, want a FailError wrapping EIO", last.Seq, err)
	}
}
