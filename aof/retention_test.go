package aof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sys/unix"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
	"github.com/aof2/aof2/vfs/vfstest"
)

// retentionCfg makes segments of 64 KiB: about 350 records of payloadFor(i,
// 300) each.
var retentionCfg = Config{SegmentSize: 64 << 10}

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
	r, err := l.NewReader(1, Written, CopyPayloads())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var kept [][]byte
	for r.Next() {
		kept = append(kept, r.Record().Payload)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("reader stopped after %d records: %v", len(kept), err)
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

// Pins issue 11 defect 1: TruncateBack waits for the appenders of every
// pending segment, not only the active one's, before it cuts.
func TestDefect01TruncateBackWaitsForEveryPendingSegment(t *testing.T) {
	for _, tc := range []struct {
		name string
		// last is where the cut ends the log, given the first record of
		// segment A (the one whose last frame X reserved).
		last func(baseA uint64) uint64
	}{
		{"keeps-A", func(baseA uint64) uint64 { return baseA + 5 }},
		{"removes-A", func(baseA uint64) uint64 { return baseA - 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var (
				mu        sync.Mutex
				xPub      = true // X's frame published when the cut began
				draining  = make(chan struct{})
				drainOnce sync.Once
				xs        *seg
				xOff      int64
			)
			l := openT(t, dir, retentionCfg, withCrashPoint(func(p string) {
				switch p {
				case crashCutDrain:
					drainOnce.Do(func() { close(draining) })
				case crashCutBegin:
					// Everything is flushed by now: X's frame is
					// durable if X had copied it.
					mu.Lock()
					xPub = xs.Durable() >= xOff+segment.FrameSize(300)
					mu.Unlock()
				}
			}))
			defer l.Close()
			appendN(t, l, 1, 401) // segment 1 full, segment 2 begun
			fillActive(t, l, 300)
			// X reserves the last frame of segment A and pauses before
			// its copy.
			a := l.active.Load()
			baseA := a.Header().BaseSeq
			off, xSeq, err := a.Reserve(segment.FrameSize(300), 1)
			if err != nil {
				t.Fatal(err)
			}
			if a.Free() >= segment.FrameSize(300) {
				t.Fatalf("segment A has room for %d more bytes after X", a.Free())
			}
			mu.Lock()
			xs, xOff = a, off
			mu.Unlock()
			// Y finds A full and rolls over to B.
			y := mustAppend(t, l, make([]byte, 300))
			if y.Segment == a.Header().Index {
				t.Fatal("Y did not roll over")
			}
			last := tc.last(baseA)
			done := make(chan error, 1)
			go func() { done <- l.TruncateBack(ctx, last) }()
			var cutErr error
			filled := false
			select {
			case <-draining:
				// X finishes its copy while TruncateBack drains.
				a.Fill(off, xSeq, make([]byte, 300), time.Now().UnixNano())
				filled = true
				cutErr = <-done
			case cutErr = <-done:
				// TruncateBack did not wait for X. Let X finish
				// unless A was released (its buffer unmapped), so
				// that Close does not wait for X forever.
				if cutErr != nil {
					a.Fill(off, xSeq, make([]byte, 300), time.Now().UnixNano())
				}
			}
			mu.Lock()
			pub := xPub
			mu.Unlock()
			if !pub {
				t.Errorf("TruncateBack(%d) began its cut while X (seq %d) was still copying into segment %d", last, xSeq, a.Header().Index)
			}
			if cutErr != nil {
				t.Fatalf("TruncateBack(%d) of a healthy log: %v", last, cutErr)
			}
			if !filled {
				t.FailNow()
			}
			if next := l.NextSeq(); next != last+1 {
				t.Fatalf("NextSeq after TruncateBack(%d): %d", last, next)
			}
			appendN(t, l, last+1, last+101)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, mode := range []RecoveryMode{RecoverStrict, RecoverRepair} {
				l2, err := Open(dir, Config{SegmentSize: retentionCfg.SegmentSize, Recovery: mode})
				if err != nil {
					t.Fatalf("reopen (recovery mode %d) after TruncateBack(%d): %v", mode, last, err)
				}
				if next := l2.NextSeq(); next != last+101 {
					t.Errorf("reopened log ends before %d, want %d", next, last+101)
				}
				checkRecords(t, l2, last+1, last+101, 300)
				l2.Close()
			}
		})
	}
}

// Pins issue 11 defect 3: TruncateFront removes a segment whose records are
// all before the new front although its seal was still pending (no
// background flusher, or the flusher stopped).
func TestDefect03TruncateFrontRemovesSegmentWithPendingSeal(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		stop bool
	}{
		{"no-background-flush", Config{SegmentSize: retentionCfg.SegmentSize, NoBackgroundFlush: true}, false},
		{"flusher-stopped", retentionCfg, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, tc.cfg)
			defer l.Close()
			if tc.stop {
				l.StopFlusher()
			}
			sub := l.Subscribe()
			defer sub.Close()
			next := fillActive(t, l, 300)
			if err := l.Sync(ctx); err != nil { // segment 1 durable, not closed
				t.Fatal(err)
			}
			first := l.active.Load()
			// Roll over: segment 1 closes; its seal waits for a flush.
			id := mustAppend(t, l, make([]byte, 2*int(first.Free())))
			if id.Seq != next || id.Segment == first.Header().Index {
				t.Fatalf("no rollover: %+v", id)
			}
			if first.Sealed() {
				t.Fatal("segment 1 sealed without a flush")
			}
			for range 2 { // a repeated TruncateFront changes nothing more
				if err := l.TruncateFront(ctx, next); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(first.Path()); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("TruncateFront(%d) left %s, whose records are all removed (stat: %v)", next, filepath.Base(first.Path()), err)
				}
			}
			if m := l.Metrics(); m.RemovedSegments != 1 || m.Segments != 1 {
				t.Fatalf("after TruncateFront: %d segments, %d removed; want 1 and 1", m.Segments, m.RemovedSegments)
			}
			var kinds []EventKind
			for {
				nctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				ev, err := sub.Next(nctx)
				cancel()
				if err != nil {
					break
				}
				if ev.Segment == first.Header().Index {
					kinds = append(kinds, ev.Kind)
				}
			}
			if want := []EventKind{EventSealing, EventSealed, EventRemoved}; !slices.Equal(kinds, want) {
				t.Fatalf("events of segment 1: %v, want %v", kinds, want)
			}
			if _, err := l.Read(next-1, nil); !errors.Is(err, ErrTruncated) {
				t.Fatalf("Read(%d) below the front: %v", next-1, err)
			}
			if _, err := l.Read(next, nil); err != nil {
				t.Fatalf("Read(%d) at the front: %v", next, err)
			}
		})
	}
}

