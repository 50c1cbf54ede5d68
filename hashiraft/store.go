package hashiraft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/vfs"
)

// Compile-time checks of the interfaces raft uses.
var (
	_ raft.LogStore               = (*Store)(nil)
	_ raft.MonotonicLogStore      = (*Store)(nil)
	_ raft.CommitTrackingLogStore = (*Store)(nil)
	_ raft.StableStore            = (*Store)(nil)
	_ io.Closer                   = (*Store)(nil)
)

// LogDir is the directory of the aof log inside a store's directory.
const LogDir = "log"

// Errors callers can test with errors.Is.
var (
	// ErrNotContiguous: StoreLogs was given entries that do not continue
	// the log (the first index is not LastIndex()+1 on a store that holds
	// entries) or that skip or repeat an index. The store never leaves a
	// hole: nothing was stored.
	ErrNotContiguous = errors.New("hashiraft: entries do not continue the log")
	// ErrMiddleRange: DeleteRange of a range strictly inside the log.
	// Raft only deletes a prefix (compaction), a suffix (a conflict) or
	// everything (a snapshot installed or restored); a log has no holes.
	ErrMiddleRange = errors.New("hashiraft: cannot delete a range in the middle of the log")
	// ErrStableMissing: the stable store's file is gone while the log
	// holds entries, so the node's term and vote are lost. Open refuses:
	// wipe the node's directory and let it rejoin.
	ErrStableMissing = errors.New("hashiraft: stable store missing")
)

// Config configures a Store.
type Config struct {
	// Log configures the aof log holding the entries. Its Recovery must
	// be aof.RecoverStrict (the zero value): a raft node must not run,
	// nor vote, with a hole cut in its log. RetainBytes and RetainAge
	// must be 0: raft alone decides which entries to delete.
	Log aof.Config
	// FS is the file system for the log and the stable store; nil is
	// vfs.Default. Tests pass vfstest's FaultFS or PowerFS.
	FS vfs.FS
	// MeterProvider receives the store's instruments and the log's; nil
	// is the global provider.
	MeterProvider metric.MeterProvider
	// TracerProvider receives the store's spans and the log's; nil is the
	// global provider.
	TracerProvider trace.TracerProvider
	// Name is the value of the aof.log attribute on the log's spans and
	// metrics and of hashiraft.store on the store's; default the absolute
	// path of the store's directory. Give each store of a process its own.
	Name string
}

// Store is a raft log store and stable store on an aof log. Open one with
// Open and Close it when raft has shut down.
//
// The log holds one record per raft entry, and an entry's index is its
// record's sequence number. The stable store is a small file next to the
// log (StableFile). Every method is safe for concurrent use.
type Store struct {
	dir    string
	log    *aof.Log
	stable *stable
	tel    *telemetry

	// wmu orders StoreLogs' checks and appends with DeleteRange.
	wmu sync.Mutex

	staged atomic.Uint64 // the commit index StageCommitIndex staged

	cmu       sync.Mutex
	commit    uint64 // the staged commit index in the last durable entry
	commitSeq uint64 // that entry's index
	closeOnce sync.Once
	closeErr  error
}

// Open opens the store in dir, creating it if needed: the log in
// dir/log, the stable store in dir/STABLE. It is OpenContext with
// context.Background().
func Open(dir string, cfg Config) (*Store, error) {
	return OpenContext(context.Background(), dir, cfg)
}

