package harness

import (
	"path/filepath"
	"testing"

	"github.com/aof2/aof2/vfs"
)

// writtenPrefix returns how much of path, from offset 0, is written
// blocks (vfs.File.WrittenPrefix); ok is false where the file system
// cannot tell.
func writtenPrefix(t *testing.T, path string) (n int64, ok bool) {
	t.Helper()
	f, err := vfs.Default.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.WrittenPrefix(rawFileSize)
}

// TestRawOverwriteWritesIntoWrittenBlocks: raw-overwrite's records land in
// a file whose blocks are all written (zero-filled before), where raw's
// land in fallocated, unwritten ones; Open keeps rawSpares spare files.
func TestRawOverwriteWritesIntoWrittenBlocks(t *testing.T) {
	written := map[string]int64{}
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
		n, ok := writtenPrefix(t, filepath.Join(dir, "000001.raw"))
		if !ok {
			t.Skip("no FIEMAP on this file system")
		}
		written[name] = n
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
	if raw := written["raw"]; raw == rawFileSize {
		t.Skipf("raw's fallocated file shows no unwritten extents here: the file system cannot tell them apart")
	}
	if ow := written["raw-overwrite"]; ow != rawFileSize {
		t.Fatalf("raw-overwrite's file: written blocks up to %d, want all %d", ow, rawFileSize)
	}
}
