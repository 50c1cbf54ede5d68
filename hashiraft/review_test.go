package hashiraft

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/trace"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
	"github.com/aof2/aof2/vfs/vfstest"
)

// withTrace returns l with a trace block for a span of trace id and span
// id (Inject), as a leader's StoreLogs sees entries of different clients.
func withTrace(l *raft.Log, id byte) *raft.Log {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{id}, SpanID: trace.SpanID{id}, TraceFlags: trace.FlagsSampled})
	Inject(trace.ContextWithSpanContext(context.Background(), sc), l)
	return l
}

// Review finding 1: a StoreLogs whose batch spans several trace contexts
// appended the runs before a failing one (an entry too large for a
// record), so a failed StoreLogs left a prefix stored while raft's cached
// last index did not move, and raft's retry of the same entries (the
// follower's next AppendEntries, or the stepped-down leader's) then failed
// with ErrNotContiguous forever.
func TestStoreLogsTooLargeEntryStoresNothing(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	big := entry(2)
	big.Data = make([]byte, s.Log().MaxRecordSize()+1)
	err := s.StoreLogs([]*raft.Log{withTrace(entry(1), 1), withTrace(big, 2)})
	if !errors.Is(err, aof.ErrRecordTooLarge) {
		t.Fatalf("StoreLogs with an entry too large = %v, want aof.ErrRecordTooLarge", err)
	}
	if last, _ := s.LastIndex(); last != 0 {
		t.Fatalf("a failed StoreLogs left entries up to %d stored", last)
	}
	// What raft does next: store the entries again, from its own last index.
	if err := s.StoreLogs([]*raft.Log{withTrace(entry(1), 1), withTrace(entry(2), 2)}); err != nil {
		t.Fatalf("StoreLogs again after the failure: %v", err)
	}
	last, _ := s.LastIndex()
	if last != 2 {
		t.Fatalf("LastIndex %d, want 2", last)
	}
}

// Review finding 2: the log's automatic retention (RetainBytes,
// RetainAge) removes sealed segments behind raft's back: entries raft has
// not compacted, committed ones a lagging follower or this node's own
// FSM still needs, vanish. Open must refuse it, as it refuses
// RecoverRepair.
func TestOpenRefusesLogRetention(t *testing.T) {
	for _, c := range []aof.Config{
		{SegmentSize: 64 << 10, RetainBytes: 64 << 10},
		{SegmentSize: 64 << 10, RetainAge: time.Hour},
	} {
		s, err := Open(t.TempDir(), Config{Log: c})
		if err == nil {
			s.Close()
			t.Fatalf("Open with RetainBytes %d, RetainAge %v succeeded", c.RetainBytes, c.RetainAge)
		}
		if !errors.Is(err, aof.ErrInvalidConfig) {
			t.Fatalf("Open with retention = %v, want aof.ErrInvalidConfig", err)
		}
	}
}

// Review finding 3: the oldest-entry age cached the first entry's time by
// its index alone, so after every entry was deleted (a snapshot installed
// or restored) and the log started again at the same index, the gauge
// kept reporting the deleted entry's time.
func TestOldestEntryAgeForgetsDeletedEntry(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	if err := s.StoreLogs(entries(1, 3)); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.tel.oldest(); !ok {
		t.Fatal("no oldest entry in a store of 3")
	}
	if err := s.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(entries(1, 2)); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Log().Read(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts, ok := s.tel.oldest(); !ok || ts != rec.Timestamp {
		t.Fatalf("oldest entry stored at %d, %v; entry 1 was stored at %d", ts, ok, rec.Timestamp)
	}
}

// Review finding 4: Set after Close still rewrote the stable file, so a
// closed Store (a raft goroutine outliving its shutdown) could overwrite
// the term and vote of the Store opened next on the same directory with
// its stale ones.
func TestStableSetAfterCloseFails(t *testing.T) {
	dir := t.TempDir()
	old := openT(t, dir)
	if err := old.SetUint64([]byte("CurrentTerm"), 5); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dir)
	defer s.Close()
	if err := s.SetUint64([]byte("CurrentTerm"), 6); err != nil {
		t.Fatal(err)
	}
	if err := old.SetUint64([]byte("LastVoteTerm"), 5); !errors.Is(err, aof.ErrClosed) {
		t.Fatalf("Set on a closed Store = %v, want aof.ErrClosed", err)
	}
	s.Close()
	s = openT(t, dir)
	defer s.Close()
	if v, err := s.GetUint64([]byte("CurrentTerm")); v != 6 || err != nil {
		t.Fatalf("CurrentTerm = %d, %v after a closed Store's Set, want 6", v, err)
	}
}

// Review finding 5: a StoreLogs whose batch crossed into a segment the log
// could not create (the disk full) appended the part that fit in the
// current segment and failed, the log still usable: the entries were left
// in the store (to be made durable by the next flush) though StoreLogs
// failed, so raft's retry of the same entries, from its own last index,
// failed with ErrNotContiguous until the node restarted. (Here the disk
// has room again as soon as anything but a segment is created.)
func TestStoreLogsFailedRolloverStoresNothing(t *testing.T) {
	ffs := vfstest.NewFaultFS(vfs.Default)
	cfg := testConfig()
	cfg.FS = ffs
	s, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The disk is full for segment files until something else is
	// created: the disk has room again by the time the store reacts.
	var full atomic.Bool
	full.Store(true)
	ffs.SetFault(vfstest.Only(vfstest.OpCreate, func(op vfstest.Op) error {
		if filepath.Base(filepath.Dir(op.Path)) == segment.SegmentsDir {
			if full.Load() {
				return syscall.ENOSPC
			}
			return nil
		}
		full.Store(false)
		return nil
	}))
	batch := func(from uint64) []*raft.Log {
		ls := entries(from, from+9)
		for _, l := range ls {
			l.Data = bytes.Repeat([]byte{byte(l.Index)}, 1000)
		}
		return ls
	}
	var acked uint64
	for {
		ls := batch(acked + 1)
		err := s.StoreLogs(ls)
		if err == nil {
			acked += uint64(len(ls))
			if acked > 1000 {
				t.Fatal("no segment creation failed")
			}
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("StoreLogs: %v, want ENOSPC", err)
		}
		if last, _ := s.LastIndex(); last != acked {
			t.Fatalf("a failed StoreLogs left entries up to %d stored; the last acknowledged is %d", last, acked)
		}
		full.Store(false)
		if err := s.StoreLogs(ls); err != nil {
			t.Fatalf("StoreLogs again once the disk has room: %v", err)
		}
		if last, _ := s.LastIndex(); last != acked+uint64(len(ls)) {
			t.Fatalf("LastIndex %d after the retry, want %d", last, acked+uint64(len(ls)))
		}
		break
	}
}
