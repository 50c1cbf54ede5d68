package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/aof2/aof2/vfs"
)

// Unit tests of a segment's reservation, publication and leases.

// newActive prepares and activates a segment of MinSize in a temporary
// directory, as segment 1 from seq 1.
func newActive(t *testing.T) *Segment {
	t.Helper()
	s, err := Prepare(vfs.Default, t.TempDir(), 1, MinSize, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(1, 1, 1); err != nil {
		s.Discard()
		t.Fatal(err)
	}
	return s
}

func TestReserveFillAdvance(t *testing.T) {
	s := newActive(t)
	defer s.Release()
	n := FrameSize(100)
	offA, seqA, err := s.Reserve(n, 1)
	if err != nil || offA != HeaderSize || seqA != 1 {
		t.Fatalf("first Reserve = %d, %d, %v; want %d, 1, nil", offA, seqA, err, HeaderSize)
	}
	offB, seqB, err := s.Reserve(2*n, 2)
	if err != nil || offB != HeaderSize+n || seqB != 2 {
		t.Fatalf("second Reserve = %d, %d, %v; want %d, 2, nil", offB, seqB, err, HeaderSize+n)
	}
	if end, count := s.Reserved(); end != HeaderSize+3*n || count != 3 {
		t.Fatalf("Reserved = %d, %d; want %d, 3", end, count, HeaderSize+3*n)
	}
	if !s.Contains(3) || s.Contains(4) || s.Contains(0) {
		t.Fatal("Contains disagrees with the reservations (seqs 1-3)")
	}
	// Frames published out of order: Advance stops at the first that is
	// not published yet, and a frame reserved but not filled is not
	// readable (ok false, no error).
	s.Fill(offB, seqB, bytes.Repeat([]byte{'b'}, 100), 20)
	if end, count := s.Advance(); end != HeaderSize || count != 0 {
		t.Fatalf("Advance with the first frame unpublished = %d, %d; want %d, 0", end, count, HeaderSize)
	}
	if _, _, ok, err := s.ViewFrame(offA); ok || err != nil {
		t.Fatalf("ViewFrame of a reserved, unfilled frame: ok %v, %v", ok, err)
	}
	s.Fill(offA, seqA, bytes.Repeat([]byte{'a'}, 100), 10)
	if end, count := s.Advance(); end != HeaderSize+2*n || count != 2 {
		t.Fatalf("Advance = %d, %d; want %d, 2", end, count, HeaderSize+2*n)
	}
	s.Fill(offB+n, seqB+1, bytes.Repeat([]byte{'c'}, 100), 30)
	if end, count := s.Advance(); end != HeaderSize+3*n || count != 3 {
		t.Fatalf("Advance = %d, %d; want %d, 3", end, count, HeaderSize+3*n)
	}
	for seq, want := range map[uint64]byte{1: 'a', 2: 'b', 3: 'c'} {
		rec, err := s.Read(seq, nil)
		if err != nil || rec.Seq != seq || !bytes.Equal(rec.Payload, bytes.Repeat([]byte{want}, 100)) || rec.Timestamp != int64(seq)*10 {
			t.Fatalf("Read(%d) = %+v, %v", seq, rec, err)
		}
	}
	// Past the limit, and after Close, Reserve fails with errFull and
	// changes nothing.
	if _, _, err := s.Reserve(s.Free()+1, 1); !errors.Is(err, errFull) {
		t.Fatalf("Reserve past the limit: %v, want errFull", err)
	}
	end, count := s.Close()
	if end != HeaderSize+3*n || count != 3 || !s.Closed() || s.Free() != 0 {
		t.Fatalf("Close = %d, %d (closed %v, free %d)", end, count, s.Closed(), s.Free())
	}
	if _, _, err := s.Reserve(n, 1); !errors.Is(err, errFull) {
		t.Fatalf("Reserve after Close: %v, want errFull", err)
	}
	if e, c := s.Reserved(); e != end || c != count {
		t.Fatalf("a refused Reserve changed the reservation: %d, %d", e, c)
	}
}

func TestConcurrentReservationsAreDense(t *testing.T) {
	s := newActive(t)
	defer s.Release()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				p := []byte(fmt.Sprintf("w%d-%d", w, i))
				off, seq, err := s.Reserve(FrameSize(len(p)), 1)
				if err != nil {
					t.Error(err)
					return
				}
				s.Fill(off, seq, p, int64(seq))
			}
		})
	}
	wg.Wait()
	end, count := s.Advance()
	if count != writers*each {
		t.Fatalf("Advance counted %d records, want %d", count, writers*each)
	}
	seen := map[string]bool{}
	off := int64(HeaderSize)
	for seq := uint64(1); seq <= count; seq++ {
		rec, next, ok, err := s.readFrame(off, nil)
		if !ok || err != nil || rec.Seq != seq || rec.Timestamp != int64(seq) {
			t.Fatalf("frame at %d: %+v, ok %v, %v; want seq %d", off, rec, ok, err, seq)
		}
		if seen[string(rec.Payload)] {
			t.Fatalf("payload %q twice", rec.Payload)
		}
		seen[string(rec.Payload)] = true
		off = next
	}
	if off != end {
		t.Fatalf("frames end at %d, Advance said %d", off, end)
	}
}

