package segment

import (
	"bytes"
	"sync"
	"testing"

	"github.com/aof2/aof2/vfs/vfstest"
)

// writeRecorder records the writes a FaultFS sees, in order.
type writeRecorder struct {
	mu     sync.Mutex
	writes [][2]int64 // offset, length
}

func (w *writeRecorder) fault(op vfstest.Op) error {
	if op.Kind == vfstest.OpWrite {
		w.mu.Lock()
		w.writes = append(w.writes, [2]int64{op.Off, int64(len(op.Data))})
		w.mu.Unlock()
	}
	return nil
}

func (w *writeRecorder) take() [][2]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.writes
	w.writes = nil
	return ws
}

// checkPieces fails t unless ws are contiguous writes covering [from, to),
// none longer than WriteChunk, each after the first starting at a multiple
// of WriteChunk.
func checkPieces(t *testing.T, what string, ws [][2]int64, from, to int64) {
	t.Helper()
	if len(ws) < 2 {
		t.Fatalf("%s [%d, %d): %d writes %v, want it in pieces of at most %d bytes", what, from, to, len(ws), ws, WriteChunk)
	}
	at := from
	for i, w := range ws {
		if w[0] != at || w[1] <= 0 || w[1] > WriteChunk || i > 0 && w[0]%WriteChunk != 0 {
			t.Fatalf("%s [%d, %d): write %d of %v is [%d, +%d); want it at %d, at most %d bytes, aligned after the first", what, from, to, i, ws, w[0], w[1], at, WriteChunk)
		}
		at += w[1]
	}
	if at != to {
		t.Fatalf("%s [%d, %d): writes %v end at %d", what, from, to, ws, at)
	}
}

// TestWriteOutWritesInPieces: WriteOut writes a long run of frames with
// pwrites of at most WriteChunk bytes, aligned to it (the first up to the
// next multiple), and the file then holds exactly the frames; Prewrite
// writes its zeros the same way. (Large writes make the page cache take
// 2 MiB folios, which on a VM that returns free memory to its host cost
// up to twenty times more to fault in; small ones make mapped reads dear.)
func TestWriteOutWritesInPieces(t *testing.T) {
	rec := &writeRecorder{}
	ff := vfstest.NewFaultFS(nil)
	s, err := Prepare(ff, t.TempDir(), 1, 8*WriteChunk, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	ff.SetFault(rec.fault)
	zeros := make([]byte, 3*WriteChunk)
	if err := s.Prewrite(WriteChunk/2, zeros, false); err != nil {
		t.Fatal(err)
	}
	checkPieces(t, "Prewrite", rec.take(), WriteChunk/2, WriteChunk/2+int64(len(zeros)))
	if err := s.Activate(1, 1, 1); err != nil {
		t.Fatal(err)
	}
	rec.take() // the header
	payload := bytes.Repeat([]byte{0xa5}, 1000)
	for range 3 * WriteChunk / 1000 { // frames over three pieces and more
		off, seq, err := s.Reserve(FrameSize(len(payload)), 1)
		if err != nil {
			t.Fatal(err)
		}
		s.Fill(off, seq, payload, 1)
	}
	end, _ := s.Advance()
	if n, err := s.WriteOut(); err != nil || n != end-HeaderSize {
		t.Fatalf("WriteOut = %d, %v; want %d, nil", n, err, end-HeaderSize)
	}
	checkPieces(t, "WriteOut", rec.take(), HeaderSize, end)
	got := make([]byte, end-HeaderSize)
	if _, err := s.file.ReadAt(got, HeaderSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, s.buf[HeaderSize:end]) {
		t.Fatal("the file's bytes differ from the frames written out")
	}
}
