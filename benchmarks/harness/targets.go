package harness

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Check is one target at one record size: a ratio of aof to something,
// computed from one run's cases, and the goal it must reach.
type Check struct {
	Issue string // which issue set the target ("7", "15")
	Name  string
	Size  int
	Goal  float64 // the ratio must be at least this
	// Eval returns the ratio and the figures behind it, or ok false when
	// the run lacks them.
	Eval func(crs []CaseResult) (ratio float64, figures string, ok bool)
}

// RunRatio is one run's value of a check.
type RunRatio struct {
	OK      bool // the run has the figures
	Ratio   float64
	Figures string
}

// Verdict is a check over several runs: its value in each run, the
// lowest of them, and whether every run met the goal.
type Verdict struct {
	Check  Check
	Runs   []RunRatio // one per run, in the runs' order
	Lowest float64    // the lowest ratio over the runs that have one
	Have   int        // how many runs have the figures
	Met    bool       // every run has the figures and meets the goal
	Missed bool       // some run that has the figures misses the goal
}

// Verdicts evaluates every check on every run. A check that no run has
// figures for is left out.
func Verdicts(runs [][]CaseResult, checks []Check) []Verdict {
	var out []Verdict
	for _, c := range checks {
		v := Verdict{Check: c}
		for _, crs := range runs {
			x, fig, ok := c.Eval(crs)
			v.Runs = append(v.Runs, RunRatio{OK: ok, Ratio: x, Figures: fig})
			if !ok {
				continue
			}
			if v.Have == 0 || x < v.Lowest {
				v.Lowest = x
			}
			v.Have++
			if x < c.Goal {
				v.Missed = true
			}
		}
		if v.Have == 0 {
			continue
		}
		v.Met = !v.Missed && v.Have == len(runs)
		out = append(out, v)
	}
	return out
}

// Word is the verdict as the report prints it.
func (v Verdict) Word() string {
	switch {
	case v.Met:
		return "met"
	case v.Missed:
		return "**missed**"
	}
	return fmt.Sprintf("met in the %d of %d runs that have it", v.Have, len(v.Runs))
}

// recordsRatio checks aof's records/s in case (w, size, writers) against
// peer's in case (pw, size, pwriters).
func recordsRatio(w Workload, writers int, peer string, pw Workload, pwriters int, size int) func([]CaseResult) (float64, string, bool) {
	return func(crs []CaseResult) (float64, string, bool) {
		a, b := find(crs, w, size, writers, "aof"), find(crs, pw, size, pwriters, peer)
		if a == nil || b == nil || a.RecordsPerSec() == 0 || b.RecordsPerSec() == 0 {
			return 0, "", false
		}
		return a.RecordsPerSec() / b.RecordsPerSec(), fmt.Sprintf("%s vs %s records/s", Num(a.RecordsPerSec()), Num(b.RecordsPerSec())), true
	}
}

