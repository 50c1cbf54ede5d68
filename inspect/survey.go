package inspect

import (
	"errors"

	"github.com/aof2/aof2/segment"
)

// SegmentInfo is what a survey found in one segment file.
type SegmentInfo struct {
	File
	Header segment.Header // valid when Err is nil
	Sealed bool           // trailer and footer verify
	// Records is the number of good records, and End the offset just
	// past the last one (HeaderSize for none). For a sealed segment they
	// come from the footer; for an unsealed one from a scan.
	Records uint64
	End     int64
	// DurableRecords is the number of records proven durable, and
	// DurableEnd the offset they end at: all of a sealed segment; for an
	// unsealed one, the records that a later record's durable hint (or
	// the DURABLE mark) vouches for. Records after them were written but
	// nothing on disk proves they were synced.
	DurableRecords uint64
	DurableEnd     int64
	// Garbage is the number of bytes after End that are not zeros: a torn
	// tail when Corrupt is nil (the writer zeroes it when it opens the
	// log).
	Garbage int64
	// Corrupt, if not nil, wraps segment.ErrCorrupt: damage to bytes a
	// later record vouches were durable.
	Corrupt error
	// Err is set when the file could not be opened as a segment: no
	// header (wraps ErrNoHeader), a bad header, a short file.
	Err error
}

// LastSeq returns the sequence number of the segment's last good record,
// or BaseSeq-1 when it holds none.
func (s SegmentInfo) LastSeq() uint64 { return s.BaseSeq + s.Records - 1 }

// Survey opens every segment file of d read-only: a sealed segment's
// footer is trusted, as the writer's recovery does; an unsealed one is
// scanned record by record (segment.Scan, the writer's own scan), with the
// DURABLE mark folded in.
func Survey(d *Dir) []SegmentInfo {
	infos := make([]SegmentInfo, 0, len(d.Files))
	for _, f := range d.Files {
		infos = append(infos, survey(d, f))
	}
	return infos
}

func survey(d *Dir, f File) SegmentInfo {
	info := SegmentInfo{File: f}
	s, err := segment.OpenReadOnly(d.fs, d.SegPath, f.Name)
	if err != nil {
		info.Err = err // wraps ErrNoHeader for a headerless file
		return info
	}
	defer s.Release()
	info.Header = s.Header()
	if s.Sealed() {
		info.Sealed = true
		info.End, info.Records = s.Reserved()
		info.DurableEnd, info.DurableRecords = info.End, info.Records
		return info
	}
	r := s.Scan(d.Vouched(f.Index))
	info.Records, info.End = r.Count, r.End
	info.DurableRecords, info.DurableEnd = r.DurableCount, min(r.MaxHint, r.End)
	info.Garbage, info.Corrupt = r.Garbage, r.Corrupt
	return info
}

// Span returns the sequence numbers the log holds: [first, next). first
// is FirstRetained; next follows the last good record of the last segment
// with a header, found from a sealed segment's footer or from an unsealed
// one's frames (segment.Observe: verified, up to the first that is not
// complete); while a CUT mark is there, next is where that TruncateBack
// ends the log (CutEnd). Unlike Survey it reads only written frames,
// never the zeros after them.
func (d *Dir) Span() (first, next uint64, err error) {
	first = d.FirstRetained()
	if end, ok := d.CutEnd(); ok {
		// A TruncateBack is under way or was interrupted: the log
		// ends at its cut (every record before it was durable when
		// the mark was written).
		return first, max(first, end), nil
	}
	for i := len(d.Files) - 1; i >= 0; i-- {
		s, err := segment.OpenReadOnly(d.fs, d.SegPath, d.Files[i].Name)
		if errors.Is(err, ErrNoHeader) {
			continue
		}
		if err != nil {
			return first, first, err
		}
		s.Observe(noLimit)
		_, count := s.Reserved()
		s.Release()
		return first, max(first, s.Header().BaseSeq+count), nil
	}
	return first, first, nil
}
