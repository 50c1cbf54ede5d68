package aof

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aof2/aof2/segment"
)

// BenchmarkDurableRecycled: one goroutine, Append of size bytes then
// FlushUntil on its RecordID, on a log with retention (8 MiB segments,
// RetainBytes 8 MiB) whose new segments are recycled files
// (src=recycled, RecycleSegments 1) or fresh preallocated ones
// (src=fresh, RecycleSegments -1), in the same run so both share the
// disk's state. Before the timer both logs fill three segments at least,
// and the recycled log until its active segment is a recycled file; each rollover during
// the run takes a recycled file, or a new one. Compare with
//
//	go test -run '^$' -bench 'DurableRecycled' -benchtime 2000x -count 6 ./aof/ | tee out
//	benchstat -col /src out
func BenchmarkDurableRecycled(b *testing.B) {
	for _, size := range []int{4096, 64 << 10} {
		for _, src := range []string{"fresh", "recycled"} {
			b.Run(fmt.Sprintf("size=%d/src=%s", size, src), func(b *testing.B) {
				benchDurableRecycled(b, size, src == "recycled")
			})
		}
	}
}

func benchDurableRecycled(b *testing.B, size int, recycled bool) {
	cfg := Config{SegmentSize: 8 << 20, RetainBytes: 8 << 20, RecycleSegments: -1}
	if recycled {
		cfg.RecycleSegments = 1
	}
	l := benchOpen(b, b.TempDir(), cfg)
	defer benchClose(b, l)
	dctx := durableCtx(b)
	// Fill until the log is on its fourth segment at least, and (the
	// retainer runs in the background) on a recycled one if recycled.
	fill := benchPayload(64 << 10)
	for i := 0; ; i++ {
		a := l.active.Load()
		if a.Header().Index >= 4 && a.Recycled() == recycled {
			break
		}
		if i > 8192 {
			b.Fatalf("active segment %d recycled: %v after 512 MiB, want %v", a.Header().Index, a.Recycled(), recycled)
		}
		if _, err := l.Append(benchCtx, fill); err != nil {
			b.Fatal(err)
		}
		if i%16 == 0 {
			if err := l.Sync(dctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := l.Sync(dctx); err != nil {
		b.Fatal(err)
	}
	settle()
	p := benchPayload(size)
	_, taken := l.pool.stats()
	timeDurable(dctx, b, l, p)
	_, after := l.pool.stats()
	b.ReportMetric(float64(after-taken), "recycled-files")
}

// BenchmarkReopenRecycledTail: Open then Close of a log left by a crash
// (no DURABLE mark, so recovery judges the active segment's tail) whose
// active segment, of 64 MiB, holds 10 records of 4 KiB: a recycled file
// whose earlier life filled all of it with 64 KiB records (src=recycled:
// 64 MiB of stale non-zero bytes past the data end, with sequence numbers
// of an earlier era), or a fresh one (src=fresh: zeros). The DURABLE mark Close writes is removed after each
// Close, so every Open judges the tail again. recovery-ns/op is
// RecoveryReport.Duration.
func BenchmarkReopenRecycledTail(b *testing.B) {
	for _, src := range []string{"fresh", "recycled"} {
		b.Run("src="+src, func(b *testing.B) {
			dir, cfg := recycledTailLog(b, src == "recycled")
			var rec int64
			for b.Loop() {
				l, err := Open(dir, cfg)
				if err != nil {
					b.Fatal(err)
				}
				rep := l.Recovery()
				rec += int64(rep.Duration)
				if rep.Scanned == 0 || len(rep.Truncations) != 0 {
					b.Fatalf("recovery scanned %d segments, truncations %+v", rep.Scanned, rep.Truncations)
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
				if err := os.Remove(filepath.Join(dir, segment.DurableFile)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rec)/float64(b.N), "recovery-ns/op")
		})
	}
}

// recycledTailLog builds the log of BenchmarkReopenRecycledTail and
// returns its directory (a crash image) and Config.
func recycledTailLog(b *testing.B, recycled bool) (string, Config) {
	b.Helper()
	cfg := Config{SegmentSize: 64 << 20, RecycleSegments: -1}
	if recycled {
		cfg.RecycleSegments = 1
	}
	src := b.TempDir()
	l := benchOpen(b, src, cfg)
	dctx := durableCtx(b)
	fill := benchPayload(64 << 10)
	// Full segments, each dropped by TruncateFront (into the pool if
	// recycled) once the next is active, until the active segment is the
	// third at least, and a recycled file if recycled.
	for i := 0; ; i++ {
		a := l.active.Load()
		if a.Header().Index >= 3 && a.Recycled() == recycled {
			break
		}
		if i > 10000 {
			b.Fatalf("active segment %d recycled: %v after 640 MiB, want %v", a.Header().Index, a.Recycled(), recycled)
		}
		if a.Header().BaseSeq > l.FirstSeq() {
			if err := l.Sync(dctx); err != nil {
				b.Fatal(err)
			}
			if err := l.TruncateFront(dctx, a.Header().BaseSeq); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := l.Append(benchCtx, fill); err != nil {
			b.Fatal(err)
		}
	}
	var id RecordID
	for range 10 {
		var err error
		if id, err = l.Append(benchCtx, fill[:4096]); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.FlushUntil(dctx, id); err != nil {
		b.Fatal(err)
	}
	dir := crashCopy(b, src)
	benchClose(b, l)
	return dir, cfg
}
