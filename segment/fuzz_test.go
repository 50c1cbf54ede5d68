package segment

// Fuzz targets for the decoders and for recovery scanning. Run them with
// .ci/fuzz (each for a bounded time) or one at a time:
//
//	go test -run '^$' -fuzz '^FuzzScan$' -fuzztime 60s ./segment/
//
// The seed corpus in testdata/fuzz/<target>/ was made from real segments
// by TestWriteFuzzCorpus (AOF2_FUZZ_CORPUS=1 rewrites it); crashers the
// fuzzer found are kept there as regression seeds, and `go test` runs every
// seed.
//
// Checksums stop mutated bytes from reaching most checks, so every target
// takes a resum flag: when set, the target recomputes the checksums over
// the mutated bytes before decoding, and the fuzzer explores structures
// that verify but say nonsense (lengths past the data, hints past the
// frame, footers whose index points anywhere).
//
// Properties: no panic, no hang; nothing is returned as a record unless
// the checksum stored in its frame matches the bytes (recomputed here
// independently of the code under test), its sequence number is the one
// asked for, and it lies within the data; scan results are consistent
// (End within the data area, frames dense from the base sequence number
// and ending exactly at End, MaxHint <= End, Garbage within the data).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/aof2/aof2/vfs"
)

const (
	fuzzSize  = MinSize
	fuzzIndex = 3
	fuzzBase  = 1000
)

// fuzzFile builds the bytes of a segment file of fuzzSize: a valid header,
// body as the record data, footer right after it (at the aligned end of
// body) and trailer in the last TrailerSize bytes. The header carries salt
// (0: a version-1 header), and says the file is recycled when salt is odd
// (bytes past the data are then judged as a recycled file's). With resum, frame, footer and trailer checksums
// are recomputed over whatever they hold, mixed with salt.
func fuzzFile(body, footer, trailer []byte, resum bool, salt uint64) []byte {
	file := make([]byte, fuzzSize)
	EncodeHeader(file, Header{Index: fuzzIndex, BaseSeq: fuzzBase, Size: fuzzSize, Created: 1, Salt: salt, Recycled: salt&1 == 1})
	limit := DataLimit(fuzzSize)
	n := copy(file[HeaderSize:limit], body)
	footerAt := alignUp(HeaderSize + int64(n))
	fn := copy(file[footerAt:fuzzSize-TrailerSize], footer)
	copy(file[fuzzSize-TrailerSize:], trailer)
	if !resum {
		return file
	}
	for off := int64(HeaderSize); off+FrameHeaderSize <= limit; {
		if binary.LittleEndian.Uint64(file[off+8:]) == 0 {
			break // free space
		}
		end := off + FrameHeaderSize + int64(binary.LittleEndian.Uint32(file[off+8:]))
		if end > limit {
			break
		}
		binary.LittleEndian.PutUint64(file[off:], xxhash.Sum64(file[off+8:end])^salt)
		off = alignUp(end)
	}
	if fn >= int(FooterSize(0)) {
		f := file[footerAt : footerAt+int64(fn)]
		binary.LittleEndian.PutUint64(f[fn-8:], xxhash.Sum64(f[:fn-8])^salt)
	}
	if tr := file[fuzzSize-TrailerSize:]; [8]byte(tr[0:8]) == trailerMagic {
		binary.LittleEndian.PutUint64(tr[24:], xxhash.Sum64(tr[:24])^salt)
	}
	return file
}

