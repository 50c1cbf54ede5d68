package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aof2/aof2/benchmarks/harness"
)

// fpPart is what one footprint child measured: one of its fields is set.
type fpPart struct {
	Impl   string
	Part   string             // "memory", "opens" or "many=N"
	Memory *harness.Memory    `json:",omitempty"`
	Opens  *harness.OpenTimes `json:",omitempty"`
	Many   *harness.ManyLogs  `json:",omitempty"`
}

// fpRun is the footprint part's JSON results file.
type fpRun struct {
	Start   time.Time
	Took    time.Duration
	Command string
	Machine harness.Machine
	Parts   []fpPart
}

// fpImpls are the stores the footprint table compares: those that open
// logs with a chosen segment size (aof, raft-wal, tidwall/wal).
func fpImpls(c config) []string {
	var out []string
	for _, i := range harness.Impls() {
		if i.OpenSized != nil && (len(c.o.Impls) == 0 || slices.Contains(c.o.Impls, i.Name)) {
			out = append(out, i.Name)
		}
	}
	return out
}

// runFootprint measures every part for every store, each in a child
// process of its own (this program, run with -footprint-child), the
// stores alternating part by part, and writes the table and the JSON.
func runFootprint(c config) error {
	start := time.Now()
	where := c.o.Dir
	if where == "" {
		where = os.TempDir()
	}
	m, err := harness.Describe(where, 100)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("footprint: %w", err)
	}
	parts := []string{"memory", "opens"}
	for _, n := range c.fpCounts {
		parts = append(parts, "many="+strconv.Itoa(n))
	}
	r := fpRun{Start: start.UTC(), Command: "go run ./cmd/compare " + strings.Join(os.Args[1:], " "), Machine: m}
	for _, part := range parts {
		for _, impl := range fpImpls(c) {
			p, err := runChild(c, self, impl, part)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "footprint %s %s done\n", impl, part)
			r.Parts = append(r.Parts, p)
		}
	}
	r.Took = time.Since(start)
	b := base(c, start)
	if slices.Contains(c.parts, "peers") {
		b += "-footprint"
	}
	data, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("footprint: %w", err)
	}
	if err := os.WriteFile(b+".json", append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("footprint: %w", err)
	}
	var buf bytes.Buffer
	writeFootprint(&buf, r, fpImpls(c))
	os.Stdout.Write(buf.Bytes())
	fmt.Fprintln(os.Stderr, "footprint results in", b+".json")
	if c.out != "" {
		return os.WriteFile(b+".md", buf.Bytes(), 0o644)
	}
	return nil
}

func runChild(c config, self, impl, part string) (fpPart, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-footprint-child", impl + ":" + part, "-footprint-opens", strconv.Itoa(c.fpOpens),
		"-footprint-load", strconv.FormatInt(c.fpLoad, 10)}
	if c.o.Dir != "" {
		args = append(args, "-dir", c.o.Dir)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fpPart{}, fmt.Errorf("footprint %s %s: %w", impl, part, err)
	}
	var p fpPart
	if err := json.Unmarshal(out, &p); err != nil {
		return p, fmt.Errorf("footprint %s %s: %w", impl, part, err)
	}
	return p, nil
}

// footprintChild measures one part for one store in this process and
// prints it as JSON on stdout.
func footprintChild(c config) error {
	name, part, ok := strings.Cut(c.child, ":")
	if !ok {
		return fmt.Errorf("-footprint-child %q: want impl:part", c.child)
	}
	impl, err := harness.Lookup(name)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(c.o.Dir, "aof2fp-"+name+"-")
	if err != nil {
		return fmt.Errorf("footprint: %w", err)
	}
	defer os.RemoveAll(dir)
	p := fpPart{Impl: name, Part: part}
	switch {
	case part == "memory":
		m, err := harness.MeasureMemory(impl, dir, 4096, c.fpLoad, 20*time.Second)
		if err != nil {
			return err
		}
		p.Memory = &m
	case part == "opens":
		t, err := harness.MeasureOpens(impl, dir, c.fpOpens)
		if err != nil {
			return err
		}
		p.Opens = &t
	case strings.HasPrefix(part, "many="):
		n, err := strconv.Atoi(strings.TrimPrefix(part, "many="))
		if err != nil {
			return fmt.Errorf("-footprint-child %q: %w", c.child, err)
		}
		seg := int64(0)
		if n >= 1000 {
			seg = 4 << 20 // 64 MiB segments would preallocate 64 GiB
		}
		open := func(d string) (harness.Log, error) {
			if seg == 0 {
				return impl.Open(d, harness.Durable)
			}
			return impl.OpenSized(d, harness.Durable, seg)
		}
		m, err := harness.MeasureManyLogs(dir, open, n, 4, harness.Payload(3, 256))
		if err != nil {
			return err
		}
		m.Segment = seg
		p.Many = &m
	default:
		return fmt.Errorf("-footprint-child %q: unknown part", c.child)
	}
	return json.NewEncoder(os.Stdout).Encode(p)
}

