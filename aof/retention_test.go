package aof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aof2/aof2/segment"
)

// retentionCfg makes segments of 64 KiB: about 350 records of payloadFor(i,
// 300) each.
var retentionCfg = Config{SegmentSize: 64 << 10}

// appendN appends payloadFor(i, 300) for i in [from, to) and syncs.
func appendN(t testing.TB, l *Log, from, to uint64) {
	t.Helper()
	for i := from; i < to; i++ {
		if id := mustAppend(t, l, payloadFor(i, 300)); id.Seq != i {
			t.Fatalf("Append: seq %d, want %d", id.Seq, i)
		}
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(dir, "segments"))
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, n := range names {
		if _, _, ok := segment.ParseName(n.Name()); ok {
			segs = append(segs, n.Name())
		}
	}
	return segs
}

func wantTruncated(t testing.TB, err error, first uint64, back bool) {
	t.Helper()
	var te *TruncatedError
	if !errors.As(err, &te) || !errors.Is(err, ErrTruncated) || te.First != first || te.Back != back {
		t.Fatalf("error %v, want a *TruncatedError with First %d, Back %v", err, first, back)
	}
}

func TestTruncateFront(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	appendN(t, l, 1, 2001)
	before := len(segmentFiles(t, dir))
	if err := l.TruncateFront(ctx, 1200); err != nil {
		t.Fatal(err)
	}
	if got := l.FirstSeq(); got != 1200 {
		t.Fatalf("FirstSeq %d, want 1200", got)
	}
	_, err := l.Read(1199, nil)
	wantTruncated(t, err, 1200, false)
	_, err = l.NewReader(5, Durable)
	wantTruncated(t, err, 1200, false)
	err = l.FlushUntil(ctx, RecordID{Seq: 7, Segment: 1, Offset: segment.HeaderSize})
	wantTruncated(t, err, 1200, false)
	checkRecords(t, l, 1200, 2001, 300)
	after := segmentFiles(t, dir)
	if len(after) >= before {
		t.Fatalf("%d segment files before, %d after: nothing deleted", before, len(after))
	}
	if _, base, _ := segment.ParseName(after[0]); base > 1200 {
		t.Fatalf("first segment %s starts after the front", after[0])
	}
	if err := l.TruncateFront(ctx, 100); err != nil { // behind the front: nothing
		t.Fatal(err)
	}
	if err := l.TruncateFront(ctx, 5000); !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrNotFound) {
		t.Fatalf("TruncateFront past the end: %v, want ErrInvalidArgument", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openT(t, dir, retentionCfg)
	defer l.Close()
	if rep := l.Recovery(); rep.FirstSeq != 1200 || l.FirstSeq() != 1200 {
		t.Fatalf("after reopen: report FirstSeq %d, FirstSeq() %d, want 1200", rep.FirstSeq, l.FirstSeq())
	}
	_, err = l.Read(1000, nil)
	wantTruncated(t, err, 1200, false)
	checkRecords(t, l, 1200, 2001, 300)
	appendN(t, l, 2001, 2100)
	// Everything, even the active segment's records.
	if err := l.TruncateFront(ctx, 2100); err != nil {
		t.Fatal(err)
	}
	r, err := l.NewReader(2100, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Next() || r.Err() != nil {
		t.Fatalf("reader on an emptied log: Next true or error %v", r.Err())
	}
	appendN(t, l, 2100, 2101)
	if !r.Next() || r.Record().Seq != 2100 {
		t.Fatalf("reader did not see the record appended after the front: %v", r.Err())
	}
}

func TestTruncateBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		last uint64 // relative: records kept
	}{
		{"sealed segment", 700},
		{"active segment", 1990},
		{"segment boundary", 0}, // set below to the last record of a sealed segment
		{"everything", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, retentionCfg)
			appendN(t, l, 1, 2001)
			last := tc.last
			if tc.name == "segment boundary" {
				// The record before the second segment's first.
				_, base, _ := segment.ParseName(segmentFiles(t, dir)[1])
				last = base - 1
			}
			sub := l.Subscribe()
			defer sub.Close()
			if err := l.TruncateBack(ctx, last); err != nil {
				t.Fatal(err)
			}
			if got := l.NextSeq(); got != last+1 {
				t.Fatalf("NextSeq %d, want %d", got, last+1)
			}
			if last > 0 {
				checkRecords(t, l, 1, last+1, 300)
			}
			if _, err := l.Read(last+1, nil); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Read(%d) after the cut: %v, want ErrNotFound", last+1, err)
			}
			// New records take the numbers again, with new payloads.
			for i := last + 1; i < last+301; i++ {
				if id := mustAppend(t, l, payloadFor(i+1e6, 300)); id.Seq != i {
					t.Fatalf("Append after the cut: seq %d, want %d", id.Seq, i)
				}
			}
			check := func(l *Log) {
				t.Helper()
				if last > 0 {
					checkRecords(t, l, 1, last+1, 300)
				}
				for i := last + 1; i < last+301; i++ {
					rec, err := l.Read(i, nil)
					if err != nil || !bytes.Equal(rec.Payload, payloadFor(i+1e6, 300)) {
						t.Fatalf("Read(%d) of a record appended after the cut: %v", i, err)
					}
				}
				if got := l.NextSeq(); got != last+301 {
					t.Fatalf("NextSeq %d, want %d", got, last+301)
				}
			}
			check(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// The subscription saw the cut: removals, then a new segment.
			var kinds []EventKind
			for {
				ev, err := sub.Next(ctx)
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Fatal(err)
					}
					break
				}
				kinds = append(kinds, ev.Kind)
				if ev.Kind == EventRemoved && ev.Reason != "truncate-back" {
					t.Fatalf("removal with reason %q", ev.Reason)
				}
			}
			if len(kinds) == 0 || kinds[0] == EventActivated {
				t.Fatalf("events %v: want the cut's removals before a new segment", kinds)
			}
			l = openT(t, dir, retentionCfg)
			defer l.Close()
			check(l)
		})
	}
}

