package aof

import (
	"time"

	"github.com/aof2/aof2/flush"
)

// Metrics is a snapshot of a log's counters and gauges, with no
// OpenTelemetry needed. Counters count since Open. Flush counts by reason
// and mode are read with Flushes, FlushesByReason and FlushesByMode.
type Metrics struct {
	// flush holds the flush pipeline's counters; the accessors below
	// read its per-reason, per-mode table.
	flush flush.Snapshot

	// FlushedBytes counts bytes written to segment files by flushes.
	FlushedBytes uint64
	// Fsyncs counts sync attempts (fdatasync of a segment, fsync of the
	// directory), retries included.
	Fsyncs uint64
	// FsyncTime is the time spent in sync calls.
	FsyncTime time.Duration
	// RetryAttempts counts syncs retried after a transient error;
	// RetryFailures counts syncs that failed for good.
	RetryAttempts, RetryFailures uint64

	// AppendedRecords and AppendedBytes count records and frame bytes
	// appended (frame bytes include the 32-byte frame header and padding).
	AppendedRecords uint64
	AppendedBytes   int64
	// BacklogBytes is the number of bytes appended but not yet durable.
	BacklogBytes int64
	// DurableBytes counts bytes made durable.
	DurableBytes int64
	// NextSeq is the sequence number the next record will get;
	// DurableSeq is the durable frontier (every record below it is
	// durable).
	NextSeq, DurableSeq uint64
	// Segments is the number of segment files; SealedSegments counts
	// segments sealed and RemovedSegments segment files removed by
	// retention or TruncateBack.
	Segments        int
	SealedSegments  uint64
	RemovedSegments uint64
	// PrewrittenBytes counts bytes of new segment files written with
	// zeros and written back ahead of use; PrewriteFailures counts such
	// prewrites that failed (Config.NoPrewrite).
	PrewrittenBytes  int64
	PrewriteFailures uint64
	// RecycledSegments counts segment files reused from the pool of
	// dropped ones (Config.RecycleSegments) since Open.
	RecycledSegments uint64
	// EarlyRollovers counts rollovers since Open from an active segment
	// whose syncs landed in preallocated blocks to a segment of written
	// blocks, before the active one was full (see Config.NoPrewrite).
	EarlyRollovers uint64
}

// Flushes returns the number of flushes that synced something for reason
// r in mode m. A reason or mode this version does not know counts 0.
func (m Metrics) Flushes(r FlushReason, md FlushMode) uint64 {
	if int(r) >= flush.NumReasons || int(md) >= flush.NumModes {
		return 0
	}
	return m.flush.Flushes[r][md]
}

// FlushesByReason returns the number of flushes for reason r, in any mode.
func (m Metrics) FlushesByReason(r FlushReason) uint64 {
	if int(r) >= flush.NumReasons {
		return 0
	}
	return m.flush.ByReason(r)
}

// FlushesByMode returns the number of flushes in mode md, for any reason.
func (m Metrics) FlushesByMode(md FlushMode) uint64 {
	if int(md) >= flush.NumModes {
		return 0
	}
	return m.flush.ByMode(md)
}

// Metrics returns a snapshot of the log's counters and gauges. A snapshot
// is never taken in the middle of a TruncateBack or Reset: while one runs,
// Metrics (and so an OpenTelemetry collection) waits for it to end, also
// when the cut waits for a stalled disk sync.
func (l *Log) Metrics() Metrics {
	for {
		// A TruncateBack changes the end, the durable position and the
		// cut counters one after the other: take a snapshot no cut ran
		// through, so counters never go backwards and the backlog is
		// never negative.
		gen := l.cuts.WaitIdle()
		if m := l.metricsOnce(); l.cuts.Stable(gen) {
			return m
		}
	}
}

func (l *Log) metricsOnce() Metrics {
	s := l.active.Load()
	end, count := s.Reserved()
	pos := s.pos + end
	durablePos := l.durablePos.Load()
	l.segMu.RLock()
	nsegs := len(l.segs)
	l.segMu.RUnlock()
	next := s.Header().BaseSeq + count
	cutBytes := l.cutBytes.Load()
	fs := l.metrics.Snapshot()
	return Metrics{
		flush:            fs,
		FlushedBytes:     fs.FlushedBytes,
		Fsyncs:           fs.Fsyncs,
		FsyncTime:        time.Duration(fs.FsyncNanos),
		RetryAttempts:    fs.RetryAttempts,
		RetryFailures:    fs.RetryFailures,
		AppendedRecords:  next + l.cutRecords.Load() - l.openSeq,
		AppendedBytes:    pos + cutBytes - l.openPos,
		BacklogBytes:     pos - durablePos,
		DurableBytes:     durablePos + cutBytes - l.report.durablePos,
		NextSeq:          next,
		DurableSeq:       min(l.pipe.Durable(), next), // lowered just after a cut
		Segments:         nsegs,
		SealedSegments:   l.sealedCount.Load(),
		RemovedSegments:  l.removedSegs.Load(),
		PrewrittenBytes:  l.prewritten.Load(),
		PrewriteFailures: l.prewriteFails.Load(),
		RecycledSegments: l.recycledCount(),
		EarlyRollovers:   l.earlyRolls.Load(),
	}
}

// Sample is one named value of a Metrics snapshot.
type Sample struct {
	Name  string
	Value float64
}

// Samples returns the snapshot as named samples, for users without
// OpenTelemetry who scrape or log plain numbers. The names are
// Prometheus-style; the first three differ from the names of the
// OpenTelemetry instruments that carry the same numbers
// (aof.fsync.retries, aof.fsync.failures and aof.backlog.size).
func (m Metrics) Samples() []Sample {
	return []Sample{
		{"aof_flush_retry_attempts_total", float64(m.RetryAttempts)},
		{"aof_flush_retry_failures_total", float64(m.RetryFailures)},
		{"aof_flush_backlog_bytes", float64(m.BacklogBytes)},
		{"aof_flush_fsyncs_total", float64(m.Fsyncs)},
		{"aof_flush_async_total", float64(m.FlushesByMode(ModeAsync))},
		{"aof_flush_sync_total", float64(m.FlushesByMode(ModeSync))},
		{"aof_append_records_total", float64(m.AppendedRecords)},
		{"aof_append_bytes_total", float64(m.AppendedBytes)},
		{"aof_durable_bytes_total", float64(m.DurableBytes)},
		{"aof_segments", float64(m.Segments)},
		{"aof_segments_removed_total", float64(m.RemovedSegments)},
		{"aof_prewrite_size_bytes_total", float64(m.PrewrittenBytes)},
		{"aof_prewrite_failures_total", float64(m.PrewriteFailures)},
		{"aof_segments_recycled_total", float64(m.RecycledSegments)},
		{"aof_segments_early_rollovers_total", float64(m.EarlyRollovers)},
	}
}

// recycledCount returns how many files the pool handed out for reuse.
func (l *Log) recycledCount() uint64 {
	if l.pool == nil {
		return 0
	}
	_, taken := l.pool.stats()
	return taken
}
