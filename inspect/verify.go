package inspect

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/segment"
)

// Problem is one thing Verify found wrong.
type Problem struct {
	File   string // segment file (or DIR/DURABLE)
	Offset int64  // where in it; -1 when the problem is the whole file
	// Torn is true for what a crash leaves and the writer's recovery
	// repairs without losing anything that was durable: a torn tail, a
	// segment whose header never reached the disk, a segment after a
	// torn tail holding nothing durable.
	Torn bool
	// Warning is true for a problem that loses nothing and that the
	// writer handles (a DURABLE mark that fails its checks is ignored).
	Warning bool
	Err     error
}

// Corrupt reports whether the problem is damage to the log (Err wraps
// segment.ErrCorrupt, and it is neither torn nor a warning). A problem
// that is none of torn, warning or corrupt is an error reading the log
// (permissions, I/O).
func (p Problem) Corrupt() bool {
	return !p.Torn && !p.Warning && errors.Is(p.Err, segment.ErrCorrupt)
}

// Newer reports whether the problem is a segment file written by a newer
// aof2 (Err wraps segment.ErrUnsupportedVersion): not damage, a format
// version this build does not read.
func (p Problem) Newer() bool { return errors.Is(p.Err, segment.ErrUnsupportedVersion) }

// Kind is "torn", "warning", "CORRUPT", "NEWER" (written by a newer aof2)
// or "ERROR".
func (p Problem) Kind() string {
	switch {
	case p.Torn:
		return "torn"
	case p.Warning:
		return "warning"
	case p.Corrupt():
		return "CORRUPT"
	case p.Newer():
		return "NEWER"
	}
	return "ERROR"
}

func (p Problem) String() string {
	kind := p.Kind()
	msg := p.Err.Error()
	if ce := (*segment.CorruptError)(nil); errors.As(p.Err, &ce) && ce.File == p.File && ce.Offset == p.Offset {
		// Name the file and offset once, at the start of the line.
		msg = strings.Replace(msg, ce.Error(), segment.ErrCorrupt.Error()+": "+ce.Reason, 1)
	}
	if p.Offset < 0 {
		return fmt.Sprintf("%s: %s: %s", kind, p.File, msg)
	}
	return fmt.Sprintf("%s: %s offset %d: %s", kind, p.File, p.Offset, msg)
}

// VerifyResult is what Verify checked and found.
type VerifyResult struct {
	Segments int    // segment files checked
	Sealed   int    // of which sealed
	Records  uint64 // records whose checksum verified
	Bytes    int64  // record bytes checked (frames, headers included)
	Problems []Problem
}

// Corrupt reports whether a problem is corruption (not a torn tail).
func (v VerifyResult) Corrupt() bool {
	for _, p := range v.Problems {
		if p.Corrupt() {
			return true
		}
	}
	return false
}

// Progress is told, now and then, how many bytes of how many were checked.
type Progress func(done, total int64)

