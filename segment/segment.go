// Package segment owns one segment file of a log: its on-disk format
// (format.go), preallocation, the in-memory append buffer, writing that
// buffer out with pwrite, sealing, recovery scanning and checksum-verified
// reads through a read-only memory map.
//
// # Concurrency model
//
// A Segment has three kinds of users:
//
//   - Appenders, any number at once. [Segment.Reserve] claims space and
//     sequence numbers with one compare-and-swap on the reservation word;
//     [Segment.Fill] then copies the frame into the append buffer and
//     publishes it by storing the frame's publish word atomically, last.
//     Appenders never take a lock and never touch the file.
//   - One flusher at a time: the caller must serialise [Segment.Advance],
//     [Segment.WriteOut], [Segment.Sync], [Segment.MarkDurable],
//     [Segment.WriteFooter] and [Segment.FinishSeal] (the log does so with
//     its flush lock). Advance walks
//     published frames in order and stops at the first unpublished one, so
//     only a complete prefix is ever written; WriteOut writes it with
//     pwrite; MarkDurable records an offset that was in place before the
//     sync that made it durable began.
//   - Readers, any number at once. They read complete frames from the
//     append buffer while the segment is unsealed (for offsets it holds),
//     otherwise through the read-only shared mapping of the file, and
//     verify each frame's checksum. A reader that copies holds the
//     segment's read lock while it copies; a reader that keeps zero-copy
//     slices of the mappings holds a lease (Acquire, Unlease), and the
//     mappings outlive every lease. A lease holder reads without the lock
//     (Lease.ViewFrame, and Lease.Window for the frames known complete,
//     read in order without a call each). A lease also says how far its
//     holder has moved on (Advance).
//
// The append buffer is anonymous memory outside the Go heap, faulted in a
// window at a time ahead of the appenders (Warm), and released behind the
// durable end once no lease may still hold a slice there (Trim): from then
// on readers find those bytes through the file mapping. It is retired
// when the segment is sealed, which happens only after every reserved frame
// was published, written and made durable, so no appender can still be
// writing into it; it is unmapped once no lease holds it. Release, the
// owner's end of the segment, likewise unmaps the file only once the last
// lease ends.
package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	iofs "io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/vfs"
)

// Errors returned by segment operations.
var (
	// errFull is returned by Reserve when the frames do not fit or the
	// segment no longer takes appends.
	errFull = errors.New("aof2: segment full")
	// ErrNotFound is returned when a sequence number is not in a segment.
	ErrNotFound = errors.New("aof2: record not found")
	// ErrReleased is returned by reads of a segment whose owner released
	// it (the log closed, or retention removed the segment) and that no
	// lease kept mapped.
	ErrReleased = errors.New("aof2: segment released")
)

// The reservation word packs, so that one CAS claims space and sequence
// numbers together: bits 0-31 the end offset divided by Align (a 4 GiB
// segment needs 29 bits), bits 32-62 the record count, bit 63 "closed".
const (
	closedBit  = uint64(1) << 63
	countShift = 32
	countMask  = uint64(1)<<31 - 1
)

func packResv(end int64, count uint64) uint64 {
	return uint64(end/Align) | count<<countShift
}

func unpackResv(w uint64) (end int64, count uint64, closed bool) {
	return int64(uint32(w)) * Align, (w >> countShift) & countMask, w&closedBit != 0
}

// Name returns the file name of a segment: its index and base sequence
// number, zero-padded so names sort in log order.
func Name(index, baseSeq uint64) string {
	return fmt.Sprintf("%020d-%020d.seg", index, baseSeq)
}

// ParseName parses a name made by Name.
func ParseName(name string) (index, baseSeq uint64, ok bool) {
	stem, found := strings.CutSuffix(name, ".seg")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(stem, "-")
	if !found {
		return 0, 0, false
	}
	index, err1 := strconv.ParseUint(a, 10, 64)
	baseSeq, err2 := strconv.ParseUint(b, 10, 64)
	return index, baseSeq, err1 == nil && err2 == nil
}

// TempSuffix ends the name of a prepared segment that was never activated.
// Recovery removes such files.
const TempSuffix = ".seg.tmp"

// Segment is one segment file. See the package comment for who may call
// what.
type Segment struct {
	fs   vfs.FS
	dir  string
	path string // current path; changes once, at activation
	// recycled: made by Recycle from a pool file (until activated, path
	// is the pool file's).
	recycled bool
	// blocks is the offset below which the file's blocks are known to
	// be written ones (WrittenTo): set by Recycle and Prewrite, on the
	// preparer's goroutine, before the segment is handed over, and by
	// Resume, before recovery hands it over.
	blocks int64
	hdr    Header
	file   vfs.File // read-write; nil once sealed

	// limit is where record data must end (DataLimit): room for the
	// footer and the trailer is never handed to records.
	limit int64

	mu sync.RWMutex // guards the lifetime of rmap and buf
	// warmMu is held while pages of the append buffer are faulted in
	// (Warm) or released (Trim), and while the buffer is unmapped at seal,
	// so that none of these overlap. Taken before mu.
	warmMu sync.Mutex
	rmap   vfs.Mapping // read-only shared mapping of [0, hdr.Size)
	// short: the file is shorter than hdr.Size and rmap is a private
	// copy of it padded with zeros, until extend (recovery only).
	short bool
	// holders counts who keeps the mappings alive: the owner (1 until
	// Release), one per lease, and Warm while it runs; leases lists the
	// leases. Under mu.
	holders int
	leases  []*Lease
	// bufRetired: sealed while leases held the append buffer, which is
	// unmapped when they end. Under mu.
	bufRetired bool
	// released: the owner called Release, so every holder left is a
	// lease. Under mu.
	released bool
	// unmapped: a sealed segment whose mapping Unmap dropped; the next
	// read maps it again (remap) and calls onMap. Under mu.
	unmapped bool
	onMap    func()
	// used is set by reads and leases, and cleared by Referenced: the
	// owner's LRU of mappings gives a used segment a second chance.
	used atomic.Bool
	// buf is the anonymous append buffer of hdr.Size bytes. The field is
	// set once, before the segment is shared, and never written again,
	// so appenders read it without a lock; bufLive says whether the
	// memory is still mapped. It is changed under mu, and loaded
	// without it by a lease holder (Lease.ViewFrame): for one, the
	// buffer stays mapped, live or retired, until the lease ends.
	buf     []byte
	bufLive atomic.Bool
	// bufStart is the first offset the append buffer holds; below it
	// (data recovered and already durable, or durable and trimmed away)
	// readers use rmap. Raised by Trim, under mu (and only up to the
	// lowest lease floor, so a lease holder may load it without mu).
	bufStart atomic.Int64

	resv     atomic.Uint64 // reservation word
	complete atomic.Int64  // end of the published prefix found by Advance
	written  atomic.Int64  // end of the bytes written to the file
	durable  atomic.Int64  // end of the bytes known durable
	sealed   atomic.Bool
	// warmAt: an appender whose frame crosses it asks for Warm.
	warmAt atomic.Int64
	// warmHook, set by tests only, runs in Warm once it found the
	// buffer live, before it faults pages in.
	warmHook func()

	// Owned by the flusher (see the package comment), but warmed and
	// warmEnd by the caller of Warm.
	scanCount uint64
	warmed    int64 // the append buffer is faulted in below it
	warmEnd   int64 // the reserved end at the last Warm
	// The append buffer is warmed and trimmed in steps (a power of two)
	// below hugeFrom, in huge pages from it on. Set with the buffer.
	step         int64
	hugeFrom     int64
	lastIndexed  int64
	digest       xxhash.Digest
	headerSynced bool
	index        []IndexEntry // appended by the flusher under mu
}

