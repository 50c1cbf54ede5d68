package inspect

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// ErrTruncated is wrapped by the *TruncatedError a Reader reports when
// the writer removed records it was reading: retention (TruncateFront, or
// automatic retention) moved the front past it (Back false), or
// TruncateBack removed records it had returned (Back true). It is the
// library's aof.ErrTruncated.
var ErrTruncated = reader.ErrTruncated

// TruncatedError says which records the writer removed under a Reader and
// where the log continues: the library's own aof.TruncatedError (package
// reader's), so the tool and the library report removed records with one
// type. It is not corruption: a reader that wants to go on starts again
// at Continue (First after retention, Next after a TruncateBack). The tool
// does not know where the writer appends next: Next is 0 unless Back.
type TruncatedError = reader.TruncatedError

// Record is one record read by a Reader.
type Record struct {
	Seq       uint64 // sequence number
	Timestamp int64  // append time, Unix nanoseconds
	File      string // segment file holding it
	Offset    int64  // offset of its frame in that file
	Payload   []byte // the payload: a copy in the Reader's buffer, valid until the next call to Next
}

// Reader reads records in sequence order across the segment files of a
// log, verifying every checksum, and follows the log as a writer appends:
// when Next returns false with a nil Err, calling it again later returns the
// records appended since.
type Reader struct {
	fs   vfs.FS
	path string
	m    *mapped
	off  int64
	seq  uint64
	from uint64 // records before it are skipped
	rec  Record
	err  error
	buf  []byte
	// The last classify: a follower looks at a torn or half-written
	// tail every few milliseconds, and classifying scans the segment.
	classFile  uint64
	classOff   int64
	classAt    time.Time
	classified error
	// cutEnd, when cut is set, is where a TruncateBack that the last
	// listing found under way (DIR/CUT) ends the log: records from it
	// on are not returned while the mark is there.
	cut    bool
	cutEnd uint64
}

// reclassifyAfter is how long a classification of the same bytes is
// reused.
const reclassifyAfter = time.Second

// NewReader returns a Reader positioned at sequence number from, which
// may be past the last record (Next then waits for it to be written).
func NewReader(fsys vfs.FS, path string, from uint64) (*Reader, error) {
	if _, err := List(fsys, path); err != nil {
		return nil, err
	}
	return &Reader{fs: fsys, path: path, seq: from, from: from}, nil
}

// Seq returns the sequence number of the next record Next will return.
func (r *Reader) Seq() uint64 { return max(r.seq, r.from) }

// Record returns the record the last successful Next read.
func (r *Reader) Record() Record { return r.rec }

// Err says why the last Next returned false: nil when it reached the end
// of what is written (zeros follow), an error wrapping ErrTornTail when it
// stopped at bytes that are not a complete record and nothing vouches they
// were durable (a crash's torn tail, or a write in progress on a live log),
// a *TruncatedError (wrapping ErrTruncated) when the writer removed records
// under it (retention, TruncateBack), an error wrapping segment.ErrCorrupt
// for damage to data that was durable, or another error when a file could
// not be read.
//
// The Reader holds no lock, so a segment that does not line up (the file
// it reads vanished or was replaced, a sealed segment has no successor by
// name, bad bytes where records should be) may be the writer's work in
// progress: it then takes a fresh look at the directory and the FRONT and
// CUT marks, and reports corruption only if the evidence still holds.
func (r *Reader) Err() error { return r.err }

// Close releases the Reader's mapping.
func (r *Reader) Close() error {
	if r.m == nil {
		return nil
	}
	err := r.m.close()
	r.m = nil
	return err
}

