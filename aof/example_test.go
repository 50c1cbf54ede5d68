package aof_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/aof2/aof2/aof"
)

// tempDir returns a fresh directory for an example's log; done removes it.
func tempDir() (dir string, done func()) {
	dir, err := os.MkdirTemp("", "aof-example-")
	if err != nil {
		panic(err)
	}
	return dir, func() { os.RemoveAll(dir) }
}

// Open a log, append a record, wait until it is durable, read it back.
func Example() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()

	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()

	id, err := log.Append(ctx, []byte("hello")) // appended: in memory
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := log.FlushUntil(ctx, id); err != nil { // durable: on disk
		var fe *aof.FailError // the disk failed: errors.Is(err, aof.ErrFailed)
		if errors.As(err, &fe) {
			fmt.Println("durable below", fe.Durable)
		}
		return
	}
	rec, err := log.Read(id.Seq, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rec.Seq, string(rec.Payload), rec.ID() == id)
	// Output: 1 hello true
}

// Read sequentially with a Reader, and follow the tail with Follow.
func ExampleLog_Follow() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for _, p := range []string{"a", "b", "c"} {
		if _, err := log.Append(ctx, []byte(p)); err != nil {
			fmt.Println(err)
			return
		}
	}

	r, err := log.NewReader(1, aof.Written) // or aof.Durable
	if err != nil {
		fmt.Println(err)
		return
	}
	var got []string
	for rec, err := range r.All() {
		if err != nil {
			fmt.Println(err) // ErrCorrupt, a *TruncatedError, ErrClosed
			break
		}
		got = append(got, string(rec.Payload)) // zero-copy: valid until the next record
	}
	r.Close()
	fmt.Println(got)

	// Follow blocks for new records until ctx ends.
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	go log.Append(ctx, []byte("d")) // appended while following
	for rec, err := range log.Follow(fctx, 2, aof.Written) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(rec.Seq, string(rec.Payload))
		if rec.Seq == 4 {
			break
		}
	}
	// Output:
	// [a b c]
	// 2 b
	// 3 c
	// 4 d
}

// Read records [lo, hi) in batches of at most about maxBytes of payload,
// as a Raft log store serves entries.
func ExampleLog_ReadRange() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for i := range 10 {
		if _, err := log.Append(ctx, fmt.Appendf(nil, "entry %d", i+1)); err != nil {
			fmt.Println(err)
			return
		}
	}

	lo, hi := uint64(3), uint64(9)
	for lo < hi {
		var batch []string
		for rec, err := range log.ReadRange(lo, hi, 24, aof.CopyPayloads()) {
			if err != nil { // *TruncatedError below the front, ErrNotFound past the end
				fmt.Println(err)
				return
			}
			batch = append(batch, string(rec.Payload))
			lo = rec.Seq + 1
		}
		fmt.Printf("%q\n", batch)
	}
	// Output:
	// ["entry 3" "entry 4" "entry 5"]
	// ["entry 6" "entry 7" "entry 8"]
}

