package segment

import (
	"bytes"
	"testing"
)

// Tests of Lease.Window, the frames a lease holder reads in order without
// a call per frame.

// windowFrames reads the frames of l's window from off, checking each
// against payloadOf, and returns the seq of each and where it stopped.
func windowFrames(t *testing.T, l *Lease, off int64, n int) (seqs []uint64, end int64) {
	t.Helper()
	b, lim := l.Window(off)
	for off < lim {
		h := DecodeFrameHeader(b[off:])
		p, err := VerifyFrame(b[off:], h, l.s.hdr.Salt)
		if err != nil {
			t.Fatalf("frame at %d in the window (up to %d): %v", off, lim, err)
		}
		if !bytes.Equal(p, payloadOf(h.Seq, n)) {
			t.Fatalf("frame at %d in the window holds the wrong payload for seq %d", off, h.Seq)
		}
		seqs = append(seqs, h.Seq)
		off += FrameSize(int(h.Len))
	}
	return seqs, off
}

// TestLeaseWindowHoldsOnlyCompleteFrames: a lease's window never reaches
// past a frame that is reserved but not published, nor past the prefix the
// flusher found published (Lease.ViewFrame reads the frames after it, one
// at a time); below the append buffer's start it is the file mapping, up
// to that start; once sealed it is the whole data.
func TestLeaseWindowHoldsOnlyCompleteFrames(t *testing.T) {
	const n = 100
	s := newSized(t, 8<<20)
	l, err := s.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlease()
	var offs []int64
	for range 3 {
		off, _, err := s.Reserve(FrameSize(n), 1)
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	s.Fill(offs[0], 1, payloadOf(1, n), 1)
	s.Fill(offs[2], 3, payloadOf(3, n), 1)
	if _, lim := l.Window(HeaderSize); lim > HeaderSize {
		t.Fatalf("window up to %d before the flusher looked; want none", lim)
	}
	if rec, _, ok, err := l.ViewFrame(HeaderSize); !ok || err != nil || rec.Seq != 1 {
		t.Fatalf("Lease.ViewFrame of a published frame the flusher did not see: seq %d, ok %v, %v", rec.Seq, ok, err)
	}
	s.Advance()
	if seqs, end := windowFrames(t, l, HeaderSize, n); len(seqs) != 1 || end != offs[1] {
		t.Fatalf("window with seq 2 unpublished: seqs %v up to %d; want [1] up to %d", seqs, end, offs[1])
	}
	if _, _, ok, err := l.ViewFrame(offs[1]); ok || err != nil {
		t.Fatalf("Lease.ViewFrame of a reserved, unfilled frame: ok %v, %v", ok, err)
	}
	s.Fill(offs[1], 2, payloadOf(2, n), 1)
	s.Advance()
	if seqs, end := windowFrames(t, l, offs[1], n); len(seqs) != 2 || seqs[1] != 3 {
		t.Fatalf("window after seq 2 was published: seqs %v up to %d; want [2 3]", seqs, end)
	}

	// Durable far ahead, the lease moved on: the buffer's start rises,
	// and the window below it is the file mapping, up to that start.
	offs = append(offs, fillDurable(t, s, n, 3<<20)...)
	end, _ := s.Reserved()
	l.Advance(end)
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	start := s.bufStart.Load()
	if start <= HeaderSize {
		t.Fatal("Trim released nothing")
	}
	seqs, stop := windowFrames(t, l, HeaderSize, n)
	if stop < start || stop >= start+FrameSize(n) {
		t.Fatalf("window below the buffer's start %d: %d frames up to %d", start, len(seqs), stop)
	}
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("window frame %d holds seq %d", i, seq)
		}
	}

	// Sealed: the window is the whole data, through the file mapping.
	s.Close()
	if err := s.WriteFooter(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishSeal(); err != nil {
		t.Fatal(err)
	}
	seqs, stop = windowFrames(t, l, HeaderSize, n)
	if len(seqs) != len(offs) || stop != end {
		t.Fatalf("window of the sealed segment: %d frames up to %d; want %d up to %d", len(seqs), stop, len(offs), end)
	}
}
