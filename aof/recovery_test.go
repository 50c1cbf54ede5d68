package aof

// Tests of recovery at Open: stale marks, short files, repair, headerless
// segments and damage around durable records. Each one failed before its
// bug was fixed; the comment above each names the cause.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs/vfstest"
)

// fixedPayload returns a 100-byte payload tagged with the session and the
// record's number, so records of different sessions have the same frame
// size but different content.
func fixedPayload(session byte, i int) []byte {
	p := bytes.Repeat([]byte{session}, 100)
	copy(p, fmt.Sprintf("%c%04d", session, i))
	return p
}

// TestRegressionStaleMarkLeavesGarbageThatResurrects: when a scan's good prefix
// ends exactly at the offset of a stale DURABLE mark (left by an earlier
// clean Close), Segment.Scan returns before it measures the garbage after
// it (in Segment.Scan), so a torn tail there is neither reported
// nor zeroed. The next session appends over the start of it; frames of the
// lost session that lie further on survive and, once the new frames reach
// them with matching sequence numbers (always, with fixed-size records),
// the next recovery adopts them as records: records nobody appended in the
// current history come back, after a clean Close.
func TestRegressionStaleMarkLeavesGarbageThatResurrects(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{NoBackgroundFlush: true}
	// Session 1: ten records, clean Close: DURABLE = (segment 1, X).
	l := openT(t, dir, cfg)
	for i := range 10 {
		mustAppend(t, l, fixedPayload('A', i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Session 2: ten more records written to the file, but the sync fails,
	// then the machine loses power.
	fs := vfstest.NewFaultFS(nil)
	l = openT(t, dir, cfg, WithFS(fs))
	var s2 []RecordID
	for i := range 10 {
		s2 = append(s2, mustAppend(t, l, fixedPayload('B', i)))
	}
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))
	if err := l.FlushUntil(ctx, s2[9]); !errors.Is(err, unix.EIO) {
		t.Fatalf("FlushUntil: %v, want EIO", err)
	}
	image := crashCopy(t, dir)
	l.Close()
	// Power loss: the page with session 2's first frame never reached the
	// disk; later pages did.
	path := segPath(t, image, 1)
	patch(t, path, s2[0].Offset, make([]byte, segment.FrameSize(100)))

	// Session 3: recover, append three records, close cleanly.
	l = openT(t, image, cfg)
	rep := l.Recovery()
	t.Logf("recovery after the power loss: NextSeq %d, truncations %+v", rep.NextSeq, rep.Truncations)
	if rep.NextSeq != s2[0].Seq {
		t.Fatalf("NextSeq %d, want %d", rep.NextSeq, s2[0].Seq)
	}
	for i := range 3 {
		mustAppend(t, l, fixedPayload('C', i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, image, cfg)
	defer l.Close()
	want := s2[0].Seq + 3
	if got := l.Recovery().NextSeq; got != want {
		rec, err := l.Read(want, nil)
		t.Fatalf("after a clean Close the log has records up to %d, want %d; Read(%d) = %q, %v (a session-2 record nobody appended in this history)",
			got-1, want-1, want, rec.Payload[:5], err)
	}
	if len(rep.Truncations) == 0 {
		t.Fatalf("a torn tail was found but not reported")
	}
}

// TestRegressionTruncatedBelowMarkIsAccepted: the DURABLE mark says segment 1 was
// durable up to the end of record 100, but the file now ends at record 90
// (cut by a tool; Open even re-allocates short files). Scan reports
// Corrupt, but because everything past the good prefix is zero its Garbage
// is 0 (Segment.Scan) and cutScanned returned before it looked at
// Corrupt (in aof's recovery). Strict Open succeeded and silently
// dropped ten acknowledged, durable records.
func TestRegressionTruncatedBelowMarkIsAccepted(t *testing.T) {
	dir := t.TempDir()
	ids := buildLog(t, dir, 100, true)
	victim := ids[90]
	if err := os.Truncate(segPath(t, dir, victim.Segment), victim.Offset); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, Config{})
	if err == nil {
		rep := l.Recovery()
		l.Close()
		t.Fatalf("strict Open accepted the loss of durable records %d..%d: NextSeq %d, truncations %+v",
			victim.Seq, ids[100].Seq, rep.NextSeq, rep.Truncations)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
}

// TestRegressionRepairLeavesStaleMark: repair mode cuts segment 1 at a corrupt
// record below the DURABLE mark's offset but leaves the mark in place
// (aof/recover.go cutScanned / moveToRepair never touch DURABLE). The mark
// now vouches for bytes that no longer exist. The repaired log appends a
// record, makes it durable, appends another that is only written, and the
// machine loses power with that last record torn: an ordinary torn tail.
// Strict Open now fails with ErrCorrupt, blaming the stale mark.
func TestRegressionRepairLeavesStaleMark(t *testing.T) {
	dir := t.TempDir()
	ids := buildLog(t, dir, 100, true)
	victim := ids[90]
	flipBit(t, segPath(t, dir, victim.Segment), victim.Offset+segment.FrameHeaderSize+3)
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, dir, Config{Recovery: RecoverRepair, NoBackgroundFlush: true}, WithFS(fs))
	if rep := l.Recovery(); rep.NextSeq != victim.Seq {
		t.Fatalf("repair: %+v", rep)
	}
	a := mustAppend(t, l, []byte("after repair, durable"))
	if err := l.FlushUntil(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := mustAppend(t, l, bytes.Repeat([]byte{'b'}, 200))
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))
	if err := l.FlushUntil(ctx, b); !errors.Is(err, unix.EIO) {
		t.Fatalf("FlushUntil: %v, want EIO", err)
	}
	image := crashCopy(t, dir)
	l.Close()
	// Power loss: the last record's header never reached the disk.
	patch(t, segPath(t, image, b.Segment), b.Offset, make([]byte, 16))
	l2, err := Open(image, Config{})
	if err != nil {
		t.Fatalf("strict Open after a torn tail in a repaired log: %v", err)
	}
	defer l2.Close()
	if rep := l2.Recovery(); rep.NextSeq != b.Seq {
		t.Fatalf("recovery: %+v", rep)
	}
}

// TestRegressionTwoHeaderlessSegments: the log rolls over twice before any flush
// (64 KiB segments, a burst of appends well within one flush interval), and
// the machine loses power: both new segment files exist (the renames were
// committed) but neither header reached the disk. Nothing in either was ever
// durable, yet Open fails: recovery only forgives a headerless segment when
// it is the very last file (a check in aof's recovery).
func TestRegressionTwoHeaderlessSegments(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}
	l := openT(t, dir, cfg)
	first := mustAppend(t, l, payloadFor(1, 200))
	if err := l.FlushUntil(ctx, first); err != nil {
		t.Fatal(err)
	}
	var last RecordID
	for i := uint64(2); last.Segment < 3; i++ {
		last = mustAppend(t, l, payloadFor(i, 200))
	}
	image := crashCopy(t, dir)
	l.Close()
	for _, index := range []uint64{2, 3} {
		patch(t, segPath(t, image, index), 0, make([]byte, segment.HeaderSize))
	}
	l2, err := Open(image, cfg)
	if err != nil {
		t.Fatalf("Open after a power loss with two headerless segments: %v", err)
	}
	defer l2.Close()
	if rep := l2.Recovery(); rep.NextSeq < first.Seq+1 {
		t.Fatalf("recovery lost the durable record: %+v", rep)
	}
	checkRecords(t, l2, 1, 2, 200)
}

