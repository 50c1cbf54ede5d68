// Package aof is the public face of aof2: a durable, segmented append-only
// log.
//
// # Contract
//
// Append returns once the record is in the log's memory, with a dense,
// increasing sequence number: it is "appended". A background flusher writes
// appended records to the segment file with pwrite and syncs them
// (fdatasync) when the backlog reaches the watermark, when the flush
// interval passes, or when a caller asks. A record is "durable" once a sync
// that started after the record was complete has succeeded: FlushUntil(id)
// returns nil exactly then. Concurrent waiters share one sync (group
// commit). Durability is a prefix: when a record is durable, so is every
// record before it.
//
// A sync that fails with EINTR, EAGAIN, EBUSY or ETIMEDOUT is retried with
// bounded exponential backoff and jitter. Any other write or sync failure
// (EIO, ENOSPC, EROFS, ...) fail-stops the log: no retry is trusted, because
// Linux marks the pages clean after a failed fsync. Every waiter, and every
// later Append, gets a *FailError that wraps ErrFailed and the errno,
// and names the durable frontier. Reopening the log recovers it: recovery rewrites
// the bytes it cannot prove durable and syncs them again.
//
// # Concurrency
//
// Every method of Log is safe for concurrent use. Append takes no lock: one
// compare-and-swap reserves space and sequence numbers, the frame is copied
// into the segment's append buffer, and a final atomic store publishes it.
// Rolling over to the next segment (prepared ahead of time by a background
// goroutine once the active one is half full) takes a mutex, once per
// segment.
//
// Goroutines: a Log owns the flusher (unless Config.NoBackgroundFlush),
// the segment preparer and, with Config.RetainBytes or RetainAge, the
// retainer. Close stops them.
//
// # Reading
//
// Read returns one record by sequence number (sparse index, then a short
// walk). NewReader reads sequentially from any sequence number, across
// segments, up to the Written or the Durable frontier, and Follow does the
// same but blocks for new records (reader.go). Every read verifies the
// record's checksum. Reader payloads are zero-copy slices of the segment
// mappings, kept mapped by a lease while the Reader needs them.
//
// # Retention
//
// TruncateFront drops the oldest records, TruncateBack the newest, and
// Config.RetainBytes and RetainAge drop whole old segments automatically;
// all are crash-safe (retention.go). Subscribe delivers every segment
// lifecycle event (events.go).
package aof

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/aof2/aof2/flush"
	"github.com/aof2/aof2/internal/wake"
	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// RecordID locates a record: Append returns it, FlushUntil takes it, and
// Record.ID gives it back for a record read. Seq is its dense sequence
// number (the first record of a log has Seq 1); Segment and Offset say
// where its frame is. The reader package defines it, so that a Record
// read there can name it.
type RecordID = reader.RecordID

// seg is a segment with its place in the log's byte stream.
type seg struct {
	*segment.Segment
	// pos is the log position of the segment's offset 0. The position
	// of offset o is pos+o, and a segment's first record follows the
	// previous segment's last one: pos = prev.pos + prev.end -
	// HeaderSize. Positions only serve to measure backlogs.
	pos int64
	// coldSyncs counts the flushes that made records past the file's
	// written blocks durable (early.go).
	coldSyncs atomic.Int64
}

