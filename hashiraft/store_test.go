package hashiraft

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aof2/aof2/aof"
)

// testConfig keeps segments small, so tests cross segment boundaries.
func testConfig() Config {
	return Config{Log: aof.Config{SegmentSize: 64 << 10}}
}

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func entry(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: 1 + i/10, Type: raft.LogCommand, Data: fmt.Appendf(nil, "cmd-%d", i), AppendedAt: time.Unix(int64(i), 0)}
}

func entries(from, to uint64) []*raft.Log {
	var ls []*raft.Log
	for i := from; i <= to; i++ {
		ls = append(ls, entry(i))
	}
	return ls
}

// checkRange asserts the store holds exactly the entries [first, last] as
// entry() makes them (first == 0: empty).
func checkRange(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("bounds [%d, %d], want [%d, %d]", f, l, first, last)
	}
	if first == 0 {
		return
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if !sameLog(&got, entry(i)) {
			t.Fatalf("GetLog(%d) = %+v", i, got)
		}
	}
	var got raft.Log
	for _, miss := range []uint64{0, first - 1, last + 1} {
		if err := s.GetLog(miss, &got); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) = %v, want raft.ErrLogNotFound", miss, err)
		}
	}
}

// Index edges: an empty store, a first append at an arbitrary index,
// prefix, suffix, whole, middle and disjoint deletes, each checked before
// and after a reopen.
func TestIndexEdges(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	defer func() { s.Close() }()
	reopen := func() {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openT(t, dir)
	}
	step := func(name string, first, last uint64, do func() error) {
		t.Helper()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkRange(t, s, first, last)
		reopen()
		checkRange(t, s, first, last)
	}
	nop := func() error { return nil }
	step("empty", 0, 0, nop)
	step("empty store, deletes", 0, 0, func() error { return s.DeleteRange(1, 10) })
	step("first append at 1000", 1000, 1099, func() error { return s.StoreLogs(entries(1000, 1099)) })
	step("one more", 1000, 1100, func() error { return s.StoreLog(entry(1100)) })
	step("prefix", 1050, 1100, func() error { return s.DeleteRange(1000, 1049) })
	step("prefix from before the front", 1060, 1100, func() error { return s.DeleteRange(1, 1059) })
	step("suffix", 1060, 1089, func() error { return s.DeleteRange(1090, 1100) })
	step("suffix past the end", 1060, 1079, func() error { return s.DeleteRange(1080, 5000) })
	step("after the suffix", 1060, 1090, func() error { return s.StoreLogs(entries(1080, 1090)) })
	step("disjoint before", 1060, 1090, func() error { return s.DeleteRange(1, 1059) })
	step("disjoint after", 1060, 1090, func() error { return s.DeleteRange(1091, 2000) })
	step("inverted", 1060, 1090, func() error { return s.DeleteRange(1080, 1070) })
	if err := s.DeleteRange(1061, 1089); !errors.Is(err, ErrMiddleRange) {
		t.Fatalf("middle delete: %v", err)
	}
	checkRange(t, s, 1060, 1090)
	step("whole", 0, 0, func() error { return s.DeleteRange(1060, 1090) })
	step("after whole, continue lower", 500, 510, func() error { return s.StoreLogs(entries(500, 510)) })
	step("whole, wider range", 0, 0, func() error { return s.DeleteRange(1, 1<<40) })
	step("after whole, continue higher", 1<<40, 1<<40+5, func() error { return s.StoreLogs(entries(1<<40, 1<<40+5)) })
	step("whole suffix from the front", 0, 0, func() error { return s.DeleteRange(1<<40, 1<<41) })
	step("restart at 1", 1, 3, func() error { return s.StoreLogs(entries(1, 3)) })
}

// StoreLogs never leaves a hole nor overwrites: a batch that does not
// continue the log, or skips an index, is ErrNotContiguous and stores
// nothing.
func TestStoreLogsRejectsHolesAndOverlaps(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	if err := s.StoreLogs(entries(10, 19)); err != nil {
		t.Fatal(err)
	}
	bad := map[string][]*raft.Log{
		"gap":        entries(21, 22),
		"overlap":    entries(15, 25),
		"repeat":     {entry(20), entry(20)},
		"skip":       {entry(20), entry(22)},
		"index zero": {{Index: 0}},
	}
	for name, ls := range bad {
		if err := s.StoreLogs(ls); !errors.Is(err, ErrNotContiguous) {
			t.Fatalf("%s: %v, want ErrNotContiguous", name, err)
		}
		checkRange(t, s, 10, 19)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatal(err)
	}
}

// raft compares GetLog's error with ==: every miss is raft.ErrLogNotFound
// itself, never a wrapped copy.
func TestGetLogMissIsErrLogNotFoundItself(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	var l raft.Log
	for _, i := range []uint64{0, 1, 2, 1 << 40} {
		if err := s.GetLog(i, &l); err != raft.ErrLogNotFound {
			t.Fatalf("empty store, GetLog(%d) = %v", i, err)
		}
	}
	if err := s.StoreLogs(entries(5, 9)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(5, 6); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 4, 5, 6, 10, 1 << 40} {
		if err := s.GetLog(i, &l); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) = %v", i, err)
		}
	}
}

