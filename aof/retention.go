package aof

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"github.com/aof2/aof2/flush"
	"github.com/aof2/aof2/segment"
)

// Retention: TruncateFront drops the oldest records, TruncateBack the
// newest, and the retainer applies Config.RetainBytes and RetainAge.
//
// On disk both are crash-safe through a small mark file written durably
// before anything is removed (temporary file, sync, rename, directory
// sync):
//
//   - FRONT (a segment.FrontMark) holds the first retained sequence
//     number. Records below it are never served again, also when a crash
//     left some of the segment files holding them; Open removes those.
//   - CUT (a segment.CutMark) is TruncateBack's intent: the last record to
//     keep and the segment that keeps it. Once it is durable, the cut is
//     decided: Open completes a cut it finds (it can be repeated), so a
//     crash shows the old end or the new one, never a mix.

// Crash points, named for tests that kill a child process inside a
// multi-step change.
const (
	crashCutDrain    = "cut-drain"      // appends stopped, appenders finishing
	crashCutBegin    = "cut-begin"      // all durable, CUT not written
	crashFrontMarked = "front-marked"   // FRONT durable, nothing removed
	crashFrontRemove = "front-removing" // some segments below it removed
	crashCutMarked   = "cut-marked"     // CUT durable, nothing changed
	crashCutRemove   = "cut-removing"   // some later segments removed
	crashCutSealed   = "cut-sealed"     // the kept segment cut and sealed
	crashCutDone     = "cut-done"       // CUT removed: the cut is complete
	crashResetMarked = "reset-marked"   // Reset's CUT durable, FRONT not
	crashResetFront  = "reset-front"    // Reset's CUT and FRONT durable

	// Not a disk change: FlushUntil checked its RecordID and is about
	// to wait (a test runs a Reset there).
	crashFlushChecked = "flush-until-checked"
)

func (l *Log) crash(point string) {
	if l.crashPoint != nil {
		l.crashPoint(point)
	}
}

func (l *Log) frontMarkPath() string { return filepath.Join(l.dir, segment.FrontFile) }
func (l *Log) cutMarkPath() string   { return filepath.Join(l.dir, segment.CutFile) }

// writeMark replaces the file at path with b, durably.
func (l *Log) writeMark(path string, b []byte) error {
	return segment.ReplaceFileSync(l.fs, path, b, l.cfg.FileMode)
}

// removeMark removes the mark file at path, durably.
func (l *Log) removeMark(path string) error {
	if err := l.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return l.fs.SyncDir(l.dir)
}

// FirstSeq returns the first sequence number the log holds: 1 for a new
// log, and the front set by retention after that.
func (l *Log) FirstSeq() uint64 { return l.front.Load() }

// NextSeq returns the sequence number the next Append will get.
func (l *Log) NextSeq() uint64 { return l.nextSeq() }

// truncated returns the error for a read of seq, which the log no longer
// holds.
func (l *Log) truncated(seq uint64) error {
	next := l.nextSeq()
	return &TruncatedError{Seq: seq, First: l.front.Load(), Next: next, Back: seq >= next}
}

// TruncateFront removes every record before seq: from the moment it
// returns (from before, for readers racing with it), reading them fails
// with a *TruncatedError naming the first available sequence number. The
// segment files holding only such records are deleted and the directory
// synced before it returns: a segment whose seal is still pending (the
// flusher is stopped, Config.NoBackgroundFlush, or a flush is sealing it)
// is sealed first by a flush on the caller's goroutine. A segment also
// holding later records stays until retention passes it again. seq must
// be at most NextSeq() (past it, ErrInvalidArgument); seq at or below FirstSeq() moves nothing, but
// deletes a file before the front that an earlier call failed to delete.
// It is crash-safe: the new front is made durable first (a FRONT file),
// and Open finishes the deletions.
//
// TruncateFront never waits for appenders, which carry on meanwhile.
// Readers that still hold records of a deleted segment keep them mapped
// until they move on (see Reader).
func (l *Log) TruncateFront(ctx context.Context, seq uint64) error {
	l.retainMu.Lock()
	defer l.retainMu.Unlock()
	return l.truncateFront(ctx, seq, "truncate-front", true)
}

