package aof

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs/vfstest"
)

// Issue 12 (API v1): what an index-addressed user needs from the one
// import aof.

// TestRecordReadBackTurnsIntoItsRecordID: a record read back by Read, a
// Reader, Follow or ReadRange carries its segment and frame size, and
// its ID is the RecordID Append returned, which FlushUntil accepts.
func TestRecordReadBackTurnsIntoItsRecordID(t *testing.T) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	defer l.Close()
	var ids []RecordID
	for i := uint64(1); i <= 200; i++ {
		ids = append(ids, mustAppend(t, l, payloadFor(i, 1000)))
	}
	if ids[len(ids)-1].Segment == ids[0].Segment {
		t.Fatalf("the records fill one segment only: %+v", ids[len(ids)-1])
	}
	check := func(how string, rec Record) {
		t.Helper()
		id := ids[rec.Seq-1]
		if rec.ID() != id || rec.Segment != id.Segment || rec.Size != segment.FrameSize(len(rec.Payload)) ||
			!bytes.Equal(rec.Payload, payloadFor(rec.Seq, 1000)) || rec.Timestamp == 0 {
			t.Fatalf("%s: record %d: ID %+v, size %d (payload %d bytes), want %+v", how, rec.Seq, rec.ID(), rec.Size, len(rec.Payload), id)
		}
	}
	for _, id := range ids {
		rec, err := l.Read(id.Seq, nil)
		if err != nil {
			t.Fatal(err)
		}
		check("Read", rec)
		if id.Seq%50 == 0 {
			if err := l.FlushUntil(ctx, rec.ID()); err != nil {
				t.Fatalf("FlushUntil(rec.ID()): %v", err)
			}
		}
	}
	r, err := l.NewReader(1, Written)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rec, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		check("Reader", rec)
		n++
	}
	r.Close()
	c, cancel := context.WithCancel(ctx)
	for rec, err := range l.Follow(c, 1, Written) {
		if err != nil {
			t.Fatal(err)
		}
		check("Follow", rec)
		if rec.Seq == uint64(len(ids)) {
			break
		}
	}
	cancel()
	for rec, err := range l.ReadRange(1, uint64(len(ids))+1, 0) {
		if err != nil {
			t.Fatal(err)
		}
		check("ReadRange", rec)
	}
	if n != len(ids) {
		t.Fatalf("Reader returned %d records, want %d", n, len(ids))
	}
}

// TestMetricsFlushAccessors: Metrics counts flushes through exported
// accessors by reason and mode that agree with each other and with
// Samples.
func TestMetricsFlushAccessors(t *testing.T) {
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true})
	defer l.Close()
	for range 3 {
		mustAppend(t, l, []byte("x"))
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m := l.Metrics()
	if got := m.Flushes(ReasonExplicit, ModeSync); got != 3 {
		t.Fatalf("Flushes(explicit, sync) = %d, want 3: %+v", got, m)
	}
	var byMode, byReason uint64
	for _, r := range FlushReasons() {
		byMode += m.Flushes(r, ModeSync)
		for _, md := range FlushModes() {
			byReason += m.Flushes(r, md)
		}
	}
	if byMode != m.FlushesByMode(ModeSync) || byReason != m.FlushesByMode(ModeSync)+m.FlushesByMode(ModeAsync) ||
		m.FlushesByReason(ReasonExplicit) != 3 || m.FlushesByMode(ModeAsync) != 0 {
		t.Fatalf("accessors disagree: %+v", m)
	}
	if m.Flushes(FlushReason(200), ModeSync) != 0 || m.FlushesByReason(FlushReason(200)) != 0 || m.FlushesByMode(FlushMode(9)) != 0 {
		t.Fatal("an unknown reason or mode counts flushes")
	}
	if m.Fsyncs < 3 || m.FlushedBytes == 0 {
		t.Fatalf("syncs not counted: %+v", m)
	}
	for _, s := range m.Samples() {
		if s.Name == "aof_flush_sync_total" && s.Value != float64(m.FlushesByMode(ModeSync)) {
			t.Fatalf("sample %s = %v, Metrics %d", s.Name, s.Value, m.FlushesByMode(ModeSync))
		}
	}
}

