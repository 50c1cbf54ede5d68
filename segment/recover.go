package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path/filepath"
	"sort"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/vfs"
)

// ErrNoHeader is wrapped by Open when a segment file's header is all zeros
// or torn, and nothing in the file shows that a sync of it ever completed:
// the file was created but its header never reached the disk.
var ErrNoHeader = errors.New("aof2: segment has no header")

// tornHeader reports whether b, a header that fails its checks, is what a
// torn write of the header a segment with this index and base sequence
// number must have leaves on what was there before: zeros (a new file) or
// the pool header a recycled file got (PoolHeader, synced before its new
// life). Its bytes up to some point are those of that header, of format
// version 2 (or 1, written by older builds), whose size, creation time and
// salt are taken from b itself (the size must be valid; a recycled file's
// pool header has the same size and salt), and its bytes after that point
// are those that were there before. A single flipped bit in a complete
// header never passes: it changes a field that must match, or the
// checksum no longer matches the fields.
func tornHeader(b []byte, index, base uint64) bool {
	size := int64(binary.LittleEndian.Uint64(b[32:]))
	h := Header{Index: index, BaseSeq: base, Size: size, Created: int64(binary.LittleEndian.Uint64(b[40:])),
		Salt: binary.LittleEndian.Uint64(b[48:])}
	var want, pool [HeaderSize]byte
	if h.Salt != 0 && CheckSize(size) == nil {
		h := h
		h.Recycled = true
		encodeHeader(want[:], h, formatVersion)
		EncodeHeader(pool[:], PoolHeader(size, h.Salt))
		for k := 1; k < HeaderSize; k++ {
			if bytes.Equal(b[:k], want[:k]) && bytes.Equal(b[k:], pool[k:]) {
				return true
			}
		}
	}
	k := HeaderSize
	for k > 0 && b[k-1] == 0 {
		k--
	}
	if k == HeaderSize || k > 32 && CheckSize(size) != nil {
		return false
	}
	for v := uint16(1); v <= formatVersion; v++ {
		encodeHeader(want[:], h, v)
		if bytes.Equal(b[:k], want[:k]) {
			return true
		}
	}
	return false
}

// syncedEvidence looks for proof that a segment file whose header is
// unreadable, or still a pool header, was synced at least once in this
// life (so its header was durable, and an unreadable one is damage, not a
// power cut): a trailer, or a frame of this life that verifies and
// vouches for a sync of its own segment (a durable hint past the header).
// It returns a description of the proof, or "". base is the base sequence
// number from the file's name.
//
// salt is the word at [48, 56) of the header as found: a torn header's
// salt (the same in a recycled file's pool header), or a damaged one's.
// When damage took it, a frame is of this life if the first frame of the
// segment, at HeaderSize, verifies under the same salt (the checksum each
// stored, XOR the hash of its bytes): two frames that agree on a salt by
// chance are as unlikely as a checksum collision. A recycled file's stale
// frames could agree on their old salt, but a recycled file never lacks
// its salt after a power cut: its pool header was synced first.
func syncedEvidence(f vfs.File, base, salt uint64) (string, error) {
	size, err := f.Size()
	if err != nil {
		return "", err
	}
	if CheckSize(size) != nil {
		// Synced segments were fully preallocated first.
		return "", nil
	}
	m, err := f.MapReadOnly(int(size))
	if err != nil {
		return "", err
	}
	defer m.Unmap()
	// Sealing starts only once all data is durable: even a torn trailer
	// proves a sync.
	if _, ok, err := DecodeTrailer(m[size-TrailerSize:], salt); ok || err != nil {
		return "the segment has a trailer (a seal was written)", nil
	}
	limit := DataLimit(size)
	first, firstOK := frameSalt(m[:limit], HeaderSize, base, limit)
	for p := int64(HeaderSize); p+FrameHeaderSize <= limit; p += Align {
		h := DecodeFrameHeader(m[p:])
		if !vouching(h, p, HeaderSize, base, limit) {
			continue
		}
		if x, ok := frameSalt(m[:limit], p, h.Seq, limit); ok && (x == salt || firstOK && x == first) {
			return fmt.Sprintf("the record at offset %d (seq %d) was appended after offset %d was durable", p, h.Seq, h.Hint), nil
		}
	}
	return "", nil
}