// checkRecord checks that rec, returned for seq, is the verified frame at
// rec.Offset of file, whose header has salt.
func checkRecord(t *testing.T, file []byte, limit int64, seq, salt uint64, rec Record) {
	t.Helper()
	off := rec.Offset
	if rec.Seq != seq || off < HeaderSize || off+FrameHeaderSize > limit {
		t.Fatalf("record for seq %d: seq %d at offset %d, outside the data or the wrong one", seq, rec.Seq, off)
	}
	h := DecodeFrameHeader(file[off:])
	end := off + FrameHeaderSize + int64(h.Len)
	if h.Seq != seq || end > limit || int64(len(rec.Payload)) != int64(h.Len) {
		t.Fatalf("record for seq %d at offset %d: frame says seq %d length %d (payload %d bytes), data ends at %d", seq, off, h.Seq, h.Len, len(rec.Payload), limit)
	}
	if xxhash.Sum64(file[off+8:end])^salt != h.Sum {
		t.Fatalf("record for seq %d at offset %d returned, but its checksum does not match", seq, off)
	}
	if !bytes.Equal(rec.Payload, file[off+FrameHeaderSize:end]) {
		t.Fatalf("record for seq %d: payload differs from the bytes of its frame", seq)
	}
}

func FuzzScan(f *testing.F) {
	f.Add([]byte{}, []byte{}, []byte{}, false, uint16(0), uint64(0))
	// One file, overwritten in place by every execution; on tmpfs where
	// there is one (no journal, many more executions per second).
	dir := f.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "aof2-fuzz-"); err == nil {
		dir = shm
		f.Cleanup(func() { os.RemoveAll(shm) })
	}
	name := Name(fuzzIndex, fuzzBase)
	path := filepath.Join(dir, name)
	out, err := os.Create(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { out.Close() })
	f.Fuzz(func(t *testing.T, body, footer, trailer []byte, resum bool, vouched uint16, salt uint64) {
		file := fuzzFile(body, footer, trailer, resum, salt)
		if _, err := out.WriteAt(file, 0); err != nil {
			t.Fatal(err)
		}
		s, err := Open(vfs.Default, dir, name)
		if err != nil {
			// A newer format version is ErrUnsupportedVersion
			// (FuzzHeader checks when that may be said).
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNoHeader) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("Open: %v: neither ErrCorrupt, ErrNoHeader nor ErrUnsupportedVersion", err)
			}
			return
		}
		defer s.Release()
		limit := DataLimit(fuzzSize)
		var end int64
		var count uint64
		if s.Sealed() {
			end, count = s.Reserved()
			if end < HeaderSize || end > limit {
				t.Fatalf("trusted footer: data end %d outside [%d, %d]", end, HeaderSize, limit)
			}
		} else {
			v := int64(vouched) * Align
			r := s.Scan(v)
			if r.End < HeaderSize || r.End > limit || r.MaxHint > r.End || r.DurableCount > r.Count || r.End+r.Garbage > limit || r.Garbage < 0 {
				t.Fatalf("inconsistent scan: %+v (limit %d)", r, limit)
			}
			if v > r.End && r.Corrupt == nil {
				t.Fatalf("mark vouches for %d, scan ends at %d, no corruption reported", v, r.End)
			}
			if r.Corrupt != nil && !errors.Is(r.Corrupt, ErrCorrupt) {
				t.Fatalf("scan corruption %v does not wrap ErrCorrupt", r.Corrupt)
			}
			// The scanned frames, walked independently: dense, each
			// verified, ending exactly at End.
			off := int64(HeaderSize)
			for i := range r.Count {
				h := DecodeFrameHeader(file[off:])
				e := off + FrameHeaderSize + int64(h.Len)
				if h.Seq != fuzzBase+i || e > r.End || xxhash.Sum64(file[off+8:e])^salt != h.Sum {
					t.Fatalf("scan accepted a bad frame at offset %d (record %d of %d)", off, i, r.Count)
				}
				off = alignUp(e)
			}
			if off != r.End {
				t.Fatalf("scan: %d frames end at %d, End is %d", r.Count, off, r.End)
			}
			if err := s.Resume(r); err != nil {
				t.Fatal(err)
			}
			end, count = r.End, r.Count
		}
		// Random access: every record is the verified frame, or an
		// error wrapping ErrCorrupt (a trusted footer may describe
		// data it does not match).
		for i := range min(count, 512) {
			rec, err := s.Read(fuzzBase+i, nil)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Read(%d): %v", fuzzBase+i, err)
				}
				continue
			}
			checkRecord(t, file, limit, fuzzBase+i, salt, rec)
		}
		if _, err := s.Read(fuzzBase+count, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read past the last record: %v", err)
		}
		// Sequential reading.
		off, seq := int64(HeaderSize), uint64(fuzzBase)
		for steps := 0; steps < 512; steps++ {
			rec, next, ok, err := s.readFrame(off, nil)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("readFrame(%d): %v", off, err)
				}
				break
			}
			if !ok {
				if off != end && !s.Sealed() {
					t.Fatalf("sequential read stopped at %d, data ends at %d", off, end)
				}
				break
			}
			// readFrame returns the verified frame at off; checking
			// that it holds the sequence number due there is its
			// caller's job (aof.Reader reports ErrCorrupt).
			checkRecord(t, file, limit, rec.Seq, salt, rec)
			if rec.Seq != seq {
				break
			}
			if next <= off || next > end {
				t.Fatalf("readFrame(%d) says the next frame is at %d (data ends at %d)", off, next, end)
			}
			off, seq = next, seq+1
		}
	})
}

