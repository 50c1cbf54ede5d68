package harness

import (
	"errors"
	"math/rand/v2"
	"time"
)

// The functions below serve the go test -bench suites (bench_test.go in
// the benchmarks module), which run one implementation at a time for b.N
// operations so benchstat can compare two commits.

// WriteOps runs n operations of a write case on lg (records, or batches
// for WBatch), recording the latency of every sample-th operation of each
// writer. It returns the latencies and the records appended.
func WriteOps(lg Log, c Case, n int64, sample int) (Hist, int64, error) {
	ring := newPayloads(c.Size, 64, uint64(c.Size))
	h, recs, _, err := writeSlice(lg, c, n, time.Now().Add(24*time.Hour), sample, ring)
	return h, recs, err
}

// RandomReads does n Reads of uniformly random sequence numbers in
// [1, records] on a BuildLog log, checks each, and records their latency
// in h. It returns ErrUnsupported when lg has no Read.
func RandomReads(lg Log, n int, records int64, size int, seed uint64, h *Hist) error {
	if _, err := lg.Read(1, nil); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	var (
		buf []byte
		err error
	)
	for range n {
		seq := 1 + rng.Uint64N(uint64(records))
		t0 := time.Now()
		buf, err = lg.Read(seq, buf[:0])
		h.Record(time.Since(t0))
		if err != nil {
			return err
		}
		if err := checkRecord(seq, buf, size); err != nil {
			return err
		}
	}
	return nil
}

// FollowOps opens a fresh log of impl in dir (Durable mode), appends n
// records of size bytes from one writer while a follower tails at level
// (impl's Follow, or polling Read), and returns the append → visible
// latencies. It returns ErrUnsupported when impl cannot be followed.
func FollowOps(impl Impl, dir string, level FollowLevel, size, n int) (Hist, error) {
	r := &Result{Impl: impl.Name}
	o := Options{Dir: dir, Slice: 24 * time.Hour}
	if err := followSlice(o, impl, level, max(size, 8), r, uint64(n)); err != nil {
		return Hist{}, err
	}
	if r.Skip != "" {
		return Hist{}, errors.Join(ErrUnsupported, errors.New(r.Skip))
	}
	return r.Lat, nil
}
