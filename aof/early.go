package aof

// Early rollover: a log whose syncs land in preallocated blocks moves to a
// segment of written blocks before the active one is full.
//
// A preallocated ("unwritten") block makes the first sync after a write
// into it commit an extent conversion through the file system's journal:
// on ext4 a durable 4 KiB or 64 KiB append's fdatasync measured 1.5-1.9x
// dearer there than into written blocks. The segments after the first are
// prewritten or recycled before they take records (preparer.go, pool.go),
// but a new log's first segment is only preallocated (Open must stay
// fast), and a segment recovery reopened has an unknown history, so it is
// taken as preallocated past its records. A log that syncs often would
// write a whole segment that way.
//
// So, unless Config.NoPrewrite: once the active segment has taken
// earlySyncs syncs of records past its written blocks, holds at least
// 1/earlyUsedDiv of the segment size (a log with durable traffic, not
// one of many quiet logs, which never pays for a second file) and has at
// least 1/earlyFreeDiv of it left (worth moving for), the log asks the
// preparer for the next segment now instead of at half full. When the
// preparer holds one whose blocks are all written (prewritten to the end,
// or recycled), the next append closes the active segment and rolls over
// to it. The active segment's unused room stays allocated until retention
// or a truncation drops the segment.
const (
	earlySyncs   = 64
	earlyUsedDiv = 16
	earlyFreeDiv = 4
)

// wantsEarly reports whether the active segment s should be left for a
// segment of written blocks before it is full.
func (l *Log) wantsEarly(s *seg) bool {
	if l.cfg.NoPrewrite || s.coldSyncs.Load() < l.earlySyncs {
		return false
	}
	end, _ := s.Reserved()
	size := s.Header().Size // a resumed segment keeps the size it was made with
	return end > s.WrittenTo() && end >= size/earlyUsedDiv && s.Free() >= size/earlyFreeDiv
}

// syncedActive is told by the flush that it made segment s durable up to
// offset end. If s is the active segment and end lies past its written
// blocks, the sync is counted; once s wants an early rollover, the
// preparer is asked for the next segment, and the next append is asked to
// roll over as soon as that segment is ready and all written.
func (l *Log) syncedActive(s *seg, end int64) {
	if end <= s.WrittenTo() || l.active.Load() != s {
		return
	}
	s.coldSyncs.Add(1)
	if !l.wantsEarly(s) {
		return
	}
	if l.prep.readyWritten() {
		l.early.Store(true)
	} else {
		l.prep.kick()
	}
}

// maybeRollEarly rolls over to the preparer's ready segment if an early
// rollover was asked for and is still wanted. It fails only as a rollover
// does, once the active segment was closed.
func (l *Log) maybeRollEarly() error {
	if !l.early.Load() {
		return nil
	}
	l.rotateMu.Lock()
	defer l.rotateMu.Unlock()
	l.early.Store(false)
	s := l.active.Load()
	if l.usable() != nil || !l.wantsEarly(s) {
		return nil
	}
	next := l.prep.takeWritten()
	if next == nil {
		return nil
	}
	if err := l.rollTo(s, next); err != nil {
		return err
	}
	l.earlyRolls.Add(1)
	return nil
}
