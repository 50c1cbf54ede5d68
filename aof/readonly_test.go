package aof

import (
	"bytes"
	"os"
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
	var sealed, unsealed int
	for _, name := range names {
		if _, _, ok := segment.ParseName(name); !ok {
			continue
		}
		s, err := segment.OpenReadOnly(vfs.Default, segDir, name)
		if err != nil {
			t.Fatalf("OpenReadOnly(%s): %v", name, err)
		}
		if !s.Sealed() {
			// An unsealed segment opened read-only is scanned; its
			// frames up to what the scan found are read with the
			// format's decoders, as tools (inspect) read them.
			unsealed++
			r := s.Scan(0)
			b, err := os.ReadFile(filepath.Join(segDir, name))
			if err != nil {
				t.Fatal(err)
			}
			off := int64(segment.HeaderSize)
			for i := uint64(0); i < r.Count; i++ {
				h := segment.DecodeFrameHeader(b[off:])
				payload, err := segment.VerifyFrame(b[off:], h, s.Header().Salt)
				if err != nil {
					t.Fatalf("%s: frame at %d: %v", name, off, err)
				}
				if h.Seq != seq || !bytes.Equal(payload, payloadFor(seq, 300)) {
					t.Fatalf("%s: frame at %d holds record %d, want %d with its payload", name, off, h.Seq, seq)
				}
				off += segment.FrameSize(len(payload))
				seq++
			}
			if off != r.End {
				t.Fatalf("%s: %d records end at %d, scan says %d", name, r.Count, off, r.End)
			}
			s.Release()
			continue
		}
		sealed++
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
	if seq != n+1 || sealed == 0 || unsealed == 0 {
		t.Fatalf("read %d records (%d sealed segments, %d unsealed), want %d", seq-1, sealed, unsealed, n)
	}
	// The writer is untouched: it still appends and reads.
	id := mustAppend(t, l, []byte("after"))
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
}
