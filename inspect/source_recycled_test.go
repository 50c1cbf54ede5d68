package inspect_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/vfs"
)

// Issue 15 review: a tool's Reader holds a mapping of a segment file that
// retention drops; the writer recycles the file (the default pool of one)
// and writes a new life into it, which the tool's shared mapping shows.
// As for a deleted file (TestSourceReportsRetention), the records the
// writer removed are a *TruncatedError, never corruption: the new life's
// frames, salted anew, are not the old segment's records.
func TestSourceReaderOfARecycledFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, src, r, d := readerBehindRetention(ctx, t, dir)
	front := d.Files[3].BaseSeq
	// Until the pooled file was reused, then two segments more: the
	// recycled file is active, written and sealed.
	next := uint64(3001)
	for l.Metrics().RecycledSegments == 0 {
		appendDurable(t, l, next, next+99)
		next += 100
	}
	appendDurable(t, l, next, next+1999)
	seqs, err := drain(t, src, r)
	var te *inspect.TruncatedError
	if !errors.As(err, &te) || te.Back || te.Seq != 2+uint64(len(seqs)) || te.First != front {
		t.Fatalf("after retention and recycling: read %d records, then %v (%T), want a *TruncatedError for seq %d with First %d",
			len(seqs), err, err, 2+len(seqs), front)
	}
	checkRange(t, seqs, 2, te.Seq-1)
}

// Issue 15 review: Verify of a live log checks a sealed segment from its
// mapping while retention drops it and the writer recycles its file and
// writes a new life into it. The segment is no longer part of the log:
// like a segment removed while it is verified, it has no problems.
func TestVerifyOfAFileRecycledMeanwhile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := aof.Open(dir, aof.Config{SegmentSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	payload := make([]byte, 4000)
	appendN := func(n int) {
		t.Helper()
		var id aof.RecordID
		for range n {
			if id, err = l.Append(ctx, payload); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.FlushUntil(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	appendN(3 * 4100) // three segments
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files) < 3 {
		t.Fatalf("want 3 segments or more, got %d", len(d.Files))
	}
	first := d.Files[0]
	recycled := false
	// At the first progress report, 8 MiB into the first segment: drop
	// it, and write on until its file is reused and written over.
	progress := func(done, total int64) {
		if recycled {
			return
		}
		recycled = true
		if err := l.TruncateFront(ctx, d.Files[1].BaseSeq); err != nil {
			t.Fatal(err)
		}
		for l.Metrics().RecycledSegments == 0 {
			appendN(100)
		}
		appendN(2 * 4100)
	}
	v := inspect.Verify(d, progress)
	if !recycled {
		t.Fatal("no progress report")
	}
	if _, err := os.Stat(filepath.Join(d.SegPath, first.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still there: %v", first.Name, err)
	}
	if n := len(v.Problems); n > 0 {
		p := v.Problems[0]
		t.Fatalf("%d problems, the first: %s at %d: %v", n, p.File, p.Offset, p.Err)
	}
}