// An index-addressed user (a Raft log store) keeps sequence numbers, not
// RecordIDs: Bounds, FlushUntilSeq and TruncateBack work with them.
func ExampleLog_Bounds() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for i := range 5 {
		if _, err := log.Append(ctx, fmt.Appendf(nil, "entry %d", i+1)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := log.FlushUntilSeq(ctx, 5); err != nil { // entries 1..5 are durable
		fmt.Println(err)
		return
	}
	first, next := log.Bounds() // one consistent read of [first, next)
	fmt.Println("holds", first, "to", next-1)

	if err := log.TruncateBack(ctx, 3); err != nil { // a conflicting leader: drop 4 and 5
		fmt.Println(err)
		return
	}
	if err := log.TruncateFront(ctx, 2); err != nil { // compacted by a snapshot
		fmt.Println(err)
		return
	}
	first, next = log.Bounds()
	fmt.Println("holds", first, "to", next-1)

	_, err = log.Read(1, nil)
	var te *aof.TruncatedError
	fmt.Println(errors.As(err, &te), te.First)
	// Output:
	// holds 1 to 5
	// holds 2 to 3
	// true 2
}

// Metrics is a plain snapshot, no OpenTelemetry needed.
func ExampleLog_Metrics() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{NoBackgroundFlush: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	if _, err := log.Append(ctx, []byte("x")); err != nil {
		fmt.Println(err)
		return
	}
	if err := log.Sync(ctx); err != nil {
		fmt.Println(err)
		return
	}
	m := log.Metrics()
	fmt.Println("appended", m.AppendedRecords, "durable below", m.DurableSeq, "backlog", m.BacklogBytes)
	fmt.Println("explicit flushes on the caller's goroutine:", m.Flushes(aof.ReasonExplicit, aof.ModeSync))
	for _, s := range m.Samples() {
		if s.Name == "aof_append_records_total" {
			fmt.Println(s.Name, s.Value)
		}
	}
	// Output:
	// appended 1 durable below 2 backlog 0
	// explicit flushes on the caller's goroutine: 1
	// aof_append_records_total 1
}

// CloseContext bounds how long Close waits for a stalled disk.
func ExampleLog_CloseContext() {
	dir, done := tempDir()
	defer done()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = log.CloseContext(ctx)
	var ce *aof.CloseError
	if errors.As(err, &ce) {
		// The disk stalled: records [ce.Durable, ce.Next) were not yet
		// durable; the close finishes in the background.
		fmt.Println("not durable:", ce.Durable, ce.Next)
	}
	fmt.Println(err)
	// Output: <nil>
}

// TruncateFront drops the records before a sequence number (a snapshot
// made them redundant); reading one of them is a *TruncatedError.
func ExampleLog_TruncateFront() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for i := range 5 {
		if _, err := log.Append(ctx, fmt.Appendf(nil, "entry %d", i+1)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := log.TruncateFront(ctx, 3); err != nil { // durable before it returns
		fmt.Println(err)
		return
	}
	fmt.Println("first", log.FirstSeq(), "next", log.NextSeq())
	_, err = log.Read(2, nil)
	var te *aof.TruncatedError
	if errors.As(err, &te) {
		fmt.Println("seq 2 removed; continue from", te.First)
	}
	// Output:
	// first 3 next 6
	// seq 2 removed; continue from 3
}

// TruncateBack drops the records after last (Raft: a new leader's entries
// conflict); the next append gets last+1.
func ExampleLog_TruncateBack() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for i := range 5 {
		if _, err := log.Append(ctx, fmt.Appendf(nil, "term 1 entry %d", i+1)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := log.TruncateBack(ctx, 3); err != nil {
		fmt.Println(err)
		return
	}
	id, err := log.Append(ctx, []byte("term 2 entry 4"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for rec, err := range log.ReadRange(1, log.NextSeq(), 0) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(rec.Seq, string(rec.Payload))
	}
	fmt.Println("appended", id.Seq)
	// Output:
	// 1 term 1 entry 1
	// 2 term 1 entry 2
	// 3 term 1 entry 3
	// 4 term 2 entry 4
	// appended 4
}

// Reset drops every record and continues at a given sequence number (Raft:
// a snapshot was installed); next 0 is ErrInvalidArgument.
func ExampleLog_Reset() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	for range 5 {
		if _, err := log.Append(ctx, []byte("old")); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := log.Reset(ctx, 100); err != nil {
		fmt.Println(err)
		return
	}
	first, next := log.Bounds()
	fmt.Println("empty:", first, next)
	id, err := log.Append(ctx, []byte("after the snapshot"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("appended", id.Seq)
	fmt.Println(errors.Is(log.Reset(ctx, 0), aof.ErrInvalidArgument))
	// Output:
	// empty: 100 100
	// appended 100
	// true
}

// RetainBytes and RetainAge remove whole sealed segments, oldest first, on
// a goroutine of the log; a subscriber sees each removal and its reason.
func ExampleConfig_retention() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{
		SegmentSize: 64 << 10,
		RetainBytes: 4 * 64 << 10,       // keep the segment files under 256 KiB
		RetainAge:   7 * 24 * time.Hour, // and nothing older than a week
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	sub := log.Subscribe()
	defer sub.Close()
	payload := make([]byte, 1000)
	for range 500 { // about 500 KiB: more than RetainBytes
		if _, err := log.Append(ctx, payload); err != nil {
			fmt.Println(err)
			return
		}
	}
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		if ev.Kind == aof.EventRemoved {
			fmt.Println(ev.Kind, "segment", ev.Segment, "records from", ev.FirstSeq, "reason", ev.Reason)
			break
		}
	}
	fmt.Println("first record kept:", log.FirstSeq() > 1)
	// Output:
	// removed segment 1 records from 1 reason retain-bytes
	// first record kept: true
}

// Subscribe delivers every segment lifecycle event, in order, without loss;
// Next returns ErrClosed once the log closed and every event was delivered.
func ExampleLog_Subscribe() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	// No background flush: the seal happens in Close, after the rollover,
	// so the order printed below is fixed.
	log, err := aof.Open(dir, aof.Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	sub := log.Subscribe()
	defer sub.Close()
	var last aof.RecordID
	for last.Segment < 2 { // until the first rollover
		if last, err = log.Append(ctx, make([]byte, 1000)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := log.Close(); err != nil { // makes everything durable, seals the full segment
		fmt.Println(err)
		return
	}
	for {
		ev, err := sub.Next(ctx)
		if errors.Is(err, aof.ErrClosed) {
			fmt.Println("closed")
			return
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(ev.Kind, ev.Segment, ev.File)
	}
	// Output:
	// activated 2 00000000000000000002-00000000000000000064.seg
	// sealing 1 00000000000000000001-00000000000000000001.seg
	// sealed 1 00000000000000000001-00000000000000000001.seg
	// closed
}

// Metrics.Samples gives the snapshot as named numbers, for users without
// OpenTelemetry who scrape or log plain values.
func ExampleMetrics_Samples() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	log, err := aof.Open(dir, aof.Config{NoBackgroundFlush: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()
	if _, err := log.Append(ctx, []byte("x")); err != nil {
		fmt.Println(err)
		return
	}
	if err := log.Sync(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range log.Metrics().Samples() {
		fmt.Println(s.Name)
	}
	// Output:
	// aof_flush_retry_attempts_total
	// aof_flush_retry_failures_total
	// aof_flush_backlog_bytes
	// aof_flush_fsyncs_total
	// aof_flush_async_total
	// aof_flush_sync_total
	// aof_append_records_total
	// aof_append_bytes_total
	// aof_durable_bytes_total
	// aof_segments
	// aof_segments_removed_total
	// aof_prewrite_size_bytes_total
	// aof_prewrite_failures_total
	// aof_segments_recycled_total
	// aof_segments_early_rollovers_total
}

// WithTracerProvider, WithMeterProvider and WithName hand the log an
// OpenTelemetry SDK (here an in-process one; by default the global
// providers, no-ops until an SDK is installed) and the aof.log attribute of
// its series. An append is traced when the caller's context carries a
// sampled span.
func ExampleWithTracerProvider() {
	dir, done := tempDir()
	defer done()
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	log, err := aof.Open(dir, aof.Config{NoBackgroundFlush: true},
		aof.WithTracerProvider(tp),
		aof.WithMeterProvider(mp),
		aof.WithName("orders-wal"),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer log.Close()

	sctx, span := tp.Tracer("app").Start(ctx, "handle order")
	id, err := log.Append(sctx, []byte("order 1"))
	if err == nil {
		err = log.FlushUntil(sctx, id)
	}
	span.End()
	if err != nil {
		fmt.Println(err)
		return
	}

	var names []string // the kinds of span the log recorded
	for _, s := range spans.Ended() {
		names = append(names, s.Name())
	}
	slices.Sort(names)
	fmt.Println(slices.Compact(names))
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		fmt.Println(err)
		return
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "aof.append.records" {
				for _, p := range sum.DataPoints {
					name, _ := p.Attributes.Value("aof.log")
					fmt.Println(m.Name, name.AsString(), p.Value)
				}
			}
		}
	}
	// Output:
	// [aof.append aof.flush aof.flush_until aof.fsync aof.recover handle order]
	// aof.append.records orders-wal 1
}
