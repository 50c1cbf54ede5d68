package harness

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// CaseResult is one case and what each implementation did in it.
type CaseResult struct {
	Case    Case
	Results []*Result
}

// Ratio is aof's advantage over a peer: a higher-is-better quantity's
// ratio ours ÷ peer's (records/s), or for times peer's ÷ ours (reopen
// time, follow latency). Above 1 means aof is better.
func Ratio(c Case, ours, peer *Result) (float64, bool) {
	if ours == nil || peer == nil || ours.Skip != "" || peer.Skip != "" {
		return 0, false
	}
	switch c.Workload {
	case WReopen:
		if ours.Passes == 0 || peer.Passes == 0 || ours.Elapsed == 0 {
			return 0, false
		}
		a := ours.Elapsed.Seconds() / float64(ours.Passes)
		b := peer.Elapsed.Seconds() / float64(peer.Passes)
		return b / a, true
	case WFollow:
		a, b := ours.Lat.Quantile(0.5), peer.Lat.Quantile(0.5)
		if a == 0 || b == 0 {
			return 0, false
		}
		return float64(b) / float64(a), true
	}
	if ours.RecordsPerSec() == 0 || peer.RecordsPerSec() == 0 {
		return 0, false
	}
	return ours.RecordsPerSec() / peer.RecordsPerSec(), true
}

// WriteMachine prints the machine description as a Markdown list.
func WriteMachine(w io.Writer, m Machine) {
	fmt.Fprintf(w, "- CPU: %s, %d cores (GOMAXPROCS %d)\n", m.CPU, m.Cores, m.GOMAXPROCS)
	fmt.Fprintf(w, "- Kernel %s, %s\n", m.Kernel, m.Go)
	fmt.Fprintf(w, "- Logs in %s: %s on %s\n", m.Dir, m.FS, m.Device)
	fmt.Fprintf(w, "- fdatasync floor at start (pwrite 4 KiB + fdatasync, preallocated file, %d writes): p50 %s, p99 %s\n",
		m.Fdatasync.Writes, Dur(m.Fdatasync.P50), Dur(m.Fdatasync.P99))
}

// Dur formats a duration with three significant digits.
func Dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.3g µs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3g ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3g s", d.Seconds())
}

// Num formats a count with a k/M suffix and three significant digits.
func Num(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.3gM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.3gk", x/1e3)
	}
	return fmt.Sprintf("%.3g", x)
}

