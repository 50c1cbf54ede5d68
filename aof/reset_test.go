package aof

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/segment"
)

// resetLog opens a log in dir holding [front, 2001), front > 1 made by
// TruncateFront.
func resetLog(t *testing.T, dir string, front uint64, opts ...Option) *Log {
	t.Helper()
	l := openT(t, dir, retentionCfg, opts...)
	appendN(t, l, 1, 2001)
	if front > 1 {
		if err := l.TruncateFront(ctx, front); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestReset (issue 12, Reset): Reset(next) empties the log and continues
// at next, below the front, inside the range, at the end or above it, on
// a log with records and on an empty one; removed segments are announced
// with reason "reset", the since-open counters do not go down, and the log
// reopens empty at next, with the records appended after the reset.
func TestReset(t *testing.T) {
	for _, tc := range []struct {
		name  string
		empty bool // reset a new, empty log
		next  uint64
	}{
		{"below the front", false, 100},
		{"to seq 1", false, 1},
		{"inside", false, 1000},
		{"at the end", false, 2001},
		{"above", false, 50000},
		{"empty log above", true, 700},
		{"empty log to 1 again", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var l *Log
			if tc.empty {
				l = openT(t, dir, retentionCfg)
			} else {
				l = resetLog(t, dir, 500)
			}
			sub := l.Subscribe()
			defer sub.Close()
			before := l.Metrics()
			if tc.next == 1 && tc.empty {
				// Already empty at 1: nothing to do.
				if err := l.Reset(ctx, 1); err != nil {
					t.Fatal(err)
				}
			} else if err := l.Reset(ctx, tc.next); err != nil {
				t.Fatal(err)
			}
			check := func(l *Log, next uint64) {
				t.Helper()
				if first, n := l.FirstSeq(), l.NextSeq(); first != tc.next || n != next {
					t.Fatalf("log [%d, %d) after Reset(%d), want [%d, %d)", first, n, tc.next, tc.next, next)
				}
				if tc.next > 1 {
					_, err := l.Read(tc.next-1, nil)
					wantTruncated(t, err, tc.next, false)
				}
				if _, err := l.Read(next, nil); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Read(%d) past the end: %v, want ErrNotFound", next, err)
				}
				for _, name := range segmentFiles(t, dir) {
					if _, base, _ := segment.ParseName(name); base < tc.next {
						t.Fatalf("segment %s from before the reset is still there", name)
					}
				}
			}
			check(l, tc.next)
			after := l.Metrics()
			if after.AppendedRecords != before.AppendedRecords || after.AppendedBytes != before.AppendedBytes ||
				after.DurableBytes != before.DurableBytes || after.RemovedSegments < before.RemovedSegments ||
				after.NextSeq != tc.next || after.BacklogBytes != 0 {
				t.Fatalf("metrics before %+v, after Reset %+v", before, after)
			}
			// Appends continue at next, across a rollover.
			for i := tc.next; i < tc.next+400; i++ {
				if id := mustAppend(t, l, payloadFor(i+1e6, 300)); id.Seq != i {
					t.Fatalf("Append after Reset(%d): seq %d, want %d", tc.next, id.Seq, i)
				}
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if m := l.Metrics(); m.AppendedRecords != before.AppendedRecords+400 {
				t.Fatalf("AppendedRecords %d after 400 appends, was %d", m.AppendedRecords, before.AppendedRecords)
			}
			readNew := func(l *Log) {
				t.Helper()
				for i := tc.next; i < tc.next+400; i += 37 {
					rec, err := l.Read(i, nil)
					if err != nil || !bytes.Equal(rec.Payload, payloadFor(i+1e6, 300)) {
						t.Fatalf("Read(%d) after Reset(%d): %v", i, tc.next, err)
					}
				}
			}
			readNew(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			var removed int
			var kinds []EventKind
			for {
				ev, err := sub.Next(ctx)
				if errors.Is(err, ErrClosed) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, ev.Kind)
				if ev.Kind == EventRemoved {
					removed++
					if ev.Reason != "reset" {
						t.Fatalf("removal with reason %q, want reset", ev.Reason)
					}
				}
			}
			activated := slices.Index(kinds, EventActivated)
			if removed != int(after.RemovedSegments-before.RemovedSegments) || (removed == 0) != (tc.empty && tc.next == 1) ||
				removed > 0 && (activated < 0 || slices.Contains(kinds[activated:], EventRemoved)) {
				t.Fatalf("events %v, %d removals; Metrics counted %d", kinds, removed, after.RemovedSegments-before.RemovedSegments)
			}
			l = openT(t, dir, retentionCfg)
			defer l.Close()
			check(l, tc.next+400)
			readNew(l)
		})
	}
}

// TestResetBadArguments (issue 12, Reset): next 0 is refused and changes
// nothing; a closed log refuses Reset.
func TestResetBadArguments(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	appendN(t, l, 1, 101)
	if err := l.Reset(ctx, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Reset(0): %v, want ErrInvalidArgument", err)
	}
	if l.FirstSeq() != 1 || l.NextSeq() != 101 {
		t.Fatalf("log [%d, %d) after a refused Reset", l.FirstSeq(), l.NextSeq())
	}
	checkRecords(t, l, 1, 101, 300)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(ctx, 5); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reset on a closed log: %v, want ErrClosed", err)
	}
}

