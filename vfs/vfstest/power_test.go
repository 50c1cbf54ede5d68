package vfstest

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPowerModel checks the model's rules on a small history: synced data
// survives every loss, unsynced data survives only KeepAll, names need a
// directory sync, and a failed sync proves nothing.
func TestPowerModel(t *testing.T) {
	root := t.TempDir()
	mustDo(t, os.WriteFile(filepath.Join(root, "old"), []byte("before"), 0o644))
	p, err := NewPowerFS(nil, root)
	mustDo(t, err)
	dir := filepath.Join(root, "d")
	mustDo(t, p.MkdirAll(dir, 0o700))
	mustDo(t, p.SyncDir(root))
	f, err := p.Create(filepath.Join(dir, "a.tmp"), 0o600)
	mustDo(t, err)
	_, err = f.WriteAt([]byte("synced"), 0)
	mustDo(t, err)
	mustDo(t, f.Sync())
	mustDo(t, p.Rename(filepath.Join(dir, "a.tmp"), filepath.Join(dir, "a")))
	mustDo(t, p.SyncDir(dir))
	_, err = f.WriteAt([]byte("+unsynced"), 6)
	mustDo(t, err)
	g, err := p.Create(filepath.Join(dir, "b"), 0o600)
	mustDo(t, err)
	_, err = g.WriteAt([]byte("b data"), 0)
	mustDo(t, err)
	mustDo(t, g.Sync()) // data durable, name not
	mustDo(t, p.Remove(filepath.Join(root, "old")))

	img := p.Snapshot()
	read := func(out, name string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(out, name))
		return string(b), err == nil
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, loss := range Losses() {
		for range 20 {
			out := t.TempDir()
			desc, err := img.Write(out, loss, rng)
			mustDo(t, err)
			a, ok := read(out, "d/a")
			if !ok || !bytes.HasPrefix([]byte(a), []byte("synced")) || len(a) > len("synced+unsynced") {
				t.Fatalf("%s: d/a = %q, %v", desc, a, ok)
			}
			if _, ok := read(out, "d/a.tmp"); ok {
				t.Fatalf("%s: the durable rename was undone", desc)
			}
			b, bok := read(out, "d/b")
			_, oldOK := read(out, "old")
			switch loss {
			case LoseAll:
				if a != "synced" || bok || !oldOK {
					t.Fatalf("%s: a %q, b present %v, old present %v", desc, a, bok, oldOK)
				}
			case KeepAll:
				if a != "synced+unsynced" || b != "b data" || oldOK {
					t.Fatalf("%s: a %q, b %q, old present %v", desc, a, b, oldOK)
				}
			}
			if bok && b != "b data" {
				t.Fatalf("%s: b holds %q: its data was synced", desc, b)
			}
			if !bok && !oldOK {
				t.Fatalf("%s: removing old survived but the earlier creation of b did not: names survive in order", desc)
			}
		}
	}

	// A failed sync makes nothing durable.
	ff := NewFaultFS(p)
	h, err := ff.Open(filepath.Join(dir, "a"))
	mustDo(t, err)
	defer h.Close()
	_, err = h.WriteAt([]byte("!"), 0)
	mustDo(t, err)
	ff.SetFault(Fail(OpSync, os.ErrInvalid))
	if h.Sync() == nil {
		t.Fatal("hooked sync succeeded")
	}
	out := t.TempDir()
	_, err = p.Snapshot().Write(out, LoseAll, rng)
	mustDo(t, err)
	if a, _ := read(out, "d/a"); a != "synced" {
		t.Fatalf("after a failed sync: d/a = %q", a)
	}
}

// TestPowerImageDeterministic: the same image written with the same seed
// gives the same tree, so a test can open one copy and continue from
// another.
func TestPowerImageDeterministic(t *testing.T) {
	root := t.TempDir()
	p, err := NewPowerFS(nil, root)
	mustDo(t, err)
	for i := range 5 {
		f, err := p.Create(filepath.Join(root, string(rune('a'+i))), 0o600)
		mustDo(t, err)
		mustDo(t, f.Allocate(4096))
		_, err = f.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 3000), 100)
		mustDo(t, err)
		f.Close()
	}
	img := p.Snapshot()
	for _, loss := range Losses() {
		a, b := t.TempDir(), t.TempDir()
		_, err := img.Write(a, loss, rand.New(rand.NewPCG(7, 7)))
		mustDo(t, err)
		_, err = img.Write(b, loss, rand.New(rand.NewPCG(7, 7)))
		mustDo(t, err)
		for i := range 5 {
			x, _ := os.ReadFile(filepath.Join(a, string(rune('a'+i))))
			y, _ := os.ReadFile(filepath.Join(b, string(rune('a'+i))))
			if !bytes.Equal(x, y) {
				t.Fatalf("%v: file %d differs between two writes with the same seed", loss, i)
			}
		}
	}
}
