package aof

import (
	"errors"

	"github.com/aof2/aof2/segment"
)

// Recovery runs in three steps (see Log.recover):
//
//  1. gatherRecovery reads the directory: the marks, the segment file
//     names, and every segment file opened (header checked, footer
//     verified) and, unsealed, scanned. It changes nothing on disk and
//     records what it saw in a recoveryFacts.
//  2. planRecovery, a pure function of those facts and the recovery mode,
//     decides everything: which segments are trusted or kept as scanned,
//     what is cut, removed, moved to the repair directory, rewritten
//     (bytes not proven durable become backlog), whether a fresh segment
//     is allocated, and it rejects every contradiction.
//  3. applyRecovery does what the plan says, in a fixed order.
//
// Only step 3 changes the disk, and it runs only with a plan: a strict
// Open that fails because of what it found (corruption, a contradiction
// of the marks, a segment of a newer format, a file that is not regular)
// or because ctx is done before step 3 changes nothing on disk, LOCK
// aside, by construction. An error in step 3 itself (an I/O error, a full
// disk allocating the fresh segment) can leave part of the plan done; the
// next Open gathers and plans again from what is on disk.

// recoveryFacts is what recovery observed in a log directory, before it
// decided anything: plain values, no file handles.
type recoveryFacts struct {
	// mark is the DURABLE mark Close left, zero without one or when it
	// failed its checks (it only ever adds knowledge).
	mark segment.DurableMark
	// front and cut are the FRONT and CUT marks, nil without one.
	front *segment.FrontMark
	cut   *segment.CutMark
	// temps are prepared segment files never used.
	temps []string
	// pooled are the pool files (recycled segment files, never read).
	pooled []string
	// files are the segment files, by index.
	files []segFacts
}

// segFacts is what recovery observed of one segment file.
type segFacts struct {
	name  string
	index uint64
	// err is segment.Open's error; when it is set nothing below is.
	err error
	hdr segment.Header
	// sealed says the footer verified: the segment is trusted as its
	// footer describes it, unscanned.
	sealed bool
	// end and records are where the good records end and how many there
	// are: the footer's, or the scan's.
	end     int64
	records uint64
	// scan is what the scan of an unsealed segment found, with the
	// DURABLE mark's vouch for it (recoveryFacts.vouched).
	scan segment.ScanResult
}

// vouched is the offset the DURABLE mark vouches durable in the segment
// with this index, or 0.
func (f *recoveryFacts) vouched(index uint64) int64 {
	if f.mark.Index == index {
		return f.mark.Offset
	}
	return 0
}

// holdsDurable reports whether the segment sf held records that were
// durable: it is sealed, the DURABLE mark vouches for it, or one of its
// records vouches for a sync of its own segment.
func (f *recoveryFacts) holdsDurable(sf *segFacts) bool {
	return sf.sealed || f.vouched(sf.index) > segment.HeaderSize || sf.scan.MaxHint > segment.HeaderSize
}

// recoveryPlan is everything recovery does to the disk and the log's
// state, decided before any of it is done.
type recoveryPlan struct {
	// temps are prepared segment files to remove.
	temps []string
	// cut is an interrupted TruncateBack or Reset to complete, or nil;
	// dropped are the segment files it removes, whatever they hold.
	cut     *segment.CutMark
	dropped []string
	// removals are segment files that hold nothing durable: after a
	// header that never reached the disk, or after a torn tail.
	removals []string
	// truncations report the segments after a torn tail among removals.
	truncations []Truncation
	// repairs are segment files moved to the repair directory (repair
	// mode), for repairWhy.
	repairs   []string
	repairWhy error
	// keep are the segments the log keeps, in order.
	keep []keptSeg
	// front is the FRONT mark once the cut is complete (a Reset's
	// replaces it).
	front *segment.FrontMark
	// fresh says a new active segment is allocated, with this index and
	// base sequence number: the log has no segment left, or its last
	// one is sealed.
	fresh             bool
	freshIndex        uint64
	freshBase         uint64
	removeDurableMark bool
}

// keptSeg is one segment recovery keeps.
type keptSeg struct {
	// file is its position in recoveryFacts.files.
	file int
	// trusted: sealed, footer verified, not scanned.
	trusted bool
	// scan, for an unsealed segment, is what it keeps: the good records
	// up to End, of which those before MaxHint were durable; [MaxHint,
	// End) is rewritten by the first flush (backlog). Garbage bytes from
	// End on are cut: a torn tail, or with Corrupt set (repair mode) a
	// corrupt middle whose copy is kept.
	scan segment.ScanResult
	// cutHere: it keeps the CUT mark's last record, and completing the
	// cut seals it right after that record (its scan's Garbage and
	// Corrupt are cleared: the cut zeroes them).
	cutHere bool
}

