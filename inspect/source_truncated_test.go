package inspect_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/vfs"
)

// Issue 12 §2: the tool's reader (package reader over an inspect.Source) reports records the writer removed with
// the library's own *aof.TruncatedError (one type for aof dump, tail -f
// and aof.Reader), matching aof.ErrTruncated and saying where to go on.
func TestToolReaderReportsTheLibrarysTruncatedError(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := aof.Open(dir, aof.Config{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 2000 {
		if _, err := l.Append(ctx, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateFront(ctx, 1500); err != nil {
		t.Fatal(err)
	}
	src, err := inspect.OpenSource(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := reader.New(src, 10, reader.Written)
	if err == nil {
		defer r.Close()
		if r.Next() {
			t.Fatalf("Next read seq %d, below the front", r.Record().Seq)
		}
		err = r.Err()
	}
	var te *aof.TruncatedError
	if !errors.As(err, &te) || !errors.Is(err, aof.ErrTruncated) {
		t.Fatalf("err = %v (%T), want an *aof.TruncatedError", err, err)
	}
	if te.Seq != 10 || te.Back || te.First > 1500 || te.Continue() != te.First {
		t.Fatalf("TruncatedError %+v: want Seq 10, Back false, First at most 1500, Continue() = First", *te)
	}
}
