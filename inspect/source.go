package inspect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// ErrTruncated is wrapped by the *TruncatedError a Reader of a Source
// reports when the writer removed records it was reading: the library's
// aof.ErrTruncated.
var ErrTruncated = reader.ErrTruncated

// TruncatedError says which records the writer removed under a Reader and
// where the log continues: the library's own aof.TruncatedError, so the
// tool and the library report removed records with one type. It is not
// corruption: a reader that wants to go on starts again at Continue.
type TruncatedError = reader.TruncatedError

// ErrNoHeader is wrapped when a segment file's header is all zeros: it was
// created but its header never reached the disk (the writer removes such
// a file when it opens the log, if nothing after it is durable).
var ErrNoHeader = segment.ErrNoHeader

// errDurableLevel is the error of a Durable Reader of a directory.
var errDurableLevel = errors.New("aof2: a log directory is read at the Written level: durability is what aof inspect and aof verify report")

// Source is a log directory as a reader.Source: package reader's Reader
// reads the segment files through it with the rules it applies to a live
// log (leases, the frontier, retention, cuts), while a writer in another
// process may append, roll over, seal, truncate and remove segments. It
// never takes DIR/LOCK and never writes.
//
// It hands the Reader segments opened with segment.OpenReadOnly. A sealed
// one is complete (its footer is trusted). An unsealed one is readable up
// to its last complete, valid frame, which segment.Observe finds
// incrementally: the Reader calls Successor whenever it finds no frame
// after the last, and that is where the Source looks again: at the
// segment's new frames, whether it got sealed, whether the next segment
// exists (its name is known in advance: a look when nothing is new costs
// one frame header, one failed open and one stat), and, when something does
// not line up (the file was removed or replaced, a sealed segment has no
// successor), at the directory and the FRONT and CUT marks.
//
// The writer's cuts drive the Source's reader.Cuts: a CUT mark found while
// reading holds the Readers (Begin) until it is gone (End, at the cut's
// end); a cut found done (the segment read was resealed shorter, or
// removed, and a segment created later continues the log lower) is a Begin
// and an End at once. The Reader's own rules then fail it with a
// *TruncatedError if the cut removed records it returned, or let it go on.
// A CUT mark found when the Source is opened (a crash interrupted a
// TruncateBack, or one is under way) ends the log at the cut's end: the
// Reader sees the log the writer's Open keeps.
//
// Bytes after the last good frame of an unsealed segment are never
// returned: Poll says what they are (a torn tail, wrapping ErrTornTail, or
// corruption). The Reader is to be read at reader.Written: a directory has
// no durable frontier to wait on. One Reader at a time; Poll and Close are
// for the goroutine that reads.
type Source struct {
	fs   vfs.FS
	path string
	cuts reader.Cuts

	closed atomic.Bool
	front  atomic.Uint64
	next   atomic.Uint64 // the end of the log as last seen
	held   atomic.Bool   // a CUT mark found while reading holds the Readers

	mu     sync.Mutex
	segs   []*dirSegment // open segments, by index
	cut    bool          // a CUT mark: the log ends before cutEnd
	cutEnd uint64
	again  bool  // the Source learnt something since the last Poll
	err    error // why the frontier is stuck, for Poll
	// The last judgement of stuck bytes: a follower looks at a torn or
	// half-written tail every few milliseconds, and judging reads the
	// rest of the segment.
	judgedIndex uint64
	judgedEnd   int64
	judgedAt    time.Time
	judged      error

	pollMu sync.Mutex
	poll   *time.Timer // Arm's timer
}

// dirSegment is one segment file the Source opened.
type dirSegment struct {
	*segment.Segment
	name string
	ino  uint64 // the file's inode when opened; 0 when unknown
}

// rejudgeAfter is how long a judgement of the same stuck bytes is reused.
const rejudgeAfter = time.Second

// noLimit: no CUT mark limits the log.
const noLimit = ^uint64(0)

// OpenSource opens the log directory at path for reading with package
// reader (reader.New, reader.Follow). It fails with an error wrapping
// ErrNotLog when path is not a log directory. Close it when done.
func OpenSource(fsys vfs.FS, path string) (*Source, error) {
	d, err := List(fsys, path)
	if err != nil {
		return nil, err
	}
	s := &Source{fs: fsys, path: path}
	s.front.Store(d.FirstRetained())
	s.cutEnd, s.cut = d.CutEnd()
	s.next.Store(s.front.Load())
	if n := len(d.Files); n > 0 {
		s.next.Store(max(s.front.Load(), d.Files[n-1].BaseSeq))
	}
	return s, nil
}

