package aof

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/aof2/aof2/inspect"
	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
	"github.com/aof2/aof2/vfs/vfstest"
)

// recycleConfig is a log on small segments with retention on, so that
// dropped segments are recycled every few segments.
func recycleConfig() Config {
	return Config{SegmentSize: 64 << 10, RetainBytes: 128 << 10, RecycleSegments: 2}
}

// seqPayload is the payload of record seq in the recycling tests: n
// bytes, the same size for every record, so that frames of one life sit
// at the offsets of the frames of another.
func seqPayload(seq uint64, n int) []byte {
	p := bytes.Repeat([]byte{'.'}, n)
	copy(p, fmt.Sprintf("record %08d", seq))
	return p
}

// appendUntilRecycled appends durable records of n bytes until the active
// segment is a recycled file holding at least k records, and returns the
// last record's id. With front, it truncates the front to the active
// segment after each record (the log's own retention may do it instead).
func appendUntilRecycled(t *testing.T, l *Log, n, k int, front bool) RecordID {
	t.Helper()
	ctx := context.Background()
	for i := 0; ; i++ {
		id := mustAppend(t, l, seqPayload(l.NextSeq(), n))
		if err := l.FlushUntil(ctx, id); err != nil {
			t.Fatal(err)
		}
		a := l.active.Load()
		if front {
			if err := l.TruncateFront(ctx, a.Header().BaseSeq); err != nil {
				t.Fatal(err)
			}
		}
		if _, count := a.Reserved(); a.Recycled() && count >= uint64(k) {
			return id
		}
		if i > 10000 {
			t.Fatal("no recycled active segment after 10,000 records")
		}
	}
}

// staleLife writes into the segment file at path, from offset end (the
// end of its records), what an earlier life of the file with another salt
// can have left there: frames for the sequence numbers from next on, at
// the offsets records of n bytes take, each vouching that every byte
// before it was durable, valid under the old salt; then a footer claiming
// them all, and a trailer pointing at it.
func staleLife(t *testing.T, path string, end int64, next uint64, n int) (stale int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := segment.DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	old := hdr.Salt ^ 0x5a5a5a5a5a5a5a5a
	limit := segment.DataLimit(hdr.Size)
	off, seq := end, next
	for off+segment.FrameSize(n) <= limit-8<<10 {
		p := seqPayload(seq, n)
		copy(p, "STALE!")
		fr := b[off : off+segment.FrameSize(n)]
		clear(fr)
		w := segment.EncodeFrame(fr, p, seq, 1, off, old)
		copy(fr[8:16], w[:])
		off += segment.FrameSize(n)
		seq++
		stale++
	}
	count := seq - hdr.BaseSeq
	ft := segment.Footer{Count: count, FirstSeq: hdr.BaseSeq, LastSeq: hdr.BaseSeq + count - 1, DataEnd: off}
	fb := make([]byte, segment.FooterSize(0))
	segment.EncodeFooter(fb, ft, old)
	copy(b[off:], fb)
	segment.EncodeTrailer(b[hdr.Size-segment.TrailerSize:], segment.Trailer{FooterOffset: off, FooterLen: int64(len(fb))}, old)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return stale
}

// checkNoStale reads every record a reader gives and fails on a stale one
// or one past last; it returns the last sequence number read.
func checkNoStale(t *testing.T, what string, recs func(yield func(seq uint64, payload []byte) bool), last uint64) uint64 {
	t.Helper()
	var got uint64
	recs(func(seq uint64, payload []byte) bool {
		if bytes.HasPrefix(payload, []byte("STALE!")) || seq > last {
			t.Fatalf("%s returned record %d (%q) of a previous life; the log ends at %d", what, seq, payload[:16], last)
		}
		if want := seqPayload(seq, len(payload)); !bytes.Equal(payload, want) {
			t.Fatalf("%s: record %d: %q", what, seq, payload[:16])
		}
		got = seq
		return true
	})
	return got
}

// TestRecycledStaleFramesNeverReturned: a recycled file still holds what
// its previous life wrote past where the new life's records end. Here
// that is the worst case: valid frames under the old salt, with exactly
// the sequence numbers and offsets the new life gives its next records
// (as after TruncateBack or Reset), each vouching for the bytes before
// it, then an old footer and trailer claiming them all. Recovery (after a
// kill -9: no DURABLE mark), a Reader of the log, and inspect's Source,
// Reader and Verify must never return them nor call them corruption: the
// log ends at its last record, and goes on from there.
func TestRecycledStaleFramesNeverReturned(t *testing.T) {
	const n = 1000
	dir := t.TempDir()
	cfg := Config{SegmentSize: 64 << 10} // default RecycleSegments
	l := openT(t, dir, cfg)
	last := appendUntilRecycled(t, l, n, 3, true)
	image := crashCopy(t, dir)
	path := segPath(t, image, l.active.Load().Header().Index)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	stale := staleLife(t, path, last.Offset+segment.FrameSize(n), last.Seq+1, n)
	if stale < 10 {
		t.Fatalf("only %d stale frames written", stale)
	}
	checkToolsSkipStale(t, image, path, cfg, last)
	checkRecoverySkipsStale(t, image, cfg, last, n)
}

