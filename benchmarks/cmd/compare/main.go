// Command compare runs aof2 and its peers (tidwall/wal, hashicorp/raft-wal,
// Pebble's record.LogWriter) and the raw pwrite+fdatasync floors through
// the workloads of issues 7 and 15 in one process, alternating
// implementations within each case so the drift of a shared machine hits
// all alike, and prints Markdown tables: the targets' verdicts, a summary
// per workload with aof's ratio to each peer in every cell, then every
// cell's full figures.
//
//	go run ./cmd/compare -quick                  # under 2 minutes
//	go run ./cmd/compare -o results.md           # the full run; also results.json and pictures (*.svg) beside it
//	go run ./cmd/compare -runs 2 -o results.md   # two full passes, their cases interleaved
//	go run ./cmd/compare -merge -o both.md a.json b.json   # one report of runs made at different times
//	go run ./cmd/compare -parts footprint -o footprint.md  # the footprint table (each store in its own process)
//
// With several runs, a verdict gives the lowest ratio over the runs and is
// "met" only when every run meets it; each run's value is shown. Run from
// the benchmarks module (cd benchmarks). Logs go under -dir (default
// os.TempDir()) and are removed as each case ends.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// config is what the flags ask for.
type config struct {
	o        harness.Options
	out      string
	runs     int
	merge    bool
	parts    []string
	sizes    []int
	writers  []int
	wls      []string
	child    string
	fpOpens  int
	fpLoad   int64
	fpCounts []int
}

func parseFlags() (config, error) {
	var (
		quick       = flag.Bool("quick", false, "short run (under 2 minutes): 2 rounds of 120 ms slices, 16 MiB read logs")
		dir         = flag.String("dir", "", "where to create the logs (default: os.TempDir())")
		out         = flag.String("o", "", "also write the Markdown report to this file; the JSON results (.json) and pictures (-*.svg) go beside it (default without -o: compare-<time>.json in the current directory)")
		implsF      = flag.String("impls", "", "comma-separated implementations (default: all)")
		sizesF      = flag.String("sizes", "64,256,4096,65536", "comma-separated record sizes in bytes")
		workloads   = flag.String("workloads", "buffered,durable,batch64,reopen,random,follow", "comma-separated workloads")
		writersF    = flag.String("writers", "1,16,64", "comma-separated writer counts for the durable workload")
		rounds      = flag.Int("rounds", 0, "rounds per case (default 3; 2 with -quick)")
		slice       = flag.Duration("slice", 0, "time per implementation per round (default 700ms; 120ms with -quick)")
		readBytes   = flag.String("read-bytes", "", "payload size of the reopen/random-read log, e.g. 1GiB (default 1GiB; 16MiB with -quick)")
		readRecords = flag.Int64("read-records", 512<<10, "cap on the records of the reopen/random-read log (0: none), so small records do not make a huge log")
		runs        = flag.Int("runs", 1, "full passes over the cases, their cases interleaved (case 1 of every run, then case 2, ...); verdicts take the lowest ratio")
		merge       = flag.Bool("merge", false, "measure nothing: report the runs of the JSON results files given as arguments, merged")
		parts       = flag.String("parts", "peers", "what to run: peers (the workloads), footprint (memory, Open, many logs; each store in its own process), or both")
		child       = flag.String("footprint-child", "", "internal: measure one footprint part in this process (impl:part) and print it as JSON")
		fpOpens     = flag.Int("footprint-opens", 40, "footprint: Open/reopen/first-append repetitions per store")
		fpLoad      = flag.String("footprint-load", "96MiB", "footprint: bytes of 4 KiB records appended under load")
		fpCounts    = flag.String("footprint-logs", "1,100,1000", "footprint: numbers of logs open at once in one process (1,000 and more use 4 MiB segments)")
	)
	flag.Parse()
	c := config{out: *out, runs: max(*runs, 1), merge: *merge, parts: strings.Split(*parts, ","), child: *child, fpOpens: *fpOpens}
	c.o = harness.Options{Dir: *dir, Rounds: 3, Slice: 700 * time.Millisecond, SliceBytes: 1 << 30, Settle: time.Second,
		ReopenBytes: 1 << 30, ReopenRecords: *readRecords, Progress: os.Stderr}
	if *quick {
		c.o.Rounds, c.o.Slice, c.o.SliceBytes, c.o.Settle, c.o.ReopenBytes = 2, 120*time.Millisecond, 256<<20, 500*time.Millisecond, 16<<20
	}
	if *rounds > 0 {
		c.o.Rounds = *rounds
	}
	if *slice > 0 {
		c.o.Slice = *slice
	}
	var err error
	if *readBytes != "" {
		if c.o.ReopenBytes, err = parseBytes(*readBytes); err != nil {
			return c, err
		}
	}
	if c.fpLoad, err = parseBytes(*fpLoad); err != nil {
		return c, err
	}
	if *implsF != "" {
		c.o.Impls = strings.Split(*implsF, ",")
		for _, n := range c.o.Impls {
			if _, err := harness.Lookup(n); err != nil {
				return c, err
			}
		}
	}
	if c.sizes, err = ints(*sizesF); err != nil {
		return c, err
	}
	if c.writers, err = ints(*writersF); err != nil {
		return c, err
	}
	if c.fpCounts, err = ints(*fpCounts); err != nil {
		return c, err
	}
	c.wls = strings.Split(*workloads, ",")
	for _, w := range c.wls {
		switch harness.Workload(w) {
		case harness.WBuffered, harness.WDurable, harness.WBatch, harness.WReopen, harness.WRandom, harness.WFollow:
		default:
			return c, fmt.Errorf("-workloads: unknown workload %q (buffered, durable, batch64, reopen, random, follow)", w)
		}
	}
	for _, p := range c.parts {
		if p != "peers" && p != "footprint" {
			return c, fmt.Errorf("-parts: unknown part %q (peers, footprint)", p)
		}
	}
	return c, nil
}

