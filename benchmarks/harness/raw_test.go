package harness

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FIEMAP (linux/fiemap.h): the extents of a file, and which are unwritten
// (allocated by fallocate, never written).
const (
	fsIocFiemap           = 0xC020660B
	fiemapFlagSync        = 0x1
	fiemapExtentUnwritten = 0x800
	fiemapExtentLast      = 0x1
)

type fiemapExtent struct {
	Logical, Physical, Length uint64
	_                         [2]uint64
	Flags                     uint32
	_                         [3]uint32
}

type fiemap struct {
	Start, Length                uint64
	Flags, Mapped, Count, unused uint32
	Extents                      [128]fiemapExtent
}

// extentBytes returns how many bytes of path's extents are written and how
// many unwritten; ok is false where FIEMAP is not supported.
func extentBytes(t *testing.T, path string) (written, unwritten int64, ok bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var start uint64
	for {
		m := fiemap{Start: start, Length: ^uint64(0) - start, Flags: fiemapFlagSync, Count: uint32(len(fiemap{}.Extents))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&m))); errno != 0 {
			return 0, 0, false
		}
		if m.Mapped == 0 {
			return written, unwritten, true
		}
		for _, e := range m.Extents[:m.Mapped] {
			if e.Flags&fiemapExtentUnwritten != 0 {
				unwritten += int64(e.Length)
			} else {
				written += int64(e.Length)
			}
			start = e.Logical + e.Length
			if e.Flags&fiemapExtentLast != 0 {
				return written, unwritten, true
			}
		}
	}
}

// TestRawOverwriteWritesIntoWrittenBlocks: raw-overwrite's records land in
// a file whose blocks are all written (zero-filled before), where raw's
// land in fallocated, unwritten ones; Open keeps rawSpares spare files.
func TestRawOverwriteWritesIntoWrittenBlocks(t *testing.T) {
	blocks := map[string][2]int64{}
	for _, name := range []string{"raw", "raw-overwrite"} {
		impl, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		lg, err := impl.Open(dir, Durable)
		if err != nil {
			t.Fatal(err)
		}
		if err := lg.Append(Payload(1, 4096)); err != nil {
			t.Fatal(err)
		}
		w, u, ok := extentBytes(t, filepath.Join(dir, "000001.raw"))
		if !ok {
			t.Skip("no FIEMAP on this file system")
		}
		blocks[name] = [2]int64{w, u}
		if err := lg.Close(); err != nil {
			t.Fatal(err)
		}
		spares, _ := filepath.Glob(filepath.Join(dir, "*"+rawSpareExt))
		if name == "raw-overwrite" {
			if len(spares) != rawSpares-1 {
				t.Fatalf("raw-overwrite: %d spare files after one roll, want %d", len(spares), rawSpares-1)
			}
			// A reopen tops the spares up again and reads the log.
			lg, err := impl.Open(dir, Durable)
			if err != nil {
				t.Fatal(err)
			}
			if spares, _ = filepath.Glob(filepath.Join(dir, "*"+rawSpareExt)); len(spares) != rawSpares {
				t.Fatalf("raw-overwrite reopened: %d spare files, want %d", len(spares), rawSpares)
			}
			if got, err := lg.Read(1, nil); err != nil || string(got) != string(Payload(1, 4096)) {
				t.Fatalf("raw-overwrite reopened: read 1: %v", err)
			}
			lg.Close()
		} else if len(spares) != 0 {
			t.Fatalf("raw: %d spare files, want none", len(spares))
		}
	}
	if raw := blocks["raw"]; raw[1] == 0 {
		t.Skipf("raw's fallocated file shows no unwritten extents here (%v): the file system cannot tell them apart", raw)
	}
	if ow := blocks["raw-overwrite"]; ow[1] != 0 || ow[0] < rawFileSize {
		t.Fatalf("raw-overwrite's file: %d bytes written, %d unwritten; want all %d written", ow[0], ow[1], rawFileSize)
	}
}