// checkToolsSkipStale: the read-only tools (inspect's Verify, Source and
// a reader of it) see the log of image as ending at last, with no
// corruption in the data of the segment file at path, whose stale
// frames staleLife wrote.
func checkToolsSkipStale(t *testing.T, image, path string, cfg Config, last RecordID) {
	t.Helper()
	d, err := inspect.List(vfs.Default, image)
	if err != nil {
		t.Fatal(err)
	}
	// Verify checks the records' checksums: it finds every record of the
	// log and no other. The stale trailer fails its checks, as a damaged
	// one does, and Verify reports it (a real recycled file has none:
	// Recycle zeroes the trailer before the file's new life), but nothing
	// in the data.
	v := inspect.Verify(d, nil)
	if want := last.Seq - d.FirstRetained() + 1; v.Records != want {
		t.Fatalf("inspect.Verify verified %d records, the log holds %d", v.Records, want)
	}
	for _, p := range v.Problems {
		if p.Corrupt() && (p.File != filepath.Base(path) || p.Offset != cfg.SegmentSize-segment.TrailerSize) {
			t.Fatalf("inspect.Verify calls a previous life's bytes corruption: %s at %d: %v", p.File, p.Offset, p.Err)
		}
	}
	src, err := inspect.OpenSource(vfs.Default, image)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	first := d.FirstRetained()
	r, err := reader.New(src, first, reader.Written)
	if err != nil {
		t.Fatal(err)
	}
	got := checkNoStale(t, "inspect's reader", func(yield func(uint64, []byte) bool) {
		for r.Next() {
			rec := r.Record()
			yield(rec.Seq, rec.Payload)
		}
	}, last.Seq)
	if err := r.Err(); err != nil {
		t.Fatalf("inspect's reader: %v", err)
	}
	r.Close()
	if got != last.Seq {
		t.Fatalf("inspect's reader ended at %d, the log at %d", got, last.Seq)
	}
}

// checkRecoverySkipsStale: recovery of image, whose last record is last
// (n-byte records), and the readers of the recovered log, never return a
// stale frame, and the log goes on after last.
func checkRecoverySkipsStale(t *testing.T, image string, cfg Config, last RecordID, n int) {
	t.Helper()
	ctx := context.Background()
	l2, err := Open(image, cfg)
	if err != nil {
		t.Fatalf("Open with a previous life's frames past the tail: %v", err)
	}
	defer l2.Close()
	rep := l2.Recovery()
	if rep.NextSeq != last.Seq+1 || l2.NextSeq() != last.Seq+1 {
		t.Fatalf("recovery: next seq %d, want %d: %+v", rep.NextSeq, last.Seq+1, rep)
	}
	if _, err := l2.Read(last.Seq+1, nil); err == nil {
		t.Fatalf("Read(%d) returned a record of a previous life", last.Seq+1)
	}
	lr, err := l2.NewReader(l2.FirstSeq(), Written)
	if err != nil {
		t.Fatal(err)
	}
	got := checkNoStale(t, "the log's reader", func(yield func(uint64, []byte) bool) {
		for rec, err := range lr.All() {
			if err != nil {
				t.Fatalf("reader: %v", err)
			}
			yield(rec.Seq, rec.Payload)
		}
	}, last.Seq)
	lr.Close()
	if got != last.Seq {
		t.Fatalf("the log's reader ended at %d, the log at %d", got, last.Seq)
	}
	// The new life goes on where its records end.
	id := mustAppend(t, l2, seqPayload(last.Seq+1, n))
	if err := l2.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
	if id.Seq != last.Seq+1 || id.Offset != last.Offset+segment.FrameSize(n) {
		t.Fatalf("next record %+v, want seq %d at offset %d", id, last.Seq+1, last.Offset+segment.FrameSize(n))
	}
	checkNoStale(t, "Read", func(yield func(uint64, []byte) bool) {
		for seq := l2.FirstSeq(); seq <= id.Seq; seq++ {
			rec, err := l2.Read(seq, nil)
			if err != nil {
				t.Fatalf("Read(%d): %v", seq, err)
			}
			yield(seq, rec.Payload)
		}
	}, id.Seq)
}

