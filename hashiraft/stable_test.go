package hashiraft

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/vfs"
	"github.com/aof2/aof2/vfs/vfstest"
)

// The stable store keeps every key across reopens; a key never set is
// (nil, nil) and (0, nil), as raft's StableStore documents.
func TestStableRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if v, err := s.Get([]byte("missing")); v != nil || err != nil {
		t.Fatalf("Get(missing) = %q, %v", v, err)
	}
	if v, err := s.GetUint64([]byte("missing")); v != 0 || err != nil {
		t.Fatalf("GetUint64(missing) = %d, %v", v, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SetUint64([]byte("CurrentTerm"), 7))
	must(s.SetUint64([]byte("CurrentTerm"), 1<<40))
	must(s.Set([]byte("LastVoteCand"), []byte("node-2")))
	must(s.Set([]byte("empty"), []byte{}))
	must(s.Set([]byte{}, []byte{0, 1, 2}))
	val := []byte("caller's buffer")
	must(s.Set([]byte("copied"), val))
	val[0] = 'X'
	check := func() {
		t.Helper()
		if v, err := s.GetUint64([]byte("CurrentTerm")); v != 1<<40 || err != nil {
			t.Fatalf("CurrentTerm = %d, %v", v, err)
		}
		for k, want := range map[string]string{"LastVoteCand": "node-2", "empty": "", "": "\x00\x01\x02", "copied": "caller's buffer"} {
			v, err := s.Get([]byte(k))
			if err != nil || string(v) != want {
				t.Fatalf("Get(%q) = %q, %v", k, v, err)
			}
		}
		if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
			t.Fatal("GetUint64 of a 6-byte value succeeded")
		}
	}
	check()
	must(s.Close())
	s = openT(t, dir)
	defer s.Close()
	check()
}

// A damaged stable file refuses to open (a forgotten term or vote breaks
// raft's safety): every single flipped byte, a truncated file, and a
// missing file once the log holds entries.
func TestStableDamageRefusesOpen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(entries(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, StableFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	refuses := func(what string, want error) {
		t.Helper()
		_, err := Open(dir, testConfig())
		if !errors.Is(err, want) || !strings.Contains(err.Error(), "wipe the node and let it rejoin") {
			t.Fatalf("%s: Open = %v", what, err)
		}
	}
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		refuses(fmt.Sprintf("byte %d flipped", i), aof.ErrCorrupt)
	}
	if err := os.WriteFile(path, good[:len(good)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	refuses("truncated", aof.ErrCorrupt)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	refuses("missing", ErrStableMissing)
	// A temporary file left by a Set that crashed is not the store.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	defer s.Close()
	if v, _ := s.GetUint64([]byte("CurrentTerm")); v != 3 {
		t.Fatalf("CurrentTerm = %d", v)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}

// The stable store writes through Config.FS: a Set whose rename fails
// returns the error and keeps the old value, in memory and on disk.
func TestStableSetFailureKeepsOldValue(t *testing.T) {
	dir := t.TempDir()
	ffs := vfstest.NewFaultFS(vfs.Default)
	cfg := testConfig()
	cfg.FS = ffs
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("injected rename failure")
	ffs.SetFault(func(op vfstest.Op) error {
		if op.Kind == vfstest.OpRename && filepath.Base(op.To) == StableFile {
			return eio
		}
		return nil
	})
	if err := s.SetUint64([]byte("CurrentTerm"), 2); !errors.Is(err, eio) {
		t.Fatalf("Set with a failing rename: %v", err)
	}
	if v, _ := s.GetUint64([]byte("CurrentTerm")); v != 1 {
		t.Fatalf("CurrentTerm = %d after a failed Set", v)
	}
	ffs.SetFault(nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	defer s.Close()
	if v, _ := s.GetUint64([]byte("CurrentTerm")); v != 1 {
		t.Fatalf("CurrentTerm = %d after reopen", v)
	}
}