// Checks returns the targets of issues 7 and 15 at the given sizes.
// Issue 15's targets relative to "today" (64 B and 256 B durable, 64 B
// sequential read) need a baseline run and are not checks here.
func Checks(sizes []int) []Check {
	var cs []Check
	add := func(issue, name string, size int, goal float64, eval func([]CaseResult) (float64, string, bool)) {
		cs = append(cs, Check{Issue: issue, Name: name, Size: size, Goal: goal, Eval: eval})
	}
	add("7", "buffered appends vs tidwall NoSync", 256, 10, recordsRatio(WBuffered, 0, "tidwall", WBuffered, 0, 256))
	for _, s := range sizes {
		add("7", "durable, 1 writer vs raw floor", s, 0.85, recordsRatio(WDurable, 1, "raw", WDurable, 1, s))
	}
	for _, s := range sizes {
		add("7", "durable, 64 writers vs raft-wal batches of 64", s, 2, recordsRatio(WDurable, 64, "raftwal", WBatch, 0, s))
	}
	for _, s := range sizes {
		add("7", "reopen + read all vs tidwall", s, 3, reopenRatio(s))
	}
	for _, s := range sizes {
		add("7", "sequential read vs tidwall", s, 4, seqReadRatio(s))
	}
	for _, s := range sizes {
		if s < 4096 {
			continue
		}
		add("15", "durable, 1 writer vs raw floor (fallocate)", s, 1.3, recordsRatio(WDurable, 1, "raw", WDurable, 1, s))
		add("15", "durable, 1 writer vs raw-overwrite floor", s, 0.9, recordsRatio(WDurable, 1, "raw-overwrite", WDurable, 1, s))
		for _, p := range []string{"pebble", "raftwal", "tidwall"} {
			add("15", "durable, 1 writer vs "+p, s, 1.3, recordsRatio(WDurable, 1, p, WDurable, 1, s))
		}
	}
	for _, wr := range []int{16, 64} {
		for _, s := range sizes {
			add("15", fmt.Sprintf("durable, %d writers vs pebble", wr), s, 1.1, recordsRatio(WDurable, wr, "pebble", WDurable, wr, s))
		}
	}
	for _, s := range sizes {
		if s == 256 || s == 4096 {
			add("15", "durable, 64 writers vs raft-wal batches of 64", s, 1, recordsRatio(WDurable, 64, "raftwal", WBatch, 0, s))
		}
	}
	for _, s := range sizes {
		add("15", "buffered appends vs pebble WriteRecord", s, 1.2, recordsRatio(WBuffered, 0, "pebble", WBuffered, 0, s))
	}
	return cs
}

func reopenRatio(s int) func([]CaseResult) (float64, string, bool) {
	return func(crs []CaseResult) (float64, string, bool) {
		a, b := find(crs, WReopen, s, 0, "aof"), find(crs, WReopen, s, 0, "tidwall")
		x, ok := Ratio(Case{Workload: WReopen, Size: s}, a, b)
		if !ok {
			return 0, "", false
		}
		return x, fmt.Sprintf("%s vs %s per pass, log of %s",
			Dur(a.Elapsed/time.Duration(a.Passes)), Dur(b.Elapsed/time.Duration(b.Passes)), bytesName(a.LogRecords*int64(s))), true
	}
}

func seqReadRatio(s int) func([]CaseResult) (float64, string, bool) {
	return func(crs []CaseResult) (float64, string, bool) {
		seq := SeqRead(crs)
		a, b := find(seq, WSeqRead, s, 0, "aof"), find(seq, WSeqRead, s, 0, "tidwall")
		if a == nil || b == nil || a.MBPerSec() == 0 || b.MBPerSec() == 0 {
			return 0, "", false
		}
		return a.MBPerSec() / b.MBPerSec(), strings.TrimSuffix(MBps(a.MBPerSec()), " MB/s") + " vs " + MBps(b.MBPerSec()), true
	}
}

// WriteVerdicts prints the verdicts of one issue as a Markdown table:
// the lowest ratio over the runs, the goal, the verdict (met only when
// every run meets it) and each run's ratio and figures.
func WriteVerdicts(w io.Writer, vs []Verdict, issue string) {
	fmt.Fprintln(w, "| target | size | lowest ratio | goal | verdict | each run |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, v := range vs {
		if v.Check.Issue != issue {
			continue
		}
		var each []string
		for i, r := range v.Runs {
			s := "n/a"
			if r.OK {
				s = fmt.Sprintf("%.2f× (%s)", r.Ratio, r.Figures)
			}
			if len(v.Runs) > 1 {
				s = fmt.Sprintf("%d: %s", i+1, s)
			}
			each = append(each, s)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f× | ≥ %.2f× | %s | %s |\n", v.Check.Name, sizeName(v.Check.Size), v.Lowest, v.Check.Goal, v.Word(), strings.Join(each, "; "))
	}
}
