package segment

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// The on-disk format. Every integer is little-endian. A segment file is:
//
//	+--------------------+  0
//	| header (64 B)      |
//	+--------------------+  HeaderSize
//	| record frame       |  8-byte aligned, back to back
//	| record frame       |
//	| ...                |
//	+--------------------+  data end (at most DataLimit(size))
//	| zeros              |  preallocated, not yet written
//	+--------------------+  at seal: footer placed at data end ...
//	| footer             |
//	+--------------------+
//	| zeros              |
//	+--------------------+
//	| trailer (32 B)     |  ... and the trailer in the file's last 32 bytes
//	+--------------------+  segment size
//
// Header (every format version keeps the magic, the version and the
// checksum of bytes [0, 56) at [56, 64) where they are, so that a reader
// tells a newer version, ErrUnsupportedVersion, from damage):
//
//	0       8       10      12      16              24              32
//	+-------+-------+-------+-------+---------------+---------------+
//	| magic | vers  | flags | rsvd  | segment index | base sequence |
//	+-------+-------+-------+-------+---------------+---------------+
//	32              40              48              56              64
//	+---------------+---------------+---------------+---------------+
//	| segment size  | created (ns)  | salt          | xxhash64[0:56)|
//	+---------------+---------------+---------------+---------------+
//
// Flags: bit 0, "recycled" (version 2): the file had an earlier life, so
// the bytes past the data end may be stale ones of that life rather than
// zeros (see ScanResult.Garbage).
//
// The salt (format version 2; version 1 wrote zeros there and reads with
// salt 0) is a random non-zero 64-bit value drawn for each life of the
// file: when the segment is activated. Every other checksum of that life,
// the frame's, the footer's and the trailer's, is the xxhash64 of its bytes
// XOR the salt (free per record). Why: a log with retention recycles the
// files of segments it drops (they stay allocated and written, so the
// next life's fdatasync journals no extent conversion), and a recycled file
// holds the frames, footer and trailer of its previous life. Those frames
// can carry exactly the sequence numbers, offsets and durable hints the new
// life uses (TruncateBack and Reset rewind sequence numbers; fixed-size
// records put frames at the same offsets), so neither the sequence number
// nor the hint tells them apart; the salt does: a stale frame verifies in
// the new life with probability 2^-64. A header does not need it: it is
// rewritten at each life, and the file's name must match it. The checks a
// reader makes are unchanged, so a stale frame is just a frame that fails
// its checksum: the end of the data (a torn tail), never a record, and not
// corruption in the middle, which needs a frame of the new life (one that
// verifies under its salt) or the DURABLE mark to vouch for the bytes.
//
// A recycled file's steps, each safe under a power cut at any point (see
// also aof's pool): (1) the dropped segment's file is renamed to a pool
// name (*.seg.pool), never read as a segment; its records are all before
// the durable FRONT, so the rename, or a removal, loses nothing. (2)
// Recycle draws the new salt, writes a pool header (PoolHeader: index 0,
// base 0, the new salt) and zeros over the trailer, and syncs them, all
// still under the pool name. (3) Activate writes the segment's header
// (same salt, flag "recycled") and renames the file to its segment name;
// both become durable with its first sync and directory sync, as for a
// fresh file. A cut after (3)'s rename but before that sync leaves the
// pool header, or the new header torn over it: like a fresh file's zeros,
// that says nothing of this life was synced (ErrNoHeader), unless a frame
// of this life (it verifies under the salt, which both headers carry)
// vouches for a sync: then it is damage. A header whose salt was lost to
// damage (zeros) still has its frames checked: two frames agreeing on a
// salt prove a sync (a fresh file has no stale frames, and a recycled
// one never loses its salt to a power cut). Past the data end, a recycled
// file holds stale bytes: a torn tail is reported only where a frame of
// this life is (see ScanResult.Garbage), so a crash does not report the
// stale bytes as a torn tail, and they are left as they are.
//
// Record frame:
//
//	0               8       12      16              24              32
//	+---------------+-------+-------+---------------+---------------+
//	| xxhash64      | len   | hint  | sequence      | timestamp (ns)|
//	+---------------+-------+-------+---------------+---------------+
//	| payload (len bytes), zero padding to a multiple of 8          |
//	+---------------------------------------------------------------+
//
// The checksum covers bytes [8, 32+len): the frame header after the checksum
// and the payload, so a corrupt length, sequence or timestamp is caught, not
// only a corrupt payload (the stored value is that hash XOR the header's
// salt). "hint" is the segment's durable offset divided by 8
// at the moment the record was appended: a promise that every byte before it
// had already been made durable. Recovery uses it to tell a torn tail (bad
// bytes that nothing after them vouches for) from corruption in the middle
// (bad bytes before a record that says they were durable). The word at
// [8, 16) is never zero in a complete frame, because hint >= HeaderSize/8;
// writers publish a frame by storing that word last.
//
// Footer (written at seal, at the data end):
//
//	0               8               16              24              32
//	+---------------+---------------+---------------+---------------+
//	| magic         | record count  | first seq     | last seq      |
//	+---------------+---------------+---------------+---------------+
//	32              40              48      52      56
//	+---------------+---------------+-------+-------+
//	| data end      | data xxhash64 | n idx | rsvd  |
//	+---------------+---------------+-------+-------+
//	| n index entries of 8 bytes: u32 seq - base, u32 offset / 8    |
//	+---------------------------------------------------------------+
//	| xxhash64 over the footer before it                            |
//	+---------------------------------------------------------------+
//
// Trailer (the last 32 bytes of a sealed file):
//
//	0               8               16              24              32
//	+---------------+---------------+---------------+---------------+
//	| magic         | footer offset | footer length | xxhash64[0:24)|
//	+---------------+---------------+---------------+---------------+
//
// The encoders and decoders in this file are the format's one
// implementation: the writer and recovery use them, tools (inspect,
// cmd/aof) read files with them, and tests build damaged directories with
// correct checksums with them.
const (
	// HeaderSize is the size of the segment header. A multiple of 8, so
	// the first frame is aligned.
	HeaderSize = 64
	// FrameHeaderSize is the size of a record frame's header.
	FrameHeaderSize = 32
	// TrailerSize is the size of the trailer of a sealed segment. The
	// last TrailerSize bytes of the preallocated space, and room for the
	// largest footer before them, are never used for records (see
	// DataLimit), so sealing always writes in place.
	TrailerSize = 32
	// Align is the alignment of every frame. 8 lets the publish word be
	// stored atomically and keeps frame headers from straddling pages.
	Align = 8
	// MinSize and MaxSize bound the segment size. Below 64 KiB the header,
	// trailer and footer overhead dominates; 4 GiB keeps every offset
	// divided by 8 within 32 bits.
	MinSize = 64 << 10
	MaxSize = 4 << 30
	// indexInterval is the spacing in bytes of the sparse index: a record
	// starting at least this far past the last indexed one gets an entry.
	// 4 KiB (one page) keeps the footer near 0.2% of the data and bounds a
	// lookup to one page of frames after a binary search.
	indexInterval = 4 << 10

	footerFixedSize = 56
	indexEntrySize  = 8
	formatVersion   = 2
	flagRecycled    = 1
)

