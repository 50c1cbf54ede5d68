package benchmarks

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/benchmarks/harness"
)

// vmRSS returns the process's resident set (VmRSS), after a GC that hands the Go heap's free pages back, so the heap adds little
// noise.
func vmRSS(b *testing.B) int64 {
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
	b.Fatal("no VmRSS")
	return 0
}

// countFDs returns the number of open file descriptors of the process.
func countFDs(b *testing.B) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	return len(ents)
}

// countMaps returns the number of memory mappings of the process.
func countMaps(b *testing.B) int {
	m, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Count(m, []byte{'\n'})
}

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

// diskBytes returns the bytes allocated on disk under root.
func diskBytes(b *testing.B, root string) int64 {
	var n int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		n += st.Blocks * 512
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func benchManyLogs(b *testing.B, openLog func(string, harness.Mode) (harness.Log, error), mode harness.Mode, n int) {
	payload := bytes.Repeat([]byte{0xa5}, 256)
	var rss, fds, gor, maps, disk int64
	var open time.Duration
	for range b.N {
		root := b.TempDir()
		rss0, fds0, gor0, maps0 := vmRSS(b), countFDs(b), runtime.NumGoroutine(), countMaps(b)
		logs := make([]harness.Log, 0, n)
		for i := range n {
			dir := filepath.Join(root, strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o700); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			lg, err := openLog(dir, mode)
			open += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			logs = append(logs, lg)
			for range 4 {
				if err := lg.Append(payload); err != nil {
					b.Fatal(err)
				}
			}
		}
		rss += vmRSS(b) - rss0
		fds += int64(countFDs(b) - fds0)
		gor += int64(runtime.NumGoroutine() - gor0)
		maps += int64(countMaps(b) - maps0)
		disk += diskBytes(b, root)
		for _, lg := range logs {
			if err := lg.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	per := float64(b.N) * float64(n)
	b.ReportMetric(float64(rss)/float64(b.N)/(1<<20), "MiB-rss")
	b.ReportMetric(float64(rss)/per/1024, "KiB-rss/log")
	b.ReportMetric(float64(fds)/per, "fds/log")
	b.ReportMetric(float64(gor)/per, "goroutines/log")
	b.ReportMetric(float64(maps)/per, "maps/log")
	b.ReportMetric(float64(open.Nanoseconds())/per, "open-ns/log")
	b.ReportMetric(float64(disk)/per/1024, "disk-KiB/log")
}