func FuzzFrame(f *testing.F) {
	f.Add(frame([]byte("payload"), 7, HeaderSize), false, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, resum bool, salt uint64) {
		if len(b) < FrameHeaderSize {
			return // DecodeFrameHeader's contract: a whole frame header
		}
		if n := binary.LittleEndian.Uint32(b[8:]); resum && FrameHeaderSize+int64(n) <= int64(len(b)) {
			binary.LittleEndian.PutUint64(b, xxhash.Sum64(b[8:FrameHeaderSize+n])^salt)
		}
		h := DecodeFrameHeader(b)
		payload, err := VerifyFrame(b, h, salt)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("VerifyFrame: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		end := FrameHeaderSize + int64(h.Len)
		if end > int64(len(b)) || int64(len(payload)) != int64(h.Len) || cap(payload) != len(payload) {
			t.Fatalf("payload of %d bytes (cap %d) for length %d in %d bytes", len(payload), cap(payload), h.Len, len(b))
		}
		if xxhash.Sum64(b[8:end])^salt != h.Sum {
			t.Fatal("VerifyFrame accepted a frame whose checksum does not match")
		}
		if len(payload) > 0 && &payload[0] != &b[FrameHeaderSize] {
			t.Fatal("payload is not the frame's bytes")
		}
		// Round trip: encoding the payload again gives a frame that
		// verifies and decodes to the same fields.
		c := make([]byte, FrameSize(len(payload)))
		w := EncodeFrame(c, payload, h.Seq, h.Timestamp, h.Hint, salt)
		copy(c[8:16], w[:])
		h2 := DecodeFrameHeader(c)
		p2, err := VerifyFrame(c, h2, salt)
		if err != nil || !bytes.Equal(p2, payload) || h2.Seq != h.Seq || h2.Timestamp != h.Timestamp || h2.Len != h.Len || h2.Hint != h.Hint {
			t.Fatalf("round trip: %+v, %v; want %+v", h2, err, h)
		}
		// The same frame never verifies in a life with another salt.
		if _, err := VerifyFrame(c, h2, salt^1); err == nil {
			t.Fatal("a frame verified under another salt")
		}
	})
}