// Log is an open log. See the package comment for the contract.
type Log struct {
	// Lock order, outermost first: retainMu, rotateMu, the flush
	// pipeline's flush lock (pipe.Exclusive, pipe.Flush), segMu, then a
	// segment's own lock (leases, reads, WaitPublished). The mappings'
	// mutex (maps) is taken with no segment lock held, and takes segment
	// locks inside it (Unmap). The preparer's mutex is taken under the
	// flush lock (early.go) and under rotateMu (take), and takes the
	// pool's mutex inside it (stop); neither waits for another lock. The telemetry's, the event hub's and
	// reader.Cuts' mutexes are leaves: nothing is taken while they are
	// held. Append takes none of them: it reserves
	// with a compare-and-swap and takes rotateMu only to roll over.

	// Set by Open, then read-only.
	dir        string
	segDir     string
	cfg        Config
	fs         vfs.FS
	dirLock    vfs.Unlocker
	maxPayload int
	prep       *preparer
	// pool keeps dropped segment files for reuse (pool.go).
	pool *pool
	// maps bounds the sealed segments kept mapped (mappings.go).
	maps mappings
	// prepareAt is the offset in the active segment whose crossing by
	// an append asks the preparer for the next segment: half the
	// segment, so no file or buffer is made before it may be needed.
	prepareAt int64
	pipe      *flush.Pipeline
	tel       *aofotel.Telemetry
	report    RecoveryReport
	// At open, for "since open" metrics.
	openSeq uint64
	openPos int64
	// crashPoint and boundsPeek are test hooks: crashPoint names the
	// steps of multi-step changes (retention.go), boundsPeek runs inside
	// Bounds between its loads of the front and the end.
	crashPoint func(string)
	boundsPeek func()

	// Atomics, read without a lock. active is swapped under rotateMu;
	// durablePos (the log position up to which bytes are durable) is
	// stored under the flush lock (by the flush, and by a cut).
	active      atomic.Pointer[seg]
	durablePos  atomic.Int64
	closed      atomic.Bool
	sealedCount atomic.Uint64
	// early asks the next append to roll over early (early.go), after
	// earlySyncs syncs into preallocated blocks (set by Open); earlyRolls
	// counts the early rollovers.
	earlySyncs int64
	early      atomic.Bool
	earlyRolls atomic.Uint64
	metrics    flush.Metrics // its own atomics

	// rotateMu serialises rollover, Close, TruncateBack and Reset (which
	// stop appends); closing is the close in progress or done (close.go).
	rotateMu sync.Mutex
	closing  closing

	// segMu guards segs and pending (recovery fills them before any
	// goroutine runs). A rollover appends to both; the flush trims
	// pending, under the flush lock too; retention removes from segs;
	// a cut replaces both, under rotateMu and the flush lock.
	segMu   sync.RWMutex
	segs    []*seg // every segment, in order; the active one last
	pending []*seg // segments not yet sealed, in order
	// flushSegs is the flush's copy of pending, reused (flush lock).
	flushSegs []*seg

	// Retention (retention.go), under retainMu: TruncateFront,
	// TruncateBack, Reset and the retainer's passes run one at a time.
	// front (the first retained sequence number) is stored under it and
	// read atomically anywhere. frontReason is why the front last moved
	// ("truncate-front", "retain-bytes", "retain-age"): the reason given
	// for removing the segments before it.
	retainMu    sync.Mutex
	front       atomic.Uint64
	frontReason string
	retainer    *retainer
	// cuts is the protocol between TruncateBack and Reset and the
	// readers (reader.Cuts): readers tell a record cut under them from
	// damage, and snapshots wait for a cut to end. cutRecords and
	// cutBytes keep "since open" counters monotonic across cuts;
	// removedSegs counts segment files retention and cuts removed.
	cuts        reader.Cuts
	cutRecords  atomic.Uint64
	cutBytes    atomic.Int64
	removedSegs atomic.Uint64
	// prewritten counts bytes of segment files prewritten with zeros
	// (Config.NoPrewrite), prewriteFails the prewrites that failed.
	prewritten    atomic.Int64
	prewriteFails atomic.Uint64

	// Notifications, each with its own lock: lifecycle events to
	// subscribers, and the wake-up of Written followers at the tail.
	events eventHub
	tail   tailSignal
}

// tailSignal wakes Written-level followers waiting at the written
// frontier when records are published. Appenders pay one atomic load
// while no follower waits.
type tailSignal struct {
	waiting atomic.Int32
	b       wake.Broadcast
}

// arm registers a waiter and returns the channel the next notify closes;
// the waiter then looks for records once more before it waits, and calls
// disarm after.
func (t *tailSignal) arm() <-chan struct{} {
	t.waiting.Add(1)
	return t.b.Current()
}

func (t *tailSignal) disarm() { t.waiting.Add(-1) }