// Close releases the segments the Source opened (a Reader's lease keeps
// its own mapped until it ends). Readers of a closed Source fail with
// reader.ErrClosed.
func (s *Source) Close() error {
	s.closed.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropFrom(0)
}

// Poll says what the Source learnt since the last Poll, for a tool that
// polls a Reader: again is true when something changed that the Reader
// has not acted on yet (records became readable, the front moved, a cut
// ended), so that its Next is worth calling at once; err says why the
// Reader stopped at bytes that are not a record: an error wrapping
// ErrTornTail (bytes nothing vouches were durable: a crash's torn tail, or
// a write in progress on a live log), an error wrapping segment.ErrCorrupt
// (damage to bytes that were durable), or an error reading the directory.
// While a CUT mark holds the Readers, Poll looks at the directory again.
func (s *Source) Poll() (again bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held.Load() {
		s.relook(nil)
	}
	again, s.again = s.again, false
	return again, s.err
}

// File returns the file name of the segment with this index, as the
// Source opened it ("" if it holds no such segment): what a tool shows
// next to a record of that segment.
func (s *Source) File(index uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.find(index); i >= 0 {
		return s.segs[i].name
	}
	return ""
}

// Check implements reader.Source: from must be retained; it may be past
// the end (the Reader then waits for it).
func (s *Source) Check(from uint64) error {
	if s.closed.Load() {
		return reader.ErrClosed
	}
	if from == 0 {
		return fmt.Errorf("cannot read from seq 0: sequence numbers start at 1")
	}
	if front := s.front.Load(); from < front {
		return &TruncatedError{Seq: from, First: front, Next: s.next.Load(), Back: from >= s.next.Load()}
	}
	return nil
}

// Look implements reader.Source. A directory has no durable frontier: it
// is read at the Written level.
func (s *Source) Look() (closed bool, front, durable uint64) {
	return s.closed.Load(), s.front.Load(), 0
}

// NextSeq implements reader.Source: the end of the log as last seen.
func (s *Source) NextSeq() uint64 { return s.next.Load() }

// Failed implements reader.Source: a Durable Reader of a directory fails
// at once (read it at the Written level).
func (s *Source) Failed() error { return errDurableLevel }

// Cuts implements reader.Source.
func (s *Source) Cuts() *reader.Cuts { return &s.cuts }

// Epoch implements reader.Source.
func (s *Source) Epoch() uint64 { return 0 }

// WaitDurable implements reader.Source: a directory is read at the
// Written level.
func (s *Source) WaitDurable(context.Context, uint64, uint64) error { return errDurableLevel }

// pollEvery is how often a follower (reader.Follow) of a directory looks
// for new records: no writer in another process wakes it.
const pollEvery = 10 * time.Millisecond

// Arm implements reader.Source: no writer in another process tells the
// Source of new records, so the channel is closed after a short wait.
// While a CUT mark holds the Readers, it looks at the directory again
// first (as Poll does): a held Reader asks the Source for nothing else.
// reader.Follow over a Source ends with the Reader's errors only: bytes
// after the last record (a torn tail, damage) are waited on; a tool that
// must tell them polls (Poll).
func (s *Source) Arm() <-chan struct{} {
	if s.held.Load() {
		s.mu.Lock()
		s.relook(nil)
		s.mu.Unlock()
	}
	ch := make(chan struct{})
	s.pollMu.Lock()
	s.poll = time.AfterFunc(pollEvery, func() { close(ch) })
	s.pollMu.Unlock()
	return ch
}

// Disarm implements reader.Source.
func (s *Source) Disarm() {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.poll != nil {
		s.poll.Stop()
	}
}

// upTo is where the log ends for readers: before a CUT mark's end.
func (s *Source) upTo() uint64 {
	if s.cut {
		return s.cutEnd
	}
	return noLimit
}

// find returns the position in segs of the segment with this index, or
// -1. mu must be held.
func (s *Source) find(index uint64) int {
	i, ok := slices.BinarySearchFunc(s.segs, index, func(d *dirSegment, index uint64) int {
		return cmpUint(d.Header().Index, index)
	})
	if !ok {
		return -1
	}
	return i
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Recheck implements reader.Source: before a Reader reports a read error,
// the Source looks at the directory and the marks again (a CUT mark holds
// the Reader), and at the footers of the sealed segments it holds: one
// sealed again shorter was cut by a TruncateBack (it wrote its new footer
// and zeros over the records cut, which the Reader's mapping shows).
func (s *Source) Recheck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := s.cuts.Gen()
	if s.relook(nil); s.cuts.Gen() == gen {
		s.resealed()
	}
}

