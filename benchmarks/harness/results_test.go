package harness

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// synth returns a result of impl: records in elapsed, latencies lat.
func synth(impl string, records int64, elapsed time.Duration, lat ...time.Duration) *Result {
	r := &Result{Impl: impl, Records: records, Bytes: records * 4096, Elapsed: elapsed, Sampled: 1, Syncs: -1}
	for _, d := range lat {
		r.Lat.Record(d)
	}
	return r
}

// synthRun is a run with durable cases at 4 KiB (1, 16, 64 writers) and
// buffered at 4 KiB, aof doing aofRate records/s with one writer and the
// others fixed rates.
func synthRun(start time.Time, aofRate int64) Run {
	durable := func(w int, k int64) CaseResult {
		return CaseResult{Case: Case{Workload: WDurable, Size: 4096, Writers: w}, Results: []*Result{
			synth("aof", aofRate*k, time.Second, 200*time.Microsecond, 250*time.Microsecond, time.Millisecond),
			synth("raw", 1000, time.Second, 300*time.Microsecond, 400*time.Microsecond),
			synth("pebble", 900*k, time.Second, 350*time.Microsecond),
			{Impl: "tidwall", Skip: "no such mode", Syncs: -1},
		}}
	}
	return Run{Start: start, Took: time.Minute, Command: "compare -quick", Rounds: 2, Slice: time.Second,
		Machine: Machine{CPU: "test", Cores: 2, Fdatasync: Floor{Writes: 10, P50: 300 * time.Microsecond}},
		Cases: []CaseResult{durable(1, 1), durable(16, 10), durable(64, 30),
			{Case: Case{Workload: WBuffered, Size: 4096}, Results: []*Result{
				synth("aof", 50000, time.Second, time.Microsecond), synth("pebble", 100000, time.Second, time.Microsecond)}}},
	}
}

// TestResultsRoundTrip: runs saved as JSON load back with the same
// figures (records/s, latency quantiles, skips), and merging two files
// orders their runs by start time.
func TestResultsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	late, early := synthRun(t0.Add(time.Hour), 1300), synthRun(t0, 1400)
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := SaveRuns(a, []Run{late}); err != nil {
		t.Fatal(err)
	}
	if err := SaveRuns(b, []Run{early}); err != nil {
		t.Fatal(err)
	}
	runs, err := LoadRuns(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || !runs[0].Start.Equal(t0) || !runs[1].Start.Equal(t0.Add(time.Hour)) {
		t.Fatalf("merged runs out of order: %v, %v", runs[0].Start, runs[1].Start)
	}
	for i, want := range []Run{early, late} {
		got := runs[i]
		if got.Command != want.Command || got.Machine != want.Machine || len(got.Cases) != len(want.Cases) {
			t.Fatalf("run %d: got %+v", i, got)
		}
		for j, cr := range got.Cases {
			wc := want.Cases[j]
			if cr.Case != wc.Case || len(cr.Results) != len(wc.Results) {
				t.Fatalf("run %d case %d: %v, want %v", i, j, cr.Case, wc.Case)
			}
			for k, r := range cr.Results {
				w := wc.Results[k]
				if r.Impl != w.Impl || r.Skip != w.Skip || r.RecordsPerSec() != w.RecordsPerSec() || r.Lat.Count() != w.Lat.Count() ||
					r.Lat.Quantile(0.5) != w.Lat.Quantile(0.5) || r.Lat.Quantile(1) != w.Lat.Quantile(1) || r.Lat.Max() != w.Lat.Max() {
					t.Errorf("run %d %s %s: %+v, want %+v", i, cr.Case, r.Impl, r, w)
				}
			}
		}
	}
}