// blockingSeal is a span processor that holds the flush which sealed a
// segment inside the seal span's end: after FinishSeal, before the flush
// publishes EventSealed.
type blockingSeal struct {
	sealed  chan struct{} // closed when the first seal span ends
	release chan struct{} // closed to let that flush go on
	once    sync.Once
}

func (b *blockingSeal) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (b *blockingSeal) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.Name() != aofotel.SpanSeal {
		return
	}
	b.once.Do(func() {
		close(b.sealed)
		<-b.release
	})
}

func (b *blockingSeal) Shutdown(context.Context) error { return nil }

func (b *blockingSeal) ForceFlush(context.Context) error { return nil }

// Pins issue 11 defect 4: retention never removes a segment before its
// EventSealed was published, so a subscriber sees sealing, sealed, removed
// in that order.
func TestDefect04RemovedNeverPrecedesSealed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &blockingSeal{sealed: make(chan struct{}), release: make(chan struct{})}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bs))
		defer tp.Shutdown(ctx)
		l := openT(t, t.TempDir(), retentionCfg, WithTracerProvider(tp))
		defer l.Close()
		sub := l.Subscribe()
		defer sub.Close()
		next := fillActive(t, l, 300)
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		first := l.active.Load()
		mustAppend(t, l, make([]byte, 2*int(first.Free()))) // roll over: the flusher seals segment 1
		<-bs.sealed
		if !first.Sealed() {
			t.Fatal("seal span ended before FinishSeal")
		}
		// A retention pass while the flush that sealed segment 1 has
		// not yet published EventSealed.
		done := make(chan error, 1)
		go func() { done <- l.TruncateFront(ctx, next) }()
		synctest.Wait() // TruncateFront finished, or waits for that flush
		close(bs.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var kinds []EventKind
		for {
			nctx, cancel := context.WithTimeout(ctx, time.Second)
			ev, err := sub.Next(nctx)
			cancel()
			if err != nil {
				break
			}
			if ev.Segment == first.Header().Index {
				kinds = append(kinds, ev.Kind)
			}
		}
		if want := []EventKind{EventSealing, EventSealed, EventRemoved}; !slices.Equal(kinds, want) {
			t.Fatalf("events of segment 1: %v, want %v", kinds, want)
		}
	})
}