// MBps formats a rate in MB/s: four significant digits, without an
// exponent (12760 MB/s, not 1.276e+04).
func MBps(x float64) string {
	if x >= 1e4 {
		return fmt.Sprintf("%.0f MB/s", x)
	}
	return fmt.Sprintf("%.4g MB/s", x)
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func bytesName(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.3g GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.3g MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// headline is the number a summary cell shows.
func headline(c Case, r *Result) string {
	switch c.Workload {
	case WReopen:
		return Dur(r.Elapsed / time.Duration(max(r.Passes, 1)))
	case WFollow:
		return Dur(r.Lat.Quantile(0.5)) + " / " + Dur(r.Lat.Quantile(0.99))
	case WSeqRead:
		return MBps(r.MBPerSec())
	}
	return Num(r.RecordsPerSec())
}

var titles = map[Workload]string{
	WBuffered: "Buffered appends, one writer: records/s (each in its no-sync mode)",
	WDurable:  "Durable appends, no caller batching: records/s (append, then wait until durable)",
	WBatch:    "Durable batches of 64, one writer: records/s",
	WReopen:   "Reopen + read every record, checked: time per pass (warm page cache)",
	WSeqRead:  "Sequential read (the read part of reopen, after Open returned): MB/s of payload (warm page cache)",
	WRandom:   "Random reads by sequence number, one reader: records/s (warm page cache)",
	WFollow:   "Tail follower while one durable writer appends: append → visible latency p50 / p99",
}

// WriteSummary prints one Markdown table per workload: a row per case,
// a column per implementation, and aof's ratio to each peer in the cell.
// With several runs (each a []CaseResult) a cell shows each run's figure
// and ratio, in the runs' order, separated by " / ".
func WriteSummary(w io.Writer, runs [][]CaseResult) {
	all := make([][]CaseResult, len(runs))
	for i, crs := range runs {
		all[i] = append(slices.Clone(crs), SeqRead(crs)...)
	}
	for _, wl := range []Workload{WBuffered, WDurable, WBatch, WReopen, WSeqRead, WRandom, WFollow} {
		cases, names := casesOf(all, wl)
		if len(cases) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n#### %s\n\n", titles[wl])
		hdr, sep := "| size |", "|---|"
		if wl == WDurable {
			hdr, sep = hdr+" writers |", sep+"---|"
		}
		reads := wl == WReopen || wl == WRandom || wl == WSeqRead
		if reads {
			hdr, sep = hdr+" log |", sep+"---|"
		}
		for _, n := range names {
			hdr, sep = hdr+" "+n+" |", sep+"---|"
		}
		fmt.Fprintln(w, hdr)
		fmt.Fprintln(w, sep)
		for _, c := range cases {
			line := "| " + sizeName(c.Size) + " |"
			if wl == WDurable {
				line += fmt.Sprintf(" %d |", c.Writers)
			}
			if reads {
				var recs int64
				for _, crs := range all {
					for _, r := range resultsOf(crs, c) {
						recs = max(recs, r.LogRecords)
					}
				}
				line += fmt.Sprintf(" %s records, %s |", Num(float64(recs)), bytesName(recs*int64(c.Size)))
			}
			for _, n := range names {
				line += " " + summaryCell(all, c, n) + " |"
			}
			fmt.Fprintln(w, line)
		}
	}
}

// casesOf returns the cases of workload wl over all runs, in the order
// first seen, and the implementations that appear in them.
func casesOf(runs [][]CaseResult, wl Workload) ([]Case, []string) {
	var cases []Case
	var names []string
	for _, crs := range runs {
		for _, cr := range crs {
			if cr.Case.Workload != wl {
				continue
			}
			if !slices.Contains(cases, cr.Case) {
				cases = append(cases, cr.Case)
			}
			for _, r := range cr.Results {
				if !slices.Contains(names, r.Impl) {
					names = append(names, r.Impl)
				}
			}
		}
	}
	return cases, names
}

// resultsOf returns the results of case c in one run (nil if it lacks c).
func resultsOf(crs []CaseResult, c Case) []*Result {
	for _, cr := range crs {
		if cr.Case == c {
			return cr.Results
		}
	}
	return nil
}

// summaryCell is impl's cell of case c: its figure in each run and, for
// a peer, aof's ratio to it in each run.
func summaryCell(runs [][]CaseResult, c Case, impl string) string {
	var figs, ratios []string
	anyRatio := false
	for _, crs := range runs {
		var ours, r *Result
		for _, x := range resultsOf(crs, c) {
			if x.Impl == "aof" {
				ours = x
			}
			if x.Impl == impl {
				r = x
			}
		}
		if r == nil || r.Skip != "" {
			figs, ratios = append(figs, "n/a"), append(ratios, "–")
			continue
		}
		figs = append(figs, headline(c, r))
		if x, ok := Ratio(c, ours, r); ok {
			ratios = append(ratios, fmt.Sprintf("%.2f×", x))
			anyRatio = true
		} else {
			ratios = append(ratios, "–")
		}
	}
	cell := strings.Join(figs, " / ")
	if impl == "aof" || strings.HasPrefix(impl, "aof-") {
		return "**" + cell + "**"
	}
	if anyRatio {
		cell += " (" + strings.Join(ratios, " / ") + ")"
	}
	return cell
}

// WriteDetail prints every cell's full figures as one Markdown table.
func WriteDetail(w io.Writer, crs []CaseResult) {
	fmt.Fprintln(w, "| case | impl | records/s | MB/s | p50 | p99 | p99.9 | fsyncs/record | allocs/record | peak RSS | notes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, cr := range crs {
		for _, r := range cr.Results {
			if r.Skip != "" {
				fmt.Fprintf(w, "| %s | %s | n/a | | | | | | | | %s |\n", cr.Case, r.Impl, r.Skip)
				continue
			}
			fs := "n/a"
			if x := r.SyncsPerRecord(); x >= 0 {
				fs = fmt.Sprintf("%.3g", x)
			}
			if cr.Case.Workload == WReopen || cr.Case.Workload == WRandom {
				fs = "—"
			}
			note := ""
			switch {
			case cr.Case.Workload == WReopen:
				note = fmt.Sprintf("open %s + read %s per pass, %d passes; latency = one pass", Dur(r.Open/time.Duration(r.Passes)), Dur(r.Read/time.Duration(r.Passes)), r.Passes)
			case cr.Case.Workload == WBatch:
				note = "latency per batch of 64"
			case r.Sampled > 1:
				note = fmt.Sprintf("latency of 1 append in %d", r.Sampled)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.4g | %s | %s | %s | %s | %.3g | %s | %s |\n",
				cr.Case, r.Impl, Num(r.RecordsPerSec()), r.MBPerSec(),
				Dur(r.Lat.Quantile(0.5)), Dur(r.Lat.Quantile(0.99)), Dur(r.Lat.Quantile(0.999)),
				fs, r.AllocsPerRecord(), bytesName(r.PeakRSS), note)
		}
	}
}

// find returns the result of impl in the case matching w, size and
// writers (writers 0 matches any).
func find(crs []CaseResult, w Workload, size, writers int, impl string) *Result {
	for _, cr := range crs {
		if cr.Case.Workload != w || cr.Case.Size != size || (writers != 0 && cr.Case.Writers != writers) {
			continue
		}
		for _, r := range cr.Results {
			if r.Impl == impl && r.Skip == "" {
				return r
			}
		}
	}
	return nil
}

// SeqRead derives the sequential-read figures from the reopen results:
// the read part of each pass only (records over read time).
func SeqRead(crs []CaseResult) []CaseResult {
	var out []CaseResult
	for _, cr := range crs {
		if cr.Case.Workload != WReopen {
			continue
		}
		c := Case{Workload: WSeqRead, Size: cr.Case.Size}
		var rs []*Result
		for _, r := range cr.Results {
			x := &Result{Impl: r.Impl, Skip: r.Skip, Records: r.Records, Bytes: r.Bytes, Elapsed: r.Read,
				LogRecords: r.LogRecords, Passes: r.Passes, Syncs: -1}
			rs = append(rs, x)
		}
		out = append(out, CaseResult{Case: c, Results: rs})
	}
	return out
}