func TestWaitPublishedWaitsForTheCopy(t *testing.T) {
	s := newActive(t)
	defer s.Release()
	off, seq, err := s.Reserve(FrameSize(10), 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	done := make(chan struct{})
	go func() {
		s.WaitPublished()
		close(done)
	}()
	for range 1000 {
		runtime.Gosched()
	}
	select {
	case <-done:
		t.Fatal("WaitPublished returned while a reserved frame was still unfilled")
	default:
	}
	s.Fill(off, seq, []byte("0123456789"), 1)
	<-done
	if end, count := s.Advance(); end != HeaderSize+FrameSize(10) || count != 1 {
		t.Fatalf("Advance after WaitPublished = %d, %d", end, count)
	}
}

func TestLeaseKeepsMappingsAfterRelease(t *testing.T) {
	s := newActive(t)
	p := []byte("leased payload")
	off, seq, err := s.Reserve(FrameSize(len(p)), 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Fill(off, seq, p, 1)
	s.Advance()
	lease, err := s.Acquire()
	if err != nil {
		t.Fatalf("Acquire of a live segment: %v", err)
	}
	rec, _, ok, err := s.ViewFrame(off)
	if !ok || err != nil {
		t.Fatalf("ViewFrame: ok %v, %v", ok, err)
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	// The owner is gone; the lease keeps the bytes mapped.
	if !bytes.Equal(rec.Payload, p) {
		t.Fatalf("leased payload after Release = %q, want %q", rec.Payload, p)
	}
	if again, _, ok, err := s.ViewFrame(off); !ok || err != nil || !bytes.Equal(again.Payload, p) {
		t.Fatalf("ViewFrame under a lease after Release: %q, ok %v, %v", again.Payload, ok, err)
	}
	second, err := s.Acquire()
	if err != nil {
		t.Fatalf("a second lease while one is held: %v", err)
	}
	second.Unlease()
	if _, _, _, err := s.ViewFrame(off); err != nil {
		t.Fatalf("ViewFrame with one lease left: %v", err)
	}
	lease.Unlease() // the last holder: unmapped now
	if _, err := s.Acquire(); !errors.Is(err, ErrReleased) {
		t.Fatal("Acquire succeeded after the owner and every lease let go")
	}
	if _, err := s.Read(seq, nil); !errors.Is(err, ErrReleased) {
		t.Fatalf("Read after the last lease: %v, want ErrReleased", err)
	}
}

// TestReplaceFileSync: the new content replaces the old, a stale ".tmp"
// from an interrupted replace does not get in the way, and none is left.
func TestReplaceFileSync(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "MARK")
	if err := os.WriteFile(path+".tmp", []byte("stale and longer than the mark"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first", "second"} {
		if err := ReplaceFileSync(vfs.Default, path, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Fatalf("after replacing with %q: %q, %v", want, got, err)
		}
		if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a .tmp file is left: %v", err)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v", st.Mode().Perm(), err)
		}
	}
}
