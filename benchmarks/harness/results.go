package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Run is one full pass of compare over its cases: when and where it ran,
// how, and what every implementation did in every case. Runs are saved as
// JSON (see SaveRuns) so runs made at different times can be merged and
// reported together (see LoadRuns, Verdicts).
type Run struct {
	Start   time.Time     // when the pass began (UTC)
	Took    time.Duration // how long it took
	Command string        // the command line that made it
	Rounds  int           // rounds per case
	Slice   time.Duration // time per implementation per round
	Machine Machine
	Cases   []CaseResult
}

// ResultsFile is what SaveRuns writes: one or more runs.
type ResultsFile struct {
	// Format is ResultsFormat; LoadRuns refuses other values.
	Format int
	Runs   []Run
}

// ResultsFormat is the version of the JSON results format.
const ResultsFormat = 1

// ErrResultsFormat: a results file is not in a format this harness reads.
var ErrResultsFormat = errors.New("harness: unknown results format")

// SaveRuns writes runs to path as JSON (through a temporary file renamed
// over it, so a crash mid-write leaves the previous file whole).
func SaveRuns(path string, runs []Run) error {
	data, err := json.MarshalIndent(ResultsFile{Format: ResultsFormat, Runs: runs}, "", " ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// LoadRuns reads the runs of every file and returns them merged: all of
// them, ordered by start time.
func LoadRuns(paths ...string) ([]Run, error) {
	var runs []Run
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		rs, err := DecodeRuns(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		runs = append(runs, rs...)
	}
	return MergeRuns(runs), nil
}

// DecodeRuns decodes one results file.
func DecodeRuns(data []byte) ([]Run, error) {
	var f ResultsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("decode results: %w", err)
	}
	if f.Format != ResultsFormat {
		return nil, fmt.Errorf("format %d, want %d: %w", f.Format, ResultsFormat, ErrResultsFormat)
	}
	return f.Runs, nil
}

// MergeRuns returns the runs ordered by start time (stable, so runs of
// equal start keep their order).
func MergeRuns(runs []Run) []Run {
	out := slices.Clone(runs)
	slices.SortStableFunc(out, func(a, b Run) int { return a.Start.Compare(b.Start) })
	return out
}

// histJSON is Hist's JSON form: only the buckets that hold values.
type histJSON struct {
	N       uint64      `json:"n"`
	Max     uint64      `json:"max"`
	Buckets [][2]uint64 `json:"buckets"` // [bucket index, count]
}

// MarshalJSON encodes the histogram's non-empty buckets.
func (h *Hist) MarshalJSON() ([]byte, error) {
	j := histJSON{N: h.n, Max: h.max, Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			j.Buckets = append(j.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encoded.
func (h *Hist) UnmarshalJSON(data []byte) error {
	var j histJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	*h = Hist{n: j.N, max: j.Max}
	var sum uint64
	for _, b := range j.Buckets {
		if b[0] >= histBuckets {
			return fmt.Errorf("histogram: bucket %d out of range: %w", b[0], ErrResultsFormat)
		}
		h.counts[b[0]] += b[1]
		sum += b[1]
	}
	if sum != j.N {
		return fmt.Errorf("histogram: buckets hold %d values, n is %d: %w", sum, j.N, ErrResultsFormat)
	}
	return nil
}

// CDFPoint is one step of a latency CDF: the fraction of values at or
// below Latency.
type CDFPoint struct {
	Latency  time.Duration
	Fraction float64
}

// CDF returns the histogram's cumulative distribution, one point per
// non-empty bucket (its upper bound, capped at Max).
func (h *Hist) CDF() []CDFPoint {
	if h.n == 0 {
		return nil
	}
	var out []CDFPoint
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		out = append(out, CDFPoint{Latency: time.Duration(min(histUpper(i), h.max)), Fraction: float64(seen) / float64(h.n)})
	}
	return out
}
