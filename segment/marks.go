package segment

import "fmt"

// Extent is what the mark checks need to know of one segment file: its
// name, index, base sequence number and how many good records it holds (a
// sealed segment's footer count, an unsealed one's scan count).
type Extent struct {
	Name    string
	Index   uint64
	BaseSeq uint64
	Records uint64
}

// Drops reports whether completing the cut m removes the segment with this
// index: every segment after the one that keeps m.LastSeq, or every
// segment when none keeps a record (m.Index 0) or m is a Reset's.
func (m CutMark) Drops(index uint64) bool { return m.Reset || m.Index == 0 || index > m.Index }

// CheckMarks is the one judgement of whether a log directory's FRONT and
// CUT marks (nil when there is none) agree with its segments. Recovery
// calls it before it changes anything on disk, and read-only tools call it
// to say whether Open will accept the log.
//
// segs are the segments the log keeps, in order and contiguous: the
// segments that the cut drops (CutMark.Drops) are left out, so with a cut
// the last one is the segment that keeps cut.LastSeq, with its records as
// found, before the cut. It returns the sequence number the log continues
// at once the cut is complete, or a *CorruptError that names
// the mark file (CutFile or FrontFile; Segment 0, Offset -1) and the
// contradiction:
//
//   - a CUT must keep a record its segment holds: the segment named by
//     cut.Index is the last one kept and holds cut.LastSeq (TruncateBack
//     made every record durable before it wrote the mark, so the records
//     are there); a CUT that keeps no segment comes after a FRONT mark at
//     cut.LastSeq+1, written first.
//   - a Reset's CUT (cut.Reset) keeps no segment and says where the log
//     continues, cut.LastSeq+1, whatever FRONT says: Reset writes CUT
//     first, then FRONT, then removes the segments.
//   - a FRONT can be no later than the end of the log: TruncateFront makes
//     the records before it durable before it writes the mark, and
//     TruncateBack never cuts below the front.
func CheckMarks(front *FrontMark, cut *CutMark, segs []Extent) (next uint64, err error) {
	next = 1
	if front != nil {
		next = max(next, front.Seq)
	}
	if n := len(segs); n > 0 {
		next = segs[n-1].BaseSeq + segs[n-1].Records
	}
	if cut != nil && cut.Reset {
		// A Reset drops every segment and replaces the front: FRONT
		// may still hold the front from before it, below or above.
		if cut.Index != 0 {
			return 0, Corrupt(CutFile, 0, -1, "a reset keeps no segment, but the mark names segment %d", cut.Index)
		}
		return cut.LastSeq + 1, nil
	}
	if cut != nil {
		if cut.Index == 0 {
			if len(segs) > 0 {
				return 0, Corrupt(CutFile, 0, -1, "the cut keeps no segment, but segment %d (%s) is kept", segs[0].Index, segs[0].Name)
			}
			if front == nil || front.Seq != cut.LastSeq+1 {
				have := "there is no FRONT mark"
				if front != nil {
					have = fmt.Sprintf("%s says seq %d", FrontFile, front.Seq)
				}
				return 0, Corrupt(CutFile, 0, -1, "the cut ends the log after seq %d with no segment kept, so the front must be seq %d, but %s",
					cut.LastSeq, cut.LastSeq+1, have)
			}
			next = cut.LastSeq + 1
		} else {
			var keep *Extent
			if n := len(segs); n > 0 && segs[n-1].Index == cut.Index {
				keep = &segs[n-1]
			}
			switch {
			case keep == nil:
				return 0, Corrupt(CutFile, 0, -1, "the cut keeps seq %d in segment %d, but the log has no such segment (missing, or after a torn or corrupt one)",
					cut.LastSeq, cut.Index)
			case cut.LastSeq < keep.BaseSeq || cut.LastSeq >= keep.BaseSeq+keep.Records:
				return 0, Corrupt(CutFile, 0, -1, "the cut keeps seq %d in segment %d (%s), which holds seqs [%d, %d)",
					cut.LastSeq, cut.Index, keep.Name, keep.BaseSeq, keep.BaseSeq+keep.Records)
			}
			next = cut.LastSeq + 1
		}
	}
	if front != nil && front.Seq > next {
		return 0, Corrupt(FrontFile, 0, -1, "the front is seq %d, but the log ends before seq %d",
			front.Seq, next)
	}
	return next, nil
}
