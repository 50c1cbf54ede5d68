package harness

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
	"time"

	"golang.org/x/sys/unix"
)

// Syncer is a log that can make what was appended durable without being
// closed (a buffered log's sync). Adapters whose durable mode is their
// only mode need not have it.
type Syncer interface {
	Sync() error
}

// VmRSS returns the process's resident set (VmRSS) in bytes, after a GC
// that hands the Go heap's free pages back, so the heap adds little noise.
func VmRSS() (int64, error) {
	runtime.GC()
	debug.FreeOSMemory()
	return statusBytes("VmRSS:")
}

// statusBytes reads one "kB" field of /proc/self/status.
func statusBytes(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte(field)); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss: %s %q: %w", field, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("rss: no %s in /proc/self/status", field)
}

// CountFDs returns the number of open file descriptors of the process.
func CountFDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("count fds: %w", err)
	}
	return len(ents), nil
}

// CountMaps returns the number of memory mappings of the process.
func CountMaps() (int, error) {
	m, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("count maps: %w", err)
	}
	return bytes.Count(m, []byte{'\n'}), nil
}

// DiskBytes returns the bytes allocated on disk under root.
func DiskBytes(root string) (int64, error) {
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
		return 0, fmt.Errorf("disk usage of %s: %w", root, err)
	}
	return n, nil
}

// processCounts is what the process holds at one moment.
type processCounts struct {
	rss            int64
	fds, gor, maps int
}

func countProcess() (processCounts, error) {
	var p processCounts
	var err error
	if p.rss, err = VmRSS(); err != nil {
		return p, err
	}
	if p.fds, err = CountFDs(); err != nil {
		return p, err
	}
	p.gor = runtime.NumGoroutine()
	p.maps, err = CountMaps()
	return p, err
}

// ManyLogs is what n logs open at once cost the process, above what it
// held before the first Open.
type ManyLogs struct {
	Logs       int
	Segment    int64 // segment size the logs were opened with (0: the adapter's usual)
	Records    int   // durable records appended to each
	RSS        int64 // resident set, in total
	FDs        int   // file descriptors, in total
	Goroutines int
	Maps       int           // memory mappings, in total
	Disk       int64         // bytes allocated on disk, in total
	Open       time.Duration // time in Open, in total
}

// MeasureManyLogs opens n logs in directories under root with open, gives
// each records durable appends of payload (so open should open them in
// Durable mode), measures the process while all are open, then closes
// them all.
func MeasureManyLogs(root string, open func(dir string) (Log, error), n, records int, payload []byte) (ManyLogs, error) {
	m := ManyLogs{Logs: n, Records: records}
	before, err := countProcess()
	if err != nil {
		return m, err
	}
	logs := make([]Log, 0, n)
	defer func() {
		for _, lg := range logs {
			lg.Close()
		}
	}()
	for i := range n {
		dir := filepath.Join(root, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return m, fmt.Errorf("many logs: %w", err)
		}
		start := time.Now()
		lg, err := open(dir)
		m.Open += time.Since(start)
		if err != nil {
			return m, fmt.Errorf("many logs: open %d: %w", i, err)
		}
		logs = append(logs, lg)
		for range records {
			if err := lg.Append(payload); err != nil {
				return m, fmt.Errorf("many logs: append to %d: %w", i, err)
			}
		}
	}
	after, err := countProcess()
	if err != nil {
		return m, err
	}
	m.RSS, m.FDs, m.Goroutines, m.Maps = after.rss-before.rss, after.fds-before.fds, after.gor-before.gor, after.maps-before.maps
	if m.Disk, err = DiskBytes(root); err != nil {
		return m, err
	}
	toClose := logs
	logs = nil
	for i, lg := range toClose {
		if cerr := lg.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("many logs: close %d: %w", i, cerr)
		}
	}
	return m, err
}

// Memory is what one log costs in memory, above the process before its
// Open: idle, and under a load of appends.
type Memory struct {
	Opened   int64 // RSS right after Open of a new log (Durable mode)
	Idle     int64 // RSS after one durable record, idle
	LoadMode Mode  // the mode of the load: Buffered where the log has it
	Loaded   int64 // payload bytes appended under load
	LoadTime time.Duration
	// LoadPeak is the process's peak RSS (VmHWM, reset as the load
	// began) while the load appended, above the process before the
	// load's Open.
	LoadPeak int64
	// AfterLoad is RSS once the load's backlog is durable (synced), the
	// process idle, after a GC.
	AfterLoad int64
	// AfterLoadAnon and AfterLoadFile split AfterLoad into anonymous
	// memory and mapped file pages.
	AfterLoadAnon, AfterLoadFile int64
}

