package harness

import (
	"math/bits"
	"time"
)

// Hist is a log-bucketed latency histogram in the manner of HdrHistogram:
// values below 128 ns are exact, larger ones fall in one of 64 buckets per
// power of two, so a reported percentile is within 1/64 (1.6 %) of the
// true value, at any magnitude, with a fixed 30 KiB of counters and no
// allocation per value. Percentiles report the bucket's upper bound.
// A Hist is not safe for concurrent use: give each goroutine its own and
// Merge them.
type Hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
}

const (
	histSubBits = 7                                          // 128 exact values, then 64 per octave
	histHalf    = 1 << (histSubBits - 1)                     // 64
	histBuckets = 1<<histSubBits + (64-histSubBits)*histHalf // up to 2^64 ns
)

func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	return 1<<histSubBits + (shift-1)*histHalf + int(v>>shift) - histHalf
}

// histUpper is the largest value that falls in bucket i.
func histUpper(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	i -= 1 << histSubBits
	shift := uint(i/histHalf + 1)
	top := uint64(i%histHalf + histHalf)
	return (top+1)<<shift - 1
}

// Record adds one latency.
func (h *Hist) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)]++
	h.n++
	h.max = max(h.max, v)
}

// Merge adds o's values to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count returns the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Max returns the largest value recorded.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the value at quantile q in [0, 1]: the upper bound of
// the bucket holding the ceil(q*n)-th smallest value (never above Max).
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}
