package aof

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs/vfstest"
)

// Power-loss simulation. A log runs over a vfstest.PowerFS, which models what
// the disk would hold if the machine lost power at any moment (see its doc
// comment for the model). At cut points chosen at random among the file
// system operations (appends, flushes, rollovers, seals, Close, and the
// recovery of the previous image), the model is captured; each capture is
// turned into one directory per vfstest.Loss (undurable data lost, kept,
// zeroed, torn, scrambled by sector) and opened. The checks:
//
//   - Open succeeds in strict mode: a power-loss image is not corruption;
//   - every record acknowledged durable before the cut (FlushUntil or Sync
//     returned nil, for it or a later record) is there;
//   - every record served (Read, and a Reader at both levels) is
//     byte-identical to the one appended with that sequence number, and
//     sequence numbers are dense from 1;
//   - after a clean Close and another Open, the log is the same.
//
// Every other scenario runs with retention on (RetainBytes), so that
// dropped segments are recycled (Config.RecycleSegments) many times, and
// records below the front may go: there, "every acknowledged record" is
// every one from the log's first on, and a record a recycled file held in
// an earlier life must never be served.
//
// One image of each generation is opened again under a new PowerFS for
// the next generation, so power is also lost during recovery and right
// after it, and acknowledged records must survive every later cut.
const (
	// powerCutsEnv overrides the number of scenarios (each: three
	// generations, several cut points each, every Loss for each).
	powerCutsEnv = "AOF2_POWERLOSS_CUTS"
	// powerSeedEnv fixes the seed, to reproduce a failure.
	powerSeedEnv = "AOF2_POWERLOSS_SEED"
	// powerKeepEnv names a directory where the image being checked is
	// kept, as it was before Open: after a failure, the failing one.
	powerKeepEnv = "AOF2_POWERLOSS_KEEP"

	powerDefaultScenarios = 2
	powerGenerations      = 3
	powerSnapsPerGen      = 6
	powerWriters          = 3
)

// powerTotals adds up what the scenarios checked.
type powerTotals struct {
	scenarios, cuts, images int
	acked                   uint64 // acknowledged records checked, summed over images
	served                  uint64 // records read back, summed over images
	recycled                uint64 // segment files reused, summed over generations
	early                   uint64 // early rollovers, summed over generations
	lost, corrupt           int
	truncations             int
	byOp                    map[string]int
}

// powerSnap is one cut point: the model, and what was acknowledged then.
type powerSnap struct {
	img      *vfstest.PowerImage
	op       int
	name     string
	maxAcked uint64 // every record below it was acknowledged durable
}

// powerSize picks a payload size: mostly small, some large enough that a
// 64 KiB segment holds only a few.
func powerSize(r *rand.Rand) int {
	switch n := r.IntN(100); {
	case n < 55:
		return r.IntN(200)
	case n < 90:
		return r.IntN(4 << 10)
	default:
		return r.IntN(30 << 10)
	}
}

func TestPowerLoss(t *testing.T) {
	scenarios := powerDefaultScenarios
	if s := os.Getenv(powerCutsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", powerCutsEnv, s)
		}
		scenarios = n
	}
	if testing.Short() {
		scenarios = 1
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(powerSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", powerSeedEnv, s, err)
		}
	}
	t.Logf("seed %d (%s=%d reproduces), %d scenarios", seed, powerSeedEnv, seed, scenarios)
	tot := powerTotals{byOp: map[string]int{}}
	for sc := range scenarios {
		if t.Failed() {
			break
		}
		powerScenario(t, seed+uint64(sc)*0x9e3779b97f4a7c15, sc%2 == 1, &tot)
		tot.scenarios++
	}
	if scenarios > 1 && !t.Failed() && tot.recycled == 0 {
		t.Error("no scenario recycled a segment file")
	}
	// Early rollovers need a generation with prewriting whose prewrite
	// finishes before its appends do: 0 in 2 scenarios happens, in 10
	// (a long run) it would mean they stopped.
	if scenarios >= 10 && !t.Failed() && tot.early == 0 {
		t.Error("no scenario rolled over early")
	}
	t.Logf("totals: %d scenarios, %d cut points, %d images opened, %d acknowledged records checked, %d records served and verified, "+
		"%d acknowledged lost, %d corrupt served, %d truncations, %d segment files recycled, %d early rollovers; cut points by operation %v",
		tot.scenarios, tot.cuts, tot.images, tot.acked, tot.served, tot.lost, tot.corrupt, tot.truncations, tot.recycled, tot.early, tot.byOp)
}

