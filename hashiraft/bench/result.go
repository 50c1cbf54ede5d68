package bench

import (
	"slices"
	"time"
)

// Result is one measured run: Ops operations (applied commands, stored or
// read entries) in Elapsed, and the latency of each timed call.
type Result struct {
	Ops     int
	Elapsed time.Duration
	Lat     []time.Duration
}

// PerSec returns Ops per second.
func (r Result) PerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Pct returns the p-th percentile (0 < p <= 100) of the latencies, 0 when
// there are none (nearest rank on the sorted samples: exact, no buckets).
func (r Result) Pct(p float64) time.Duration {
	if len(r.Lat) == 0 {
		return 0
	}
	if !slices.IsSorted(r.Lat) {
		slices.Sort(r.Lat)
	}
	i := int(p/100*float64(len(r.Lat))+0.5) - 1
	i = max(0, min(i, len(r.Lat)-1))
	return r.Lat[i]
}

// Merge adds o's operations, time and latencies to r (rounds of one case).
func (r *Result) Merge(o Result) {
	r.Ops += o.Ops
	r.Elapsed += o.Elapsed
	r.Lat = append(r.Lat, o.Lat...)
}