// OpenContext opens the store in dir under ctx (which bounds the log's
// recovery; see aof.OpenContext).
//
// Corruption, in the log or in the stable store, fails it with an error
// wrapping aof.ErrCorrupt (or ErrStableMissing) that says to wipe the node
// and let it rejoin: a raft node must not come back with a hole in its log
// or a forgotten term or vote. A torn tail of the log (entries whose
// StoreLogs never returned) is not corruption: recovery drops it.
func OpenContext(ctx context.Context, dir string, cfg Config) (*Store, error) {
	if cfg.Log.Recovery != aof.RecoverStrict {
		return nil, fmt.Errorf("%w: hashiraft needs aof.RecoverStrict", aof.ErrInvalidConfig)
	}
	if cfg.Log.RetainBytes != 0 || cfg.Log.RetainAge != 0 {
		return nil, fmt.Errorf("%w: hashiraft needs the log without automatic retention (RetainBytes, RetainAge): "+
			"raft compacts its log itself after snapshots (raft.Config.TrailingLogs)", aof.ErrInvalidConfig)
	}
	fsys := cfg.FS
	if fsys == nil {
		fsys = vfs.Default
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("hashiraft: %w", err)
	}
	name := cfg.Name
	if name == "" {
		name = abs
	}
	opts := []aof.Option{aof.WithFS(fsys), aof.WithName(name)}
	if cfg.MeterProvider != nil {
		opts = append(opts, aof.WithMeterProvider(cfg.MeterProvider))
	}
	if cfg.TracerProvider != nil {
		opts = append(opts, aof.WithTracerProvider(cfg.TracerProvider))
	}
	log, err := aof.OpenContext(ctx, filepath.Join(abs, LogDir), cfg.Log, opts...)
	if err != nil {
		return nil, wipeAdvice(abs, err)
	}
	s := &Store{dir: abs, log: log}
	fail := func(err error) (*Store, error) {
		log.Close()
		return nil, wipeAdvice(abs, err)
	}
	perm := cfg.Log.FileMode
	if perm == 0 {
		perm = aof.DefaultFileMode
	}
	// A log that never held an entry is a new store (or one whose first
	// Open stopped before it wrote the stable file): create the stable
	// file. Once the log held entries, the stable file must be there.
	_, next := log.Bounds()
	if s.stable, err = openStable(fsys, abs, perm, next == 1); err != nil {
		return fail(err)
	}
	if err := s.recoverCommit(); err != nil {
		return fail(err)
	}
	if s.tel, err = newTelemetry(s, name, cfg.MeterProvider, cfg.TracerProvider); err != nil {
		return fail(err)
	}
	return s, nil
}

// wipeAdvice wraps an Open error that means the node's state cannot be
// trusted with what to do about it.
func wipeAdvice(dir string, err error) error {
	if errors.Is(err, aof.ErrCorrupt) || errors.Is(err, ErrStableMissing) {
		return fmt.Errorf("hashiraft: the raft store in %s is damaged and this node must not run on it: wipe the node and let it rejoin "+
			"(remove it from the cluster with RemoveServer, move the directory aside, start the node empty, add it back with AddVoter; "+
			"the leader sends it a snapshot): %w", dir, err)
	}
	return fmt.Errorf("hashiraft: open %s: %w", dir, err)
}

// recoverCommit reads the staged commit index of the log's last entry.
func (s *Store) recoverCommit() error {
	first, next := s.log.Bounds()
	var commit, seq uint64
	if first < next {
		var l raft.Log
		var err error
		if commit, _, err = s.readEntry(next-1, &l); err != nil {
			return err
		}
		seq = next - 1
	}
	s.cmu.Lock()
	s.commit, s.commitSeq = commit, seq
	s.cmu.Unlock()
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Log returns the aof log holding the entries, for its Metrics, Recovery
// report and Subscribe. Writing to it or truncating it behind the store's
// back breaks the store.
func (s *Store) Log() *aof.Log { return s.log }

// FirstIndex returns the index of the first entry, 0 for an empty store.
func (s *Store) FirstIndex() (uint64, error) {
	first, next := s.log.Bounds()
	if first == next {
		return 0, nil
	}
	return first, nil
}

// LastIndex returns the index of the last entry, 0 for an empty store.
func (s *Store) LastIndex() (uint64, error) {
	first, next := s.log.Bounds()
	if first == next {
		return 0, nil
	}
	return next - 1, nil
}

// GetLog reads the entry at index into l. An index the store does not hold
// returns raft.ErrLogNotFound itself (raft compares with ==); a corrupt
// entry is an error wrapping aof.ErrCorrupt, and l is then unchanged.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	_, n, err := s.readEntry(index, l)
	if err == nil {
		s.tel.read(n)
		return nil
	}
	if errors.Is(err, aof.ErrNotFound) || errors.Is(err, aof.ErrTruncated) || errors.Is(err, aof.ErrInvalidArgument) {
		return raft.ErrLogNotFound
	}
	return err
}

// readEntry reads and decodes the entry at index, returning its staged
// commit index and its encoded size.
func (s *Store) readEntry(index uint64, l *raft.Log) (commit uint64, size int, err error) {
	rec, err := s.log.Read(index, nil)
	if err != nil {
		return 0, 0, err
	}
	var e raft.Log
	if commit, err = decodeEntry(rec.Payload, &e); err != nil {
		return 0, 0, fmt.Errorf("hashiraft: entry %d: %w", index, err)
	}
	if e.Index != index {
		return 0, 0, fmt.Errorf("hashiraft: record %d holds entry %d: %w", index, e.Index, aof.ErrCorrupt)
	}
	*l = e
	return commit, len(rec.Payload), nil
}

