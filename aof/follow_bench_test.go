package aof

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFollowDurableWriter: one writer appends records of size bytes
// durably (Append, then FlushUntil) while a Follow at the Durable level
// tails the log, default Config, log in b.TempDir(). Each record carries
// the time its Append was called; the writer's latency is from then until
// its FlushUntil returned, the follower's until the follower saw it. The
// percentiles are reported in µs, and p99-ratio is the follower's p99 over
// the writer's, measured on the same records (issue 15's goal: at most
// 1.5). gap-p99-µs is the p99 of the time from FlushUntil's return to the
// follower seeing the record (negative: before).
func BenchmarkFollowDurableWriter(b *testing.B) {
	for _, size := range []int{64, 256, 4096, 65536} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			benchFollowDurableWriter(b, size)
		})
	}
}

func benchFollowDurableWriter(b *testing.B, size int) {
	l := benchOpen(b, b.TempDir(), Config{})
	defer benchClose(b, l)
	dctx := durableCtx(b)
	n := b.N
	seen := make([]int64, n+1) // by seq: when the follower saw it
	done := make(chan error, 1)
	var last atomic.Uint64
	go func() {
		for rec, err := range l.Follow(dctx, 1, Durable) {
			if err != nil {
				done <- err
				return
			}
			seen[rec.Seq] = time.Now().UnixNano()
			last.Store(rec.Seq)
			if rec.Seq == uint64(n) {
				done <- nil
				return
			}
		}
	}()
	p := benchPayload(max(size, 8))
	start := make([]int64, n+1)
	returned := make([]int64, n+1)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range n {
		t0 := time.Now().UnixNano()
		binary.LittleEndian.PutUint64(p, uint64(t0))
		id, err := l.Append(benchCtx, p)
		if err == nil {
			err = l.FlushUntil(dctx, id)
		}
		if err != nil {
			b.Fatal(err)
		}
		start[id.Seq], returned[id.Seq] = t0, time.Now().UnixNano()
	}
	if err := <-done; err != nil {
		b.Fatalf("follower stopped at seq %d: %v", last.Load(), err)
	}
	b.StopTimer()
	writer, follower, gap := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	for seq := 1; seq <= n; seq++ {
		writer = append(writer, returned[seq]-start[seq])
		follower = append(follower, seen[seq]-start[seq])
		gap = append(gap, seen[seq]-returned[seq])
	}
	q := func(x []int64, f float64) float64 {
		slices.Sort(x)
		return float64(x[min(len(x)-1, int(f*float64(len(x))))]) / 1e3
	}
	wp99, fp99 := q(writer, 0.99), q(follower, 0.99)
	b.ReportMetric(q(writer, 0.5), "writer-p50-µs")
	b.ReportMetric(wp99, "writer-p99-µs")
	b.ReportMetric(q(follower, 0.5), "follower-p50-µs")
	b.ReportMetric(fp99, "follower-p99-µs")
	b.ReportMetric(q(gap, 0.99), "gap-p99-µs")
	if wp99 > 0 {
		b.ReportMetric(fp99/wp99, "p99-ratio")
	}
}