// Pins a regression of issue 11 defects 3/4: the retainer sealed a segment
// before the front with a flush of its own, holding retainMu while a
// stalled sync held the flush lock, so TruncateFront ignored its context.
func TestRetainerNeverWaitsForAFlushUnderRetainMu(t *testing.T) {
	fs := vfstest.NewFaultFS(nil)
	dir := t.TempDir()
	var frontMarked sync.Once
	marked := make(chan struct{})
	cfg := retentionCfg
	cfg.RetainBytes = 1 // only the active segment is kept
	l := openT(t, dir, cfg, WithFS(fs), withCrashPoint(func(p string) {
		if p == crashFrontMarked {
			frontMarked.Do(func() { close(marked) })
		}
	}))
	defer l.Close()
	release := make(chan struct{})
	var released sync.Once
	defer released.Do(func() { close(release) }) // before Close
	sub := l.Subscribe()
	defer sub.Close()
	fillActive(t, l, 300)
	first := l.active.Load()
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// Roll over with no flusher, then let one segment sync through (the
	// seal of segment 1) and stall the next (segment 2's records): the
	// flush seals segment 1, kicks the retainer, and stalls holding the
	// flush lock.
	l.StopFlusher()
	mustAppend(t, l, make([]byte, 2*int(first.Free())))
	entered := make(chan int, 1)
	stall := vfstest.StallUntil(vfstest.OpSync, release, entered)
	var segSyncs atomic.Int32
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(op vfstest.Op) error {
		if !strings.HasPrefix(op.Path, l.segDir) || segSyncs.Add(1) == 1 {
			return nil
		}
		return stall(op)
	}))
	l.StartFlusher()
	<-entered
	<-marked // the retainer moved the front past segment 1

	c, cancel := context.WithCancel(ctx)
	cancel()
	done := make(chan error, 1)
	go func() { done <- l.TruncateFront(c, l.FirstSeq()) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("TruncateFront with a cancelled context: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("TruncateFront with a cancelled context still waits after a minute: the retainer holds retention behind a stalled flush")
	}
	if !first.Sealed() {
		t.Fatal("segment 1 not sealed by the stalled flush")
	}
	// Once the flush is done with segment 1, the retainer removes it.
	released.Do(func() { close(release) })
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	for {
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("segment 1 not removed after the stall: %v", err)
		}
		if ev.Kind == EventRemoved && ev.Segment == first.Header().Index {
			break
		}
	}
}

