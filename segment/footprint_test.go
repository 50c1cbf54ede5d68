package segment

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/vfs"
)

// Tests of the append buffer's footprint: faulted in a window at a time,
// released behind the durable end unless a lease still reads there.

// resident returns how many bytes of b are resident (mincore).
func resident(t *testing.T, b []byte) int64 {
	t.Helper()
	page := unix.Getpagesize()
	vec := make([]byte, (len(b)+page-1)/page)
	if len(b) == 0 {
		return 0
	}
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	var n int64
	for _, v := range vec {
		if v&1 != 0 {
			n += int64(page)
		}
	}
	return n
}

// newSized prepares and activates a segment of size bytes.
func newSized(t *testing.T, size int64) *Segment {
	t.Helper()
	s, err := Prepare(vfs.Default, t.TempDir(), 1, size, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(1, 1, 1); err != nil {
		s.Discard()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Release() })
	return s
}

// TestPrepareFaultsInOnlyAWindow: a prepared 64 MiB segment's append
// buffer is not faulted in whole (it was, ahead of time), only a small
// window ahead of the first append.
func TestPrepareFaultsInOnlyAWindow(t *testing.T) {
	s := newSized(t, 64<<20)
	if got, limit := resident(t, s.buf), 2*s.step; got > limit {
		t.Fatalf("%d bytes of the append buffer resident after Prepare, want at most %d", got, limit)
	}
}

// fillDurable appends records of payloads of n bytes up to about to bytes
// into s, and writes and syncs them, returning the offset of each record.
func fillDurable(t *testing.T, s *Segment, n int, to int64) []int64 {
	t.Helper()
	var offs []int64
	for {
		end, _ := s.Reserved()
		if end+FrameSize(n) > to {
			break
		}
		off, seq, err := s.Reserve(FrameSize(n), 1)
		if err != nil {
			t.Fatal(err)
		}
		s.Fill(off, seq, payloadOf(seq, n), 1)
		offs = append(offs, off)
	}
	end, _ := s.Advance()
	if _, err := s.WriteOut(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.MarkDurable(end)
	return offs
}

func payloadOf(seq uint64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(seq*31 + uint64(i))
	}
	return p
}

// TestTrimKeepsWhatALeaseHolds: a zero-copy reader holding a lease on a
// record keeps its bytes valid while the writer goes far ahead and Trim
// releases the append buffer behind the durable end; the pages below the
// lease's floor are released, and every record still reads back (through
// the file mapping).
func TestTrimKeepsWhatALeaseHolds(t *testing.T) {
	const size = 8 << 20
	s := newSized(t, size)
	lease, err := s.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Unlease()
	offs := fillDurable(t, s, 4000, 2<<20)
	held := len(offs) - 1 // the last record below 2 MiB
	rec, _, ok, err := s.ViewFrame(offs[held])
	if !ok || err != nil {
		t.Fatalf("ViewFrame: ok %v, %v", ok, err)
	}
	lease.Advance(offs[held])
	want := payloadOf(rec.Seq, 4000)

	// The writer goes far ahead; everything is durable.
	offs = append(offs, fillDurable(t, s, 4000, 7<<20)[0:]...)
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	floor := s.alignDown(offs[held])
	if s.bufStart.Load() != floor {
		t.Fatalf("Trim with a lease at %d: bufStart %d, want %d", offs[held], s.bufStart.Load(), floor)
	}
	if !bytes.Equal(rec.Payload, want) {
		t.Fatal("the payload a lease holds changed when the append buffer was trimmed")
	}
	if got := resident(t, s.buf[:floor]); got != 0 {
		t.Fatalf("%d bytes of the append buffer below the lease's floor %d still resident", got, floor)
	}

	// The lease moves on: everything durable is released.
	last := offs[len(offs)-1]
	rec, _, ok, err = s.ViewFrame(last)
	if !ok || err != nil {
		t.Fatalf("ViewFrame: ok %v, %v", ok, err)
	}
	lease.Advance(last)
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	if want := s.alignDown(last); s.bufStart.Load() != want {
		t.Fatalf("Trim with the lease at %d: bufStart %d, want %d", last, s.bufStart.Load(), want)
	}
	if !bytes.Equal(rec.Payload, payloadOf(rec.Seq, 4000)) {
		t.Fatal("the payload a lease holds changed when the append buffer was trimmed")
	}
	for i, off := range offs {
		seq := uint64(i + 1)
		r, err := s.Read(seq, nil)
		if err != nil || r.Offset != off || !bytes.Equal(r.Payload, payloadOf(seq, 4000)) {
			t.Fatalf("Read(%d) after Trim: offset %d (want %d), %v, payload ok %v", seq, r.Offset, off, err, bytes.Equal(r.Payload, payloadOf(seq, 4000)))
		}
	}
	// Appends go on past the trimmed part.
	more := fillDurable(t, s, 4000, 7<<20+64<<10)
	for _, off := range more {
		if r, _, ok, err := s.ViewFrame(off); !ok || err != nil || !bytes.Equal(r.Payload, payloadOf(r.Seq, 4000)) {
			t.Fatalf("ViewFrame(%d) of a record appended after Trim: ok %v, %v", off, ok, err)
		}
	}
}