// TestRecyclingKeepsDiskBounded: with retention on, a log recycles
// dropped segments instead of creating files, never keeps more pool files
// than RecycleSegments, and a reopen keeps the pool (up to a smaller
// bound) and never reads pool files as segments.
func TestRecyclingKeepsDiskBounded(t *testing.T) {
	dir := t.TempDir()
	cfg := recycleConfig()
	tt := newTelemetry(t)
	l := openT(t, dir, cfg, tt.opts()...)
	appendUntilRecycled(t, l, 1000, 1, false)
	for range 300 {
		mustAppend(t, l, seqPayload(l.NextSeq(), 1000))
		if err := l.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		if pooled, _ := l.pool.stats(); pooled > cfg.RecycleSegments {
			t.Fatalf("%d files pooled, bound %d", pooled, cfg.RecycleSegments)
		}
	}
	_, taken := l.pool.stats()
	if taken < 3 {
		t.Fatalf("only %d files recycled", taken)
	}
	if m := l.Metrics(); m.RecycledSegments != taken {
		t.Fatalf("Metrics().RecycledSegments = %d, the pool handed out %d", m.RecycledSegments, taken)
	}
	got := tt.collect(t)[aofotel.MetricSegmentsRecycled]
	if sum, ok := got.Data.(metricdata.Sum[int64]); !ok || len(sum.DataPoints) != 1 || uint64(sum.DataPoints[0].Value) != taken {
		t.Fatalf("%s: %+v, want %d", aofotel.MetricSegmentsRecycled, got.Data, taken)
	}
	first, next := l.Bounds()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	pools := func() (names []string) {
		ents, err := os.ReadDir(filepath.Join(dir, segment.SegmentsDir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), segment.PoolSuffix) {
				names = append(names, e.Name())
			}
		}
		return names
	}
	if p := pools(); len(p) > cfg.RecycleSegments {
		t.Fatalf("pool files on disk after Close: %v", p)
	}
	cfg.RecycleSegments = -1 // none: a reopen removes the pool files
	l2 := openT(t, dir, cfg)
	if f, nx := l2.Bounds(); f != first || nx != next {
		t.Fatalf("reopened log holds [%d, %d), want [%d, %d)", f, nx, first, next)
	}
	checkNoStale(t, "Read", func(yield func(uint64, []byte) bool) {
		for seq := first; seq < next; seq++ {
			rec, err := l2.Read(seq, nil)
			if err != nil {
				t.Fatalf("Read(%d): %v", seq, err)
			}
			yield(seq, rec.Payload)
		}
	}, next-1)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if p := pools(); len(p) != 0 {
		t.Fatalf("pool files kept with RecycleSegments < 0: %v", p)
	}
}

// TestRecyclePowerCuts: power is lost at every step of recycling (a
// dropped segment renamed into the pool, the pool header and zeroed
// trailer written and synced, the segment's own header written over it,
// the file renamed to its segment name, the directory synced) and at every
// rename and directory sync around them, under every loss of the power
// model. Each image opens in strict mode with every acknowledged record
// from the front on, and serves only records that were appended (checked
// by powerVerify, as in TestPowerLoss).
func TestRecyclePowerCuts(t *testing.T) {
	root := t.TempDir()
	pfs, err := vfstest.NewPowerFS(nil, root)
	if err != nil {
		t.Fatal(err)
	}
	const maxSnaps = 60
	var (
		mu       sync.Mutex
		maxAcked uint64
		snaps    []powerSnap
		appended = map[uint64]uint64{}
	)
	pfs.SetOpHook(func(n int, op, path string, snapshot func() *vfstest.PowerImage) {
		pool := strings.Contains(path, segment.PoolSuffix)
		mu.Lock()
		defer mu.Unlock()
		if len(snaps) >= maxSnaps || !pool && op != "rename" && op != "syncdir" {
			return
		}
		s := powerSnap{op: n, name: op, maxAcked: maxAcked}
		if pool {
			s.name += " (pool file)"
		}
		s.img = snapshot()
		snaps = append(snaps, s)
	})
	more := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(snaps) < maxSnaps
	}
	cfg := Config{SegmentSize: 64 << 10, RetainBytes: 128 << 10, RecycleSegments: 1}
	l, err := Open(filepath.Join(root, "log"), cfg, WithFS(pfs))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; more() && i < 5000; i++ {
		p := seqPayload(l.NextSeq(), 700+i%3000)
		id := mustAppend(t, l, p)
		mu.Lock()
		appended[id.Seq] = xxhash.Sum64(p)
		mu.Unlock()
		if i%3 == 0 {
			if err := l.FlushUntil(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			maxAcked = id.Seq + 1
			mu.Unlock()
		}
	}
	_, taken := l.pool.stats()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	pfs.SetOpHook(nil)
	if taken < 3 {
		t.Fatalf("only %d files recycled", taken)
	}
	expect := func(seq uint64) (uint64, bool) {
		sum, ok := appended[seq]
		return sum, ok
	}
	tot := powerTotals{byOp: map[string]int{}}
	for _, sn := range snaps {
		tot.byOp[sn.name]++
		for _, loss := range vfstest.Losses() {
			img := t.TempDir()
			desc, err := sn.img.Write(img, loss, rand.New(rand.NewPCG(uint64(sn.op), 2)))
			if err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("cut after op %d (%s), %s", sn.op, sn.name, desc)
			powerVerify(t, filepath.Join(img, "log"), cfg, expect, sn.maxAcked, what, &tot)
			if t.Failed() {
				return
			}
		}
	}
	t.Logf("%d files recycled; %d images opened, %d records served, %d truncations; cut points %v",
		taken, tot.images, tot.served, tot.truncations, tot.byOp)
}