// notify wakes the waiters, if any. Call it after publishing.
func (t *tailSignal) notify() {
	if t.waiting.Load() > 0 {
		t.b.Wake()
	}
}

// Open opens the log in dir, creating it if needed, and recovers what is
// there (see RecoveryReport). The directory is locked: a second Open of the
// same directory, from this process or another, fails with ErrLocked until
// this Log is closed. Open is OpenContext with context.Background().
func Open(dir string, cfg Config, opts ...Option) (*Log, error) {
	return OpenContext(context.Background(), dir, cfg, opts...)
}

// OpenContext is Open under ctx: the aof.recover span is a child of ctx's
// span, if it carries one, and ctx bounds recovery. A ctx done before
// OpenContext starts fails it at once, creating nothing; one done while
// recovery reads and scans the segments fails it before the next segment
// is scanned, having changed nothing on disk (recovery changes the disk
// only once every decision is made, and that last step is not
// interrupted). The error wraps ctx.Err(). ctx is not kept: the Log
// outlives it.
func OpenContext(ctx context.Context, dir string, cfg Config, opts ...Option) (*Log, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("aof2: open %s: %w", dir, err)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	o := options{fs: vfs.Default}
	for _, opt := range opts {
		opt(&o)
	}
	l := &Log{
		dir:        dir,
		segDir:     filepath.Join(dir, segment.SegmentsDir),
		cfg:        cfg,
		fs:         o.fs,
		maxPayload: segment.MaxPayload(cfg.SegmentSize),
		crashPoint: o.crashPoint,
		maps:       mappings{bound: cfg.MappedSegments},
	}
	l.pool = newPool(l.fs, l.segDir, cfg.SegmentSize, cfg.RecycleSegments)
	if err := makeDirs(l.fs, l.segDir, 2, cfg.DirMode); err != nil {
		return nil, fmt.Errorf("aof2: open %s: %w", dir, err)
	}
	lock, err := l.fs.Lock(filepath.Join(dir, segment.LockFile), cfg.FileMode)
	if err != nil {
		return nil, fmt.Errorf("aof2: open %s: %w", dir, err)
	}
	l.dirLock = lock
	if o.name == "" {
		o.name = defaultName(dir)
	}
	if l.tel, err = aofotel.New(o.tp, o.mp, o.name); err != nil {
		lock.Unlock()
		return nil, err
	}
	start := time.Now()
	err = l.recover(ctx)
	l.tel.Recovered(ctx, start, recoverEvents(&l.report), err)
	if err != nil {
		l.releaseSegments()
		lock.Unlock()
		return nil, err
	}
	l.earlySyncs = earlySyncs
	if o.earlySyncs > 0 {
		l.earlySyncs = o.earlySyncs
	}
	l.prep = startPreparer(l.fs, l.segDir, cfg.SegmentSize, cfg.FileMode, l.pool, l.prewriteConfig(o), func() *segment.Segment { return l.active.Load().Segment })
	l.prepareAt = cfg.SegmentSize / 2
	if end, _ := l.active.Load().Reserved(); end >= l.prepareAt {
		l.prep.kick()
	}
	l.pipe = flush.New(flushTarget{l}, flush.Config{Interval: cfg.FlushInterval, Watermark: cfg.FlushWatermark}, &l.metrics, l.report.durableSeq)
	if err := l.tel.Observe(l.observe); err != nil {
		l.prep.stop()
		l.releaseSegments()
		lock.Unlock()
		return nil, err
	}
	// The retainer first: the flusher's first flush may seal a segment
	// recovery left pending, and a seal kicks the retainer.
	l.startRetainer()
	if !cfg.NoBackgroundFlush {
		l.pipe.Start()
		if l.Backlog() > 0 || len(l.pending) > 1 {
			l.pipe.Request(flush.ReasonRecovery)
		}
	}
	return l, nil
}