// frameSalt returns the salt under which the frame at p, which must hold
// seq, verifies (its stored checksum XOR the hash of its bytes), if the
// frame is plausible there.
func frameSalt(m []byte, p int64, seq uint64, limit int64) (uint64, bool) {
	if p+FrameHeaderSize > limit {
		return 0, false
	}
	h := DecodeFrameHeader(m[p:])
	if !Plausible(h, p, seq, limit) {
		return 0, false
	}
	end := p + FrameHeaderSize + int64(h.Len)
	return xxhash.Sum64(m[p+8:end]) ^ h.Sum, true
}

// ReadHeader reads and checks the header of the segment file f named name,
// with the rules recovery applies: a header that is all zeros, a recycled
// file's pool header (PoolHeader), or a prefix of the header this file
// must have followed by what was there before (a write torn by a power
// cut), is an error wrapping ErrNoHeader if nothing in the file says a
// sync of it completed in this life (the segment never held anything
// durable), and wraps ErrCorrupt otherwise; any other bad header, or one
// that does not match the name, wraps ErrCorrupt. Read-only tools use it
// too, so they judge a header as the writer will.
func ReadHeader(f vfs.File, name string) (Header, error) {
	index, base, ok := ParseName(name)
	if !ok {
		return Header{}, Corrupt(name, 0, -1, "not a segment file name")
	}
	var hb [HeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil && !isEOF(err) {
		return Header{}, fmt.Errorf("segment %s: read header: %w", name, err)
	}
	hdr, err := DecodeHeader(hb[:])
	if errors.Is(err, ErrUnsupportedVersion) {
		return Header{}, fmt.Errorf("segment %s: %w", name, err)
	}
	pooled := err == nil && hdr == PoolHeader(hdr.Size, hdr.Salt)
	if zero := hb == ([HeaderSize]byte{}); zero || pooled || err != nil {
		// The header is written when the segment is activated and made
		// durable by the segment's first sync. Zeros, a pool header, or
		// a prefix of the header this file must have followed by either,
		// are what a cut before that sync leaves, if nothing in the file
		// says a sync of it completed. Anything else (a flipped bit) is
		// damage.
		what := "all zeros"
		switch {
		case pooled:
			what = "a recycled file's, never activated"
		case !zero:
			if !tornHeader(hb[:], index, base) {
				return Header{}, At(err, name, index, 0)
			}
			what = "torn"
			if ce := (*CorruptError)(nil); errors.As(err, &ce) {
				what = fmt.Sprintf("torn (%s)", ce.Reason)
			}
		}
		synced, serr := syncedEvidence(f, base, binary.LittleEndian.Uint64(hb[48:]))
		if serr != nil {
			return Header{}, fmt.Errorf("segment %s: %w", name, serr)
		}
		if synced != "" {
			return Header{}, Corrupt(name, index, 0, "header is %s, but %s", what, synced)
		}
		return Header{}, fmt.Errorf("%w: %s: header is %s and nothing in the file was ever synced", ErrNoHeader, name, what)
	}
	if hdr.Index != index || hdr.BaseSeq != base {
		return Header{}, Corrupt(name, index, 0, "header says index %d base %d", hdr.Index, hdr.BaseSeq)
	}
	return hdr, nil
}

// Open opens an existing segment file for recovery and checks its header
// against its name. If the file carries a trailer and a footer that verify,
// the segment is sealed and trusted without a scan; otherwise the caller
// must call Scan and then Resume or Discard it. Opening changes nothing on
// disk: a file shorter than its header says is read through a copy padded
// with zeros, and allocated to its size only by Resume or Cut, once the
// caller has decided to keep it. Anything but a regular file is refused
// (vfs.ErrNotRegular).
func Open(fs vfs.FS, dir, name string) (*Segment, error) {
	return open(fs, dir, name, false)
}

// OpenReadOnly opens an existing segment file for inspection without ever
// writing to it, also while a writer appends to it: the header is checked,
// a sealed segment's footer is trusted and its records read (Read,
// Locate, ViewFrame), and an unsealed one can be scanned (Scan): its frames
// up to what the scan found are read with the format's decoders
// (DecodeFrameHeader, VerifyFrame), as inspect does. A file
// shorter than its header says is an error wrapping ErrCorrupt (the writer
// extends such a file when it opens the log). Release it when done.
func OpenReadOnly(fs vfs.FS, dir, name string) (*Segment, error) {
	return open(fs, dir, name, true)
}

func open(fs vfs.FS, dir, name string, readOnly bool) (_ *Segment, err error) {
	if _, _, ok := ParseName(name); !ok {
		return nil, Corrupt(name, 0, -1, "not a segment file name")
	}
	path := filepath.Join(dir, name)
	var f vfs.File
	if readOnly {
		f, err = fs.OpenReadOnly(path)
	} else {
		f, err = fs.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	s := &Segment{fs: fs, dir: dir, path: path, file: f, holders: 1}
	defer func() {
		if err != nil {
			s.Release()
		}
	}()
	hdr, err := ReadHeader(f, name)
	if err != nil {
		return nil, err
	}
	s.hdr = hdr
	s.limit = DataLimit(hdr.Size)
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", name, err)
	}
	if size < hdr.Size && readOnly {
		return nil, Corrupt(name, hdr.Index, -1, "the file is %d bytes, its header says %d", size, hdr.Size)
	}
	if size < hdr.Size {
		// Shorter than its preallocation (copied or cut by a tool).
		// Opening changes nothing on disk: recovery decides first. The
		// segment is read from a private copy padded with zeros (what
		// allocating the rest gives), and Resume or Cut allocate the
		// file to its size once recovery keeps it.
		if err := s.copyShort(size); err != nil {
			return nil, err
		}
	} else if err := s.mapFile(); err != nil {
		return nil, err
	}
	if footer, ok := s.readFooter(); ok {
		s.index = footer.Index
		s.scanCount = footer.Count
		s.resv.Store(packResv(footer.DataEnd, footer.Count) | closedBit)
		s.complete.Store(footer.DataEnd)
		s.written.Store(footer.DataEnd)
		s.durable.Store(footer.DataEnd)
		s.sealed.Store(true)
		s.headerSynced = true
		err := s.file.Close()
		s.file = nil
		if err != nil {
			return nil, fmt.Errorf("segment %s: %w", name, err)
		}
	}
	return s, nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// copyShort reads a file of size bytes, shorter than its header says, into
// anonymous memory of the header's size (zeros past the file's end), which
// stands in for the file's mapping until extend.
func (s *Segment) copyShort(size int64) error {
	b, err := unix.Mmap(-1, 0, int(s.hdr.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("segment %d: copy of a short file: %w", s.hdr.Index, err)
	}
	if _, err := s.file.ReadAt(b[:size], 0); err != nil && !isEOF(err) {
		unix.Munmap(b)
		return fmt.Errorf("segment %d: read short file: %w", s.hdr.Index, err)
	}
	s.rmap, s.short = b, true
	return nil
}

// extend allocates the missing part of a short file (zeros, as its copy
// has) and maps the file in place of the copy. Recovery calls it, through
// Resume or Cut, only once it has decided to keep the segment.
func (s *Segment) extend() error {
	if !s.short {
		return nil
	}
	if err := s.file.Allocate(s.hdr.Size); err != nil {
		return fmt.Errorf("segment %d: %w", s.hdr.Index, err)
	}
	m, err := s.file.MapReadOnly(int(s.hdr.Size))
	if err != nil {
		return fmt.Errorf("segment %d: %w", s.hdr.Index, err)
	}
	s.mu.Lock()
	old := s.rmap
	s.rmap, s.short = m, false
	s.mu.Unlock()
	return old.Unmap()
}

// readFooter reads and verifies the trailer and the footer (SealedFooter).
// ok is false when there is none, or when they fail a check (a crash
// during seal, or damage): then the segment is scanned instead.
func (s *Segment) readFooter() (Footer, bool) {
	f, sealed, err := SealedFooter(s.hdr, s.rmap)
	return f, sealed && err == nil
}

// SealedFooter finds the footer of a sealed segment in m, the segment's
// bytes [0, hdr.Size): the trailer in its last TrailerSize bytes (where
// WriteFooter puts it) and the footer it points at, both verified and
// consistent with hdr. sealed is false, with a nil error, when m has no
// trailer; err wraps ErrCorrupt when a trailer is there but it or its
// footer fails a check (a crash during seal, or damage). Recovery and
// read-only tools decide "sealed" with this one function.
func SealedFooter(hdr Header, m []byte) (f Footer, sealed bool, err error) {
	if int64(len(m)) < hdr.Size || hdr.Size < HeaderSize+TrailerSize {
		return Footer{}, false, Corrupt("", hdr.Index, -1, "segment of %d bytes, its header says %d", len(m), hdr.Size)
	}
	at := hdr.Size - TrailerSize
	t, ok, err := DecodeTrailer(m[at:], hdr.Salt)
	if err != nil {
		return Footer{}, false, At(err, "", hdr.Index, at)
	}
	if !ok {
		return Footer{}, false, nil
	}
	// Compared without adding the two: a crafted length would overflow
	// the sum past the check (a negative slice bound).
	if t.FooterOffset < HeaderSize || t.FooterOffset > at || t.FooterLen < FooterSize(0) || t.FooterLen > at-t.FooterOffset {
		return Footer{}, false, Corrupt("", hdr.Index, at, "trailer points at a footer [%d, +%d) outside the file", t.FooterOffset, t.FooterLen)
	}
	f, err = DecodeFooter(m[t.FooterOffset:t.FooterOffset+t.FooterLen], hdr.Salt)
	if err == nil && (f.FirstSeq != hdr.BaseSeq || f.DataEnd != t.FooterOffset || f.DataEnd > DataLimit(hdr.Size)) {
		err = corrupt(0, "footer: first seq %d, data end %d do not fit the header (base %d) and trailer", f.FirstSeq, f.DataEnd, hdr.BaseSeq)
	}
	if err != nil {
		return Footer{}, false, At(err, "", hdr.Index, t.FooterOffset)
	}
	return f, true, nil
}

// ScanResult is what a recovery scan of an unsealed segment found.
type ScanResult struct {
	// End is the offset just past the last good frame, and Count the
	// number of good frames before it.
	End   int64
	Count uint64
	// MaxHint is the largest durable offset that a good frame vouches
	// for: every byte before it was durable when that frame was
	// appended. Bytes in [MaxHint, End) may not have been.
	MaxHint int64
	// DurableCount is the number of records wholly before MaxHint.
	DurableCount uint64
	// Garbage is the number of bytes from End to the last non-zero byte
	// of the data area: a torn tail when Corrupt is nil. Zero means the
	// segment ends cleanly in zeros. In a recycled file (Header.Recycled)
	// the bytes past the data end are mostly stale ones of its earlier
	// life, which never verify under this life's salt and so are never
	// taken for records: there Garbage reaches only to the end of the
	// bad frame at End if it looks like one of this life (see ownAt), or
	// of the last frame of this life found past End (a frame appended
	// after a hole a crash left), and is zero when there is neither.
	Garbage int64
	// Corrupt, if not nil, wraps ErrCorrupt and names the offset of bad
	// bytes that a later good frame says were durable: corruption in the
	// middle, not a torn tail.
	Corrupt error
}

// Scan walks the frames of an unsealed segment from the header on, checking
// each one, and builds the segment's sparse index as it goes. vouched is an
// offset known durable from elsewhere (a DurableMark), or 0.
func (s *Segment) Scan(vouched int64) ScanResult {
	s.index = s.index[:0]
	s.lastIndexed = -indexInterval
	s.digest.Reset()
	off, seq, maxHint := s.walk(HeaderSize, s.hdr.BaseSeq, noLimit)
	r := ScanResult{MaxHint: maxHint}
	r.End, r.Count = off, seq-s.hdr.BaseSeq
	s.scanCount = r.Count
	if r.Corrupt = s.vouchedPast(off, seq, vouched); r.Corrupt == nil {
		r.MaxHint = max(r.MaxHint, vouched)
	}
	r.DurableCount = s.countBefore(r.MaxHint)
	if vouched == off {
		// A clean Close left nothing after its durable end, and
		// recovery zeroes any garbage it cuts: no need to read the
		// rest of the segment.
		return r
	}
	garbage, corrupt := s.tail(off, seq)
	r.Garbage = garbage
	if r.Corrupt == nil {
		r.Corrupt = corrupt
	}
	return r
}

// vouchedPast returns the error for good frames that end at off (seq
// expected there) short of vouched, an offset a durable mark says was
// durable, or nil.
func (s *Segment) vouchedPast(off int64, seq uint64, vouched int64) error {
	if vouched <= off {
		return nil
	}
	return Corrupt(filepath.Base(s.path), s.hdr.Index, off, "bad record (seq %d expected) where the durable mark says data was durable up to offset %d",
		seq, vouched)
}

// noLimit is walk's upTo when nothing limits it.
const noLimit = ^uint64(0)

// walk checks the frames from off, which holds seq, up to the first one
// that is not complete and valid or that holds upTo, and adds them to the
// sparse index and the data digest. It returns where it stopped and the
// largest durable hint of the frames it passed (HeaderSize for none).
// Recovery's Scan and read-only inspection's Observe walk with it.
func (s *Segment) walk(off int64, seq, upTo uint64) (int64, uint64, int64) {
	m := s.rmap[:s.limit]
	maxHint := int64(HeaderSize)
	for off+FrameHeaderSize <= s.limit && seq < upTo {
		h := DecodeFrameHeader(m[off:])
		if !Plausible(h, off, seq, s.limit) {
			break
		}
		if _, err := VerifyFrame(m[off:], h, s.hdr.Salt); err != nil {
			break
		}
		if off-s.lastIndexed >= indexInterval {
			s.mu.Lock() // readers' find may look at the index meanwhile (Observe)
			s.index = append(s.index, IndexEntry{Seq: seq, Offset: off})
			s.mu.Unlock()
			s.lastIndexed = off
		}
		maxHint = max(maxHint, h.Hint)
		next := off + FrameSize(int(h.Len))
		s.digest.Write(m[off:next])
		off, seq = next, seq+1
	}
	return off, seq, maxHint
}

// tail judges the bytes after off, the end of the good frames, where seq
// was expected: garbage is the number of bytes from off to the last
// non-zero byte of the data area (0: the segment ends cleanly in zeros;
// in a recycled file, to the end of the last frame of this life, see
// ScanResult.Garbage), and corrupt, if not nil, says that a good-looking
// frame further on vouches that off was already durable when it was
// appended: the bad bytes are damage to durable data, not a tail torn by
// a crash. Each position is checked against the frame header found
// there before any checksum is computed (vouching, reachable), so a tail
// of stale bytes costs about one pass over it.
func (s *Segment) tail(off int64, seq uint64) (garbage int64, corrupt error) {
	m := s.rmap[:s.limit]
	last := lastNonZero(m[off:])
	if last < 0 {
		return 0, nil
	}
	recycled := s.hdr.Recycled
	if !recycled {
		garbage = alignUp(int64(last) + 1)
	} else {
		garbage = s.ownAt(off, seq)
	}
	end := off + int64(last) + 1
	for p := off + Align; p < end && p+FrameHeaderSize <= s.limit; p += Align {
		// The sequence number first, with one load: in a tail of stale
		// bytes it rules out nearly every position.
		if q := binary.LittleEndian.Uint64(m[p+16:]); q < seq || q-seq > uint64(p-off)/FrameHeaderSize {
			continue
		}
		h := DecodeFrameHeader(m[p:])
		v := vouching(h, p, off, seq, s.limit)
		if !v && !(recycled && reachable(h, p, off, seq, s.limit)) {
			continue
		}
		if _, err := VerifyFrame(m[p:], h, s.hdr.Salt); err != nil {
			continue
		}
		if recycled {
			garbage = max(garbage, p+FrameSize(int(h.Len))-off)
		}
		if v && corrupt == nil {
			corrupt = Corrupt(filepath.Base(s.path), s.hdr.Index, off, "bad record (seq %d expected) before a record (seq %d at offset %d) appended after offset %d was durable",
				seq, h.Seq, p, h.Hint)
			if !recycled {
				return garbage, corrupt
			}
		}
	}
	return garbage, corrupt
}

// ownAt returns the size of the bad frame at off, where seq was expected,
// in a recycled file, if it looks like a frame of this life rather than a
// stale one (0 otherwise): at least two of its sequence number, its
// timestamp (a stale frame was appended before this life's header was
// written, at Created) and its hint and length are what a frame of this
// life has there. A torn or damaged frame of this life keeps two of them
// (one bit flip changes one field), so it is reported as a torn tail; a
// stale frame of an earlier era (other sequence numbers) never is, one
// whose sequence number this life reused at the same offset is, as a torn
// tail of one frame.
func (s *Segment) ownAt(off int64, seq uint64) int64 {
	if off+FrameHeaderSize > s.limit {
		return 0
	}
	h := DecodeFrameHeader(s.rmap[off:])
	fits := h.Hint >= HeaderSize && h.Hint <= off && off+FrameSize(int(h.Len)) <= s.limit
	n := 0
	for _, ok := range []bool{h.Seq == seq, h.Timestamp >= s.hdr.Created, fits} {
		if ok {
			n++
		}
	}
	switch {
	case n < 2:
		return 0
	case fits:
		return FrameSize(int(h.Len))
	default:
		return FrameHeaderSize
	}
}

// reachable reports whether h, the frame header found at p past the end
// of the good frames at off (where seq was expected), can be a frame of
// the same life appended after a hole: a sequence number the frames in
// between can reach (each takes at least FrameHeaderSize bytes), a hint
// within the data before p, a length that fits before limit.
func reachable(h FrameHeader, p, off int64, seq uint64, limit int64) bool {
	return h.Seq >= seq && h.Seq-seq <= uint64(p-off)/FrameHeaderSize &&
		h.Hint >= HeaderSize && h.Hint <= p && p+FrameSize(int(h.Len)) <= limit
}

// vouching reports whether h, the frame header found at p past the end of
// the good frames at off (where seq was expected), can be a frame of the
// same life that vouches for off, before its checksum is computed: a hint
// past off and not past p, a length that fits before limit, and a
// sequence number that the frames in between can reach (each takes at
// least FrameHeaderSize bytes). The bound keeps the checksums computed
// for a tail of stale bytes (a recycled file's previous life) to about one
// pass over it, whatever those bytes hold.
func vouching(h FrameHeader, p, off int64, seq uint64, limit int64) bool {
	return reachable(h, p, off, seq, limit) && h.Hint > off
}

// countBefore returns the number of good frames that end at or before off,
// a frame boundary found by Scan: from the nearest index entry, it walks
// frame lengths.
func (s *Segment) countBefore(off int64) uint64 {
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].Offset > off })
	p, seq := int64(HeaderSize), s.hdr.BaseSeq
	if i > 0 {
		p, seq = s.index[i-1].Offset, s.index[i-1].Seq
	}
	for p < off {
		p += FrameSize(int(binary.LittleEndian.Uint32(s.rmap[p+8:])))
		seq++
	}
	return seq - s.hdr.BaseSeq
}

