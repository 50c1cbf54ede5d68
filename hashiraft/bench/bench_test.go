package bench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The benchmarks run one store at a time; sub-benchmark names carry
// store=, so `benchstat -col /store` puts the stores side by side.
// cmd/compare runs them interleaved in one run instead, with ratios.

func report(b *testing.B, r Result, unit string) {
	b.ReportMetric(r.PerSec(), unit)
	b.ReportMetric(float64(r.Pct(50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(r.Pct(99).Nanoseconds()), "p99-ns")
}

// BenchmarkCluster: b.N commands applied through a 3-node raft cluster on
// 127.0.0.1 by 1 or 64 callers.
func BenchmarkCluster(b *testing.B) {
	for _, size := range []int{256, 4096} {
		for _, callers := range []int{1, 64} {
			for _, kind := range Kinds {
				b.Run(fmt.Sprintf("size=%d/callers=%d/store=%s", size, callers, kind), func(b *testing.B) {
					ctx := context.Background()
					c, err := StartCluster(ctx, kind, b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					b.ResetTimer()
					r, err := c.Run(ctx, ClusterCase{Kind: kind, Size: size, Callers: callers, Warmup: 300 * time.Millisecond, Applies: b.N})
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					report(b, r, "cmds/s")
					b.ReportMetric(0, "ns/op") // wall time includes the warm-up; cmds/s is the figure
				})
			}
		}
	}
}

// BenchmarkStoreLogs: b.N calls of StoreLogs with batches of 1 or 64
// entries, one caller.
func BenchmarkStoreLogs(b *testing.B) {
	for _, size := range []int{256, 4096} {
		for _, batch := range []int{1, 64} {
			for _, kind := range Kinds {
				b.Run(fmt.Sprintf("size=%d/batch=%d/store=%s", size, batch, kind), func(b *testing.B) {
					s, err := OpenStore(kind, b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					b.ResetTimer()
					r, err := StoreLogs(s, size, batch, b.N, 0)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					report(b, r, "entries/s")
				})
			}
		}
	}
}

// BenchmarkGetLog: b.N GetLog calls, sequential or random, over a log of
// 64 Ki entries of 256 bytes (page cache warm).
func BenchmarkGetLog(b *testing.B) {
	for _, order := range []string{"seq", "random"} {
		for _, kind := range Kinds {
			b.Run(fmt.Sprintf("order=%s/store=%s", order, kind), func(b *testing.B) {
				s, err := OpenStore(kind, b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if err := Fill(s, 256, 64<<10); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				r, err := GetLog(s, order == "random", b.N, 0)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				report(b, r, "reads/s")
			})
		}
	}
}