// Header returns the segment's header.
func (s *Segment) Header() Header { return s.hdr }

// Path returns the segment file's path.
func (s *Segment) Path() string { return s.path }

// Sealed reports whether the segment has a durable footer.
func (s *Segment) Sealed() bool { return s.sealed.Load() }

// Prepare creates a segment file under a temporary name (tmpID makes it
// unique), preallocates size bytes for it, maps it and allocates its append
// buffer; the file is created with permission bits perm. The segment takes
// no appends until Activate gives it its index and base sequence number. A
// full disk fails here, never inside an append.
func Prepare(fs vfs.FS, dir string, tmpID uint64, size int64, perm iofs.FileMode) (_ *Segment, err error) {
	if err := CheckSize(size); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("%020d%s", tmpID, TempSuffix))
	f, err := fs.Create(path, perm)
	if err != nil {
		return nil, fmt.Errorf("create segment file: %w", err)
	}
	s := &Segment{fs: fs, dir: dir, path: path, file: f, hdr: Header{Size: size}, limit: DataLimit(size), holders: 1}
	defer func() {
		if err != nil {
			s.Release()
			fs.Remove(path)
		}
	}()
	if err := f.Allocate(size); err != nil {
		return nil, fmt.Errorf("preallocate segment file (%d bytes): %w", size, err)
	}
	return s, s.ready()
}

// PoolSuffix ends the name of a recycled segment file waiting in the pool
// (a file of a segment the log dropped, kept to be reused; see Recycle).
// Recovery never reads such files as segments.
const PoolSuffix = ".seg.pool"

// Recycle prepares the pool file at path, a file of size bytes that held
// an earlier segment, for a new life, as Prepare does a new file: it draws
// the salt of the new life and writes a pool header with it (PoolHeader),
// zeroes the trailer and syncs both, so that until Activate writes the
// segment's header (same salt) the file says it was never activated, and
// no frame, footer or trailer left from the earlier life verifies; then it
// maps the file and allocates its append buffer. The file keeps its pool name until
// Activate renames it, so a crash before that leaves a pool file; Discard
// leaves it there. Its blocks are already written: syncs into them journal
// no extent conversion, unlike a fresh preallocated file's.
func Recycle(fs vfs.FS, path string, size int64) (_ *Segment, err error) {
	if err := CheckSize(size); err != nil {
		return nil, err
	}
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open pooled segment file: %w", err)
	}
	s := &Segment{fs: fs, dir: filepath.Dir(path), path: path, file: f, hdr: Header{Size: size}, limit: DataLimit(size), holders: 1, recycled: true}
	defer func() {
		if err != nil {
			s.Release()
		}
	}()
	if n, err := f.Size(); err != nil || n != size {
		return nil, fmt.Errorf("pooled segment file %s: %d bytes, want %d (%v)", path, n, size, err)
	}
	s.hdr.Salt = newSalt()
	s.blocks = writtenBlocks(f, size)
	var hb [HeaderSize]byte
	EncodeHeader(hb[:], PoolHeader(size, s.hdr.Salt))
	if _, err := f.WriteAt(hb[:], 0); err != nil {
		return nil, fmt.Errorf("pooled segment file %s: write header: %w", path, err)
	}
	var zero [TrailerSize]byte
	if _, err := f.WriteAt(zero[:], size-TrailerSize); err != nil {
		return nil, fmt.Errorf("pooled segment file %s: zero trailer: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("pooled segment file %s: %w", path, err)
	}
	return s, s.ready()
}

// ready maps a prepared or recycled file and allocates its append buffer;
// the segment stays closed to appends until Activate.
func (s *Segment) ready() error {
	if err := s.mapFile(); err != nil {
		return err
	}
	if err := s.allocBuffer(HeaderSize); err != nil {
		return err
	}
	s.warmTo(HeaderSize, HeaderSize+s.step)
	s.resv.Store(closedBit) // closed until activated
	return nil
}

// Recycled reports whether the segment's file was reused from the pool
// (Recycle) rather than created.
func (s *Segment) Recycled() bool { return s.recycled }

// Held reports whether anyone still holds the segment's mappings: its
// owner (until Release) or a lease. A dropped segment's file is reused
// (Recycle) only once nobody holds it, so no reader sees its bytes change.
func (s *Segment) Held() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holders > 0
}

func (s *Segment) mapFile() error {
	m, err := s.file.MapReadOnly(int(s.hdr.Size))
	if err != nil {
		return fmt.Errorf("segment %d: %w", s.hdr.Index, err)
	}
	s.rmap = m
	return nil
}

