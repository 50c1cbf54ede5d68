// Command workload drives aof2 through every behaviour worth seeing in
// Jaeger and Grafana, and exports its traces and metrics with OpenTelemetry
// (package otelsetup: over OTLP/gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is
// set, as JSON lines on stdout otherwise). It is the load generator of the
// examples/collector stack and of its end-to-end test.
//
// It runs these phases, one after the other, each under sampled root spans
// named workload.<phase> so that every aof.flush span links to the
// aof.append spans it made durable:
//
//   - steady: appends at -rate records/s on the log "main" (interval
//     flushes);
//   - burst: batches larger than the flush watermark (watermark and
//     rollover flushes, sealed segments);
//   - flush_until: many goroutines that append and wait in FlushUntil
//     (explicit, sync-mode flushes and aof.flush_until spans);
//   - transient: every third sync of "main" fails with EINTR, so retries
//     (aof.fsync.retry events) show up (with -faults);
//   - backpressure: a log "backpressure" with a small MaxUnflushed and no
//     background flusher, so appenders flush on their own goroutines;
//   - hard_failure: a log "faulty" whose syncs fail with EIO: its flush span
//     ends with status Error and the log fail-stops (with -faults);
//   - crash: a log "crashy" is closed, its DURABLE mark removed and garbage
//     written after its last record, then reopened, so the aof.recover span
//     carries an aof.recover.segment.truncated event (with -faults).
//
// At the end every open log is synced (backlog 0), kept open for one more
// metric export, the providers are shut down and the logs closed.
//
// Usage:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 go run ./examples/collector/workload [-duration 20s] [-rate 1000] [-faults=true] [-dir DIR]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/otel/otelsetup"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs/vfstest"
)

// serviceName is the service.name the workload reports (unless
// OTEL_SERVICE_NAME overrides it).
const serviceName = "aof2-workload"

// metricInterval is how often metrics are exported: short, so a 20 s run
// leaves several points in Prometheus.
const metricInterval = 2 * time.Second

// payloadSize is the size of each record's payload.
const payloadSize = 200

func main() {
	duration := flag.Duration("duration", 20*time.Second, "total run time of the phases")
	rate := flag.Int("rate", 1000, "records per second in the steady phase")
	faults := flag.Bool("faults", true, "inject transient and hard fsync errors and a torn tail")
	dir := flag.String("dir", "", "directory for the logs (default: a new temporary directory, removed at exit)")
	flag.Parse()
	if err := run(*dir, *duration, max(*rate, 1), *faults); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

// workload holds what the phases share.
type workload struct {
	root    string
	rate    int
	tracer  trace.Tracer
	payload []byte
	// export pushes the metrics out now (before a log is closed: a
	// closed log's observable instruments report nothing).
	export func()
}

func run(dir string, duration time.Duration, rate int, faults bool) error {
	// The span queue must hold a burst of spans: the SDK's default (2048)
	// drops spans under this load. The environment still wins.
	setDefaultEnv("OTEL_BSP_MAX_QUEUE_SIZE", "65536")
	setDefaultEnv("OTEL_BSP_SCHEDULE_DELAY", "500")
	ctx := context.Background()
	providers, err := otelsetup.Setup(ctx, otelsetup.Config{ServiceName: serviceName, MetricInterval: metricInterval})
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "aof2-workload-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	w := &workload{
		root:    dir,
		rate:    rate,
		tracer:  otel.Tracer(serviceName),
		payload: bytes.Repeat([]byte("aof2-workload "), payloadSize/14+1)[:payloadSize],
		export: func() {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_ = providers.Meter.ForceFlush(c)
		},
	}
	start := time.Now()
	logs, runErr := w.phases(ctx, duration, faults)

	// Final sync: every open log's backlog returns to 0, and one more
	// export carries that to the backend while the logs are still open.
	for name, l := range logs {
		if err := l.Sync(ctx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("final sync of %s: %w", name, err))
		}
	}
	time.Sleep(metricInterval + time.Second)
	w.export()
	for name, l := range logs {
		m := l.Metrics()
		fmt.Printf("%-13s %-12s backlog %d B, %d records appended, %d segments\n", "final", name, m.BacklogBytes, m.AppendedRecords, m.Segments)
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := providers.Shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("telemetry shutdown: %w", err))
	}
	for name, l := range logs {
		if err := l.Close(); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("close %s: %w", name, err))
		}
	}
	where := "stdout"
	if providers.OTLP {
		where = "OTLP endpoint"
	}
	fmt.Printf("done in %v; telemetry sent to the %s as service %q\n", time.Since(start).Round(time.Millisecond), where, serviceName)
	return runErr
}

