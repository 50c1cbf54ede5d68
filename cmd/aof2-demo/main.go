// Command aof2-demo shows aof2 at work. It appends records to a log from
// several goroutines, makes them durable and prints the log's metrics.
// Then it crashes on purpose: it starts itself again as a child process
// that appends to the same log and reports every record FlushUntil made
// durable, kills that child with SIGKILL, reopens the log, prints what
// recovery found and checks that every acknowledged record survived. It
// exits with status 1 if one did not.
//
// Telemetry: the demo installs an OpenTelemetry SDK (package otelsetup).
// With OTEL_EXPORTER_OTLP_ENDPOINT set (say http://127.0.0.1:4317) traces
// and metrics go there over OTLP/gRPC; otherwise they are printed to stdout
// as JSON lines after the report. One append in 250 runs under a sampled
// span, so its aof.append span and the aof.flush span linked to it appear.
//
// Usage:
//
//	go run ./cmd/aof2-demo [-dir DIR] [-n RECORDS] [-writers N] [-kill DURATION] [-telemetry=false]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/otel/otelsetup"
)

// childEnv holds the log directory in the child process.
const childEnv = "AOF2_DEMO_CHILD"

// config returns the log configuration of both processes: small segments,
// so the demo rolls over and seals a few.
func config() aof.Config { return aof.Config{SegmentSize: 1 << 20} }

func main() {
	if dir := os.Getenv(childEnv); dir != "" {
		child(dir)
		return
	}
	dir := flag.String("dir", "", "log directory (default: a new temporary directory, removed at exit)")
	n := flag.Int("n", 10000, "records to append before the crash")
	writers := flag.Int("writers", 4, "appending goroutines")
	kill := flag.Duration("kill", 200*time.Millisecond, "how long the child appends before it is killed")
	telemetry := flag.Bool("telemetry", true, "export traces and metrics (OTLP if OTEL_EXPORTER_OTLP_ENDPOINT is set, else stdout)")
	flag.Parse()
	var providers *otelsetup.Providers
	if *telemetry {
		var err error
		if providers, err = otelsetup.Setup(context.Background(), otelsetup.Config{ServiceName: "aof2-demo"}); err != nil {
			fmt.Fprintln(os.Stderr, "aof2-demo:", err)
			os.Exit(1)
		}
	}
	// Export the metrics while the log is still open: a closed log's
	// observable instruments report nothing.
	flushTelemetry := func() {
		if providers != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			providers.Meter.ForceFlush(ctx)
		}
	}
	err := run(*dir, *n, max(*writers, 1), *kill, flushTelemetry)
	if providers != nil {
		where := "stdout, as JSON lines below"
		if providers.OTLP {
			where = "the OTLP endpoint"
		}
		fmt.Printf("telemetry:  traces and metrics exported to %s\n", where)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if serr := providers.Shutdown(ctx); serr != nil {
			fmt.Fprintln(os.Stderr, "aof2-demo: telemetry:", serr)
		}
		cancel()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "aof2-demo:", err)
		os.Exit(1)
	}
}

func run(dir string, n, writers int, kill time.Duration, flushTelemetry func()) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "aof2-demo-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	fmt.Printf("log:        %s\n", dir)

	// Phase 1: append from several goroutines, then make it all durable.
	sums, err := appendAll(dir, n, writers)
	if err != nil {
		return err
	}

	// Phase 2: a child appends and acknowledges; kill -9 it.
	acks, err := crash(dir, kill)
	if err != nil {
		return err
	}
	fmt.Printf("crash:      child killed with SIGKILL after %v, %d records acknowledged\n", kill, len(acks))
	for seq, sum := range acks {
		sums[seq] = sum
	}

	// Phase 3: recover and check.
	l, err := aof.Open(dir, config())
	if err != nil {
		return fmt.Errorf("reopen after crash: %w", err)
	}
	defer l.Close()
	defer flushTelemetry()
	rep := l.Recovery()
	printRecovery(rep)
	return verify(l, rep, sums)
}