// TestResultsRejectsOtherFormats: a file of another format or with a
// histogram whose buckets disagree with its count is refused.
func TestResultsRejectsOtherFormats(t *testing.T) {
	if _, err := DecodeRuns([]byte(`{"Format": 99, "Runs": []}`)); !errors.Is(err, ErrResultsFormat) {
		t.Errorf("format 99: %v, want ErrResultsFormat", err)
	}
	bad := `{"Format": 1, "Runs": [{"Cases": [{"Case": {"Workload": "durable"}, "Results": [{"Impl": "aof", "Lat": {"n": 3, "max": 9, "buckets": [[5, 1]]}}]}]}]}`
	if _, err := DecodeRuns([]byte(bad)); !errors.Is(err, ErrResultsFormat) {
		t.Errorf("inconsistent histogram: %v, want ErrResultsFormat", err)
	}
}

// TestHistCDF: the CDF rises to 1 in steps at the buckets' bounds.
func TestHistCDF(t *testing.T) {
	var h Hist
	for _, d := range []time.Duration{100, 100, 1000, 5000} {
		h.Record(d)
	}
	cdf := h.CDF()
	if len(cdf) != 3 {
		t.Fatalf("CDF %v: want 3 steps", cdf)
	}
	want := []float64{0.5, 0.75, 1}
	for i, p := range cdf {
		if math.Abs(p.Fraction-want[i]) > 1e-12 || (i > 0 && p.Latency <= cdf[i-1].Latency) {
			t.Errorf("step %d: %+v, want fraction %v, rising latency", i, p, want[i])
		}
	}
	if cdf[2].Latency != 5000 {
		t.Errorf("last step at %v, want the max 5µs", cdf[2].Latency)
	}
}

// TestVerdictsOverRuns: the lowest ratio over the runs is reported; met
// only when every run meets the goal; a run lacking the figures keeps a
// verdict from being met; a check no run has is left out.
func TestVerdictsOverRuns(t *testing.T) {
	t0 := time.Now()
	r1, r2 := synthRun(t0, 1400), synthRun(t0, 1250) // vs raw 1000/s: 1.40×, 1.25×
	runs := [][]CaseResult{r1.Cases, r2.Cases}
	vs := Verdicts(runs, Checks([]int{4096}))
	by := map[string]Verdict{}
	for _, v := range vs {
		by[v.Check.Issue+" "+v.Check.Name] = v
	}
	v := by["15 durable, 1 writer vs raw floor (fallocate)"]
	if len(v.Runs) != 2 || math.Abs(v.Lowest-1.25) > 1e-9 || v.Met || !v.Missed || v.Word() != "**missed**" {
		t.Errorf("1.40× and 1.25× against 1.3×: %+v", v)
	}
	if math.Abs(v.Runs[0].Ratio-1.4) > 1e-9 || math.Abs(v.Runs[1].Ratio-1.25) > 1e-9 {
		t.Errorf("each run's value: %+v", v.Runs)
	}
	v = by["7 durable, 1 writer vs raw floor"]
	if !v.Met || v.Word() != "met" || math.Abs(v.Lowest-1.25) > 1e-9 {
		t.Errorf("1.40× and 1.25× against 0.85×: %+v", v)
	}
	v = by["15 durable, 64 writers vs pebble"] // 30*aof / 27000
	if want := 1250.0 * 30 / 27000; math.Abs(v.Lowest-want) > 1e-9 || !v.Met {
		t.Errorf("64 writers vs pebble: lowest %v, want %v, met: %+v", v.Lowest, want, v)
	}
	if _, ok := by["15 durable, 1 writer vs tidwall"]; ok {
		t.Error("a check whose peer skipped in every run was kept")
	}
	if _, ok := by["15 durable, 1 writer vs raw-overwrite floor"]; ok {
		t.Error("a check of an implementation no run has was kept")
	}

	// raw-overwrite only in the second run: met there, but not "met".
	r2.Cases[0].Results = append(r2.Cases[0].Results, synth("raw-overwrite", 1000, time.Second, time.Millisecond))
	vs = Verdicts([][]CaseResult{r1.Cases, r2.Cases}, Checks([]int{4096}))
	for _, v := range vs {
		if v.Check.Name != "durable, 1 writer vs raw-overwrite floor" {
			continue
		}
		if v.Met || v.Missed || v.Have != 1 || v.Runs[0].OK || !strings.Contains(v.Word(), "1 of 2") {
			t.Errorf("present in one run of two: %+v, %q", v, v.Word())
		}
		return
	}
	t.Error("raw-overwrite check missing once a run has it")
}