var (
	headerMagic  = [8]byte{'a', 'o', 'f', '2', 's', 'e', 'g', 0}
	footerMagic  = [8]byte{'a', 'o', 'f', '2', 'f', 't', 'r', 0}
	trailerMagic = [8]byte{'a', 'o', 'f', '2', 'e', 'n', 'd', 0}
)

// Header is the decoded segment header.
type Header struct {
	Index   uint64 // ordinal of the segment in its log, from 1
	BaseSeq uint64 // sequence number of the segment's first record
	Size    int64  // preallocated size of the file in bytes
	Created int64  // creation time, Unix nanoseconds
	// Salt is mixed into every checksum of this life of the file (frames,
	// footer, trailer): a random non-zero value in format version 2, 0 in
	// files of version 1. See the format comment.
	Salt uint64
	// Recycled: the file had an earlier life (flag bit 0).
	Recycled bool
}

// EncodeHeader writes h into b[:HeaderSize]: a header of format version 2,
// or of version 1 (the same layout, unsalted) when h.Salt is 0, as tools
// and tests that build version-1 files want.
func EncodeHeader(b []byte, h Header) {
	version := uint16(formatVersion)
	if h.Salt == 0 {
		version = 1
	}
	encodeHeader(b, h, version)
}

// encodeHeader writes h into b[:HeaderSize] as a header of the given
// format version.
func encodeHeader(b []byte, h Header, version uint16) {
	_ = b[HeaderSize-1]
	copy(b[0:8], headerMagic[:])
	binary.LittleEndian.PutUint16(b[8:], version)
	var flags uint16
	if h.Recycled {
		flags |= flagRecycled
	}
	binary.LittleEndian.PutUint16(b[10:], flags)
	binary.LittleEndian.PutUint32(b[12:], 0)
	binary.LittleEndian.PutUint64(b[16:], h.Index)
	binary.LittleEndian.PutUint64(b[24:], h.BaseSeq)
	binary.LittleEndian.PutUint64(b[32:], uint64(h.Size))
	binary.LittleEndian.PutUint64(b[40:], uint64(h.Created))
	binary.LittleEndian.PutUint64(b[48:], h.Salt)
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
}