func (s *Segment) allocBuffer(start int64) error {
	b, err := unix.Mmap(-1, 0, int(s.hdr.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("segment %d: append buffer of %d bytes: %w", s.hdr.Index, s.hdr.Size, err)
	}
	s.buf = b
	s.bufLive.Store(true)
	s.bufStart.Store(start)
	// Small segments (tests, mostly) warm and trim in smaller steps, so
	// that they do it as often as large ones.
	s.step = min(smallStep, max(int64(unix.Getpagesize()), s.hdr.Size/32))
	s.hugeFrom = s.hdr.Size
	if s.hdr.Size >= 4*hugePage {
		// Past the first huge page, huge pages (where the kernel gives
		// them) make faulting in and releasing the buffer about 8 times
		// cheaper; the first one stays in small pages, so a log that
		// holds a few records holds a few small pages.
		s.hugeFrom = hugePage
		_ = unix.Madvise(b[hugePage:], unix.MADV_HUGEPAGE)
	}
	s.warmed = s.alignDown(start)
	s.warmEnd = start
	return nil
}

// The append buffer is faulted in (warmed) ahead of the appenders, on
// another goroutine (the log's preparer), so that Append rarely takes a
// page fault itself (a first touch of a 4 KiB page costs 1.3 µs here,
// against 1.2 µs per page faulted in ahead, or 0.15 µs in huge pages; a
// huge page the kernel must compact memory for costs milliseconds): a
// window of one small step at first, doubled each time the appenders
// get halfway through it, up to warmAhead. An idle log holds a few small
// pages of it, a busy one a few MiB, never a segment's worth.
const (
	warmAhead = 4 << 20
	smallStep = 64 << 10
	hugePage  = 2 << 20
)

// alignDown rounds off down to the granule the buffer is warmed and
// trimmed in there: a huge page from hugeFrom on, a step before.
func (s *Segment) alignDown(off int64) int64 {
	if off >= s.hugeFrom {
		return off &^ (hugePage - 1)
	}
	return off &^ (s.step - 1)
}

// alignUp rounds off up to the granule the buffer is warmed in there.
func (s *Segment) alignUp(off int64) int64 {
	if off > s.hugeFrom {
		return (off + hugePage - 1) &^ (hugePage - 1)
	}
	return (off + s.step - 1) &^ (s.step - 1)
}

// WarmAt returns the offset at which appenders ask for Warm: the log
// calls Warm, on another goroutine, once a frame it appends crosses it.
func (s *Segment) WarmAt() int64 { return s.warmAt.Load() }

// Warm faults in the append buffer ahead of the reserved end by four times
// what was appended since the last call (at least a step, at most
// warmAhead), and sets WarmAt halfway there; it goes on while the
// appenders pass WarmAt meanwhile. Calls are serialised (warmMu); the log
// makes them on its preparer's goroutine.
func (s *Segment) Warm() {
	s.warmMu.Lock()
	defer s.warmMu.Unlock()
	// Warm holds the buffer like a lease while it faults pages in: the
	// owner may release the segment meanwhile (a TruncateBack dropping
	// it), and the buffer is then unmapped when Warm is done, not under
	// its madvise.
	s.mu.Lock()
	live := s.bufLive.Load() && s.holders > 0
	if live {
		s.holders++
	}
	s.mu.Unlock()
	if !live {
		return
	}
	defer func() {
		s.mu.Lock()
		s.holders--
		s.unmapIfUnheld()
		s.mu.Unlock()
	}()
	if s.warmHook != nil {
		s.warmHook()
	}
	for {
		end, _ := s.Reserved()
		ahead := min(warmAhead, max(s.step, 4*(end-s.warmEnd)))
		s.warmEnd = end
		s.warmTo(end, end+ahead)
		if now, _ := s.Reserved(); now < s.warmAt.Load() {
			return
		}
	}
}

// warmTo faults in the append buffer up to to (rounded up to its
// granule), without changing its bytes: MADV_POPULATE_WRITE, so
// appenders may be writing into the same pages meanwhile. On a kernel
// without it (before 5.14) nothing is faulted in ahead, and appenders take
// the faults. Pages Trim released are not faulted in again. It sets
// WarmAt halfway from end, the reserved end, to where the buffer is
// faulted in; past the buffer's end nobody asks again. The buffer must be live; the caller is Warm's, or
// the segment is not shared yet. bufStart does not change meanwhile (Trim
// waits for warmMu).
func (s *Segment) warmTo(end, to int64) {
	to = min(s.alignUp(to), int64(len(s.buf)))
	if to == int64(len(s.buf)) {
		s.warmAt.Store(math.MaxInt64)
	} else {
		s.warmAt.Store(end + (max(to, s.warmed)-end)/2)
	}
	from := max(s.warmed, s.alignDown(s.bufStart.Load()))
	if to <= from {
		return
	}
	_ = unix.Madvise(s.buf[from:to], unix.MADV_POPULATE_WRITE)
	s.warmed = to
}

// Trim releases the append buffer's pages below the durable end, in whole
// granules (huge pages, or steps), once no lease may still hold a slice of
// them (each lease says how far its holder has moved on: Lease.Advance).
// Reads of those offsets go through the file mapping from then on, which
// holds the same bytes. So the buffer's memory is bounded by the bytes not yet durable,
// the window faulted in ahead and what the slowest lease still reads.
// Flusher only. It gives up, until the next call, while Warm runs: the
// flusher does not wait for it.
func (s *Segment) Trim() error {
	if !s.warmMu.TryLock() {
		return nil
	}
	defer s.warmMu.Unlock()
	durable := s.durable.Load()
	s.mu.RLock()
	_, to := s.trimRange(durable)
	s.mu.RUnlock()
	if to < 0 {
		return nil
	}
	s.mu.Lock()
	// Again, under the write lock: a lease taken since may see more.
	from, to := s.trimRange(durable)
	if to >= 0 {
		s.bufStart.Store(to)
	}
	s.mu.Unlock()
	if to < 0 {
		return nil
	}
	// No reader uses buf below bufStart any more, no lease holds a slice
	// of it, and appenders write past the durable end.
	if err := unix.Madvise(s.buf[from:to], unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("segment %d: release append buffer [%d, %d): %w", s.hdr.Index, from, to, err)
	}
	return nil
}

// trimRange returns the whole granules of the append buffer that Trim
// releases, given the durable end: from the one holding bufStart up to
// the lowest lease floor or the durable end, whichever is lower, rounded
// down. to is -1 if there are none (the buffer is gone, or nothing moved
// on far enough). mu must be held.
func (s *Segment) trimRange(durable int64) (from, to int64) {
	if !s.bufLive.Load() {
		return 0, -1
	}
	to = durable
	for _, l := range s.leases {
		to = min(to, l.floor.Load())
	}
	to = s.alignDown(to)
	if to <= s.bufStart.Load() {
		return 0, -1
	}
	return s.alignDown(s.bufStart.Load()), to
}

// Activate gives a prepared segment its index and base sequence number: it
// writes the header, renames the file to its final name and opens it for
// appends. The header and the name become durable with the segment's first
// Sync and directory sync.
func (s *Segment) Activate(index, baseSeq uint64, created int64) error {
	s.hdr.Index = index
	s.hdr.BaseSeq = baseSeq
	s.hdr.Created = created
	if s.hdr.Salt == 0 { // a new file; a recycled one drew its salt
		s.hdr.Salt = newSalt()
	}
	s.hdr.Recycled = s.recycled
	var hb [HeaderSize]byte
	EncodeHeader(hb[:], s.hdr)
	if _, err := s.file.WriteAt(hb[:], 0); err != nil {
		return fmt.Errorf("segment %d: write header: %w", s.hdr.Index, err)
	}
	final := filepath.Join(s.dir, Name(s.hdr.Index, baseSeq))
	if err := s.file.Rename(final); err != nil {
		return fmt.Errorf("segment %d: %w", s.hdr.Index, err)
	}
	s.path = final
	s.lastIndexed = -indexInterval
	s.digest.Reset()
	s.complete.Store(HeaderSize)
	s.written.Store(HeaderSize)
	s.durable.Store(HeaderSize)
	s.resv.Store(packResv(HeaderSize, 0))
	return nil
}

// newSalt draws the salt of a new life of a segment file: random, never 0
// (0 marks a version-1 header).
func newSalt() uint64 {
	for {
		if x := rand.Uint64(); x != 0 {
			return x
		}
	}
}

// Prewrite writes zeros over [off, off+len(zeros)) of a prepared segment's
// file (one that was never activated) and writes them back to the device
// (vfs.File.WriteBack), so that the file's blocks there are written ones: a
// record later written into them is made durable without the extent
// conversion a preallocated ("unwritten") block costs the first sync on
// ext4 and XFS. With durable it syncs the file instead, which makes every
// range written back before durable too. zeros must hold only zero bytes;
// the range must lie inside the segment. Each call leaves no dirty page of
// its own behind, so it can be stopped between calls and the segment
// activated at once; whatever was not synced then is by the segment's
// first sync (its conversions are in the file's metadata).
//
// One sync per segment, not one per call: each sync of the prewrite is a
// journal commit and a device cache flush beside the appenders' own syncs
// on the same device. Measured on the development VM (ext4 on virtio,
// durable 64 KiB records, 1 writer, 1 MiB calls, two interleaved runs of
// benchmarks/cmd/compare each): 4.77k and 5.31k records/s with a sync per
// call, 5.69k and 5.90k with one per segment; p99 2.23 and 1.18 ms against
// 0.79 and 0.72 ms.
func (s *Segment) Prewrite(off int64, zeros []byte, durable bool) error {
	if off < 0 || off+int64(len(zeros)) > s.hdr.Size {
		return fmt.Errorf("prewrite [%d, %d) of a %d-byte segment: out of range", off, off+int64(len(zeros)), s.hdr.Size)
	}
	if err := writeAt(s.file, zeros, off); err != nil {
		return fmt.Errorf("prewrite %s at %d: %w", s.path, off, err)
	}
	flush := func() error { return s.file.WriteBack(off, int64(len(zeros))) }
	if durable {
		flush = s.file.Sync
	}
	if err := flush(); err != nil {
		return fmt.Errorf("prewrite %s at %d: %w", s.path, off, err)
	}
	if off <= s.blocks {
		s.blocks = max(s.blocks, off+int64(len(zeros)))
	}
	return nil
}

// writtenBlocks returns f's written prefix up to size
// (vfs.File.WrittenPrefix), or size where the file system cannot tell:
// a file that held a segment is then taken as written, as it is unless an
// early rollover left part of it unused.
func writtenBlocks(f vfs.File, size int64) int64 {
	if n, known := f.WrittenPrefix(size); known {
		return n
	}
	return size
}

// WrittenTo returns the offset below which the segment's file is known to
// hold written blocks, not preallocated ("unwritten") ones: the whole file
// for a recycled or resumed segment as the file system reports it
// (vfs.File.WrittenPrefix; all of it where it cannot tell), the prefix
// Prewrite covered for a new one. A sync of records below it journals no
// extent conversion. Call it on a prepared segment the caller was handed,
// or after activation.
func (s *Segment) WrittenTo() int64 { return s.blocks }

// WriteChunk is the most bytes one pwrite of appended data or of a
// prewrite's zeros carries, each piece after the first starting at a
// multiple of it. A pwrite makes the page cache allocate folios about as
// large as the range it covers, up to 2 MiB, and the size matters twice:
//   - a 2 MiB folio comes from a 2 MiB block of free memory, and on a VM
//     that hands free memory back to its host in such blocks (virtio-balloon
//     free page reporting) the block must be faulted in again from the
//     host on first touch;
//   - a reader of the file's mapping faults once per folio or so, so small
//     folios make mapped reads dear.
//
// Measured on the development VM (ext4 on virtio, 1 GiB written to a new
// file with aligned pwrites of one size after a 5 s pause, then read
// through a fresh mapping, two rounds): 64 KiB pieces 0.13-0.15 s per GiB
// written and 84-85 ms per GiB read; 256 KiB 0.10-0.12 s and 56-59 ms;
// 1 MiB 0.10 s and 15 ms; 2 MiB 2.4 s and 4 ms. Hence 1 MiB.
const WriteChunk = 1 << 20

// writeAt writes p at off in pieces of at most WriteChunk bytes, each
// after the first starting at a multiple of WriteChunk, so the page cache
// takes aligned folios of at most that size. It stops at the first error;
// the pieces written before it stay written (a retry writes them again).
func writeAt(f vfs.File, p []byte, off int64) error {
	for len(p) > 0 {
		n := int(min(int64(len(p)), WriteChunk-off%WriteChunk))
		if _, err := f.WriteAt(p[:n], off); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// Discard closes and removes a prepared segment that was never activated;
// a recycled one is closed and left a pool file.
func (s *Segment) Discard() error {
	err := s.Release()
	if s.recycled {
		return err
	}
	return s.fs.Remove(s.path)
}

// Reserve claims room for k frames of total size n bytes and returns the
// offset of the first frame and its sequence number. It returns an error
// (errFull) if they do not fit or the segment was closed: the caller rolls
// over to the next segment.
func (s *Segment) Reserve(n int64, k uint64) (off int64, seq uint64, err error) {
	for {
		w := s.resv.Load()
		end, count, closed := unpackResv(w)
		if closed || end+n > s.limit {
			return 0, 0, errFull
		}
		if s.resv.CompareAndSwap(w, packResv(end+n, count+k)) {
			return end, s.hdr.BaseSeq + count, nil
		}
	}
}

// Fill writes the frame of payload at off, which Reserve returned, and
// publishes it. ts is the append time in Unix nanoseconds. It returns the
// offset just past the frame.
func (s *Segment) Fill(off int64, seq uint64, payload []byte, ts int64) int64 {
	end := off + FrameSize(len(payload))
	b := s.buf[off:end:end]
	w := EncodeFrame(b, payload, seq, ts, s.durable.Load(), s.hdr.Salt)
	// Publish: the word at [8, 16) is stored last and atomically; Advance
	// loads it atomically, so seeing it non-zero means the frame is
	// complete.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[8])), binary.NativeEndian.Uint64(w[:]))
	return end
}

// Close stops the segment taking appends and returns where its data ends
// and how many records it holds once every reservation made before is
// filled.
func (s *Segment) Close() (end int64, count uint64) {
	for {
		w := s.resv.Load()
		if s.resv.CompareAndSwap(w, w|closedBit) {
			end, count, _ = unpackResv(w)
			return end, count
		}
	}
}

// Free returns the bytes still free for frames; 0 once closed.
func (s *Segment) Free() int64 {
	end, _, closed := unpackResv(s.resv.Load())
	if closed {
		return 0
	}
	return s.limit - end
}

// Contains reports whether seq was reserved in this segment.
func (s *Segment) Contains(seq uint64) bool {
	_, count := s.Reserved()
	return seq >= s.hdr.BaseSeq && seq-s.hdr.BaseSeq < count
}

// Closed reports whether the segment stopped taking appends.
func (s *Segment) Closed() bool {
	_, _, closed := unpackResv(s.resv.Load())
	return closed
}

// Reserved returns the end of the reserved space and the number of records
// reserved so far.
func (s *Segment) Reserved() (end int64, count uint64) {
	end, count, _ = unpackResv(s.resv.Load())
	return end, count
}

// WaitPublished returns once every frame reserved so far is published,
// waiting for appenders still copying. It only reads: Close calls it so no
// appender writes into a buffer about to be released.
func (s *Segment) WaitPublished() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.bufLive.Load() {
		return
	}
	end, _ := s.Reserved()
	for off := s.complete.Load(); off < end; {
		n, ok := s.publishWordAt(off)
		if !ok {
			runtime.Gosched()
			continue
		}
		off += FrameSize(int(n))
	}
}

// Durable returns the end of the bytes known durable.
func (s *Segment) Durable() int64 { return s.durable.Load() }

// publishWordAt loads the publish word of the frame at off atomically.
func (s *Segment) publishWordAt(off int64) (length uint32, ok bool) {
	word := atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.buf[off+8])))
	if word == 0 {
		return 0, false
	}
	var w [8]byte
	binary.NativeEndian.PutUint64(w[:], word)
	return binary.LittleEndian.Uint32(w[0:4]), true
}

