package otel

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/aof2/aof2/flush"
)

// Instrument names. The OpenTelemetry Prometheus exporter turns them into
// the names in the comments (dots become underscores, the unit is added,
// counters get _total).
const (
	MetricAppendRecords     = "aof.append.records"          // aof_append_records_total
	MetricAppendSize        = "aof.append.size"             // aof_append_size_bytes_total
	MetricFlushes           = "aof.flushes"                 // aof_flushes_total{aof_flush_reason,aof_flush_mode}
	MetricFlushDuration     = "aof.flush.duration"          // aof_flush_duration_seconds
	MetricFsyncs            = "aof.fsyncs"                  // aof_fsyncs_total
	MetricFsyncDuration     = "aof.fsync.duration"          // aof_fsync_duration_seconds
	MetricFsyncRetries      = "aof.fsync.retries"           // aof_fsync_retries_total
	MetricFsyncFailures     = "aof.fsync.failures"          // aof_fsync_failures_total
	MetricBacklogSize       = "aof.backlog.size"            // aof_backlog_size_bytes
	MetricDurableSize       = "aof.durable.size"            // aof_durable_size_bytes_total
	MetricDurableLag        = "aof.durable.lag"             // aof_durable_lag_seconds
	MetricSegments          = "aof.segments"                // aof_segments
	MetricRecoveryDuration  = "aof.recovery.duration"       // aof_recovery_duration_seconds
	MetricRecoveryTruncated = "aof.recovery.truncated.size" // aof_recovery_truncated_size_bytes_total
	MetricSegmentsRemoved   = "aof.segments.removed"        // aof_segments_removed_total
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
}

type instruments struct {
	meter metric.Meter

	fsyncDuration    metric.Float64Histogram
	flushDuration    metric.Float64Histogram
	durableLag       metric.Float64Histogram
	recoveryDuration metric.Float64Histogram

	appendRecords, appendSize, flushes, fsyncs, retries, failures, durable, truncated, removed metric.Int64ObservableCounter
	backlog, segments                                                                          metric.Int64ObservableGauge
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
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		if err != nil {
			return nil
		}
		var c metric.Int64ObservableCounter
		c, err = m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
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
	in.appendRecords = counter(MetricAppendRecords, "{record}", "Records appended since open.")
	in.appendSize = counter(MetricAppendSize, "By", "Bytes appended since open (frames: payload, 32-byte header, padding).")
	in.flushes = counter(MetricFlushes, "{flush}", "Flushes, by reason and mode.")
	in.fsyncs = counter(MetricFsyncs, "{fsync}", "Sync attempts, retries included.")
	in.retries = counter(MetricFsyncRetries, "{retry}", "Syncs retried after a transient error (EINTR, EAGAIN, EBUSY, ETIMEDOUT).")
	in.failures = counter(MetricFsyncFailures, "{failure}", "Syncs that failed for good; the log fail-stops. Alert on any.")
	in.durable = counter(MetricDurableSize, "By", "Bytes made durable since open.")
	in.truncated = counter(MetricRecoveryTruncated, "By", "Bytes cut by recovery at open (torn tails, repairs).")
	in.removed = counter(MetricSegmentsRemoved, "{segment}", "Segment files removed by retention (TruncateFront, RetainBytes, RetainAge) or TruncateBack since open.")
	in.backlog = gauge(MetricBacklogSize, "By", "Bytes appended but not yet durable.")
	in.segments = gauge(MetricSegments, "{segment}", "Segment files in the log.")
	return err
}

// register registers one callback that reads the values once per
// collection and observes every observable instrument.
func (in *instruments) register(log attribute.KeyValue, read func(*Values)) (metric.Registration, error) {
	logSet := metric.WithAttributeSet(attribute.NewSet(log))
	var flushSets [len(flush.Snapshot{}.Flushes)][len(flush.Snapshot{}.Flushes[0])]metric.ObserveOption
	for r := range flushSets {
		for m := range flushSets[r] {
			flushSets[r][m] = metric.WithAttributeSet(attribute.NewSet(log,
				AttrFlushReason.String(flush.Reason(r).String()), AttrFlushMode.String(flush.Mode(m).String())))
		}
	}
	return in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		var v Values
		read(&v)
		o.ObserveInt64(in.appendRecords, int64(v.AppendedRecords), logSet)
		o.ObserveInt64(in.appendSize, v.AppendedBytes, logSet)
		for r := range flushSets {
			for m := range flushSets[r] {
				o.ObserveInt64(in.flushes, int64(v.Flush.Flushes[r][m]), flushSets[r][m])
			}
		}
		o.ObserveInt64(in.fsyncs, int64(v.Flush.Fsyncs), logSet)
		o.ObserveInt64(in.retries, int64(v.Flush.RetryAttempts), logSet)
		o.ObserveInt64(in.failures, int64(v.Flush.RetryFailures), logSet)
		o.ObserveInt64(in.durable, v.DurableBytes, logSet)
		o.ObserveInt64(in.truncated, v.RecoveryTruncatedBytes, logSet)
		o.ObserveInt64(in.backlog, v.BacklogBytes, logSet)
		o.ObserveInt64(in.segments, int64(v.Segments), logSet)
		o.ObserveInt64(in.removed, int64(v.RemovedSegments), logSet)
		return nil
	}, in.appendRecords, in.appendSize, in.flushes, in.fsyncs, in.retries, in.failures, in.durable, in.truncated, in.backlog, in.segments, in.removed)
}