// StoreLog stores one entry; see StoreLogs.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs appends entries and returns once they are durable: one batch,
// one sync, shared with concurrent callers (group commit). The entries
// must have consecutive indexes continuing the log; on an empty store the
// first may have any index (the log continues there, after a snapshot was
// installed). Anything else is ErrNotContiguous and stores nothing.
//
// Each entry carries the commit index staged by StageCommitIndex. An entry
// whose Extensions hold a sampled trace context (Inject) is appended under
// a hashiraft.store_logs span, child of that remote span: the log's
// aof.append span is its child, and the aof.flush span that made it
// durable links to that.
//
// A StoreLogs that fails stores nothing: an entry too large for one of
// the log's records is an error wrapping aof.ErrRecordTooLarge, and
// entries appended before a failure (a segment the log could not create)
// are removed again. If the log failed for good, a prefix of the entries
// may survive a crash (raft reads the log's last index when the node
// restarts).
func (s *Store) StoreLogs(logs []*raft.Log) error {
	return s.storeLogs(context.Background(), logs)
}

func (s *Store) storeLogs(ctx context.Context, logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	base := logs[0].Index
	if base == 0 {
		return fmt.Errorf("%w: index 0", ErrNotContiguous)
	}
	size := 0
	for i, l := range logs {
		if l.Index != base+uint64(i) {
			return fmt.Errorf("%w: entry %d of the batch has index %d, want %d", ErrNotContiguous, i, l.Index, base+uint64(i))
		}
		size += encodedSize(l)
	}
	commit := s.staged.Load()
	buf := make([]byte, 0, size)
	payloads := make([][]byte, len(logs))
	for i, l := range logs {
		start := len(buf)
		buf = appendEntry(buf, l, commit)
		payloads[i] = buf[start:len(buf):len(buf)]
		// Checked for the whole batch before any run is appended: a
		// batch of several trace contexts is appended run by run, and a
		// prefix left stored by a failed StoreLogs makes raft's retry
		// of the same entries fail for good.
		if n := len(payloads[i]); n > s.log.MaxRecordSize() {
			return fmt.Errorf("hashiraft: entry %d: %w: %d bytes encoded, at most %d", l.Index, aof.ErrRecordTooLarge, n, s.log.MaxRecordSize())
		}
	}
	last := base + uint64(len(logs)) - 1

	s.wmu.Lock()
	spans, err := s.append(ctx, logs, payloads)
	s.wmu.Unlock()
	if err == nil {
		err = s.log.FlushUntilSeq(ctx, last)
		if errors.Is(err, aof.ErrTruncated) {
			// A DeleteRange running meanwhile removed some of them,
			// after they were made durable.
			err = nil
		}
	}
	for _, sp := range spans {
		s.tel.endSpan(sp, err)
	}
	if err != nil {
		return fmt.Errorf("hashiraft: store entries [%d, %d]: %w", base, last, err)
	}
	s.cmu.Lock()
	if last > s.commitSeq {
		s.commit, s.commitSeq = commit, last
	}
	s.cmu.Unlock()
	s.tel.written(len(logs), len(buf))
	return nil
}

// append checks that logs continue the log and appends their payloads, in
// runs of consecutive entries carrying the same trace context. The caller
// holds wmu.
func (s *Store) append(ctx context.Context, logs []*raft.Log, payloads [][]byte) ([]trace.Span, error) {
	first, next := s.log.Bounds()
	if base := logs[0].Index; base != next {
		if first != next {
			return nil, fmt.Errorf("%w: first index %d, the log ends at %d", ErrNotContiguous, base, next-1)
		}
		if err := s.log.Reset(ctx, base); err != nil {
			return nil, err
		}
	}
	var spans []trace.Span
	for i := 0; i < len(logs); {
		sc, _ := Extract(logs[i].Extensions)
		j := i + 1
		for j < len(logs) {
			if next, _ := Extract(logs[j].Extensions); !next.Equal(sc) {
				break
			}
			j++
		}
		actx := ctx
		if sc.IsSampled() {
			var sp trace.Span
			actx, sp = s.tel.startStore(ctx, sc, logs[i].Index, logs[j-1].Index)
			spans = append(spans, sp)
		}
		if _, err := s.log.AppendBatch(actx, payloads[i:j]); err != nil {
			return spans, s.unappend(ctx, logs[0].Index, err)
		}
		i = j
	}
	return spans, nil
}