// Next reads the next record. See Err for why it returns false.
func (r *Reader) Next() bool {
	r.err = nil
	rechecked := false
	for {
		if r.m == nil {
			found, err := r.openFor(r.seq)
			if err != nil || !found {
				r.err = err
				return false
			}
		}
		st, ferr := frameEmpty, error(nil)
		if !r.m.sealed || r.off < r.m.footer.DataEnd {
			var h segment.FrameHeader
			var payload []byte
			var next int64
			h, payload, next, st, ferr = r.m.frameAt(r.off, r.seq)
			if st == frameOK && h.Seq < r.from {
				r.off, r.seq = next, r.seq+1
				continue
			}
			if st == frameOK && r.cut && h.Seq >= r.cutEnd {
				// Removed by the cut under way, or by the writer's
				// Open if a crash interrupted it: not part of the
				// log. Hold while the mark is there.
				if hold, err := r.cutPending(); err != nil || hold {
					r.err = err
					return false
				}
				continue
			}
			if st == frameOK {
				r.buf = append(r.buf[:0], payload...)
				r.rec = Record{Seq: h.Seq, Timestamp: h.Timestamp, File: r.m.file.Name, Offset: r.off, Payload: r.buf}
				r.off, r.seq = next, r.seq+1
				return true
			}
		}
		moved, err := r.moveOn()
		if err != nil {
			r.err = err
			return false
		}
		if moved {
			continue
		}
		if st == frameEmpty && r.m.sealed && r.off < r.m.footer.DataEnd {
			// A sealed segment's data is complete up to its footer:
			// zeros before it are damage, not the end.
			st, ferr = frameBad, segment.Corrupt("", 0, 0, "zeros where the footer says records are (its data ends at offset %d)", r.m.footer.DataEnd)
		}
		if st != frameBad {
			return false
		}
		err = r.classify(ferr)
		if errors.Is(err, segment.ErrCorrupt) && !rechecked {
			// Only corruption if it still holds after a fresh look:
			// the writer may have cut or replaced the segment.
			rechecked = true
			moved, hold, err := r.resync()
			switch {
			case err != nil:
				r.err = err
				return false
			case hold:
				return false
			}
			if !moved {
				r.classFile = 0 // classify afresh
			}
			continue
		}
		r.err = err
		return false
	}
}

// openFor opens the segment that holds seq (the last one whose base is at
// most seq) and positions the reader at seq in it.
func (r *Reader) openFor(seq uint64) (bool, error) {
	d, err := List(r.fs, r.path)
	if err != nil {
		return false, err
	}
	if first := d.FirstRetained(); seq < first {
		return false, &TruncatedError{Seq: seq, First: first}
	}
	r.cutEnd, r.cut = d.CutEnd()
	if r.cut && seq >= r.cutEnd {
		return false, nil // past the cut under way: wait
	}
	i := len(d.Files) - 1
	for i >= 0 && (d.Files[i].BaseSeq > seq || d.Dropped(d.Files[i].Index)) {
		i--
	}
	if i < 0 {
		if len(d.Files) > 0 {
			return false, &TruncatedError{Seq: seq, First: d.FirstRetained()}
		}
		return false, nil // an empty log: wait
	}
	m, err := openMapped(r.fs, d.SegPath, d.Files[i])
	if err != nil {
		return false, err
	}
	// The walk may stop short of seq (seq is not written yet, or bad
	// bytes come first): the reader then starts where it stopped and
	// Next skips the records before r.from as they arrive.
	off, at, _ := m.seek(seq)
	r.m, r.off, r.seq = m, off, at
	return true, nil
}