// prewriteConfig is the preparer's prewrite setting: Config's, with the
// tests' seams, and a report that counts and traces each prewrite.
func (l *Log) prewriteConfig(o options) prewriteConfig {
	pw := prewriteConfig{on: !l.cfg.NoPrewrite, chunk: defaultPrewriteChunk, hook: o.prewriteHook, idle: !o.prewriteBusy, paused: o.prewritePaused}
	if o.prewriteChunk > 0 {
		pw.chunk = o.prewriteChunk
	}
	pw.report = func(start time.Time, done, size int64, err error) {
		l.prewritten.Add(done)
		if err != nil {
			l.prewriteFails.Add(1)
		}
		l.tel.Prewritten(start, done, size, err)
	}
	return pw
}

// defaultName is the aof.log attribute of a log opened without WithName:
// its directory's absolute path, unique among the logs open in a process
// (the directory lock sees to that) and stable across restarts.
func defaultName(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return filepath.Clean(dir)
}

// nextSeq returns the sequence number the next Append will get.
func (l *Log) nextSeq() uint64 {
	s := l.active.Load()
	_, count := s.Reserved()
	return s.Header().BaseSeq + count
}

// Recovery returns what Open found and did.
func (l *Log) Recovery() RecoveryReport { return l.report }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// MaxRecordSize returns the largest payload Append accepts.
func (l *Log) MaxRecordSize() int { return l.maxPayload }

// Append appends one record and returns its RecordID once the record is in
// the log's memory; use FlushUntil to wait until it is durable. payload is
// copied; the caller may reuse it at once. Empty payloads are allowed.
//
// If the bytes not yet durable have reached Config.MaxUnflushed, Append
// first flushes on the caller's goroutine (backpressure); ctx bounds the
// wait for the flush lock (a sync already started is not abandoned).
// Append fails with ErrRecordTooLarge, ErrClosed, ErrFailed, ctx's error,
// or the error that kept the next segment from being created (ENOSPC, for
// example); in every such case the record was not appended.
func (l *Log) Append(ctx context.Context, payload []byte) (RecordID, error) {
	if aofotel.Traced(ctx) {
		return l.appendTraced(ctx, payload)
	}
	return l.append(ctx, payload, nil)
}

// appendTraced is Append under a sampled span: it records aof.append.
func (l *Log) appendTraced(ctx context.Context, payload []byte) (RecordID, error) {
	span := l.tel.StartAppend(ctx)
	id, err := l.append(ctx, payload, span)
	l.tel.AppendDone(span, id.Segment, id.Seq, len(payload), err)
	return id, err
}

// append appends one record. A non-nil span is the record's aof.append
// span: it is handed to the telemetry once the record's seq is reserved
// and before the record is published, so the flush that makes it durable
// links to it.
func (l *Log) append(ctx context.Context, payload []byte, span trace.Span) (RecordID, error) {
	if err := l.admit(ctx, payload); err != nil {
		return RecordID{}, err
	}
	n := segment.FrameSize(len(payload))
	if err := l.maybeRollEarly(); err != nil {
		return RecordID{}, err
	}
	for {
		s := l.active.Load()
		off, seq, err := s.Reserve(n, 1)
		if err != nil {
			if err := l.rotate(s); err != nil {
				return RecordID{}, err
			}
			continue
		}
		if span != nil {
			l.tel.AppendReserved(span, seq)
		}
		end := s.Fill(off, seq, payload, time.Now().UnixNano())
		l.appended(s, end, n)
		return RecordID{Seq: seq, Segment: s.Header().Index, Offset: off}, nil
	}
}

// AppendBatch appends payloads as consecutive records, reserving space for
// as many as fit in the active segment at once, and returns the RecordID of
// each. A batch that does not fit in the rest of the segment continues in
// the next one. The records are contiguous and dense, but a crash can keep
// a prefix of the batch: call FlushUntil on the last RecordID to know all
// of it is durable. If an error stops the batch, the IDs of the records
// appended before it are returned with it. An empty batch appends nothing
// and records no span.
func (l *Log) AppendBatch(ctx context.Context, payloads [][]byte) ([]RecordID, error) {
	if len(payloads) == 0 || !aofotel.Traced(ctx) {
		return l.appendBatch(ctx, payloads, nil)
	}
	span := l.tel.StartAppend(ctx)
	ids, err := l.appendBatch(ctx, payloads, span)
	var last RecordID
	if len(ids) > 0 {
		last = ids[len(ids)-1]
	}
	var size int
	for _, p := range payloads {
		size += len(p)
	}
	l.tel.AppendDone(span, last.Segment, last.Seq, size, err)
	return ids, err
}