// DecodeHeader decodes and verifies a header.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, corrupt(0, "header: %d bytes, want %d", len(b), HeaderSize)
	}
	if [8]byte(b[0:8]) != headerMagic {
		return Header{}, corrupt(0, "header: bad magic %q", b[0:8])
	}
	if sum := binary.LittleEndian.Uint64(b[56:]); sum != xxhash.Sum64(b[:56]) {
		return Header{}, corrupt(0, "header: checksum mismatch")
	}
	// The version is read from a header whose checksum holds (every
	// format version keeps the magic, the version and this checksum
	// where they are), so a flipped bit is corruption, and a newer
	// version is never taken for it.
	if v := binary.LittleEndian.Uint16(b[8:]); v > formatVersion {
		return Header{}, fmt.Errorf("%w: header: format version %d, this build reads up to %d", ErrUnsupportedVersion, v, formatVersion)
	}
	v := binary.LittleEndian.Uint16(b[8:])
	if v < 1 {
		return Header{}, corrupt(0, "header: format version %d, this build reads 1 to %d", v, formatVersion)
	}
	h := Header{
		Index:   binary.LittleEndian.Uint64(b[16:]),
		BaseSeq: binary.LittleEndian.Uint64(b[24:]),
		Size:    int64(binary.LittleEndian.Uint64(b[32:])),
		Created: int64(binary.LittleEndian.Uint64(b[40:])),
		Salt:    binary.LittleEndian.Uint64(b[48:]),
		// Unknown flag bits are ignored: the checksum vouches for them.
		Recycled: binary.LittleEndian.Uint16(b[10:])&flagRecycled != 0,
	}
	// Version 1 kept the word reserved (zero): its checksums are unsalted.
	if v == 1 && h.Salt != 0 {
		return Header{}, corrupt(0, "header: version 1 with a non-zero reserved word")
	}
	if v >= 2 && h.Salt == 0 {
		return Header{}, corrupt(0, "header: version %d with a zero salt", v)
	}
	if err := CheckSize(h.Size); err != nil {
		return Header{}, corrupt(0, "header: %v", err)
	}
	return h, nil
}

// PoolHeader is the header Recycle writes into a recycled file before its
// new life: index 0 (no segment has it), base 0, the new life's salt. A
// segment file whose header is still this one (a crash between renaming
// the file to its segment name and the first sync of the segment's own
// header) held nothing durable in this life; one whose header is a torn
// mix of this one and its own, likewise (see ReadHeader).
func PoolHeader(size int64, salt uint64) Header {
	return Header{Size: size, Salt: salt}
}

// CheckSize reports whether size is a valid segment size: a power of two in
// [MinSize, MaxSize].
func CheckSize(size int64) error {
	if size < MinSize || size > MaxSize || size&(size-1) != 0 {
		return fmt.Errorf("segment size %d is not a power of two in [%d, %d]", size, MinSize, MaxSize)
	}
	return nil
}