// TestRegressionDropAfterIgnoresDurableMark: segment 1 is sealed, segment 2
// holds records made durable by Close (its records carry no hints, having
// been appended in one burst before any sync; the DURABLE mark vouches for
// them). Segment 1 is then damaged twice (trailer and one record). Recovery
// scans segment 1, takes the damage for a torn tail, and dropAfter removes
// segment 2 as "nothing in it was durable": it scans it with Scan(0) and
// never consulted the mark (aof's recovery). Strict Open succeeded and
// the acknowledged records of segment 2 are deleted from disk.
func TestRegressionDropAfterIgnoresDurableMark(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}
	l := openT(t, dir, cfg)
	var ids []RecordID
	for i := uint64(1); len(ids) == 0 || ids[len(ids)-1].Segment < 2 || len(ids) < 400; i++ {
		ids = append(ids, mustAppend(t, l, payloadFor(i, 200)))
	}
	last := ids[len(ids)-1]
	if err := l.Close(); err != nil { // seals segment 1, syncs segment 2, writes DURABLE
		t.Fatal(err)
	}
	p1 := segPath(t, dir, 1)
	patch(t, p1, 64<<10-segment.TrailerSize, make([]byte, segment.TrailerSize))
	flipBit(t, p1, ids[100].Offset+segment.FrameHeaderSize+1)
	p2 := segPath(t, dir, 2)
	l2, err := Open(dir, cfg)
	if err == nil {
		rep := l2.Recovery()
		l2.Close()
		_, statErr := os.Stat(p2)
		t.Fatalf("strict Open succeeded: NextSeq %d (acknowledged up to %d), segment 2 removed: %v; report %+v",
			rep.NextSeq, last.Seq, statErr != nil, rep)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
}