func TestTruncateBackBadArguments(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 501)
	if err := l.TruncateFront(ctx, 100); err != nil {
		t.Fatal(err)
	}
	for _, last := range []uint64{50, 98, 501, 1 << 40} {
		if err := l.TruncateBack(ctx, last); !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrNotFound) {
			t.Fatalf("TruncateBack(%d) on [100, 501): %v, want ErrInvalidArgument", last, err)
		}
	}
	if err := l.TruncateBack(ctx, 500); err != nil || l.NextSeq() != 501 {
		t.Fatalf("TruncateBack to the last record: %v, NextSeq %d", err, l.NextSeq())
	}
	if err := l.TruncateBack(ctx, 99); err != nil || l.NextSeq() != 100 {
		t.Fatalf("TruncateBack to the front: %v, NextSeq %d", err, l.NextSeq())
	}
}

// TestReadersAcrossTruncateBack: a reader that already returned removed
// records gets a *TruncatedError; one that did not continues with the
// records appended after the cut.
func TestReadersAcrossTruncateBack(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 1001)
	ahead, _ := l.NewReader(1, Written)
	defer ahead.Close()
	behind, _ := l.NewReader(1, Written)
	defer behind.Close()
	for i := 0; i < 900; i++ {
		ahead.Next()
	}
	for i := 0; i < 100; i++ {
		behind.Next()
	}
	if err := l.TruncateBack(ctx, 500); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 501, 701) // same numbers, same payloads as before: fine
	if ahead.Next() {
		t.Fatalf("reader past the cut read seq %d", ahead.Record().Seq)
	}
	wantTruncated(t, ahead.Err(), 1, true)
	// Next says where the cut ended the log, not where it ends now: the
	// records appended since (501..700) are new ones to read.
	if te := ahead.Err().(*TruncatedError); te.Next != 501 {
		t.Fatalf("TruncatedError.Next %d after a cut to 500, want 501", te.Next)
	}
	var n uint64 = 101
	for behind.Next() {
		if rec := behind.Record(); rec.Seq != n || !bytes.Equal(rec.Payload, payloadFor(n, 300)) {
			t.Fatalf("reader behind the cut: seq %d, want %d (or payload differs)", rec.Seq, n)
		}
		n++
	}
	if behind.Err() != nil || n != 701 {
		t.Fatalf("reader behind the cut stopped at %d: %v", n, behind.Err())
	}
}

