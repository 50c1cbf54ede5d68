package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Machine describes where a run happened.
type Machine struct {
	CPU        string
	Cores      int
	GOMAXPROCS int
	Kernel     string
	Go         string
	Dir        string // where the logs were written
	FS         string // its file system and mount options
	Device     string
	Fdatasync  Floor // measured at the start
}

// Floor is the disk's durable-write floor: pwrite of 4 KiB at increasing
// offsets of a preallocated file, then fdatasync, one after the other.
type Floor struct {
	Writes   int
	P50, P99 time.Duration
}

// Describe gathers the machine's description and measures the fdatasync
// floor with n writes in a scratch file under dir.
func Describe(dir string, n int) (Machine, error) {
	m := Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(), Dir: dir}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.Device, m.FS = mountOf(dir)
	f, err := measureFloor(dir, n)
	if err != nil {
		return m, err
	}
	m.Fdatasync = f
	return m, nil
}

// mountOf returns the device and "fstype (options)" of the mount holding
// dir: the longest mount point that prefixes it.
func mountOf(dir string) (dev, fs string) {
	abs, err := filepath.EvalSymlinks(dir)
	if err != nil {
		abs = dir
	}
	fh, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "?", "?"
	}
	defer fh.Close()
	best := -1
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best = len(mp)
			dev, fs = f[0], f[2]+" ("+f[3]+")"
		}
	}
	return dev, fs
}

func measureFloor(dir string, n int) (Floor, error) {
	d, err := os.MkdirTemp(dir, "aof2bench-floor-")
	if err != nil {
		return Floor{}, fmt.Errorf("floor: %w", err)
	}
	defer os.RemoveAll(d)
	fd, err := unix.Open(filepath.Join(d, "f"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return Floor{}, fmt.Errorf("floor: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fallocate(fd, 0, 0, int64(n+1)*4096); err != nil {
		return Floor{}, fmt.Errorf("floor fallocate: %w", err)
	}
	if err := unix.Fsync(fd); err != nil {
		return Floor{}, fmt.Errorf("floor fsync: %w", err)
	}
	p := Payload(1, 4096)
	var h Hist
	for i := range n {
		t0 := time.Now()
		if _, err := unix.Pwrite(fd, p, int64(i)*4096); err != nil {
			return Floor{}, fmt.Errorf("floor pwrite: %w", err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			return Floor{}, fmt.Errorf("floor fdatasync: %w", err)
		}
		h.Record(time.Since(t0))
	}
	return Floor{Writes: n, P50: h.Quantile(0.5), P99: h.Quantile(0.99)}, nil
}

// resetPeakRSS returns freed heap to the OS and resets the process's peak
// RSS (VmHWM) to its current RSS (Linux >= 4.0), so the next peakRSS
// reading covers what happened since.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns VmHWM in bytes, or -1.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return -1
}

// mallocs returns the process's cumulative heap allocation count.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// settleIdle waits, after a log was opened, until the process has been
// nearly idle (under 10 % of one core) for a 20 ms window, or until limit:
// background set-up that Open starts (aof faulting in its next segment's
// append buffer, for one) then does not compete with what is measured.
// It waits at least one window.
func settleIdle(limit time.Duration) {
	const window = 20 * time.Millisecond
	deadline := time.Now().Add(limit)
	prev := cpuTime()
	for {
		time.Sleep(window)
		now := cpuTime()
		if now-prev < window/10 || time.Now().After(deadline) {
			return
		}
		prev = now
	}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
