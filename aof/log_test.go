package aof

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestAppendFlushReadReopen(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 64 << 10})
	var last RecordID
	for i := uint64(1); i <= 500; i++ {
		last = mustAppend(t, l, payloadFor(i, 600))
		if last.Seq != i {
			t.Fatalf("record %d got seq %d", i, last.Seq)
		}
	}
	if err := l.FlushUntil(ctx, last); err != nil {
		t.Fatal(err)
	}
	m := l.Metrics()
	if m.DurableSeq != 501 || m.BacklogBytes != 0 || m.AppendedRecords != 500 {
		t.Fatalf("metrics after FlushUntil: %+v", m)
	}
	if m.Segments < 3 || m.SealedSegments < 2 {
		t.Fatalf("500 records of up to 600 B in 64 KiB segments: %d segments, %d sealed", m.Segments, m.SealedSegments)
	}
	checkRecords(t, l, 1, 501, 600)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	l = openT(t, dir, Config{SegmentSize: 64 << 10})
	defer l.Close()
	rep := l.Recovery()
	if rep.FirstSeq != 1 || rep.NextSeq != 501 || rep.Trusted != m.Segments-1 || rep.Scanned != 1 || rep.TruncatedBytes != 0 {
		t.Fatalf("recovery report: %+v", rep)
	}
	if rep.BacklogBytes != 0 {
		t.Fatalf("clean close left %d bytes of backlog", rep.BacklogBytes)
	}
	checkRecords(t, l, 1, 501, 600)
	id := mustAppend(t, l, payloadFor(501, 600))
	if id.Seq != 501 {
		t.Fatalf("first append after reopen: seq %d, want 501", id.Seq)
	}
}

func TestConcurrentAppendFlushUntil(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 256 << 10, FlushWatermark: 32 << 10})
	const goroutines, each = 32, 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make(map[uint64][]byte)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := []byte(fmt.Sprintf("g%02d-i%04d-%s", g, i, bytes.Repeat([]byte{byte(g)}, (g*i)%300)))
				id, err := l.Append(ctx, p)
				if err != nil {
					t.Error(err)
					return
				}
				if err := l.FlushUntil(ctx, id); err != nil {
					t.Error(err)
					return
				}
				if l.Metrics().DurableSeq <= id.Seq {
					t.Errorf("FlushUntil(%d) returned before the record was durable", id.Seq)
				}
				mu.Lock()
				seen[id.Seq] = p
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct sequence numbers, want %d", len(seen), goroutines*each)
	}
	for seq := uint64(1); seq <= goroutines*each; seq++ {
		want, ok := seen[seq]
		if !ok {
			t.Fatalf("seq %d was never handed out: not dense", seq)
		}
		rec, err := l.Read(seq, nil)
		if err != nil || !bytes.Equal(rec.Payload, want) {
			t.Fatalf("Read(%d) = %q, %v; want %q", seq, rec.Payload, err, want)
		}
	}
	m := l.Metrics()
	t.Logf("%d records, %d fsyncs, %.1f records per fsync", goroutines*each, m.Fsyncs, float64(goroutines*each)/float64(m.Fsyncs))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, Config{SegmentSize: 256 << 10})
	defer l.Close()
	for seq, want := range seen {
		rec, err := l.Read(seq, nil)
		if err != nil || !bytes.Equal(rec.Payload, want) {
			t.Fatalf("after reopen Read(%d) = %q, %v; want %q", seq, rec.Payload, err, want)
		}
	}
}

func TestIntervalFlushesIdleLog(t *testing.T) {
	l := openT(t, t.TempDir(), Config{FlushInterval: 2 * time.Millisecond})
	defer l.Close()
	mustAppend(t, l, []byte("last words"))
	deadline := time.Now().Add(5 * time.Second)
	for l.Metrics().BacklogBytes != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("an idle log did not flush its last bytes: %+v", l.Metrics())
		}
		time.Sleep(time.Millisecond)
	}
	if m := l.Metrics(); m.FlushesByReason(ReasonInterval) == 0 {
		t.Fatalf("no interval flush counted: %+v", m)
	}
}