// Advance walks the frames published since the last call, in order, and
// stops at the first one not yet published. It returns the end of the
// complete prefix and the number of records in it. Flusher only.
func (s *Segment) Advance() (end int64, count uint64) {
	off := s.complete.Load()
	rend, _ := s.Reserved()
	start := off
	var added []IndexEntry
	for off < rend {
		n, ok := s.publishWordAt(off)
		if !ok {
			break
		}
		if off-s.lastIndexed >= indexInterval {
			added = append(added, IndexEntry{Seq: s.hdr.BaseSeq + s.scanCount, Offset: off})
			s.lastIndexed = off
		}
		off += FrameSize(int(n))
		s.scanCount++
	}
	if off > start {
		s.digest.Write(s.buf[start:off])
		if len(added) > 0 {
			s.mu.Lock()
			s.index = append(s.index, added...)
			s.mu.Unlock()
		}
		s.complete.Store(off)
	}
	return off, s.scanCount
}

// PendingSince returns the append time (Unix nanoseconds) of the first
// record not yet durable, or now if it is still being copied; ok is false
// if every reserved record is durable.
func (s *Segment) PendingSince(now int64) (appendedAt int64, ok bool) {
	off := s.durable.Load()
	if end, _ := s.Reserved(); off >= end {
		return 0, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.bufLive.Load() || off < s.bufStart.Load() {
		return now, true
	}
	if _, published := s.publishWordAt(off); !published {
		return now, true
	}
	return int64(binary.LittleEndian.Uint64(s.buf[off+24:])), true
}

// TimestampAt returns the append time (Unix nanoseconds) of the complete
// frame at off. It fails only if the segment was released (ErrReleased),
// or its file could not be mapped again for the read.
func (s *Segment) TimestampAt(off int64) (int64, error) {
	if err := s.rlockMapped(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	src, _ := s.source(off)
	if src == nil {
		return 0, fmt.Errorf("%w: segment %d", ErrReleased, s.hdr.Index)
	}
	return int64(binary.LittleEndian.Uint64(src[off+24:])), nil
}

// WriteOut writes the complete bytes not yet written to the file, with
// pwrites of at most WriteChunk bytes (writeAt). Flusher only.
func (s *Segment) WriteOut() (int64, error) {
	from, to := s.written.Load(), s.complete.Load()
	if to <= from {
		return 0, nil
	}
	if err := writeAt(s.file, s.buf[from:to], from); err != nil {
		return 0, fmt.Errorf("segment %d: write [%d, %d): %w", s.hdr.Index, from, to, err)
	}
	s.written.Store(to)
	return to - from, nil
}

// NeedsDirSync reports whether the segment's directory entry has not yet
// been made durable. Flusher only.
func (s *Segment) NeedsDirSync() bool { return !s.headerSynced }

// DirSynced records that the segment's directory entry is durable.
func (s *Segment) DirSynced() { s.headerSynced = true }

// Sync makes the written bytes durable (fdatasync) once. It does not mark
// them durable: the caller does, with the offset it took before the sync
// began, and only if this sync (or a retry of a transient failure)
// succeeded.
func (s *Segment) Sync() error { return s.file.Sync() }

// MarkDurable records that the bytes before end are durable. Flusher only.
func (s *Segment) MarkDurable(end int64) { s.durable.Store(end) }

// WriteFooter writes the footer and trailer; the caller then syncs (Sync,
// through its retry policy) and calls FinishSeal. The segment must be
// closed, and every byte complete, written and durable. Flusher only.
func (s *Segment) WriteFooter() error {
	end, count := s.Reserved()
	if !s.Closed() || s.complete.Load() != end || s.written.Load() != end || s.durable.Load() != end {
		return fmt.Errorf("segment %d: seal before all data is durable", s.hdr.Index)
	}
	// The flusher is the index's only writer.
	return s.writeFooter(end, count, s.digest.Sum64(), s.index)
}

// writeFooter writes the footer of the records in [HeaderSize, end) at end,
// and the trailer pointing at it.
func (s *Segment) writeFooter(end int64, count uint64, sum uint64, index []IndexEntry) error {
	f := Footer{
		Count:    count,
		FirstSeq: s.hdr.BaseSeq,
		LastSeq:  s.hdr.BaseSeq + count - 1,
		DataEnd:  end,
		DataSum:  sum,
		Index:    index,
	}
	fsize := FooterSize(len(f.Index))
	if end+fsize > s.hdr.Size-TrailerSize {
		// DataLimit keeps room for the largest footer: cannot happen.
		return fmt.Errorf("segment %d: footer of %d bytes does not fit after offset %d", s.hdr.Index, fsize, end)
	}
	fb := make([]byte, fsize)
	EncodeFooter(fb, f, s.hdr.Salt)
	if _, err := s.file.WriteAt(fb, end); err != nil {
		return fmt.Errorf("segment %d: write footer: %w", s.hdr.Index, err)
	}
	var tb [TrailerSize]byte
	EncodeTrailer(tb[:], Trailer{FooterOffset: end, FooterLen: fsize}, s.hdr.Salt)
	if _, err := s.file.WriteAt(tb[:], s.hdr.Size-TrailerSize); err != nil {
		return fmt.Errorf("segment %d: write trailer: %w", s.hdr.Index, err)
	}
	return nil
}

// CutAndSeal ends the segment after its first count records, which end at
// offset end (a frame boundary: HeaderSize plus their frames), and seals it
// there, durably: a footer at end, zeros over the records after it, a
// trailer, one sync. It is how TruncateBack cuts a log, and it can be
// repeated after a crash with the same result. Every record must be
// durable, and the segment closed to appends; a sealed segment is reopened
// for writing. Payloads of the records cut that readers still hold change
// under them (the mappings stay valid). The caller serialises it with the
// flusher.
func (s *Segment) CutAndSeal(end int64, count uint64) error {
	oldEnd, oldCount := s.Reserved()
	if count == 0 || count > oldCount || end < HeaderSize || end > oldEnd {
		return fmt.Errorf("segment %d: cut at %d records (offset %d) outside its %d records (end %d)", s.hdr.Index, count, end, oldCount, oldEnd)
	}
	if !s.Closed() || s.durable.Load() < oldEnd && !s.sealed.Load() {
		return fmt.Errorf("segment %d: cut before all data is durable", s.hdr.Index)
	}
	if s.file == nil {
		f, err := s.fs.Open(s.path)
		if err != nil {
			return fmt.Errorf("segment %d: reopen to cut: %w", s.hdr.Index, err)
		}
		s.file = f
	}
	if err := s.rlockMapped(); err != nil {
		return err
	}
	var index []IndexEntry
	for _, e := range s.index {
		if e.Offset < end {
			index = append(index, e)
		}
	}
	sum := xxhash.Sum64(s.rmap[HeaderSize:end])
	s.mu.RUnlock()
	if err := s.writeFooter(end, count, sum, index); err != nil {
		return err
	}
	// The records cut must not come back if the footer is ever lost and
	// the segment scanned: zero them.
	if from := end + FooterSize(len(index)); from < oldEnd {
		if err := s.file.ZeroRange(from, oldEnd-from); err != nil {
			return fmt.Errorf("segment %d: zero records cut at %d: %w", s.hdr.Index, end, err)
		}
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("segment %d: sync cut at %d: %w", s.hdr.Index, end, err)
	}
	s.mu.Lock()
	s.index = index
	s.mu.Unlock()
	s.scanCount = count
	s.resv.Store(packResv(end, count) | closedBit)
	s.complete.Store(end)
	s.written.Store(end)
	s.durable.Store(end)
	s.headerSynced = true
	if s.sealed.Load() {
		err := s.file.Close()
		s.file = nil
		return err
	}
	return s.FinishSeal()
}

// FinishSeal marks the segment sealed once its footer is durable, and
// releases the read-write file and the append buffer (once no lease holds
// it). Flusher only.
func (s *Segment) FinishSeal() error {
	s.warmMu.Lock() // no Warm is faulting pages in while the buffer goes
	defer s.warmMu.Unlock()
	s.mu.Lock()
	var err error
	if s.bufLive.Load() {
		s.bufLive.Store(false)
		if s.holders > 1 {
			s.bufRetired = true
		} else {
			err = unix.Munmap(s.buf)
		}
	}
	s.mu.Unlock()
	s.sealed.Store(true)
	err = errors.Join(err, s.file.Close())
	s.file = nil
	if err != nil {
		return fmt.Errorf("segment %d: release after seal: %w", s.hdr.Index, err)
	}
	return nil
}

// Release is the owner's end of the segment: it closes the file, and
// unmaps the segment at once, or when the last lease ends. A segment is
// released once.
func (s *Segment) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.file != nil {
		err = s.file.Close()
		s.file = nil
	}
	s.holders--
	s.released = true
	return errors.Join(err, s.unmapIfUnheld())
}

// Lease keeps a segment's mappings, and so the slices ViewFrame returns,
// valid while it is held. A holder that moves on through the segment says
// so with Advance, so that the append buffer's pages behind it can be
// released (Trim) while it still holds the lease. A Lease is used by one
// goroutine at a time.
type Lease struct {
	s *Segment
	// rmap is the segment's file mapping when the lease was taken: it
	// is not unmapped, nor replaced, while the lease is held.
	rmap []byte
	// floor: the holder keeps no slice of bytes before it. Raised by
	// Advance, read by Trim.
	floor atomic.Int64
}

// Acquire takes a lease: the segment's mappings, and so every slice
// ViewFrame returns, stay valid until Unlease, even if the owner releases
// the segment meanwhile. A sealed segment whose mapping was dropped
// (Unmap) is mapped again. It fails with an error wrapping ErrReleased
// once the segment is unmapped for good: its owner released it and no
// lease was left.
func (s *Segment) Acquire() (*Lease, error) {
	for {
		s.mu.Lock()
		if s.holders <= 0 {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: segment %d", ErrReleased, s.hdr.Index)
		}
		if !s.unmapped {
			break
		}
		s.mu.Unlock()
		if err := s.remap(); err != nil {
			return nil, err
		}
	}
	defer s.mu.Unlock()
	s.touch()
	s.holders++
	l := &Lease{s: s, rmap: s.rmap}
	// Every slice of buf the holder gets from now on is at bufStart or
	// after: Trim only raises it.
	l.floor.Store(s.bufStart.Load())
	s.leases = append(s.leases, l)
	return l, nil
}

// touch marks the segment used (Referenced).
func (s *Segment) touch() {
	if !s.used.Load() {
		s.used.Store(true)
	}
}

// Referenced reports whether the segment was read or leased since the last
// call, and clears that: the owner's LRU of mappings (second chance).
func (s *Segment) Referenced() bool { return s.used.Swap(false) }

// OnMap sets a function called, on the reader's goroutine and with no
// lock of the segment held, each time a read maps the segment again after
// Unmap: the owner's LRU of mappings counts it. Call it before the segment
// is shared.
func (s *Segment) OnMap(fn func()) { s.onMap = fn }

// Unmap drops the file mapping of a sealed segment that no lease holds, to
// bound the mappings a log keeps; the next read or lease maps it again.
// It reports whether the segment no longer counts as mapped for its owner:
// its mapping was dropped now, or it was released. It returns false, and
// does nothing, for a segment that is leased, not sealed, or already
// unmapped.
func (s *Segment) Unmap() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return true, nil
	}
	if !s.sealed.Load() || s.unmapped || s.holders != 1 || s.bufLive.Load() || s.bufRetired || s.short || s.rmap == nil {
		return false, nil
	}
	err := s.rmap.Unmap()
	s.rmap, s.unmapped = nil, true
	if err != nil {
		return true, fmt.Errorf("segment %d: unmap: %w", s.hdr.Index, err)
	}
	return true, nil
}

