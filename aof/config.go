package aof

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// RecoveryMode says what Open does with corruption in the middle of the log.
type RecoveryMode uint8

const (
	// RecoverStrict makes Open fail on corruption with a *CorruptError
	// (errors.Is ErrCorrupt) naming the file, segment and offset; an Open
	// that fails leaves the directory as it found it (LOCK aside). A torn
	// tail (bad bytes that nothing shows were durable) is not corruption:
	// a strict Open that succeeds zeroes it and reports it in the
	// RecoveryReport. The default.
	RecoverStrict RecoveryMode = iota
	// RecoverRepair cuts the log at the corrupt record: the bad bytes and
	// everything after them (later segments included) are moved or copied
	// into the log's "repair" directory, and the log continues from the
	// last good record. The RecoveryReport lists what was cut.
	RecoverRepair
)

// Config configures a log. A zero field takes the default shown; a value
// that makes no sense is an error from Open, never silently changed.
type Config struct {
	// SegmentSize is the size of each segment file, a power of two in
	// [64 KiB, 4 GiB]. Default 64 MiB. Existing segments keep the size
	// they were created with.
	SegmentSize int64
	// FlushWatermark starts a flush as soon as this many bytes are not
	// durable. Default 1 MiB.
	FlushWatermark int64
	// FlushInterval bounds how long an appended byte waits before a
	// flush starts, also when the log goes idle. Default 5 ms.
	FlushInterval time.Duration
	// MaxUnflushed is the backpressure limit: an Append that finds this
	// many bytes not durable flushes on its own goroutine before it
	// appends, so the backlog stays below it plus the records being
	// appended at that moment. Default 64 MiB; at least FlushWatermark.
	MaxUnflushed int64
	// Retry is the retry policy for syncs that fail with a transient
	// error. Default DefaultRetryPolicy(); a policy given here is
	// used as it is (all four fields), and must pass its Validate.
	Retry RetryPolicy
	// Recovery chooses strict or repair handling of corruption in the
	// middle of the log. Default RecoverStrict.
	Recovery RecoveryMode
	// NoBackgroundFlush runs no flusher goroutine: bytes become durable
	// only when a caller asks (FlushUntil, Sync, backpressure, Close),
	// on that caller's goroutine.
	NoBackgroundFlush bool
	// RetainBytes, if positive, is automatic retention by size: whole
	// sealed segments are removed, oldest first, while the segment files
	// take more than this many bytes. The active segment is never
	// removed, so the log can hold up to one segment more than this.
	RetainBytes int64
	// RetainAge, if positive, is automatic retention by age: a sealed
	// segment whose newest record is older than this is removed (with
	// every segment before it). Checked when a segment is sealed and
	// every RetainAge/4 (at least each second, at most each minute).
	RetainAge time.Duration
	// RecycleSegments bounds how many files of segments that retention
	// (RetainBytes, RetainAge, TruncateFront) drops are kept, renamed,
	// to be reused as new segments instead of deleted: a sync into blocks
	// a file already wrote journals no extent conversion, so durable
	// appends of 4 KiB and more cost 1.5-1.9x less sync time on ext4 than
	// in a fresh preallocated file. Each kept file takes SegmentSize of
	// disk beyond what retention keeps. Default 1
	// (DefaultRecycleSegments): in the steady state of retention one
	// segment is dropped per segment filled, and the next one reuses it,
	// so one file is enough and costs one segment of disk. Negative:
	// none, every dropped file is deleted. A log without retention drops
	// nothing; the one file it may keep is its next segment when Close
	// finds it prepared and prewritten to the end (see NoPrewrite), to be
	// used after the next Open.
	RecycleSegments int
	// MappedSegments bounds how many sealed segments the log keeps
	// mapped beyond those a Reader holds: the others are mapped when
	// read and unmapped again, least recently used first. Each open log
	// also maps its unsealed segments (two or three mappings each), so a
	// process that opens many logs and reads their history keeps
	// logs x (MappedSegments + 3) within the kernel's vm.max_map_count
	// (65,530 by default) by lowering it. Default 64
	// (DefaultMappedSegments); negative is ErrInvalidConfig.
	MappedSegments int
	// FileMode is the permission bits of the files the log creates
	// (segments, the DURABLE, FRONT and CUT marks, LOCK, and copies kept
	// in the repair directory); DirMode those of the directories it
	// creates (the log's directory and missing parents, segments,
	// repair). Default 0600 and 0700: a log often holds secrets. Widen
	// them to share the log with a group, e.g. 0640 and 0750. The
	// process's umask applies on top; files and directories that exist
	// already keep their modes. FileMode must include 0600 and DirMode
	// 0700 (the log reads and writes its own files), and neither may
	// have bits beyond 0777.
	FileMode fs.FileMode
	DirMode  fs.FileMode
	// NoPrewrite turns off prewritten segments. By default the preparer,
	// which creates and preallocates the next segment file once the
	// active one is half full, then writes zeros over all of it in the
	// background, a chunk at a time (1 MiB, each written back to the
	// device before the next, one sync at the end), from an OS thread in the idle I/O scheduling class, so that
	// the segment's blocks are written ones before it takes records. A
	// preallocated block is "unwritten" until its first write, and on
	// ext4 or XFS the first sync after a write into it also commits that
	// extent change through the file system's journal; a prewritten block
	// needs no metadata, so a durable append's fdatasync is cheaper
	// (measured on an ext4 virtio disk: 0.63-0.68x the p50 latency of
	// a durable 4 KiB or 64 KiB append). The price is device
	// bandwidth: a segment is written twice, once with zeros. The idle
	// class yields to every other I/O, so when appends keep the device
	// busy the prewrite mostly does not happen and costs little; on a
	// device saturated by other processes it may wait long (which a
	// rollover then waits for, see below). A rollover that finds the
	// prewrite unfinished waits for its current chunk only and takes the
	// segment partly prewritten (the first blocks are). The first
	// segment of a new log, created by Open (which must stay fast), is
	// never prewritten, nor is the part of a segment that recovery
	// reopens past its records known to be written; so once such a
	// segment has taken 64 syncs of records past its written blocks,
	// holds 1/16 of SegmentSize and has a quarter left, the preparer
	// makes and prewrites the next segment at once, and when that is
	// done the log rolls over to it early (Metrics.EarlyRollovers); the
	// segment left keeps its unused preallocated room until retention or
	// a truncation drops it. Close keeps a next segment prewritten to the
	// end in the pool (RecycleSegments) for the next Open. A failed
	// prewrite is counted (Metrics.PrewriteFailures, an aof.prewrite span
	// with the error) and the file replaced by one not prewritten; the
	// log keeps working. Set NoPrewrite for a log that writes much more
	// than it syncs on a device whose bandwidth or wear matters more
	// than its sync latency.
	NoPrewrite bool
}