// powerScenario runs the generations of one scenario, with retention (and
// so recycled segments) if retain.
func powerScenario(t *testing.T, seed uint64, retain bool, tot *powerTotals) {
	rng := rand.New(rand.NewPCG(seed, 1))
	root := t.TempDir()
	// known[seq] is the xxhash64 of record seq as verified in the image
	// the generation starts from; known[0] is unused.
	known := []uint64{0}
	var maxAcked uint64
	for gen := range powerGenerations {
		cfg := powerConfig(rng, retain)
		// Every other generation runs on prewritten segments: their
		// zero writes and syncs are cut points too.
		cfg.NoPrewrite = gen%2 == 1
		where := fmt.Sprintf("seed %d generation %d (%+v)", seed, gen, cfg)
		snaps, appended, m := powerRun(t, root, cfg, rng, maxAcked, where)
		tot.recycled += m.RecycledSegments
		tot.early += m.EarlyRollovers
		if t.Failed() {
			return
		}
		// Check every cut point under every loss.
		expect := func(seq uint64) (uint64, bool) {
			if seq < uint64(len(known)) {
				return known[seq], true
			}
			sum, ok := appended[seq]
			return sum, ok
		}
		chain := rng.IntN(len(snaps))
		chainLoss := vfstest.Losses()[rng.IntN(len(vfstest.Losses()))]
		var next []uint64
		var nextRoot string
		for i, sn := range snaps {
			tot.cuts++
			tot.byOp[sn.name]++
			for _, loss := range vfstest.Losses() {
				imgSeed := rng.Uint64()
				img := t.TempDir()
				desc, err := sn.img.Write(img, loss, rand.New(rand.NewPCG(imgSeed, 2)))
				if err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("%s, cut after op %d (%s), %s", where, sn.op, sn.name, desc)
				if keep := os.Getenv(powerKeepEnv); keep != "" {
					// Keep a pristine copy: Open changes the image.
					os.RemoveAll(keep)
					if err := os.MkdirAll(keep, 0o755); err != nil {
						t.Fatal(err)
					}
					if _, err := sn.img.Write(keep, loss, rand.New(rand.NewPCG(imgSeed, 2))); err != nil {
						t.Fatal(err)
					}
				}
				sums := powerVerify(t, filepath.Join(img, "log"), cfg, expect, sn.maxAcked, what, tot)
				if t.Failed() {
					return
				}
				if i == chain && loss == chainLoss {
					// The next generation starts from an unopened
					// copy of this very image.
					nextRoot = t.TempDir()
					if _, err := sn.img.Write(nextRoot, loss, rand.New(rand.NewPCG(imgSeed, 2))); err != nil {
						t.Fatal(err)
					}
					next = sums
					maxAcked = sn.maxAcked
					if keep := os.Getenv(powerKeepEnv); keep != "" {
						base := fmt.Sprintf("%s-base-gen%d", keep, gen+1)
						os.RemoveAll(base)
						if err := os.MkdirAll(base, 0o755); err != nil {
							t.Fatal(err)
						}
						if _, err := sn.img.Write(base, loss, rand.New(rand.NewPCG(imgSeed, 2))); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
		known, root = next, nextRoot
	}
}

// powerConfig draws the Config of a generation, with retention (and so
// recycled segments) if retain.
func powerConfig(rng *rand.Rand, retain bool) Config {
	cfg := Config{
		SegmentSize:       64 << 10,
		FlushWatermark:    int64(4<<10) << rng.IntN(6),
		FlushInterval:     time.Duration(1+rng.IntN(8)) * time.Millisecond,
		NoBackgroundFlush: rng.IntN(4) == 0,
	}
	if retain {
		cfg.RetainBytes, cfg.RecycleSegments = 128<<10, 1+rng.IntN(2)
	}
	return cfg
}

// powerRun runs one generation: it opens the log under root/log over a
// PowerFS, appends from several goroutines with random sizes, flushes some
// records and acknowledges them, takes snapshots at random operations
// (recovery and Close included), and returns them with the xxhash64 of
// every record appended, by sequence number, and the number of segment
// files it recycled.
func powerRun(t *testing.T, root string, cfg Config, rng *rand.Rand, prevAcked uint64, where string) ([]powerSnap, map[uint64]uint64, Metrics) {
	pfs, err := vfstest.NewPowerFS(nil, root)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		appended = map[uint64]uint64{}
		maxAcked = prevAcked
		snaps    []powerSnap
	)
	hookRng := rand.New(rand.NewPCG(rng.Uint64(), 3))
	nextCut := 1 + hookRng.IntN(40)
	pfs.SetOpHook(func(n int, op, path string, snapshot func() *vfstest.PowerImage) {
		if len(snaps) >= powerSnapsPerGen {
			return
		}
		// Rollovers (rename), new segments made durable (syncdir),
		// prewrites (writeback) and seals get extra cut points.
		extra := (op == "rename" || op == "syncdir" || op == "allocate" || op == "writeback") && hookRng.IntN(4) == 0
		if n < nextCut && !extra {
			return
		}
		if n >= nextCut {
			nextCut = n + 1 + hookRng.IntN(120)
		}
		mu.Lock()
		s := powerSnap{op: n, name: op, maxAcked: maxAcked}
		mu.Unlock()
		s.img = snapshot()
		snaps = append(snaps, s)
	})
	// Early rollovers after a few syncs, so that small generations make
	// them (with prewriting on); prewrites in four chunks, so that cuts
	// fall after chunks written back but not synced.
	l, err := Open(filepath.Join(root, "log"), cfg, WithFS(pfs), withEarlySyncs(int64(1+rng.IntN(8))), withPrewriteChunk(int(cfg.SegmentSize/4)))
	if err != nil {
		t.Fatalf("%s: Open: %v", where, err)
	}
	ack := func(last uint64) {
		mu.Lock()
		maxAcked = max(maxAcked, last)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	errs := make(chan error, powerWriters)
	for g := range powerWriters {
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(g)))
		n := 20 + r.IntN(60)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				var ids []RecordID
				var sums []uint64
				if r.IntN(10) == 0 {
					batch := make([][]byte, 2+r.IntN(4))
					for j := range batch {
						batch[j] = make([]byte, powerSize(r))
						fillRand(r, batch[j])
						sums = append(sums, xxhash.Sum64(batch[j]))
					}
					var err error
					if ids, err = l.AppendBatch(ctx, batch); err != nil {
						errs <- fmt.Errorf("AppendBatch: %w", err)
						return
					}
				} else {
					p := make([]byte, powerSize(r))
					fillRand(r, p)
					id, err := l.Append(ctx, p)
					if err != nil {
						errs <- fmt.Errorf("Append: %w", err)
						return
					}
					ids, sums = []RecordID{id}, []uint64{xxhash.Sum64(p)}
				}
				mu.Lock()
				for j, id := range ids {
					appended[id.Seq] = sums[j]
				}
				mu.Unlock()
				last := ids[len(ids)-1]
				switch r.IntN(6) {
				case 0, 1:
					if err := l.FlushUntil(ctx, last); err != nil {
						errs <- fmt.Errorf("FlushUntil(%d): %w", last.Seq, err)
						return
					}
					ack(last.Seq + 1)
				case 2:
					if err := l.Sync(ctx); err != nil {
						errs <- fmt.Errorf("Sync: %w", err)
						return
					}
					ack(last.Seq + 1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%s: %v", where, err)
	}
	m := l.Metrics()
	err = l.Close()
	if err != nil {
		t.Errorf("%s: Close: %v", where, err)
	}
	// The end (after Close) is a cut point too: with everything durable,
	// no loss may lose anything.
	mu.Lock()
	if err == nil {
		snaps = append(snaps, powerSnap{img: pfs.Snapshot(), op: pfs.Ops(), name: "closed", maxAcked: endOf(appended, maxAcked)})
	}
	mu.Unlock()
	pfs.SetOpHook(nil)
	return snaps, appended, m
}

// endOf returns one past the largest key of m, or def if m is empty.
func endOf(m map[uint64]uint64, def uint64) uint64 {
	end := def
	for k := range m {
		end = max(end, k+1)
	}
	return end
}

// powerVerify opens the image of a log at dir and checks it (see the
// comment at the top of this file). It returns the xxhash64 of each record
// found, by sequence number (index 0 unused).
func powerVerify(t *testing.T, dir string, cfg Config, expect func(uint64) (uint64, bool), maxAcked uint64, what string, tot *powerTotals) []uint64 {
	t.Helper()
	tot.images++
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		// The log's directory itself never became durable.
		if maxAcked > 1 {
			t.Errorf("%s: the log directory is gone, but records below %d were acknowledged", what, maxAcked)
			tot.lost += int(maxAcked - 1)
		}
		return []uint64{0}
	}
	// The image is checked with retention off, so the front stays where
	// recovery put it (what recovery removes does not depend on it: the
	// FRONT mark says); the pool is kept the same.
	retained := cfg.RetainBytes > 0
	cfg.RetainBytes = 0
	l, err := Open(dir, cfg)
	if err != nil {
		t.Errorf("%s: Open of a power-loss image failed: %v", what, err)
		return nil
	}
	rep := l.Recovery()
	tot.truncations += len(rep.Truncations)
	if maxAcked > 0 {
		tot.acked += maxAcked - 1
	}
	// Retention may drop records from the front (never past the end);
	// without it, the log starts at 1.
	first := rep.FirstSeq
	if first != 1 && !retained || first < 1 || first > rep.NextSeq {
		t.Errorf("%s: FirstSeq %d (next %d)", what, rep.FirstSeq, rep.NextSeq)
	}
	if rep.NextSeq < maxAcked {
		t.Errorf("%s: records %d..%d were acknowledged durable, but the log ends before %d (recovery %+v)", what, rep.NextSeq, maxAcked-1, rep.NextSeq, rep)
		tot.lost += int(maxAcked - rep.NextSeq)
	}
	sums := make([]uint64, first) // below the front: gone, 0
	bad := func(format string, args ...any) {
		if tot.corrupt++; tot.corrupt <= 10 {
			t.Errorf("%s: "+format, append([]any{what}, args...)...)
		}
	}
	var buf []byte
	for seq := first; seq < rep.NextSeq; seq++ {
		rec, err := l.Read(seq, buf[:0])
		if err != nil {
			bad("Read(%d) of [%d, %d): %v", seq, first, rep.NextSeq, err)
			sums = append(sums, 0)
			continue
		}
		buf = rec.Payload
		sum := xxhash.Sum64(rec.Payload)
		sums = append(sums, sum)
		if want, ok := expect(seq); !ok || want != sum || rec.Seq != seq {
			bad("Read(%d): seq %d, %d bytes that are not the record appended as seq %d (appended: %v)", seq, rec.Seq, len(rec.Payload), seq, ok)
		}
		tot.served++
	}
	if _, err := l.Read(rep.NextSeq, nil); !errors.Is(err, ErrNotFound) {
		bad("Read(NextSeq=%d) = %v, want ErrNotFound", rep.NextSeq, err)
	}
	// Sequential readers: Written at once, Durable after a Sync (which
	// rewrites what recovery could not prove durable).
	readAllSums := func(level Level) {
		seq := first
		r, err := l.NewReader(seq, level)
		if err != nil {
			bad("NewReader(%d, %v): %v", seq, level, err)
			return
		}
		for rec, err := range r.All() {
			if err != nil {
				bad("%v reader at seq %d: %v", level, seq, err)
				return
			}
			if rec.Seq != seq || seq >= uint64(len(sums)) || xxhash.Sum64(rec.Payload) != sums[seq] {
				bad("%v reader: record %d is seq %d, or differs from Read", level, seq, rec.Seq)
				return
			}
			seq++
		}
		if seq != rep.NextSeq {
			bad("%v reader stopped at %d, want %d", level, seq, rep.NextSeq)
		}
	}
	readAllSums(Written)
	if err := l.Sync(ctx); err != nil {
		bad("Sync after recovery: %v", err)
	}
	readAllSums(Durable)
	if err := l.Close(); err != nil {
		bad("Close after recovery: %v", err)
	}
	// A clean Close then Open gives the same log, with nothing to cut.
	l, err = Open(dir, cfg)
	if err != nil {
		t.Errorf("%s: reopen after recovery and Close: %v", what, err)
		return nil
	}
	defer l.Close()
	if r2 := l.Recovery(); r2.NextSeq != rep.NextSeq || len(r2.Truncations) != 0 || r2.BacklogBytes != 0 {
		bad("reopen after a clean Close: NextSeq %d (was %d), truncations %+v, backlog %d", r2.NextSeq, rep.NextSeq, r2.Truncations, r2.BacklogBytes)
	}
	return sums
}

// TestRegressionNewLogDirNotDurable: Open created DIR and DIR/segments with
// MkdirAll and never synced their parents. The flusher syncs segments/
// (making the segment files' names durable) but a directory's own name
// lives in its parent: on a file system that does not commit every
// pending name with any fsync, a power cut could lose the whole log
// directory, with records FlushUntil had acknowledged.
func TestRegressionNewLogDirNotDurable(t *testing.T) {
	root := t.TempDir()
	pfs, err := vfstest.NewPowerFS(nil, root)
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
	if _, err := img.Write(out, vfstest.LoseAll, rand.New(rand.NewPCG(1, 1))); err != nil {
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
	fs := vfstest.NewFaultFS(nil)
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

// TestReviewFrontAtEndPowerLoss: TruncateFront(NextSeq()) right after a
// rollover removes every sealed segment and leaves only the active one,
// which holds no record: its header was written but never synced (a
// segment's first sync comes with its first record). A power loss then
// keeps the directory entry and loses the header. Recovery removes the
// headerless file and, with no segment left, used to start a new log at
// seq 1 instead of at the durable front.
func TestReviewFrontAtEndPowerLoss(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 1001)
	// TruncateBack leaves a fresh, empty active segment; TruncateFront
	// to its first sequence number then deletes every other segment.
	if err := l.TruncateBack(ctx, 900); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateFront(ctx, 901); err != nil {
		t.Fatal(err)
	}
	files := segmentFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("segment files %v, want only the empty active one", files)
	}
	// The power loss, with the log still open: the empty segment's
	// header was never synced (nothing was flushed into it) and is gone.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	path := filepath.Join(crashed, "segments", files[0])
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, segment.HeaderSize), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l2 := openT(t, crashed, retentionCfg)
	defer l2.Close()
	if first, n := l2.FirstSeq(), l2.NextSeq(); first != 901 || n != 901 {
		t.Fatalf("after a power loss: log [%d, %d), want [901, 901)", first, n)
	}
}
