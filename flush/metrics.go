package flush

import "sync/atomic"

// Reason says what made a flush happen.
type Reason uint8

// Flush reasons, in increasing priority: a flush asked for by several is
// counted under the highest.
const (
	// ReasonInterval: the flush interval passed with bytes not durable.
	ReasonInterval Reason = iota
	// ReasonWatermark: the bytes not durable reached the watermark.
	ReasonWatermark
	// ReasonRollover: a segment filled up; its tail is flushed and it is
	// sealed.
	ReasonRollover
	// ReasonRecovery: recovery found bytes to make durable again.
	ReasonRecovery
	// ReasonBackpressure: the bytes not durable reached the maximum and
	// an appender flushed on its own goroutine.
	ReasonBackpressure
	// ReasonExplicit: a caller waits in FlushUntil, Sync or Close.
	ReasonExplicit
	numReasons
)

// String returns the reason's name as used in metrics and traces.
func (r Reason) String() string {
	switch r {
	case ReasonInterval:
		return "interval"
	case ReasonWatermark:
		return "watermark"
	case ReasonRollover:
		return "rollover"
	case ReasonRecovery:
		return "recovery"
	case ReasonBackpressure:
		return "backpressure"
	case ReasonExplicit:
		return "explicit"
	}
	return "unknown"
}

// Mode says which goroutine ran a flush.
type Mode uint8

const (
	// ModeAsync: the background flusher.
	ModeAsync Mode = iota
	// ModeSync: a caller's goroutine: a FlushUntil or Sync waiter that
	// found no flush in flight and led one, an appender under
	// backpressure, or any waiter while the flusher is stopped.
	ModeSync
	numModes
)

// NumReasons and NumModes count the reasons and modes, for tables indexed
// by them.
const (
	NumReasons = int(numReasons)
	NumModes   = int(numModes)
)

// String returns the mode's name as used in metrics and traces.
func (m Mode) String() string {
	if m == ModeSync {
		return "sync"
	}
	return "async"
}

// Metrics are the pipeline's counters. They only grow; all fields are
// atomic, so a Snapshot may be taken at any time.
type Metrics struct {
	flushes       [numReasons][numModes]atomic.Uint64
	flushedBytes  atomic.Uint64
	fsyncs        atomic.Uint64
	fsyncNanos    atomic.Int64
	retryAttempts atomic.Uint64
	retryFailures atomic.Uint64
}

// Snapshot is a copy of the counters at one moment.
type Snapshot struct {
	// Flushes counts flushes by reason and mode.
	Flushes [numReasons][numModes]uint64
	// FlushedBytes counts bytes written to segment files by flushes.
	FlushedBytes uint64
	// Fsyncs counts sync attempts, retries included.
	Fsyncs uint64
	// FsyncNanos is the time spent in sync calls.
	FsyncNanos int64
	// RetryAttempts counts syncs retried after a transient error.
	RetryAttempts uint64
	// RetryFailures counts syncs that failed for good.
	RetryFailures uint64
}

// ByReason returns the number of flushes for reason r in any mode.
func (s Snapshot) ByReason(r Reason) uint64 {
	var n uint64
	for _, c := range s.Flushes[r] {
		n += c
	}
	return n
}

// ByMode returns the number of flushes in mode m for any reason.
func (s Snapshot) ByMode(m Mode) uint64 {
	var n uint64
	for r := range s.Flushes {
		n += s.Flushes[r][m]
	}
	return n
}

// Snapshot copies the counters.
func (m *Metrics) Snapshot() Snapshot {
	var s Snapshot
	for r := range m.flushes {
		for md := range m.flushes[r] {
			s.Flushes[r][md] = m.flushes[r][md].Load()
		}
	}
	s.FlushedBytes = m.flushedBytes.Load()
	s.Fsyncs = m.fsyncs.Load()
	s.FsyncNanos = m.fsyncNanos.Load()
	s.RetryAttempts = m.retryAttempts.Load()
	s.RetryFailures = m.retryFailures.Load()
	return s
}

// AddFlushedBytes counts n bytes written by a flush.
func (m *Metrics) AddFlushedBytes(n int64) { m.flushedBytes.Add(uint64(n)) }