// A record that does not decode as the entry asked for is an error
// wrapping aof.ErrCorrupt, never data and never ErrLogNotFound.
func TestGetLogCorruptEntryIsAnError(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	if err := s.StoreLogs(entries(1, 3)); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Written behind the store's back, through the log itself.
	if _, err := s.Log().Append(ctx, []byte{entryVersion, 0xFF}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Log().Append(ctx, appendEntry(nil, entry(99), 0)); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{4, 5} {
		keep := raft.Log{Index: 77}
		err := s.GetLog(i, &keep)
		if err == nil || err == raft.ErrLogNotFound || !errors.Is(err, aof.ErrCorrupt) {
			t.Fatalf("GetLog(%d) = %v, want an error wrapping ErrCorrupt", i, err)
		}
		if keep.Index != 77 {
			t.Fatalf("GetLog(%d) wrote %+v", i, keep)
		}
	}
}

// Strict recovery: a flipped byte in the middle of the log fails Open with
// an error wrapping aof.ErrCorrupt that says to wipe the node.
func TestOpenRefusesCorruptLog(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if err := s.StoreLogs(entries(1, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := filepath.Glob(filepath.Join(dir, LogDir, "segments", "*"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	flipped := false
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte("cmd-50")); i >= 0 {
			b[i] ^= 0x01
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}
			flipped = true
		}
	}
	if !flipped {
		t.Fatal("entry 50 not found in the segments")
	}
	_, err = Open(dir, testConfig())
	if !errors.Is(err, aof.ErrCorrupt) || !strings.Contains(err.Error(), "wipe the node and let it rejoin") {
		t.Fatalf("Open of a corrupt log: %v", err)
	}
	if _, err := Open(dir, Config{Log: aof.Config{Recovery: aof.RecoverRepair}}); !errors.Is(err, aof.ErrInvalidConfig) {
		t.Fatalf("Open in repair mode: %v", err)
	}
}

// The commit index is stored with the next StoreLogs' entries, recovered
// from the last entry at Open, never above the last index, and follows a
// suffix delete back to the entry now last.
func TestCommitIndexAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	defer func() { s.Close() }()
	get := func(want uint64) {
		t.Helper()
		got, err := s.GetCommitIndex()
		if err != nil || got != want {
			t.Fatalf("GetCommitIndex = %d, %v; want %d", got, err, want)
		}
	}
	reopen := func() {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openT(t, dir)
	}
	get(0)
	s.StageCommitIndex(5)
	get(0) // staged, not stored
	if err := s.StoreLogs(entries(1, 10)); err != nil {
		t.Fatal(err)
	}
	get(5)
	s.StageCommitIndex(9)
	get(5)
	reopen()
	get(5) // 9 was never stored with an entry
	s.StageCommitIndex(100)
	if err := s.StoreLogs(entries(11, 12)); err != nil {
		t.Fatal(err)
	}
	get(12) // clamped to the last index
	reopen()
	get(12)
	if err := s.DeleteRange(11, 12); err != nil {
		t.Fatal(err)
	}
	get(5) // entry 10, now last, was stored with 5
	reopen()
	get(5)
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	get(0)
	reopen()
	get(0)
}

// GetLog runs while StoreLogs appends and DeleteRange drops prefixes:
// every read is the entry asked for or raft.ErrLogNotFound.
func TestConcurrentGetLogStoreLogsAndPrefixDeletes(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	const total = 3000
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	wg.Go(func() {
		defer close(done)
		for i := uint64(1); i <= total; i += 10 {
			if err := s.StoreLogs(entries(i, i+9)); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if last > first+200 {
				if err := s.DeleteRange(first, last-100); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	for r := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			var l raft.Log
			for {
				select {
				case <-done:
					return
				default:
				}
				last, _ := s.LastIndex()
				i := 1 + rng.Uint64N(last+1)
				err := s.GetLog(i, &l)
				switch {
				case err == raft.ErrLogNotFound:
				case err != nil:
					errs <- fmt.Errorf("GetLog(%d): %w", i, err)
					return
				case !sameLog(&l, entry(i)):
					errs <- fmt.Errorf("GetLog(%d) = %+v", i, l)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	last, _ := s.LastIndex()
	if last != total {
		t.Fatalf("last index %d", last)
	}
}

// StoreLogs makes a batch durable with one sync: with no background
// flusher, each batch of 64 entries costs exactly one more fsync, on the
// caller's goroutine.
func TestStoreLogsOneSyncPerBatch(t *testing.T) {
	cfg := Config{Log: aof.Config{SegmentSize: 1 << 20, NoBackgroundFlush: true}}
	s, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.StoreLogs(entries(1, 64)); err != nil {
		t.Fatal(err)
	}
	for b := uint64(1); b < 10; b++ {
		before := s.Log().Metrics()
		if err := s.StoreLogs(entries(1+64*b, 64*(b+1))); err != nil {
			t.Fatal(err)
		}
		after := s.Log().Metrics()
		if n := after.Fsyncs - before.Fsyncs; n != 1 {
			t.Fatalf("batch %d: %d fsyncs", b, n)
		}
		if after.DurableSeq != 64*(b+1)+1 {
			t.Fatalf("batch %d: durable frontier %d when StoreLogs returned", b, after.DurableSeq)
		}
	}
}