// appendAll appends n records to a log in dir from writers goroutines,
// makes them durable, prints the log's metrics, closes it, and returns
// what it appended: seq -> xxhash64 of the payload.
func appendAll(dir string, n, writers int) (map[uint64]uint64, error) {
	ctx := context.Background()
	tracer := otel.Tracer("github.com/aof2/aof2/cmd/aof2-demo")
	l, err := aof.Open(dir, config())
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	sums := make(map[uint64]uint64, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for g := range writers {
		wg.Go(func() {
			for i := g; i < n; i += writers {
				p := fmt.Appendf(nil, "record %d from writer %d %s", i, g, strings.Repeat("~", i%200))
				actx, span := ctx, trace.Span(nil)
				if i%250 == g {
					// A sampled request: its append gets a span,
					// linked from the flush that makes it durable.
					actx, span = tracer.Start(ctx, "demo.request")
				}
				id, err := l.Append(actx, p)
				if err == nil && i%1000 == g {
					err = l.FlushUntil(actx, id) // a durable checkpoint now and then
				}
				if span != nil {
					span.End()
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				sums[id.Seq] = xxhash.Sum64(p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		l.Close()
		return nil, fmt.Errorf("append: %w", err)
	}
	if err := l.Sync(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("sync: %w", err)
	}
	m := l.Metrics()
	fmt.Printf("appended:   %d records, %d bytes by %d goroutines in %v\n", m.AppendedRecords, m.AppendedBytes, writers, time.Since(start).Round(time.Millisecond))
	printMetrics(m)
	if err := l.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return sums, nil
}

// printMetrics prints the durable frontier, the fsyncs and the flushes.
func printMetrics(m aof.Metrics) {
	fmt.Printf("durable:    seq < %d, backlog %d bytes, %d segments (%d sealed)\n", m.DurableSeq, m.BacklogBytes, m.Segments, m.SealedSegments)
	fmt.Printf("fsyncs:     %d, %v in total, %d retries\n", m.Fsyncs, m.FsyncTime.Round(time.Microsecond), m.RetryAttempts)
	var reasons []string
	for _, r := range aof.FlushReasons() {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, m.FlushesByReason(r)))
	}
	fmt.Printf("flushes:    %s (async=%d sync=%d)\n", strings.Join(reasons, " "), m.FlushesByMode(aof.ModeAsync), m.FlushesByMode(aof.ModeSync))
}

// printRecovery prints what the reopen after the crash found and did.
func printRecovery(rep aof.RecoveryReport) {
	fmt.Printf("recovery:   %d segments (%d trusted, %d scanned), records %d..%d, in %v\n", rep.Segments, rep.Trusted, rep.Scanned, rep.FirstSeq, rep.NextSeq-1, rep.Duration.Round(time.Microsecond))
	fmt.Printf("recovered:  %d truncations (%d bytes), %d files removed, backlog %d bytes\n", len(rep.Truncations), rep.TruncatedBytes, len(rep.Removed), rep.BacklogBytes)
	for _, t := range rep.Truncations {
		fmt.Printf("  cut:      %s at offset %d, %d bytes: %s\n", t.File, t.Offset, t.Bytes, t.Reason)
	}
}

// verify reads back every acknowledged record of sums (seq -> xxhash64 of
// the payload) and every record the log holds (each Read verifies the
// checksum), prints what it saw, and fails if anything acknowledged was
// lost or anything read was corrupt.
func verify(l *aof.Log, rep aof.RecoveryReport, sums map[uint64]uint64) error {
	var lost, bad int
	for seq, sum := range sums {
		rec, err := l.Read(seq, nil)
		switch {
		case err != nil:
			if lost++; lost <= 10 {
				fmt.Printf("  LOST:     seq %d: %v\n", seq, err)
			}
		case xxhash.Sum64(rec.Payload) != sum:
			if bad++; bad <= 10 {
				fmt.Printf("  CORRUPT:  seq %d: payload differs from the one acknowledged\n", seq)
			}
		}
	}
	var total int64
	for seq := rep.FirstSeq; seq < rep.NextSeq; seq++ {
		rec, err := l.Read(seq, nil)
		if err != nil {
			bad++
			fmt.Printf("  UNREADABLE: seq %d: %v\n", seq, err)
			continue
		}
		total += int64(len(rec.Payload))
		if seq == rep.FirstSeq || seq == rep.NextSeq-1 {
			fmt.Printf("record:     seq %d at %s: %.60q\n", seq, time.Unix(0, rec.Timestamp).Format(time.StampMicro), rec.Payload)
		}
	}
	fmt.Printf("verified:   %d records (%d payload bytes) read back; %d acknowledged checked: %d lost, %d corrupt\n", rep.NextSeq-rep.FirstSeq, total, len(sums), lost, bad)
	if lost > 0 || bad > 0 {
		return fmt.Errorf("%d acknowledged records lost, %d corrupt or unreadable", lost, bad)
	}
	fmt.Println("result:     OK, nothing acknowledged was lost")
	return nil
}

// crash runs this program as a child appending to dir, kills it with
// SIGKILL after d and returns the records it acknowledged: seq -> xxhash64.
func crash(dir string, d time.Duration) (map[uint64]uint64, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child: %w", err)
	}
	time.AfterFunc(d, func() { cmd.Process.Kill() })
	acks := make(map[uint64]uint64)
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // EOF: a last line cut by the kill is not counted
		}
		var seq, sum uint64
		if _, err := fmt.Sscanf(line, "%d %d\n", &seq, &sum); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("child: malformed line %q: %w", line, err)
		}
		acks[seq] = sum
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return nil, fmt.Errorf("child did not die by SIGKILL: %v", err)
	}
	return acks, nil
}

// child appends records from several goroutines until it is killed and
// prints "seq xxhash64" for each record once FlushUntil says it is durable.
func child(dir string) {
	ctx := context.Background()
	l, err := aof.Open(dir, config())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				p := fmt.Appendf(nil, "crash-phase record %d from writer %d", i, g)
				id, err := l.Append(ctx, p)
				if err == nil {
					err = l.FlushUntil(ctx, id)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("%d %d\n", id.Seq, xxhash.Sum64(p))
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Minute) // the parent kills us long before
	os.Exit(3)
}
