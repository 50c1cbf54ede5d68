package harness

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<63 + 5, 1<<64 - 1} {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index of %d is %d, below the previous %d", v, i, prev)
		}
		prev = i
		if i >= histBuckets {
			t.Fatalf("index of %d is %d, beyond %d buckets", v, i, histBuckets)
		}
		up := histUpper(i)
		if up < v {
			t.Fatalf("upper bound %d of bucket %d is below its value %d", up, i, v)
		}
		if v >= 128 && float64(up-v) > float64(v)/64 {
			t.Fatalf("bucket of %d reaches %d: more than 1/64 above", v, up)
		}
		if i+1 < histBuckets && histIndex(up+1) != i+1 {
			t.Fatalf("value after bucket %d's upper bound falls in %d", i, histIndex(up+1))
		}
	}
}

func TestHistQuantilesMatchSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h, a, b Hist
	var vals []time.Duration
	for i := range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(300*time.Microsecond))
		vals = append(vals, d)
		h.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.99, 0.999, 1} {
		exact := vals[int(q*float64(len(vals))+0.999999)-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/64+1 {
			t.Errorf("q%.3f = %v, exact %v", q, got, exact)
		}
		if a.Quantile(q) != got {
			t.Errorf("merged q%.3f = %v, want %v", q, a.Quantile(q), got)
		}
	}
	if h.Count() != 100000 || h.Max() != vals[len(vals)-1] {
		t.Errorf("count %d max %v", h.Count(), h.Max())
	}
}