// remap maps a segment again after Unmap, for a read.
func (s *Segment) remap() error {
	s.mu.Lock()
	if !s.unmapped {
		s.mu.Unlock()
		return nil
	}
	if s.holders <= 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: segment %d", ErrReleased, s.hdr.Index)
	}
	f, err := s.fs.OpenReadOnly(s.path)
	if err != nil {
		s.mu.Unlock()
		if errors.Is(err, iofs.ErrNotExist) {
			// Retention removed the file and is about to release it.
			return fmt.Errorf("%w: segment %d: %w", ErrReleased, s.hdr.Index, err)
		}
		return fmt.Errorf("segment %d: map again: %w", s.hdr.Index, err)
	}
	m, err := f.MapReadOnly(int(s.hdr.Size))
	err = errors.Join(err, f.Close())
	if err != nil {
		if m != nil {
			m.Unmap()
		}
		s.mu.Unlock()
		return fmt.Errorf("segment %d: map again: %w", s.hdr.Index, err)
	}
	s.rmap, s.unmapped = m, false
	onMap := s.onMap
	s.mu.Unlock()
	if onMap != nil {
		onMap()
	}
	return nil
}

// rlockMapped read-locks mu with the file mapped: a sealed segment whose
// mapping Unmap dropped is mapped again first. The caller unlocks mu if it
// returns nil.
func (s *Segment) rlockMapped() error {
	for {
		s.mu.RLock()
		if !s.unmapped {
			s.touch()
			return nil
		}
		s.mu.RUnlock()
		if err := s.remap(); err != nil {
			return err
		}
	}
}