// TestLeaseKeepsPayloadMapped: a zero-copy payload stays readable after
// retention deleted its segment and after the log closed, until the
// Reader moves on or closes.
func TestLeaseKeepsPayloadMapped(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	appendN(t, l, 1, 1001)
	r, err := l.NewReader(1, Durable)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatal(r.Err())
	}
	held := r.Record().Payload
	if err := l.TruncateFront(ctx, 900); err != nil {
		t.Fatal(err)
	}
	if _, base, _ := segment.ParseName(segmentFiles(t, dir)[0]); base == 1 {
		t.Fatal("the first segment was not deleted")
	}
	if !bytes.Equal(held, payloadFor(1, 300)) {
		t.Fatal("payload changed after its segment was deleted")
	}
	if r.Next() {
		t.Fatal("reader read a record before the front")
	}
	wantTruncated(t, r.Err(), 900, false)

	r2, _ := l.NewReader(950, Durable)
	if !r2.Next() {
		t.Fatal(r2.Err())
	}
	held = r2.Record().Payload
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(held, payloadFor(950, 300)) {
		t.Fatal("payload changed after Close")
	}
	if r2.Next() || !errors.Is(r2.Err(), ErrClosed) {
		t.Fatalf("reader after Close: %v, want ErrClosed", r2.Err())
	}
	r2.Close()
}

func TestCopyPayloads(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 101)
	r, _ := l.NewReader(1, Written, CopyPayloads())
	defer r.Close()
	var kept [][]byte
	for r.Next() {
		kept = append(kept, r.Record().Payload)
	}
	for i, p := range kept {
		p[0] ^= 0xff // owned: writable
		p[0] ^= 0xff
		if !bytes.Equal(p, payloadFor(uint64(i+1), 300)) {
			t.Fatalf("copied payload %d differs", i+1)
		}
	}
	if len(kept) != 100 {
		t.Fatalf("%d records, want 100", len(kept))
	}
}

func TestRetainBytes(t *testing.T) {
	dir := t.TempDir()
	cfg := retentionCfg
	cfg.RetainBytes = 4 * cfg.SegmentSize
	l := openT(t, dir, cfg)
	defer func() { l.Close() }()
	sub := l.Subscribe()
	defer sub.Close()
	appendN(t, l, 1, 5001)
	// Retention runs on its own goroutine after each seal: wait for the
	// removal event of the segment holding record 1.
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == EventRemoved {
			if ev.Reason != "retain-bytes" || ev.FirstSeq != 1 {
				t.Fatalf("first removal %+v, want retain-bytes of the first segment", ev)
			}
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(segmentFiles(t, dir)) > 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(segmentFiles(t, dir)); n > 5 {
		t.Fatalf("%d segment files, RetainBytes allows 4 sealed + the active one", n)
	}
	// Retention may still be running: close, then check the reopened
	// log (without retention).
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, retentionCfg)
	first := l.FirstSeq()
	if first == 1 {
		t.Fatal("FirstSeq is still 1")
	}
	_, err := l.Read(first-1, nil)
	wantTruncated(t, err, first, false)
	checkRecords(t, l, first, 5001, 300)
}

func TestRetainAge(t *testing.T) {
	dir := t.TempDir()
	cfg := retentionCfg
	cfg.RetainAge = 200 * time.Millisecond
	l := openT(t, dir, cfg)
	defer l.Close()
	appendN(t, l, 1, 1001)
	time.Sleep(cfg.RetainAge)
	// A seal after the records aged runs retention.
	appendN(t, l, 1001, 1500)
	deadline := time.Now().Add(10 * time.Second)
	for l.FirstSeq() < 1000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	first := l.FirstSeq()
	if first < 1000 {
		t.Fatalf("FirstSeq %d: segments older than RetainAge were kept", first)
	}
	// Segments are removed whole and the active one never: records of
	// the active segment are still there, however old.
	if first > l.active.Load().Header().BaseSeq {
		t.Fatalf("FirstSeq %d is past the active segment's first record", first)
	}
	checkRecords(t, l, l.FirstSeq(), 1500, 300)
}