func run() error {
	c, err := parseFlags()
	if err != nil {
		return err
	}
	if c.child != "" {
		return footprintChild(c)
	}
	if c.merge {
		if flag.NArg() == 0 {
			return errors.New("-merge: name the JSON results files to merge")
		}
		runs, err := harness.LoadRuns(flag.Args()...)
		if err != nil {
			return err
		}
		return finish(c, runs)
	}
	if slices.Contains(c.parts, "footprint") {
		if err := runFootprint(c); err != nil {
			return err
		}
	}
	if !slices.Contains(c.parts, "peers") {
		return nil
	}
	runs, err := measure(c)
	if err != nil {
		return err
	}
	return finish(c, runs)
}

// base returns the path, without extension, of the files beside the
// report: the -o file's, or compare-<time> in the current directory.
func base(c config, stamp time.Time) string {
	if c.out != "" {
		return strings.TrimSuffix(c.out, filepath.Ext(c.out))
	}
	return "compare-" + stamp.UTC().Format("2006-01-02-1504")
}

// cases lists the write and follow cases the flags ask for, in run order.
func cases(c config) []harness.Case {
	var cs []harness.Case
	has := func(w harness.Workload) bool { return slices.Contains(c.wls, string(w)) }
	for _, size := range c.sizes {
		if has(harness.WBuffered) {
			cs = append(cs, harness.Case{Workload: harness.WBuffered, Size: size})
		}
	}
	for _, wr := range c.writers {
		for _, size := range c.sizes {
			if has(harness.WDurable) {
				cs = append(cs, harness.Case{Workload: harness.WDurable, Size: size, Writers: wr})
			}
		}
	}
	for _, wl := range []harness.Workload{harness.WBatch, harness.WFollow} {
		for _, size := range c.sizes {
			if has(wl) {
				cs = append(cs, harness.Case{Workload: wl, Size: size})
			}
		}
	}
	return cs
}

// measure makes c.runs full passes over the cases, interleaved: each
// case is run once for every run before the next case. The JSON results
// are saved after every case, so an interrupted run keeps what it did.
func measure(c config) ([]harness.Run, error) {
	start := time.Now()
	where := c.o.Dir
	if where == "" {
		where = os.TempDir()
	}
	m, err := harness.Describe(where, 200)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "fdatasync floor: p50 %s p99 %s\n", harness.Dur(m.Fdatasync.P50), harness.Dur(m.Fdatasync.P99))
	runs := make([]harness.Run, c.runs)
	for i := range runs {
		runs[i] = harness.Run{Start: start.UTC(), Command: "go run ./cmd/compare " + strings.Join(os.Args[1:], " "),
			Rounds: c.o.Rounds, Slice: c.o.Slice, Machine: m}
	}
	save := func() error {
		for i := range runs {
			runs[i].Took = time.Since(start)
		}
		return harness.SaveRuns(base(c, start)+".json", runs)
	}
	for _, cs := range cases(c) {
		for i := range runs {
			rs, err := harness.RunCase(c.o, cs)
			if err != nil {
				return nil, err
			}
			runs[i].Cases = append(runs[i].Cases, harness.CaseResult{Case: cs, Results: rs})
			harness.FlushFS(c.o)
		}
		if err := save(); err != nil {
			return nil, err
		}
	}
	if slices.Contains(c.wls, string(harness.WReopen)) || slices.Contains(c.wls, string(harness.WRandom)) {
		for _, size := range c.sizes {
			for i := range runs {
				if err := readCases(c, &runs[i], size); err != nil {
					return nil, err
				}
			}
			if err := save(); err != nil {
				return nil, err
			}
		}
	}
	return runs, save()
}

