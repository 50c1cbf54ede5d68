package segment

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aof2/aof2/vfs"
)

// recycledImage returns the bytes of a recycled file between Recycle and
// the first sync of its new life (index 5, base 100, salt salt): an
// earlier life's sealed segment (other salt) whose header is the pool
// header and whose trailer is zeroed; with frames, the new life's first
// two records follow the header, the second vouching for the first.
func recycledImage(t *testing.T, salt uint64, frames bool) []byte {
	t.Helper()
	b := writeTestSegment(t, t.TempDir(), []int{100, 3000, 5000, 20, 64}, true)
	EncodeHeader(b, PoolHeader(fuzzSize, salt))
	clear(b[fuzzSize-TrailerSize:])
	if frames {
		off := int64(HeaderSize)
		for i, hint := range []int64{HeaderSize, HeaderSize + FrameSize(10)} {
			fr := b[off : off+FrameSize(10)]
			clear(fr)
			w := EncodeFrame(fr, []byte("new life 0"), 100+uint64(i), 2, hint, salt)
			copy(fr[8:16], w[:])
			off += FrameSize(10)
		}
	}
	return b
}

// readHeaderOf writes b as the segment file Name(5, 100) and reads its
// header as recovery does.
func readHeaderOf(t *testing.T, b []byte) error {
	t.Helper()
	dir := t.TempDir()
	name := Name(5, 100)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := vfs.Default.OpenReadOnly(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = ReadHeader(f, name)
	return err
}

// recycleAs writes old (an earlier life's segment file) as the pool file
// pool, recycles it and activates it as segment fuzzIndex+1 at base.
func recycleAs(t *testing.T, pool string, old []byte, base uint64) *Segment {
	t.Helper()
	if err := os.WriteFile(pool, old, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Recycle(vfs.Default, pool, fuzzSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(fuzzIndex+1, base, time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	return s
}

// A power cut while a recycled file gets its segment header (Activate
// writes it over the synced pool header, and renames the file) leaves the
// pool header, or a prefix of the new header followed by the pool
// header's bytes: the segment held nothing durable in this life
// (ErrNoHeader), unless a frame of this life vouches for a sync
// (ErrCorrupt). A single flipped bit in the complete header is damage,
// never taken for a torn write.
func TestRecycledHeaderTornOverPoolHeader(t *testing.T) {
	const salt = 0xabcdef12345
	want := Header{Index: 5, BaseSeq: 100, Size: fuzzSize, Created: 1 << 40, Salt: salt, Recycled: true}
	var hb [HeaderSize]byte
	EncodeHeader(hb[:], want)
	for _, frames := range []bool{false, true} {
		for k := 0; k < HeaderSize; k++ {
			b := recycledImage(t, salt, frames)
			copy(b[:k], hb[:k])
			err := readHeaderOf(t, b)
			if !frames && !errors.Is(err, ErrNoHeader) {
				t.Fatalf("header torn after %d bytes over the pool header, nothing synced: %v, want ErrNoHeader", k, err)
			}
			if frames && (!errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNoHeader)) {
				t.Fatalf("header torn after %d bytes over the pool header, a record vouching for a sync: %v, want ErrCorrupt", k, err)
			}
		}
	}
	for i := range HeaderSize * 8 {
		b := recycledImage(t, salt, false)
		copy(b, hb[:])
		b[i/8] ^= 1 << (i % 8)
		if err := readHeaderOf(t, b); errors.Is(err, ErrNoHeader) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit %d of a recycled file's complete header flipped: %v, want ErrCorrupt", i, err)
		}
	}
}

// Recycle gives the file a new salt and a pool header, and Activate a
// header saying "recycled" with the same salt: the earlier life's records,
// footer and trailer are not read; the new life's are, and the stale bytes
// past them are no torn tail, but for the one frame at the data end, which
// has the sequence number and offset a frame of this life would have
// there (see Segment.ownAt: it is reported as a torn tail of one frame).
func TestRecycleNewLife(t *testing.T) {
	dir := t.TempDir()
	old := writeTestSegment(t, dir, []int{100, 3000, 5000, 20, 64, 4096, 4096}, true)
	pool := filepath.Join(dir, "00000000000000000001"+PoolSuffix)
	s := recycleAs(t, pool, old, fuzzBase)
	// The same base sequence number as the earlier life: its frames hold
	// the sequence numbers the new life gives, at the same offsets.
	for _, n := range []int{100, 3000} {
		off, seq, err := s.Reserve(FrameSize(n), 1)
		if err != nil {
			t.Fatal(err)
		}
		s.Fill(off, seq, make([]byte, n), time.Now().UnixNano())
	}
	end, _ := s.Advance()
	if _, err := s.WriteOut(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.MarkDurable(end)
	name := filepath.Base(s.Path())
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pool); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pool file still there after Activate: %v", err)
	}
	o, err := Open(vfs.Default, dir, name)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Release()
	h := o.Header()
	if o.Sealed() || !h.Recycled || h.Salt == 0 {
		t.Fatalf("recycled segment: sealed %v, header %+v", o.Sealed(), h)
	}
	old0, _ := DecodeHeader(old)
	if h.Salt == old0.Salt {
		t.Fatal("the new life has the earlier life's salt")
	}
	r := o.Scan(0)
	if r.Count != 2 || r.End != end || r.Garbage != FrameSize(5000) || r.Corrupt != nil {
		t.Fatalf("scan of the recycled segment: %+v; want 2 records ending at %d, the next frame's %d bytes of garbage", r, end, FrameSize(5000))
	}
	if _, err := o.Read(fuzzBase+2, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read of the earlier life's third record: %v, want ErrNotFound", err)
	}
}

// A tool following a live log (OpenReadOnly, Observe) over a recycled
// segment finds the earlier life's bytes past the records of this life:
// they are not this life's (other sequence numbers, older timestamps), so
// Observe must not call the segment stuck (which sends the tool to Judge
// the whole rest of the file at every look); a damaged frame of this life
// there still is.
func TestObserveRecycledTailIsNotStuck(t *testing.T) {
	dir := t.TempDir()
	old := writeTestSegment(t, dir, []int{100, 3000, 5000, 20, 64, 4096, 4096}, true)
	// Other sequence numbers than the earlier life's.
	s := recycleAs(t, filepath.Join(dir, "00000000000000000001"+PoolSuffix), old, fuzzBase+1000)
	offs := fillDurable(t, s, 100, HeaderSize+2*FrameSize(100))
	name := filepath.Base(s.Path())
	path := s.Path()
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	observe := func() (bool, uint64) {
		t.Helper()
		o, err := OpenReadOnly(vfs.Default, dir, name)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Release()
		stuck := o.Observe(math.MaxUint64)
		_, n := o.Reserved()
		return stuck, n
	}
	if stuck, n := observe(); stuck || n != 2 {
		t.Fatalf("Observe of a recycled segment with the earlier life's bytes past its 2 records: stuck %v, %d records readable", stuck, n)
	}
	// The second record of this life damaged: that is this life's frame.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[offs[1]+FrameHeaderSize] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if stuck, n := observe(); !stuck || n != 1 {
		t.Fatalf("Observe of a recycled segment whose second record is damaged: stuck %v, %d records readable; want stuck after 1", stuck, n)
	}
}
