// Command compare runs aof2 and its peers (tidwall/wal, hashicorp/raft-wal,
// Pebble's record.LogWriter) and the raw pwrite+fdatasync floor through
// the workloads of issue 7 in one process, alternating implementations
// within each case so the drift of a shared machine hits all alike, and
// prints Markdown tables: a summary per workload with aof's ratio to each
// peer in every cell, then every cell's full figures.
//
//	go run ./cmd/compare -quick          # under 2 minutes
//	go run ./cmd/compare                 # the full run, under 15 minutes
//	go run ./cmd/compare -o results.md   # also write the tables to a file
//
// Run from the benchmarks module (cd benchmarks). Logs go under -dir
// (default os.TempDir()) and are removed as each case ends.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aof2/aof2/benchmarks/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		quick       = flag.Bool("quick", false, "short run (under 2 minutes): 2 rounds of 120 ms slices, 16 MiB read logs")
		dir         = flag.String("dir", "", "where to create the logs (default: os.TempDir())")
		out         = flag.String("o", "", "also write the Markdown report to this file")
		implsF      = flag.String("impls", "", "comma-separated implementations (default: all)")
		sizesF      = flag.String("sizes", "64,256,4096,65536", "comma-separated record sizes in bytes")
		workloads   = flag.String("workloads", "buffered,durable,batch64,reopen,random,follow", "comma-separated workloads")
		writersF    = flag.String("writers", "1,16,64", "comma-separated writer counts for the durable workload")
		rounds      = flag.Int("rounds", 0, "rounds per case (default 3; 2 with -quick)")
		slice       = flag.Duration("slice", 0, "time per implementation per round (default 700ms; 120ms with -quick)")
		readBytes   = flag.String("read-bytes", "", "payload size of the reopen/random-read log, e.g. 1GiB (default 1GiB; 16MiB with -quick)")
		readRecords = flag.Int64("read-records", 512<<10, "cap on the records of the reopen/random-read log (0: none), so small records do not make a huge log")
	)
	flag.Parse()

	o := harness.Options{Dir: *dir, Rounds: 3, Slice: 700 * time.Millisecond, SliceBytes: 1 << 30, Settle: time.Second,
		ReopenBytes: 1 << 30, ReopenRecords: *readRecords, Progress: os.Stderr}
	if *quick {
		o.Rounds, o.Slice, o.SliceBytes, o.Settle, o.ReopenBytes = 2, 120*time.Millisecond, 256<<20, 500*time.Millisecond, 16<<20
	}
	if *rounds > 0 {
		o.Rounds = *rounds
	}
	if *slice > 0 {
		o.Slice = *slice
	}
	if *readBytes != "" {
		n, err := parseBytes(*readBytes)
		if err != nil {
			return err
		}
		o.ReopenBytes = n
	}
	if *implsF != "" {
		o.Impls = strings.Split(*implsF, ",")
		for _, n := range o.Impls {
			if _, err := harness.Lookup(n); err != nil {
				return err
			}
		}
	}
	sizes, err := ints(*sizesF)
	if err != nil {
		return err
	}
	writers, err := ints(*writersF)
	if err != nil {
		return err
	}
	wls := strings.Split(*workloads, ",")
	for _, w := range wls {
		switch harness.Workload(w) {
		case harness.WBuffered, harness.WDurable, harness.WBatch, harness.WReopen, harness.WRandom, harness.WFollow:
		default:
			return fmt.Errorf("-workloads: unknown workload %q (buffered, durable, batch64, reopen, random, follow)", w)
		}
	}

	start := time.Now()
	where := o.Dir
	if where == "" {
		where = os.TempDir()
	}
	m, err := harness.Describe(where, 200)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "fdatasync floor: p50 %s p99 %s\n", harness.Dur(m.Fdatasync.P50), harness.Dur(m.Fdatasync.P99))

	var cases []harness.Case
	for _, size := range sizes {
		if slices.Contains(wls, string(harness.WBuffered)) {
			cases = append(cases, harness.Case{Workload: harness.WBuffered, Size: size})
		}
	}
	for _, wr := range writers {
		for _, size := range sizes {
			if slices.Contains(wls, string(harness.WDurable)) {
				cases = append(cases, harness.Case{Workload: harness.WDurable, Size: size, Writers: wr})
			}
		}
	}
	for _, wl := range []harness.Workload{harness.WBatch, harness.WFollow} {
		for _, size := range sizes {
			if slices.Contains(wls, string(wl)) {
				cases = append(cases, harness.Case{Workload: wl, Size: size})
			}
		}
	}
	var crs []harness.CaseResult
	for _, c := range cases {
		rs, err := harness.RunCase(o, c)
		if err != nil {
			return err
		}
		crs = append(crs, harness.CaseResult{Case: c, Results: rs})
		harness.FlushFS(o)
	}
	if slices.Contains(wls, string(harness.WReopen)) || slices.Contains(wls, string(harness.WRandom)) {
		for _, size := range sizes {
			ro, rr, err := harness.RunReadCases(o, size)
			if err != nil {
				return err
			}
			if slices.Contains(wls, string(harness.WReopen)) {
				crs = append(crs, harness.CaseResult{Case: harness.Case{Workload: harness.WReopen, Size: size}, Results: ro})
			}
			if slices.Contains(wls, string(harness.WRandom)) {
				crs = append(crs, harness.CaseResult{Case: harness.Case{Workload: harness.WRandom, Size: size}, Results: rr})
			}
			harness.FlushFS(o)
		}
	}

	var buf bytes.Buffer
	report(&buf, m, o, crs, sizes, time.Since(start))
	os.Stdout.Write(buf.Bytes())
	if *out != "" {
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	return nil
}

func report(w io.Writer, m harness.Machine, o harness.Options, crs []harness.CaseResult, sizes []int, took time.Duration) {
	fmt.Fprintf(w, "### aof2 vs peers, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Command: `go run ./cmd/compare %s` (in `benchmarks/`), %d rounds per case, %v per implementation per round, took %v.\n\n",
		strings.Join(os.Args[1:], " "), o.Rounds, o.Slice, took.Round(time.Second))
	harness.WriteMachine(w, m)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Implementations:")
	fmt.Fprintln(w)
	for _, i := range harness.Impls() {
		if len(o.Impls) == 0 || slices.Contains(o.Impls, i.Name) {
			fmt.Fprintf(w, "- `%s`: %s\n", i.Name, i.Note)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "#### Targets of issue 7")
	fmt.Fprintln(w)
	harness.WriteTargets(w, crs, sizes)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Cells show the figure and, for a peer, aof's advantage over it: (aof ÷ peer) for records/s, (peer ÷ aof) for times and latencies, so above 1× means aof did better. n/a: the implementation has no such mode or operation.")
	harness.WriteSummary(w, append(crs, harness.SeqRead(crs)...))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "#### Every cell")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Latency is per operation (append call to return; a batch of 64 for batch64; one whole pass for reopen; append call to visible for follow), from a log-bucketed histogram (±1.6 %). fsyncs/record counts the syncs the adapter can see (n/a: the library gives no way to count). allocs/record counts the whole process's heap allocations while measuring. Peak RSS is the process's VmHWM, reset before each slice.")
	fmt.Fprintln(w)
	harness.WriteDetail(w, crs)
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("bad number %q: %w", f, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suf); ok {
			s, mult = v, m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q: %w", s, err)
	}
	return n * mult, nil
}