// Pins issue 11 defect 2: the interval timer keeps working across
// StopFlusher and StartFlusher, so an idle log's last record becomes
// durable.
func TestDefect02IntervalTimerSurvivesStopStartFlusher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := openT(t, t.TempDir(), Config{FlushInterval: 100 * time.Millisecond})
		defer l.Close()
		mustAppend(t, l, []byte("first"))
		synctest.Wait() // the flusher armed the interval timer
		l.StopFlusher()
		l.StartFlusher()
		synctest.Wait()
		id := mustAppend(t, l, []byte("last words"))
		time.Sleep(2 * time.Second) // twenty intervals (fake time)
		synctest.Wait()
		if m := l.Metrics(); m.DurableSeq <= id.Seq {
			t.Fatalf("an idle log's last record (seq %d) is not durable 2 s after StopFlusher/StartFlusher: %+v", id.Seq, m)
		}
	})
}

// TestRecordOffsetAndTimestamp: a record's Offset, Segment and Size place
// its frame (the first at the 64-byte header, each next one right after
// the previous frame, a rollover starting again at 64), and its Timestamp
// is the append time: within the wall-clock bounds taken around Append,
// and never decreasing, through Read, a Reader and a reopen.
func TestRecordOffsetAndTimestamp(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentSize: 64 << 10}
	l := openT(t, dir, cfg)
	type bound struct{ lo, hi int64 }
	var ids []RecordID
	var at []bound
	for i := uint64(1); len(ids) == 0 || ids[len(ids)-1].Segment < 3; i++ {
		lo := time.Now().UnixNano()
		ids = append(ids, mustAppend(t, l, payloadFor(i, 2000)))
		at = append(at, bound{lo, time.Now().UnixNano()})
	}
	check := func(what string, get func(seq uint64) Record) {
		t.Helper()
		var prev Record
		for i, id := range ids {
			rec := get(id.Seq)
			if rec.ID() != id {
				t.Fatalf("%s: record %d at %+v, Append returned %+v", what, id.Seq, rec.ID(), id)
			}
			want := int64(64) // segment.HeaderSize: the first frame of a segment
			if i > 0 && prev.Segment == rec.Segment {
				want = prev.Offset + prev.Size
			}
			if rec.Offset != want || rec.Size != (32+int64(len(rec.Payload))+7)&^7 {
				t.Fatalf("%s: record %d at offset %d size %d (payload %d), want offset %d", what, rec.Seq, rec.Offset, rec.Size, len(rec.Payload), want)
			}
			if rec.Timestamp < at[i].lo || rec.Timestamp > at[i].hi {
				t.Fatalf("%s: record %d timestamp %d outside its Append [%d, %d]", what, rec.Seq, rec.Timestamp, at[i].lo, at[i].hi)
			}
			if i > 0 && rec.Timestamp < prev.Timestamp {
				t.Fatalf("%s: record %d timestamp %d before record %d's %d", what, rec.Seq, rec.Timestamp, prev.Seq, prev.Timestamp)
			}
			prev = rec
		}
	}
	read := func(l *Log) func(uint64) Record {
		return func(seq uint64) Record {
			rec, err := l.Read(seq, nil)
			if err != nil {
				t.Fatalf("Read(%d): %v", seq, err)
			}
			return rec
		}
	}
	check("Read", read(l))
	r, err := l.NewReader(1, Written, CopyPayloads())
	if err != nil {
		t.Fatal(err)
	}
	check("Reader", func(seq uint64) Record {
		if !r.Next() {
			t.Fatalf("Reader stopped before %d: %v", seq, r.Err())
		}
		return r.Record()
	})
	r.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, cfg)
	defer l.Close()
	check("Read after reopen", read(l))
}
