package vfstest

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFaultSeesEveryOperation: every kind of operation reaches the one
// Fault with its path, its number among its kind and (for writes) its
// bytes; an error from the Fault is returned instead of running the
// operation, wrapped as the real system call would report it.
func TestFaultSeesEveryOperation(t *testing.T) {
	dir := t.TempDir()
	ff := NewFaultFS(nil)
	var (
		mu  sync.Mutex
		ops []Op
	)
	ff.SetFault(func(op Op) error {
		mu.Lock()
		defer mu.Unlock()
		op.Data = append([]byte(nil), op.Data...)
		ops = append(ops, op)
		return nil
	})
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	f, err := ff.Create(a, 0o600)
	mustDo(t, err)
	defer f.Close()
	mustDo(t, f.Allocate(4096))
	_, err = f.WriteAt([]byte("hello"), 7)
	mustDo(t, err)
	mustDo(t, f.Sync())
	mustDo(t, f.Sync())
	mustDo(t, ff.SyncDir(dir))
	mustDo(t, ff.Rename(a, b))
	mustDo(t, ff.Remove(b))
	want := []Op{
		{Kind: OpCreate, N: 1, Path: a},
		{Kind: OpAllocate, N: 1, Path: a},
		{Kind: OpWrite, N: 1, Path: a, Off: 7, Data: []byte("hello")},
		{Kind: OpSync, N: 1, Path: a},
		{Kind: OpSync, N: 2, Path: a},
		{Kind: OpSyncDir, N: 1, Path: dir},
		{Kind: OpRename, N: 1, Path: a, To: b},
		{Kind: OpRemove, N: 1, Path: b},
	}
	if len(ops) != len(want) {
		t.Fatalf("the Fault saw %d operations, want %d: %+v", len(ops), len(want), ops)
	}
	for i, op := range ops {
		w := want[i]
		if op.Kind != w.Kind || op.N != w.N || op.Path != w.Path || op.To != w.To || op.Off != w.Off || string(op.Data) != string(w.Data) {
			t.Fatalf("operation %d: %+v, want %+v", i, op, w)
		}
	}
	if ff.Count(OpSync) != 2 || ff.Count(OpRemove) != 1 {
		t.Fatalf("counts: %d syncs, %d removes; want 2, 1", ff.Count(OpSync), ff.Count(OpRemove))
	}

	// Failures: the operation does not run, and the error names the
	// system call and path.
	c := filepath.Join(dir, "c")
	g, err := ff.Create(c, 0o600)
	mustDo(t, err)
	defer g.Close()
	for _, tc := range []struct {
		kind   OpKind
		do     func() error
		errOp  string
		stayed string // a path that must still exist
	}{
		{OpRemove, func() error { return ff.Remove(c) }, "remove", c},
		{OpRename, func() error { return ff.Rename(c, b) }, "rename", c},
		{OpSync, g.Sync, "fdatasync", ""},
		{OpSyncDir, func() error { return ff.SyncDir(dir) }, "fsync", ""},
		{OpAllocate, func() error { return g.Allocate(1 << 20) }, "fallocate", ""},
		{OpWrite, func() error { _, err := g.WriteAt([]byte("x"), 0); return err }, "write", ""},
		{OpCreate, func() error { _, err := ff.Create(filepath.Join(dir, "d"), 0o600); return err }, "open", ""},
	} {
		ff.SetFault(Fail(tc.kind, unix.EIO))
		err := tc.do()
		ff.SetFault(nil)
		var pe *fs.PathError
		var le *os.LinkError
		switch {
		case !errors.Is(err, unix.EIO):
			t.Fatalf("%v: %v, want EIO", tc.kind, err)
		case errors.As(err, &pe) && pe.Op != tc.errOp, errors.As(err, &le) && le.Op != tc.errOp:
			t.Fatalf("%v: %v, want the error of %s", tc.kind, err, tc.errOp)
		}
		if tc.stayed != "" {
			if _, err := os.Stat(tc.stayed); err != nil {
				t.Fatalf("%v failed yet ran: %v", tc.kind, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed create made the file: %v", err)
	}
	if st, err := g.Size(); err != nil || st != 0 {
		t.Fatalf("after a failed allocate and write: size %d, %v; want 0", st, err)
	}
}

// TestFailNthCountsItsKind: FailNth fails the n-th operation of its kind
// only (and every later one if sticky); other kinds pass.
func TestFailNthCountsItsKind(t *testing.T) {
	dir := t.TempDir()
	ff := NewFaultFS(nil)
	f, err := ff.Create(filepath.Join(dir, "f"), 0o600)
	mustDo(t, err)
	defer f.Close()
	for _, sticky := range []bool{false, true} {
		n := ff.Count(OpSync) + 2
		ff.SetFault(FailNth(OpSync, n, unix.EIO, sticky))
		var got []bool
		for range 4 {
			mustDo(t, ff.SyncDir(dir))
			got = append(got, f.Sync() != nil)
		}
		want := []bool{false, true, sticky, sticky}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("sticky %v: syncs failed %v, want %v", sticky, got, want)
			}
		}
	}
}

// TestFileRenameThroughDoubles: File.Rename goes through the Fault (a
// failed one keeps the name) and through the power model (the new name
// needs a directory sync, like FS.Rename's).
func TestFileRenameThroughDoubles(t *testing.T) {
	root := t.TempDir()
	p, err := NewPowerFS(nil, root)
	mustDo(t, err)
	ff := NewFaultFS(p)
	tmp, final := filepath.Join(root, "s.tmp"), filepath.Join(root, "s")
	f, err := ff.Create(tmp, 0o600)
	mustDo(t, err)
	defer f.Close()
	_, err = f.WriteAt([]byte("data"), 0)
	mustDo(t, err)
	mustDo(t, f.Sync())
	mustDo(t, p.SyncDir(root))

	ff.SetFault(Fail(OpRename, unix.EIO))
	if err := f.Rename(final); !errors.Is(err, unix.EIO) || f.Name() != tmp {
		t.Fatalf("failed Rename: %v, Name %q; want EIO and the old name", err, f.Name())
	}
	var seen Op
	ff.SetFault(func(op Op) error { seen = op; return nil })
	mustDo(t, f.Rename(final))
	if seen.Kind != OpRename || seen.Path != tmp || seen.To != final || f.Name() != final {
		t.Fatalf("Rename: the Fault saw %+v, Name %q; want a rename of %s to %s", seen, f.Name(), tmp, final)
	}
	mustDo(t, f.Sync())
	if seen.Kind != OpSync || seen.Path != final {
		t.Fatalf("sync after the rename: the Fault saw %+v, want a sync of %s", seen, final)
	}

	rng := rand.New(rand.NewPCG(3, 4))
	write := func(loss Loss) string {
		out := t.TempDir()
		_, err := p.Snapshot().Write(out, loss, rng)
		mustDo(t, err)
		names, err := os.ReadDir(out)
		mustDo(t, err)
		if len(names) != 1 {
			t.Fatalf("%v: %d files, want 1", loss, len(names))
		}
		return names[0].Name()
	}
	if got := write(LoseAll); got != "s.tmp" {
		t.Fatalf("rename not yet durable: LoseAll image holds %q, want s.tmp", got)
	}
	if got := write(KeepAll); got != "s" {
		t.Fatalf("KeepAll image holds %q, want s", got)
	}
	mustDo(t, ff.SyncDir(root))
	if got := write(LoseAll); got != "s" {
		t.Fatalf("after the directory sync: LoseAll image holds %q, want s", got)
	}
}
