package aof

// Regression tests for bugs found by the power-loss simulation
// (powerloss_test.go). Each failed before its fix.

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// TestRegressionNewLogDirNotDurable: Open created DIR and DIR/segments with
// MkdirAll and never synced their parents. The flusher syncs segments/
// (making the segment files' names durable) but a directory's own name
// lives in its parent: on a file system that does not commit every
// pending name with any fsync, a power cut could lose the whole log
// directory, with records FlushUntil had acknowledged.
func TestRegressionNewLogDirNotDurable(t *testing.T) {
	root := t.TempDir()
	pfs, err := vfs.NewPowerFS(nil, root)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "a", "log")
	l := openT(t, dir, Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}, WithFS(pfs))
	id := mustAppend(t, l, []byte("acknowledged"))
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
	img := pfs.Snapshot() // the power goes now
	l.Close()
	out := t.TempDir()
	if _, err := img.Write(out, vfs.LoseAll, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	l = openT(t, filepath.Join(out, "a", "log"), Config{SegmentSize: 64 << 10})
	defer l.Close()
	if rec, err := l.Read(id.Seq, nil); err != nil || string(rec.Payload) != "acknowledged" {
		t.Fatalf("acknowledged record after the power cut: %q, %v (recovery %+v)", rec.Payload, err, l.Recovery())
	}
}

// rolledOverImage appends until the log rolls over to segment 2, makes
// everything in segment 1 durable and nothing of segment 2 (whose header
// is then written but not synced), and returns a copy of the directory.
func rolledOverImage(t *testing.T) (dir string, last RecordID) {
	t.Helper()
	src := t.TempDir()
	fs := vfs.NewFaultFS(nil)
	l := openT(t, src, Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}, WithFS(fs))
	var prev RecordID
	for i := uint64(1); last.Segment < 2; i++ {
		prev, last = last, mustAppend(t, l, payloadFor(i, 200))
	}
	if err := l.FlushUntil(ctx, prev); err != nil {
		t.Fatal(err)
	}
	image := crashCopy(t, src)
	l.Close()
	return image, prev
}

// TestRegressionTornHeaderFailsOpen: a power cut right after a rollover,
// before the new segment's first sync, can leave its 64-byte header torn
// (part written, part zeros), not only all zeros. Open took that for
// corruption and failed in strict mode, although nothing in the file was
// ever durable. Now a header that is zeros or torn is forgiven only when
// nothing in the file shows a sync of it completed; otherwise it is still
// corruption (the second half of the test).
func TestRegressionTornHeaderFailsOpen(t *testing.T) {
	dir, durable := rolledOverImage(t)
	path := segPath(t, dir, 2)
	patch(t, path, 20, make([]byte, segment.HeaderSize-20)) // torn after 20 bytes
	l, err := Open(dir, Config{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatalf("Open after a power cut tore a new segment's header: %v", err)
	}
	rep := l.Recovery()
	removed := false
	for _, name := range rep.Removed {
		removed = removed || strings.HasPrefix(name, "00000000000000000002-")
	}
	if rep.NextSeq != durable.Seq+1 || !removed {
		t.Fatalf("recovery: %+v", rep)
	}
	checkRecords(t, l, 1, durable.Seq+1, 200)
	l.Close()

	// The same damage to a segment that was synced (one of its records
	// vouches for it) is corruption, and so is a header of zeros there.
	for _, damage := range [][]byte{make([]byte, segment.HeaderSize-20), make([]byte, segment.HeaderSize)} {
		dir := t.TempDir()
		l := openT(t, dir, Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
		a := mustAppend(t, l, payloadFor(1, 200))
		if err := l.FlushUntil(ctx, a); err != nil {
			t.Fatal(err)
		}
		b := mustAppend(t, l, payloadFor(2, 200)) // vouches for a
		if err := l.FlushUntil(ctx, b); err != nil {
			t.Fatal(err)
		}
		image := crashCopy(t, dir)
		l.Close()
		patch(t, segPath(t, image, 1), segment.HeaderSize-int64(len(damage)), damage)
		if _, err := Open(image, Config{SegmentSize: 64 << 10}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "offset 0") {
			t.Fatalf("Open with %d bytes of a synced segment's header zeroed: %v, want ErrCorrupt naming offset 0", len(damage), err)
		}
	}
}