// TestFlushUntilSeq: waiting for a sequence number without its RecordID,
// with FlushUntil's errors.
func TestFlushUntilSeq(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true}, WithFS(fs))
	defer l.Close()
	for i := uint64(1); i <= 10; i++ {
		mustAppend(t, l, payloadFor(i, 100))
	}
	if d := l.Metrics().DurableSeq; d != 1 {
		t.Fatalf("durable frontier %d before any flush", d)
	}
	if err := l.FlushUntilSeq(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if d := l.Metrics().DurableSeq; d <= 5 {
		t.Fatalf("FlushUntilSeq(5) returned with the durable frontier at %d", d)
	}
	for _, seq := range []uint64{11, 1 << 40} {
		if err := l.FlushUntilSeq(ctx, seq); !errors.Is(err, ErrNotFound) {
			t.Fatalf("FlushUntilSeq(%d) = %v, want ErrNotFound", seq, err)
		}
	}
	if err := l.FlushUntilSeq(ctx, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("FlushUntilSeq(0) = %v, want ErrInvalidArgument", err)
	}
	if err := l.TruncateFront(ctx, 4); err != nil {
		t.Fatal(err)
	}
	var te *TruncatedError
	if err := l.FlushUntilSeq(ctx, 3); !errors.As(err, &te) || te.First != 4 || te.Back {
		t.Fatalf("FlushUntilSeq below the front = %v, want a *TruncatedError with First 4", err)
	}
	if err := l.FlushUntilSeq(ctx, 4); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))
	last := mustAppend(t, l, []byte("not durable"))
	var fe *FailError
	if err := l.FlushUntilSeq(ctx, last.Seq); !errors.As(err, &fe) || !errors.Is(err, ErrFailed) || !errors.Is(err, unix.EIO) || fe.Durable != last.Seq {
		t.Fatalf("FlushUntilSeq on a failing disk = %v, want an *aof.FailError wrapping EIO", err)
	}
}

// boundsState is the log's end after one operation of the mutator in
// TestBoundsConsistentUnderTruncation, with the front read just before and
// just after that operation.
type boundsState struct{ next, frontBefore, frontAfter uint64 }