// TestTrimWithoutLeasesStopsAtTheDurableEnd: bytes not yet durable are
// never released, and a lease taken after a Trim starts at its floor.
func TestTrimWithoutLeasesStopsAtTheDurableEnd(t *testing.T) {
	s := newSized(t, 8<<20)
	fillDurable(t, s, 4000, 3<<20)
	durable := s.Durable()
	// Appended, written, but not durable.
	end, _ := s.Reserved()
	off, seq, err := s.Reserve(FrameSize(100), 1)
	if err != nil || off != end {
		t.Fatal(err)
	}
	s.Fill(off, seq, payloadOf(seq, 100), 1)
	s.Advance()
	if _, err := s.WriteOut(); err != nil {
		t.Fatal(err)
	}
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	if want := s.alignDown(durable); s.bufStart.Load() != want {
		t.Fatalf("bufStart %d after Trim, want %d (durable end %d)", s.bufStart.Load(), want, durable)
	}
	lease, err := s.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Unlease()
	if lease.floor.Load() != s.bufStart.Load() {
		t.Fatalf("a new lease's floor %d, want bufStart %d", lease.floor.Load(), s.bufStart.Load())
	}
	if r, err := s.Read(seq, nil); err != nil || !bytes.Equal(r.Payload, payloadOf(seq, 100)) {
		t.Fatalf("Read of the record not yet durable: %v", err)
	}
}

// TestWarmFollowsTheAppendRate: Warm faults in four times what was
// appended since the last call ahead of the reserved end, at least a step
// and at most warmAhead, asks again halfway there (WarmAt), and never
// faults in again what Trim released.
func TestWarmFollowsTheAppendRate(t *testing.T) {
	s := newSized(t, 64<<20)
	fillDurable(t, s, 100, HeaderSize+4<<10) // a few records: idle
	s.Warm()
	end, _ := s.Reserved()
	if want := s.alignUp(end + s.step); s.warmed != want {
		t.Fatalf("idle: warmed to %d, want %d (end %d + a step)", s.warmed, want, end)
	}
	if want := end + (s.warmed-end)/2; s.WarmAt() != want {
		t.Fatalf("idle: WarmAt %d, want %d (halfway from %d to %d)", s.WarmAt(), want, end, s.warmed)
	}
	if got, limit := resident(t, s.buf), 3*s.step; got > limit {
		t.Fatalf("idle: %d bytes resident, want at most %d", got, limit)
	}
	fillDurable(t, s, 4000, 1<<20+HeaderSize) // about 1 MiB since
	s.Warm()
	end2, _ := s.Reserved()
	if want := s.alignUp(end2 + min(warmAhead, 4*(end2-end))); s.warmed != want {
		t.Fatalf("after %d bytes: warmed to %d, want %d", end2-end, s.warmed, want)
	}
	fillDurable(t, s, 4000, 20<<20) // a burst
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	s.Warm()
	end3, _ := s.Reserved()
	if want := s.alignUp(end3 + warmAhead); s.warmed != want {
		t.Fatalf("after a burst: warmed to %d, want %d (at most warmAhead ahead)", s.warmed, want)
	}
	if got, limit := resident(t, s.buf[:s.bufStart.Load()]), int64(0); got > limit {
		t.Fatalf("%d bytes resident below bufStart %d after Warm", got, s.bufStart.Load())
	}
	if got, limit := resident(t, s.buf), s.warmed-s.bufStart.Load(); got > limit {
		t.Fatalf("%d bytes resident, more than [bufStart %d, warmed %d)", got, s.bufStart.Load(), s.warmed)
	}
}

