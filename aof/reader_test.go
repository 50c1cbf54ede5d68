package aof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aof2/aof2/segment"
)

// followPayload is the self-describing payload of the i-th record of
// appender g: a reader can check it without knowing its sequence number.
func followPayload(g, i int) []byte {
	head := fmt.Sprintf("g%02d-i%06d-", g, i)
	n := (g*7919 + i*104729) % 600
	b := make([]byte, len(head)+n)
	copy(b, head)
	for j := len(head); j < len(b); j++ {
		b[j] = byte(g*31 + i*17 + j)
	}
	return b
}

func checkFollowPayload(p []byte) error {
	var g, i int
	if _, err := fmt.Sscanf(string(p), "g%02d-i%06d-", &g, &i); err != nil {
		return fmt.Errorf("payload %q...: %v", p[:min(len(p), 12)], err)
	}
	if !bytes.Equal(p, followPayload(g, i)) {
		return fmt.Errorf("payload of g%d i%d damaged", g, i)
	}
	return nil
}

// checkSeqs checks that recs are payloadFor(seq, maxLen) for seq in
// [first, next), in order.
func checkSeqs(t *testing.T, recs []Record, first, next uint64, maxLen int) {
	t.Helper()
	if uint64(len(recs)) != next-first {
		t.Fatalf("read %d records, want %d ([%d, %d))", len(recs), next-first, first, next)
	}
	for i, rec := range recs {
		seq := first + uint64(i)
		if rec.Seq != seq {
			t.Fatalf("record %d has seq %d, want %d", i, rec.Seq, seq)
		}
		if !bytes.Equal(rec.Payload, payloadFor(seq, maxLen)) {
			t.Fatalf("seq %d: payload differs from the one appended", seq)
		}
	}
}

func TestFollowWhileAppending(t *testing.T) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10})
	defer l.Close()
	const goroutines, each = 16, 300
	const total = goroutines * each
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	appended := make([][]byte, total+1) // by seq; each slot written once
	levels := []Level{Written, Durable}
	seen := make([][][]byte, len(levels))
	var followers sync.WaitGroup
	for k, level := range levels {
		seen[k] = make([][]byte, total+1)
		followers.Add(1)
		go func() {
			defer followers.Done()
			want := uint64(1)
			for rec, err := range l.Follow(ctx, 1, level) {
				if err != nil {
					t.Errorf("%v follower after seq %d: %v; metrics %+v", level, want-1, err, l.Metrics())
					return
				}
				if level == Durable {
					if d := l.Metrics().DurableSeq; rec.Seq >= d {
						t.Errorf("durable follower got seq %d, durable frontier %d", rec.Seq, d)
					}
				}
				if rec.Seq != want {
					t.Errorf("%v follower got seq %d, want %d", level, rec.Seq, want)
					return
				}
				if err := checkFollowPayload(rec.Payload); err != nil {
					t.Errorf("%v follower, seq %d: %v", level, rec.Seq, err)
					return
				}
				seen[k][rec.Seq] = bytes.Clone(rec.Payload)
				if want++; want > total {
					return
				}
			}
		}()
	}

	var appenders sync.WaitGroup
	for g := range goroutines {
		appenders.Add(1)
		go func() {
			defer appenders.Done()
			if g%4 == 3 { // some appenders use batches
				for i := 0; i < each; i += 5 {
					var ps [][]byte
					for j := i; j < i+5; j++ {
						ps = append(ps, followPayload(g, j))
					}
					ids, err := l.AppendBatch(ctx, ps)
					if err != nil {
						t.Error(err)
						return
					}
					for j, id := range ids {
						appended[id.Seq] = ps[j]
					}
				}
				return
			}
			for i := range each {
				p := followPayload(g, i)
				id, err := l.Append(ctx, p)
				if err != nil {
					t.Error(err)
					return
				}
				appended[id.Seq] = p
			}
		}()
	}
	appenders.Wait()
	followers.Wait()
	if t.Failed() {
		return
	}
	for k, level := range levels {
		for seq := uint64(1); seq <= total; seq++ {
			if !bytes.Equal(seen[k][seq], appended[seq]) {
				t.Fatalf("%v follower: seq %d differs from what Append stored there", level, seq)
			}
		}
	}
	if m := l.Metrics(); m.Segments < 10 {
		t.Fatalf("only %d segments: the test should cross many rollovers", m.Segments)
	}
}

func TestReaderFromMiddle(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: 64 << 10}
	l := openT(t, dir, cfg)
	for i := uint64(1); i <= 500; i++ {
		mustAppend(t, l, payloadFor(i, 600))
	}
	if l.Metrics().Segments < 3 {
		t.Fatal("want several segments")
	}
	r, err := l.NewReader(250, Written)
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, readAll(t, r), 250, 501, 600)
	if r.Next() || r.Err() != nil {
		t.Fatalf("Next at the frontier: true or error %v", r.Err())
	}
	// Polling: the reader continues once more records are there.
	for i := uint64(501); i <= 520; i++ {
		mustAppend(t, l, payloadFor(i, 600))
	}
	checkSeqs(t, readAll(t, r), 501, 521, 600)

	// A reader at the end sees what is appended later.
	end, err := l.NewReader(521, Written)
	if err != nil {
		t.Fatal(err)
	}
	if end.Next() {
		t.Fatal("reader at the end returned a record")
	}
	mustAppend(t, l, payloadFor(521, 600))
	checkSeqs(t, readAll(t, end), 521, 522, 600)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Next() || !errors.Is(r.Err(), ErrClosed) {
		t.Fatalf("Next after Close: err %v, want ErrClosed", r.Err())
	}

	// After reopening, sealed segments are read through the mapping.
	l = openT(t, dir, cfg)
	defer l.Close()
	for _, level := range []Level{Written, Durable} {
		r, err := l.NewReader(100, level)
		if err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, readAll(t, r), 100, 522, 600)
	}
}