// appendBatch appends a batch; span, if not nil, is its aof.append span,
// handed to the telemetry before the batch's last record is published
// (see append).
func (l *Log) appendBatch(ctx context.Context, payloads [][]byte, span trace.Span) ([]RecordID, error) {
	for _, p := range payloads {
		if err := l.admit(ctx, p); err != nil {
			return nil, err
		}
	}
	if err := l.maybeRollEarly(); err != nil {
		return nil, err
	}
	ids := make([]RecordID, 0, len(payloads))
	for len(payloads) > 0 {
		s := l.active.Load()
		// Take the longest prefix that fits in the segment's free space.
		free := s.Free()
		var k int
		var n int64
		for k < len(payloads) && n+segment.FrameSize(len(payloads[k])) <= free {
			n += segment.FrameSize(len(payloads[k]))
			k++
		}
		if k == 0 {
			if err := l.rotate(s); err != nil {
				return ids, err
			}
			continue
		}
		off, seq, err := s.Reserve(n, uint64(k))
		if err != nil {
			continue // raced with other appenders: look again
		}
		if span != nil && k == len(payloads) {
			l.tel.AppendReserved(span, seq+uint64(k)-1)
		}
		ts := time.Now().UnixNano()
		for _, p := range payloads[:k] {
			ids = append(ids, RecordID{Seq: seq, Segment: s.Header().Index, Offset: off})
			off = s.Fill(off, seq, p, ts)
			seq++
		}
		payloads = payloads[k:]
		l.appended(s, off, n)
	}
	return ids, nil
}

// admit checks a payload before anything is reserved for it: its size,
// the log's state, and backpressure. An error from here means the record
// was not appended.
func (l *Log) admit(ctx context.Context, payload []byte) error {
	if len(payload) > l.maxPayload {
		return fmt.Errorf("%w: %d bytes, at most %d with segment size %d", ErrRecordTooLarge, len(payload), l.maxPayload, l.cfg.SegmentSize)
	}
	if err := l.pipe.Err(); err != nil {
		return err
	}
	// Backpressure: flush on the caller's goroutine until the backlog
	// is below the limit, sharing flushes with the flusher and other
	// appenders.
	for l.Backlog() >= l.cfg.MaxUnflushed {
		if err := l.pipe.Flush(ctx, flush.ReasonBackpressure); err != nil {
			return err
		}
	}
	return nil
}

// appended runs the flush triggers after n bytes were appended to s,
// ending at offset end, and asks for the next segment to be prepared
// when s is getting full.
func (l *Log) appended(s *seg, end, n int64) {
	l.tail.notify()
	if end >= l.prepareAt && end-n < l.prepareAt {
		l.prep.kick()
	}
	if w := s.WarmAt(); end >= w && end-n < w {
		l.prep.warm()
	}
	backlog := s.pos + end - l.durablePos.Load()
	switch {
	case backlog >= l.cfg.FlushWatermark && backlog-n < l.cfg.FlushWatermark:
		l.pipe.Request(flush.ReasonWatermark)
	case backlog == n:
		// The first byte after a durable point: start the interval.
		l.pipe.Arm()
	}
}

// usable returns ErrClosed on a closed log, the failure of a failed one,
// and nil while the log can change.
func (l *Log) usable() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.pipe.Err()
}

// rotate makes a fresh segment the active one because full could not take
// the next frame (the reserved end only grows, so it never will). It
// returns nil if another goroutine rotated first.
func (l *Log) rotate(full *seg) error {
	l.rotateMu.Lock()
	defer l.rotateMu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if l.active.Load() != full {
		return nil
	}
	next, err := l.prep.take()
	if err != nil {
		return fmt.Errorf("aof2: roll over to segment %d: %w", full.Header().Index+1, err)
	}
	return l.rollTo(full, next)
}

