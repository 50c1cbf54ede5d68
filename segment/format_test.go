package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestHeaderRoundTripAndChecks(t *testing.T) {
	h := Header{Index: 7, BaseSeq: 12345, Size: 1 << 20, Created: 1700000000000000000}
	var b [HeaderSize]byte
	EncodeHeader(b[:], h)
	got, err := DecodeHeader(b[:])
	if err != nil || got != h {
		t.Fatalf("DecodeHeader = %+v, %v; want %+v", got, err, h)
	}
	for i := range HeaderSize {
		c := b
		c[i] ^= 1
		if _, err := DecodeHeader(c[:]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipping byte %d of the header went unnoticed", i)
		}
	}
}

func TestCheckSize(t *testing.T) {
	for _, ok := range []int64{MinSize, 1 << 20, 64 << 20, MaxSize} {
		if err := CheckSize(ok); err != nil {
			t.Errorf("CheckSize(%d): %v", ok, err)
		}
	}
	for _, bad := range []int64{0, -1, MinSize / 2, MinSize + 8, 3 << 20, MaxSize * 2} {
		if CheckSize(bad) == nil {
			t.Errorf("CheckSize(%d) accepted", bad)
		}
	}
}

// frame encodes a published frame of payload.
func frame(payload []byte, seq uint64, hint int64) []byte {
	b := make([]byte, FrameSize(len(payload)))
	w := EncodeFrame(b, payload, seq, 42, hint, 0)
	copy(b[8:16], w[:])
	return b
}

func TestFrameChecksumCoversHeaderAndPayload(t *testing.T) {
	payload := []byte("the payload of a record")
	b := frame(payload, 9, HeaderSize)
	if len(b)%Align != 0 {
		t.Fatalf("frame of %d bytes is not aligned", len(b))
	}
	h := DecodeFrameHeader(b)
	if h.Len != uint32(len(payload)) || h.Seq != 9 || h.Timestamp != 42 || h.Hint != HeaderSize {
		t.Fatalf("header %+v", h)
	}
	got, err := VerifyFrame(b, h, 0)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("VerifyFrame = %q, %v", got, err)
	}
	// Every bit of the header after the checksum and of the payload is
	// covered; padding is not.
	for i := 8; i < FrameHeaderSize+len(payload); i++ {
		for bit := range 8 {
			c := append([]byte(nil), b...)
			c[i] ^= 1 << bit
			if _, err := VerifyFrame(c, DecodeFrameHeader(c), 0); err == nil {
				t.Fatalf("flipping bit %d of byte %d went unnoticed", bit, i)
			}
		}
	}
}

// TestReadFrameAgreesWithVerifyFrame: ReadFrame, the readers' one-call
// decode and verify, returns what DecodeFrameHeader and VerifyFrame do for
// a good frame, and VerifyFrame's error for every bit flipped in what the
// checksum covers, for a length running past the data, and for a frame cut
// short.
func TestReadFrameAgreesWithVerifyFrame(t *testing.T) {
	payload := []byte("the payload of a record")
	for _, salt := range []uint64{0, 0x9e3779b97f4a7c15} {
		b := make([]byte, FrameSize(len(payload)))
		w := EncodeFrame(b, payload, 9, 42, HeaderSize, salt)
		copy(b[8:16], w[:])
		seq, ts, got, size, err := ReadFrame(b, salt)
		if err != nil || seq != 9 || ts != 42 || !bytes.Equal(got, payload) || size != FrameSize(len(payload)) || cap(got) != len(payload) {
			t.Fatalf("salt %#x: ReadFrame = %d, %d, %q (cap %d), %d, %v", salt, seq, ts, got, cap(got), size, err)
		}
		check := func(c []byte, salt uint64, what string) {
			t.Helper()
			_, _, p, _, err := ReadFrame(c, salt)
			_, want := VerifyFrame(c, DecodeFrameHeader(c), salt)
			if err == nil || p != nil || !errors.Is(err, ErrCorrupt) || want == nil || err.Error() != want.Error() {
				t.Fatalf("salt %#x: %s: ReadFrame error %v, payload %q; VerifyFrame's %v", salt, what, err, p, want)
			}
		}
		for i := 8; i < FrameHeaderSize+len(payload); i++ {
			c := append([]byte(nil), b...)
			c[i] ^= 0x10
			check(c, salt, fmt.Sprintf("byte %d flipped", i))
		}
		check(b[:FrameHeaderSize+len(payload)-1], salt, "frame cut short")
		c := append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(c[8:], 1<<20)
		check(c, salt, "length past the data")
		// A frame of another life of the file (another salt) never reads.
		check(b, salt^1, "frame of another life")
	}
}

