package aof

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// sealedRecords returns how many records the first segment of a closed log
// holds, and its base sequence number.
func firstSegment(t testing.TB, dir string) (base, count uint64) {
	t.Helper()
	s, err := segment.OpenReadOnly(vfs.Default, filepath.Join(dir, "segments"), filepath.Base(segPath(t, dir, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if !s.Sealed() {
		t.Fatal("segment 1 is not sealed")
	}
	_, count = s.Reserved()
	return s.Header().BaseSeq, count
}

// wantOpenCorrupt opens dir, which must fail with ErrCorrupt naming file,
// and change nothing in dir.
func wantOpenCorrupt(t *testing.T, dir string, cfg Config, file string) {
	t.Helper()
	before := dirState(t, dir)
	l, err := Open(dir, cfg)
	if err == nil {
		l.Close()
		t.Fatalf("Open succeeded; want ErrCorrupt naming %s", file)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), file) {
		t.Fatalf("Open: %v; want ErrCorrupt naming %s", err, file)
	}
	sameState(t, dir, before, "failed Open")
}

// Issue 11 defect 9: a CUT mark that keeps a record its segment does not
// hold must fail Open before any segment is deleted.
func TestDefect09ContradictoryCutChangesNothing(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	appendN(t, l, 1, 1001)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	base, count := firstSegment(t, dir)
	last := base + count + 50 // in a later segment
	if len(segmentFiles(t, dir)) < 3 {
		t.Fatalf("%d segment files; the test needs 3", len(segmentFiles(t, dir)))
	}
	var b [segment.DurableMarkSize]byte
	segment.EncodeCutMark(b[:], segment.CutMark{Index: 1, LastSeq: last})
	writeMarkFile(t, dir, segment.CutFile, b[:])
	wantOpenCorrupt(t, dir, retentionCfg, segment.CutFile)
	wantOpenCorrupt(t, dir, Config{SegmentSize: retentionCfg.SegmentSize, Recovery: RecoverRepair}, segment.CutFile)

	// A CUT that keeps no segment must agree with the FRONT mark that
	// TruncateBack writes before it.
	segment.EncodeCutMark(b[:], segment.CutMark{Index: 0, LastSeq: last})
	writeMarkFile(t, dir, segment.CutFile, b[:])
	wantOpenCorrupt(t, dir, retentionCfg, segment.CutFile)

	// With the contradiction gone, every record is there.
	if err := os.Remove(filepath.Join(dir, segment.CutFile)); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, retentionCfg)
	defer l.Close()
	if l.NextSeq() != 1001 {
		t.Fatalf("NextSeq %d after removing the contradictory CUT, want 1001", l.NextSeq())
	}
	checkRecords(t, l, 1, 1001, 300)
}

// Issue 11 defect 10: a FRONT mark past the end of the log is corruption,
// not a reason to delete every segment.
func TestDefect10FrontPastTheEndIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	appendN(t, l, 1, 1001)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var b [segment.DurableMarkSize]byte
	segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: 1 << 40})
	writeMarkFile(t, dir, segment.FrontFile, b[:])
	wantOpenCorrupt(t, dir, retentionCfg, segment.FrontFile)
	segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: 1002})
	writeMarkFile(t, dir, segment.FrontFile, b[:])
	wantOpenCorrupt(t, dir, retentionCfg, segment.FrontFile)
	// The next seq is where TruncateFront(NextSeq()) leaves the front:
	// every record removed, which is not a contradiction.
	segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: 1001})
	writeMarkFile(t, dir, segment.FrontFile, b[:])
	l = openT(t, dir, retentionCfg)
	defer l.Close()
	rep := l.Recovery()
	if l.FirstSeq() != 1001 || l.NextSeq() != 1001 || len(rep.Removed) == 0 {
		t.Fatalf("FRONT at the end: FirstSeq %d NextSeq %d, removed %v; want 1001, 1001 and the sealed segments reported removed", l.FirstSeq(), l.NextSeq(), rep.Removed)
	}
}