// Plausible reports whether h can be the frame at off holding seq, in a
// segment whose record data must end by limit, before its checksum is
// computed: the sequence number, a durable hint within the data before
// off, a length that fits.
func Plausible(h FrameHeader, off int64, seq uint64, limit int64) bool {
	return h.Seq == seq && h.Hint >= HeaderSize && h.Hint <= off &&
		off+FrameSize(int(h.Len)) <= limit
}

// lastNonZero returns the index of the last non-zero byte of b, or -1.
func lastNonZero(b []byte) int {
	// Word at a time from the end: a mostly-zero preallocated tail is the
	// common case.
	i := len(b)
	for i >= 8 {
		if binary.NativeEndian.Uint64(b[i-8:]) != 0 {
			break
		}
		i -= 8
	}
	return bytes.LastIndexFunc(b[:i], func(r rune) bool { return r != 0 })
}

// Cut makes the bytes from the scan's End on read as zeros, durably, after
// writing a copy of them to keepPath (created with permission bits perm)
// when keepPath is not empty. It is how a torn tail is truncated and how
// repair cuts a corrupt middle.
func (s *Segment) Cut(r ScanResult, keepPath string, perm iofs.FileMode) error {
	if r.Garbage == 0 {
		return nil
	}
	if err := s.extend(); err != nil {
		return err
	}
	if keepPath != "" {
		if err := WriteFileSync(s.fs, keepPath, s.rmap[r.End:r.End+r.Garbage], perm); err != nil {
			return fmt.Errorf("segment %d: keep cut bytes: %w", s.hdr.Index, err)
		}
	}
	if err := s.file.ZeroRange(r.End, r.Garbage); err != nil {
		return fmt.Errorf("segment %d: cut at %d: %w", s.hdr.Index, r.End, err)
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("segment %d: sync cut at %d: %w", s.hdr.Index, r.End, err)
	}
	return nil
}