// rollTo closes the active segment full to appends and makes next, a
// prepared segment, the active one after it. The caller holds rotateMu.
func (l *Log) rollTo(full *seg, next *segment.Segment) error {
	end, count := full.Close()
	if err := next.Activate(full.Header().Index+1, full.Header().BaseSeq+count, time.Now().UnixNano()); err != nil {
		next.Discard()
		return fmt.Errorf("aof2: roll over to segment %d: %w", full.Header().Index+1, err)
	}
	s := &seg{Segment: next, pos: full.pos + end - segment.HeaderSize}
	l.segMu.Lock()
	l.segs = append(l.segs, s)
	l.pending = append(l.pending, s)
	l.segMu.Unlock()
	l.active.Store(s)
	l.events.publish(segmentEvent(EventActivated, s, ""))
	// The full segment is sealed by the next flush.
	l.pipe.Request(flush.ReasonRollover)
	return nil
}

// FlushUntil returns once the record id and every record before it are
// durable, sharing syncs with concurrent callers. It returns the log's
// *FailError if a sync failed for good (never hangs), ErrClosed if
// the log closed before the record became durable, ErrInvalidArgument for
// an id no Append returns (seq 0, segment 0, an offset before the first
// frame or not aligned), ErrNotFound for an id this log did not hand out, a *TruncatedError if retention removed the
// record (it was made durable first) or TruncateBack removed it while it
// waited (Back set), also for a record Reset removed (Back set if it was
// at or past Reset's next), and ctx's error if ctx ends first.
func (l *Log) FlushUntil(ctx context.Context, id RecordID) error {
	epoch := l.pipe.Epoch()
	if err := l.checkID(id); err != nil {
		return err
	}
	l.crash(crashFlushChecked)
	return l.flushUntil(ctx, id.Seq, epoch)
}

// waitDurable waits until seq, taken when the pipeline's epoch was epoch,
// is durable, traced as aof.flush_until when ctx is sampled.
func (l *Log) waitDurable(ctx context.Context, seq, epoch uint64) error {
	ctx, span := l.tel.StartWait(ctx, seq)
	err := l.pipe.WaitDurableSince(ctx, seq, epoch)
	l.tel.WaitDone(span, seq, err)
	return err
}

// checkID reports whether id is one this log handed out.
func (l *Log) checkID(id RecordID) error {
	if id.Seq == 0 || id.Segment == 0 || id.Offset < segment.HeaderSize || id.Offset%segment.Align != 0 || id.Offset >= segment.MaxSize {
		return fmt.Errorf("%w: %+v is no RecordID an Append returns", ErrInvalidArgument, id)
	}
	if id.Seq > 0 && id.Seq < l.front.Load() {
		return l.truncated(id.Seq) // retention removed it (durable first)
	}
	s := l.segmentOf(id.Seq)
	if s == nil || s.Header().Index != id.Segment || id.Offset < segment.HeaderSize {
		return fmt.Errorf("%w: %+v", ErrNotFound, id)
	}
	return nil
}

// segmentOf returns the segment holding seq (appended, maybe not yet
// complete), or nil.
func (l *Log) segmentOf(seq uint64) *seg {
	if s := l.active.Load(); s.Contains(seq) {
		return s
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].Header().BaseSeq > seq })
	if i == 0 || !l.segs[i-1].Contains(seq) {
		return nil
	}
	return l.segs[i-1]
}

// Sync returns once every record appended before the call is durable.
func (l *Log) Sync(ctx context.Context) error {
	for {
		epoch := l.pipe.Epoch()
		next := l.nextSeq()
		if next <= l.pipe.Durable() {
			return nil // nothing appended that is not durable
		}
		err := l.waitDurable(ctx, next-1, epoch)
		if !errors.Is(err, flush.ErrLowered) {
			return err
		}
		// A TruncateBack made everything durable, then removed the
		// last records: look at the new end.
	}
}

