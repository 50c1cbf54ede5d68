package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options bound a run.
type Options struct {
	// Dir is where logs are created (a fresh directory per log, removed
	// after its case). Empty: os.TempDir().
	Dir string
	// Rounds is how many times each implementation runs in a case,
	// alternating with the others (the order rotates every round), so
	// drift of a shared, noisy machine hits all alike.
	Rounds int
	// Slice is how long one implementation runs in one round of a
	// write, random-read or follow case.
	Slice time.Duration
	// SliceBytes caps the payload bytes one implementation appends in
	// one round of a buffered or batch case (0: no cap).
	SliceBytes int64
	// ReopenBytes is the payload size of the log built for WReopen and
	// WRandom.
	ReopenBytes int64
	// Settle bounds the pause after opening a log before a write
	// slice: it ends once the process has been idle for 20 ms.
	Settle time.Duration
	// ReopenRecords caps the records of the reopen/random-read log
	// (0: no cap), so small records do not make a huge record count.
	ReopenRecords int64
	// Impls restricts the run to these implementations (empty: all).
	Impls []string
	// Progress, if set, gets a line per step.
	Progress io.Writer
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

func (o *Options) impls() []Impl {
	all := Impls()
	if len(o.Impls) == 0 {
		return all
	}
	var out []Impl
	for _, i := range all {
		for _, n := range o.Impls {
			if i.Name == n {
				out = append(out, i)
			}
		}
	}
	return out
}

// rotate returns xs rotated left by k.
func rotate[T any](xs []T, k int) []T {
	if len(xs) == 0 {
		return nil
	}
	k %= len(xs)
	return append(append([]T(nil), xs[k:]...), xs[:k]...)
}

// opened is one implementation's log in a case.
type opened struct {
	impl Impl
	dir  string
	res  *Result
}

// RunCase runs one case for every implementation and returns one Result
// per implementation, in Impls order (with Skip set for those that cannot
// run it).
func RunCase(o Options, c Case) ([]*Result, error) {
	switch c.Workload {
	case WBuffered, WDurable, WBatch:
		return runWrites(o, c)
	case WFollow:
		return runFollow(o, c)
	}
	return nil, fmt.Errorf("harness: RunCase cannot run %s (use RunReadCases)", c.Workload)
}

func skipped(impl, why string) *Result { return &Result{Impl: impl, Skip: why, Syncs: -1} }

// runWrites runs a write case. Each implementation's log lives in its own
// directory for the whole case but is opened for each slice and closed
// after it (both untimed, with a short settle after Open so background
// set-up, like aof preparing its next segment, does not compete with the
// slice, see settleIdle), so only one log is open at a time and the peak RSS of a slice
// is that implementation's.
func runWrites(o Options, c Case) ([]*Result, error) {
	var (
		results []*Result
		logs    []*opened
	)
	defer func() {
		for _, x := range logs {
			os.RemoveAll(x.dir)
		}
	}()
	for _, impl := range o.impls() {
		if !impl.Has(c.Mode()) {
			results = append(results, skipped(impl.Name, "no "+c.Mode().String()+" mode"))
			continue
		}
		dir, err := os.MkdirTemp(o.Dir, "aof2bench-"+impl.Name+"-")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		x := &opened{impl: impl, dir: dir, res: &Result{Impl: impl.Name}}
		logs = append(logs, x)
		results = append(results, x.res)
	}
	ring := newPayloads(c.Size, 64, uint64(c.Size))
	sample := 1
	if c.Mode() == Buffered {
		sample = 16 // timing every op would cost more than an Append
	}
	maxOps := int64(1) << 62
	if o.SliceBytes > 0 {
		per := int64(c.Size)
		if c.Workload == WBatch {
			per *= BatchSize
		}
		maxOps = max(o.SliceBytes/per, 1)
	}
	for round := range max(o.Rounds, 1) {
		for _, x := range rotate(logs, round) {
			if err := writeRound(o, c, x, round == 0, maxOps, sample, ring); err != nil {
				return nil, fmt.Errorf("%s %s: %w", c, x.impl.Name, err)
			}
		}
	}
	o.progress("%-28s %s", c, summary(results))
	return results, nil
}

func writeRound(o Options, c Case, x *opened, first bool, maxOps int64, sample int, ring payloads) error {
	lg, err := x.impl.Open(x.dir, c.Mode())
	if err != nil {
		return err
	}
	defer func() {
		if lg != nil {
			lg.Close()
		}
	}()
	if first {
		// One untimed op: files created, first sync done.
		if _, _, _, err := writeSlice(lg, c, 1, time.Now().Add(time.Hour), 1, ring); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	settleIdle(o.Settle)
	resetPeakRSS()
	s0, m0 := lg.Syncs(), mallocs()
	h, n, el, err := writeSlice(lg, c, maxOps, time.Now().Add(o.Slice), sample, ring)
	m1, s1 := mallocs(), lg.Syncs()
	if err != nil {
		return err
	}
	r := x.res
	r.Lat.Merge(&h)
	r.Sampled = sample
	r.Records += n
	r.Bytes += n * int64(c.Size)
	r.Elapsed += el
	r.Mallocs += m1 - m0
	if s0 < 0 {
		r.Syncs = -1
	} else if r.Syncs >= 0 {
		r.Syncs += s1 - s0
	}
	r.PeakRSS = max(r.PeakRSS, peakRSS())
	err = lg.Close()
	lg = nil
	return err
}

func summary(rs []*Result) string {
	s := ""
	for _, r := range rs {
		if r.Skip != "" {
			continue
		}
		s += fmt.Sprintf(" %s=%.0f/s", r.Impl, r.RecordsPerSec())
	}
	return s
}

// syncFS flushes the file system holding dir, so write-back of one case's
// buffered bytes does not land in the next case's measurements.
func syncFS(dir string) {
	if dir == "" {
		dir = os.TempDir()
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	_ = unix.Syncfs(fd)
	unix.Close(fd)
}

// FlushFS flushes the file system of o.Dir; call between cases.
func FlushFS(o Options) { syncFS(o.Dir) }

// BuildLog appends records of size bytes to lg until total payload bytes
// are in: AppendBatch of up to 1024 records (at most 4 MiB) at a time.
// Record seq's payload starts with seq (see checkRecord).
func BuildLog(lg Log, size int, total int64) (int64, error) {
	ring := newPayloads(size, 64, 7)
	per := max(min(1024, (4<<20)/max(size, 1)), 1)
	arena := make([]byte, per*size)
	batch := make([][]byte, per)
	var seq int64
	for seq*int64(size) < total {
		k := min(int64(per), (total-seq*int64(size)+int64(size)-1)/int64(size))
		for j := range k {
			p := arena[j*int64(size) : (j+1)*int64(size)]
			copy(p, ring[(seq+j)%int64(len(ring))])
			if size >= 8 {
				putSeq(p, uint64(seq+j+1))
			}
			batch[j] = p
		}
		if err := lg.AppendBatch(batch[:k]); err != nil {
			return seq, err
		}
		seq += k
	}
	return seq, nil
}

func putSeq(p []byte, seq uint64) {
	for i := range 8 {
		p[i] = byte(seq >> (8 * i))
	}
}

// checkRecord verifies a record read back from a BuildLog log.
func checkRecord(seq uint64, p []byte, size int) error {
	if len(p) != size {
		return fmt.Errorf("record %d: %d bytes, want %d", seq, len(p), size)
	}
	if size >= 8 {
		var got uint64
		for i := range 8 {
			got |= uint64(p[i]) << (8 * i)
		}
		if got != seq {
			return fmt.Errorf("record %d: holds sequence number %d", seq, got)
		}
	}
	return nil
}

// ScanAll reads every record of lg and checks each against BuildLog's
// pattern; it returns how many it read.
func ScanAll(lg Log, size int) (int64, error) {
	var n int64
	err := lg.Scan(func(seq uint64, p []byte) error {
		n++
		if seq != uint64(n) {
			return fmt.Errorf("scan: sequence number %d where %d was due", seq, n)
		}
		return checkRecord(seq, p, size)
	})
	return n, err
}

// RunReadCases builds one log per implementation of o.ReopenBytes with
// records of size bytes, then runs WReopen (reopen + read all, checked) and
// WRandom (random Reads, checked) on it, alternating implementations. The
// page cache is warm: the logs were just written, and nothing drops it.
func RunReadCases(o Options, size int) (reopen, random []*Result, err error) {
	type built struct {
		impl    Impl
		mode    Mode
		dir     string
		records int64
		ro, rr  *Result
	}
	var logs []*built
	defer func() {
		for _, b := range logs {
			os.RemoveAll(b.dir)
		}
	}()
	for _, impl := range o.impls() {
		if impl.WritesOnly {
			continue
		}
		mode := Buffered
		if !impl.Has(Buffered) {
			mode = Durable
		}
		dir, err := os.MkdirTemp(o.Dir, "aof2bench-"+impl.Name+"-")
		if err != nil {
			return nil, nil, fmt.Errorf("read cases: %w", err)
		}
		b := &built{impl: impl, mode: mode, dir: dir,
			ro: &Result{Impl: impl.Name, Syncs: -1}, rr: &Result{Impl: impl.Name, Syncs: -1}}
		logs = append(logs, b)
		reopen, random = append(reopen, b.ro), append(random, b.rr)
		t0 := time.Now()
		lg, err := impl.Open(dir, mode)
		if err != nil {
			return nil, nil, fmt.Errorf("build %s: %w", impl.Name, err)
		}
		total := o.ReopenBytes
		if o.ReopenRecords > 0 {
			total = min(total, o.ReopenRecords*int64(size))
		}
		b.records, err = BuildLog(lg, size, total)
		if cerr := lg.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, nil, fmt.Errorf("build %s: %w", impl.Name, err)
		}
		b.ro.LogRecords, b.rr.LogRecords = b.records, b.records
		o.progress("built %s log: %d records of %d B in %v (%s mode)", impl.Name, b.records, size, time.Since(t0).Round(time.Millisecond), mode)
	}
	syncFS(o.Dir)
	c := Case{Workload: WReopen, Size: size}
	for round := range max(o.Rounds, 1) {
		for _, b := range rotate(logs, round) {
			resetPeakRSS()
			m0 := mallocs()
			t0 := time.Now()
			lg, err := b.impl.Open(b.dir, b.mode)
			if err != nil {
				return nil, nil, fmt.Errorf("%s %s: %w", c, b.impl.Name, err)
			}
			t1 := time.Now()
			n, err := ScanAll(lg, size)
			t2 := time.Now()
			m1 := mallocs()
			if cerr := lg.Close(); err == nil {
				err = cerr
			}
			if err == nil && n != b.records {
				err = fmt.Errorf("read %d records, built %d", n, b.records)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("%s %s: %w", c, b.impl.Name, err)
			}
			r := b.ro
			r.Open += t1.Sub(t0)
			r.Read += t2.Sub(t1)
			r.Elapsed += t2.Sub(t0)
			r.Lat.Record(t2.Sub(t0))
			r.Sampled = 1
			r.Passes++
			r.Records += n
			r.Bytes += n * int64(size)
			r.Mallocs += m1 - m0
			r.PeakRSS = max(r.PeakRSS, peakRSS())
		}
	}
	o.progress("%-28s %s", c, reopenSummary(reopen))
	c = Case{Workload: WRandom, Size: size}
	for round := range max(o.Rounds, 1) {
		for i, b := range rotate(logs, round) {
			if err := randomSlice(o, b.impl, b.mode, b.dir, size, b.records, b.rr, uint64(round*100+i)); err != nil {
				return nil, nil, fmt.Errorf("%s %s: %w", c, b.impl.Name, err)
			}
		}
	}
	o.progress("%-28s %s", c, summary(random))
	return reopen, random, nil
}

func reopenSummary(rs []*Result) string {
	s := ""
	for _, r := range rs {
		if r.Passes > 0 {
			s += fmt.Sprintf(" %s=%v", r.Impl, (r.Elapsed / time.Duration(r.Passes)).Round(time.Millisecond))
		}
	}
	return s
}

func randomSlice(o Options, impl Impl, mode Mode, dir string, size int, records int64, r *Result, seed uint64) error {
	if r.Skip != "" {
		return nil
	}
	lg, err := impl.Open(dir, mode)
	if err != nil {
		return err
	}
	defer lg.Close()
	// Untimed first read: loads what a reopened log loads lazily.
	if _, err := lg.Read(1, nil); errors.Is(err, ErrUnsupported) {
		r.Skip = "no read by sequence number"
		return nil
	} else if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	var buf []byte
	resetPeakRSS()
	m0 := mallocs()
	deadline := time.Now().Add(o.Slice)
	start := time.Now()
	var n int64
	for ; ; n++ {
		t0 := time.Now()
		if t0.After(deadline) {
			break
		}
		seq := 1 + rng.Uint64N(uint64(records))
		buf, err = lg.Read(seq, buf[:0])
		r.Lat.Record(time.Since(t0))
		if err != nil {
			return err
		}
		if err := checkRecord(seq, buf, size); err != nil {
			return err
		}
	}
	r.Elapsed += time.Since(start)
	r.Mallocs += mallocs() - m0
	r.Records += n
	r.Bytes += n * int64(size)
	r.Sampled = 1
	r.PeakRSS = max(r.PeakRSS, peakRSS())
	return nil
}

// runFollow: one writer appends in Durable mode (closed loop) for o.Slice
// per round while a follower tails the log; the latency of a record is
// from just before its Append call to the follower seeing it. aof follows
// with Follow at the Durable level (records it yields are durable, as a
// peer's are once its Append has returned); "aof-written" is the same log
// followed at the Written level, which can see a record before it is
// durable. Peers have no follow API: the follower polls Read.
func runFollow(o Options, c Case) ([]*Result, error) {
	type follower struct {
		impl  Impl
		level FollowLevel
		name  string
	}
	var fs []follower
	var results []*Result
	for _, impl := range o.impls() {
		if !impl.Has(Durable) || impl.WritesOnly {
			continue
		}
		fs = append(fs, follower{impl, FollowDurable, impl.Name})
		if impl.Follow != nil {
			fs = append(fs, follower{impl, FollowWritten, impl.Name + "-written"})
		}
	}
	res := map[string]*Result{}
	for _, f := range fs {
		r := &Result{Impl: f.name, Syncs: 0}
		res[f.name] = r
		results = append(results, r)
	}
	size := max(c.Size, 8)
	for round := range max(o.Rounds, 1) {
		for _, f := range rotate(fs, round) {
			r := res[f.name]
			if r.Skip != "" {
				continue
			}
			if err := followSlice(o, f.impl, f.level, size, r, 1<<62); err != nil {
				return nil, fmt.Errorf("%s %s: %w", c, f.name, err)
			}
		}
	}
	o.progress("%-28s %s", c, followSummary(results))
	return results, nil
}

func followSummary(rs []*Result) string {
	s := ""
	for _, r := range rs {
		if r.Skip == "" {
			s += fmt.Sprintf(" %s=p50 %v", r.Impl, r.Lat.Quantile(0.5).Round(time.Microsecond))
		}
	}
	return s
}

func followSlice(o Options, impl Impl, level FollowLevel, size int, r *Result, maxN uint64) error {
	dir, err := os.MkdirTemp(o.Dir, "aof2bench-"+impl.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lg, err := impl.Open(dir, Durable)
	if err != nil {
		return err
	}
	defer lg.Close()
	if _, err := lg.Read(1, nil); errors.Is(err, ErrUnsupported) {
		r.Skip = "no read by sequence number"
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		lat  Hist
		last atomic.Uint64
		ferr = make(chan error, 1)
	)
	follow := impl.Follow
	go func() {
		fn := func(seq uint64, p []byte) {
			lat.Record(stampAge(p))
			last.Store(seq)
		}
		if follow != nil {
			ferr <- follow(ctx, lg, 1, level, fn)
		} else {
			ferr <- pollFollow(ctx, lg, 1, fn)
		}
	}()
	drained := false
	defer func() {
		if !drained {
			cancel()
			<-ferr
		}
	}()
	p := Payload(1, size)
	s0 := lg.Syncs()
	resetPeakRSS()
	m0 := mallocs()
	deadline := time.Now().Add(o.Slice)
	start := time.Now()
	var n uint64
	for n < maxN && time.Now().Before(deadline) {
		stamp(p)
		if err := lg.Append(p); err != nil {
			return err
		}
		n++
	}
	el := time.Since(start)
	// Wait for the follower to see the last record.
	giveUp := time.Now().Add(10 * time.Second)
	for last.Load() < n {
		select {
		case err := <-ferr:
			drained = true
			return fmt.Errorf("follower stopped at %d of %d: %w", last.Load(), n, err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(giveUp) {
			return fmt.Errorf("follower saw %d of %d records within 10 s", last.Load(), n)
		}
	}
	cancel()
	drained = true
	if err := <-ferr; err != nil {
		return err
	}
	r.Lat.Merge(&lat)
	r.Sampled = 1
	r.Records += int64(n)
	r.Bytes += int64(n) * int64(size)
	r.Elapsed += el
	r.Mallocs += mallocs() - m0
	if s := lg.Syncs(); s >= 0 && r.Syncs >= 0 {
		r.Syncs += s - s0
	} else {
		r.Syncs = -1
	}
	r.PeakRSS = max(r.PeakRSS, peakRSS())
	return nil
}
