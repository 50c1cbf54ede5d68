package otel

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/aof2/aof2/flush"
)

// Instrument names. The OpenTelemetry Prometheus exporter turns them into
// the names in the comments (dots become underscores, the unit is added,
// counters get _total).
const (
	MetricAppendRecords     = "aof.append.records"           // aof_append_records_total
	MetricAppendSize        = "aof.append.size"              // aof_append_size_bytes_total
	MetricFlushes           = "aof.flushes"                  // aof_flushes_total{aof_flush_reason,aof_flush_mode}
	MetricFlushDuration     = "aof.flush.duration"           // aof_flush_duration_seconds
	MetricFsyncs            = "aof.fsyncs"                   // aof_fsyncs_total
	MetricFsyncDuration     = "aof.fsync.duration"           // aof_fsync_duration_seconds
	MetricFsyncRetries      = "aof.fsync.retries"            // aof_fsync_retries_total
	MetricFsyncFailures     = "aof.fsync.failures"           // aof_fsync_failures_total
	MetricBacklogSize       = "aof.backlog.size"             // aof_backlog_size_bytes
	MetricDurableSize       = "aof.durable.size"             // aof_durable_size_bytes_total
	MetricDurableLag        = "aof.durable.lag"              // aof_durable_lag_seconds
	MetricSegments          = "aof.segments"                 // aof_segments
	MetricRecoveryDuration  = "aof.recovery.duration"        // aof_recovery_duration_seconds
	MetricRecoveryTruncated = "aof.recovery.truncated.size"  // aof_recovery_truncated_size_bytes_total
	MetricSegmentsRemoved   = "aof.segments.removed"         // aof_segments_removed_total
	MetricPrewriteSize      = "aof.prewrite.size"            // aof_prewrite_size_bytes_total
	MetricPrewriteFailures  = "aof.prewrite.failures"        // aof_prewrite_failures_total
	MetricSegmentsRecycled  = "aof.segments.recycled"        // aof_segments_recycled_total
	MetricEarlyRollovers    = "aof.segments.early_rollovers" // aof_segments_early_rollovers_total
)

// DurationBuckets are the histogram bounds, in seconds, for fsync and flush
// durations and the durable lag: 20 µs (an NVMe flush) to 1 s (a stalled
// disk).
var DurationBuckets = []float64{0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// Values are what the observable instruments report at one collection.
type Values struct {
	Flush                  flush.Snapshot
	AppendedRecords        uint64
	AppendedBytes          int64
	BacklogBytes           int64
	DurableBytes           int64
	Segments               int
	RecoveryTruncatedBytes int64
	RemovedSegments        uint64
	PrewrittenBytes        int64
	PrewriteFailures       uint64
	RecycledSegments       uint64
	EarlyRollovers         uint64
}

// instruments are one log's instruments. The counters are synchronous
// but cost nothing on the append path: at each collection (and at Close)
// they are given what the log counted since the last time, from its
// Metrics snapshot. So a counter series belongs to the MeterProvider, not
// to one Open: it keeps counting across a Close and reopen of the log in
// this process, never goes down, and stays (at its last value) after
// Close, which no observable counter does (each Open would report its own
// since-open values under the instrument's one start time: a reset the
// backend cannot see).
type instruments struct {
	meter metric.Meter

	fsyncDuration    metric.Float64Histogram
	flushDuration    metric.Float64Histogram
	durableLag       metric.Float64Histogram
	recoveryDuration metric.Float64Histogram

	appendRecords, appendSize, flushes, fsyncs, retries, failures, durable, truncated, removed metric.Int64Counter
	prewritten, prewriteFailures, recycled, earlyRolls                                         metric.Int64Counter
	backlog, segments                                                                          metric.Int64ObservableGauge

	// Set by register. last is what the counters were given so far.
	read      func(*Values)
	logSet    metric.MeasurementOption
	flushSets [len(flush.Snapshot{}.Flushes)][len(flush.Snapshot{}.Flushes[0])]metric.MeasurementOption
	mu        sync.Mutex
	last      Values
}

func (in *instruments) create(m metric.Meter) error {
	in.meter = m
	var err error
	hist := func(name, desc string) metric.Float64Histogram {
		if err != nil {
			return nil
		}
		var h metric.Float64Histogram
		h, err = m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(DurationBuckets...))
		return h
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		if err != nil {
			return nil
		}
		var g metric.Int64ObservableGauge
		g, err = m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return g
	}
	in.fsyncDuration = hist(MetricFsyncDuration, "Duration of each fsync/fdatasync attempt.")
	in.flushDuration = hist(MetricFlushDuration, "Duration of each flush (write, sync, seal).")
	in.durableLag = hist(MetricDurableLag, "Time from append to durable of the oldest record each flush made durable.")
	in.recoveryDuration = hist(MetricRecoveryDuration, "Duration of recovery at open.")
	in.appendRecords = counter(MetricAppendRecords, "{record}", "Records appended.")
	in.appendSize = counter(MetricAppendSize, "By", "Bytes appended (frames: payload, 32-byte header, padding).")
	in.flushes = counter(MetricFlushes, "{flush}", "Flushes, by reason and mode.")
	in.fsyncs = counter(MetricFsyncs, "{fsync}", "Sync attempts, retries included.")
	in.retries = counter(MetricFsyncRetries, "{retry}", "Syncs retried after a transient error (EINTR, EAGAIN, EBUSY, ETIMEDOUT).")
	in.failures = counter(MetricFsyncFailures, "{failure}", "Syncs that failed for good; the log fail-stops. Alert on any.")
	in.durable = counter(MetricDurableSize, "By", "Bytes made durable.")
	in.truncated = counter(MetricRecoveryTruncated, "By", "Bytes cut by recovery at open (torn tails, repairs).")
	in.removed = counter(MetricSegmentsRemoved, "{segment}", "Segment files removed by retention (TruncateFront, RetainBytes, RetainAge) or TruncateBack.")
	in.prewritten = counter(MetricPrewriteSize, "By", "Bytes of new segment files prewritten with zeros and written back (unless Config.NoPrewrite).")
	in.prewriteFailures = counter(MetricPrewriteFailures, "{failure}", "Prewrites of a new segment file that failed; the file is replaced by one not prewritten and the log goes on.")
	in.recycled = counter(MetricSegmentsRecycled, "{segment}", "Segment files reused from the pool of dropped ones (Config.RecycleSegments) instead of created.")
	in.earlyRolls = counter(MetricEarlyRollovers, "{rollover}", "Rollovers from an active segment whose syncs landed in preallocated blocks to a segment of written blocks, before it was full.")
	in.backlog = gauge(MetricBacklogSize, "By", "Bytes appended but not yet durable.")
	in.segments = gauge(MetricSegments, "{segment}", "Segment files in the log.")
	return err
}