func readCases(c config, r *harness.Run, size int) error {
	ro, rr, err := harness.RunReadCases(c.o, size)
	if err != nil {
		return err
	}
	if slices.Contains(c.wls, string(harness.WReopen)) {
		r.Cases = append(r.Cases, harness.CaseResult{Case: harness.Case{Workload: harness.WReopen, Size: size}, Results: ro})
	}
	if slices.Contains(c.wls, string(harness.WRandom)) {
		r.Cases = append(r.Cases, harness.CaseResult{Case: harness.Case{Workload: harness.WRandom, Size: size}, Results: rr})
	}
	harness.FlushFS(c.o)
	return nil
}

// finish writes the report of runs (stdout, and -o), the merged JSON
// beside it (for -merge) and the pictures.
func finish(c config, runs []harness.Run) error {
	if len(runs) == 0 {
		return errors.New("no runs to report")
	}
	var buf bytes.Buffer
	report(&buf, runs)
	os.Stdout.Write(buf.Bytes())
	b := base(c, runs[len(runs)-1].Start)
	if c.out != "" {
		if err := os.WriteFile(c.out, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", c.out, err)
		}
	}
	if c.merge {
		if err := harness.SaveRuns(b+".json", runs); err != nil {
			return err
		}
	}
	files, err := harness.DrawPictures(b, caseSets(runs))
	for _, f := range files {
		fmt.Fprintln(os.Stderr, "drew", f)
	}
	fmt.Fprintln(os.Stderr, "results in", b+".json")
	return err
}

func caseSets(runs []harness.Run) [][]harness.CaseResult {
	out := make([][]harness.CaseResult, len(runs))
	for i, r := range runs {
		out[i] = r.Cases
	}
	return out
}

func report(w io.Writer, runs []harness.Run) {
	fmt.Fprintf(w, "### aof2 vs peers, %s\n\n", runs[len(runs)-1].Start.UTC().Format("2006-01-02 15:04 MST"))
	for i, r := range runs {
		fmt.Fprintf(w, "Run %d: started %s, command `%s` (in `benchmarks/`), %d rounds per case, %v per implementation per round, took %v.\n\n",
			i+1, r.Start.UTC().Format("2006-01-02 15:04 MST"), r.Command, r.Rounds, r.Slice, r.Took.Round(time.Second))
		harness.WriteMachine(w, r.Machine)
		fmt.Fprintln(w)
	}
	var names []string
	for _, crs := range caseSets(runs) {
		for _, cr := range crs {
			for _, r := range cr.Results {
				if !slices.Contains(names, r.Impl) {
					names = append(names, r.Impl)
				}
			}
		}
	}
	fmt.Fprintln(w, "Implementations:")
	fmt.Fprintln(w)
	for _, i := range harness.Impls() {
		if slices.Contains(names, i.Name) {
			fmt.Fprintf(w, "- `%s`: %s\n", i.Name, i.Note)
		}
	}
	verdicts := harness.Verdicts(caseSets(runs), harness.Checks(sizesOf(runs)))
	several := ""
	if len(runs) > 1 {
		several = fmt.Sprintf(" The lowest ratio is over the %d runs; a target is met only when every run meets it.", len(runs))
	}
	for _, issue := range []string{"7", "15"} {
		fmt.Fprintf(w, "\n#### Targets of issue %s\n\n%s\n\n", issue, strings.TrimSpace(several))
		harness.WriteVerdicts(w, verdicts, issue)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Cells show the figure and, for a peer, aof's advantage over it: (aof ÷ peer) for records/s, (peer ÷ aof) for times and latencies, so above 1× means aof did better. n/a: the implementation has no such mode or operation. With several runs a cell shows each run's figure and ratio, in run order, separated by /.")
	harness.WriteSummary(w, caseSets(runs))
	for i, r := range runs {
		fmt.Fprintf(w, "\n#### Every cell, run %d\n\n", i+1)
		fmt.Fprintln(w, "Latency is per operation (append call to return; a batch of 64 for batch64; one whole pass for reopen; append call to visible for follow), from a log-bucketed histogram (±1.6 %). fsyncs/record counts the syncs the adapter can see (n/a: the library gives no way to count). allocs/record counts the whole process's heap allocations while measuring. Peak RSS is the process's VmHWM, reset before each slice.")
		fmt.Fprintln(w)
		harness.WriteDetail(w, r.Cases)
	}
}

// sizesOf returns the record sizes of the runs' cases, ascending.
func sizesOf(runs []harness.Run) []int {
	var sizes []int
	for _, r := range runs {
		for _, cr := range r.Cases {
			if !slices.Contains(sizes, cr.Case.Size) {
				sizes = append(sizes, cr.Case.Size)
			}
		}
	}
	slices.Sort(sizes)
	return sizes
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
