package inspect

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// ErrBeforeFirst is wrapped when a Reader is asked for a sequence number
// before the first record the log retains.
var ErrBeforeFirst = errors.New("sequence number before the first retained record")

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
// an error wrapping segment.ErrCorrupt for damage to data that was
// durable, or another error when a file could not be read.
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
	for {
		if r.m == nil {
			found, err := r.openFor(r.seq)
			if err != nil || !found {
				r.err = err
				return false
			}
		}
		h, payload, next, st, ferr := r.m.frameAt(r.off, r.seq)
		if st == frameOK && h.Seq < r.from {
			r.off, r.seq = next, r.seq+1
			continue
		}
		if st == frameOK {
			r.buf = append(r.buf[:0], payload...)
			r.rec = Record{Seq: h.Seq, Timestamp: h.Timestamp, File: r.m.file.Name, Offset: r.off, Payload: r.buf}
			r.off, r.seq = next, r.seq+1
			return true
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
			st, ferr = frameBad, fmt.Errorf("%w: zeros where the footer says records are (its data ends at offset %d)", segment.ErrCorrupt, r.m.footer.DataEnd)
		}
		if st == frameBad {
			r.err = r.classify(ferr)
		}
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
		return false, fmt.Errorf("%w: seq %d, first retained %d", ErrBeforeFirst, seq, first)
	}
	i := len(d.Files) - 1
	for i >= 0 && d.Files[i].BaseSeq > seq {
		i--
	}
	if i < 0 {
		if len(d.Files) > 0 {
			return false, fmt.Errorf("%w: seq %d, first retained %d", ErrBeforeFirst, seq, d.FirstRetained())
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
		if r.m.sealed {
			return false, r.checkNext()
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

// checkNext reports the segment after a sealed one that does not start
// where it ends: corruption (a writer activates the next segment at the
// sequence number after the last one of the full segment).
func (r *Reader) checkNext() error {
	d, err := List(r.fs, r.path)
	if err != nil {
		return err
	}
	for _, f := range d.Files {
		if f.Index == r.m.file.Index+1 {
			return fmt.Errorf("%w: segment %s starts at seq %d, but %s ends before seq %d", segment.ErrCorrupt, f.Name, f.BaseSeq, r.m.file.Name, r.seq)
		}
	}
	return nil
}

// classify tells a torn tail from corruption at the bytes where the reader
// stopped, as the writer's recovery would: it scans the segment (at most
// once a second for the same offset; a frame completed meanwhile is read
// before classify is asked again).
func (r *Reader) classify(ferr error) error {
	if r.m.sealed {
		// Inside a sealed segment's data: corruption.
		return fmt.Errorf("%s offset %d: %w", r.m.file.Name, r.off, ferr)
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
// unsealed one's frames (verified) up to the first that is not complete.
// Unlike Survey it reads only written frames, never the zeros after them.
func (d *Dir) Span() (first, next uint64, err error) {
	first = d.FirstRetained()
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
