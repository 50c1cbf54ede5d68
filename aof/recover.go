package aof

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aof2/aof2/segment"
)

// RecoveryReport says what Open found and did.
type RecoveryReport struct {
	// Segments is the number of segment files after recovery.
	Segments int
	// Trusted counts sealed segments whose footer verified: they were
	// not scanned, so recovery time does not grow with sealed data.
	Trusted int
	// Scanned counts unsealed segments checked record by record.
	Scanned int
	// FirstSeq and NextSeq bound the records in the log: [FirstSeq,
	// NextSeq).
	FirstSeq, NextSeq uint64
	// Recovered lists the segments kept, in order: trusted or scanned.
	Recovered []RecoveredSegment
	// Truncations lists every cut: torn tails and, in repair mode,
	// corruption.
	Truncations []Truncation
	// TruncatedBytes adds up the bytes of every truncation.
	TruncatedBytes int64
	// Removed lists files removed: prepared segments never used, a
	// segment whose header never reached the disk, segments past a torn
	// tail that held nothing durable.
	Removed []string
	// BacklogBytes is what recovery found but cannot prove durable (the
	// page cache may hold it, the disk may not). It counts as backlog:
	// the first flush writes it again and syncs it.
	BacklogBytes int64
	// Duration is how long recovery took.
	Duration time.Duration

	durableSeq uint64
	durablePos int64
}

// RecoveredSegment is one segment recovery kept.
type RecoveredSegment struct {
	File    string // segment file
	Segment uint64 // its index
	Trusted bool   // sealed, footer verified, not scanned
	Records uint64 // records in it
	Bytes   int64  // end of its record data
}

// Truncation is one cut made by recovery.
type Truncation struct {
	File    string // segment file
	Segment uint64 // its index
	Offset  int64  // where the cut starts: the end of the last good record
	Bytes   int64  // bytes cut (zeroed)
	// Corrupt is true for a cut made by repair mode through bad bytes
	// that later records vouched durable; false for a torn tail.
	Corrupt bool
	// Reason says what was found, for people.
	Reason string
	// KeptAt is where repair mode kept a copy of what it cut.
	KeptAt string
}

func (r *RecoveryReport) truncated(t Truncation) {
	r.Truncations = append(r.Truncations, t)
	r.TruncatedBytes += t.Bytes
}