// truncateFront is TruncateFront under retainMu. With seal, a segment
// before the front whose seal is pending is sealed by a flush first; the
// retainer passes false: it must not wait for the flush lock (a stalled
// sync) while it holds retainMu, and is kicked again once that seal is
// done (see flushTarget.Flush).
func (l *Log) truncateFront(ctx context.Context, seq uint64, reason string, seal bool) error {
	start, front, removed := time.Now(), l.front.Load(), l.removedSegs.Load()
	err := l.moveFront(ctx, seq, reason, seal)
	if err != nil || l.front.Load() != front || l.removedSegs.Load() != removed {
		l.tel.Truncated(ctx, start, "front", reason, seq, int(l.removedSegs.Load()-removed), err)
	}
	return err
}

func (l *Log) moveFront(ctx context.Context, seq uint64, reason string, seal bool) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if next := l.nextSeq(); seq > next {
		return fmt.Errorf("%w: cannot truncate the front to seq %d: the next record to be appended is %d", ErrInvalidArgument, seq, next)
	}
	if seq > l.front.Load() {
		// The front must never be past what a crash keeps.
		if err := l.waitDurable(ctx, seq-1, l.pipe.Epoch()); err != nil {
			return fmt.Errorf("aof2: truncate front to %d: %w", seq, err)
		}
		var b [segment.DurableMarkSize]byte
		segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: seq})
		if err := l.writeMark(l.frontMarkPath(), b[:]); err != nil {
			return fmt.Errorf("aof2: truncate front to %d: %w", seq, err)
		}
		l.front.Store(seq)
		l.frontReason = reason
		l.crash(crashFrontMarked)
	}
	// Also when the front did not move: a segment an earlier truncation
	// could not remove (a failed removal) goes now, for the reason of
	// the truncation that passed it.
	front := l.front.Load()
	if _, sealing := l.removable(front); sealing && seal {
		// A segment before the front waits for its seal: no flusher
		// runs, or a flush is sealing it right now. Seal it with a
		// flush (which waits for the one in progress), so that its
		// file goes now rather than after some later seal.
		if err := l.pipe.Flush(ctx, flush.ReasonExplicit); err != nil {
			return fmt.Errorf("aof2: truncate front to %d: seal: %w", front, err)
		}
	}
	return l.removeBelow(front, l.frontWhy())
}

// frontWhy returns why the front last moved, the reason given for
// removing the segments before it: "truncate-front" unless retention
// moved it since Open. Under retainMu.
func (l *Log) frontWhy() string {
	if l.frontReason == "" {
		return "truncate-front"
	}
	return l.frontReason
}

// removeBelow deletes the segments, oldest first, whose records are all
// before seq and which are sealed and announced (see removable).
// Deleting the oldest first keeps the segments left contiguous at every
// step.
func (l *Log) removeBelow(seq uint64, reason string) error {
	gone, _ := l.removable(seq)
	if len(gone) == 0 {
		return nil
	}
	for i, s := range gone {
		if err := l.dropFile(s.Segment); err != nil {
			l.dropFront(gone[:i], reason)
			return fmt.Errorf("aof2: truncate front to %d: %w", seq, err)
		}
		l.crash(crashFrontRemove)
	}
	err := l.fs.SyncDir(l.segDir)
	l.dropFront(gone, reason)
	if err != nil {
		return fmt.Errorf("aof2: truncate front to %d: %w", seq, err)
	}
	return nil
}