func TestEmptyFrameIsNotZeros(t *testing.T) {
	b := frame(nil, 1, HeaderSize)
	if binary.LittleEndian.Uint64(b[8:]) == 0 {
		t.Fatal("the publish word of an empty record is zero: it could not be told from free space")
	}
	zeros := make([]byte, FrameHeaderSize)
	if _, err := VerifyFrame(zeros, DecodeFrameHeader(zeros), 0); err == nil {
		t.Fatal("zeros verified as a frame")
	}
}

func TestFooterRoundTrip(t *testing.T) {
	f := Footer{Count: 3, FirstSeq: 10, LastSeq: 12, DataEnd: 4096 * 3, DataSum: 99,
		Index: []IndexEntry{{Seq: 10, Offset: HeaderSize}, {Seq: 12, Offset: 8192}}}
	b := make([]byte, FooterSize(len(f.Index)))
	EncodeFooter(b, f, 0)
	got, err := DecodeFooter(b, 0)
	if err != nil || got.Count != f.Count || got.LastSeq != f.LastSeq || got.DataEnd != f.DataEnd || len(got.Index) != 2 || got.Index[1] != f.Index[1] {
		t.Fatalf("DecodeFooter = %+v, %v", got, err)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 4
		if _, err := DecodeFooter(c, 0); err == nil {
			t.Fatalf("flipping byte %d of the footer went unnoticed", i)
		}
	}
}

func TestTrailerAndDurableMark(t *testing.T) {
	var b [TrailerSize]byte
	if _, ok, err := DecodeTrailer(b[:], 0); ok || err != nil {
		t.Fatal("zeros read as a trailer")
	}
	EncodeTrailer(b[:], Trailer{FooterOffset: 4096, FooterLen: 72}, 0)
	if tr, ok, err := DecodeTrailer(b[:], 0); !ok || err != nil || tr.FooterOffset != 4096 || tr.FooterLen != 72 {
		t.Fatalf("DecodeTrailer = %+v, %v, %v", tr, ok, err)
	}
	b[9] ^= 1
	if _, _, err := DecodeTrailer(b[:], 0); !errors.Is(err, ErrCorrupt) {
		t.Fatal("a damaged trailer went unnoticed")
	}
	var m [DurableMarkSize]byte
	EncodeDurableMark(m[:], DurableMark{Index: 3, Offset: 808})
	if got, err := DecodeDurableMark(m[:]); err != nil || got != (DurableMark{Index: 3, Offset: 808}) {
		t.Fatalf("DecodeDurableMark = %+v, %v", got, err)
	}
	m[17] ^= 1
	if _, err := DecodeDurableMark(m[:]); err == nil {
		t.Fatal("a damaged durable mark went unnoticed")
	}
}