// setDefaultEnv sets the environment variable k to v unless it is set.
func setDefaultEnv(k, v string) {
	if _, ok := os.LookupEnv(k); !ok {
		os.Setenv(k, v)
	}
}

// phases runs every phase and returns the logs still open, by name.
func (w *workload) phases(ctx context.Context, d time.Duration, faults bool) (map[string]*aof.Log, error) {
	logs := map[string]*aof.Log{}
	mainFS := vfstest.NewFaultFS(nil)
	main, err := w.open("main", aof.Config{
		SegmentSize:    1 << 20,
		FlushWatermark: 64 << 10,
		FlushInterval:  20 * time.Millisecond,
	}, aof.WithFS(mainFS))
	if err != nil {
		return logs, err
	}
	logs["main"] = main

	part := func(f float64) time.Duration { return time.Duration(float64(d) * f) }
	if err := w.steady(ctx, main, part(0.25)); err != nil {
		return logs, fmt.Errorf("steady: %w", err)
	}
	if err := w.burst(ctx, main, part(0.15)); err != nil {
		return logs, fmt.Errorf("burst: %w", err)
	}
	if err := w.flushUntil(ctx, main, part(0.15), 16); err != nil {
		return logs, fmt.Errorf("flush_until: %w", err)
	}
	if faults {
		if err := w.transient(ctx, main, mainFS, part(0.2)); err != nil {
			return logs, fmt.Errorf("transient: %w", err)
		}
	}
	bp, err := w.backpressure(ctx, part(0.15))
	if bp != nil {
		logs["backpressure"] = bp
	}
	if err != nil {
		return logs, fmt.Errorf("backpressure: %w", err)
	}
	if !faults {
		return logs, nil
	}
	if err := w.hardFailure(ctx); err != nil {
		return logs, fmt.Errorf("hard_failure: %w", err)
	}
	crashy, err := w.crash(ctx)
	if crashy != nil {
		logs["crashy"] = crashy
	}
	if err != nil {
		return logs, fmt.Errorf("crash: %w", err)
	}
	// Keep the main log busy for the rest of the time.
	if rest := d - part(0.9); rest > 0 {
		if err := w.steady(ctx, main, rest); err != nil {
			return logs, fmt.Errorf("steady: %w", err)
		}
	}
	return logs, nil
}

// open opens the log named name under the workload's directory.
func (w *workload) open(name string, cfg aof.Config, opts ...aof.Option) (*aof.Log, error) {
	return aof.Open(filepath.Join(w.root, name), cfg, append([]aof.Option{aof.WithName(name)}, opts...)...)
}

// root starts a sampled root span for one step of a phase.
func (w *workload) rootSpan(ctx context.Context, phase string) (context.Context, trace.Span) {
	return w.tracer.Start(ctx, "workload."+phase, trace.WithNewRoot(),
		trace.WithAttributes(attribute.String("workload.phase", phase)))
}

// summary prints one line about a phase from the log's metrics before and
// after it.
func summary(phase string, took time.Duration, before, after aof.Metrics, extra string) {
	var flushes uint64
	for _, m := range aof.FlushModes() {
		flushes += after.FlushesByMode(m) - before.FlushesByMode(m)
	}
	fmt.Printf("%-13s %6.1fs  %7d records  %9d bytes  %5d flushes  %4d retries  %d failures  backlog %d B%s\n",
		phase, took.Seconds(), after.AppendedRecords-before.AppendedRecords, after.AppendedBytes-before.AppendedBytes,
		flushes, after.RetryAttempts-before.RetryAttempts, after.RetryFailures-before.RetryFailures, after.BacklogBytes, extra)
}

