package aof

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOpenPreparesNoSegmentAhead: Open of a new log makes the active
// segment only; the next one is prepared once the active one is half full
// (before, Open prepared it at once: a second file and buffer).
func TestOpenPreparesNoSegmentAhead(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 1 << 20})
	defer l.Close()
	mustAppend(t, l, []byte("one"))
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The preparer is only started by a kick; with none, it never runs.
	l.prep.mu.Lock()
	ready, busy, asked := l.prep.ready, l.prep.busy, len(l.prep.kickc)
	l.prep.mu.Unlock()
	if ready != nil || busy || asked != 0 {
		t.Fatalf("a segment is prepared (ready %v, busy %v, asked %d) while the active one holds one record", ready != nil, busy, asked)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "segments"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("a prepared segment file %s exists after Open and one record", e.Name())
		}
	}
}

// TestZeroCopyReaderSurvivesTrim: a zero-copy Reader holding a record's
// payload keeps it intact while the writer appends and syncs far past it
// (the flushes release the append buffer behind the durable end, but not
// what the Reader holds); then it reads every record on, across
// rollovers, and every record reads back.
func TestZeroCopyReaderSurvivesTrim(t *testing.T) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 1 << 20})
	defer l.Close()
	appendN(t, l, 1, 11)
	r, err := l.NewReader(5, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() {
		t.Fatalf("Next: %v", r.Err())
	}
	held := r.Record().Payload
	// About 3 MiB of records: the first segment fills and rolls over.
	const n = 10000
	for i := uint64(11); i < n; i += 1000 {
		appendN(t, l, i, min(i+1000, n))
	}
	if !bytes.Equal(held, payloadFor(5, 300)) {
		t.Fatal("a zero-copy payload changed while its Reader held it and the log went on")
	}
	for seq := uint64(6); seq < n; seq++ {
		if !r.Next() {
			t.Fatalf("Next at %d: %v", seq, r.Err())
		}
		if rec := r.Record(); rec.Seq != seq || !bytes.Equal(rec.Payload, payloadFor(seq, 300)) {
			t.Fatalf("record %d (seq %d) differs from the one appended", seq, rec.Seq)
		}
	}
	checkRecords(t, l, 1, n, 300)
}

