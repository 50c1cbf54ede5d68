package aof

// Benchmarks of the read side:
//
//	go test -run '^$' -bench 'SequentialRead|ReadAt|FollowLatency' -count 6 ./aof/ | tee read.txt
//	benchstat read.txt
//
// SequentialRead reports MB/s (b.SetBytes: payload bytes per record);
// FollowLatency reports the append→visible latency percentiles as extra
// columns (p50-µs, p99-µs).

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// benchLog builds a log of n records of size bytes each (incompressible),
// synced, in dir.
func benchLog(b *testing.B, dir string, n, size int) *Log {
	b.Helper()
	l := benchOpen(b, dir, Config{})
	p := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	for i := 0; i < n; i++ {
		r.Read(p)
		if _, err := l.Append(benchCtx, p); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(benchCtx); err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkSequentialRead reads a 128 MiB log from start to end with a
// Reader, over and over: zero-copy payloads (the default) against copies
// (CopyPayloads, a fresh slice per record). Sealed segments are read
// through their mapping, warm in the page cache.
func BenchmarkSequentialRead(b *testing.B) {
	for _, size := range []int{64, 256, 4096} {
		n := 128 << 20 / size
		l := benchLog(b, b.TempDir(), n, size)
		for _, mode := range []struct {
			name string
			opts []ReaderOption
		}{{"zerocopy", nil}, {"copy", []ReaderOption{CopyPayloads()}}} {
			b.Run(fmt.Sprintf("size=%d/mode=%s", size, mode.name), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				r, _ := l.NewReader(1, Durable, mode.opts...)
				var sum byte
				for i := 0; i < b.N; i++ {
					if !r.Next() {
						if err := r.Err(); err != nil {
							b.Fatal(err)
						}
						r.Close()
						r, _ = l.NewReader(1, Durable, mode.opts...)
						r.Next()
					}
					sum += r.Record().Payload[0]
				}
				r.Close()
				_ = sum
			})
		}
		l.Close()
	}
}

// BenchmarkReadAt reads records at random sequence numbers from a log of
// 1M records of 100 bytes (sparse index, then a walk of at most 4 KiB).
func BenchmarkReadAt(b *testing.B) {
	const n = 1 << 20
	l := benchLog(b, b.TempDir(), n, 100)
	defer l.Close()
	r := rand.New(rand.NewPCG(3, 4))
	seqs := make([]uint64, 1<<16)
	for i := range seqs {
		seqs[i] = 1 + r.Uint64N(n)
	}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec, err := l.Read(seqs[i&(len(seqs)-1)], buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		buf = rec.Payload
	}
}

// BenchmarkFollowLatency measures how long a record takes from Append to
// a follower's hands, at the Written and the Durable level, with one
// writer appending 256-byte records about every 50 µs (the flusher runs
// with the default 5 ms interval and 1 MiB watermark, so at this rate the
// durable level waits for the interval). Latency is the follower's clock
// minus the record's append timestamp.
func BenchmarkFollowLatency(b *testing.B) {
	for _, level := range []Level{Written, Durable} {
		b.Run("level="+level.String(), func(b *testing.B) {
			l := benchOpen(b, b.TempDir(), Config{})
			defer l.Close()
			lat := make([]time.Duration, 0, b.N)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for rec, err := range l.Follow(benchCtx, 1, level) {
					if err != nil {
						b.Error(err)
						return
					}
					lat = append(lat, time.Since(time.Unix(0, rec.Timestamp)))
					if rec.Seq == uint64(b.N) {
						return
					}
				}
			}()
			p := make([]byte, 256)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(benchCtx, p); err != nil {
					b.Fatal(err)
				}
				for t0 := time.Now(); time.Since(t0) < 50*time.Microsecond; {
				}
			}
			<-done
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
			b.ReportMetric(0, "ns/op")
		})
	}
}