// TestReportOfSeveralRuns: the summary shows each run's figure and ratio;
// the verdict table the lowest ratio and each run's value.
func TestReportOfSeveralRuns(t *testing.T) {
	t0 := time.Now()
	runs := [][]CaseResult{synthRun(t0, 1400).Cases, synthRun(t0, 1250).Cases}
	var sb strings.Builder
	WriteSummary(&sb, runs)
	WriteVerdicts(&sb, Verdicts(runs, Checks([]int{4096})), "15")
	out := sb.String()
	for _, want := range []string{"**1.4k / 1.25k**", "1k / 1k (1.40× / 1.25×)", "| 1.25× | ≥ 1.30× | **missed** | 1: 1.40× (1.4k vs 1k records/s); 2: 1.25× (1.25k vs 1k records/s) |"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestDrawPictures: from synthetic runs, the pictures are non-empty,
// well-formed SVG naming every implementation that has figures.
func TestDrawPictures(t *testing.T) {
	t0 := time.Now()
	r2 := synthRun(t0, 1250)
	r2.Cases[0].Results = append(r2.Cases[0].Results, synth("raw-overwrite", 1100, time.Second, 150*time.Microsecond))
	runs := [][]CaseResult{synthRun(t0, 1400).Cases, r2.Cases}
	files, err := DrawPictures(filepath.Join(t.TempDir(), "run"), runs)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || !strings.HasSuffix(files[0], "-durable-cdf-4KiB.svg") || !strings.HasSuffix(files[1], "-durable-writers-4KiB.svg") {
		t.Fatalf("drew %v", files)
	}
	for i, want := range [][]string{{"aof", "raw", "pebble", "raw-overwrite"}, {"aof", "raw", "pebble"}} {
		data, err := os.ReadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		texts := svgTexts(t, data)
		for _, n := range want {
			if !texts[n] {
				t.Errorf("%s: no series %q among %v", filepath.Base(files[i]), n, texts)
			}
		}
		if texts["tidwall"] {
			t.Errorf("%s: draws tidwall, which skipped", filepath.Base(files[i]))
		}
	}
	if _, err := DrawPictures(filepath.Join(t.TempDir(), "none"), nil); err != nil {
		t.Errorf("no runs: %v", err)
	}
}

// svgTexts parses an SVG document (failing the test if it is not
// well-formed XML with an svg root) and returns its text elements.
func svgTexts(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	if len(data) == 0 {
		t.Fatal("empty picture")
	}
	d := xml.NewDecoder(strings.NewReader(string(data)))
	texts, root, inText := map[string]bool{}, "", false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v", err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = x.Name.Local
			}
			inText = x.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts[strings.TrimSpace(string(x))] = true
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return texts
}

// TestDrawPicturesOneWriterCount: a run of one writer count (compare
// -writers 1) draws its latency CDF and no records-by-writers picture,
// without failing (it panicked on the log axis of one value).
func TestDrawPicturesOneWriterCount(t *testing.T) {
	var one []CaseResult
	for _, cr := range synthRun(time.Now(), 1400).Cases {
		if cr.Case.Writers <= 1 {
			one = append(one, cr)
		}
	}
	files, err := DrawPictures(filepath.Join(t.TempDir(), "run"), [][]CaseResult{one})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || !strings.HasSuffix(files[0], "-durable-cdf-4KiB.svg") {
		t.Fatalf("drew %v, want the CDF only", files)
	}
}