// mappedFiles returns how many mappings of the process map a file under
// dir.
func mappedFiles(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// TestManySmallSegmentsStayWithinTheMappingBound: a log of many small
// segments keeps at most the bound of sealed segments mapped (plus the
// active one, and the one a Reader leases), while it is written, when it
// is reopened, and while every record is read back sequentially and at
// random; unmapped segments are mapped again when read. Before, every
// segment stayed mapped for the log's life (65,530 segments reached the
// kernel's default vm.max_map_count). AOF2_MANY_SEGMENTS sets how many
// segments (default 300, of 64 KiB).
func TestManySmallSegmentsStayWithinTheMappingBound(t *testing.T) {
	segs := 300
	if v := os.Getenv("AOF2_MANY_SEGMENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("AOF2_MANY_SEGMENTS=%q: %v", v, err)
		}
		segs = n
	}
	const bound = 8
	dir := t.TempDir()
	segDir := filepath.Join(dir, "segments")
	cfg := Config{SegmentSize: 64 << 10, MappedSegments: bound}
	l := openT(t, dir, cfg)
	// Active and prepared segments are mapped too: at most one of each
	// beyond the bound, and one a Reader leases.
	limit := bound + 3
	var next uint64 = 1
	for l.active.Load().Header().Index <= uint64(segs) {
		appendN(t, l, next, next+500)
		next += 500
		if got := mappedFiles(t, segDir); got > limit {
			t.Fatalf("%d segment files mapped while writing %d segments, bound %d", got, l.active.Load().Header().Index, bound)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openT(t, dir, cfg)
	defer l.Close()
	if got := mappedFiles(t, segDir); got > limit {
		t.Fatalf("%d segment files mapped after reopening a log of %d segments, bound %d", got, segs, bound)
	}
	r, err := l.NewReader(1, Durable)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for seq := uint64(1); seq < next; seq++ {
		if !r.Next() {
			t.Fatalf("Next at %d: %v", seq, r.Err())
		}
		if rec := r.Record(); rec.Seq != seq || !bytes.Equal(rec.Payload, payloadFor(seq, 300)) {
			t.Fatalf("record %d (seq %d) differs from the one appended", seq, rec.Seq)
		}
		if seq%500 == 0 {
			if got := mappedFiles(t, segDir); got > limit {
				t.Fatalf("%d segment files mapped while reading seq %d, bound %d", got, seq, bound)
			}
		}
	}
	// Random access, which maps segments again out of order.
	for seq := uint64(1); seq < next; seq += 97 {
		s := (seq * 7919) % (next - 1)
		checkRecords(t, l, s+1, s+2, 300)
	}
	if got := mappedFiles(t, segDir); got > limit {
		t.Fatalf("%d segment files mapped after random reads, bound %d", got, bound)
	}
	if got := l.maps.mapped(); got > bound+1 {
		t.Fatalf("%d sealed segments counted as mapped, bound %d", got, bound)
	}
}

// TestAppendsAskForWarm: an append whose frame crosses the active
// segment's WarmAt asks the preparer to fault in further ahead, and it
// does (WarmAt moves on).
func TestAppendsAskForWarm(t *testing.T) {
	l := openT(t, t.TempDir(), Config{})
	defer l.Close()
	s := l.active.Load()
	w0 := s.WarmAt()
	for end, _ := s.Reserved(); end < w0; end, _ = s.Reserved() {
		mustAppend(t, l, make([]byte, 1000))
	}
	// Not a timing assertion: the preparer's goroutine runs Warm at
	// some point; this only bounds a hang.
	deadline := time.Now().Add(time.Minute)
	for s.WarmAt() == w0 {
		if time.Now().After(deadline) {
			t.Fatalf("WarmAt still %d a minute after appends crossed it", w0)
		}
		runtime.Gosched()
	}
	if end, _ := s.Reserved(); s.WarmAt() <= end {
		t.Fatalf("WarmAt %d is not past the reserved end %d after Warm", s.WarmAt(), end)
	}
}

// TestTruncateBackSealedSegmentsStayWithinTheMappingBound: a TruncateBack
// that cuts the active segment seals it; that segment then counts against
// the bound of mapped sealed segments like one sealed by rollover (before,
// it was never registered, so it stayed mapped for the log's life: a raft
// log truncating often would reach vm.max_map_count).
func TestTruncateBackSealedSegmentsStayWithinTheMappingBound(t *testing.T) {
	const bound = 4
	dir := t.TempDir()
	segDir := filepath.Join(dir, "segments")
	l := openT(t, dir, Config{SegmentSize: 64 << 10, MappedSegments: bound})
	defer l.Close()
	limit := bound + 3 // the active segment, a prepared one, slack
	var next uint64 = 1
	for i := 0; i < 4*bound; i++ {
		appendN(t, l, next, next+3)
		next += 3
		// Cut the last record: the active segment is sealed after the
		// one before it, and a fresh segment takes appends.
		next--
		if err := l.TruncateBack(ctx, next-1); err != nil {
			t.Fatal(err)
		}
		if got := mappedFiles(t, segDir); got > limit {
			t.Fatalf("%d segment files mapped after %d TruncateBacks, bound %d", got, i+1, bound)
		}
	}
	checkRecords(t, l, 1, next, 300)
}

// TestRecordLargerThanTheWarmWindow: only a window of the append buffer
// (at most 4 MiB) is faulted in ahead of the appenders, but a record of
// any size up to MaxRecordSize still goes in whole: the largest one a
// 32 MiB segment takes, several times the window, is appended after a
// small one, rolls over to a fresh segment, is made durable and reads
// back byte for byte, also after a reopen; a Reader returns it too.
func TestRecordLargerThanTheWarmWindow(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: 32 << 20}
	l := openT(t, dir, cfg)
	small := mustAppend(t, l, []byte("small"))
	big := make([]byte, l.MaxRecordSize())
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	id := mustAppend(t, l, big)
	if id.Segment == small.Segment {
		t.Fatalf("the largest record went into segment %d beside a small one", id.Segment)
	}
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
	check := func(when string, l *Log) {
		t.Helper()
		rec, err := l.Read(id.Seq, nil)
		if err != nil || !bytes.Equal(rec.Payload, big) {
			t.Fatalf("%s: Read of the %d-byte record: equal %v, %v", when, len(big), bytes.Equal(rec.Payload, big), err)
		}
		r, err := l.NewReader(id.Seq, Durable)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if !r.Next() || !bytes.Equal(r.Record().Payload, big) {
			t.Fatalf("%s: Reader of the %d-byte record: %v", when, len(big), r.Err())
		}
	}
	check("written", l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, cfg)
	defer l.Close()
	check("reopened", l)
}

// TestWarmServedDuringPrewrite: while the preparer prewrites the next
// segment (here held in its first chunk), appends that cross WarmAt still
// get the active segment's append buffer faulted in ahead of them. Before,
// the preparer's one goroutine served warm requests only between jobs, so
// for the whole prewrite of a segment the appenders faulted pages in
// themselves.
func TestWarmServedDuringPrewrite(t *testing.T) {
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l := openT(t, t.TempDir(), Config{SegmentSize: 16 << 20}, withPrewriteChunk(1<<20),
		withPrewriteHook(func(int64) {
			once.Do(func() {
				close(held)
				<-release
			})
		}))
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer l.Close()
	defer free()
	s := l.active.Load()
	// Append until the preparer is kicked and holds in its prewrite.
	for waiting := true; waiting; {
		select {
		case <-held:
			waiting = false
		default:
			if end, _ := s.Reserved(); end > s.Header().Size*3/4 {
				t.Fatalf("no prewrite started with %d of %d bytes appended", end, s.Header().Size)
			}
			mustAppend(t, l, make([]byte, 1000))
		}
	}
	w0 := s.WarmAt()
	if w0 == math.MaxInt64 {
		t.Fatalf("the append buffer is warmed to its end already: nothing left to test")
	}
	for end, _ := s.Reserved(); end < w0; end, _ = s.Reserved() {
		mustAppend(t, l, make([]byte, 1000))
	}
	// Not a timing assertion: this only bounds a hang.
	deadline := time.Now().Add(30 * time.Second)
	for s.WarmAt() == w0 {
		if time.Now().After(deadline) {
			t.Fatalf("WarmAt still %d 30 s after appends crossed it, while a prewrite is held", w0)
		}
		time.Sleep(time.Millisecond)
	}
	free()
}