// moveOn switches to the next segment when the current one holds nothing
// more: it is sealed and read to its data end, or the next segment starts
// at the sequence number the reader wants. It reports whether it switched.
// When the next segment is not there by name and the current one is
// sealed, or its file vanished or was replaced, it takes a fresh look
// (resync).
func (r *Reader) moveOn() (bool, error) {
	if r.m.checkSealed() && r.off < r.m.footer.DataEnd {
		return false, nil // more data to read or bad bytes: the caller decides
	}
	// The next segment, if it continues here, has a name known in
	// advance: open it directly rather than list the directory (this runs
	// on every poll of a follower).
	segDir := filepath.Join(r.path, SegmentsDir)
	want := File{Name: segment.Name(r.m.file.Index+1, r.seq), Index: r.m.file.Index + 1, BaseSeq: r.seq}
	m, err := openMapped(r.fs, segDir, want)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if r.m.sealed || !r.m.stillThere(segDir) {
			moved, _, err := r.resync()
			return moved, err
		}
		return false, nil
	case errors.Is(err, ErrNoHeader):
		return false, nil
	case err != nil:
		return false, err
	}
	r.m.close()
	r.m, r.off = m, segment.HeaderSize
	return true, nil
}

// resync takes a fresh look at the log when the segment the reader is in
// does not lead on: it lists the directory again, reads the FRONT and CUT
// marks, and tells the writer's work from corruption. moved is true when
// it repositioned the reader (it is to read again); hold is true while a
// TruncateBack is under way (the CUT mark is there: look again later).
// It returns a *TruncatedError when retention or TruncateBack removed what
// the reader was reading, and an error wrapping segment.ErrCorrupt only
// for a contradiction between two segments that are both still there.
func (r *Reader) resync() (moved, hold bool, err error) {
	return r.resyncOnce(true)
}

// resyncOnce is resync; a listing is not a snapshot (the marks are read
// after the directory), so with again set, a file that vanished with
// nothing to explain it is looked at once more before it is an error.
func (r *Reader) resyncOnce(again bool) (moved, hold bool, err error) {
	d, err := List(r.fs, r.path)
	if err != nil {
		return false, false, err
	}
	first := d.FirstRetained()
	if r.Seq() < first {
		return false, false, &TruncatedError{Seq: r.Seq(), First: first}
	}
	if r.cutEnd, r.cut = d.CutEnd(); d.HasCut {
		return false, true, nil
	}
	cur := r.m.file
	i := slices.IndexFunc(d.Files, func(f File) bool { return f.Name == cur.Name })
	if i < 0 || !r.m.sameAs(r.fs, d.SegPath) {
		// The file is gone, or a new file took its name: not
		// retention (the reader's seq is retained), so a TruncateBack
		// removed it. The segment TruncateBack made is the first one
		// created after this one: the log continues at its base.
		next, ok := r.m.firstCreatedAfter(r.fs, d)
		if !ok && again {
			// A TruncateBack may have ended between this listing
			// and its look at CUT: the next listing shows its
			// segment.
			return r.resyncOnce(false)
		}
		if !ok {
			return false, false, fmt.Errorf("segment %s was removed while being read, with seq %d retained and no TruncateBack to explain it (was it removed by hand?)", cur.Name, r.Seq())
		}
		return r.cutTo(next, first)
	}
	if !r.m.checkSealed() {
		return false, false, nil // still the writer's segment: nothing removed
	}
	if end := r.m.hdr.BaseSeq + r.m.footer.Count; end < r.seq {
		return r.cutTo(end, first) // TruncateBack cut this segment
	}
	if r.off < r.m.footer.DataEnd {
		return false, false, nil
	}
	if i+1 == len(d.Files) {
		return false, false, nil // its successor is not there yet
	}
	nf := d.Files[i+1]
	if nf.Index == cur.Index+1 && nf.BaseSeq == r.seq {
		return true, false, nil // created since moveOn looked: open it by name
	}
	return false, false, segment.Corrupt(nf.Name, nf.Index, -1, "starts at seq %d, but %s ends before seq %d", nf.BaseSeq, cur.Name, r.seq)
}