// FrameSize returns the aligned size of the frame of an n-byte payload.
func FrameSize(n int) int64 {
	return alignUp(FrameHeaderSize + int64(n))
}

// DataLimit returns the offset at which record data must end in a segment
// of the given size. The space after it is kept for the largest footer the
// data could need (one index entry per indexInterval bytes, about 0.2%) and
// the trailer, so sealing never grows the file and never needs a block the
// disk may not have.
func DataLimit(size int64) int64 {
	maxEntries := int(size/indexInterval) + 1
	return size - TrailerSize - alignUp(FooterSize(maxEntries))
}

// MaxPayload returns the largest payload a segment of the given size holds.
func MaxPayload(size int64) int {
	return int(DataLimit(size) - HeaderSize - FrameHeaderSize)
}

func alignUp(n int64) int64 { return (n + Align - 1) &^ (Align - 1) }

// FrameHeader is the decoded header of a record frame.
type FrameHeader struct {
	Sum       uint64 // stored checksum
	Len       uint32 // payload length
	Hint      int64  // durable offset vouched for by the writer
	Seq       uint64 // sequence number
	Timestamp int64  // append time, Unix nanoseconds
}

// publishWord returns the frame's word at [8, 16) as stored in memory.
func publishWord(length uint32, hint int64) [8]byte {
	var w [8]byte
	binary.LittleEndian.PutUint32(w[0:], length)
	binary.LittleEndian.PutUint32(w[4:], uint32(hint/Align))
	return w
}

// EncodeFrame writes the frame of payload into b, which must hold
// FrameSize(len(payload)) bytes, and returns the publish word that the
// caller stores at b[8:16] to complete the frame (Segment.Fill stores it
// last and atomically). Padding bytes are assumed zero. salt is the
// segment's (Header.Salt).
func EncodeFrame(b []byte, payload []byte, seq uint64, ts int64, hint int64, salt uint64) [8]byte {
	n := len(payload)
	w := publishWord(uint32(n), hint)
	binary.LittleEndian.PutUint64(b[16:], seq)
	binary.LittleEndian.PutUint64(b[24:], uint64(ts))
	copy(b[FrameHeaderSize:], payload)
	// The checksum covers [8, 32+n). Hash the publish word from its local
	// copy and the rest from b, so b[8:16] can stay zero until published.
	var d xxhash.Digest
	d.Reset()
	d.Write(w[:])
	d.Write(b[16 : FrameHeaderSize+n])
	binary.LittleEndian.PutUint64(b[0:], d.Sum64()^salt)
	return w
}

// DecodeFrameHeader decodes the frame header at b[0:FrameHeaderSize]
// without verifying it.
func DecodeFrameHeader(b []byte) FrameHeader {
	_ = b[FrameHeaderSize-1]
	return FrameHeader{
		Sum:       binary.LittleEndian.Uint64(b[0:]),
		Len:       binary.LittleEndian.Uint32(b[8:]),
		Hint:      int64(binary.LittleEndian.Uint32(b[12:])) * Align,
		Seq:       binary.LittleEndian.Uint64(b[16:]),
		Timestamp: int64(binary.LittleEndian.Uint64(b[24:])),
	}
}

// VerifyFrame checks the frame at b[0:], whose decoded header is h, and
// returns its payload (a slice of b). The frame must end within b. salt is
// the segment's (Header.Salt): a frame of another life of the file fails.
func VerifyFrame(b []byte, h FrameHeader, salt uint64) ([]byte, error) {
	end := FrameHeaderSize + int64(h.Len)
	if end > int64(len(b)) {
		return nil, corrupt(0, "frame length %d runs past the data", h.Len)
	}
	if sum := xxhash.Sum64(b[8:end]) ^ salt; sum != h.Sum {
		return nil, corrupt(0, "frame checksum mismatch (seq %d)", h.Seq)
	}
	return b[FrameHeaderSize:end:end], nil
}