// TestReviewLeasedAppendBufferOutlivesRemoval: a zero-copy payload read
// from the append buffer of the active segment stays mapped after that
// segment is sealed (the buffer is retired, not unmapped, while a lease
// holds it) and then removed by retention. The owner's Release used to
// unmap the retired buffer although the Reader's lease still held it:
// reading the payload then faulted (SIGSEGV).
func TestReviewLeasedAppendBufferOutlivesRemoval(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	defer l.Close()
	mustAppend(t, l, payloadFor(1, 300))
	r, err := l.NewReader(1, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() {
		t.Fatal(r.Err())
	}
	held := r.Record().Payload // a slice of segment 1's append buffer
	// Roll over and seal segment 1 while the Reader leases it.
	appendN(t, l, 2, 1001)
	if l.sealedCount.Load() == 0 {
		t.Fatal("no segment sealed")
	}
	// Remove it: the owner releases it, the lease remains.
	if err := l.TruncateFront(ctx, 900); err != nil {
		t.Fatal(err)
	}
	if _, base, _ := parseFirst(t, dir); base == 1 {
		t.Fatal("segment 1 was not removed")
	}
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("reading a leased payload faulted: %v", p)
			}
		}()
		if !bytes.Equal(held, payloadFor(1, 300)) {
			t.Fatal("leased payload changed")
		}
	}()
}

func parseFirst(t *testing.T, dir string) (uint64, uint64, bool) {
	t.Helper()
	files := segmentFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no segment files")
	}
	return segment.ParseName(files[0])
}

// TestReviewReaderPastCutAfterRefill: a Reader that returned records
// which TruncateBack then removed must get a *TruncatedError (Back set),
// also when appends after the cut have already reached its position. It
// used to compare its position with the current NextSeq only, so once new
// records filled the numbers again it carried on with them: the caller
// got old records up to its position, then new ones after it, a mix of
// two histories.
func TestReviewReaderPastCutAfterRefill(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 1001)
	r, _ := l.NewReader(1, Written)
	defer r.Close()
	for i := 0; i < 900; i++ {
		if !r.Next() {
			t.Fatal(r.Err())
		}
	}
	if err := l.TruncateBack(ctx, 500); err != nil {
		t.Fatal(err)
	}
	// New records with the same numbers, different payloads, past the
	// reader's position.
	for i := uint64(501); i < 1001; i++ {
		mustAppend(t, l, payloadFor(i+1e6, 300))
	}
	if r.Next() {
		t.Fatalf("reader that returned removed records 501..900 went on with seq %d of the new history", r.Record().Seq)
	}
	wantTruncated(t, r.Err(), 1, true)
}

// TestReviewDurableFollowerAcrossCut: a Durable follower waiting past the
// cut point is told at once that its records were removed. It used to
// wait for the durable frontier to pass its old position, which after a
// cut only new appends can do (never, on an idle log), and then carried
// on with the new records.
func TestReviewDurableFollowerAcrossCut(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 1001)
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got := make(chan error, 1)
	seen := make(chan struct{})
	go func() {
		for rec, err := range l.Follow(fctx, 1, Durable) {
			if err != nil {
				got <- err
				return
			}
			if rec.Seq == 1000 {
				close(seen)
			}
		}
		got <- nil
	}()
	<-seen
	time.Sleep(20 * time.Millisecond) // the follower waits at 1001
	if err := l.TruncateBack(ctx, 500); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		wantTruncated(t, err, 1, true)
	case <-time.After(2 * time.Second):
		t.Fatal("the Durable follower past the cut is still waiting 2s after TruncateBack")
	}
}

// TestReviewFlushUntilOfCutRecord: a FlushUntil waiting for a record that
// TruncateBack removes returns (the record was made durable, then cut)
// instead of spinning, flush after empty flush, until a new record with
// the same number is appended and made durable.
func TestReviewFlushUntilOfCutRecord(t *testing.T) {
	fs := vfstest.NewFaultFS(vfs.Default)
	l := openT(t, t.TempDir(), retentionCfg, WithFS(fs))
	defer l.Close()
	appendN(t, l, 1, 101)
	l.StopFlusher()
	var id RecordID
	for i := uint64(101); i <= 200; i++ {
		id = mustAppend(t, l, payloadFor(i, 300))
	}
	// TruncateBack's flush stalls in its sync until the waiter waits.
	stall, stalled := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(vfstest.Op) error {
		once.Do(func() { close(stalled); <-stall })
		return nil
	}))
	cut := make(chan error, 1)
	go func() { cut <- l.TruncateBack(ctx, 150) }()
	<-stalled
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.FlushUntil(wctx, id) }()
	time.Sleep(50 * time.Millisecond) // the waiter waits for the flush lock
	close(stall)
	if err := <-cut; err != nil {
		t.Fatal(err)
	}
	if err := <-done; errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FlushUntil of seq %d, removed by TruncateBack(150), still waiting after 2s", id.Seq)
	} else if err != nil && !errors.Is(err, ErrTruncated) {
		t.Fatalf("FlushUntil of a record TruncateBack removed: %v", err)
	}
}