// Read returns the record with sequence number seq, appending its payload
// to dst (which may be nil): random access through the segment's sparse
// index (a binary search, then a walk of at most 4 KiB of frames). The
// record's checksum is verified: a corrupt record is an error wrapping
// *CorruptError (errors.Is ErrCorrupt) naming file, segment and offset, and no payload is returned. A
// record being appended concurrently is read once its Append has copied
// it. A record that retention or TruncateBack removed is a
// *TruncatedError; one not appended yet wraps ErrNotFound; seq 0 wraps
// ErrInvalidArgument.
func (l *Log) Read(seq uint64, dst []byte) (Record, error) {
	for {
		gen := l.cuts.Gen()
		rec, err := l.read(seq, dst)
		if err == nil || errors.Is(err, ErrTruncated) || errors.Is(err, ErrClosed) {
			return rec, err
		}
		if l.cuts.Stable(gen) {
			return rec, err
		}
		// A TruncateBack cut under the read: look again once it is done.
		l.cuts.WaitIdle()
	}
}

func (l *Log) read(seq uint64, dst []byte) (Record, error) {
	if l.closed.Load() {
		return Record{}, ErrClosed
	}
	if seq == 0 {
		return Record{}, fmt.Errorf("%w: read seq 0: sequence numbers start at 1", ErrInvalidArgument)
	}
	if seq < l.front.Load() {
		return Record{}, l.truncated(seq)
	}
	s := l.segmentOf(seq)
	if s == nil {
		if seq < l.nextSeq() {
			return Record{}, l.truncated(seq) // removed meanwhile
		}
		return Record{}, fmt.Errorf("%w: seq %d: the log holds [%d, %d)", ErrNotFound, seq, l.front.Load(), l.nextSeq())
	}
	rec, err := s.Read(seq, dst)
	if errors.Is(err, segment.ErrReleased) {
		if l.closed.Load() {
			return Record{}, ErrClosed
		}
		return Record{}, l.truncated(seq)
	}
	if err != nil {
		return Record{}, err
	}
	return record(s, rec), nil
}

// flushTarget is the log as the flush pipeline sees it. It is a separate
// type so that Flush, which only the pipeline may call (under its flush
// lock), is not part of Log's API.
type flushTarget struct{ *Log }

// OldestPending implements flush.Target: the append time of the oldest
// record not yet durable.
func (l flushTarget) OldestPending() (int64, bool) {
	now := time.Now().UnixNano()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for _, s := range l.pending {
		if at, ok := s.PendingSince(now); ok {
			return at, true
		}
	}
	return 0, false
}

// Backlog returns the number of bytes appended but not yet durable.
func (l *Log) Backlog() int64 {
	s := l.active.Load()
	end, _ := s.Reserved()
	return s.pos + end - l.durablePos.Load()
}

// Flush implements flush.Target: it writes and syncs every complete byte
// of the segments not yet sealed, in order, and seals the full ones. The
// pipeline calls it with its flush lock held.
func (l flushTarget) Flush(ctx context.Context, r flush.Reason, m flush.Mode) (durable uint64, flushed bool, err error) {
	l.segMu.RLock()
	l.flushSegs = append(l.flushSegs[:0], l.pending...)
	pending := l.flushSegs
	l.segMu.RUnlock()
	sealed := 0
	durable = l.pipe.Durable()
	if l.Backlog() == 0 && len(pending) <= 1 {
		return durable, false, nil // nothing to write, no segment to seal
	}
	f := l.tel.StartFlush(ctx, r, m)
	var segIndex uint64
	var written, appendedAt int64
	from := durable
	defer func() {
		if sealed > 0 {
			l.segMu.Lock()
			l.pending = l.pending[sealed:]
			l.segMu.Unlock()
			// Retention removes a segment only once it has left
			// pending: look again now.
			l.retainer.kick()
		}
		f.Done(segIndex, written, durable-from, durable, appendedAt, err)
	}()
	// A caller's cancelled context must not abandon a sync half way:
	// that would fail-stop the log.
	if ctx = f.Context(); ctx.Done() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	for _, s := range pending {
		segIndex = s.Header().Index
		closed := s.Closed()
		end, count := s.Advance()
		n, err := s.WriteOut()
		if err != nil {
			return durable, flushed, err
		}
		written += n
		l.metrics.AddFlushedBytes(n)
		if s.Durable() < end {
			if appendedAt == 0 {
				// A segment not sealed is never unmapped: no error.
				appendedAt, _ = s.TimestampAt(s.Durable())
			}
			if err := l.syncSegment(ctx, f, s); err != nil {
				return durable, flushed, err
			}
			// end was taken before the sync began: bytes appended
			// during the sync are not claimed.
			s.MarkDurable(end)
			flushed = true
			l.syncedActive(s, end)
		}
		l.durablePos.Store(s.pos + s.Durable())
		durable = s.Header().BaseSeq + count
		if err := s.Trim(); err != nil {
			return durable, flushed, err
		}
		// Seal a segment once rollover closed it and all of it is
		// durable. The active segment is never sealed: Close closes
		// it to stop appends, and reopening continues it.
		if rend, _ := s.Reserved(); !closed || end != rend || s == l.active.Load() {
			break // durability is a prefix: later segments wait
		}
		if err = l.seal(ctx, f, s); err != nil {
			return durable, flushed, err
		}
		sealed++
	}
	return durable, flushed, nil
}