// ReadFrame decodes and verifies the frame at the start of b (at least
// FrameHeaderSize bytes; the frame must end within b), for the readers'
// loops: it returns the record's sequence number, timestamp and payload (a
// slice of b) and the frame's size, or the error VerifyFrame returns for
// it. It is DecodeFrameHeader and VerifyFrame in one, without handing a
// FrameHeader from one to the other (measured: that copy through the stack
// stalled sequential reads of small records). salt is the segment's
// (Header.Salt), as for VerifyFrame.
func ReadFrame(b []byte, salt uint64) (seq uint64, ts int64, payload []byte, size int64, err error) {
	_ = b[FrameHeaderSize-1]
	end := FrameHeaderSize + int64(binary.LittleEndian.Uint32(b[8:]))
	if end > int64(len(b)) || xxhash.Sum64(b[8:end])^salt != binary.LittleEndian.Uint64(b) {
		_, err = VerifyFrame(b, DecodeFrameHeader(b), salt)
		return 0, 0, nil, 0, err
	}
	return binary.LittleEndian.Uint64(b[16:]), int64(binary.LittleEndian.Uint64(b[24:])), b[FrameHeaderSize:end:end], alignUp(end), nil
}

// IndexEntry is one entry of the sparse sequence-to-offset index.
type IndexEntry struct {
	Seq    uint64 // sequence number of an indexed record
	Offset int64  // offset of its frame in the segment
}

// Footer is the decoded footer of a sealed segment.
type Footer struct {
	Count    uint64       // records in the segment
	FirstSeq uint64       // first sequence number (the base)
	LastSeq  uint64       // last sequence number (FirstSeq-1 if empty)
	DataEnd  int64        // end offset of the last frame
	DataSum  uint64       // xxhash64 of bytes [HeaderSize, DataEnd)
	Index    []IndexEntry // sparse index, ascending
}

// FooterSize returns the encoded size of a footer with n index entries.
func FooterSize(n int) int64 {
	return footerFixedSize + int64(n)*indexEntrySize + 8
}

// EncodeFooter writes f into b[:FooterSize(len(f.Index))], its checksum
// mixed with salt (Header.Salt).
func EncodeFooter(b []byte, f Footer, salt uint64) {
	copy(b[0:8], footerMagic[:])
	binary.LittleEndian.PutUint64(b[8:], f.Count)
	binary.LittleEndian.PutUint64(b[16:], f.FirstSeq)
	binary.LittleEndian.PutUint64(b[24:], f.LastSeq)
	binary.LittleEndian.PutUint64(b[32:], uint64(f.DataEnd))
	binary.LittleEndian.PutUint64(b[40:], f.DataSum)
	binary.LittleEndian.PutUint32(b[48:], uint32(len(f.Index)))
	binary.LittleEndian.PutUint32(b[52:], 0)
	p := b[footerFixedSize:]
	for _, e := range f.Index {
		binary.LittleEndian.PutUint32(p[0:], uint32(e.Seq-f.FirstSeq))
		binary.LittleEndian.PutUint32(p[4:], uint32(e.Offset/Align))
		p = p[indexEntrySize:]
	}
	end := FooterSize(len(f.Index)) - 8
	binary.LittleEndian.PutUint64(b[end:], xxhash.Sum64(b[:end])^salt)
}