// planRecovery decides what recovery does with what f describes, in
// strict mode or (repair) repair mode. It touches no file. Its errors
// name the damage or the contradiction (a *CorruptError, or one wrapping
// ErrUnsupportedVersion, ErrNotRegular or an I/O error of Open).
func planRecovery(f *recoveryFacts, repair bool) (recoveryPlan, error) {
	p := recoveryPlan{temps: f.temps, cut: f.cut, front: f.front, removeDurableMark: f.mark != (segment.DurableMark{})}
	pl := planner{f: f, p: &p, repair: repair}
	var files []int // positions of the files the cut does not drop
	var dropped []int
	for i := range f.files {
		if f.cut != nil && f.cut.Drops(f.files[i].index) {
			// Once its CUT mark was durable, a TruncateBack was
			// decided: these go whatever they hold.
			p.dropped = append(p.dropped, f.files[i].name)
			dropped = append(dropped, i)
			continue
		}
		files = append(files, i)
	}
	if err := pl.newerVersion(dropped); err != nil {
		return recoveryPlan{}, err
	}
	segs, err := pl.opened(files)
	if err != nil {
		return recoveryPlan{}, err
	}
	if segs, err = pl.contiguous(segs); err != nil {
		return recoveryPlan{}, err
	}
	if err := pl.checkMarks(segs); err != nil {
		return recoveryPlan{}, err
	}
	pl.keepAndAllocate(segs)
	return p, nil
}

// planner holds what planRecovery's steps share.
type planner struct {
	f      *recoveryFacts
	p      *recoveryPlan
	repair bool
	// scans are the scans of the unsealed segments kept so far, by
	// position in f.files, as the plan keeps them.
	scans map[int]segment.ScanResult
}

// corrupt fails a strict recovery with cause, or in repair mode plans to
// move the files at positions aside. A file that is not a regular file is
// not repaired, moved or followed; a segment of a newer format is not
// damage and is never moved either.
func (pl *planner) corrupt(cause error, positions []int) error {
	if !pl.repair || errors.Is(cause, ErrNotRegular) || errors.Is(cause, ErrUnsupportedVersion) {
		return cause
	}
	if err := pl.newerVersion(positions); err != nil {
		return err
	}
	for _, i := range positions {
		pl.p.repairs = append(pl.p.repairs, pl.f.files[i].name)
	}
	pl.p.repairWhy = cause
	return nil
}

// newerVersion returns the error of the first file at positions whose
// segment format is newer than this package's: recovery must not remove,
// cut or move it, repair mode included.
func (pl *planner) newerVersion(positions []int) error {
	for _, i := range positions {
		if err := pl.f.files[i].err; errors.Is(err, ErrUnsupportedVersion) {
			return err
		}
	}
	return nil
}

// opened returns the positions of files, in order, up to the first one
// that failed to open or follows a missing index. A file whose header
// never reached the disk ends the log: it and the files after it held
// nothing durable and are removed, unless the DURABLE mark or one of
// them says otherwise. Any other failure is corruption from that file on.
func (pl *planner) opened(files []int) ([]int, error) {
	f := pl.f
	for k, i := range files {
		sf := &f.files[i]
		oerr := sf.err
		if oerr == nil && k > 0 && sf.index != f.files[files[k-1]].index+1 {
			oerr = segment.Corrupt(sf.name, sf.index, -1, "follows segment %d: segments in between are missing", f.files[files[k-1]].index)
		}
		if oerr == nil {
			continue
		}
		rest := files[k:]
		if errors.Is(oerr, segment.ErrNoHeader) {
			// Created, renamed, then the machine stopped before the
			// header was synced: nothing in it was ever durable, and
			// nothing after it either (a segment is synced only after
			// the one before it was sealed), unless the DURABLE mark
			// or a later segment says otherwise.
			err := pl.laterDurable(sf, rest[1:])
			if f.mark.Index == sf.index && f.mark.Offset > segment.HeaderSize {
				err = segment.Corrupt(sf.name, sf.index, 0, "%v, but the durable mark says it was durable up to offset %d", oerr, f.mark.Offset)
			}
			if err == nil {
				for _, j := range rest {
					pl.p.removals = append(pl.p.removals, f.files[j].name)
				}
				return files[:k], nil
			}
			oerr = err
		}
		return files[:k], pl.corrupt(oerr, rest)
	}
	return files, nil
}

// laterDurable returns a *CorruptError if a file in later, after first
// whose header never reached the disk, holds durable records; or the
// first error opening one of them other than a header that never reached
// the disk either.
func (pl *planner) laterDurable(first *segFacts, later []int) error {
	for _, i := range later {
		if err := pl.f.files[i].err; err != nil && !errors.Is(err, segment.ErrNoHeader) {
			return err
		}
	}
	for _, i := range later {
		sf := &pl.f.files[i]
		if sf.err == nil && pl.f.holdsDurable(sf) {
			return segment.Corrupt(first.name, first.index, 0, "no header, but segment %d (%s) after it holds durable records", sf.index, sf.name)
		}
	}
	return nil
}