// TestBoundsConsistentUnderTruncation: Bounds is one consistent read
// while appends, TruncateFront, TruncateBack and automatic retention run
// at the same time: first <= next, and the log held [first, next) at one
// moment, in the order the readers saw them.
func TestBoundsConsistentUnderTruncation(t *testing.T) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, RetainBytes: 192 << 10, FlushInterval: 100_000})
	defer l.Close()
	ops := 3000
	if testing.Short() {
		ops = 800
	}
	// One goroutine changes the end; it records the end after each
	// operation, and the front before and after it. The retainer moves
	// the front on its own goroutine, which only the bounds on the front
	// account for.
	first0, next0 := l.Bounds()
	hist := []boundsState{{next: next0, frontBefore: first0, frontAfter: first0}}
	stop := make(chan struct{})
	type obs struct{ first, next uint64 }
	var wg sync.WaitGroup
	seen := make([][]obs, 2)
	for g := range seen {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				f, n := l.Bounds()
				if len(seen[g]) < 50000 {
					seen[g] = append(seen[g], obs{f, n})
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(12, 12))
	for i := range ops {
		before := l.FirstSeq()
		first, next := l.Bounds()
		var err error
		switch op := rng.IntN(20); {
		case op == 0 && next > first:
			err = l.TruncateFront(ctx, first+rng.Uint64N(next-first+1))
		case op == 1 && next > first:
			err = l.TruncateBack(ctx, first-1+rng.Uint64N(next-first+1))
		default:
			_, err = l.Append(ctx, payloadFor(uint64(i), 700))
		}
		if err != nil {
			t.Fatalf("operation %d: %v", i, err)
		}
		hist = append(hist, boundsState{next: l.NextSeq(), frontBefore: before, frontAfter: l.FirstSeq()})
	}
	close(stop)
	wg.Wait()
	if l.Metrics().RemovedSegments == 0 {
		t.Fatal("no segment was removed: truncations and retention did not run")
	}
	// State i lasts from operation i to operation i+1, so the front
	// during it lies between the front before operation i and the one
	// after operation i+1.
	hi := func(i int) uint64 {
		if i+1 < len(hist) {
			return hist[i+1].frontAfter
		}
		return l.FirstSeq()
	}
	for g, obs := range seen {
		at := 0
		for k, o := range obs {
			if o.first > o.next {
				t.Fatalf("reader %d, Bounds %d: first %d > next %d", g, k, o.first, o.next)
			}
			i := at
			for i < len(hist) && (hist[i].next != o.next || o.first < hist[i].frontBefore || o.first > hi(i)) {
				i++
			}
			if i == len(hist) {
				t.Fatalf("reader %d, Bounds %d: [%d, %d) is not a state the log had (after state %d: %+v)", g, k, o.first, o.next, at, hist[at])
			}
			at = i
		}
		if len(obs) == 0 {
			t.Fatalf("reader %d made no observation", g)
		}
	}
}