// MeasureMemory measures impl's Memory with logs under dir: one log for
// the idle figures, then another that takes total payload bytes of
// size-byte records (or as many as fit in limit).
func MeasureMemory(impl Impl, dir string, size int, total int64, limit time.Duration) (Memory, error) {
	var m Memory
	rss0, err := VmRSS()
	if err != nil {
		return m, err
	}
	lg, err := impl.Open(mkdir(dir, "idle"), Durable)
	if err != nil {
		return m, err
	}
	rss1, err := VmRSS()
	if err == nil {
		err = lg.Append(Payload(1, 256))
	}
	var rss2 int64
	if err == nil {
		settleIdle(time.Second)
		rss2, err = VmRSS()
	}
	if cerr := lg.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return m, err
	}
	m.Opened, m.Idle = rss1-rss0, rss2-rss0
	err = measureLoad(impl, mkdir(dir, "load"), size, total, limit, &m)
	return m, err
}

func mkdir(dir, name string) string {
	p := filepath.Join(dir, name)
	_ = os.MkdirAll(p, 0o700) // Open reports a missing directory
	return p
}

func measureLoad(impl Impl, dir string, size int, total int64, limit time.Duration, m *Memory) error {
	m.LoadMode = Buffered
	if !impl.Has(Buffered) {
		m.LoadMode = Durable
	}
	rss0, err := VmRSS()
	if err != nil {
		return err
	}
	var m0 struct{ anon, file int64 }
	if m0.anon, m0.file, err = rssParts(); err != nil {
		return err
	}
	lg, err := impl.Open(dir, m.LoadMode)
	if err != nil {
		return err
	}
	defer lg.Close()
	resetPeakRSS()
	ring := newPayloads(size, 64, 3)
	start := time.Now()
	deadline := start.Add(limit)
	for i := 0; m.Loaded < total && (i%64 != 0 || time.Now().Before(deadline)); i++ {
		if err = lg.Append(ring[i%len(ring)]); err != nil {
			break
		}
		m.Loaded += int64(size)
	}
	m.LoadTime = time.Since(start)
	peak := peakRSS()
	if err != nil {
		return err
	}
	if s, ok := lg.(Syncer); ok {
		if err := s.Sync(); err != nil {
			return err
		}
	}
	settleIdle(2 * time.Second)
	after, err := VmRSS()
	if err != nil {
		return err
	}
	m.LoadPeak, m.AfterLoad = peak-rss0, after-rss0
	m.AfterLoadAnon, m.AfterLoadFile, err = rssParts()
	m.AfterLoadAnon -= m0.anon
	m.AfterLoadFile -= m0.file
	return err
}

// rssParts returns the anonymous and the file-backed parts of the
// process's resident set.
func rssParts() (anon, file int64, err error) {
	if anon, err = statusBytes("RssAnon:"); err != nil {
		return 0, 0, err
	}
	file, err = statusBytes("RssFile:")
	return anon, file, err
}

// OpenTimes are the latencies of opening logs: a new one, a small one
// again, and the first durable append after Open.
type OpenTimes struct {
	New         Hist // Open of a new log in an empty directory
	Reopen      Hist // Open of a log of one record
	FirstAppend Hist // the first durable Append after Open of a new log
}

// MeasureOpens opens n new logs of impl under dir (Durable mode), times
// Open and the first durable 256-byte append, closes each and times its
// reopen; every log is removed after.
func MeasureOpens(impl Impl, dir string, n int) (OpenTimes, error) {
	var t OpenTimes
	p := Payload(2, 256)
	for i := range n {
		d := mkdir(dir, fmt.Sprintf("open-%d", i))
		t0 := time.Now()
		lg, err := impl.Open(d, Durable)
		t1 := time.Now()
		if err != nil {
			return t, err
		}
		err = lg.Append(p)
		t2 := time.Now()
		if cerr := lg.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return t, err
		}
		t.New.Record(t1.Sub(t0))
		t.FirstAppend.Record(t2.Sub(t1))
		t3 := time.Now()
		lg, err = impl.Open(d, Durable)
		t.Reopen.Record(time.Since(t3))
		if err != nil {
			return t, err
		}
		if err := lg.Close(); err != nil {
			return t, err
		}
		if err := os.RemoveAll(d); err != nil {
			return t, fmt.Errorf("opens: %w", err)
		}
	}
	return t, nil
}
