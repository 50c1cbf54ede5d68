package benchmarks

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/aof2/aof2/benchmarks/harness"
)

// BenchmarkManyLogs: logs=N logs of one implementation open at once in
// this process, each with a few durable records (4 of 256 B, in each
// implementation's durable mode); aof's flushers running.
// One op opens them all, appends, syncs, measures and closes them all.
// It reports, above the process before the first Open: RSS in total
// (MiB-rss) and per log (KiB-rss/log), file descriptors, goroutines and
// memory mappings per log, the time to open one (open-ns/log) and the
// disk space allocated per log (disk-KiB/log: preallocated segments
// count whole). A thousand logs use 4 MiB segments (seg=4MiB), so that
// the run does not preallocate 64 GiB.
//
//	go test -run '^$' -bench ManyLogs -benchtime 1x -count 3 . | tee many.txt
//	benchstat -col /impl many.txt
func BenchmarkManyLogs(b *testing.B) {
	for _, c := range []struct {
		logs int
		seg  int64 // 0: the adapter's usual 64 MiB
	}{{1, 0}, {100, 0}, {1000, 4 << 20}} {
		for _, impl := range harness.Impls() {
			if impl.OpenSized == nil {
				continue // raw, pebble: no log API to speak of here
			}
			open := impl.Open
			seg := "64MiB"
			if c.seg != 0 {
				open = func(dir string, mode harness.Mode) (harness.Log, error) { return impl.OpenSized(dir, mode, c.seg) }
				seg = fmt.Sprintf("%dMiB", c.seg>>20)
			}
			b.Run(fmt.Sprintf("logs=%d/seg=%s/impl=%s", c.logs, seg, impl.Name), func(b *testing.B) {
				benchManyLogs(b, open, harness.Durable, c.logs)
			})
		}
	}
}

func benchManyLogs(b *testing.B, openLog func(string, harness.Mode) (harness.Log, error), mode harness.Mode, n int) {
	payload := bytes.Repeat([]byte{0xa5}, 256)
	var sum harness.ManyLogs
	for range b.N {
		m, err := harness.MeasureManyLogs(b.TempDir(), func(dir string) (harness.Log, error) { return openLog(dir, mode) }, n, 4, payload)
		if err != nil {
			b.Fatal(err)
		}
		sum.RSS += m.RSS
		sum.FDs += m.FDs
		sum.Goroutines += m.Goroutines
		sum.Maps += m.Maps
		sum.Disk += m.Disk
		sum.Open += m.Open
	}
	per := float64(b.N) * float64(n)
	b.ReportMetric(float64(sum.RSS)/float64(b.N)/(1<<20), "MiB-rss")
	b.ReportMetric(float64(sum.RSS)/per/1024, "KiB-rss/log")
	b.ReportMetric(float64(sum.FDs)/per, "fds/log")
	b.ReportMetric(float64(sum.Goroutines)/per, "goroutines/log")
	b.ReportMetric(float64(sum.Maps)/per, "maps/log")
	b.ReportMetric(float64(sum.Open.Nanoseconds())/per, "open-ns/log")
	b.ReportMetric(float64(sum.Disk)/per/1024, "disk-KiB/log")
}