// TestReadRange: records [lo, hi) in batches under a byte budget, and the
// range's errors.
func TestReadRange(t *testing.T) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	defer l.Close()
	const n = 300
	for i := uint64(1); i <= n; i++ {
		mustAppend(t, l, payloadFor(i, 600))
	}
	// Batches under a budget cover the range exactly, each as large as
	// the budget allows, and at least one record.
	for _, budget := range []int64{1, 500, 2000, 1 << 20} {
		var kept [][]byte
		lo, batches := uint64(1), 0
		for lo < n+1 {
			var size int64
			next := lo
			for rec, err := range l.ReadRange(lo, n+1, budget, CopyPayloads()) {
				if err != nil {
					t.Fatalf("ReadRange(%d, %d, %d): %v", lo, n+1, budget, err)
				}
				if rec.Seq != next {
					t.Fatalf("ReadRange(%d, ...) yielded seq %d, want %d", lo, rec.Seq, next)
				}
				size += int64(len(rec.Payload))
				kept = append(kept, rec.Payload)
				next++
			}
			if next == lo || (size > budget && next != lo+1) {
				t.Fatalf("budget %d: batch [%d, %d) of %d bytes", budget, lo, next, size)
			}
			if next <= n && size+int64(len(payloadFor(next, 600))) <= budget {
				t.Fatalf("budget %d: batch [%d, %d) of %d bytes stopped before seq %d, which fits", budget, lo, next, size, next)
			}
			lo = next
			batches++
		}
		for i, p := range kept {
			if !bytes.Equal(p, payloadFor(uint64(i)+1, 600)) {
				t.Fatalf("budget %d: copied payload of seq %d changed", budget, i+1)
			}
		}
		if budget == 1<<20 && batches != 1 || budget == 1 && batches != n {
			t.Fatalf("budget %d: %d batches", budget, batches)
		}
	}
	count := func(lo, hi uint64) (int, error) {
		k := 0
		for _, err := range l.ReadRange(lo, hi, 0) {
			if err != nil {
				return k, err
			}
			k++
		}
		return k, nil
	}
	if k, err := count(7, 7); k != 0 || err != nil {
		t.Fatalf("empty range: %d records, %v", k, err)
	}
	if k, err := count(n, n+1); k != 1 || err != nil {
		t.Fatalf("last record: %d records, %v", k, err)
	}
	for _, r := range [][2]uint64{{1, n + 2}, {n + 1, n + 5}} {
		if k, err := count(r[0], r[1]); k != 0 || !errors.Is(err, ErrNotFound) {
			t.Fatalf("ReadRange(%d, %d): %d records, %v; want ErrNotFound", r[0], r[1], k, err)
		}
	}
	if k, err := count(9, 8); k != 0 || !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("ReadRange(9, 8): %d records, %v; want ErrInvalidArgument", k, err)
	}
	if err := l.TruncateFront(ctx, 100); err != nil {
		t.Fatal(err)
	}
	var te *TruncatedError
	if k, err := count(50, 150); k != 0 || !errors.As(err, &te) || te.First != 100 {
		t.Fatalf("range below the front: %d records, %v; want a *TruncatedError with First 100", k, err)
	}
	if k, err := count(100, 150); k != 50 || err != nil {
		t.Fatalf("range from the front: %d records, %v", k, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := count(100, 150); !errors.Is(err, ErrClosed) {
		t.Fatalf("range on a closed log: %v, want ErrClosed", err)
	}
}

// TestCloseContextOnStalledSync: a Close whose final sync stalls returns
// when its context ends, naming what was not durable; the log refuses
// work from then on, the close finishes once the sync returns, and a
// reopen recovers every record.
func TestCloseContextOnStalledSync(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}, WithFS(fs))
	first := mustAppend(t, l, []byte("durable before the stall"))
	if err := l.FlushUntil(ctx, first); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan int, 1)
	fs.SetFault(vfstest.StallUntil(vfstest.OpSync, release, entered))
	a := mustAppend(t, l, []byte("a"))
	b := mustAppend(t, l, []byte("b"))

	c, cancel := context.WithCancel(ctx)
	closed := make(chan error, 1)
	go func() { closed <- l.CloseContext(c) }()
	<-entered // the close's final flush is stalled in its sync
	cancel()
	err := <-closed
	var ce *CloseError
	if !errors.As(err, &ce) || !errors.Is(err, context.Canceled) || ce.Durable != first.Seq+1 || ce.Next != b.Seq+1 {
		t.Fatalf("CloseContext on a stalled sync: %v, want a *CloseError for [%d, %d)", err, first.Seq+1, b.Seq+1)
	}
	if _, err := l.Append(ctx, []byte("after")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after CloseContext: %v, want ErrClosed", err)
	}
	if _, err := l.Read(a.Seq, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after CloseContext: %v, want ErrClosed", err)
	}
	if _, err := Open(dir, Config{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while the close waits for the disk: %v, want ErrLocked", err)
	}
	c2, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := l.CloseContext(c2); !errors.Is(err, context.Canceled) {
		t.Fatalf("a second CloseContext, cancelled, during the background close: %v", err)
	}

	close(release)
	fs.SetFault(nil)
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close after the background close: %v, want ErrClosed", err)
	}
	l = openT(t, dir, Config{SegmentSize: 64 << 10})
	defer l.Close()
	for _, id := range []RecordID{first, a, b} {
		if _, err := l.Read(id.Seq, nil); err != nil {
			t.Fatalf("after reopen: Read(%d): %v", id.Seq, err)
		}
	}
	if f, n := l.Bounds(); f != 1 || n != b.Seq+1 {
		t.Fatalf("after reopen: bounds [%d, %d)", f, n)
	}
}

// TestCloseContextInTime: a CloseContext whose context does not end
// closes as Close does; a second one returns ErrClosed.
func TestCloseContextInTime(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{NoBackgroundFlush: true})
	id := mustAppend(t, l, []byte("x"))
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := l.CloseContext(c); err != nil {
		t.Fatal(err)
	}
	if err := l.CloseContext(c); !errors.Is(err, ErrClosed) {
		t.Fatalf("second CloseContext: %v, want ErrClosed", err)
	}
	l = openT(t, dir, Config{})
	defer l.Close()
	if rep := l.Recovery(); rep.NextSeq != id.Seq+1 || len(rep.Truncations) != 0 {
		t.Fatalf("reopen after CloseContext: %+v", rep)
	}
}

