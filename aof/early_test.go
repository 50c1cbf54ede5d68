package aof

import (
	"strings"
	"testing"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// Tests of the early rollover (early.go): a log whose syncs land in
// preallocated blocks moves to a segment of written blocks before the
// active one is full, and only such a log.

func withEarlySyncs(n int64) Option { return func(o *options) { o.earlySyncs = n } }

// durableAppend appends payloadFor(seq, 256) and waits until it is durable.
func durableAppend(t *testing.T, l *Log, seq uint64) {
	t.Helper()
	id := mustAppend(t, l, payloadFor(seq, 256))
	if id.Seq != seq {
		t.Fatalf("Append: seq %d, want %d", id.Seq, seq)
	}
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// durableUntilRollover appends durable records from seq next on until the
// log rolls over, waiting for the preparer once the active segment has
// asked for an early rollover (so the test does not race the prewrite).
// It returns the next sequence number and the segment left, with the
// bytes it held.
func durableUntilRollover(t *testing.T, l *Log, next uint64) (uint64, *seg, int64) {
	t.Helper()
	s := l.active.Load()
	waited := false
	for l.active.Load() == s {
		if next > 1<<20 {
			t.Fatal("no rollover")
		}
		durableAppend(t, l, next)
		next++
		if !waited && l.wantsEarly(s) {
			waitPrepared(l)
			waited = true
		}
	}
	end, _ := s.Reserved()
	return next, s, end
}

// TestEarlyRolloverLeavesPreallocatedBlocks: a new log's first segment is
// only preallocated; once durable appends have synced into it often, the
// log prepares and prewrites the next segment at once and rolls over to
// it with most of the first segment unused.
func TestEarlyRolloverLeavesPreallocatedBlocks(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: prewriteSeg}, withPrewriteChunk(16<<10))
	next, first, end := durableUntilRollover(t, l, 1)
	if limit := segment.DataLimit(prewriteSeg); end > limit-limit/earlyFreeDiv {
		t.Fatalf("the log rolled over with %d of segment 1's %d bytes used, want an early rollover (at most %d)", end, limit, limit-limit/earlyFreeDiv)
	}
	if n := first.coldSyncs.Load(); n < earlySyncs {
		t.Fatalf("rolled over after %d syncs into preallocated blocks, want at least %d", n, earlySyncs)
	}
	act := l.active.Load()
	if got := act.WrittenTo(); got != prewriteSeg {
		t.Fatalf("the new active segment has written blocks up to %d, want all %d", got, prewriteSeg)
	}
	if m := l.Metrics(); m.EarlyRollovers != 1 {
		t.Fatalf("Metrics.EarlyRollovers = %d, want 1", m.EarlyRollovers)
	}
	// The new segment's blocks are written: its syncs are not counted,
	// and it never asks for another early rollover.
	for range earlySyncs + 8 {
		durableAppend(t, l, next)
		next++
	}
	if n := act.coldSyncs.Load(); n != 0 || l.wantsEarly(act) {
		t.Fatalf("segment 2 (written blocks) counted %d cold syncs, wants early = %v", n, l.wantsEarly(act))
	}
	checkRecords(t, l, 1, next, 256)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openT(t, dir, Config{SegmentSize: prewriteSeg})
	defer l2.Close()
	if r := l2.Recovery(); r.TruncatedBytes != 0 || len(r.Truncations) != 0 {
		t.Fatalf("recovery after an early rollover: %+v", r)
	}
	checkRecords(t, l2, 1, next, 256)
}