// register registers one callback that reads the values once per
// collection, gives the counters what they lack and observes the gauges.
func (in *instruments) register(log attribute.KeyValue, read func(*Values)) (metric.Registration, error) {
	in.read = read
	in.logSet = metric.WithAttributeSet(attribute.NewSet(log))
	for r := range in.flushSets {
		for m := range in.flushSets[r] {
			in.flushSets[r][m] = metric.WithAttributeSet(attribute.NewSet(log,
				AttrFlushReason.String(flush.Reason(r).String()), AttrFlushMode.String(flush.Mode(m).String())))
		}
	}
	// Every counter series exists from Open, at 0: a backend sees a
	// failure counter that never moved (an alert on increase() has a
	// series to work on), not a series that appears at the first failure.
	ctx := context.Background()
	for _, c := range []metric.Int64Counter{in.appendRecords, in.appendSize, in.fsyncs, in.retries, in.failures, in.durable, in.truncated, in.removed, in.prewritten, in.prewriteFailures} {
		c.Add(ctx, 0, in.logSet)
	}
	for r := range in.flushSets {
		for m := range in.flushSets[r] {
			in.flushes.Add(ctx, 0, in.flushSets[r][m])
		}
	}
	return in.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		var v Values
		read(&v)
		in.push(ctx, &v)
		o.ObserveInt64(in.backlog, v.BacklogBytes, in.logSet)
		o.ObserveInt64(in.segments, int64(v.Segments), in.logSet)
		return nil
	}, in.backlog, in.segments)
}

// final gives the counters their last values, once the callback is
// unregistered.
func (in *instruments) final() {
	var v Values
	in.read(&v)
	in.push(context.Background(), &v)
}

// push adds to each counter what v counts beyond what it was given.
// Collections by several readers may run at once: each increment is added
// once, and every reader sees it.
func (in *instruments) push(ctx context.Context, v *Values) {
	in.mu.Lock()
	defer in.mu.Unlock()
	last := &in.last
	addDelta(ctx, in.appendRecords, v.AppendedRecords, &last.AppendedRecords, in.logSet)
	addDelta(ctx, in.appendSize, v.AppendedBytes, &last.AppendedBytes, in.logSet)
	for r := range in.flushSets {
		for m := range in.flushSets[r] {
			addDelta(ctx, in.flushes, v.Flush.Flushes[r][m], &last.Flush.Flushes[r][m], in.flushSets[r][m])
		}
	}
	addDelta(ctx, in.fsyncs, v.Flush.Fsyncs, &last.Flush.Fsyncs, in.logSet)
	addDelta(ctx, in.retries, v.Flush.RetryAttempts, &last.Flush.RetryAttempts, in.logSet)
	addDelta(ctx, in.failures, v.Flush.RetryFailures, &last.Flush.RetryFailures, in.logSet)
	addDelta(ctx, in.durable, v.DurableBytes, &last.DurableBytes, in.logSet)
	addDelta(ctx, in.truncated, v.RecoveryTruncatedBytes, &last.RecoveryTruncatedBytes, in.logSet)
	addDelta(ctx, in.removed, v.RemovedSegments, &last.RemovedSegments, in.logSet)
	addDelta(ctx, in.prewritten, v.PrewrittenBytes, &last.PrewrittenBytes, in.logSet)
	addDelta(ctx, in.prewriteFailures, v.PrewriteFailures, &last.PrewriteFailures, in.logSet)
	addDelta(ctx, in.recycled, v.RecycledSegments, &last.RecycledSegments, in.logSet)
	addDelta(ctx, in.earlyRolls, v.EarlyRollovers, &last.EarlyRollovers, in.logSet)
}

// addDelta adds now-*last to c if now is greater, and sets *last to now.
func addDelta[N int64 | uint64](ctx context.Context, c metric.Int64Counter, now N, last *N, opt metric.AddOption) {
	if now > *last {
		c.Add(ctx, int64(now-*last), opt)
		*last = now
	}
}