// Verify checks every byte of record data in the log with its checksum:
// every frame of every sealed segment (from the header to the footer's
// data end, plus the footer's record count, data checksum and sparse
// index), and every unsealed segment with the writer's own scan, which
// tells a torn tail from corruption. It also checks that segments follow
// each other (indexes and sequence numbers without gaps) and that a
// DURABLE file, if present, decodes. progress may be nil.
func Verify(d *Dir, progress Progress) VerifyResult {
	var v VerifyResult
	total := int64(0)
	for _, f := range d.Files {
		if st, err := os.Stat(filepath.Join(d.SegPath, f.Name)); err == nil {
			total += st.Size()
		}
	}
	var done int64
	report := func(n int64) {
		done += n
		if progress != nil {
			progress(min(done, total), total)
		}
	}
	if d.MarkErr != nil {
		// The writer ignores a DURABLE mark that fails its checks, but
		// not one it cannot read (not a regular file, permissions).
		p := Problem{File: DurableFile, Offset: -1, Err: d.MarkErr}
		if errors.Is(d.MarkErr, segment.ErrCorrupt) {
			p.Warning = true
			p.Err = fmt.Errorf("%w (the writer ignores a mark that fails its checks, and removes it when it opens the log)", d.MarkErr)
		}
		v.Problems = append(v.Problems, p)
	}
	if d.FrontErr != nil {
		v.Problems = append(v.Problems, Problem{File: FrontFile, Offset: -1,
			Err: fmt.Errorf("%w (aof.Open fails until it is resolved: restore it from a copy, or remove it to make the records before the lost front readable again)", d.FrontErr)})
	}
	if d.CutErr != nil {
		v.Problems = append(v.Problems, Problem{File: CutFile, Offset: -1,
			Err: fmt.Errorf("%w (aof.Open fails until it is resolved: a TruncateBack was running and where it ended is unknown; keep a copy of the directory, then remove it to open the log as the disk has it)", d.CutErr)})
	}
	doneSoFar := func() int64 { return done }
	var infos []SegmentInfo
	for _, f := range d.Files {
		if d.Dropped(f.Index) {
			// A TruncateBack under way, or interrupted by a crash,
			// removes it: the writer's Open deletes it unread.
			continue
		}
		if info, ok := v.verifyFile(d, f, doneSoFar, report); ok {
			infos = append(infos, info)
		}
	}
	if len(gaps(infos)) > 0 || len(continuity(infos)) > 0 {
		// A live writer renames, writes and removes segments while
		// they are looked at: only corruption if it holds after a
		// fresh look.
		if fresh, err := List(d.fs, d.Path); err == nil {
			infos = v.relook(fresh, infos, doneSoFar, report)
		}
	}
	v.Problems = append(v.Problems, gaps(infos)...)
	v.Problems = append(v.Problems, continuity(infos)...)
	v.Problems = append(v.Problems, checkMarks(d, infos)...)
	sort.SliceStable(v.Problems, func(i, j int) bool { return v.Problems[i].File < v.Problems[j].File })
	return v
}

// verifyFile verifies one segment file and adds what it found to v. ok is
// false when the file vanished after the listing: the writer removed it
// (retention, TruncateBack), which is no problem. So is a file with
// problems that is gone by the time it was checked: the writer dropped
// it meanwhile, and may have recycled it (renamed it into its pool and
// written a new life over the bytes being checked).
func (v *VerifyResult) verifyFile(d *Dir, f File, done func() int64, report func(int64)) (SegmentInfo, bool) {
	before := done()
	info, probs, n, good := verifySegment(d, f, report)
	if errors.Is(info.Err, fs.ErrNotExist) {
		return info, false
	}
	st, err := os.Stat(filepath.Join(d.SegPath, f.Name))
	if err == nil {
		report(before + st.Size() - done())
	} else if len(probs) > 0 && errors.Is(err, fs.ErrNotExist) {
		return info, false
	}
	v.Problems = append(v.Problems, probs...)
	v.Segments++
	if info.Sealed {
		v.Sealed++
	}
	v.Records += good
	v.Bytes += n
	return info, true
}

// relook takes a fresh look at a live log whose segments did not follow
// each other in the first pass, with fresh the directory listed again:
// segments the first listing missed (a listing races with the writer's
// renames) are verified now; segments removed since (retention,
// TruncateBack) are left out with their problems; a segment that looked
// short of where the next one starts is surveyed again, since the writer
// may have written it out after it was looked at (the next one was looked
// at before, so the fresh survey sees all that the writer wrote before
// it). While a TruncateBack is under way (DIR/CUT), the segments after
// the one it keeps are left out: the writer removes them.
func (v *VerifyResult) relook(fresh *Dir, infos []SegmentInfo, done func() int64, report func(int64)) []SegmentInfo {
	inFresh := map[string]bool{}
	for _, f := range fresh.Files {
		inFresh[f.Name] = true
	}
	seen := map[string]bool{}
	var kept []SegmentInfo
	for _, info := range infos {
		seen[info.Name] = true
		if inFresh[info.Name] {
			kept = append(kept, info)
			continue
		}
		v.dropFile(info.Name)
	}
	last := uint64(0)
	if len(infos) > 0 {
		last = infos[len(infos)-1].Index
	}
	for _, f := range fresh.Files {
		if !seen[f.Name] && f.Index <= last {
			if info, ok := v.verifyFile(fresh, f, done, report); ok {
				kept = append(kept, info)
			}
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Index < kept[j].Index })
	if fresh.HasCut {
		kept = slices.DeleteFunc(kept, func(s SegmentInfo) bool { return s.Index > fresh.Cut.Index && fresh.Cut.Index > 0 })
	}
	for i := 1; i < len(kept); i++ {
		prev, s := kept[i-1], kept[i]
		if prev.Err != nil || s.Err != nil || s.BaseSeq == prev.BaseSeq+prev.Records {
			continue
		}
		switch again := survey(fresh, prev.File); {
		case again.Err == nil:
			kept[i-1] = again
		case errors.Is(again.Err, fs.ErrNotExist):
			// Removed since the fresh listing (retention).
			v.dropFile(prev.Name)
			kept = slices.Delete(kept, i-1, i)
			i--
		}
	}
	return kept
}