// steady appends at the workload's rate for d, in ticks of 20 ms. The
// first record of each tick is appended under a sampled root span; the
// rest are not traced, as in a service that samples a few requests.
func (w *workload) steady(ctx context.Context, l *aof.Log, d time.Duration) error {
	const tick = 20 * time.Millisecond
	perTick := max(w.rate*int(tick)/int(time.Second), 1)
	before, start := l.Metrics(), time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	for time.Since(start) < d {
		sctx, span := w.rootSpan(ctx, "steady")
		_, err := l.Append(sctx, w.payload)
		span.End()
		if err != nil {
			return err
		}
		for range perTick - 1 {
			if _, err := l.Append(ctx, w.payload); err != nil {
				return err
			}
		}
		<-t.C
	}
	summary("steady", time.Since(start), before, l.Metrics(), "")
	return nil
}

// burst appends batches of 512 KiB (eight times the watermark) with pauses
// in between, so watermark flushes and rollovers happen.
func (w *workload) burst(ctx context.Context, l *aof.Log, d time.Duration) error {
	batch := make([][]byte, (512<<10)/segment.FrameSize(payloadSize))
	for i := range batch {
		batch[i] = w.payload
	}
	before, start := l.Metrics(), time.Now()
	for time.Since(start) < d {
		sctx, span := w.rootSpan(ctx, "burst")
		// A traced single append leads the batch, so the watermark
		// flush it triggers links to an aof.append span.
		_, err := l.Append(sctx, w.payload)
		if err == nil {
			_, err = l.AppendBatch(sctx, batch)
		}
		span.End()
		if err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	summary("burst", time.Since(start), before, l.Metrics(), "")
	return nil
}

// durableWriters runs n goroutines that each append a record under a
// sampled root span named after phase and wait until it is durable, with a
// pause between rounds, for d. It returns how many records became durable.
func (w *workload) durableWriters(ctx context.Context, l *aof.Log, phase string, n int, d, pause time.Duration) (int64, error) {
	start := time.Now()
	var (
		wg    sync.WaitGroup
		waits atomic.Int64
		errs  = make([]error, n)
	)
	for g := range n {
		wg.Go(func() {
			for time.Since(start) < d {
				sctx, span := w.rootSpan(ctx, phase)
				id, err := l.Append(sctx, w.payload)
				if err == nil {
					err = l.FlushUntil(sctx, id)
				}
				span.End()
				if err != nil {
					errs[g] = err
					return
				}
				waits.Add(1)
				time.Sleep(pause)
			}
		})
	}
	wg.Wait()
	return waits.Load(), errors.Join(errs...)
}

// flushUntil runs n goroutines that each append a record and wait until it
// is durable, with a pause between rounds, for d.
func (w *workload) flushUntil(ctx context.Context, l *aof.Log, d time.Duration, n int) error {
	before, start := l.Metrics(), time.Now()
	waits, err := w.durableWriters(ctx, l, "flush_until", n, d, 100*time.Millisecond)
	summary("flush_until", time.Since(start), before, l.Metrics(), fmt.Sprintf(", %d goroutines, %d waits", n, waits))
	return err
}

// transient makes every third sync of l fail with EINTR while a few
// FlushUntil writers run, so retries show up.
func (w *workload) transient(ctx context.Context, l *aof.Log, fs *vfstest.FaultFS, d time.Duration) error {
	var injected atomic.Int64
	fs.SetFault(vfstest.Only(vfstest.OpSync, func(op vfstest.Op) error {
		if op.N%3 == 0 {
			injected.Add(1)
			return unix.EINTR
		}
		return nil
	}))
	defer fs.SetFault(nil)
	before, start := l.Metrics(), time.Now()
	if _, err := w.durableWriters(ctx, l, "transient", 4, d, 50*time.Millisecond); err != nil {
		return err
	}
	summary("transient", time.Since(start), before, l.Metrics(), fmt.Sprintf(", %d EINTR injected", injected.Load()))
	return nil
}

// backpressure opens a log with no background flusher and MaxUnflushed of
// 128 KiB: appenders flush on their own goroutines whenever the backlog
// reaches it. The log stays open (it is returned).
func (w *workload) backpressure(ctx context.Context, d time.Duration) (*aof.Log, error) {
	l, err := w.open("backpressure", aof.Config{
		SegmentSize:       1 << 20,
		FlushWatermark:    128 << 10,
		MaxUnflushed:      128 << 10,
		NoBackgroundFlush: true,
	})
	if err != nil {
		return nil, err
	}
	before, start := l.Metrics(), time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for g := range len(errs) {
		wg.Go(func() {
			for i := 0; time.Since(start) < d; i++ {
				actx := ctx
				var span trace.Span
				if i%64 == 0 {
					actx, span = w.rootSpan(ctx, "backpressure")
				}
				_, err := l.Append(actx, w.payload)
				if span != nil {
					span.End()
				}
				if err != nil {
					errs[g] = err
					return
				}
				if i%50 == 49 {
					time.Sleep(10 * time.Millisecond) // about 20000 records/s in all
				}
			}
		})
	}
	wg.Wait()
	summary("backpressure", time.Since(start), before, l.Metrics(), "")
	return l, errors.Join(errs...)
}

// hardFailure opens the log "faulty", makes its syncs fail with EIO and
// waits for a record: the flush fails, its span ends with status Error, and
// the log fail-stops. The metrics are exported before the log is closed.
func (w *workload) hardFailure(ctx context.Context) error {
	fs := vfstest.NewFaultFS(nil)
	l, err := w.open("faulty", aof.Config{NoBackgroundFlush: true}, aof.WithFS(fs))
	if err != nil {
		return err
	}
	start := time.Now()
	before := l.Metrics()
	for range 10 {
		if _, err := l.Append(ctx, w.payload); err != nil {
			l.Close()
			return err
		}
	}
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))
	sctx, span := w.rootSpan(ctx, "hard_failure")
	id, err := l.Append(sctx, w.payload)
	if err == nil {
		err = l.FlushUntil(sctx, id)
	}
	span.End()
	if err == nil {
		l.Close()
		return errors.New("FlushUntil succeeded despite EIO")
	}
	summary("hard_failure", time.Since(start), before, l.Metrics(), fmt.Sprintf(", FlushUntil: %v", err))
	w.export()
	if cerr := l.Close(); cerr != nil {
		fmt.Printf("%-13s close after the failure: %v\n", "hard_failure", cerr)
	}
	return nil
}