// unappend removes the entries from base on that a failed append stored
// (the log could not roll over to a new segment, say), so that the
// failed StoreLogs stores nothing and raft's retry of the same entries
// continues the log. If that fails too, the log has failed (it
// fail-stops when a cut fails). The caller holds wmu, and the log ended
// at base-1 when the append began.
func (s *Store) unappend(ctx context.Context, base uint64, err error) error {
	if _, next := s.log.Bounds(); next <= base {
		return err
	}
	if cerr := s.log.TruncateBack(ctx, base-1); cerr != nil {
		return errors.Join(err, fmt.Errorf("hashiraft: remove the entries stored from %d on: %w", base, cerr))
	}
	return err
}

// DeleteRange deletes the entries [min, max]. Raft deletes a prefix
// (compaction after a snapshot: the log's front moves), a suffix (entries
// that conflict with a new leader's: the log is cut back) or every entry
// (a snapshot installed or restored: the log is emptied, and the next
// StoreLogs continues at whatever index it gives). A range strictly inside
// the log is ErrMiddleRange; the part of the range outside the log is
// ignored, so a range that misses the log, or an empty store, changes
// nothing. Each deletion is crash-safe and durable when DeleteRange
// returns.
func (s *Store) DeleteRange(min, max uint64) error {
	ctx := context.Background()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	first, next := s.log.Bounds()
	if first == next || min > max {
		return nil
	}
	last := next - 1
	lo, hi := max64(min, first), min64(max, last)
	if lo > hi {
		return nil
	}
	switch {
	case lo == first && hi == last:
		if err := s.log.Reset(ctx, next); err != nil {
			return fmt.Errorf("hashiraft: delete every entry [%d, %d]: %w", first, last, err)
		}
		s.cmu.Lock()
		s.commit, s.commitSeq = 0, 0
		s.cmu.Unlock()
		s.tel.forget()
		s.tel.truncated(endAll)
	case lo == first:
		if err := s.log.TruncateFront(ctx, hi+1); err != nil {
			return fmt.Errorf("hashiraft: delete entries [%d, %d]: %w", lo, hi, err)
		}
		s.tel.truncated(endHead)
	case hi == last:
		if err := s.log.TruncateBack(ctx, lo-1); err != nil {
			return fmt.Errorf("hashiraft: delete entries [%d, %d]: %w", lo, hi, err)
		}
		if err := s.recoverCommit(); err != nil {
			return fmt.Errorf("hashiraft: after deleting entries [%d, %d]: %w", lo, hi, err)
		}
		s.tel.truncated(endTail)
	default:
		return fmt.Errorf("%w: [%d, %d] of [%d, %d]", ErrMiddleRange, lo, hi, first, last)
	}
	return nil
}

func min64(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// IsMonotonic reports true: the store's indexes only grow, except through
// DeleteRange, so raft removes every entry after installing a snapshot
// rather than leave a gap (raft.MonotonicLogStore).
func (s *Store) IsMonotonic() bool { return true }

// StageCommitIndex stages idx to be stored with the next StoreLogs' entries
// (raft.CommitTrackingLogStore, used with raft.Config.RestoreCommittedLogs).
func (s *Store) StageCommitIndex(idx uint64) error {
	s.staged.Store(idx)
	return nil
}

// GetCommitIndex returns the commit index stored with the last durable
// entry (recovered from the log's last entry at Open), never above
// LastIndex(); 0 when there is none.
func (s *Store) GetCommitIndex() (uint64, error) {
	last, _ := s.LastIndex()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return min64(s.commit, last), nil
}

// Set stores key = val in the stable store, durably (raft.StableStore).
// After Close it fails with an error wrapping aof.ErrClosed.
func (s *Store) Set(key, val []byte) error {
	if err := s.stable.set(key, val); err != nil {
		return err
	}
	s.tel.stableSet()
	return nil
}

// Get returns the value of key; a key never set is (nil, nil), as raft's
// StableStore documents (raft treats a "not found" error the same way).
func (s *Store) Get(key []byte) ([]byte, error) {
	v, _ := s.stable.get(key)
	return v, nil
}

// SetUint64 stores key = val (8 bytes, big-endian) in the stable store.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 returns the value SetUint64 stored under key; a key never set
// is (0, nil). A value that is not 8 bytes is an error.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, ok := s.stable.get(key)
	if !ok {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("hashiraft: stable key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close closes the log (making every entry durable) and the store's
// instruments. Later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stable.close()
		terr := s.tel.close()
		s.closeErr = errors.Join(s.log.Close(), terr)
	})
	return s.closeErr
}