// dropFile moves the file of s, a segment whose records are all before
// the durable front, into the pool, or removes it if the pool takes none.
// The caller syncs the directory.
func (l *Log) dropFile(s *segment.Segment) error {
	if l.pool.put(s) {
		return nil
	}
	if err := l.fs.Remove(s.Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// removable returns the segments, oldest first, whose records are all
// before seq and which the flusher is done with: sealed, and no longer
// pending, so their EventSealed is published. sealing reports that the
// next segment holds only such records too but its seal is pending.
func (l *Log) removable(seq uint64) (gone []*seg, sealing bool) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	active := l.active.Load()
	for _, s := range l.segs {
		_, count := s.Reserved()
		if s == active || s.Header().BaseSeq+count > seq {
			break
		}
		if slices.Contains(l.pending, s) {
			return gone, true
		}
		gone = append(gone, s)
	}
	return gone, false
}

// dropFront takes the first len(gone) segments, whose files are deleted,
// out of the log.
func (l *Log) dropFront(gone []*seg, reason string) {
	if len(gone) == 0 {
		return
	}
	l.segMu.Lock()
	l.segs = l.segs[len(gone):]
	l.segMu.Unlock()
	l.removedSegs.Add(uint64(len(gone)))
	for _, s := range gone {
		l.events.publish(segmentEvent(EventRemoved, s, reason))
		s.Release()
	}
}

// TruncateBack removes every record after last, so that the next Append
// gets sequence number last+1: what a Raft log store does when a new
// leader's entries conflict with its own. last must be in [FirstSeq()-1,
// NextSeq()-1] (outside, ErrInvalidArgument); last = NextSeq()-1 changes
// nothing.
//
// It makes every record durable first, then cuts: the segment holding
// last is sealed right after it, later segments are deleted, and appends
// continue in a fresh segment. Appends wait while it runs (a few syncs).
// It is crash-safe: the cut is decided by a durable CUT file before
// anything changes, and Open completes it, so after a crash the log ends
// either where it ended before or at last, never in between.
//
// Readers positioned after last get a *TruncatedError (Back set) on
// their next Next; the payloads of removed records that readers still
// hold may change under them. RecordIDs of removed records must not be
// used again (their sequence numbers are handed out anew). A failure
// while cutting fail-stops the log; reopening it completes the cut.
func (l *Log) TruncateBack(ctx context.Context, last uint64) error {
	l.retainMu.Lock()
	defer l.retainMu.Unlock()
	l.rotateMu.Lock()
	defer l.rotateMu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	next, first := l.nextSeq(), l.front.Load()
	if last >= next || last+1 < first {
		return fmt.Errorf("%w: cannot truncate back to seq %d: the log holds [%d, %d)", ErrInvalidArgument, last, first, next)
	}
	if last+1 == next {
		return nil
	}
	return l.cutBack(ctx, last, false)
}

// Reset empties the log and continues it at sequence number next: the
// next Append gets next, and FirstSeq() and NextSeq() are next. next may
// be any value from 1 on, below, inside or above the range the log holds:
// what a Raft log store does after it installed a snapshot (next is the
// snapshot's last index plus one). Reset on a log that is empty at next
// already changes nothing; next 0 wraps ErrInvalidArgument.
//
// Like TruncateBack it makes every record durable first, then removes
// every segment file and continues in a fresh segment; appends wait while
// it runs. It is crash-safe: a durable CUT mark (a reset's) decides it
// before anything changes, then the FRONT mark is set to next, and Open
// completes it, so after a crash the log is either as it was before or
// empty at next, never in between.
//
// Every record is removed, with the effect of a TruncateFront(next) and a
// TruncateBack(next-1) at once. A Reader or follower whose next record is
// below next gets a *TruncatedError with Back false, one whose next record
// is above next one with Back true (and Next next); either way the
// error's First is next, where the new records start. A Reader at exactly next goes
// on with the new records. FlushUntil of a removed record returns a
// *TruncatedError (the record was made durable, then removed), also when
// it waited when Reset ran. Subscribe delivers EventRemoved with reason
// "reset" for each removed segment, then EventActivated for the fresh one.
// The "since open" counters of Metrics never go down: AppendedRecords
// and AppendedBytes count appends, not sequence numbers. RecordIDs of
// removed records must not be used again. A failure while resetting
// fail-stops the log; reopening it completes the reset.
func (l *Log) Reset(ctx context.Context, next uint64) error {
	l.retainMu.Lock()
	defer l.retainMu.Unlock()
	l.rotateMu.Lock()
	defer l.rotateMu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if next == 0 {
		return fmt.Errorf("%w: cannot reset to seq 0: sequence numbers start at 1", ErrInvalidArgument)
	}
	if l.front.Load() == next && l.nextSeq() == next {
		return nil // empty at next already
	}
	return l.cutBack(ctx, next-1, true)
}

// cutBack is TruncateBack(last), or with reset Reset(last+1), once the
// arguments are checked, under retainMu and rotateMu.
func (l *Log) cutBack(ctx context.Context, last uint64, reset bool) (err error) {
	// Stop appends: appenders find the active segment full and wait in
	// rotate for rotateMu, then continue in the segment made below. An
	// appender may still be copying into any segment not yet sealed (it
	// reserved in a segment that another appender then rolled over):
	// wait for all of them, as Close does, so the flush below makes
	// every record durable and no buffer is released under a copy.
	l.active.Load().Close()
	l.crash(crashCutDrain)
	l.drainPending()
	defer l.tail.notify() // Written followers look again
	start, removed := time.Now(), l.removedSegs.Load()
	defer func() {
		end, reason, seq := "back", "truncate-back", last
		if reset {
			end, reason, seq = "all", "reset", last+1
		}
		l.tel.Truncated(ctx, start, end, reason, seq, int(l.removedSegs.Load()-removed), err)
	}()
	return l.pipe.Exclusive(ctx, flush.ReasonExplicit, func() (next uint64, err error) {
		l.cuts.Begin() // readers wait for the cut to end
		defer func() { l.cuts.End(next, err == nil) }()
		return l.cut(last, reset)
	})
}

// cut is TruncateBack once every record is durable and every segment
// but the active one sealed, under the flush lock and rotateMu; with
// reset it is Reset(last+1), which removes every segment and moves the
// front to last+1. It returns the new durable frontier.
func (l *Log) cut(last uint64, reset bool) (uint64, error) {
	op, why := fmt.Sprintf("truncate back to %d", last), "truncate-back"
	if reset {
		op, why = fmt.Sprintf("reset to %d", last+1), "reset"
	}
	l.segMu.RLock()
	segs := append([]*seg(nil), l.segs...)
	l.segMu.RUnlock()
	// Where the log ends before the cut, for the "since open" counters:
	// taken now, because cutting the kept segment, which may be the last
	// one, changes its end.
	tail := segs[len(segs)-1]
	oldEnd, oldCount := tail.Reserved()
	oldNext := tail.Header().BaseSeq + oldCount
	keep := -1 // segs[keep] holds last; -1 if no segment keeps a record
	for i, s := range segs {
		if s.Contains(last) && !reset {
			keep = i
		}
		// The cut is decided once CUT is durable, and Open can only
		// complete it over durable records.
		if end, _ := s.Reserved(); !s.Sealed() && s.Durable() < end {
			return 0, fmt.Errorf("aof2: %s: segment %d is durable up to offset %d of %d; no cut decided", op, s.Header().Index, s.Durable(), end)
		}
	}
	l.crash(crashCutBegin)
	var keepIndex uint64 // 0: no segment keeps a record
	if keep >= 0 {
		keepIndex = segs[keep].Header().Index
	}
	if err := l.writeCutMarks(last, reset, keepIndex); err != nil {
		return 0, fmt.Errorf("aof2: %s: %w", op, err)
	}
	if err := l.removeCutSegments(segs[keep+1:]); err != nil {
		return 0, fmt.Errorf("aof2: %s: %w", op, err)
	}
	index, pos := segs[0].Header().Index, segs[0].pos
	if reset {
		// A fresh index: a RecordID handed out before the reset never
		// names the new segment.
		index = segs[len(segs)-1].Header().Index + 1
	}
	if keep >= 0 {
		var err error
		if index, pos, err = l.sealKept(segs[keep], last); err != nil {
			return 0, fmt.Errorf("aof2: %s: %w", op, err)
		}
	}
	l.crash(crashCutSealed)
	ns, err := l.prep.take()
	if err == nil {
		if err = ns.Activate(index, last+1, time.Now().UnixNano()); err != nil {
			ns.Discard()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("aof2: %s: new segment %d: %w", op, index, err)
	}
	fresh := &seg{Segment: ns, pos: pos}
	// The cut is complete; the new segment's name becomes durable with
	// its first flush, like any segment's (before that, Open makes a
	// fresh one).
	if err := l.removeMark(l.cutMarkPath()); err != nil {
		return 0, fmt.Errorf("aof2: %s: %w", op, err)
	}
	l.crash(crashCutDone)

	l.cutBytes.Add(tail.pos + oldEnd - pos - segment.HeaderSize)
	// Wraps for a Reset above the old end: AppendedRecords, next plus
	// cutRecords, stays what it was.
	l.cutRecords.Add(oldNext - (last + 1))
	var front uint64 // a Reset moves the front
	if reset {
		front = last + 1
	}
	l.installCut(segs, keep, fresh, front, why)
	return last + 1, nil
}

// sealKept seals s, which keeps the cut's last record, right after it,
// and returns the index and log position of the segment that follows.
func (l *Log) sealKept(s *seg, last uint64) (index uint64, pos int64, err error) {
	changed, err := l.cutSegment(s.Segment, last)
	if err != nil {
		return 0, 0, err
	}
	if changed {
		l.events.publish(segmentEvent(EventSealed, s, "truncate-back"))
	}
	end, _ := s.Reserved()
	return s.Header().Index + 1, s.pos + end - segment.HeaderSize, nil
}

// writeCutMarks writes, durably, the marks that decide a cut, in the
// order a crash needs: for a Reset, CUT (which decides it: Open completes
// it whatever FRONT says) and then FRONT, which says where the log stands
// once the segments and CUT are gone (FRONT first would move the front
// into or past the old records with nothing yet decided); for a
// TruncateBack that keeps no segment (keepIndex 0), FRONT and then CUT;
// otherwise CUT naming the segment that keeps last.
func (l *Log) writeCutMarks(last uint64, reset bool, keepIndex uint64) error {
	var b [segment.DurableMarkSize]byte
	if reset {
		segment.EncodeCutMark(b[:], segment.CutMark{LastSeq: last, Reset: true})
		if err := l.writeMark(l.cutMarkPath(), b[:]); err != nil {
			return err
		}
		l.crash(crashResetMarked)
		segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: last + 1})
		if err := l.writeMark(l.frontMarkPath(), b[:]); err != nil {
			return err
		}
		l.crash(crashResetFront)
		return nil
	}
	if keepIndex == 0 {
		// Every segment file goes: the FRONT mark is then all that
		// says where the log stands (recovery starts a log with no
		// segment at it). last+1 is the front already, but the mark
		// may be lower (recovery raises the front to the first
		// segment's first record without writing it).
		segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: last + 1})
		if err := l.writeMark(l.frontMarkPath(), b[:]); err != nil {
			return err
		}
	}
	segment.EncodeCutMark(b[:], segment.CutMark{LastSeq: last, Index: keepIndex})
	if err := l.writeMark(l.cutMarkPath(), b[:]); err != nil {
		return err
	}
	l.crash(crashCutMarked)
	return nil
}

