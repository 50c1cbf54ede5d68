package inspect_test

import (
	"context"
	"errors"
	"testing"

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
	l := openLiveLog(t, dir)
	appendDurable(t, l, 1, 3000)
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files) < 5 {
		t.Fatalf("want 5 segments or more, got %d", len(d.Files))
	}
	src, r := openReader(t, dir, 1)
	if !r.Next() || r.Record().Seq != 1 {
		t.Fatalf("first Next: %v", r.Err())
	}
	front := d.Files[3].BaseSeq
	if err := l.TruncateFront(ctx, front); err != nil {
		t.Fatal(err)
	}
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