// TestReviewMetricsAfterCutInActiveSegment: the "since open" counters
// never go backwards. TruncateBack measured what it cut after cutting the
// kept segment: when that was the active segment, its end was already the
// new one, so the cut counted 0 records and 0 bytes, and AppendedRecords,
// AppendedBytes and DurableBytes dropped by what was cut.
func TestReviewMetricsAfterCutInActiveSegment(t *testing.T) {
	l := openT(t, t.TempDir(), retentionCfg)
	defer l.Close()
	appendN(t, l, 1, 101)
	before := l.Metrics()
	if err := l.TruncateBack(ctx, 50); err != nil {
		t.Fatal(err)
	}
	after := l.Metrics()
	if after.AppendedRecords < before.AppendedRecords || after.AppendedBytes < before.AppendedBytes ||
		after.DurableBytes < before.DurableBytes || after.BacklogBytes != 0 {
		t.Fatalf("after TruncateBack(50) of 100 records: appended %d records, %d bytes, durable %d bytes, backlog %d; before: %d, %d, %d",
			after.AppendedRecords, after.AppendedBytes, after.DurableBytes, after.BacklogBytes,
			before.AppendedRecords, before.AppendedBytes, before.DurableBytes)
	}
	appendN(t, l, 51, 61)
	if m := l.Metrics(); m.AppendedRecords != 110 || m.NextSeq != 61 || m.DurableSeq != 61 {
		t.Fatalf("after 10 more: appended %d records (want 110), NextSeq %d, DurableSeq %d (want 61)", m.AppendedRecords, m.NextSeq, m.DurableSeq)
	}
}

// A segment whose removal failed (which no fault could inject before the
// FaultFS took one Fault for every operation) goes at the next
// TruncateFront, even one that does not move the front.
func TestFailedSegmentRemovalIsRetried(t *testing.T) {
	dir := t.TempDir()
	fs := vfstest.NewFaultFS(nil)
	l := openT(t, dir, retentionCfg, WithFS(fs))
	defer l.Close()
	appendN(t, l, 1, 2001)
	first := filepath.Join(dir, "segments", segmentFiles(t, dir)[0])
	// The file cannot go into the pool of recycled files either (a
	// rename), so retention falls back to removing it.
	fs.SetFault(func(op vfstest.Op) error {
		if (op.Kind == vfstest.OpRemove || op.Kind == vfstest.OpRename) && op.Path == first {
			return unix.EBUSY
		}
		return nil
	})
	if err := l.TruncateFront(ctx, 1200); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("TruncateFront with the first segment's removal failing: %v, want EBUSY", err)
	}
	fs.SetFault(nil)
	if got := l.FirstSeq(); got != 1200 {
		t.Fatalf("FirstSeq %d after the failed removal, want 1200 (the front moved)", got)
	}
	if _, err := os.Stat(first); err != nil {
		t.Fatalf("the segment whose removal failed: %v, want it still there", err)
	}
	if err := l.TruncateFront(ctx, l.FirstSeq()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("after the retry, the first segment: %v, want it removed", err)
	}
	after := segmentFiles(t, dir)
	if _, base, _ := segment.ParseName(after[0]); base > 1200 {
		t.Fatalf("first segment %s starts after the front", after[0])
	}
	if len(after) > 1 {
		if _, base, _ := segment.ParseName(after[1]); base <= 1200 {
			t.Fatalf("segment %s, wholly before the front, is left after the retry", after[0])
		}
	}
	checkRecords(t, l, 1200, 2001, 300)
}
