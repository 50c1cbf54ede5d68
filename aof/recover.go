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

// recover rebuilds the log's state from its directory: gatherRecovery
// observes, planRecovery decides, applyRecovery changes the disk (see
// recoveryFacts). A done ctx stops it before it scans a segment or
// changes the disk. See OpenContext.
func (l *Log) recover(ctx context.Context) (err error) {
	start := time.Now()
	f, handles, err := l.gatherRecovery(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			releaseAll(l.segs)
			l.segs = nil
		}
	}()
	p, err := planRecovery(f, l.cfg.Recovery == RecoverRepair)
	if err != nil {
		for _, s := range handles {
			if s != nil {
				s.Release()
			}
		}
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	if err := l.applyRecovery(ctx, f, handles, &p); err != nil {
		return err
	}
	l.report.Duration = time.Since(start)
	return nil
}

// gatherRecovery reads the marks, lists the segment files, opens each one
// and scans the unsealed ones, changing nothing on disk. It returns the
// facts and, by position in facts.files, the open segments (nil where
// Open failed), which the caller releases or hands to applyRecovery. A
// done ctx stops it before a scan.
func (l *Log) gatherRecovery(ctx context.Context) (_ *recoveryFacts, handles []*segment.Segment, err error) {
	f := &recoveryFacts{}
	if f.mark, err = l.readDurableMark(); err != nil {
		return nil, nil, err
	}
	if f.front, err = l.readFront(); err != nil {
		return nil, nil, err
	}
	if f.cut, err = l.readCut(); err != nil {
		return nil, nil, err
	}
	names, err := l.fs.ReadDir(l.segDir)
	if err != nil {
		return nil, nil, fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, segment.TempSuffix) {
			f.temps = append(f.temps, name)
		} else if _, ok := parsePoolName(name); ok {
			f.pooled = append(f.pooled, name)
		} else if index, _, ok := segment.ParseName(name); ok {
			f.files = append(f.files, segFacts{name: name, index: index})
		}
	}
	sort.Slice(f.files, func(i, j int) bool { return f.files[i].index < f.files[j].index })
	handles = make([]*segment.Segment, len(f.files))
	defer func() {
		if err != nil {
			for _, s := range handles {
				if s != nil {
					s.Release()
				}
			}
		}
	}()
	for i := range f.files {
		sf := &f.files[i]
		s, err := segment.Open(l.fs, l.segDir, sf.name)
		if err != nil {
			sf.err = err
			continue
		}
		handles[i] = s
		sf.hdr, sf.sealed = s.Header(), s.Sealed()
		if sf.sealed {
			sf.end, sf.records = s.Reserved()
			// Mapped now to read its footer: at most the bound of
			// sealed segments stay so, however many there are.
			if err := l.maps.watch(s); err != nil {
				return nil, nil, fmt.Errorf("aof2: recover %s: %w", l.dir, err)
			}
			continue
		}
		// A done ctx stops recovery before the next scan: nothing on
		// disk is changed yet.
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
		sf.scan = s.Scan(f.vouched(sf.index))
		sf.end, sf.records = sf.scan.End, sf.scan.Count
	}
	return f, handles, nil
}

// applyRecovery does what p says, with the segments gather opened
// (handles), in this order: release the segments not kept; stop if ctx
// is done (nothing is changed yet); remove the prepared files never used;
// complete an interrupted TruncateBack or Reset (finishCut); remove the
// segments that hold nothing durable; move the damaged ones to the repair
// directory; cut each kept unsealed segment's torn tail or corrupt middle
// and resume it (its bytes not proven durable become backlog, rewritten
// by the first flush); remove the DURABLE mark; allocate a fresh active
// segment if needed; remove the segments wholly before the front.
func (l *Log) applyRecovery(ctx context.Context, f *recoveryFacts, handles []*segment.Segment, p *recoveryPlan) error {
	rep := &l.report
	segs := make([]*seg, 0, len(p.keep))
	for _, k := range p.keep {
		segs = append(segs, &seg{Segment: handles[k.file]})
		handles[k.file] = nil
	}
	for _, s := range handles {
		if s != nil {
			s.Release()
		}
	}
	l.segs = segs
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	for _, t := range p.truncations {
		rep.truncated(t)
	}
	if err := l.removeSegFiles(p.temps, false); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	// Pool files beyond the bound (or of another segment size) go.
	extra, err := l.pool.load(f.pooled)
	rep.Removed = append(rep.Removed, extra...)
	if err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	if p.cut != nil {
		if err := l.finishCut(*p.cut, p.dropped, segs, p.keep); err != nil {
			return fmt.Errorf("aof2: recover %s: complete an interrupted TruncateBack or Reset: %w", l.dir, err)
		}
	}
	if err := l.removeSegFiles(p.removals, len(p.removals) > 0); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	if len(p.repairs) > 0 {
		if err := l.moveToRepair(p.repairs, p.repairWhy); err != nil {
			return err
		}
	}
	pos, err := l.resumeKept(segs, p.keep)
	if err != nil {
		return err
	}
	// The mark described the Close before this Open; from now on the log
	// changes, so it must not be read again (a stale mark would vouch
	// for a tail that a crash may tear).
	if p.removeDurableMark {
		if err := l.removeMark(l.durableMarkPath()); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
	}
	if p.fresh {
		if err := l.activateFresh(p.freshIndex, p.freshBase, pos); err != nil {
			return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
		}
	}
	active := l.segs[len(l.segs)-1]
	l.active.Store(active)
	l.durablePos.Store(rep.durablePos)
	l.openSeq = l.nextSeq()
	end, _ := active.Reserved()
	l.openPos = active.pos + end

	// The front TruncateFront left; segments wholly before it that a
	// crash kept go now. (TruncateFront makes the records before its
	// front durable first, and planRecovery made sure, with CheckMarks,
	// that the front is not past the end.)
	l.front.Store(p.firstSeq(f))
	kept := segNames(l.segs)
	if err := l.removeBelow(l.front.Load(), "truncate-front"); err != nil {
		return fmt.Errorf("aof2: recover %s: %w", l.dir, err)
	}
	rep.Removed = append(rep.Removed, kept[:len(kept)-len(l.segs)]...)
	rep.Segments = len(l.segs)
	rep.FirstSeq = l.front.Load()
	rep.NextSeq = l.openSeq
	return nil
}