// TestBoundsNotTornByTruncation: a truncation and appends that run
// between Bounds' look at the front and its look at the end do not make it
// return a pair the log never held: the front from before them with the
// end from after (never held: the front moved first), or a first past
// next.
func TestBoundsNotTornByTruncation(t *testing.T) {
	l := openT(t, t.TempDir(), Config{NoBackgroundFlush: true})
	defer l.Close()
	for i := uint64(1); i <= 10; i++ {
		mustAppend(t, l, payloadFor(i, 100))
	}
	var after [2]uint64
	l.boundsPeek = func() {
		l.boundsPeek = nil
		if err := l.TruncateFront(ctx, 3); err != nil {
			t.Error(err)
		}
		mustAppend(t, l, []byte("11"))
		mustAppend(t, l, []byte("12"))
		if err := l.TruncateFront(ctx, 13); err != nil {
			t.Error(err)
		}
		after[0], after[1] = l.FirstSeq(), l.NextSeq()
	}
	first, next := l.Bounds()
	if first != 13 || next != 13 || after != [2]uint64{13, 13} {
		t.Fatalf("Bounds across a truncation = [%d, %d), want the log as it was after it, [%d, %d)", first, next, after[0], after[1])
	}
	// A TruncateBack under Bounds: the end it returns is the new one.
	mustAppend(t, l, []byte("13"))
	mustAppend(t, l, []byte("14"))
	l.boundsPeek = func() {
		l.boundsPeek = nil
		if err := l.TruncateBack(ctx, 13); err != nil {
			t.Error(err)
		}
	}
	if first, next := l.Bounds(); first != 13 || next != 14 {
		t.Fatalf("Bounds across a TruncateBack = [%d, %d), want [13, 14)", first, next)
	}
}

// ReadRange must not block for good when
// a TruncateBack cuts the rest of its range under it (the follower it uses
// waits at the new end for records that may never come).
// The same for a Reset to the next record of the range.
func TestReadRangeEndsWhenTruncateBackCutsTheRangeUnderIt(t *testing.T) {
	t.Run("truncate-back", func(t *testing.T) {
		readRangeUnderCut(t, 1, func(l *Log) error { return l.TruncateBack(context.Background(), 3) })
	})
	t.Run("reset", func(t *testing.T) {
		readRangeUnderCut(t, 4, func(l *Log) error { return l.Reset(context.Background(), 4) })
	})
}

// readRangeUnderCut runs ReadRange(2, 6) over records 1..5, cuts the log
// with cut once it has yielded 3, and wants the range to end with a
// *TruncatedError (Back set, First first).
func readRangeUnderCut(t *testing.T, first uint64, cut func(*Log) error) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	defer l.Close()
	appendN(t, l, 1, 6) // records 1..5
	type result struct {
		seqs []uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		for rec, err := range l.ReadRange(2, 6, 0, CopyPayloads()) {
			if err != nil {
				res.err = err
				break
			}
			res.seqs = append(res.seqs, rec.Seq)
			if rec.Seq == 3 {
				// The rest of the range, [4, 6), goes.
				if err := cut(l); err != nil {
					res.err = err
					break
				}
			}
		}
		done <- res
	}()
	select {
	case res := <-done:
		if len(res.seqs) != 2 || res.seqs[0] != 2 || res.seqs[1] != 3 {
			t.Fatalf("ReadRange yielded %v, want [2 3]", res.seqs)
		}
		wantTruncated(t, res.err, first, true)
	case <-time.After(time.Minute):
		// A guard against a hang, not a timing assertion: release the
		// range with Close.
		l.Close()
		<-done
		t.Fatal("ReadRange blocked at the end a cut left, inside its range")
	}
}