// contiguous walks the opened segments in order and returns those whose
// sequence numbers continue each other's. Scanned corruption fails a
// strict recovery. Where an unsealed segment's records end before the
// next segment starts, the log ends there: the later segments held
// nothing durable and are removed (a torn tail), unless one is sealed or
// vouches for its syncs (corruption).
func (pl *planner) contiguous(segs []int) ([]int, error) {
	f := pl.f
	pl.scans = make(map[int]segment.ScanResult)
	var nextSeq uint64
	for k := 0; k < len(segs); k++ {
		sf := &f.files[segs[k]]
		if k > 0 && sf.hdr.BaseSeq != nextSeq {
			cause := segment.Corrupt(sf.name, sf.index, -1, "starts at seq %d, but the previous segment ends before seq %d", sf.hdr.BaseSeq, nextSeq)
			return segs[:k], pl.corrupt(cause, segs[k:])
		}
		nextSeq = sf.hdr.BaseSeq + sf.records
		if sf.sealed {
			continue
		}
		r := sf.scan
		if c := f.cut; c != nil && c.Index != 0 && k == len(segs)-1 && sf.index == c.Index {
			// Bad bytes after the records the cut keeps go with the
			// cut; before them, CheckMarks finds the cut's last
			// record missing.
			r.Corrupt = nil
		}
		if r.Corrupt != nil && !pl.repair {
			return nil, r.Corrupt
		}
		pl.scans[segs[k]] = r
		if k+1 < len(segs) && f.files[segs[k+1]].hdr.BaseSeq != nextSeq {
			if err := pl.afterTornTail(sf, segs[k+1:]); err != nil {
				return nil, err
			}
			return segs[:k+1], nil
		}
	}
	return segs, nil
}

// afterTornTail plans the removal of the segments at later, after the
// unsealed tail whose records end before them, or returns the corruption
// if one of them held durable records.
func (pl *planner) afterTornTail(tail *segFacts, later []int) error {
	f := pl.f
	for _, i := range later {
		if sf := &f.files[i]; f.holdsDurable(sf) {
			cause := segment.Corrupt(tail.name, tail.index, tail.scan.End, "the records end before seq %d, but segment %d (%s) after it holds durable records",
				f.files[later[0]].hdr.BaseSeq, sf.index, sf.name)
			return pl.corrupt(cause, later)
		}
	}
	for _, i := range later {
		sf := &f.files[i]
		pl.p.truncations = append(pl.p.truncations, Truncation{File: sf.name, Segment: sf.index, Offset: segment.HeaderSize,
			Bytes: sf.end - segment.HeaderSize, Reason: "segment after a torn tail: nothing in it was durable"})
		pl.p.removals = append(pl.p.removals, sf.name)
	}
	return nil
}

// checkMarks checks that the FRONT and CUT marks agree with the segments
// kept (segment.CheckMarks).
func (pl *planner) checkMarks(segs []int) error {
	extents := make([]segment.Extent, 0, len(segs))
	for _, i := range segs {
		sf := &pl.f.files[i]
		records := sf.records
		if !sf.sealed {
			records = pl.scans[i].Count
		}
		extents = append(extents, segment.Extent{Name: sf.name, Index: sf.index, BaseSeq: sf.hdr.BaseSeq, Records: records})
	}
	_, err := segment.CheckMarks(pl.f.front, pl.f.cut, extents)
	return err
}

// keepAndAllocate plans the segments kept, the completion of the cut, and
// the fresh active segment when the log has no unsealed tail left.
func (pl *planner) keepAndAllocate(segs []int) {
	f, p := pl.f, pl.p
	nextSeq := uint64(0)
	for k, i := range segs {
		sf := &f.files[i]
		ks := keptSeg{file: i, trusted: sf.sealed}
		nextSeq = sf.hdr.BaseSeq + sf.records
		if !sf.sealed {
			ks.scan = pl.scans[i]
		}
		// CheckMarks made sure a cut that keeps a segment keeps the
		// last one, and holds its last record.
		if c := f.cut; c != nil && c.Index != 0 && k == len(segs)-1 {
			ks.cutHere = true
			ks.scan.Garbage, ks.scan.Corrupt = 0, nil
			nextSeq = c.LastSeq + 1
		}
		p.keep = append(p.keep, ks)
	}
	if c := f.cut; c != nil && c.Reset {
		p.front = &segment.FrontMark{Seq: c.LastSeq + 1}
	}
	if n := len(p.keep); n > 0 && !p.keep[n-1].trusted && !p.keep[n-1].cutHere {
		return
	}
	// With no segment left (TruncateBack removed them all, and a crash
	// came before its fresh segment was durable), the log continues at
	// its front.
	p.fresh = true
	p.freshIndex, p.freshBase = 1, max(frontSeq(p.front), 1)
	if n := len(segs); n > 0 {
		p.freshIndex, p.freshBase = f.files[segs[n-1]].index+1, nextSeq
	}
}

// firstSeq is the front the log opens with: the FRONT mark's, unless the
// log's first segment starts later.
func (p *recoveryPlan) firstSeq(f *recoveryFacts) uint64 {
	first := p.freshBase
	if len(p.keep) > 0 {
		first = f.files[p.keep[0].file].hdr.BaseSeq
	}
	return max(frontSeq(p.front), first)
}