// Default values of Config.
const (
	DefaultSegmentSize    = 64 << 20
	DefaultFlushWatermark = 1 << 20
	DefaultFlushInterval  = 5 * time.Millisecond
	DefaultMaxUnflushed   = 64 << 20
	DefaultFileMode       = fs.FileMode(0o600)
	DefaultDirMode        = fs.FileMode(0o700)
	// DefaultRecycleSegments is the default of Config.RecycleSegments.
	DefaultRecycleSegments = 1
)

// withDefaults returns c with zero fields set to their defaults, or an
// error naming the first field that is wrong.
func (c Config) withDefaults() (Config, error) {
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.FlushWatermark == 0 {
		c.FlushWatermark = DefaultFlushWatermark
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxUnflushed == 0 {
		c.MaxUnflushed = max(DefaultMaxUnflushed, c.FlushWatermark)
	}
	if c.Retry == (RetryPolicy{}) {
		c.Retry = DefaultRetryPolicy()
	}
	if c.FileMode == 0 {
		c.FileMode = DefaultFileMode
	}
	if c.DirMode == 0 {
		c.DirMode = DefaultDirMode
	}
	if c.RecycleSegments == 0 {
		c.RecycleSegments = DefaultRecycleSegments
	}
	if c.MappedSegments == 0 {
		c.MappedSegments = DefaultMappedSegments
	}
	var errs []error
	if err := segment.CheckSize(c.SegmentSize); err != nil {
		errs = append(errs, fmt.Errorf("SegmentSize: %w", err))
	}
	if c.FlushWatermark < 0 {
		errs = append(errs, fmt.Errorf("FlushWatermark %d: must be positive", c.FlushWatermark))
	}
	if c.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("FlushInterval %v: must be positive", c.FlushInterval))
	}
	if c.MaxUnflushed < c.FlushWatermark {
		errs = append(errs, fmt.Errorf("MaxUnflushed %d: must be at least FlushWatermark (%d)", c.MaxUnflushed, c.FlushWatermark))
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("retry policy: %w", err))
	}
	if c.RetainBytes < 0 {
		errs = append(errs, fmt.Errorf("RetainBytes %d: must be positive, or 0 for no limit", c.RetainBytes))
	}
	if c.MappedSegments < 0 {
		errs = append(errs, fmt.Errorf("MappedSegments %d: must be positive, or 0 for the default", c.MappedSegments))
	}
	if c.RetainAge < 0 {
		errs = append(errs, fmt.Errorf("RetainAge %v: must be positive, or 0 for no limit", c.RetainAge))
	}
	if c.FileMode&^fs.ModePerm != 0 || c.FileMode&0o600 != 0o600 {
		errs = append(errs, fmt.Errorf("FileMode %#o: must include 0600 and have no bits beyond 0777", uint32(c.FileMode)))
	}
	if c.DirMode&^fs.ModePerm != 0 || c.DirMode&0o700 != 0o700 {
		errs = append(errs, fmt.Errorf("DirMode %#o: must include 0700 and have no bits beyond 0777", uint32(c.DirMode)))
	}
	if c.Recovery > RecoverRepair {
		errs = append(errs, fmt.Errorf("recovery mode %d: unknown (RecoverStrict or RecoverRepair)", c.Recovery))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return c, nil
}