// recover rebuilds the log's state from its directory; a done ctx stops
// it before it scans a segment or changes the disk. See OpenContext.
func (l *Log) recover(ctx context.Context) (err error) {
	start := time.Now()
	rep := &l.report
	// Recovery decides everything first and changes the disk only once
	// every decision is made and every contradiction rejected: a strict
	// Open that fails changes nothing (LOCK aside). That includes the
	// marks: a FRONT or CUT that fails its checks, or that contradicts
	// the segments, fails Open before a segment is removed, a tail cut,
	// a short file allocated or the DURABLE mark removed.
	mark, err := l.readDurableMark()
	if err != nil {
		return err
	}
	front, err := l.readFront()
	if err != nil {
		return err
	}
	cut, err := l.readCut()
	if err != nil {
		return err
	}
	names, err := l.fs.ReadDir(l.segDir)
	if err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	type file struct {
		name  string
		index uint64
	}
	var (
		files   []file
		temps   []string // prepared segment files never used
		dropped []string // segments an interrupted TruncateBack removes
	)
	for _, name := range names {
		if strings.HasSuffix(name, segment.TempSuffix) {
			temps = append(temps, name)
			continue
		}
		index, _, ok := segment.ParseName(name)
		switch {
		case !ok:
		case cut != nil && cut.Drops(index):
			// Once its CUT mark was durable, a TruncateBack was
			// decided: these go whatever they hold.
			dropped = append(dropped, name)
		default:
			files = append(files, file{name, index})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].index < files[j].index })

	// vouched is the offset the DURABLE mark vouches for in s, or 0.
	vouched := func(s *seg) int64 {
		if mark.Index == s.Header().Index {
			return mark.Offset
		}
		return 0
	}
	var (
		segs      []*seg
		removals  []string // files holding nothing durable
		repairs   []string // files moved aside by repair mode
		repairWhy error
	)
	defer func() {
		if err != nil {
			for _, s := range segs {
				s.Release()
			}
			l.segs = nil
		}
	}()
	// corrupt fails a strict recovery, or in repair mode moves the
	// files from names on aside.
	corrupt := func(cause error, names []string) error {
		// Not a regular file (a FIFO, a symbolic link): nothing to
		// repair, and not to be moved or followed. A segment of a newer
		// format is not damage: never moved either.
		if l.cfg.Recovery != RecoverRepair || errors.Is(cause, ErrNotRegular) || errors.Is(cause, ErrUnsupportedVersion) {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, cause)
		}
		if err := l.newerVersion(names); err != nil {
			return err
		}
		repairs, repairWhy = append(repairs, names...), cause
		return nil
	}
	if err := l.newerVersion(dropped); err != nil {
		return err
	}

	// Open every segment: headers are checked, sealed footers trusted.
	for i, f := range files {
		s, oerr := segment.Open(l.fs, l.segDir, f.name)
		if oerr == nil && i > 0 && f.index != files[i-1].index+1 {
			s.Release()
			oerr = segment.Corrupt(f.name, f.index, -1, "follows segment %d: segments in between are missing", files[i-1].index)
		}
		if oerr == nil {
			segs = append(segs, &seg{Segment: s})
			continue
		}
		rest := make([]string, 0, len(files)-i)
		for _, f := range files[i:] {
			rest = append(rest, f.name)
		}
		if errors.Is(oerr, segment.ErrNoHeader) {
			// Created, renamed, then the machine stopped before the
			// header was synced: nothing in it was ever durable, and
			// nothing after it either (a segment is synced only after
			// the one before it was sealed), unless the DURABLE mark
			// or a later segment says otherwise.
			err := l.laterDurable(f.name, rest[1:], vouched)
			if mark.Index == f.index && mark.Offset > segment.HeaderSize {
				err = segment.Corrupt(f.name, f.index, 0, "%v, but the durable mark says it was durable up to offset %d", oerr, mark.Offset)
			}
			if err != nil {
				if err := corrupt(err, rest); err != nil {
					return err
				}
			} else {
				removals = append(removals, rest...)
			}
			break
		}
		if err := corrupt(oerr, rest); err != nil {
			return err
		}
		break
	}

	// With a cut, the last segment left is the one that keeps its last
	// record (CheckMarks below checks it): it was durable up to its end
	// when the mark was written, and is cut there whatever follows.
	keeping := func(i int) bool {
		return cut != nil && cut.Index != 0 && i == len(segs)-1 && segs[i].Header().Index == cut.Index
	}
	// Walk them in order: check continuity, scan the unsealed ones.
	var scanned []scannedSeg
	var nextSeq uint64
	for i := 0; i < len(segs); i++ {
		s := segs[i]
		h := s.Header()
		if i > 0 && h.BaseSeq != nextSeq {
			cause := segment.Corrupt(filepath.Base(s.Path()), h.Index, -1, "starts at seq %d, but the previous segment ends before seq %d", h.BaseSeq, nextSeq)
			if err := corrupt(cause, segNames(segs[i:])); err != nil {
				return err
			}
			releaseAll(segs[i:])
			segs = segs[:i]
			break
		}
		if s.Sealed() {
			_, count := s.Reserved()
			nextSeq = h.BaseSeq + count
			continue
		}
		// A done ctx stops recovery before the next scan: nothing on
		// disk is changed yet.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		r := s.Scan(vouched(s))
		if keeping(i) {
			// Bad bytes after the records the cut keeps go with the
			// cut; before them, CheckMarks finds the cut's last
			// record missing.
			r.Corrupt = nil
		}
		if r.Corrupt != nil && l.cfg.Recovery != RecoverRepair {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, r.Corrupt)
		}
		scanned = append(scanned, scannedSeg{s, r})
		nextSeq = h.BaseSeq + r.Count
		if i+1 < len(segs) && segs[i+1].Header().BaseSeq != nextSeq {
			// The log ends here: the later segments hold nothing
			// durable, unless one is sealed or vouches for its syncs.
			later := segs[i+1:]
			if ends, cause := laterSegsDurable(s, r.End, later, vouched); cause != nil {
				if err := corrupt(cause, segNames(later)); err != nil {
					return err
				}
			} else {
				for j, ls := range later {
					l.report.truncated(Truncation{File: filepath.Base(ls.Path()), Segment: ls.Header().Index, Offset: segment.HeaderSize,
						Bytes: ends[j] - segment.HeaderSize, Reason: "segment after a torn tail: nothing in it was durable"})
					removals = append(removals, filepath.Base(ls.Path()))
				}
			}
			releaseAll(later)
			segs = segs[:i+1]
		}
	}

	// The marks must agree with what the segments hold.
	extents := make([]segment.Extent, 0, len(segs))
	next := 0
	for _, s := range segs {
		h := s.Header()
		e := segment.Extent{Name: filepath.Base(s.Path()), Index: h.Index, BaseSeq: h.BaseSeq}
		if s.Sealed() {
			_, e.Records = s.Reserved()
		} else {
			e.Records = scanned[next].r.Count
			next++
		}
		extents = append(extents, e)
	}
	if _, err := segment.CheckMarks(front, cut, extents); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}

	// Every decision is made: change the disk, unless ctx is done.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	for _, name := range temps {
		if err := l.fs.Remove(filepath.Join(l.segDir, name)); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		rep.Removed = append(rep.Removed, name)
	}
	if cut != nil {
		if err := l.finishCut(*cut, dropped, segs, scanned); err != nil {
			return fmt.Errorf("aof2: recover %s: complete an interrupted TruncateBack or Reset: %w", l.dir, err)
		}
		if cut.Reset {
			front = &segment.FrontMark{Seq: cut.LastSeq + 1}
		}
	}
	for _, name := range removals {
		if err := l.fs.Remove(filepath.Join(l.segDir, name)); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		rep.Removed = append(rep.Removed, name)
	}
	if len(removals) > 0 {
		if err := l.fs.SyncDir(l.segDir); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
	}
	if len(repairs) > 0 {
		if err := l.moveToRepair(repairs, repairWhy); err != nil {
			return err
		}
	}
	var pos int64
	next = 0
	for i, s := range segs {
		h := s.Header()
		s.pos = pos
		if s.Sealed() {
			rep.Trusted++
			end, count := s.Reserved()
			rep.Recovered = append(rep.Recovered, RecoveredSegment{File: filepath.Base(s.Path()), Segment: h.Index, Trusted: true, Records: count, Bytes: end})
			pos += end - segment.HeaderSize
			nextSeq = h.BaseSeq + count
			continue
		}
		r := scanned[next].r
		next++
		rep.Scanned++
		if err := l.cutScanned(s, r); err != nil {
			return err
		}
		rep.Recovered = append(rep.Recovered, RecoveredSegment{File: filepath.Base(s.Path()), Segment: h.Index, Records: r.Count, Bytes: r.End})
		if err := s.Resume(r); err != nil {
			return err
		}
		if i+1 < len(segs) {
			s.Close() // complete: the first flush seals it
		}
		if len(l.pending) == 0 {
			rep.durableSeq = h.BaseSeq + r.DurableCount
			rep.durablePos = pos + r.MaxHint
		}
		l.pending = append(l.pending, s)
		rep.BacklogBytes += r.End - r.MaxHint
		pos += r.End - segment.HeaderSize
		nextSeq = h.BaseSeq + r.Count
	}
	l.segs = segs
	// The mark described the Close before this Open; from now on the log
	// changes, so it must not be read again (a stale mark would vouch
	// for a tail that a crash may tear).
	if mark != (segment.DurableMark{}) {
		if err := l.fs.Remove(l.durableMarkPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
	}

	// The active segment: the unsealed tail, or a fresh one.
	if len(segs) == 0 || segs[len(segs)-1].Sealed() {
		// With no segment left (TruncateBack removed them all, and a
		// crash came before its fresh segment was durable), the log
		// continues at its front.
		index, base := uint64(1), max(frontSeq(front), 1)
		if len(segs) > 0 {
			index, base = segs[len(segs)-1].Header().Index+1, nextSeq
		}
		ns, err := segment.Prepare(l.fs, l.segDir, 0, l.cfg.SegmentSize, l.cfg.FileMode)
		if err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		if err := ns.Activate(index, base, time.Now().UnixNano()); err != nil {
			ns.Discard()
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		s := &seg{Segment: ns, pos: pos}
		l.segs = append(l.segs, s)
		if len(l.pending) == 0 {
			rep.durableSeq = base
			rep.durablePos = pos + segment.HeaderSize
		}
		l.pending = append(l.pending, s)
	}
	active := l.segs[len(l.segs)-1]
	l.active.Store(active)
	l.durablePos.Store(rep.durablePos)
	l.openSeq = l.nextSeq()
	end, _ := active.Reserved()
	l.openPos = active.pos + end

	// The front TruncateFront left; segments wholly before it that a
	// crash kept go now. (TruncateFront makes the records before its
	// front durable first, so the front is never past the end; min is
	// for damage.)
	// CheckMarks made sure the front is not past the end.
	l.front.Store(max(frontSeq(front), l.segs[0].Header().BaseSeq))
	kept := segNames(l.segs)
	if err := l.removeBelow(l.front.Load(), "truncate-front"); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	rep.Removed = append(rep.Removed, kept[:len(kept)-len(l.segs)]...)

	rep.Segments = len(l.segs)
	rep.FirstSeq = l.front.Load()
	rep.NextSeq = l.openSeq
	rep.Duration = time.Since(start)
	return nil
}

// scannedSeg is an unsealed segment and what its recovery scan found.
type scannedSeg struct {
	s *seg
	r segment.ScanResult
}

// finishCut completes a TruncateBack or Reset that a crash interrupted, once
// recovery has decided everything and CheckMarks accepted the CUT mark: it
// deletes the segment files the cut drops, cuts the segment that keeps the
// cut's last record (segs' last, scanned last in scanned if unsealed), and
// removes the mark. It can be repeated after a crash with the same result.
func (l *Log) finishCut(m segment.CutMark, dropped []string, segs []*seg, scanned []scannedSeg) error {
	for _, name := range dropped {
		if err := l.fs.Remove(filepath.Join(l.segDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		l.report.Removed = append(l.report.Removed, name)
	}
	if err := l.fs.SyncDir(l.segDir); err != nil {
		return err
	}
	if m.Index != 0 {
		s := segs[len(segs)-1]
		if !s.Sealed() {
			// Every record was durable when the mark was written.
			r := scanned[len(scanned)-1].r
			r.Garbage, r.Corrupt = 0, nil // zeroed by the cut
			if err := s.Resume(r); err != nil {
				return err
			}
			s.MarkDurable(r.End)
			s.Close()
		}
		if _, err := cutSegment(s.Segment, m.LastSeq); err != nil {
			return err
		}
	}
	if m.Reset {
		// FRONT says where the log continues once CUT is gone.
		var b [segment.DurableMarkSize]byte
		segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: m.LastSeq + 1})
		if err := l.writeMark(l.frontMarkPath(), b[:]); err != nil {
			return err
		}
	}
	return l.removeMark(l.cutMarkPath())
}

// readFront reads the FRONT mark, or nil without one. A FRONT that fails
// its checks fails recovery, naming the file: the records before the lost
// front would come back.
func (l *Log) readFront() (*segment.FrontMark, error) {
	b, ok, err := segment.ReadMark(l.fs, l.frontMarkPath())
	if err == nil && ok {
		var m segment.FrontMark
		if m, err = segment.DecodeFrontMark(b[:]); err == nil {
			return &m, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("aof2: recover %s: %s: %w", l.dir, segment.FrontFile, err)
	}
	return nil, nil
}

// readCut reads the CUT mark, or nil without one. A CUT that fails its
// checks fails recovery, naming the file: it is written to a temporary
// file, synced, then renamed, so one that fails was damaged, and with it
// where the cut ends is unknown.
func (l *Log) readCut() (*segment.CutMark, error) {
	b, ok, err := segment.ReadMark(l.fs, l.cutMarkPath())
	if err == nil && ok {
		var m segment.CutMark
		if m, err = segment.DecodeCutMark(b[:]); err == nil {
			return &m, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("aof2: recover %s: %s: %w", l.dir, segment.CutFile, err)
	}
	return nil, nil
}

// frontSeq is the first retained sequence number a FRONT mark records,
// or 0 without one.
func frontSeq(m *segment.FrontMark) uint64 {
	if m == nil {
		return 0
	}
	return m.Seq
}

// cutScanned handles what a scan found past the good records: a torn tail
// is zeroed and reported; corruption fails recovery, or in repair mode is
// cut with a copy kept.
func (l *Log) cutScanned(s *seg, r segment.ScanResult) error {
	if r.Corrupt == nil && r.Garbage == 0 {
		return nil
	}
	h := s.Header()
	t := Truncation{File: filepath.Base(s.Path()), Segment: h.Index, Offset: r.End, Bytes: r.Garbage,
		Reason: "torn tail: bad or partial record with no later record vouching it was durable"}
	if r.Corrupt != nil { // repair mode: strict recovery failed before this
		if err := makeDirs(l.fs, l.repairDir(), 1, l.cfg.DirMode); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		t.Corrupt = true
		t.Reason = r.Corrupt.Error()
		t.KeptAt = filepath.Join(l.repairDir(), fmt.Sprintf("%s.cut-at-%d", t.File, r.End))
	}
	if err := s.Cut(r, t.KeptAt, l.cfg.FileMode); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	l.report.truncated(t)
	return nil
}

// holdsDurable reports whether s holds records that were durable (it is
// sealed, the DURABLE mark vouches for it, or one of its records vouches
// for a sync of its own segment), and where its records end.
func holdsDurable(s *seg, vouched func(*seg) int64) (bool, int64) {
	if end, _ := s.Reserved(); s.Sealed() || vouched(s) > segment.HeaderSize {
		return true, end
	}
	r := s.Scan(0)
	return r.MaxHint > segment.HeaderSize, r.End
}

// laterSegsDurable returns a *CorruptError at end, where the good records
// of tail end, if a segment in later holds durable records although the
// log ends in tail; otherwise the end of each one's records, for the
// truncation report.
func laterSegsDurable(tail *seg, end int64, later []*seg, vouched func(*seg) int64) ([]int64, error) {
	ends := make([]int64, len(later))
	for i, s := range later {
		var durable bool
		if durable, ends[i] = holdsDurable(s, vouched); durable {
			return nil, segment.Corrupt(filepath.Base(tail.Path()), tail.Header().Index, end, "the records end before seq %d, but segment %d (%s) after it holds durable records",
				later[0].Header().BaseSeq, s.Header().Index, filepath.Base(s.Path()))
		}
	}
	return ends, nil
}

// laterDurable is laterSegsDurable for the files after a segment whose
// header never reached the disk (named first).
func (l *Log) laterDurable(first string, names []string, vouched func(*seg) int64) error {
	var later []*seg
	defer func() { releaseAll(later) }()
	for _, name := range names {
		s, err := segment.Open(l.fs, l.segDir, name)
		if errors.Is(err, segment.ErrNoHeader) {
			continue
		}
		if err != nil {
			return err
		}
		later = append(later, &seg{Segment: s})
	}
	for _, s := range later {
		if durable, _ := holdsDurable(s, vouched); durable {
			index, _, _ := segment.ParseName(first)
			return segment.Corrupt(first, index, 0, "no header, but segment %d (%s) after it holds durable records",
				s.Header().Index, filepath.Base(s.Path()))
		}
	}
	return nil
}

// newerVersion returns an error wrapping ErrUnsupportedVersion if one of
// the segment files named is of a newer format version, which recovery
// must not remove, cut or move (repair mode included). Files it cannot
// read are left to the checks that open them.
func (l *Log) newerVersion(names []string) error {
	for _, name := range names {
		f, err := l.fs.OpenReadOnly(filepath.Join(l.segDir, name))
		if err != nil {
			continue
		}
		_, err = segment.ReadHeader(f, name)
		f.Close()
		if errors.Is(err, ErrUnsupportedVersion) {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
	}
	return nil
}

func segNames(segs []*seg) []string {
	names := make([]string, 0, len(segs))
	for _, s := range segs {
		names = append(names, filepath.Base(s.Path()))
	}
	return names
}

func releaseAll(segs []*seg) {
	for _, s := range segs {
		s.Release()
	}
}

// durableMarkPath is where Close records how far the tail was durable.
func (l *Log) durableMarkPath() string { return filepath.Join(l.dir, segment.DurableFile) }

// readDurableMark reads the mark Close left, if any. A mark that fails its
// checks is ignored: it only ever adds knowledge.
func (l *Log) readDurableMark() (segment.DurableMark, error) {
	b, ok, err := segment.ReadMark(l.fs, l.durableMarkPath())
	switch {
	case err != nil && !errors.Is(err, segment.ErrCorrupt):
		return segment.DurableMark{}, fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	case !ok:
		return segment.DurableMark{}, nil
	}
	m, derr := segment.DecodeDurableMark(b[:])
	if err != nil || derr != nil {
		return segment.DurableMark{}, nil
	}
	return m, nil
}

// writeDurableMark records, durably, that segment s is durable up to its
// durable offset.
func (l *Log) writeDurableMark(s *seg) error {
	var b [segment.DurableMarkSize]byte
	segment.EncodeDurableMark(b[:], segment.DurableMark{Index: s.Header().Index, Offset: s.Durable()})
	tmp := l.durableMarkPath() + ".tmp"
	l.fs.Remove(tmp)
	if err := segment.WriteFileSync(l.fs, tmp, b[:], l.cfg.FileMode); err != nil {
		return err
	}
	if err := l.fs.Rename(tmp, l.durableMarkPath()); err != nil {
		return err
	}
	return l.fs.SyncDir(l.dir)
}

func (l *Log) repairDir() string { return filepath.Join(l.dir, "repair") }

// moveToRepair moves segment files out of the log into its repair
// directory (repair mode only) and reports them as cut.
func (l *Log) moveToRepair(names []string, why error) error {
	if err := makeDirs(l.fs, l.repairDir(), 1, l.cfg.DirMode); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	for _, name := range names {
		kept := filepath.Join(l.repairDir(), name)
		if err := l.fs.Rename(filepath.Join(l.segDir, name), kept); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		index, _, _ := segment.ParseName(name)
		var size int64
		if f, err := l.fs.OpenReadOnly(kept); err == nil {
			size, _ = f.Size()
			f.Close()
		}
		l.report.truncated(Truncation{File: name, Segment: index, Bytes: size, Corrupt: true, Reason: why.Error(), KeptAt: kept})
	}
	return errors.Join(l.fs.SyncDir(l.segDir), l.fs.SyncDir(l.repairDir()))
}