// Advance tells the segment that the holder keeps no slice of the bytes
// before off any more (a reader moved on to the frame at off). Slices of
// frames at off or after stay valid. off only moves forward: a smaller
// one is ignored.
func (l *Lease) Advance(off int64) {
	// The floor moves a page at a time (Trim releases whole granules of
	// pages anyway): one store per page rather than per frame.
	if off &^= floorGrain - 1; off > l.floor.Load() {
		l.floor.Store(off)
	}
}

// floorGrain is the step in which a lease's floor moves (Lease.Advance):
// a page, and so a divisor of every granule the append buffer is trimmed
// in.
const floorGrain = 4 << 10

// Unlease ends the lease: no slice obtained under it may be used after.
// It is called once.
func (l *Lease) Unlease() {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.leases {
		if x == l {
			last := len(s.leases) - 1
			s.leases[i], s.leases[last] = s.leases[last], nil
			s.leases = s.leases[:last]
			break
		}
	}
	s.holders--
	s.unmapIfUnheld()
}

// unmapIfUnheld unmaps what no holder needs any more. mu must be held.
func (s *Segment) unmapIfUnheld() error {
	var err error
	// A retired buffer is unmapped when no lease is left: every holder
	// but the owner (until it releases) is a lease that may hold slices
	// of it.
	owner := 1
	if s.released {
		owner = 0
	}
	if s.bufRetired && s.holders <= owner {
		s.bufRetired = false
		err = unix.Munmap(s.buf)
	}
	if s.holders > 0 {
		return err
	}
	if s.bufLive.Load() {
		err = errors.Join(err, unix.Munmap(s.buf))
		s.bufLive.Store(false)
	}
	if s.rmap != nil {
		err = errors.Join(err, s.rmap.Unmap())
		s.rmap = nil
	}
	return err
}

