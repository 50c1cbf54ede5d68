package aof

// Footprint benchmarks: what an open log costs the process that embeds it,
// with the default Config. RSS is the process's resident set
// (/proc/self/status VmRSS) above what it was just before Open, after a
// GC that returns the heap's free pages to the system.
//
//	go test -run '^$' -bench Footprint -benchtime 10x -count 6 ./aof/ | tee footprint.txt
//	benchstat footprint.txt
//
// Always with a fixed -benchtime: only part of each op is timed (Open, or
// one Append), so a -benchtime in seconds would run thousands of ops.

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

// rssBytes returns the process's resident set size, after a GC that
// returns free heap pages to the system so the Go heap adds little noise.
func rssBytes(b *testing.B) int64 {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

const mib = float64(1 << 20)

// BenchmarkFootprintOpenNew: Open of a new, empty log with the default
// Config (ns/op), and the RSS it adds.
func BenchmarkFootprintOpenNew(b *testing.B) {
	root := b.TempDir()
	var rss int64
	for i := range b.N {
		dir := filepath.Join(root, strconv.Itoa(i))
		b.StopTimer()
		before := rssBytes(b)
		b.StartTimer()
		l := benchOpen(b, dir, Config{})
		b.StopTimer()
		rss += rssBytes(b) - before
		benchClose(b, l)
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(rss)/float64(b.N)/mib, "MiB-rss")
}

// BenchmarkFootprintReopenSmall: Open of a log of one durable 1-byte
// record, closed (ns/op).
func BenchmarkFootprintReopenSmall(b *testing.B) {
	dir := b.TempDir()
	l := benchOpen(b, dir, Config{})
	if _, err := l.Append(benchCtx, []byte{1}); err != nil {
		b.Fatal(err)
	}
	benchClose(b, l)
	b.ResetTimer()
	for range b.N {
		l := benchOpen(b, dir, Config{})
		b.StopTimer()
		benchClose(b, l)
		b.StartTimer()
	}
}

// BenchmarkFootprintFirstAppend: the first Append of a 1-byte record
// right after Open of a new log (ns/op is that Append alone), and the
// time from the start of Open to that Append's return (open+append-ns).
func BenchmarkFootprintFirstAppend(b *testing.B) {
	root := b.TempDir()
	var total time.Duration
	b.StopTimer()
	for i := range b.N {
		dir := filepath.Join(root, strconv.Itoa(i))
		start := time.Now()
		l := benchOpen(b, dir, Config{})
		b.StartTimer()
		if _, err := l.Append(benchCtx, []byte{1}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		total += time.Since(start)
		benchClose(b, l)
		os.RemoveAll(dir)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "open+append-ns")
}

// BenchmarkFootprintIdle: the RSS a log adds with the default Config,
// idle after Open (open-MiB), after one durable 1-byte record (1rec-MiB),
// and after 96 MiB of 4 KiB records appended and synced, which rolls over
// once (96MiB-MiB). ns/op is the whole sequence's time.
func BenchmarkFootprintIdle(b *testing.B) {
	root := b.TempDir()
	payload := benchPayload(4096)
	var open, one, big int64
	for i := range b.N {
		dir := filepath.Join(root, strconv.Itoa(i))
		before := rssBytes(b)
		l := benchOpen(b, dir, Config{})
		open += rssBytes(b) - before
		if _, err := l.Append(benchCtx, []byte{1}); err != nil {
			b.Fatal(err)
		}
		if err := l.Sync(durableCtx(b)); err != nil {
			b.Fatal(err)
		}
		one += rssBytes(b) - before
		for n := 0; n < 96<<20; n += len(payload) {
			if _, err := l.Append(benchCtx, payload); err != nil {
				b.Fatal(err)
			}
		}
		if err := l.Sync(durableCtx(b)); err != nil {
			b.Fatal(err)
		}
		big += rssBytes(b) - before
		benchClose(b, l)
		os.RemoveAll(dir)
	}
	n := float64(b.N)
	b.ReportMetric(float64(open)/n/mib, "open-MiB")
	b.ReportMetric(float64(one)/n/mib, "1rec-MiB")
	b.ReportMetric(float64(big)/n/mib, "96MiB-MiB")
}