func FuzzHeader(f *testing.F) {
	var b [HeaderSize]byte
	EncodeHeader(b[:], Header{Index: 1, BaseSeq: 1, Size: MinSize, Created: 1})
	f.Add(b[:], false)
	f.Fuzz(func(t *testing.T, b []byte, resum bool) {
		if resum && len(b) >= HeaderSize {
			binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
		}
		h, err := DecodeHeader(b)
		if errors.Is(err, ErrUnsupportedVersion) {
			// Only a header whose magic and checksum hold, with a
			// version above this build's, is a newer format.
			if errors.Is(err, ErrCorrupt) || len(b) < HeaderSize || [8]byte(b[0:8]) != headerMagic ||
				xxhash.Sum64(b[:56]) != binary.LittleEndian.Uint64(b[56:]) || binary.LittleEndian.Uint16(b[8:]) <= formatVersion {
				t.Fatalf("DecodeHeader: %v for a header that is not a valid newer one", err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeHeader: %v wraps neither ErrCorrupt nor ErrUnsupportedVersion", err)
			}
			return
		}
		if len(b) < HeaderSize || CheckSize(h.Size) != nil || xxhash.Sum64(b[:56]) != binary.LittleEndian.Uint64(b[56:]) {
			t.Fatalf("DecodeHeader accepted %d bytes: %+v", len(b), h)
		}
		var c [HeaderSize]byte
		EncodeHeader(c[:], h)
		if h2, err := DecodeHeader(c[:]); err != nil || h2 != h {
			t.Fatalf("round trip: %+v, %v; want %+v", h2, err, h)
		}
		if bytes.Equal(b[8:16], c[8:16]) && bytes.Equal(b[48:56], c[48:56]) && !bytes.Equal(b[:HeaderSize], c[:]) {
			t.Fatal("re-encoding a decoded header changes it")
		}
	})
}

func FuzzFooter(f *testing.F) {
	fb := make([]byte, FooterSize(2))
	EncodeFooter(fb, Footer{Count: 3, FirstSeq: 1, LastSeq: 3, DataEnd: 8192, Index: []IndexEntry{{1, HeaderSize}, {3, 4160}}}, 0)
	f.Add(fb, false, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, resum bool, salt uint64) {
		// The trailer and the durable mark decode fixed-size prefixes.
		if len(b) >= TrailerSize {
			c := append([]byte(nil), b[:TrailerSize]...)
			if resum {
				binary.LittleEndian.PutUint64(c[24:], xxhash.Sum64(c[:24])^salt)
			}
			tr, ok, err := DecodeTrailer(c, salt)
			if ok && (err != nil || xxhash.Sum64(c[:24])^salt != binary.LittleEndian.Uint64(c[24:])) {
				t.Fatalf("DecodeTrailer accepted a bad trailer: %+v, %v", tr, err)
			}
			if m, err := DecodeDurableMark(c); err == nil {
				var e [DurableMarkSize]byte
				EncodeDurableMark(e[:], m)
				if !bytes.Equal(e[:], c) {
					t.Fatalf("durable mark %+v does not round-trip", m)
				}
			}
		}
		if resum && len(b) >= int(FooterSize(0)) {
			if (len(b)-int(FooterSize(0)))%indexEntrySize == 0 {
				binary.LittleEndian.PutUint32(b[48:], uint32((len(b)-int(FooterSize(0)))/indexEntrySize))
			}
			binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8])^salt)
		}
		ft, err := DecodeFooter(b, salt)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeFooter: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if ft.FirstSeq+ft.Count-1 != ft.LastSeq || FooterSize(len(ft.Index)) != int64(len(b)) {
			t.Fatalf("inconsistent footer accepted: %+v", ft)
		}
		for i, e := range ft.Index {
			if e.Offset < HeaderSize || e.Offset >= ft.DataEnd || e.Offset%Align != 0 ||
				i > 0 && (e.Seq <= ft.Index[i-1].Seq || e.Offset <= ft.Index[i-1].Offset) {
				t.Fatalf("index entry %d (%+v) out of order or outside the data (end %d)", i, e, ft.DataEnd)
			}
		}
		c := make([]byte, len(b))
		EncodeFooter(c, ft, salt)
		// (Bytes [52, 56) are reserved: encoded as zeros, and covered by
		// the checksum in the last 8 bytes.)
		if !bytes.Equal(b[:52], c[:52]) || !bytes.Equal(b[footerFixedSize:len(b)-8], c[footerFixedSize:len(b)-8]) {
			t.Fatal("re-encoding a decoded footer changes it")
		}
	})
}