// resealed looks at the footers of the sealed segments the Source holds:
// one sealed again shorter than its footer said when opened was cut by a
// TruncateBack, which ended the log after its records (cutDone). It
// reports whether it found one. mu must be held.
func (s *Source) resealed() bool {
	for _, d := range s.segs {
		_, count := d.Reserved()
		f, sealed, err := segment.SealedFooter(d.Header(), d.Mapping())
		if d.Sealed() && err == nil && sealed && f.Count < count {
			s.cutDone(d.Header().BaseSeq + f.Count)
			return true
		}
	}
	return false
}

// Segment implements reader.Source: the segment holding seq, opened (or
// found among those opened) and observed; nil when seq is not written yet,
// or past a CUT mark's end.
func (s *Source) Segment(seq uint64) *segment.Segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq >= s.upTo() || s.closed.Load() {
		return nil
	}
	// The segments opened first: a Reader waiting at the end of the log
	// positions again on every look.
	for i := len(s.segs) - 1; i >= 0; i-- {
		d := s.segs[i]
		if base := d.Header().BaseSeq; base <= seq {
			if i == len(s.segs)-1 {
				s.observe(d)
			}
			if _, count := d.Reserved(); seq < base+count {
				return d.Segment
			}
			if i < len(s.segs)-1 {
				break // a gap: look at the directory
			}
			// The last one opened: its successor by name, if any.
			if n := s.byName(d); n != nil && seq >= n.Header().BaseSeq {
				if _, count := n.Reserved(); seq < n.Header().BaseSeq+count {
					return n.Segment
				}
			}
			if d.Sealed() || !d.stillThere(s.segDir()) {
				break
			}
			return nil // not written yet
		}
	}
	d, err := List(s.fs, s.path)
	if err != nil {
		s.err = err
		return nil
	}
	s.apply(d)
	if seq >= s.upTo() {
		return nil
	}
	i := len(d.Files) - 1
	for i >= 0 && (d.Files[i].BaseSeq > seq || d.Dropped(d.Files[i].Index)) {
		i--
	}
	if i < 0 {
		return nil
	}
	g := s.open(d.Files[i])
	if g == nil {
		return nil
	}
	if _, count := g.Reserved(); seq < g.Header().BaseSeq+count {
		return g.Segment
	}
	return nil
}

// Successor implements reader.Source: the segment after seg, when the
// Reader found no frame after the last it read in seg. It is where the
// Source looks again (see Source).
func (s *Source) Successor(seg *segment.Segment) *segment.Segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(seg.Header().Index)
	if i < 0 || s.segs[i].Segment != seg || s.closed.Load() {
		return nil // dropped by a cut: the Reader positions again
	}
	// The Reader is past the segments before seg: release them, so that
	// a reader of a long log keeps a few segments mapped, not all.
	for _, p := range s.segs[:i] {
		p.Release()
	}
	s.segs = slices.Delete(s.segs, 0, i)
	d := s.segs[0]
	end, count := d.Reserved()
	s.observe(d)
	if e, c := d.Reserved(); c < count {
		// Sealed shorter than the frames seen: a TruncateBack cut it.
		s.cutDone(d.Header().BaseSeq + c)
		return nil
	} else if e != end {
		s.again = true
		return nil // more to read first
	}
	if n := s.byName(d); n != nil {
		return n.Segment
	}
	if d.Sealed() || !d.stillThere(s.segDir()) {
		s.relook(d)
	}
	return nil
}