// TestSubscribeSeesEverySegment: lifecycle events arrive in order, without
// loss, also for a subscriber that reads them late.
func TestSubscribeSeesEverySegment(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	sub := l.Subscribe()
	appendN(t, l, 1, 3001)
	if err := l.TruncateFront(ctx, 2000); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	state := map[uint64]EventKind{}
	var activated, sealed, removed int
	for {
		ev, err := sub.Next(ctx)
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		prev := state[ev.Segment]
		switch ev.Kind {
		case EventActivated:
			activated++
		case EventSealing:
			if prev != EventActivated && prev != 0 {
				t.Fatalf("segment %d: sealing after %v", ev.Segment, prev)
			}
		case EventSealed:
			sealed++
			if prev != EventSealing {
				t.Fatalf("segment %d: sealed after %v", ev.Segment, prev)
			}
		case EventRemoved:
			removed++
			if prev != EventSealed || ev.FirstSeq+ev.Records > 2000 {
				t.Fatalf("segment %d removed after %v, holding [%d, %d)", ev.Segment, prev, ev.FirstSeq, ev.FirstSeq+ev.Records)
			}
		}
		state[ev.Segment] = ev.Kind
	}
	if activated == 0 || sealed != activated || removed == 0 {
		t.Fatalf("%d activated, %d sealed, %d removed", activated, sealed, removed)
	}
}

// TestFollowersWhileAppendingAndTruncating: 16 appenders, followers at
// both levels and a retention loop run at once. Every follower sees every
// record it can once, in order, intact; one that retention overtakes gets
// a *TruncatedError and continues from its First.
func TestFollowersWhileAppendingAndTruncating(t *testing.T) {
	const writers, perWriter = 16, 400
	const total = writers * perWriter
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	retDone := make(chan struct{})
	type result struct {
		seen, skipped uint64
		err           error
	}
	results := make([]result, 4)
	for f := range results {
		level := Written
		if f%2 == 1 {
			level = Durable
		}
		slow := f == 2
		// Follower 3 stops after 100 records until the appenders and
		// retention are done: retention surely overtakes it.
		stalled := f == 3
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[f]
			from := uint64(1)
			var scratch []byte
			for from <= total {
				var stopped error
				for rec, err := range l.Follow(cctx, from, level) {
					if err != nil {
						stopped = err
						break
					}
					if rec.Seq != from {
						res.err = errors.New("out of order")
						return
					}
					var ok bool
					if ok, scratch = crashConsistent(rec.Payload, scratch); !ok {
						res.err = fmt.Errorf("seq %d: payload is not one an appender wrote", rec.Seq)
						return
					}
					res.seen++
					from++
					if slow && from%32 == 0 {
						time.Sleep(time.Millisecond)
					}
					if stalled && from == 101 {
						<-retDone
					}
					if from > total {
						return
					}
				}
				var te *TruncatedError
				if !errors.As(stopped, &te) {
					res.err = stopped
					return
				}
				res.skipped += te.First - from
				from = te.First
			}
		}()
	}

	// Appenders: self-checking payloads (crashFill), so a follower can
	// tell a payload an appender wrote from anything else.
	var appendWG sync.WaitGroup
	for w := 0; w < writers; w++ {
		appendWG.Add(1)
		go func() {
			defer appendWG.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < perWriter; i++ {
				p := make([]byte, 8+r.IntN(300))
				crashFill(p, r.Uint64())
				_, err := l.Append(ctx, p)
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Retention: keep about the last 1500 records.
	stop := make(chan struct{})
	go func() {
		defer close(retDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if next := l.NextSeq(); next > 1500 {
				if err := l.TruncateFront(ctx, next-1500); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	appendWG.Wait()
	// One more pass after the last append: the loop above may not have
	// run at all if the appenders were quicker than its first tick.
	if err := l.TruncateFront(ctx, l.NextSeq()-1500); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-retDone
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for f, res := range results {
		if res.err != nil {
			t.Fatalf("follower %d: %v", f, res.err)
		}
		if res.seen+res.skipped != total {
			t.Fatalf("follower %d: saw %d + skipped %d, want %d", f, res.seen, res.skipped, total)
		}
		t.Logf("follower %d: saw %d, skipped %d (behind retention)", f, res.seen, res.skipped)
	}
	if results[3].skipped == 0 {
		t.Fatal("the stalled follower was not overtaken by retention")
	}
	if l.FirstSeq() == 1 {
		t.Fatal("retention never moved the front")
	}
}
