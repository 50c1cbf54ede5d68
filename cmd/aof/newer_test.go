package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// Issue 12: a segment file written by a newer aof2 (a format version this
// build does not read, with a valid header checksum) is not corruption:
// every command says "written by a newer aof2" and exits 5 (exitNewer),
// never 1.
func TestNewerFormatVersionIsNotCorruption(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, smallSegments, textPayloads(600, 300))
	files := segFiles(t, dir)
	path := filepath.Join(dir, "segments", files[1])
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[8:], 3)
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"verify", dir}, {"inspect", dir}, {"dump", dir}, {"tail", "-n", "600", dir}} {
		out, errOut, code := aofRun(t, cmd...)
		if code != exitNewer || !strings.Contains(out+errOut, "written by a newer aof2") || strings.Contains(out+errOut, "CORRUPT") {
			t.Errorf("%s: exit %d, want %d and \"written by a newer aof2\", no CORRUPT\n%s%s", cmd[0], code, exitNewer, out, errOut)
		}
	}
	out, e2, _ := aofRun(t, "verify", dir)
	t.Log(out, e2)
	o3, e3, _ := aofRun(t, "dump", dir, "--from", "590")
	t.Log(o3, e3)
	if want := "NEWER: " + files[1] + " offset 0:"; !strings.Contains(out, want) {
		t.Errorf("verify: want %q\n%s", want, out)
	}
}