// observe brings d up to date with its file (segment.Observe) and judges
// bytes it is stuck at (at most once a second for the same offset). mu
// must be held.
func (s *Source) observe(d *dirSegment) {
	_, before := d.Reserved()
	stuck := d.Observe(s.upTo())
	end, count := d.Reserved()
	if count != before {
		s.err = nil
	}
	hdr := d.Header()
	s.next.Store(max(s.next.Load(), hdr.BaseSeq+count))
	if !stuck {
		if s.judgedIndex == hdr.Index {
			s.err = nil
		}
		return
	}
	if s.judgedIndex == hdr.Index && s.judgedEnd == end && time.Since(s.judgedAt) < rejudgeAfter {
		s.err = s.judged
		return
	}
	var vouched int64
	if dir, err := List(s.fs, s.path); err == nil {
		vouched = dir.Vouched(hdr.Index)
	}
	res := d.Judge(vouched)
	var err error
	switch {
	case res.Corrupt != nil:
		err = res.Corrupt
	case res.Garbage > 0:
		err = fmt.Errorf("%w: %s offset %d: %d bytes that are not a complete record (seq %d expected), and no later record vouches they were durable; the writer truncates them when it opens the log",
			ErrTornTail, d.name, end, res.Garbage, hdr.BaseSeq+count)
	}
	s.judgedIndex, s.judgedEnd, s.judgedAt, s.judged = hdr.Index, end, time.Now(), err
	s.err = err
}

// byName opens the segment that follows d if it is there: its name is
// known from d's index and end. nil when it is not (yet) there. mu must be
// held.
func (s *Source) byName(d *dirSegment) *dirSegment {
	hdr := d.Header()
	_, count := d.Reserved()
	if i := s.find(hdr.Index + 1); i >= 0 {
		if n := s.segs[i]; n.Header().BaseSeq == hdr.BaseSeq+count {
			s.observe(n)
			return n
		}
		return nil
	}
	if hdr.BaseSeq+count >= s.upTo() {
		return nil
	}
	name := segment.Name(hdr.Index+1, hdr.BaseSeq+count)
	return s.open(File{Name: name, Index: hdr.Index + 1, BaseSeq: hdr.BaseSeq + count})
}

// open opens the segment file f, observes it and keeps it (or returns the
// one kept under that index). It returns nil when the file is not there
// or has no header yet; other errors go to Poll. mu must be held.
func (s *Source) open(f File) *dirSegment {
	if i := s.find(f.Index); i >= 0 {
		if d := s.segs[i]; d.name == f.Name && d.stillThere(s.segDir()) {
			s.observe(d)
			return d
		}
		s.drop(i)
	}
	path := filepath.Join(s.segDir(), f.Name)
	// The inode before the open: if a new file takes the name in
	// between, stillThere sees a change and the Source looks again.
	var st unix.Stat_t
	ino := uint64(0)
	if unix.Stat(path, &st) == nil {
		ino = st.Ino
	}
	seg, err := segment.OpenReadOnly(s.fs, s.segDir(), f.Name)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrNoHeader):
		return nil
	case err != nil:
		s.err = err
		return nil
	}
	d := &dirSegment{Segment: seg, name: f.Name, ino: ino}
	i, _ := slices.BinarySearchFunc(s.segs, f.Index, func(d *dirSegment, index uint64) int {
		return cmpUint(d.Header().Index, index)
	})
	s.segs = slices.Insert(s.segs, i, d)
	s.observe(d)
	s.again = true
	return d
}

// drop releases the i-th segment opened. mu must be held.
func (s *Source) drop(i int) {
	s.segs[i].Release()
	s.segs = slices.Delete(s.segs, i, i+1)
}

// dropFrom releases every segment opened from the i-th on. mu must be
// held.
func (s *Source) dropFrom(i int) error {
	var err error
	for _, d := range s.segs[i:] {
		err = errors.Join(err, d.Release())
	}
	s.segs = s.segs[:i]
	return err
}

func (s *Source) segDir() string { return filepath.Join(s.path, SegmentsDir) }

// stillThere reports whether d's name still names the file d maps (one
// stat; the writer's TruncateBack removes segment files, and may give a
// new one the same name). It says true when it cannot tell.
func (d *dirSegment) stillThere(segDir string) bool {
	var st unix.Stat_t
	err := unix.Stat(filepath.Join(segDir, d.name), &st)
	if errors.Is(err, unix.ENOENT) {
		return false
	}
	return err != nil || d.ino == 0 || st.Ino == d.ino
}

// apply takes the front and the CUT mark of a fresh listing. A CUT mark
// that appeared since the Source was opened holds the Readers until it is
// gone; one that is gone ends the cut. mu must be held.
func (s *Source) apply(d *Dir) {
	s.front.Store(d.FirstRetained())
	end, cut := d.CutEnd()
	switch {
	case cut && (!s.cut || end != s.cutEnd):
		// A TruncateBack under way: hold until it is done.
		if !s.held.Load() {
			s.cuts.Begin()
			s.held.Store(true)
		}
		s.cut, s.cutEnd = true, end
		s.dropFrom(0)
	case !cut && s.cut:
		// The cut is complete (by the writer, or by its Open).
		s.cut = false
		s.cutDone(s.cutEnd)
	}
}