// dropFile forgets a segment file the writer removed while it was
// verified: it is no longer part of the log.
func (v *VerifyResult) dropFile(name string) {
	v.Problems = slices.DeleteFunc(v.Problems, func(p Problem) bool { return p.File == name })
}

// gaps reports segments whose index does not follow the one before.
func gaps(infos []SegmentInfo) []Problem {
	var probs []Problem
	for i := 1; i < len(infos); i++ {
		if prev, f := infos[i-1], infos[i]; f.Index != prev.Index+1 {
			probs = append(probs, Problem{File: f.Name, Offset: -1,
				Err: segment.Corrupt(f.Name, f.Index, -1, "follows segment %d: the segments in between are missing", prev.Index)})
		}
	}
	return probs
}

// continuity checks that each segment starts where the one before ends.
// A segment after a torn tail that holds nothing durable is what a crash
// leaves (the writer removes it); one that holds durable records is
// corruption.
func continuity(infos []SegmentInfo) []Problem {
	var probs []Problem
	for i := 1; i < len(infos); i++ {
		prev, s := infos[i-1], infos[i]
		if prev.Err != nil || s.Err != nil || s.BaseSeq == prev.BaseSeq+prev.Records {
			continue
		}
		durable := false
		for _, later := range infos[i:] {
			durable = durable || later.Sealed || later.DurableEnd > segment.HeaderSize
		}
		var err error = segment.Corrupt(s.Name, s.Index, -1, "starts at seq %d, but %s ends before seq %d", s.BaseSeq, prev.Name, prev.BaseSeq+prev.Records)
		if !durable && !prev.Sealed {
			err = fmt.Errorf("starts at seq %d, but %s ends before seq %d; nothing in it or after it is proven durable: the writer removes it when it opens the log", s.BaseSeq, prev.Name, prev.BaseSeq+prev.Records)
		}
		probs = append(probs, Problem{File: s.Name, Offset: -1, Torn: !durable && !prev.Sealed, Err: err})
		break
	}
	return probs
}