func TestDurableReaderStopsAtDurableFrontier(t *testing.T) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	defer l.Close()
	for i := uint64(1); i <= 10; i++ {
		mustAppend(t, l, payloadFor(i, 600))
	}
	d, err := l.NewReader(1, Durable)
	if err != nil {
		t.Fatal(err)
	}
	if d.Next() || d.Err() != nil {
		t.Fatalf("durable reader returned a record before any sync (err %v)", d.Err())
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := uint64(11); i <= 300; i++ { // crosses rollovers, not durable
		mustAppend(t, l, payloadFor(i, 600))
	}
	checkSeqs(t, readAll(t, d), 1, 11, 600)
	w, err := l.NewReader(1, Written)
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, readAll(t, w), 1, 301, 600)
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, readAll(t, d), 11, 301, 600)
}

func TestReaderInvalidFrom(t *testing.T) {
	l := openT(t, t.TempDir(), Config{})
	defer l.Close()
	for i := uint64(1); i <= 5; i++ {
		mustAppend(t, l, payloadFor(i, 100))
	}
	for _, from := range []uint64{0, 7, 1 << 40} {
		// Past the end is a seq not appended yet; 0 is no seq at all.
		want, wantText := ErrNotFound, "first available is 1"
		if from == 0 {
			want, wantText = ErrInvalidArgument, "start at 1"
		}
		_, err := l.NewReader(from, Written)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), wantText) {
			t.Fatalf("NewReader(%d): %v, want %v saying %q", from, err, want, wantText)
		}
		var n int
		for _, err := range l.Follow(ctx, from, Durable) {
			if n++; !errors.Is(err, want) {
				t.Fatalf("Follow(%d): %v, want %v", from, err, want)
			}
		}
		if n != 1 {
			t.Fatalf("Follow(%d) yielded %d times, want one error", from, n)
		}
	}
	if _, err := l.NewReader(1, Level(7)); err == nil {
		t.Fatal("NewReader with an unknown level succeeded")
	}
}

func TestReaderCorruptSealedSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: 64 << 10}
	l := openT(t, dir, cfg)
	var ids []RecordID
	for i := uint64(1); len(ids) == 0 || ids[len(ids)-1].Segment < 3; i++ {
		ids = append(ids, mustAppend(t, l, payloadFor(i, 200)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	victim := ids[len(ids)/3]
	if victim.Segment == ids[len(ids)-1].Segment {
		t.Fatal("victim should be in a sealed segment")
	}
	path := segPath(t, dir, victim.Segment)
	flipBit(t, path, victim.Offset+segment.FrameHeaderSize+3)
	l = openT(t, dir, cfg)
	defer l.Close()
	if rep := l.Recovery(); rep.Trusted < int(victim.Segment) {
		t.Fatalf("segment %d should be trusted without a scan: %+v", victim.Segment, rep)
	}
	for _, level := range []Level{Written, Durable} {
		r, err := l.NewReader(1, level)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for r.Next() {
			n++
			if rec := r.Record(); !bytes.Equal(rec.Payload, payloadFor(rec.Seq, 200)) {
				t.Fatalf("seq %d: payload differs", rec.Seq)
			}
		}
		err = r.Err()
		if n != victim.Seq-1 {
			t.Fatalf("%v reader returned %d records before the corrupt seq %d (err %v)", level, n, victim.Seq, err)
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", victim.Offset)) ||
			!strings.Contains(err.Error(), filepath.Base(path)) {
			t.Fatalf("reader error %v; want ErrCorrupt naming %s offset %d", err, filepath.Base(path), victim.Offset)
		}
		if r.Next() || r.Record().Payload != nil {
			t.Fatal("reader went on after a corrupt record")
		}
		// Starting after the corrupt record works (the frame lengths
		// before it in its index interval are intact).
		r, err = l.NewReader(victim.Seq+1, level)
		if err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, readAll(t, r), victim.Seq+1, ids[len(ids)-1].Seq+1, 200)
	}
}

func TestFollowEnds(t *testing.T) {
	l := openT(t, t.TempDir(), Config{})
	mustAppend(t, l, payloadFor(1, 100))
	// Durable before the followers start: the durable one must get the
	// record before its short deadline whatever the machine's load (the
	// interval flush alone could come after it).
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// ctx ends: the follower stops with ctx's error, at both levels.
	for _, level := range []Level{Written, Durable} {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		var last error
		var n int
		for rec, err := range l.Follow(cctx, 1, level) {
			if err == nil {
				n++
				if rec.Seq != 1 {
					t.Fatalf("got seq %d", rec.Seq)
				}
			}
			last = err
		}
		cancel()
		if n != 1 || !errors.Is(last, context.DeadlineExceeded) {
			t.Fatalf("%v follower: %d records, last error %v", level, n, last)
		}
	}

	// Close: every follower ends with ErrClosed.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for k, level := range []Level{Written, Durable} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, err := range l.Follow(ctx, 2, level) {
				errs[k] = err
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for k, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("follower %d after Close: %v, want ErrClosed", k, err)
		}
	}
	if _, err := l.NewReader(1, Written); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewReader after Close: %v", err)
	}
}