// ReadMark reads the mark file at path (DURABLE, FRONT or CUT) for its
// Decode function. ok is false, with a nil error, when there is no such
// file. A file of another size than DurableMarkSize is an error wrapping
// ErrCorrupt: marks are written to a temporary file, synced and renamed,
// so a crash leaves a whole mark or none. The log and read-only tools
// read marks with it alike.
func ReadMark(fs vfs.FS, path string) (b [DurableMarkSize]byte, ok bool, err error) {
	f, err := fs.OpenReadOnly(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return b, false, nil
	}
	if err != nil {
		return b, false, err
	}
	defer f.Close()
	var more [DurableMarkSize + 1]byte
	n, err := f.ReadAt(more[:], 0)
	if err != nil && !isEOF(err) {
		return b, true, fmt.Errorf("read %s: %w", path, err)
	}
	if n != DurableMarkSize {
		return b, true, Corrupt(filepath.Base(path), 0, -1, "%d bytes, a mark has %d", n, DurableMarkSize)
	}
	copy(b[:], more[:n])
	return b, true, nil
}

// WriteFileSync creates path holding b, with permission bits perm, durably
// (file and directory).
func WriteFileSync(fs vfs.FS, path string, b []byte, perm iofs.FileMode) error {
	f, err := fs.Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(path))
}