func TestNames(t *testing.T) {
	n := Name(12, 3456)
	if i, b, ok := ParseName(n); !ok || i != 12 || b != 3456 {
		t.Fatalf("ParseName(%q) = %d, %d, %v", n, i, b, ok)
	}
	if Name(2, 1) > Name(10, 1) {
		t.Fatal("names do not sort in log order")
	}
	for _, bad := range []string{"x.seg", "1.seg", "1-2.tmp", "a-1.seg"} {
		if _, _, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
}

func TestResvPacking(t *testing.T) {
	w := packResv(MaxSize-TrailerSize, countMask)
	end, count, closed := unpackResv(w | closedBit)
	if end != MaxSize-TrailerSize || count != countMask || !closed {
		t.Fatalf("unpack = %d, %d, %v", end, count, closed)
	}
}

// TestTornHeaderIsNotAFlip: a header torn by a power cut (a prefix of the
// header written on zeros) is told from a header with a flipped bit, at
// every tear point and every bit.
func TestTornHeaderIsNotAFlip(t *testing.T) {
	const index, base = 4, 241
	var h [HeaderSize]byte
	EncodeHeader(h[:], Header{Index: index, BaseSeq: base, Size: MinSize, Created: 1700000000000000000})
	for k := range HeaderSize {
		var torn [HeaderSize]byte
		copy(torn[:k], h[:k])
		if !tornHeader(torn[:], index, base) {
			t.Fatalf("header torn after %d bytes not recognised", k)
		}
		if k > 16 && tornHeader(torn[:], index+1, base) {
			t.Fatalf("header torn after %d bytes accepted for another segment index", k)
		}
	}
	for i := range HeaderSize {
		for bit := range 8 {
			c := h
			c[i] ^= 1 << bit
			if tornHeader(c[:], index, base) {
				t.Fatalf("header with bit %d of byte %d flipped taken for a torn write", bit, i)
			}
		}
	}
}

// Issue 12: a header with a higher format version and a valid checksum is
// ErrUnsupportedVersion, never ErrCorrupt; a lower one (0) is corruption,
// and every other failed check is a *CorruptError at offset 0.
func TestHeaderVersion(t *testing.T) {
	var b [HeaderSize]byte
	EncodeHeader(b[:], Header{Index: 3, BaseSeq: 10, Size: 1 << 20, Created: 1})
	for _, c := range []struct {
		v     uint16
		newer bool
	}{{formatVersion + 1, true}, {0xffff, true}, {0, false}} {
		h := b
		binary.LittleEndian.PutUint16(h[8:], c.v)
		binary.LittleEndian.PutUint64(h[56:], xxhash.Sum64(h[:56]))
		_, err := DecodeHeader(h[:])
		if got := errors.Is(err, ErrUnsupportedVersion); got != c.newer || errors.Is(err, ErrCorrupt) == c.newer {
			t.Errorf("version %d: %v; want newer %v", c.v, err, c.newer)
		}
		var ce *CorruptError
		if !c.newer && (!errors.As(err, &ce) || ce.Offset != 0 || ce.File != "") {
			t.Errorf("version %d: %v; want an unplaced *CorruptError at offset 0", c.v, err)
		}
	}
	// At places a decoder's error in its file; Error names it once.
	_, err := DecodeFooter(make([]byte, 4), 0)
	placed := At(fmt.Errorf("context: %w", err), "f.seg", 4, 1000)
	var ce *CorruptError
	if !errors.As(placed, &ce) || *ce != (CorruptError{File: "f.seg", Segment: 4, Offset: 1000, Reason: "footer: 4 bytes is too short"}) {
		t.Fatalf("At: %#v", ce)
	}
	if want := "aof2: corrupt segment: segment 4 (f.seg) offset 1000: footer: 4 bytes is too short"; placed.Error() != want {
		t.Fatalf("Error() = %q, want %q", placed.Error(), want)
	}
}

// Format version 2: the salt and the recycled flag round-trip; a zero salt
// encodes a version-1 header (what older builds wrote), which still reads.
func TestHeaderVersionsAndSalt(t *testing.T) {
	h := Header{Index: 7, BaseSeq: 12345, Size: 1 << 20, Created: 99, Salt: 0xfeedface, Recycled: true}
	var b [HeaderSize]byte
	EncodeHeader(b[:], h)
	if v := binary.LittleEndian.Uint16(b[8:]); v != 2 {
		t.Fatalf("salted header has version %d, want 2", v)
	}
	if got, err := DecodeHeader(b[:]); err != nil || got != h {
		t.Fatalf("DecodeHeader = %+v, %v; want %+v", got, err, h)
	}
	v1 := Header{Index: 7, BaseSeq: 12345, Size: 1 << 20, Created: 99}
	EncodeHeader(b[:], v1)
	if v := binary.LittleEndian.Uint16(b[8:]); v != 1 {
		t.Fatalf("unsalted header has version %d, want 1", v)
	}
	if got, err := DecodeHeader(b[:]); err != nil || got != v1 {
		t.Fatalf("version 1: DecodeHeader = %+v, %v; want %+v", got, err, v1)
	}
	// Version 2 with a zero salt, or version 1 with one, is damage even
	// with a valid checksum.
	for _, c := range []struct {
		v    uint16
		salt uint64
	}{{2, 0}, {1, 5}} {
		binary.LittleEndian.PutUint16(b[8:], c.v)
		binary.LittleEndian.PutUint64(b[48:], c.salt)
		binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
		if _, err := DecodeHeader(b[:]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("version %d with salt %d: %v, want ErrCorrupt", c.v, c.salt, err)
		}
	}
}

// Every checksum of a life is salted: a frame, footer or trailer written
// under one salt fails under another.
func TestChecksumsAreSalted(t *testing.T) {
	const a, b = 0x1234, 0x5678
	fr := make([]byte, FrameSize(5))
	w := EncodeFrame(fr, []byte("hello"), 3, 1, HeaderSize, a)
	copy(fr[8:16], w[:])
	if _, err := VerifyFrame(fr, DecodeFrameHeader(fr), a); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFrame(fr, DecodeFrameHeader(fr), b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("frame of salt %#x verified under %#x: %v", a, b, err)
	}
	f := Footer{Count: 1, FirstSeq: 3, LastSeq: 3, DataEnd: 4096}
	fb := make([]byte, FooterSize(0))
	EncodeFooter(fb, f, a)
	if _, err := DecodeFooter(fb, a); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFooter(fb, b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("footer of salt %#x decoded under %#x: %v", a, b, err)
	}
	var tb [TrailerSize]byte
	EncodeTrailer(tb[:], Trailer{FooterOffset: 4096, FooterLen: FooterSize(0)}, a)
	if _, ok, err := DecodeTrailer(tb[:], a); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, _, err := DecodeTrailer(tb[:], b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailer of salt %#x decoded under %#x: %v", a, b, err)
	}
}