// DecodeFooter decodes and verifies a footer held in b, written with salt.
func DecodeFooter(b []byte, salt uint64) (Footer, error) {
	if len(b) < int(FooterSize(0)) {
		return Footer{}, corrupt(0, "footer: %d bytes is too short", len(b))
	}
	if [8]byte(b[0:8]) != footerMagic {
		return Footer{}, corrupt(0, "footer: bad magic")
	}
	n := int(binary.LittleEndian.Uint32(b[48:]))
	size := FooterSize(n)
	if size != int64(len(b)) {
		return Footer{}, corrupt(0, "footer: %d index entries need %d bytes, have %d", n, size, len(b))
	}
	if sum := binary.LittleEndian.Uint64(b[size-8:]); sum != xxhash.Sum64(b[:size-8])^salt {
		return Footer{}, corrupt(0, "footer: checksum mismatch")
	}
	f := Footer{
		Count:    binary.LittleEndian.Uint64(b[8:]),
		FirstSeq: binary.LittleEndian.Uint64(b[16:]),
		LastSeq:  binary.LittleEndian.Uint64(b[24:]),
		DataEnd:  int64(binary.LittleEndian.Uint64(b[32:])),
		DataSum:  binary.LittleEndian.Uint64(b[40:]),
		Index:    make([]IndexEntry, n),
	}
	if f.FirstSeq+f.Count-1 != f.LastSeq {
		return Footer{}, corrupt(0, "footer: %d records from seq %d cannot end at %d", f.Count, f.FirstSeq, f.LastSeq)
	}
	p := b[footerFixedSize:]
	for i := range f.Index {
		f.Index[i] = IndexEntry{
			Seq:    f.FirstSeq + uint64(binary.LittleEndian.Uint32(p[0:])),
			Offset: int64(binary.LittleEndian.Uint32(p[4:])) * Align,
		}
		p = p[indexEntrySize:]
		if f.Index[i].Offset < HeaderSize || f.Index[i].Offset >= f.DataEnd ||
			(i > 0 && (f.Index[i].Seq <= f.Index[i-1].Seq || f.Index[i].Offset <= f.Index[i-1].Offset)) {
			return Footer{}, corrupt(footerFixedSize+int64(i)*indexEntrySize, "footer: index entry %d out of order", i)
		}
	}
	return f, nil
}

// Trailer is the decoded trailer of a sealed segment.
type Trailer struct {
	FooterOffset int64
	FooterLen    int64
}

// EncodeTrailer writes t into b[:TrailerSize], its checksum mixed with
// salt (Header.Salt).
func EncodeTrailer(b []byte, t Trailer, salt uint64) {
	copy(b[0:8], trailerMagic[:])
	binary.LittleEndian.PutUint64(b[8:], uint64(t.FooterOffset))
	binary.LittleEndian.PutUint64(b[16:], uint64(t.FooterLen))
	binary.LittleEndian.PutUint64(b[24:], xxhash.Sum64(b[:24])^salt)
}

// DecodeTrailer decodes a trailer written with salt. ok is false when b
// holds no trailer at all (an unsealed segment: zeros there); err is set
// when b holds something that claims to be a trailer but fails its checks
// (a trailer of another life of a recycled file fails them too, but a
// recycled file's trailer is zeroed before its new life starts).
func DecodeTrailer(b []byte, salt uint64) (t Trailer, ok bool, err error) {
	if [8]byte(b[0:8]) != trailerMagic {
		return Trailer{}, false, nil
	}
	if sum := binary.LittleEndian.Uint64(b[24:]); sum != xxhash.Sum64(b[:24])^salt {
		return Trailer{}, false, corrupt(0, "trailer: checksum mismatch")
	}
	return Trailer{
		FooterOffset: int64(binary.LittleEndian.Uint64(b[8:])),
		FooterLen:    int64(binary.LittleEndian.Uint64(b[16:])),
	}, true, nil
}

// DurableMark is the content of the log's DURABLE file, written at Close:
// segment Index was durable up to Offset (a frame boundary). It vouches for
// bytes no record after them vouches for (the last flush before a clean
// close), so reopening a closed log rewrites nothing, and damage to those
// bytes is found as corruption, not taken for a torn tail. A stale mark is
// still true: durable bytes stay durable.
//
//	0               8               16              24              32
//	+---------------+---------------+---------------+---------------+
//	| magic         | segment index | offset        | xxhash64[0:24)|
//	+---------------+---------------+---------------+---------------+
type DurableMark struct {
	Index  uint64
	Offset int64
}

// DurableMarkSize is the encoded size of a DurableMark.
const DurableMarkSize = 32

var durableMagic = [8]byte{'a', 'o', 'f', '2', 'd', 'u', 'r', 0}

// EncodeDurableMark writes m into b[:DurableMarkSize].
func EncodeDurableMark(b []byte, m DurableMark) {
	encodeMark(b, durableMagic, m.Index, uint64(m.Offset))
}