// crash fills the log "crashy", closes it, then simulates a crash with a
// torn tail: the DURABLE mark is removed and garbage written right after
// the last record. Reopening it truncates the tail; the reopened log is
// returned (open).
func (w *workload) crash(ctx context.Context) (*aof.Log, error) {
	start := time.Now()
	l, err := w.open("crashy", aof.Config{SegmentSize: 1 << 20})
	if err != nil {
		return nil, err
	}
	var last aof.RecordID
	for i := range 200 {
		if last, err = l.Append(ctx, w.payload); err != nil {
			l.Close()
			return nil, err
		}
		if i == 100 {
			if err := l.Sync(ctx); err != nil {
				l.Close()
				return nil, err
			}
		}
	}
	w.export()
	if err := l.Close(); err != nil {
		return nil, err
	}
	dir := filepath.Join(w.root, "crashy")
	if err := os.Remove(filepath.Join(dir, "DURABLE")); err != nil {
		return nil, err
	}
	segs, err := filepath.Glob(filepath.Join(dir, "segments", fmt.Sprintf("%020d-*.seg", last.Segment)))
	if err != nil || len(segs) != 1 {
		return nil, fmt.Errorf("tail segment %d: %v %v", last.Segment, segs, err)
	}
	garbage := bytes.Repeat([]byte{0xa5}, 100)
	if err := writeAt(segs[0], last.Offset+segment.FrameSize(payloadSize), garbage); err != nil {
		return nil, err
	}
	l, err = w.open("crashy", aof.Config{SegmentSize: 1 << 20})
	if err != nil {
		return nil, err
	}
	rep := l.Recovery()
	fmt.Printf("%-13s %6.1fs  reopened: next seq %d, %d truncation(s), %d bytes cut, recovery %v\n",
		"crash", time.Since(start).Seconds(), rep.NextSeq, len(rep.Truncations), rep.TruncatedBytes, rep.Duration)
	if len(rep.Truncations) == 0 {
		return l, errors.New("recovery found no torn tail")
	}
	return l, nil
}

// writeAt writes b at offset off of the file at path.
func writeAt(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