// removeSegFiles removes the named files of the segment directory,
// reporting them, and syncs the directory if sync is set.
func (l *Log) removeSegFiles(names []string, sync bool) error {
	for _, name := range names {
		if err := l.fs.Remove(filepath.Join(l.segDir, name)); err != nil {
			return err
		}
		l.report.Removed = append(l.report.Removed, name)
	}
	if sync {
		return l.fs.SyncDir(l.segDir)
	}
	return nil
}

// resumeKept gives the kept segments their log positions and reports
// them; each unsealed one has its tail cut (cutScanned) and is resumed,
// pending its seal (the last one stays open for appends). It returns the
// log position after the last one.
func (l *Log) resumeKept(segs []*seg, keep []keptSeg) (pos int64, err error) {
	rep := &l.report
	for i, s := range segs {
		h := s.Header()
		s.pos = pos
		if s.Sealed() { // trusted, or sealed by finishCut
			rep.Trusted++
			end, count := s.Reserved()
			rep.Recovered = append(rep.Recovered, RecoveredSegment{File: filepath.Base(s.Path()), Segment: h.Index, Trusted: true, Records: count, Bytes: end})
			pos += end - segment.HeaderSize
			continue
		}
		r := keep[i].scan
		rep.Scanned++
		if err := l.cutScanned(s, r); err != nil {
			return 0, err
		}
		rep.Recovered = append(rep.Recovered, RecoveredSegment{File: filepath.Base(s.Path()), Segment: h.Index, Records: r.Count, Bytes: r.End})
		if err := s.Resume(r); err != nil {
			return 0, err
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
	}
	return pos, nil
}

// activateFresh makes a new segment, with this index and base sequence
// number at log position pos, the active one.
func (l *Log) activateFresh(index, base uint64, pos int64) error {
	ns, err := segment.Prepare(l.fs, l.segDir, 0, l.cfg.SegmentSize, l.cfg.FileMode)
	if err != nil {
		return err
	}
	if err := ns.Activate(index, base, time.Now().UnixNano()); err != nil {
		ns.Discard()
		return err
	}
	s := &seg{Segment: ns, pos: pos}
	l.segs = append(l.segs, s)
	if len(l.pending) == 0 {
		l.report.durableSeq = base
		l.report.durablePos = pos + segment.HeaderSize
	}
	l.pending = append(l.pending, s)
	return nil
}

// finishCut completes a TruncateBack or Reset that a crash interrupted, once
// recovery has decided everything and CheckMarks accepted the CUT mark: it
// deletes the segment files the cut drops, cuts the segment that keeps the
// cut's last record (segs' last, keep's last), and removes the mark. It can
// be repeated after a crash with the same result.
func (l *Log) finishCut(m segment.CutMark, dropped []string, segs []*seg, keep []keptSeg) error {
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
			// Every record was durable when the mark was written;
			// the plan cleared Garbage and Corrupt: the cut zeroes
			// them.
			r := keep[len(keep)-1].scan
			if err := s.Resume(r); err != nil {
				return err
			}
			s.MarkDurable(r.End)
			s.Close()
		}
		if _, err := l.cutSegment(s.Segment, m.LastSeq); err != nil {
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
	return readMarkFile(l, l.frontMarkPath(), segment.FrontFile, segment.DecodeFrontMark)
}

// readCut reads the CUT mark, or nil without one. A CUT that fails its
// checks fails recovery, naming the file: it is written to a temporary
// file, synced, then renamed, so one that fails was damaged, and with it
// where the cut ends is unknown.
func (l *Log) readCut() (*segment.CutMark, error) {
	return readMarkFile(l, l.cutMarkPath(), segment.CutFile, segment.DecodeCutMark)
}

// readMarkFile reads and decodes the mark file at path (named name in
// errors), or returns nil if there is none.
func readMarkFile[M any](l *Log, path, name string, decode func([]byte) (M, error)) (*M, error) {
	b, ok, err := segment.ReadMark(l.fs, path)
	if err == nil && ok {
		var m M
		if m, err = decode(b[:]); err == nil {
			return &m, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("aof2: recover %s: %s: %w", l.dir, name, err)
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
	return l.writeMark(l.durableMarkPath(), b[:])
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