// removeCutSegments deletes the files of the segments a decided cut drops,
// newest first, and syncs the segment directory.
func (l *Log) removeCutSegments(gone []*seg) error {
	for i := len(gone) - 1; i >= 0; i-- {
		if err := l.fs.Remove(gone[i].Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		l.crash(crashCutRemove)
	}
	return l.fs.SyncDir(l.segDir)
}

// installCut makes the log's segments segs[:keep+1] and fresh, the new
// active segment, once the cut is complete on disk, and releases the
// segments it dropped; a front not 0 becomes the log's front.
func (l *Log) installCut(segs []*seg, keep int, fresh *seg, front uint64, why string) {
	l.segMu.Lock()
	l.segs = append(segs[:keep+1:keep+1], fresh)
	l.pending = []*seg{fresh}
	l.segMu.Unlock()
	l.durablePos.Store(fresh.pos + segment.HeaderSize)
	if front != 0 {
		l.front.Store(front)
	}
	l.active.Store(fresh)
	l.removedSegs.Add(uint64(len(segs) - keep - 1))
	for _, s := range segs[keep+1:] {
		l.events.publish(segmentEvent(EventRemoved, s, why))
		s.Release()
	}
	l.events.publish(segmentEvent(EventActivated, fresh, ""))
}

// cutSegment seals s right after record last, which it holds, unless it
// is sealed and ends there already; changed says whether it did. A
// segment it seals for the first time joins the mappings' bound, like one
// sealed by a flush.
func (l *Log) cutSegment(s *segment.Segment, last uint64) (changed bool, err error) {
	end, count := s.Reserved()
	keep := last + 1 - s.Header().BaseSeq
	if keep == count && s.Sealed() {
		return false, nil
	}
	if keep < count {
		off, err := s.Locate(last + 1)
		if err != nil {
			return false, err
		}
		end = off
	}
	wasSealed := s.Sealed()
	if err := s.CutAndSeal(end, keep); err != nil {
		return true, err
	}
	if !wasSealed {
		return true, l.maps.watch(s)
	}
	return true, nil
}

// retainer applies Config.RetainBytes and RetainAge on its goroutine,
// after every seal and on a timer; Close stops it.
type retainer struct {
	kickc chan struct{}
	stopc chan struct{}
	done  chan struct{}
}

func (l *Log) startRetainer() {
	if l.cfg.RetainBytes <= 0 && l.cfg.RetainAge <= 0 {
		return
	}
	r := &retainer{kickc: make(chan struct{}, 1), stopc: make(chan struct{}), done: make(chan struct{})}
	l.retainer = r
	every := time.Minute
	if l.cfg.RetainAge > 0 {
		every = min(max(l.cfg.RetainAge/4, time.Second), time.Minute)
	}
	go func() {
		defer close(r.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			l.retain()
			select {
			case <-r.stopc:
				return
			case <-r.kickc:
			case <-t.C:
			}
		}
	}()
}

func (r *retainer) kick() {
	if r == nil {
		return
	}
	select {
	case r.kickc <- struct{}{}:
	default:
	}
}

func (r *retainer) stop() {
	if r == nil {
		return
	}
	close(r.stopc)
	<-r.done
}

// retain removes the oldest sealed segments that Config.RetainBytes or
// RetainAge no longer keeps, and those before the front that an earlier
// truncation failed to remove. Errors are left for the next pass: a
// segment that could not be removed stays readable.
func (l *Log) retain() {
	l.retainMu.Lock()
	defer l.retainMu.Unlock()
	if l.closed.Load() {
		return
	}
	l.segMu.RLock()
	segs := append([]*seg(nil), l.segs...)
	l.segMu.RUnlock()
	var total int64
	for _, s := range segs {
		total += s.Header().Size
	}
	cutoff := time.Now().Add(-l.cfg.RetainAge).UnixNano()
	var front uint64
	var reason string
	for _, s := range segs[:len(segs)-1] {
		var why string
		_, count := s.Reserved()
		switch {
		case s.Header().BaseSeq+count <= l.front.Load():
			// An earlier truncation passed it but could not remove
			// it: truncateFront does now.
			why = l.frontWhy()
		case !s.Sealed():
		case l.cfg.RetainBytes > 0 && total > l.cfg.RetainBytes:
			why = "retain-bytes"
		case l.cfg.RetainAge > 0 && newest(s) < cutoff:
			why = "retain-age"
		}
		if why == "" {
			break
		}
		reason, front = why, s.Header().BaseSeq+count
		total -= s.Header().Size
	}
	if reason != "" {
		l.truncateFront(context.Background(), front, reason, false)
	}
}

// newest returns the append time of the last record of a sealed segment.
func newest(s *seg) int64 {
	_, count := s.Reserved()
	off, err := s.Locate(s.Header().BaseSeq + count - 1)
	if err != nil {
		return time.Now().UnixNano() // unreadable: not old by age
	}
	at, err := s.TimestampAt(off)
	if err != nil {
		return time.Now().UnixNano()
	}
	return at
}