// Record is one record read from a segment.
type Record struct {
	Seq       uint64 // sequence number
	Timestamp int64  // append time, Unix nanoseconds
	Offset    int64  // offset of the frame in the segment file
	Payload   []byte // the payload
}

// source returns the bytes that hold the frame at off, and whether they are
// the append buffer (where frames may still be unpublished). mu must be
// held.
func (s *Segment) source(off int64) (src []byte, inBuf bool) {
	if s.bufLive.Load() && off >= s.bufStart.Load() {
		return s.buf, true
	}
	return s.rmap, false
}

// frameAt decodes and verifies the complete frame at off. mu must be held.
func (s *Segment) frameAt(off int64) (FrameHeader, []byte, error) {
	src, _ := s.source(off)
	if src == nil {
		return FrameHeader{}, nil, fmt.Errorf("%w: segment %d", ErrReleased, s.hdr.Index)
	}
	// A frame must lie within the segment's data: for a sealed segment,
	// the data end its footer states, not merely the data limit.
	end, _ := s.Reserved()
	if off < HeaderSize || off+FrameHeaderSize > end {
		return FrameHeader{}, nil, Corrupt(filepath.Base(s.path), s.hdr.Index, off, "outside the data")
	}
	h := DecodeFrameHeader(src[off:])
	payload, err := VerifyFrame(src[off:end], h, s.hdr.Salt)
	if err != nil {
		return h, nil, At(err, filepath.Base(s.path), s.hdr.Index, off)
	}
	return h, payload, nil
}

// Read finds the record with sequence number seq and appends its payload
// to dst. The checksum is verified; a corrupt record is an error wrapping
// ErrCorrupt that names the segment and offset, and no payload is returned.
func (s *Segment) Read(seq uint64, dst []byte) (Record, error) {
	if err := s.rlockMapped(); err != nil {
		return Record{}, err
	}
	defer s.mu.RUnlock()
	off, err := s.find(seq)
	if err != nil {
		return Record{}, err
	}
	h, payload, err := s.frameAt(off)
	if err != nil {
		return Record{}, err
	}
	if h.Seq != seq {
		return Record{}, Corrupt(filepath.Base(s.path), s.hdr.Index, off, "holds seq %d, want %d", h.Seq, seq)
	}
	return Record{Seq: seq, Timestamp: h.Timestamp, Offset: off, Payload: append(dst, payload...)}, nil
}