// writeFootprint prints the footprint table: a row per figure, a column
// per store.
func writeFootprint(w io.Writer, r fpRun, impls []string) {
	get := func(impl, part string) fpPart {
		for _, p := range r.Parts {
			if p.Impl == impl && p.Part == part {
				return p
			}
		}
		return fpPart{}
	}
	fmt.Fprintf(w, "### Footprint against peers, %s\n\n", r.Start.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Command: `%s` (in `benchmarks/`), took %v. Every store measured in a child process of its own per row group; "+
		"RSS is above the process just before the first `Open`, after a GC, unless marked.\n\n", r.Command, r.Took.Round(time.Second))
	harness.WriteMachine(w, r.Machine)
	fmt.Fprintln(w)
	row := func(name string, cell func(impl string) string) {
		line := "| " + name + " |"
		for _, i := range impls {
			line += " " + cell(i) + " |"
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "| | "+strings.Join(impls, " | ")+" |")
	fmt.Fprintln(w, "|---|"+strings.Repeat("---|", len(impls)))
	for _, fr := range memoryRows {
		row(fr.name, func(i string) string {
			if m := get(i, "memory").Memory; m != nil {
				return fr.cell(m)
			}
			return "–"
		})
	}
	for _, fr := range openRows {
		row(fr.name, func(i string) string {
			if t := get(i, "opens").Opens; t != nil {
				h := fr.hist(t)
				return harness.Dur(h.Quantile(0.5)) + " / " + harness.Dur(h.Quantile(0.99))
			}
			return "–"
		})
	}
	for _, n := range countsOf(r) {
		writeManyRows(row, func(i string) *harness.ManyLogs { return get(i, "many="+strconv.Itoa(n)).Many }, n)
	}
}

// memoryRows are the footprint table's memory figures.
var memoryRows = []struct {
	name string
	cell func(m *harness.Memory) string
}{
	{"RSS after `Open` of a new log", func(m *harness.Memory) string { return mib(m.Opened) }},
	{"RSS idle, after one durable 256 B record", func(m *harness.Memory) string { return mib(m.Idle) }},
	{"peak RSS (VmHWM) while appending 4 KiB records", func(m *harness.Memory) string {
		return fmt.Sprintf("%s (%s MiB in %s, %s)", mib(m.LoadPeak), strconv.FormatInt(m.Loaded>>20, 10), harness.Dur(m.LoadTime), m.LoadMode)
	}},
	{"RSS once that backlog is durable, idle (anonymous + mapped file)", func(m *harness.Memory) string {
		return fmt.Sprintf("%s (%s + %s)", mib(m.AfterLoad), mib(m.AfterLoadAnon), mib(m.AfterLoadFile))
	}},
}

// openRows are the footprint table's latencies (p50 / p99).
var openRows = []struct {
	name string
	hist func(t *harness.OpenTimes) *harness.Hist
}{
	{"`Open` of a new log, p50 / p99", func(t *harness.OpenTimes) *harness.Hist { return &t.New }},
	{"reopen of a log of one record, p50 / p99", func(t *harness.OpenTimes) *harness.Hist { return &t.Reopen }},
	{"first durable 256 B append after `Open`, p50 / p99", func(t *harness.OpenTimes) *harness.Hist { return &t.FirstAppend }},
}

// countsOf returns the numbers of logs measured at once, ascending.
func countsOf(r fpRun) []int {
	var ns []int
	for _, p := range r.Parts {
		if p.Many != nil && !slices.Contains(ns, p.Many.Logs) {
			ns = append(ns, p.Many.Logs)
		}
	}
	slices.Sort(ns)
	return ns
}

func writeManyRows(row func(string, func(string) string), get func(impl string) *harness.ManyLogs, n int) {
	seg := "64 MiB segments"
	for _, i := range []string{"aof", "raftwal", "tidwall"} {
		if m := get(i); m != nil && m.Segment != 0 {
			seg = fmt.Sprintf("%d MiB segments", m.Segment>>20)
		}
	}
	cell := func(f func(m *harness.ManyLogs) string) func(string) string {
		return func(i string) string {
			if m := get(i); m != nil {
				return f(m)
			}
			return "–"
		}
	}
	per := func(x int, m *harness.ManyLogs) string {
		return strconv.FormatFloat(float64(x)/float64(m.Logs), 'g', 3, 64)
	}
	name := fmt.Sprintf("%d logs open (%s, 4 durable records each)", n, seg)
	if n == 1 {
		name = fmt.Sprintf("1 log open (%s, 4 durable records)", seg)
	}
	row(name+": RSS in total", cell(func(m *harness.ManyLogs) string { return mib(m.RSS) }))
	if n < 100 {
		return
	}
	row(name+": file descriptors / goroutines / mappings per log", cell(func(m *harness.ManyLogs) string {
		return per(m.FDs, m) + " / " + per(m.Goroutines, m) + " / " + per(m.Maps, m)
	}))
	row(name+": disk per log, `Open` per log (mean)", cell(func(m *harness.ManyLogs) string {
		return mib(m.Disk/int64(m.Logs)) + ", " + harness.Dur(m.Open/time.Duration(m.Logs))
	}))
}

// mib formats bytes as MiB with three significant digits.
func mib(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'g', 3, 64) + " MiB"
}