// TestNoEarlyRolloverForQuietOrNoPrewrite: a log that synced fewer than
// earlySyncs times prepares nothing early, and with Config.NoPrewrite a log
// fills its segment before it rolls over.
func TestNoEarlyRolloverForQuietOrNoPrewrite(t *testing.T) {
	t.Run("quiet", func(t *testing.T) {
		dir := t.TempDir()
		l := openT(t, dir, Config{SegmentSize: prewriteSeg})
		defer l.Close()
		for seq := uint64(1); seq < earlySyncs; seq++ {
			durableAppend(t, l, seq)
		}
		l.prep.mu.Lock()
		prepared := l.prep.ready != nil || l.prep.busy
		l.prep.mu.Unlock()
		if prepared {
			t.Fatalf("a log with %d durable appends had its next segment prepared", earlySyncs-1)
		}
		if names := segDirNames(t, dir); len(names) != 1 {
			t.Fatalf("a quiet log holds the files %v, want its one segment", names)
		}
	})
	t.Run("NoPrewrite", func(t *testing.T) {
		l := openT(t, t.TempDir(), Config{SegmentSize: prewriteSeg, NoPrewrite: true})
		defer l.Close()
		_, first, end := durableUntilRollover(t, l, 1)
		if free := segment.DataLimit(prewriteSeg) - end; free >= segment.FrameSize(256) {
			t.Fatalf("NoPrewrite: rolled over with %d bytes free in segment 1 (%d cold syncs), want a full segment", free, first.coldSyncs.Load())
		}
		if m := l.Metrics(); m.EarlyRollovers != 0 {
			t.Fatalf("NoPrewrite: Metrics.EarlyRollovers = %d", m.EarlyRollovers)
		}
	})
}