// ReplaceFileSync replaces the file at path with one holding b, atomically
// and durably: it writes b to path+".tmp" (removing a stale one first) and
// syncs it, renames it over path and syncs the directory. After a crash at
// any point path holds either its old content or b; a ".tmp" file left
// behind is never read.
func ReplaceFileSync(fs vfs.FS, path string, b []byte, perm iofs.FileMode) error {
	tmp := path + ".tmp"
	fs.Remove(tmp)
	if err := WriteFileSync(fs, tmp, b, perm); err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(path))
}

// Resume makes a scanned segment the one that takes appends again, or the
// one to seal, with the scan's good frames. The bytes in [MaxHint, End) are
// copied to a fresh append buffer and count as backlog: the next flush
// writes them again and syncs them, so what recovery found only in the page
// cache becomes durable for real before anyone is told it is.
func (s *Segment) Resume(r ScanResult) error {
	if err := s.extend(); err != nil {
		return err
	}
	if err := s.allocBuffer(r.MaxHint); err != nil {
		return err
	}
	copy(s.buf[r.MaxHint:r.End], s.rmap[r.MaxHint:r.End])
	s.warmTo(r.End, r.End+s.step)
	s.scanCount = r.Count
	s.resv.Store(packResv(r.End, r.Count))
	s.complete.Store(r.End)
	s.written.Store(r.MaxHint)
	s.durable.Store(r.MaxHint)
	s.headerSynced = false
	s.blocks = writtenBlocks(s.file, s.hdr.Size)
	return nil
}
