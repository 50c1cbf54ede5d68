package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSyncFallsBackToFsync: where fdatasync is unsupported (EINVAL,
// ENOTSUP), Sync uses fsync instead, and from then on goes straight to
// fsync; any other fdatasync error is returned, naming fdatasync.
func TestSyncFallsBackToFsync(t *testing.T) {
	for _, errno := range []error{unix.EINVAL, unix.ENOTSUP} {
		t.Run(errno.Error(), func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			calls := 0
			of := newOSFile(f)
			of.fdatasync = func(int) error { calls++; return errno }
			for i := range 3 {
				if err := of.Sync(); err != nil {
					t.Fatalf("sync %d: %v, want the fsync fallback to succeed", i+1, err)
				}
			}
			if calls != 1 || !of.noDatasync.Load() {
				t.Fatalf("fdatasync tried %d times (fallback remembered: %v), want once", calls, of.noDatasync.Load())
			}
			// The fallback is fsync itself: on a closed file it fails
			// naming fsync.
			f.Close()
			if err := of.Sync(); err == nil || !strings.Contains(err.Error(), "fsync") || strings.Contains(err.Error(), "fdatasync") {
				t.Fatalf("Sync of a closed file after the fallback: %v, want an fsync error", err)
			}
		})
	}
	t.Run("EIO", func(t *testing.T) {
		f, err := os.Create(filepath.Join(t.TempDir(), "f"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		of := newOSFile(f)
		of.fdatasync = func(int) error { return unix.EIO }
		if err := of.Sync(); !errors.Is(err, unix.EIO) || !strings.Contains(err.Error(), "fdatasync") {
			t.Fatalf("Sync: %v, want the fdatasync EIO", err)
		}
		if of.noDatasync.Load() {
			t.Fatal("an EIO from fdatasync switched the file to fsync")
		}
	})
}

// TestMappingUnmap: a Mapping from MapReadOnly sees what WriteAt wrote,
// stays readable after the file is closed, and is released by its own
// Unmap method; a nil Mapping's Unmap does nothing.
func TestMappingUnmap(t *testing.T) {
	f, err := Default.Create(filepath.Join(t.TempDir(), "m"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Allocate(4096); err != nil {
		t.Fatal(err)
	}
	m, err := f.MapReadOnly(4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("mapped"), 100); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(m[100:106]); got != "mapped" {
		t.Fatalf("mapping holds %q, want the bytes written", got)
	}
	if err := m.Unmap(); err != nil {
		t.Fatalf("Unmap: %v", err)
	}
	if err := Mapping(nil).Unmap(); err != nil {
		t.Fatalf("Unmap of a nil Mapping: %v", err)
	}
}

// TestFileRenameUpdatesName: File.Rename moves the file and Name (and so
// the path in later errors) follows at once.
func TestFileRenameUpdatesName(t *testing.T) {
	dir := t.TempDir()
	tmp, final := filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x")
	f, err := Default.Create(tmp, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Rename(final); err != nil {
		t.Fatal(err)
	}
	if f.Name() != final {
		t.Fatalf("Name after Rename: %q, want %q", f.Name(), final)
	}
	if _, err := os.Stat(final); err != nil {
		t.Fatalf("renamed file: %v", err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("old name after Rename: %v, want it gone", err)
	}
	f.Close()
	if err := f.Sync(); err == nil || !strings.Contains(err.Error(), final) {
		t.Fatalf("Sync of the closed renamed file: %v, want an error naming %s", err, final)
	}
	// A failed rename keeps the name.
	g, err := Default.Create(filepath.Join(dir, "y"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Rename(filepath.Join(dir, "no", "such", "dir")); err == nil {
		t.Fatal("rename into a missing directory succeeded")
	}
	if g.Name() != filepath.Join(dir, "y") {
		t.Fatalf("Name after a failed Rename: %q", g.Name())
	}
}

// TestWrittenPrefix: a preallocated file has no written prefix; writes and
// TestWriteBackConvertsPreallocatedBlocks: zeros written over preallocated
// blocks and written back (no sync) leave those blocks written ones, which
// is what a prewrite relies on; written but not written back, they are
// not yet.
func TestWriteBackConvertsPreallocatedBlocks(t *testing.T) {
	const size = 4 << 20
	f, err := Default.Create(filepath.Join(t.TempDir(), "f"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Allocate(size); err != nil {
		t.Fatal(err)
	}
	if n, known := f.WrittenPrefix(size); !known || n == size {
		t.Skip("the file system under t.TempDir() cannot tell written blocks from preallocated ones")
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteBack(0, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.WrittenPrefix(size); got != 1<<20 {
		t.Fatalf("after writing back [0, 1 MiB): written prefix %d, want %d", got, 1<<20)
	}
}

// syncs extend it up to the first block never written, and a hole ends it.
func TestWrittenPrefix(t *testing.T) {
	const size = 1 << 20
	dir := t.TempDir()
	f, err := Default.Create(filepath.Join(dir, "f"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Allocate(size); err != nil {
		t.Fatal(err)
	}
	n, known := f.WrittenPrefix(size)
	if !known {
		t.Skip("the file system under t.TempDir() has no FIEMAP")
	}
	if n == size {
		t.Skip("the file system shows preallocated blocks as written ones")
	}
	if n != 0 {
		t.Fatalf("a preallocated file: written prefix %d, want 0", n)
	}
	write := func(off, n int64) {
		t.Helper()
		if _, err := f.WriteAt(make([]byte, n), off); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		off, n, want int64
	}{
		{0, 64 << 10, 64 << 10},           // the prefix grows
		{256 << 10, 64 << 10, 64 << 10},   // a written island past an unwritten gap does not count
		{64 << 10, 192 << 10, 320 << 10},  // the gap filled: both join
		{320 << 10, size - 320<<10, size}, // all of it
	} {
		write(c.off, c.n)
		if got, _ := f.WrittenPrefix(size); got != c.want {
			t.Fatalf("after writing [%d, %d): written prefix %d, want %d", c.off, c.off+c.n, got, c.want)
		}
	}
	if got, _ := f.WrittenPrefix(100 << 10); got != 100<<10 {
		t.Fatalf("written prefix up to limit %d: %d", 100<<10, got)
	}
	// A sparse file: the hole after the first block ends the prefix.
	sp, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if _, err := sp.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := sp.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := sp.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, known := writtenPrefix(int(sp.Fd()), size); !known || got != 4096 {
		t.Fatalf("a sparse file with its first block written: prefix %d (known %v), want 4096", got, known)
	}
}
