package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aof2/aof2/benchmarks/harness"
)

func result(impl string, records int64) *harness.Result {
	r := &harness.Result{Impl: impl, Records: records, Elapsed: time.Second, Syncs: -1, Sampled: 1}
	r.Lat.Record(300 * time.Microsecond)
	return r
}

// TestReportOfMergedFiles: two results files saved at different times
// merge into one report that names both runs, gives each verdict's
// lowest ratio with each run's value, and a detail table per run.
func TestReportOfMergedFiles(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC)
	mk := func(start time.Time, aof int64) harness.Run {
		return harness.Run{Start: start, Command: "go run ./cmd/compare", Rounds: 3, Slice: time.Second,
			Cases: []harness.CaseResult{{Case: harness.Case{Workload: harness.WDurable, Size: 4096, Writers: 1},
				Results: []*harness.Result{result("aof", aof), result("raw", 1000)}}}}
	}
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := harness.SaveRuns(a, []harness.Run{mk(t0.Add(time.Hour), 800)}); err != nil {
		t.Fatal(err)
	}
	if err := harness.SaveRuns(b, []harness.Run{mk(t0, 900)}); err != nil {
		t.Fatal(err)
	}
	runs, err := harness.LoadRuns(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	report(&sb, runs)
	out := sb.String()
	for _, want := range []string{
		"Run 1: started 2026-11-29 01:00 UTC", "Run 2: started 2026-11-29 02:00 UTC",
		"| durable, 1 writer vs raw floor | 4 KiB | 0.80× | ≥ 0.85× | **missed** | 1: 0.90× (900 vs 1k records/s); 2: 0.80× (800 vs 1k records/s) |",
		"#### Every cell, run 1", "#### Every cell, run 2", "**900 / 800**",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestFootprintTable: every store gets a column and every measured part
// its rows, with per-log counts divided by the number of logs.
func TestFootprintTable(t *testing.T) {
	r := fpRun{Start: time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC), Command: "go run ./cmd/compare -parts footprint"}
	for i, impl := range []string{"aof", "raftwal"} {
		var o harness.OpenTimes
		o.New.Record(time.Millisecond)
		o.Reopen.Record(2 * time.Millisecond)
		o.FirstAppend.Record(300 * time.Microsecond)
		r.Parts = append(r.Parts,
			fpPart{Impl: impl, Part: "memory", Memory: &harness.Memory{Opened: 1 << 20, Idle: 2 << 20, Loaded: 96 << 20, LoadPeak: 64 << 20, AfterLoad: 6 << 20}},
			fpPart{Impl: impl, Part: "opens", Opens: &o},
			fpPart{Impl: impl, Part: "many=1000", Many: &harness.ManyLogs{Logs: 1000, Segment: 4 << 20, RSS: int64(150+i) << 20,
				FDs: 2000, Goroutines: 2000 - 1000*i, Maps: 3000, Disk: 4000 << 20, Open: 2 * time.Second}})
	}
	var sb strings.Builder
	writeFootprint(&sb, r, []string{"aof", "raftwal"})
	out := sb.String()
	for _, want := range []string{
		"| | aof | raftwal |",
		"| RSS after `Open` of a new log | 1 MiB | 1 MiB |",
		"| reopen of a log of one record, p50 / p99 | 2 ms / 2 ms | 2 ms / 2 ms |",
		"| 1000 logs open (4 MiB segments, 4 durable records each): RSS in total | 150 MiB | 151 MiB |",
		"file descriptors / goroutines / mappings per log | 2 / 2 / 3 | 2 / 1 / 3 |",
		"| 1000 logs open (4 MiB segments, 4 durable records each): disk per log, `Open` per log (mean) | 4 MiB, 2 ms | 4 MiB, 2 ms |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