// verifySegment checks one segment file and returns what it found, how
// many record bytes it checked and how many records verified.
func verifySegment(d *Dir, f File, progress func(int64)) (SegmentInfo, []Problem, int64, uint64) {
	seg, err := segment.OpenReadOnly(d.fs, d.SegPath, f.Name)
	if err != nil {
		info := SegmentInfo{File: f, Err: err}
		p := Problem{File: f.Name, Offset: 0, Err: err}
		if errors.Is(err, ErrNoHeader) {
			p.Torn = f.Index == d.Files[len(d.Files)-1].Index
			p.Err = fmt.Errorf("%w; the writer removes this file when it opens the log, if nothing after it is durable", err)
		}
		return info, []Problem{p}, 0, 0
	}
	defer seg.Release()
	hdr, data := seg.Header(), seg.Mapping()
	_ = unix.Madvise(data, unix.MADV_SEQUENTIAL)
	var probs []Problem
	ft, sealed, err := segment.SealedFooter(hdr, data)
	if err != nil {
		probs = append(probs, Problem{File: f.Name, Offset: hdr.Size - segment.TrailerSize,
			Err: fmt.Errorf("sealed segment's trailer or footer fails its checks (the writer then scans the segment and seals it again): %w", segment.At(err, f.Name, hdr.Index, 0))})
	}
	// The segment that keeps the last record of a TruncateBack under
	// way (or interrupted) is cut after it: what follows goes, whatever
	// it holds (a crash while it was sealed can leave it half
	// overwritten), as the writer's Open does.
	cutLast, cut := uint64(0), false
	if end, ok := d.CutEnd(); ok && d.Cut.Index == f.Index {
		cutLast, cut = end-1, true
	}
	if !sealed {
		info := survey(d, f)
		if info.Err != nil {
			return info, append(probs, Problem{File: f.Name, Offset: 0, Err: info.Err}), 0, 0
		}
		switch {
		case cut && info.Records > 0 && info.LastSeq() >= cutLast:
			// Bad bytes after the cut's last record: the cut removes
			// them.
		case info.Corrupt != nil:
			probs = append(probs, Problem{File: f.Name, Offset: info.End, Err: info.Corrupt})
		case info.Garbage > 0:
			probs = append(probs, Problem{File: f.Name, Offset: info.End, Torn: true,
				Err: fmt.Errorf("torn tail: %d bytes after the last good record (seq %d) that no later record vouches were durable; the writer zeroes them when it opens the log (on a live log: possibly a write in progress)",
					info.Garbage, info.LastSeq())})
		}
		return info, probs, info.End - segment.HeaderSize, info.Records
	}
	if !cut {
		cutLast = math.MaxUint64
	}
	info, good, sealedProbs := verifySealed(sealedSegment{f, hdr, ft, data}, cutLast, progress)
	return info, append(probs, sealedProbs...), info.End - segment.HeaderSize, good
}

// progressStep is how many bytes verifySealed checks between progress
// reports.
const progressStep = 8 << 20

// sealedSegment is a sealed segment as verifySealed checks it: its file,
// header and footer, and its bytes (the read-only mapping of the file).
type sealedSegment struct {
	file   File
	hdr    segment.Header
	footer segment.Footer
	data   []byte
}

// verifySealed walks every frame of a sealed segment and checks it against
// its checksum and the footer. After a bad frame it resumes at the next
// sparse index entry, so one bad record does not hide the rest. The
// SegmentInfo holds the footer's record count; good counts the records
// that verified. It stops after the record last (a cut keeps no more).
func verifySealed(m sealedSegment, last uint64, progress func(int64)) (info SegmentInfo, good uint64, _ []Problem) {
	ft := m.footer
	info = SegmentInfo{File: m.file, Header: m.hdr, Sealed: true, End: ft.DataEnd, DurableEnd: ft.DataEnd,
		Records: ft.Count, DurableRecords: ft.Count}
	var probs []Problem
	// bad reports a problem at off (or -1) with the error err, whose
	// offset is relative to off (a frame's error), or an error made by
	// corruptAt.
	bad := func(off int64, err error) {
		probs = append(probs, Problem{File: m.file.Name, Offset: off, Err: segment.At(err, m.file.Name, m.hdr.Index, off)})
	}
	corruptAt := func(off int64, format string, args ...any) error {
		return segment.Corrupt(m.file.Name, m.hdr.Index, off, format, args...)
	}
	off, seq := int64(segment.HeaderSize), m.hdr.BaseSeq
	next := 0 // next index entry to meet
	lastReport := off
	for off < ft.DataEnd && seq <= last {
		for next < len(ft.Index) && ft.Index[next].Offset < off {
			bad(ft.Index[next].Offset, corruptAt(ft.Index[next].Offset, "footer index entry for seq %d points inside a frame", ft.Index[next].Seq))
			next++
		}
		if next < len(ft.Index) && ft.Index[next].Offset == off {
			if ft.Index[next].Seq != seq {
				bad(off, corruptAt(off, "footer index says seq %d starts here, the frames say %d", ft.Index[next].Seq, seq))
			}
			next++
		}
		n, empty, err := frameIn(m.data, segment.DataLimit(m.hdr.Size), off, seq, m.hdr.Salt)
		if empty {
			err = corruptAt(off, "zeros where the footer says records are (seq %d expected)", seq)
		}
		if err == nil && n > ft.DataEnd {
			err = corruptAt(off, "frame of seq %d runs past the footer's data end %d", seq, ft.DataEnd)
		}
		if err != nil {
			bad(off, err)
			// Resume at the next index entry past the bad frame.
			for next < len(ft.Index) && ft.Index[next].Offset <= off {
				next++
			}
			if next == len(ft.Index) {
				break
			}
			off, seq = ft.Index[next].Offset, ft.Index[next].Seq
			continue
		}
		good++
		off, seq = n, seq+1
		if off-lastReport >= progressStep {
			progress(off - lastReport)
			lastReport = off
		}
	}
	progress(off - lastReport)
	if len(probs) == 0 && off >= ft.DataEnd {
		if seq-m.hdr.BaseSeq != ft.Count {
			bad(-1, corruptAt(-1, "footer says %d records, the frames hold %d", ft.Count, seq-m.hdr.BaseSeq))
		}
		if sum := xxhash.Sum64(m.data[segment.HeaderSize:ft.DataEnd]); sum != ft.DataSum {
			bad(-1, corruptAt(-1, "data checksum %016x, the footer says %016x", sum, ft.DataSum))
		}
	}
	return info, good, probs
}

