package aof

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkPrewrite shows both sides of Config.NoPrewrite, off and on
// in the same run (interleave them with -count):
//
//   - durable: one goroutine, Append of size bytes then FlushUntil, the
//     latency of each reported as p50 and p99 (µs). The log first fills
//     one segment, untimed, so that what is timed runs on segments the
//     preparer made (the first one, made by Open, is never prewritten).
//   - buffered: one goroutine, Append of 64 KiB with no wait, then one
//     Sync, all timed: records/s when the device's bandwidth is the
//     limit, which the zero writes share.
//
// Default Config (64 MiB segments), log in b.TempDir(). prewritten-% is
// the share of the segments the preparer made that was prewritten when
// a rollover took them (a rollover takes a segment whose prewrite is
// still running, after its current chunk).
//
//	go test -run '^$' -bench Prewrite -benchtime 3000x -count 6 ./aof/ | tee prewrite.txt
//	benchstat -col /prewrite prewrite.txt
func BenchmarkPrewrite(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		for _, mode := range prewriteModes {
			b.Run(fmt.Sprintf("durable/size=%d/prewrite=%s", size, mode), func(b *testing.B) {
				benchPrewriteDurable(b, size, mode)
			})
		}
	}
	for _, mode := range prewriteModes {
		b.Run(fmt.Sprintf("buffered/size=65536/prewrite=%s", mode), func(b *testing.B) {
			benchPrewriteBuffered(b, 64<<10, mode)
		})
	}
}

// prewriteModes: off, on (the preparer in the idle I/O class, as shipped),
// and on-busy (in the default class).
var prewriteModes = []string{"off", "on", "on-busy"}

func prewriteOpen(b *testing.B, mode string) *Log {
	b.Helper()
	l, err := Open(b.TempDir(), Config{NoPrewrite: mode == "off"},
		func(o *options) {
			o.prewriteBusy = mode == "on-busy"
		})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func benchPrewriteDurable(b *testing.B, size int, mode string) {
	l := prewriteOpen(b, mode)
	defer benchClose(b, l)
	p := benchPayload(size)
	dctx := durableCtx(b)
	durable := func() {
		id, err := l.Append(benchCtx, p)
		if err == nil {
			err = l.FlushUntil(dctx, id)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	for l.active.Load().Header().Index < 2 {
		durable()
	}
	lat := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		durable()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	reportPrewritten(b, l)
}

// reportPrewritten reports the share of the segments made by the
// preparer (taken, or ready) that was prewritten.
func reportPrewritten(b *testing.B, l *Log) {
	made := l.active.Load().Header().Index - 1
	l.prep.mu.Lock()
	if l.prep.ready != nil {
		made++
	}
	l.prep.mu.Unlock()
	if made > 0 && !l.cfg.NoPrewrite {
		b.ReportMetric(100*float64(l.Metrics().PrewrittenBytes)/float64(int64(made)*l.cfg.SegmentSize), "prewritten-%")
	}
}

func benchPrewriteBuffered(b *testing.B, size int, mode string) {
	l := prewriteOpen(b, mode)
	defer benchClose(b, l)
	settle()
	p := benchPayload(size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		if _, err := l.Append(benchCtx, p); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(durableCtx(b)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	reportPrewritten(b, l)
}
