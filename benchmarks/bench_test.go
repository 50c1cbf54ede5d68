// Package benchmarks holds the go test -bench suites of the side-by-side
// comparison: the workloads of cmd/compare, one implementation at a time,
// b.N operations each, so benchstat can compare two commits or two
// implementations. Sub-benchmark names carry size=, writers= and impl=,
// so for example
//
//	go test -run '^$' -bench 'Durable/writers=1/' -benchtime 2000x -count 6 . | tee durable.txt
//	benchstat -col /impl durable.txt
//
// puts the implementations side by side. Every benchmark reports
// records/s, p50/p99/p99.9 latency in ns and, where the implementation can
// count them, fsyncs/record. The reopen and random-read logs are 64 MiB by
// default; AOF2_BENCH_READ_MIB=1024 makes them 1 GiB.
package benchmarks

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/aof2/aof2/benchmarks/harness"
)

var sizes = []int{64, 256, 4096, 65536}

func eachImpl(b *testing.B, mode harness.Mode, fn func(b *testing.B, impl harness.Impl)) {
	eachImplOf(b, mode, false, fn)
}

// eachReader is eachImpl for the read benchmarks: without the
// write-only floors.
func eachReader(b *testing.B, mode harness.Mode, fn func(b *testing.B, impl harness.Impl)) {
	eachImplOf(b, mode, true, fn)
}

func eachImplOf(b *testing.B, mode harness.Mode, reads bool, fn func(b *testing.B, impl harness.Impl)) {
	for _, impl := range harness.Impls() {
		if !impl.Has(mode) || reads && impl.WritesOnly {
			continue
		}
		b.Run("impl="+impl.Name, func(b *testing.B) { fn(b, impl) })
	}
}

func report(b *testing.B, h *harness.Hist, records int64, syncs int64) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(h.Quantile(0.5).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(h.Quantile(0.99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(h.Quantile(0.999).Nanoseconds()), "p99.9-ns")
	if syncs >= 0 && records > 0 {
		b.ReportMetric(float64(syncs)/float64(records), "fsyncs/record")
	}
}

func benchWrites(b *testing.B, c harness.Case, impl harness.Impl, sample int) {
	lg, err := impl.Open(b.TempDir(), c.Mode())
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	if _, _, err := harness.WriteOps(lg, c, 1, 1); err != nil { // files created, first sync done
		b.Fatal(err)
	}
	s0 := lg.Syncs()
	per := int64(c.Size)
	if c.Workload == harness.WBatch {
		per *= harness.BatchSize
	}
	b.SetBytes(per)
	b.ReportAllocs()
	b.ResetTimer()
	h, recs, err := harness.WriteOps(lg, c, int64(b.N), sample)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	syncs := int64(-1)
	if s0 >= 0 {
		syncs = lg.Syncs() - s0
	}
	report(b, &h, recs, syncs)
}

// BenchmarkBuffered: one writer, Append in each implementation's no-sync
// mode (aof: Append with the background flusher running). ns/op is per
// record; latency is sampled on 1 append in 16.
func BenchmarkBuffered(b *testing.B) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			eachImpl(b, harness.Buffered, func(b *testing.B, impl harness.Impl) {
				benchWrites(b, harness.Case{Workload: harness.WBuffered, Size: size}, impl, 16)
			})
		})
	}
}

// BenchmarkDurable: 1, 16 or 64 goroutines, each appending one record and
// waiting for it to be durable, b.N records in all. ns/op is wall time per
// durable record.
func BenchmarkDurable(b *testing.B) {
	for _, w := range []int{1, 16, 64} {
		for _, size := range sizes {
			b.Run(fmt.Sprintf("writers=%d/size=%d", w, size), func(b *testing.B) {
				eachImpl(b, harness.Durable, func(b *testing.B, impl harness.Impl) {
					benchWrites(b, harness.Case{Workload: harness.WDurable, Size: size, Writers: w}, impl, 1)
				})
			})
		}
	}
}