// TestUnmapAndMapAgain: a sealed segment's mapping can be dropped only
// while no lease holds it; a read or a lease maps it again (and tells the
// owner, OnMap); once released, it is not mapped again.
func TestUnmapAndMapAgain(t *testing.T) {
	s, err := Prepare(vfs.Default, t.TempDir(), 1, MinSize, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(1, 1, 1); err != nil {
		t.Fatal(err)
	}
	offs := fillDurable(t, s, 100, 8<<10)
	if ok, err := s.Unmap(); ok || err != nil {
		t.Fatalf("Unmap of a segment not sealed: %v, %v", ok, err)
	}
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
	maps := 0
	s.OnMap(func() { maps++ })

	lease, err := s.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Unmap(); ok || err != nil {
		t.Fatalf("Unmap of a leased segment: %v, %v", ok, err)
	}
	lease.Unlease()
	if !s.Referenced() || s.Referenced() {
		t.Fatal("Referenced after a lease: want true once, then false")
	}
	if ok, err := s.Unmap(); !ok || err != nil {
		t.Fatalf("Unmap of a sealed segment nobody leases: %v, %v", ok, err)
	}
	if s.rmap != nil {
		t.Fatal("the mapping is still there after Unmap")
	}
	// A read maps it again.
	for i, off := range offs {
		seq := uint64(i + 1)
		r, err := s.Read(seq, nil)
		if err != nil || r.Offset != off || !bytes.Equal(r.Payload, payloadOf(seq, 100)) {
			t.Fatalf("Read(%d) after Unmap: %v", seq, err)
		}
	}
	if maps != 1 {
		t.Fatalf("OnMap called %d times for one mapping again, want 1", maps)
	}
	// So does a lease.
	if ok, _ := s.Unmap(); !ok {
		t.Fatal("second Unmap refused")
	}
	lease, err = s.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if rec, _, ok, err := s.ViewFrame(offs[0]); !ok || err != nil || !bytes.Equal(rec.Payload, payloadOf(1, 100)) {
		t.Fatalf("ViewFrame under a lease after Unmap: ok %v, %v", ok, err)
	}
	lease.Unlease()
	if maps != 2 {
		t.Fatalf("OnMap called %d times, want 2", maps)
	}
	if ok, _ := s.Unmap(); !ok {
		t.Fatal("third Unmap refused")
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(1, nil); !errors.Is(err, ErrReleased) {
		t.Fatalf("Read of a released, unmapped segment: %v, want ErrReleased", err)
	}
	if _, err := s.Acquire(); !errors.Is(err, ErrReleased) {
		t.Fatalf("Acquire of a released, unmapped segment: %v, want ErrReleased", err)
	}
	if ok, err := s.Unmap(); !ok || err != nil {
		t.Fatalf("Unmap of a released segment: %v, %v (want: no longer mapped)", ok, err)
	}
}

// isMapped reports whether the page at b[0] is mapped (mincore fails with
// ENOMEM on an unmapped range).
func isMapped(b []byte) bool {
	var vec [1]byte
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(unix.Getpagesize()), uintptr(unsafe.Pointer(&vec[0])))
	return errno == 0
}

// TestWarmKeepsTheBufferMappedThroughARelease: the owner releasing the
// active segment while Warm faults its append buffer in (a TruncateBack or
// Reset dropping it, on another goroutine than the log's preparer) leaves
// the buffer mapped until Warm is done, then unmaps it. Before, Release
// unmapped it under Warm, which went on with madvise on an address range
// the process may have mapped again for something else.
func TestWarmKeepsTheBufferMappedThroughARelease(t *testing.T) {
	s, err := Prepare(vfs.Default, t.TempDir(), 1, 1<<20, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(1, 1, 1); err != nil {
		s.Discard()
		t.Fatal(err)
	}
	buf := s.buf
	var mappedDuring bool
	s.warmHook = func() {
		if err := s.Release(); err != nil {
			t.Error(err)
		}
		mappedDuring = isMapped(buf)
	}
	s.Warm()
	if !mappedDuring {
		t.Fatal("Release unmapped the append buffer while Warm was faulting it in")
	}
	if isMapped(buf) {
		t.Fatal("the append buffer of a released segment is still mapped after Warm")
	}
}