// TestResetReaders (issue 12, Reset): readers positioned in the old range
// get a *TruncatedError whose First is next: Back false below next, Back
// true (and Next next) above it; a reader at exactly next reads the new
// records; a follower waiting at the tail is told too.
func TestResetReaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		next uint64
	}{{"below", 1200}, {"above", 9000}} {
		t.Run(tc.name, func(t *testing.T) {
			l := resetLog(t, t.TempDir(), 1)
			defer l.Close()
			readers := map[uint64]*Reader{}
			for _, at := range []uint64{100, 1200, 1700, 2001} {
				r, err := l.NewReader(1, Written)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				for r.Seq() < at && r.Next() {
				}
				if r.Seq() != at {
					t.Fatalf("reader at %d, want %d: %v", r.Seq(), at, r.Err())
				}
				readers[at] = r
			}
			type result struct {
				rec Record
				err error
			}
			followed := make(chan result, 1)
			go func() {
				for rec, err := range l.Follow(ctx, 2001, Written, CopyPayloads()) {
					followed <- result{rec, err}
					return
				}
			}()
			// The follower waits at the tail before the Reset.
			for l.tail.waiting.Load() == 0 {
				runtime.Gosched()
			}
			if err := l.Reset(ctx, tc.next); err != nil {
				t.Fatal(err)
			}
			fresh := func(seq uint64) []byte { return payloadFor(seq+1e6, 300) }
			for i := tc.next; i < tc.next+100; i++ {
				mustAppend(t, l, fresh(i))
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			for at, r := range readers {
				ok := r.Next()
				switch {
				case at == tc.next:
					if !ok || r.Record().Seq != tc.next || !bytes.Equal(r.Record().Payload, fresh(tc.next)) {
						t.Fatalf("reader at next %d: %v, %v", tc.next, ok, r.Err())
					}
				case ok:
					t.Fatalf("reader at %d read seq %d after Reset(%d)", at, r.Record().Seq, tc.next)
				default:
					wantTruncated(t, r.Err(), tc.next, at > tc.next)
					if te := r.Err().(*TruncatedError); te.Back && te.Next != tc.next {
						t.Fatalf("reader at %d: TruncatedError.Next %d, want %d", at, te.Next, tc.next)
					}
				}
			}
			res := <-followed
			var te *TruncatedError
			if !errors.As(res.err, &te) || te.First != tc.next || te.Back != (tc.next < 2001) {
				t.Fatalf("follower at the old end: %+v, %v; want a *TruncatedError with First %d", res.rec, res.err, tc.next)
			}
			// Continue where it says: the new records.
			r, err := l.NewReader(te.First, Durable)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			recs := readAll(t, r)
			if len(recs) != 100 {
				t.Fatalf("read %d records from %d, want 100", len(recs), te.First)
			}
			for i, rec := range recs {
				if seq := tc.next + uint64(i); rec.Seq != seq || !bytes.Equal(rec.Payload, fresh(seq)) {
					t.Fatalf("record %d after the reset: seq %d, or not the new payload", i, rec.Seq)
				}
			}
		})
	}
}

// TestResetFlushUntil (issue 12, Reset): FlushUntil of a record that a
// Reset removed returns a *TruncatedError, also when the Reset ran after
// FlushUntil checked the RecordID and before it waited (the record was
// made durable by the Reset, then removed: the wait used to end in nil for
// a Reset above the record).
func TestResetFlushUntil(t *testing.T) {
	for _, tc := range []struct {
		name string
		next uint64
		back bool
	}{{"below", 50, true}, {"above", 5000, false}} {
		t.Run(tc.name, func(t *testing.T) {
			var l *Log
			armed := false
			l = openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}, withCrashPoint(func(p string) {
				if p == crashFlushChecked && armed {
					armed = false
					if err := l.Reset(ctx, tc.next); err != nil {
						t.Error(err)
					}
				}
			}))
			defer l.Close()
			appendN(t, l, 1, 100)
			id := mustAppend(t, l, payloadFor(100, 300)) // not durable
			armed = true
			err := l.FlushUntil(ctx, id)
			wantTruncated(t, err, tc.next, tc.back)
			if armed {
				t.Fatal("the Reset did not run")
			}
			// Afterwards, too.
			if err := l.FlushUntil(ctx, id); tc.back {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("FlushUntil of a removed id at or past next: %v, want ErrNotFound", err)
				}
			} else {
				wantTruncated(t, err, tc.next, false)
			}
		})
	}
}

// TestResetSpan (issue 12, Reset): a Reset shows as an aof.truncate span
// with end "all", reason "reset", the new next as its seq and the segment
// files it removed.
func TestResetSpan(t *testing.T) {
	tt := newTelemetry(t)
	l := resetLog(t, t.TempDir(), 1, tt.opts()...)
	defer l.Close()
	before := l.Metrics().RemovedSegments
	if err := l.Reset(ctx, 42); err != nil {
		t.Fatal(err)
	}
	spans := spansNamed(tt.spans.Ended(), aofotel.SpanTruncate)
	if len(spans) != 1 {
		t.Fatalf("%d aof.truncate spans, want 1", len(spans))
	}
	set := attribute.NewSet(spans[0].Attributes()...)
	end, _ := set.Value(aofotel.AttrTruncateEnd)
	seq, _ := set.Value(aofotel.AttrSeq)
	reason, _ := set.Value(aofotel.AttrReason)
	n, _ := set.Value(aofotel.AttrRemoved)
	if got := fmt.Sprint(end.AsString(), seq.AsInt64(), reason.AsString(), n.AsInt64()); got != fmt.Sprint("all", 42, "reset", l.Metrics().RemovedSegments-before) || n.AsInt64() == 0 {
		t.Fatalf("span: end %v seq %v reason %v removed %v", end, seq, reason, n)
	}
}