// relook takes a fresh look at the log when d (nil: none) does not lead
// on: it lists the directory and reads the FRONT and CUT marks (apply),
// and tells a segment that retention removed from one a TruncateBack
// removed or replaced. mu must be held.
func (s *Source) relook(d *dirSegment) { s.relookOnce(d, true) }

// relookOnce is relook; a listing is not a snapshot (the marks are read
// after the directory), so with again set, a file that vanished with
// nothing to explain it is looked at once more before it is an error.
func (s *Source) relookOnce(d *dirSegment, again bool) {
	dir, err := List(s.fs, s.path)
	if err != nil {
		s.err = err
		return
	}
	front := s.front.Load()
	s.apply(dir)
	if s.front.Load() != front {
		s.again = true
	}
	if d == nil || s.find(d.Header().Index) < 0 || s.held.Load() {
		return
	}
	hdr := d.Header()
	_, count := d.Reserved()
	if hdr.BaseSeq+count <= s.front.Load() {
		return // retention removed it (or is about to)
	}
	if d.stillThere(s.segDir()) {
		if !s.resealed() && d.Sealed() {
			s.checkNext(dir, d)
		}
		return
	}
	if base, ok := s.firstCreatedAfter(dir, d); ok {
		s.cutDone(base)
		return
	}
	if again {
		// A TruncateBack may have ended between the listing and its
		// look at CUT: the next listing shows its segment.
		s.relookOnce(d, false)
		return
	}
	s.err = fmt.Errorf("segment %s was removed while being read, with seq %d retained and no TruncateBack to explain it (was it removed by hand?)", d.name, hdr.BaseSeq+count)
}

// checkNext looks at the segment file after d, sealed and still there, in
// dir: one that does not follow d is corruption (nothing else explains
// it: retention and cuts were ruled out); one that does was created since
// the Source looked for it by name. mu must be held.
func (s *Source) checkNext(dir *Dir, d *dirSegment) {
	hdr := d.Header()
	_, count := d.Reserved()
	i := slices.IndexFunc(dir.Files, func(f File) bool { return f.Index > hdr.Index && !dir.Dropped(f.Index) })
	if i < 0 {
		return // its successor is not there yet
	}
	if f := dir.Files[i]; f.Index == hdr.Index+1 && f.BaseSeq == hdr.BaseSeq+count {
		s.again = true
	} else {
		s.err = segment.Corrupt(f.Name, f.Index, -1, "starts at seq %d, but %s before it ends before seq %d", f.BaseSeq, d.name, hdr.BaseSeq+count)
	}
}

// cutDone records a cut found done that ended the log before next: the
// Readers' Cuts get it (Begin, unless a CUT mark already held them, and
// End), and the segments opened are dropped (they may have been cut,
// resealed or replaced). mu must be held.
func (s *Source) cutDone(next uint64) {
	if !s.held.Load() {
		s.cuts.Begin()
	}
	s.held.Store(false)
	s.cuts.End(next, true)
	s.next.Store(next)
	s.dropFrom(0)
	s.err = nil
	s.again = true
}

// firstCreatedAfter returns the base sequence number of the lowest-indexed
// segment of dir created after d, among those indexed at most like d: the
// segment a TruncateBack that removed d's file made (any later ones follow
// it). ok is false when there is none.
func (s *Source) firstCreatedAfter(dir *Dir, d *dirSegment) (base uint64, ok bool) {
	for i := len(dir.Files) - 1; i >= 0; i-- {
		f := dir.Files[i]
		if f.Index > d.Header().Index {
			continue
		}
		h, err := readHeader(s.fs, dir.SegPath, f.Name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || h.Created <= d.Header().Created {
			break
		}
		base, ok = f.BaseSeq, true
	}
	return base, ok
}

// readHeader reads and checks the header of the segment file name.
func readHeader(fsys vfs.FS, segDir, name string) (segment.Header, error) {
	f, err := fsys.OpenReadOnly(filepath.Join(segDir, name))
	if err != nil {
		return segment.Header{}, err
	}
	defer f.Close()
	return segment.ReadHeader(f, name)
}