// BenchmarkBatch64: one writer, durable batches of 64 records. ns/op is
// per batch; records/s counts records.
func BenchmarkBatch64(b *testing.B) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			eachImpl(b, harness.Durable, func(b *testing.B, impl harness.Impl) {
				benchWrites(b, harness.Case{Workload: harness.WBatch, Size: size}, impl, 1)
			})
		})
	}
}

func readLogBytes() int64 {
	if v := os.Getenv("AOF2_BENCH_READ_MIB"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			return n << 20
		}
	}
	return 64 << 20
}

// buildReadLog builds a log of readLogBytes() (at most 1 Mi records) in a
// temp dir and returns it with its mode and record count.
func buildReadLog(b *testing.B, impl harness.Impl, size int) (string, harness.Mode, int64) {
	mode := harness.Buffered
	if !impl.Has(mode) {
		mode = harness.Durable
	}
	dir := b.TempDir()
	lg, err := impl.Open(dir, mode)
	if err != nil {
		b.Fatal(err)
	}
	n, err := harness.BuildLog(lg, size, min(readLogBytes(), int64(size)<<20))
	if cerr := lg.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	return dir, mode, n
}

// BenchmarkReopenRead: Open, then read and check every record, then Close,
// of a log built once per sub-benchmark (warm page cache). ns/op is one
// whole pass; MB/s is payload.
func BenchmarkReopenRead(b *testing.B) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			eachReader(b, harness.Durable, func(b *testing.B, impl harness.Impl) {
				dir, mode, n := buildReadLog(b, impl, size)
				b.SetBytes(n * int64(size))
				b.ReportAllocs()
				for b.Loop() {
					lg, err := impl.Open(dir, mode)
					if err != nil {
						b.Fatal(err)
					}
					got, err := harness.ScanAll(lg, size)
					if cerr := lg.Close(); err == nil {
						err = cerr
					}
					if err == nil && got != n {
						err = fmt.Errorf("read %d records of %d", got, n)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkRandomRead: Read of a uniformly random sequence number, checked,
// on a reopened log built once per sub-benchmark (warm page cache).
func BenchmarkRandomRead(b *testing.B) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			eachReader(b, harness.Durable, func(b *testing.B, impl harness.Impl) {
				dir, mode, n := buildReadLog(b, impl, size)
				lg, err := impl.Open(dir, mode)
				if err != nil {
					b.Fatal(err)
				}
				defer lg.Close()
				var h harness.Hist
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				err = harness.RandomReads(lg, b.N, n, size, 1, &h)
				b.StopTimer()
				if errors.Is(err, harness.ErrUnsupported) {
					b.Skip("no read by sequence number")
				}
				if err != nil {
					b.Fatal(err)
				}
				report(b, &h, int64(b.N), -1)
			})
		})
	}
}

// BenchmarkFollow: one writer appends b.N records durably while a follower
// tails the log; latency is append call to the follower seeing the record
// (aof: Follow at the Durable level; aof-written: at the Written level;
// peers: polling Read).
func BenchmarkFollow(b *testing.B) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			for _, impl := range harness.Impls() {
				if impl.WritesOnly {
					continue
				}
				levels := []harness.FollowLevel{harness.FollowDurable}
				if impl.Follow != nil {
					levels = append(levels, harness.FollowWritten)
				}
				for _, lv := range levels {
					name := impl.Name
					if lv == harness.FollowWritten {
						name += "-written"
					}
					b.Run("impl="+name, func(b *testing.B) {
						b.ReportAllocs()
						h, err := harness.FollowOps(impl, b.TempDir(), lv, size, b.N)
						if errors.Is(err, harness.ErrUnsupported) {
							b.Skip(err)
						}
						if err != nil {
							b.Fatal(err)
						}
						report(b, &h, int64(b.N), -1)
					})
				}
			}
		})
	}
}