// TestWriteFuzzCorpus rewrites the seed corpus in testdata/fuzz from
// segments written through the segment API: unsealed and sealed, with
// records of many sizes, synced at several points (so hints vary).
// It runs only with AOF2_FUZZ_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("AOF2_FUZZ_CORPUS") == "" {
		t.Skip("AOF2_FUZZ_CORPUS=1 rewrites testdata/fuzz")
	}
	dir := t.TempDir()
	write := func(target, name string, args ...any) {
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			case uint16:
				fmt.Fprintf(&b, "uint16(%d)\n", v)
			case uint64:
				fmt.Fprintf(&b, "uint64(%d)\n", v)
			}
		}
		p := filepath.Join("testdata", "fuzz", target, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sizes := [][]int{
		{0},
		{1, 7, 8, 9},
		{100, 3000, 5000, 20, 0, 64},
		{4096, 4096, 4096, 1},
		{12000, 1, 1, 1, 1, 9000},
	}
	for i, sz := range sizes {
		for _, seal := range []bool{false, true} {
			file := writeTestSegment(t, dir, sz, seal)
			hdr, err := DecodeHeader(file)
			if err != nil {
				t.Fatal(err)
			}
			salt := hdr.Salt
			end := int64(HeaderSize)
			for _, n := range sz {
				end += FrameSize(n)
			}
			body := file[HeaderSize:end]
			var footer, trailer []byte
			if seal {
				tr, ok, err := DecodeTrailer(file[fuzzSize-TrailerSize:], salt)
				if !ok || err != nil {
					t.Fatal("no trailer")
				}
				footer = file[tr.FooterOffset : tr.FooterOffset+tr.FooterLen]
				trailer = file[fuzzSize-TrailerSize:]
			}
			name := fmt.Sprintf("seg%d-sealed-%v", i, seal)
			write("FuzzScan", name, body, footer, trailer, false, uint16(0), salt)
			// The same bytes left by a previous life of a recycled
			// file: a header with another salt.
			write("FuzzScan", name+"-stale", body, footer, trailer, false, uint16(0), salt+1)
			if len(body) > 40 {
				torn := append([]byte(nil), body[:len(body)-13]...)
				write("FuzzScan", name+"-torn", torn, []byte{}, []byte{}, false, uint16(0), salt)
				// A damaged frame in the middle, with later frames
				// vouching for it.
				bad := append([]byte(nil), body...)
				bad[FrameHeaderSize+1] ^= 0x20
				write("FuzzScan", name+"-bitflip", bad, footer, trailer, false, uint16(0), salt)
				write("FuzzScan", name+"-resum", bad, footer, trailer, true, uint16(end/Align), salt)
			}
			if seal {
				write("FuzzFooter", name, footer, false, salt)
				write("FuzzFooter", name+"-trailer", append(append([]byte(nil), trailer...), footer...), false, salt)
			}
			if len(body) >= FrameHeaderSize {
				write("FuzzFrame", name, body[:FrameSize(sz[0])], false, salt)
			}
			write("FuzzHeader", name, file[:HeaderSize], false)
		}
	}
	var mark [DurableMarkSize]byte
	EncodeDurableMark(mark[:], DurableMark{Index: 2, Offset: 4096})
	write("FuzzFooter", "durable-mark", mark[:], false, uint64(0))
}

// writeTestSegment writes a segment of fuzzSize (index fuzzIndex, base
// fuzzBase) holding records of the given sizes through the segment API,
// syncing after every other record, sealed if seal, and returns its bytes.
func writeTestSegment(t *testing.T, dir string, sizes []int, seal bool) []byte {
	t.Helper()
	s, err := Prepare(vfs.Default, dir, 1, fuzzSize, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(fuzzIndex, fuzzBase, 1); err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, n) // printable: a compact corpus
		off, seq, err := s.Reserve(FrameSize(n), 1)
		if err != nil {
			t.Fatal(err)
		}
		s.Fill(off, seq, p, int64(1000+i))
		if i%2 == 1 || i == len(sizes)-1 {
			end, _ := s.Advance()
			if _, err := s.WriteOut(); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			s.MarkDurable(end)
		}
	}
	path := s.Path()
	if seal {
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
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	return b
}