// syncSegment syncs s, and the segment directory if s's name is not
// durable yet, with the configured retries, for flush f.
func (l flushTarget) syncSegment(ctx context.Context, f *aofotel.Flush, s *seg) error {
	f.Syncing(s.Header().Index, aofotel.SyncData)
	if err := flush.SyncWithRetry(ctx, l.cfg.Retry, &l.metrics, s.Sync, f.SyncAttempt); err != nil {
		return fmt.Errorf("segment %d: %w", s.Header().Index, err)
	}
	if s.NeedsDirSync() {
		f.Syncing(s.Header().Index, aofotel.SyncDirectory)
		if err := flush.SyncWithRetry(ctx, l.cfg.Retry, &l.metrics, func() error { return l.fs.SyncDir(l.segDir) }, f.SyncAttempt); err != nil {
			return err
		}
		s.DirSynced()
	}
	return nil
}

// seal writes s's footer and syncs it, for flush f: s is closed and all
// of it durable.
func (l flushTarget) seal(ctx context.Context, f *aofotel.Flush, s *seg) error {
	start := time.Now()
	l.events.publish(segmentEvent(EventSealing, s, ""))
	err := s.WriteFooter()
	if err == nil {
		f.Syncing(s.Header().Index, aofotel.SyncFooter)
		err = flush.SyncWithRetry(ctx, l.cfg.Retry, &l.metrics, s.Sync, f.SyncAttempt)
	}
	if err == nil {
		err = s.FinishSeal()
	}
	if err == nil {
		err = l.maps.watch(s.Segment)
	}
	f.Sealed(s.Header().Index, start, err)
	if err != nil {
		return fmt.Errorf("segment %d: seal: %w", s.Header().Index, err)
	}
	l.sealedCount.Add(1)
	l.events.publish(segmentEvent(EventSealed, s, ""))
	l.retainer.kick() // and again once it has left pending
	return nil
}

// drainPending returns once every frame reserved in a segment not yet
// sealed is published: the appenders still copying have finished. The
// caller has stopped appends (closed the active segment, holding rotateMu
// or with rotate refusing), so no frame is reserved after it returns.
func (l *Log) drainPending() {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for _, s := range l.pending {
		s.WaitPublished()
	}
}

func (l *Log) releaseSegments() error {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	var err error
	for _, s := range l.segs {
		err = errors.Join(err, s.Release())
	}
	return err
}

// StopFlusher stops the background flusher; from then on bytes become
// durable only on the goroutines of callers that wait for them
// (FlushUntil, Sync, backpressure, Close). StartFlusher starts it again.
func (l *Log) StopFlusher() { l.pipe.Stop() }

// StartFlusher starts the background flusher if it is stopped.
func (l *Log) StartFlusher() {
	l.pipe.Start()
	l.pipe.Request(flush.ReasonExplicit)
}
