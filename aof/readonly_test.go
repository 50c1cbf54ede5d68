package aof

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// TestSegmentOpenReadOnlyWhileWriting checks that segment.OpenReadOnly
// reads what a running writer made durable, sealed and unsealed, without
// taking the log's lock or changing a byte.
func TestSegmentOpenReadOnlyWhileWriting(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 64 << 10})
	defer l.Close()
	const n = 600
	for i := uint64(1); i <= n; i++ {
		mustAppend(t, l, payloadFor(i, 300))
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	segDir := filepath.Join(dir, "segments")
	names, err := vfs.Default.ReadDir(segDir)
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(1)
	var sealed int
	for _, name := range names {
		if _, _, ok := segment.ParseName(name); !ok {
			continue
		}
		s, err := segment.OpenReadOnly(vfs.Default, segDir, name)
		if err != nil {
			t.Fatalf("OpenReadOnly(%s): %v", name, err)
		}
		if s.Sealed() {
			sealed++
		} else {
			s.Expose(s.Scan(0))
		}
		_, count := s.Reserved()
		for i := uint64(0); i < count; i++ {
			rec, err := s.Read(seq, nil)
			if err != nil {
				t.Fatalf("%s: Read(%d): %v", name, seq, err)
			}
			if !bytes.Equal(rec.Payload, payloadFor(seq, 300)) {
				t.Fatalf("%s: record %d differs", name, seq)
			}
			seq++
		}
		s.Release()
	}
	if seq != n+1 || sealed == 0 {
		t.Fatalf("read %d records (%d sealed segments), want %d", seq-1, sealed, n)
	}
	// The writer is untouched: it still appends and reads.
	id := mustAppend(t, l, []byte("after"))
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
}