// Option sets something on a log that is not configuration proper.
type Option func(*options)

type options struct {
	fs   vfs.FS
	tp   trace.TracerProvider
	mp   metric.MeterProvider
	name string
	// crashPoint, set by tests only, is called at named points inside
	// multi-step disk changes (TruncateFront, TruncateBack) so a child
	// process can be killed exactly there.
	crashPoint func(point string)
	// prewriteChunk, set by tests only, replaces defaultPrewriteChunk;
	// prewriteHook runs before each prewrite chunk with its offset.
	prewriteChunk int
	prewriteHook  func(off int64)
	// prewriteBusy, set by benchmarks only, leaves the preparer in the
	// default I/O class.
	prewriteBusy bool
	// prewritePaused, set by tests only, is told of every pause of a
	// prewrite.
	prewritePaused func(d time.Duration)
	// earlySyncs, set by tests only, replaces earlySyncs (early.go).
	earlySyncs int64
}

// WithTracerProvider sets where the log's spans go. Without it the global
// provider is used (a no-op until the application installs an SDK).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp = tp }
}

// WithMeterProvider sets where the log's instruments go. Without it the
// global provider is used (a no-op until the application installs an SDK).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.mp = mp }
}

// WithName sets the value of the aof.log attribute on the log's spans and
// metrics, to tell several logs of one process apart. Default: the
// absolute path of the log's directory. Give each log open at the same
// time its own name: logs sharing one add up in the same counter series.
func WithName(name string) Option {
	return func(o *options) { o.name = name }
}

// WithFS makes the log use fs for every file operation instead of the
// operating system's. Tests pass a FaultFS or PowerFS of package
// github.com/aof2/aof2/vfs/vfstest to inject failures or model power loss.
func WithFS(fs vfs.FS) Option {
	return func(o *options) { o.fs = fs }
}