// DecodeDurableMark decodes and verifies a DurableMark.
func DecodeDurableMark(b []byte) (DurableMark, error) {
	x, y, err := decodeMark(b, durableMagic, DurableFile, "durable mark")
	return DurableMark{Index: x, Offset: int64(y)}, err
}

// Names in a log directory: the files that hold marks, DURABLE (a
// DurableMark), FRONT (a FrontMark) and CUT (a CutMark); the segments
// directory; and LOCK, the file the writer holds an flock on.
const (
	LockFile    = "LOCK"
	DurableFile = "DURABLE"
	FrontFile   = "FRONT"
	CutFile     = "CUT"
	SegmentsDir = "segments"
)

// FrontMark is the content of the FRONT file that TruncateFront writes
// before it removes anything: records below Seq are gone, also after a
// crash that left some of the segments holding them. Same layout as
// DurableMark, with its own magic and Seq in the first field.
type FrontMark struct {
	Seq uint64
}

var frontMagic = [8]byte{'a', 'o', 'f', '2', 'f', 'r', 'n', 0}

// EncodeFrontMark writes m into b[:DurableMarkSize].
func EncodeFrontMark(b []byte, m FrontMark) { encodeMark(b, frontMagic, m.Seq, 0) }

// DecodeFrontMark decodes and verifies a FrontMark.
func DecodeFrontMark(b []byte) (FrontMark, error) {
	x, _, err := decodeMark(b, frontMagic, FrontFile, "front mark")
	return FrontMark{Seq: x}, err
}

// CutMark is the content of the CUT file, TruncateBack's intent: once it
// is durable, the log ends at record LastSeq, kept in segment Index (0 if
// no segment keeps a record), and every later segment goes. Recovery
// completes a cut it finds, so a crash shows the old end or the new one.
// Same layout as DurableMark, with its own magic.
//
// Reset marks the cut of Log.Reset: every segment goes (Index is 0) and
// the log continues at LastSeq+1, whatever the FRONT mark says, which may
// be below or above it (Reset writes FRONT after CUT; recovery rewrites it
// before it removes CUT). A reset is encoded with a magic of its own.
type CutMark struct {
	Index   uint64
	LastSeq uint64
	Reset   bool
}

var (
	cutMagic   = [8]byte{'a', 'o', 'f', '2', 'c', 'u', 't', 0}
	resetMagic = [8]byte{'a', 'o', 'f', '2', 'r', 's', 't', 0}
)

// EncodeCutMark writes m into b[:DurableMarkSize].
func EncodeCutMark(b []byte, m CutMark) {
	magic := cutMagic
	if m.Reset {
		magic = resetMagic
	}
	encodeMark(b, magic, m.Index, m.LastSeq)
}

// DecodeCutMark decodes and verifies a CutMark, that of a TruncateBack or
// of a Reset.
func DecodeCutMark(b []byte) (CutMark, error) {
	if len(b) == DurableMarkSize && [8]byte(b[0:8]) == resetMagic {
		x, y, err := decodeMark(b, resetMagic, CutFile, "cut mark")
		return CutMark{Index: x, LastSeq: y, Reset: true}, err
	}
	x, y, err := decodeMark(b, cutMagic, CutFile, "cut mark")
	return CutMark{Index: x, LastSeq: y}, err
}

func encodeMark(b []byte, magic [8]byte, x, y uint64) {
	copy(b[0:8], magic[:])
	binary.LittleEndian.PutUint64(b[8:], x)
	binary.LittleEndian.PutUint64(b[16:], y)
	binary.LittleEndian.PutUint64(b[24:], xxhash.Sum64(b[:24]))
}

// decodeMark decodes a mark; its error names file, where the mark is kept.
func decodeMark(b []byte, magic [8]byte, file, what string) (x, y uint64, err error) {
	if len(b) != DurableMarkSize || [8]byte(b[0:8]) != magic ||
		binary.LittleEndian.Uint64(b[24:]) != xxhash.Sum64(b[:24]) {
		return 0, 0, Corrupt(file, 0, 0, "%s fails its checks", what)
	}
	return binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]), nil
}