// Issue 11 defect 11: a damaged FRONT fails Open before the DURABLE mark
// is removed or a tail is cut, so once the FRONT file is dealt with, damage
// the DURABLE mark vouches for is still found as corruption.
func TestDefect11DamagedFrontKeepsDurableMark(t *testing.T) {
	dir := t.TempDir()
	ids := buildLog(t, dir, 100, true)
	// Record 90 is vouched for by the DURABLE mark only: flip a byte of
	// its payload.
	flipBit(t, segPath(t, dir, 1), ids[90].Offset+segment.FrameHeaderSize)
	writeMarkFile(t, dir, segment.FrontFile, []byte("this is not a front mark at all!"))
	wantOpenCorrupt(t, dir, Config{}, segment.FrontFile)
	if _, err := os.Stat(filepath.Join(dir, segment.DurableFile)); err != nil {
		t.Fatalf("the DURABLE mark is gone after a failed Open: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, segment.FrontFile)); err != nil {
		t.Fatal(err)
	}
	wantOpenCorrupt(t, dir, Config{}, filepath.Base(segPath(t, dir, 1)))
}

// Issue 11 defect 12: a failed Open must not grow a short segment file.
func TestDefect12FailedOpenDoesNotAllocate(t *testing.T) {
	dir := t.TempDir()
	ids := buildLog(t, dir, 100, true)
	path := segPath(t, dir, 1)
	short := frameEnd(ids[100]) + 4096
	if err := os.Truncate(path, short); err != nil {
		t.Fatal(err)
	}
	writeMarkFile(t, dir, segment.FrontFile, []byte("this is not a front mark at all!"))
	wantOpenCorrupt(t, dir, Config{}, segment.FrontFile)
	if st, err := os.Stat(path); err != nil || st.Size() != short {
		t.Fatalf("segment after a failed Open: %v, %v; want %d bytes", st.Size(), err, short)
	}
	// Once Open has decided to keep it, the file is allocated to its
	// size again, and every record is there.
	if err := os.Remove(filepath.Join(dir, segment.FrontFile)); err != nil {
		t.Fatal(err)
	}
	l := openT(t, dir, Config{})
	defer l.Close()
	if st, err := os.Stat(path); err != nil || st.Size() != DefaultSegmentSize {
		t.Fatalf("segment after Open: %v, %v; want %d bytes", st.Size(), err, DefaultSegmentSize)
	}
	checkRecords(t, l, 1, 101, 200)
}

// mkfifo makes a FIFO at path.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}

// openNoHang runs Open and returns its error. If Open blocks on the FIFO
// at fifo (the defect), the FIFO is opened for writing to release it and
// the test fails: a guard against a hang, not a timing assertion.
func openNoHang(t *testing.T, dir string, cfg Config, fifo string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		l, err := Open(dir, cfg)
		if err == nil {
			l.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatalf("Open blocked on the FIFO %s", fifo)
		return nil
	}
}

// Issue 11 defect 13: a FIFO or a symbolic link where the log keeps a file
// is refused with an error naming it, without blocking and without
// following the link.
func TestDefect13FifoAndSymlinkAreRefused(t *testing.T) {
	for _, name := range []string{segment.LockFile, segment.DurableFile, segment.FrontFile, segment.CutFile, "segment"} {
		t.Run("fifo "+name, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir, 10, false)
			path := filepath.Join(dir, name)
			if name == "segment" {
				path = filepath.Join(dir, "segments", segment.Name(2, 11))
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err) // LOCK stays after Close: a FIFO takes its place
			}
			mkfifo(t, path)
			before := dirState(t, dir)
			err := openNoHang(t, dir, Config{Recovery: RecoverRepair}, path)
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), filepath.Base(path)) {
				t.Fatalf("Open with a FIFO %s: %v; want ErrNotRegular naming it", name, err)
			}
			sameState(t, dir, before, "Open refusing a FIFO")
		})
	}
	t.Run("symlinked segment", func(t *testing.T) {
		dir, outside := t.TempDir(), t.TempDir()
		buildLog(t, dir, 10, false)
		seg := segPath(t, dir, 1)
		moved := filepath.Join(outside, filepath.Base(seg))
		if err := os.Rename(seg, moved); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(moved, seg); err != nil {
			t.Fatal(err)
		}
		before, beforeOut := dirState(t, dir), dirState(t, outside)
		l, err := Open(dir, Config{})
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), filepath.Base(seg)) {
			t.Fatalf("Open with a symlinked segment: %v; want ErrNotRegular naming it", err)
		}
		sameState(t, dir, before, "Open refusing a symlink")
		sameState(t, outside, beforeOut, "Open refusing a symlink (its target)")
	})
	t.Run("symlinked LOCK", func(t *testing.T) {
		dir, outside := t.TempDir(), t.TempDir()
		buildLog(t, dir, 10, false)
		lock := filepath.Join(dir, segment.LockFile)
		target := filepath.Join(outside, "elsewhere")
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.Symlink(target, lock); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, Config{})
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), segment.LockFile) {
			t.Fatalf("Open with a symlinked LOCK: %v; want ErrNotRegular naming it", err)
		}
	})
}
