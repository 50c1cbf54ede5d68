package reader

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// fakeSource is a Source over segments a test builds and appends to by
// hand, for the Reader's own rules without a log. Single goroutine.
type fakeSource struct {
	t       *testing.T
	dir     string
	segs    []*segment.Segment
	closed  bool
	front   uint64
	durable uint64
	failed  error
	cuts    Cuts
}

func newFakeSource(t *testing.T) *fakeSource {
	t.Helper()
	src := &fakeSource{t: t, dir: t.TempDir(), front: 1}
	src.roll(1)
	t.Cleanup(func() {
		for _, s := range src.segs {
			s.Release()
		}
	})
	return src
}

// roll closes the last segment, if any, and starts one based at base.
func (f *fakeSource) roll(base uint64) *segment.Segment {
	f.t.Helper()
	idx := uint64(len(f.segs) + 1)
	if n := len(f.segs); n > 0 {
		f.segs[n-1].Close()
	}
	s, err := segment.Prepare(vfs.Default, f.dir, idx, segment.MinSize, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := s.Activate(idx, base, 1); err != nil {
		f.t.Fatal(err)
	}
	f.segs = append(f.segs, s)
	return s
}

// add appends one record to the last segment and returns its seq.
func (f *fakeSource) add(payload string) uint64 {
	f.t.Helper()
	s := f.segs[len(f.segs)-1]
	off, seq, err := s.Reserve(segment.FrameSize(len(payload)), 1)
	if err != nil {
		f.t.Fatal(err)
	}
	s.Fill(off, seq, []byte(payload), int64(seq))
	return seq
}

func (f *fakeSource) Check(from uint64) error {
	if from < f.front {
		return &TruncatedError{Seq: from, First: f.front, Next: f.NextSeq()}
	}
	return nil
}
func (f *fakeSource) Look() (bool, uint64, uint64) { return f.closed, f.front, f.durable }
func (f *fakeSource) NextSeq() uint64 {
	s := f.segs[len(f.segs)-1]
	_, n := s.Reserved()
	return s.Header().BaseSeq + n
}
func (f *fakeSource) Failed() error { return f.failed }
func (f *fakeSource) Recheck()      {}
func (f *fakeSource) Segment(seq uint64) *segment.Segment {
	for _, s := range f.segs {
		if s.Contains(seq) {
			return s
		}
	}
	return nil
}
func (f *fakeSource) Successor(s *segment.Segment) *segment.Segment {
	for i, x := range f.segs {
		if x == s && i+1 < len(f.segs) {
			return f.segs[i+1]
		}
	}
	return nil
}
func (f *fakeSource) Cuts() *Cuts                                           { return &f.cuts }
func (f *fakeSource) Epoch() uint64                                         { return 0 }
func (f *fakeSource) WaitDurable(ctx context.Context, past, e uint64) error { return ctx.Err() }
func (f *fakeSource) Arm() <-chan struct{}                                  { return nil }
func (f *fakeSource) Disarm()                                               {}

// next reads one record and returns "seq:payload", or "end" with Err nil,
// or "err: ..." naming the error.
func next(r *Reader) string {
	if r.Next() {
		rec := r.Record()
		return fmt.Sprintf("%d:%s", rec.Seq, rec.Payload)
	}
	if err := r.Err(); err != nil {
		return "err: " + err.Error()
	}
	return "end"
}

// Issue 12 §2: the Reader's own rules, over a Source: it crosses segments
// in order, stops at the Written frontier without an error and continues
// when records are added, and returns each record's place.
func TestReaderCrossesSegmentsAndResumesAtTheFrontier(t *testing.T) {
	src := newFakeSource(t)
	src.add("a")
	src.add("b")
	src.roll(3)
	src.add("c")
	r, err := New(src, 2, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, want := range []string{"2:b", "3:c", "end"} {
		if got := next(r); got != want {
			t.Fatalf("Next: %s, want %s", got, want)
		}
	}
	src.add("d")
	if got := next(r); got != "4:d" {
		t.Fatalf("after an append: %s, want 4:d", got)
	}
	if rec := r.Record(); rec.Segment != 2 || rec.Size != segment.FrameSize(1) || rec.Offset <= segment.HeaderSize {
		t.Fatalf("record place: %+v", rec)
	}
	r.Close()
	if r.Next() || !errors.Is(r.Err(), ErrClosed) {
		t.Fatalf("after Close: Err %v, want ErrClosed", r.Err())
	}
}

// Issue 12 §2: a Durable reader stops at the durable frontier, and at it
// reports the Source's failure.
func TestReaderDurableStopsAtTheFrontierAndReportsFailure(t *testing.T) {
	src := newFakeSource(t)
	src.add("a")
	src.add("b")
	src.durable = 2 // only seq 1 is durable
	r, _ := New(src, 1, Durable)
	defer r.Close()
	if got := next(r); got != "1:a" {
		t.Fatalf("Next: %s, want 1:a", got)
	}
	if got := next(r); got != "end" {
		t.Fatalf("at the durable frontier: %s, want end", got)
	}
	failure := errors.New("disk on fire")
	src.failed = failure
	if r.Next() || !errors.Is(r.Err(), failure) {
		t.Fatalf("at the frontier of a failed source: Err %v, want %v", r.Err(), failure)
	}
}

// Issue 12 §2: the cut protocol as a Reader sees it: nothing while a cut
// runs; after it, a *TruncatedError with Back set if the cut removed
// records the Reader had returned, else it goes on.
func TestReaderFollowsTheCutProtocol(t *testing.T) {
	src := newFakeSource(t)
	for _, p := range []string{"a", "b", "c", "d"} {
		src.add(p)
	}
	kept, _ := New(src, 1, Written)
	defer kept.Close()
	cut, _ := New(src, 1, Written)
	defer cut.Close()
	next(kept)
	for range 4 {
		next(cut) // returned 1..4
	}
	src.cuts.Begin()
	if got := next(kept); got != "end" {
		t.Fatalf("during a cut: %s, want end", got)
	}
	src.cuts.End(3, true) // the cut ended the log before seq 3
	if got := next(kept); got != "2:b" {
		t.Fatalf("a reader before the cut: %s, want 2:b", got)
	}
	var te *TruncatedError
	if cut.Next() || !errors.As(cut.Err(), &te) || !te.Back || te.Next != 3 || te.Continue() != 3 {
		t.Fatalf("a reader past the cut: Err %v, want a TruncatedError with Back, Next 3", cut.Err())
	}
}

// Issue 12 §2: a front moved past the Reader is a *TruncatedError with
// Back false; a closed Source is ErrClosed; a successor that does not
// continue the sequence is corruption.
func TestReaderFrontClosedAndGap(t *testing.T) {
	src := newFakeSource(t)
	src.add("a")
	src.add("b")
	r, _ := New(src, 1, Written)
	defer r.Close()
	src.front = 2
	var te *TruncatedError
	if r.Next() || !errors.As(r.Err(), &te) || te.Back || te.First != 2 || te.Continue() != 2 {
		t.Fatalf("behind the front: Err %v, want a TruncatedError with First 2", r.Err())
	}

	src.front = 1
	c, _ := New(src, 1, Written)
	defer c.Close()
	src.closed = true
	if c.Next() || !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("closed source: Err %v, want ErrClosed", c.Err())
	}

	src.closed = false
	g, _ := New(src, 1, Written)
	defer g.Close()
	src.roll(5) // the sequence should go on at 3
	src.add("e")
	next(g)
	next(g)
	if g.Next() || !errors.Is(g.Err(), segment.ErrCorrupt) {
		t.Fatalf("gap between segments: Err %v, want ErrCorrupt", g.Err())
	}
}

// Issue 12: Current points at the record Record returns (package aof's
// Reader.Record copies it from there), and at the zero Record once the
// Reader is closed.
func TestReaderCurrentIsTheRecord(t *testing.T) {
	src := newFakeSource(t)
	src.add("a")
	src.roll(2)
	src.add("bc")
	r, err := New(src, 1, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cur := r.Current()
	for _, want := range []string{"a", "bc"} {
		if !r.Next() {
			t.Fatalf("Next: false, %v", r.Err())
		}
		rec := r.Record()
		if string(rec.Payload) != want || cur != r.Current() {
			t.Fatalf("Record %+v, want payload %q; Current moved", rec, want)
		}
		if got := *cur; got.Seq != rec.Seq || got.Timestamp != rec.Timestamp || got.Segment != rec.Segment ||
			got.Offset != rec.Offset || got.Size != rec.Size || string(got.Payload) != want {
			t.Fatalf("Current %+v, Record %+v", got, rec)
		}
	}
	r.Close()
	if got := *cur; got.Seq != 0 || got.Segment != 0 || got.Size != 0 || got.Payload != nil {
		t.Fatalf("Current after Close: %+v, want the zero Record", got)
	}
}