// cutPending looks again at a log where a TruncateBack was under way when
// the reader came to a record past its cut: hold is true while the CUT
// mark is there (on a dead log a crash left mid-cut, until the writer
// opens it and completes the cut). Once it is gone the cut is complete,
// and the records the reader's mapping still shows from the cut on are
// the removed ones: it starts again where the cut ended the log (with a
// *TruncatedError if it had returned records from there on).
func (r *Reader) cutPending() (hold bool, err error) {
	end := r.cutEnd
	d, err := List(r.fs, r.path)
	if err != nil {
		return false, err
	}
	if r.cutEnd, r.cut = d.CutEnd(); d.HasCut {
		return true, nil
	}
	_, _, err = r.cutTo(end, d.FirstRetained())
	return false, err
}

// cutTo repositions the reader after a TruncateBack that ended the log
// before seq next: at next, with a *TruncatedError if the reader had
// returned records from next on, silently otherwise.
func (r *Reader) cutTo(next, first uint64) (moved, hold bool, err error) {
	if next < r.seq && r.seq > r.from {
		return false, false, &TruncatedError{Seq: r.seq, First: first, Next: next, Back: true}
	}
	r.m.close()
	r.m = nil
	return true, false, nil
}

// classify tells a torn tail from corruption at the bytes where the reader
// stopped, as the writer's recovery would: it scans the segment (at most
// once a second for the same offset; a frame completed meanwhile is read
// before classify is asked again).
func (r *Reader) classify(ferr error) error {
	if r.m.sealed {
		// Inside a sealed segment's data: corruption.
		return segment.At(ferr, r.m.file.Name, r.m.file.Index, r.off)
	}
	if r.classFile == r.m.file.Index && r.classOff == r.off && time.Since(r.classAt) < reclassifyAfter {
		return r.classified
	}
	err := r.scanTail()
	r.classFile, r.classOff, r.classAt, r.classified = r.m.file.Index, r.off, time.Now(), err
	return err
}

// scanTail classifies the bytes at r.off in the unsealed segment r.m with
// the writer's recovery scan.
func (r *Reader) scanTail() error {
	d, err := List(r.fs, r.path)
	if err != nil {
		return err
	}
	s, err := segment.OpenReadOnly(r.fs, d.SegPath, r.m.file.Name)
	if err != nil {
		return err
	}
	defer s.Release()
	res := s.Scan(d.Vouched(r.m.file.Index))
	switch {
	case res.Corrupt != nil:
		return res.Corrupt
	case res.End > r.off:
		return nil // the writer completed the frame meanwhile
	}
	return fmt.Errorf("%w: %s offset %d: %d bytes that are not a complete record (seq %d expected), and no later record vouches they were durable; the writer truncates them when it opens the log",
		ErrTornTail, r.m.file.Name, r.off, res.Garbage, r.seq)
}

// Span returns the sequence numbers the log holds: [first, next). first
// is FirstRetained; next follows the last good record of the last segment
// with a header, found from a sealed segment's footer or by walking an
// unsealed one's frames (verified) up to the first that is not complete;
// while a CUT mark is there, next is where that TruncateBack ends the log
// (CutEnd).
// Unlike Survey it reads only written frames, never the zeros after them.
func (d *Dir) Span() (first, next uint64, err error) {
	first = d.FirstRetained()
	if end, ok := d.CutEnd(); ok {
		// A TruncateBack is under way or was interrupted: the log
		// ends at its cut (every record before it was durable when
		// the mark was written).
		return first, max(first, end), nil
	}
	for i := len(d.Files) - 1; i >= 0; i-- {
		m, err := openMapped(d.fs, d.SegPath, d.Files[i])
		if errors.Is(err, ErrNoHeader) {
			continue
		}
		if err != nil {
			return first, first, err
		}
		defer m.close()
		if m.sealed {
			return first, max(first, m.hdr.BaseSeq+m.footer.Count), nil
		}
		off, seq := int64(segment.HeaderSize), m.hdr.BaseSeq
		for {
			_, _, n, st, _ := m.frameAt(off, seq)
			if st != frameOK {
				return first, max(first, seq), nil
			}
			off, seq = n, seq+1
		}
	}
	return first, first, nil
}
