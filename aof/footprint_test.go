package aof

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