// checkMarks judges the FRONT and CUT marks against the segments with the
// writer's own judgement (segment.CheckMarks), over the segments its
// recovery keeps: those the cut does not drop, up to the first one that is
// unreadable or does not follow the one before. A contradiction is a
// problem of the mark file: aof.Open refuses the log, before it changes
// anything.
func checkMarks(d *Dir, infos []SegmentInfo) []Problem {
	var front *segment.FrontMark
	if d.FrontErr == nil && d.HasFront {
		front = &segment.FrontMark{Seq: d.Front}
	}
	var cut *segment.CutMark
	if d.CutErr == nil && d.HasCut {
		cut = &d.Cut
	}
	if front == nil && cut == nil {
		return nil
	}
	if d.FrontErr != nil || d.CutErr != nil {
		return nil // reported already; Open fails on it first
	}
	var segs []segment.Extent
	for _, s := range infos {
		if cut != nil && cut.Drops(s.Index) {
			continue
		}
		if n := len(segs); s.Err != nil || n > 0 && s.BaseSeq != segs[n-1].BaseSeq+segs[n-1].Records {
			break
		}
		segs = append(segs, segment.Extent{Name: s.Name, Index: s.Index, BaseSeq: s.BaseSeq, Records: s.Records})
	}
	_, err := segment.CheckMarks(front, cut, segs)
	var me *segment.CorruptError
	if !errors.As(err, &me) {
		return nil
	}
	advice := "restore it from a copy, or remove it to make the records before it readable again"
	if me.File == CutFile {
		advice = "keep a copy of the directory, then remove it to open the log as the disk has it"
	}
	return []Problem{{File: me.File, Offset: -1,
		Err: fmt.Errorf("%w (aof.Open fails until it is resolved, and changes nothing before: %s)", me, advice)}}
}

// frameIn decodes and verifies the frame at off of a segment's bytes data,
// whose record data must end by limit, which must hold seq, and returns
// the offset after it; salt is the segment's (Header.Salt). empty is true when the frame header is all zeros
// (nothing written there). Errors do not name the file, and their offset
// is relative to the frame: callers place them (segment.At).
func frameIn(data []byte, limit, off int64, seq, salt uint64) (next int64, empty bool, err error) {
	if off+segment.FrameHeaderSize > limit {
		return off, true, nil
	}
	b := data[off : off+segment.FrameHeaderSize]
	if bytes.Equal(b, zeroFrameHeader[:]) {
		return off, true, nil
	}
	h := segment.DecodeFrameHeader(b)
	if !segment.Plausible(h, off, seq, limit) {
		return off, false, segment.Corrupt("", 0, 0, "no valid frame for seq %d (header says seq %d, length %d, hint %d)",
			seq, h.Seq, h.Len, h.Hint)
	}
	if _, err := segment.VerifyFrame(data[off:limit], h, salt); err != nil {
		return off, false, err
	}
	return off + segment.FrameSize(int(h.Len)), false, nil
}

var zeroFrameHeader [segment.FrameHeaderSize]byte