// TestRegressionStrictOpenChangesDisk: same damage as above, but segment 2's
// records vouch for their own syncs (hints), so dropAfter does find it
// durable and strict Open fails with ErrCorrupt, as it should. But by then
// cutScanned has already zeroed segment 1 from the damaged record on
// (the zeroing ran before the strict check): the strict mode that
// promised "Nothing is changed on disk" destroyed ~300 good records
// that repair mode would have kept a copy of.
func TestRegressionStrictOpenChangesDisk(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}
	l := openT(t, dir, cfg)
	var ids []RecordID
	for i := uint64(1); len(ids) == 0 || ids[len(ids)-1].Segment < 2; i++ {
		ids = append(ids, mustAppend(t, l, payloadFor(i, 200)))
	}
	if err := l.Sync(ctx); err != nil { // seals 1, syncs the first of 2
		t.Fatal(err)
	}
	for i := range 5 { // these vouch for segment 2's first record
		mustAppend(t, l, payloadFor(uint64(len(ids)+1+i), 200))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "DURABLE"))
	p1 := segPath(t, dir, 1)
	patch(t, p1, 64<<10-segment.TrailerSize, make([]byte, segment.TrailerSize))
	flipBit(t, p1, ids[100].Offset+segment.FrameHeaderSize+1)
	before, err := os.ReadFile(p1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, cfg); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	after, err := os.ReadFile(p1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		n := 0
		for i := range before {
			if before[i] != after[i] {
				n++
			}
		}
		t.Fatalf("strict Open failed but changed %d bytes of %s", n, filepath.Base(p1))
	}
}

// TestRegressionCorruptLengthPanicsRead: a record of a sealed (trusted, never
// scanned) segment whose length field is damaged makes Read of the next
// record panic with "slice bounds out of range" instead of returning
// ErrCorrupt. Segment.find walks frame lengths from the sparse index and
// checked the bound only before each step; after the last step it called
// frameLen(off) (which reads src[off+8:]) with off far past the mapping.
// frameAt's src[off:s.limit] panicked the same way for an off between
// the data limit and the file size.
func TestRegressionCorruptLengthPanicsRead(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: 64 << 10}
	l := openT(t, dir, cfg)
	var ids []RecordID
	for i := uint64(1); len(ids) == 0 || ids[len(ids)-1].Segment < 2; i++ {
		ids = append(ids, mustAppend(t, l, payloadFor(i, 200)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	victim := ids[4] // seq 5; seq 6 is in the same index interval
	patch(t, segPath(t, dir, 1), victim.Offset+8, []byte{0xff, 0xff, 0xff, 0x7f})
	l = openT(t, dir, cfg)
	defer l.Close()
	if rep := l.Recovery(); rep.Trusted != 1 {
		t.Fatalf("segment 1 should be trusted: %+v", rep)
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Read(%d) after a corrupt length in the record before it panicked: %v", victim.Seq+1, r)
			}
		}()
		if _, err := l.Read(victim.Seq+1, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read(%d): %v, want ErrCorrupt", victim.Seq+1, err)
		}
	}()
}

// TestSegmentNameDisagreesWithHeader: a segment file renamed so that its
// name (index, base sequence) disagrees with its header is corruption
// naming the file, segment and offset 0: strict Open fails and changes
// nothing on disk; repair mode cuts there and keeps a copy.
func TestSegmentNameDisagreesWithHeader(t *testing.T) {
	for _, tc := range []struct {
		what         string
		index, base  uint64
		wantSegIndex uint64
	}{
		{"base sequence", 1, 7, 1},
		{"index", 3, 1, 3},
	} {
		t.Run(tc.what, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, Config{SegmentSize: 64 << 10})
			appendN(t, l, 1, 11)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("%020d-%020d.seg", tc.index, tc.base)
			if err := os.Rename(segPath(t, dir, 1), filepath.Join(dir, "segments", name)); err != nil {
				t.Fatal(err)
			}
			before := dirState(t, dir)
			_, err := Open(dir, Config{SegmentSize: 64 << 10})
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("strict Open = %v, want a *CorruptError", err)
			}
			if ce.File != name || ce.Segment != tc.wantSegIndex || ce.Offset != 0 {
				t.Fatalf("%+v, want file %s, segment %d, offset 0", ce, name, tc.wantSegIndex)
			}
			sameState(t, dir, before, "failed strict Open")

			// Repair mode cuts there: the file goes to repair/ and the
			// report names it as corrupt.
			rl := openT(t, dir, Config{SegmentSize: 64 << 10, Recovery: RecoverRepair})
			defer rl.Close()
			tr := rl.Recovery().Truncations
			if len(tr) != 1 || tr[0].File != name || !tr[0].Corrupt || tr[0].KeptAt == "" {
				t.Fatalf("repair report %+v, want the renamed file cut as corrupt and kept", tr)
			}
			if _, err := os.Stat(tr[0].KeptAt); err != nil {
				t.Fatalf("repair copy: %v", err)
			}
		})
	}
}