// TestCloseKeepsPrewrittenSpare: Close puts a prepared segment prewritten
// to the end into the pool instead of removing it (unless the pool is
// off), and after reopening, the segment recovery reopened (history
// unknown, so taken as preallocated) is left early for that file.
func TestCloseKeepsPrewrittenSpare(t *testing.T) {
	for _, recycle := range []int{0, 1} {
		dir := t.TempDir()
		cfg := Config{SegmentSize: prewriteSeg, RecycleSegments: recycle}
		if recycle == 0 {
			cfg.RecycleSegments = -1
		}
		l := openT(t, dir, cfg, withPrewriteChunk(16<<10))
		next := uint64(1)
		for s := l.active.Load(); !l.wantsEarly(s); next++ {
			if l.active.Load() != s {
				t.Fatalf("segment 1 filled without asking for an early rollover (%d cold syncs)", s.coldSyncs.Load())
			}
			durableAppend(t, l, next)
		}
		waitPrepared(l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		var pooled, temp int
		for _, name := range segDirNames(t, dir) {
			pooled += btoi(strings.HasSuffix(name, segment.PoolSuffix))
			temp += btoi(strings.HasSuffix(name, segment.TempSuffix))
		}
		if temp != 0 || pooled != recycle {
			t.Fatalf("RecycleSegments %d: Close left %d pool and %d temporary files, want %d and 0", cfg.RecycleSegments, pooled, temp, recycle)
		}
		if recycle == 0 {
			continue
		}
		l2 := openT(t, dir, cfg)
		next, _, _ = durableUntilRollover(t, l2, next)
		if m := l2.Metrics(); m.EarlyRollovers != 1 || m.RecycledSegments != 1 {
			t.Fatalf("after reopen: %d early rollovers, %d recycled segments; want 1 and 1", m.EarlyRollovers, m.RecycledSegments)
		}
		checkRecords(t, l2, 1, next, 256)
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// writtenPrefix returns the written prefix of the file at path, as the
// file system reports it (vfs.File.WrittenPrefix).
func writtenPrefix(t *testing.T, path string) (int64, bool) {
	t.Helper()
	f, err := vfs.Default.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.WrittenPrefix(prewriteSeg)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRecycledEarlyRolledFileIsPrewritten: the file of a segment left by
// an early rollover still has preallocated, never written room; when
// retention drops it and the pool hands it out again, the preparer
// prewrites that room (and only that room), so the new life runs on
// written blocks throughout.
func TestRecycledEarlyRolledFileIsPrewritten(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: prewriteSeg, RecycleSegments: 1}, withPrewriteChunk(16<<10))
	defer l.Close()
	next, first, _ := durableUntilRollover(t, l, 1)
	used, known := writtenPrefix(t, first.Path())
	if !known {
		t.Skip("the file system under t.TempDir() has no FIEMAP")
	}
	if used == prewriteSeg {
		t.Fatalf("segment 1, left early, reports all %d bytes written", used)
	}
	if err := l.TruncateFront(ctx, l.active.Load().Header().BaseSeq); err != nil {
		t.Fatal(err)
	}
	before := l.Metrics().PrewrittenBytes
	next = halfFill(t, l, next)
	waitPrepared(l)
	l.prep.mu.Lock()
	ready := l.prep.ready
	l.prep.mu.Unlock()
	if !ready.Recycled() || ready.WrittenTo() != prewriteSeg {
		t.Fatalf("the next segment: recycled %v, written blocks up to %d; want the pooled file, all %d written", ready.Recycled(), ready.WrittenTo(), prewriteSeg)
	}
	// Recycle's pool header and trailer are written ones too, so the
	// prewrite starts at the first block the old life never wrote.
	if got := l.Metrics().PrewrittenBytes - before; got <= 0 || got > prewriteSeg-used {
		t.Fatalf("prewrote %d bytes of the recycled file, want some and at most its %d unwritten ones", got, prewriteSeg-used)
	}
	next = rollOver(t, l, next)
	if m := l.Metrics(); m.RecycledSegments != 1 {
		t.Fatalf("Metrics.RecycledSegments = %d, want 1", m.RecycledSegments)
	}
	checkRecords(t, l, l.active.Load().Header().BaseSeq, next, 1<<10)
}

// TestReopenedWrittenSegmentIsNotLeftEarly: recovery asks the file system
// how much of the segment it resumes is written; a prewritten one is not
// left early after a reopen (a log reopened often would otherwise leave a
// segment's room unused at every open), a preallocated one is.
func TestReopenedWrittenSegmentIsNotLeftEarly(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: prewriteSeg}
	l := openT(t, dir, cfg, withPrewriteChunk(16<<10))
	next, _, _ := durableUntilRollover(t, l, 1)
	durableAppend(t, l, next)
	next++
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openT(t, dir, cfg)
	defer l2.Close()
	s := l2.active.Load()
	if _, known := writtenPrefix(t, s.Path()); !known {
		t.Skip("the file system under t.TempDir() has no FIEMAP")
	}
	if s.WrittenTo() != prewriteSeg {
		t.Fatalf("the resumed segment 2, prewritten to the end, reports written blocks up to %d of %d", s.WrittenTo(), prewriteSeg)
	}
	for range 2 * earlySyncs {
		durableAppend(t, l2, next)
		next++
	}
	if m := l2.Metrics(); m.EarlyRollovers != 0 || l2.active.Load() != s || s.coldSyncs.Load() != 0 {
		t.Fatalf("reopened on a written segment: %d early rollovers, %d cold syncs", m.EarlyRollovers, s.coldSyncs.Load())
	}
	checkRecords(t, l2, 1, next, 256)
}

// TestEarlyRolloverUsesTheSegmentsOwnSize: a log reopened with a larger
// SegmentSize resumes a segment of the old size; the early rollover's
// thresholds follow that segment's size, not Config's (with Config's, 1/16
// of 1 MiB would be more than the whole 64 KiB segment).
func TestEarlyRolloverUsesTheSegmentsOwnSize(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: prewriteSeg})
	durableAppend(t, l, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openT(t, dir, Config{SegmentSize: 16 * prewriteSeg}, withPrewriteChunk(16<<10))
	defer l2.Close()
	_, first, end := durableUntilRollover(t, l2, 2)
	if got := first.Header().Size; got != prewriteSeg {
		t.Fatalf("the resumed segment has size %d, want %d", got, prewriteSeg)
	}
	if limit := segment.DataLimit(prewriteSeg); end > limit-limit/earlyFreeDiv {
		t.Fatalf("the resumed %d-byte segment was left with %d of %d bytes used, want an early rollover", prewriteSeg, end, limit)
	}
	if m := l2.Metrics(); m.EarlyRollovers != 1 {
		t.Fatalf("Metrics.EarlyRollovers = %d, want 1", m.EarlyRollovers)
	}
}