// find returns the offset of the frame with sequence number seq: a binary
// search of the sparse index, then a walk of at most one index interval.
// mu must be held.
func (s *Segment) find(seq uint64) (int64, error) {
	limit, count := s.Reserved()
	if seq < s.hdr.BaseSeq || seq-s.hdr.BaseSeq >= count {
		return 0, fmt.Errorf("%w: seq %d is not in segment %d", ErrNotFound, seq, s.hdr.Index)
	}
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].Seq > seq })
	off, cur := int64(HeaderSize), s.hdr.BaseSeq
	if i > 0 {
		off, cur = s.index[i-1].Offset, s.index[i-1].Seq
	}
	for cur < seq {
		if off+FrameHeaderSize > limit {
			return 0, Corrupt(filepath.Base(s.path), s.hdr.Index, off, "walk for seq %d ran past the data", seq)
		}
		n, err := s.frameLen(off)
		if err != nil {
			return 0, err
		}
		off += FrameSize(int(n))
		cur++
	}
	if off+FrameHeaderSize > limit {
		return 0, Corrupt(filepath.Base(s.path), s.hdr.Index, off, "walk for seq %d ran past the data", seq)
	}
	// The record itself may still be being filled by its appender.
	if _, err := s.frameLen(off); err != nil {
		return 0, err
	}
	return off, nil
}

// frameLen returns the payload length of the frame at off, waiting for an
// appender still filling it. mu must be held.
func (s *Segment) frameLen(off int64) (uint32, error) {
	src, inBuf := s.source(off)
	if src == nil {
		return 0, fmt.Errorf("%w: segment %d", ErrReleased, s.hdr.Index)
	}
	if !inBuf {
		return binary.LittleEndian.Uint32(src[off+8:]), nil
	}
	for {
		if n, ok := s.publishWordAt(off); ok {
			return n, nil
		}
		// Reserved but not yet published: its appender is copying.
		runtime.Gosched()
	}
}

// Locate returns the offset of the frame with sequence number seq, which
// must have been reserved in this segment: a binary search of the sparse
// index and a walk of at most one index interval. Like Read, it waits for
// appenders still filling the frames it walks over.
func (s *Segment) Locate(seq uint64) (int64, error) {
	if err := s.rlockMapped(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return s.find(seq)
}

// readFrame reads the frame at off, which must be where a frame starts
// (HeaderSize, or an offset readFrame or Locate returned), for sequential
// reading. It verifies the checksum, appends the payload to dst and returns
// the record and the offset of the frame after it. ok is false, with a nil
// error, when no published frame is at off: off is at the reserved end, or
// the frame there is reserved but its appender is still copying it. It
// never waits. A corrupt frame is an error wrapping ErrCorrupt that names
// the segment and offset, and no payload is returned.
func (s *Segment) readFrame(off int64, dst []byte) (rec Record, next int64, ok bool, err error) {
	if err := s.rlockMapped(); err != nil {
		return Record{}, off, false, err
	}
	defer s.mu.RUnlock()
	rec, next, ok, err = s.viewFrame(off, s.rmap)
	if ok {
		rec.Payload = append(dst, rec.Payload...)
	}
	return rec, next, ok, err
}

// ViewFrame reads the frame at off, which must be where a frame starts
// (HeaderSize, or an offset ViewFrame or Locate returned), for sequential
// reading. It is readFrame without the copy: the payload is a slice of the
// segment's mapping, read-only, valid while the caller holds a lease
// (Acquire) and has not advanced it past off. ok is false, with a nil
// error, when no published frame is at off; a corrupt frame is an error
// wrapping ErrCorrupt. A lease holder calls Lease.ViewFrame instead, which
// takes no lock.
func (s *Segment) ViewFrame(off int64) (rec Record, next int64, ok bool, err error) {
	if err := s.rlockMapped(); err != nil {
		return Record{}, off, false, err
	}
	defer s.mu.RUnlock()
	return s.viewFrame(off, s.rmap)
}

// ViewFrame is Segment.ViewFrame for the lease's holder (the reader
// package's cursors), without the segment's lock: what the lock guards
// while a frame is read, the mappings, cannot go while the lease is held
// (Unmap leaves a leased segment alone, Release and FinishSeal unmap
// nothing a lease holds), and of what says where the frame is, the
// append buffer's start only rises up to the lease's floor (Trim), which
// is at or before off. The caller must not have ended the lease.
func (l *Lease) ViewFrame(off int64) (rec Record, next int64, ok bool, err error) {
	l.s.touch()
	return l.s.viewFrame(off, l.rmap)
}

// Window returns bytes b of the segment and an offset lim such that every
// frame from off (a frame's start) up to lim is complete and lies within
// b: a holder reads them in order with DecodeFrameHeader and VerifyFrame,
// without a call per frame, where lim is past off. They stay so while the
// lease is held, and lim is not lowered by anything but a cut (the caller
// takes a fresh window after one: Cuts in package reader). lim is off or
// less when there is no such frame: off is at the reserved end, or in the
// append buffer past the prefix the flusher found published (ViewFrame
// then says whether the frame at off is published yet).
func (l *Lease) Window(off int64) (b []byte, lim int64) {
	s := l.s
	s.touch()
	end, _ := s.Reserved()
	if s.bufLive.Load() {
		start := s.bufStart.Load()
		if off >= start {
			// Frames below complete were published (Advance walked
			// them), and Trim releases nothing at or past the floor.
			c := s.complete.Load()
			return s.buf[:c], c
		}
		// Below bufStart every frame is durable, so in the file; a
		// frame that starts before the end loaded also ends before it.
		return l.rmap[:end], min(start, end)
	}
	return l.rmap[:end], end
}

// viewFrame implements ViewFrame, given the file mapping: mu must be held,
// or a lease (Lease.ViewFrame).
func (s *Segment) viewFrame(off int64, rmap []byte) (rec Record, next int64, ok bool, err error) {
	end, _ := s.Reserved()
	if off >= end {
		return Record{}, off, false, nil
	}
	// A frame must lie within the segment's data: for a sealed segment,
	// the data end its footer states, not merely the data limit.
	if off < HeaderSize || off+FrameHeaderSize > end {
		return Record{}, off, false, Corrupt(filepath.Base(s.path), s.hdr.Index, off, "outside the data")
	}
	src := rmap
	if s.bufLive.Load() && off >= s.bufStart.Load() {
		// The append buffer, where the frame may still be unpublished.
		// The frame at off was reserved whole before end was loaded.
		if _, published := s.publishWordAt(off); !published {
			return Record{}, off, false, nil
		}
		src = s.buf
	}
	if src == nil {
		return Record{}, off, false, fmt.Errorf("%w: segment %d", ErrReleased, s.hdr.Index)
	}
	seq, ts, payload, size, err := ReadFrame(src[off:end], s.hdr.Salt)
	if err != nil {
		return Record{}, off, false, At(err, filepath.Base(s.path), s.hdr.Index, off)
	}
	return Record{Seq: seq, Timestamp: ts, Offset: off, Payload: payload}, off + size, true, nil
}
