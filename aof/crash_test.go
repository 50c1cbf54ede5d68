//go:build unix

package aof

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs/vfstest"
)

// The kill -9 test re-executes the test binary as a child process that
// appends to a log and acknowledges durable records on stdout; the parent
// kills it with SIGKILL at a random moment and checks what recovery finds.
const (
	// crashChildEnv holds the log directory; it switches TestCrashChild on.
	crashChildEnv = "AOF2_CRASH_CHILD"
	// crashSeedEnv holds the child's random seed, for reproducible sizes.
	crashSeedEnv = "AOF2_CRASH_SEED"
	// crashCyclesEnv overrides the number of cycles.
	crashCyclesEnv = "AOF2_CRASH_CYCLES"
	// crashAtEnv, when set, makes the child kill itself with SIGKILL at
	// the k-th occurrence of an event ("trailer:2"), see crashEvents.
	crashAtEnv = "AOF2_CRASH_AT"
	// crashRetainEnv, when "1", runs the child's log with retention,
	// so that it runs on recycled segment files.
	crashRetainEnv = "AOF2_CRASH_RETAIN"

	crashDefaultCycles = 30
	crashWriters       = 4
	crashMinRun        = 50 * time.Millisecond
	crashMaxRun        = 400 * time.Millisecond
	// crashEventRun is how long a child that is to kill itself at an
	// event may run before the parent kills it anyway.
	crashEventRun = 1500 * time.Millisecond
	// crashMaxSize is the largest record the children append.
	crashMaxSize = 1 << 20
	// crashMaxLogBytes bounds the log's growth in long runs: once its
	// segments take this much, the next cycle starts a fresh log.
	crashMaxLogBytes = 256 << 20
)

// crashConfig: 2 MiB segments hold the largest record (1 MiB) and still
// roll over several times a second under the children's load. With
// retain, retention keeps about 8 MiB, and the segments it drops are
// recycled (two pooled at most), many times a second.
func crashConfig(retain bool) Config {
	if retain {
		return Config{SegmentSize: 2 << 20, RetainBytes: 8 << 20, RecycleSegments: 2}
	}
	return Config{SegmentSize: 2 << 20}
}

// crashSize picks a payload size in [1, 1 MiB], mostly small.
func crashSize(r *rand.Rand) int {
	switch n := r.IntN(100); {
	case n < 80:
		return 1 + r.IntN(128)
	case n < 95:
		return 1 + r.IntN(4<<10)
	case n < 99:
		return 1 + r.IntN(64<<10)
	default:
		return 1 + r.IntN(crashMaxSize)
	}
}

// crashEvents are the points where a child can be told to kill itself
// (AOF2_CRASH_AT=event:k, at the k-th occurrence), to land kills inside
// rollovers and seals rather than leave that to timing:
//
//	header         before a new segment's header is written (rollover)
//	rename         before a new segment is renamed into place (rollover)
//	after-rename   at the operation after that rename
//	allocate       before the next segment is preallocated
//	syncdir        before the segments directory is synced (a new segment's first flush)
//	footer         before a full segment's footer is written (seal)
//	trailer        before its trailer is written (seal, footer written)
//	sealsync       before the sync that makes footer and trailer durable
//	after-sealsync at the operation after that sync
//	pool           before a dropped segment is renamed into the pool
//	recycle        before a recycled file is renamed to its segment name (rollover)
//	after-recycle  at the operation after that rename
var crashEvents = []string{"header", "rename", "after-rename", "allocate", "syncdir", "footer", "trailer", "sealsync", "after-sealsync",
	"pool", "recycle", "after-recycle"}

// crashKiller returns a Fault that only observes, and kills the process with SIGKILL at the
// k-th occurrence of event, first writing "kill <event>" to stdout (under
// mu) so the parent knows.
func crashKiller(event string, k int, mu *sync.Mutex) vfstest.Fault {
	var (
		hmu      sync.Mutex
		seen     int
		armed    bool                // kill at the next operation
		trailers = map[string]bool{} // files whose trailer is written, not synced
	)
	return func(o vfstest.Op) error {
		op, path, b := o.Kind.String(), o.Path, o.Data
		hmu.Lock()
		defer hmu.Unlock()
		magic := func(m string) bool { return op == "write" && len(b) >= 8 && string(b[:8]) == m }
		var hit, arm bool
		switch {
		case armed:
			hit = true
		case event == "header" && magic("aof2seg\x00"),
			event == "footer" && magic("aof2ftr\x00"),
			event == "trailer" && magic("aof2end\x00"),
			event == "allocate" && op == "allocate",
			event == "syncdir" && op == "syncdir" && filepath.Base(path) == "segments",
			event == "rename" && op == "rename" && strings.HasSuffix(path, ".seg.tmp"),
			event == "sealsync" && op == "sync" && trailers[path],
			event == "pool" && op == "rename" && strings.HasSuffix(o.To, segment.PoolSuffix),
			event == "recycle" && op == "rename" && strings.HasSuffix(path, segment.PoolSuffix):
			hit = true
		case event == "after-rename" && op == "rename" && strings.HasSuffix(path, ".seg.tmp"),
			event == "after-recycle" && op == "rename" && strings.HasSuffix(path, segment.PoolSuffix),
			event == "after-sealsync" && op == "sync" && trailers[path]:
			arm = true
		}
		if magic("aof2end\x00") {
			trailers[path] = true
		} else if op == "sync" {
			delete(trailers, path)
		}
		if arm || hit && !armed {
			if seen++; seen < k {
				return nil
			}
		}
		if arm {
			armed = true
			return nil
		}
		if !hit {
			return nil
		}
		mu.Lock()
		fmt.Fprintf(os.Stdout, "kill %s\n", event)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour) // the signal is on its way
		return nil
	}
}

// crashFill fills p so that its content follows from its first bytes: a
// payload of 8 bytes or more starts with a little-endian seed and continues
// with ChaCha8(seed) bytes; a shorter one starts with a seed byte and
// continues with bytes mixed from that byte and the length.
func crashFill(p []byte, seed uint64) {
	if len(p) == 0 {
		return
	}
	if len(p) < 8 {
		p[0] = byte(seed)
		crashFillShort(p)
		return
	}
	binary.LittleEndian.PutUint64(p, seed)
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rand.NewChaCha8(key).Read(p[8:])
}

// crashFillShort sets p[1:] from p[0] and len(p), for len(p) < 8.
func crashFillShort(p []byte) {
	x := uint64(p[0]) | uint64(len(p))<<8
	// splitmix64 finaliser
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	for i := 1; i < len(p); i++ {
		p[i] = byte(x >> (8 * i))
	}
}

// crashConsistent reports whether p is a payload crashFill could make.
// scratch is reused; the possibly grown scratch is returned.
func crashConsistent(p, scratch []byte) (bool, []byte) {
	if len(p) == 0 {
		return false, scratch
	}
	scratch = append(scratch[:0], p...)
	if len(p) < 8 {
		crashFillShort(scratch)
	} else {
		crashFill(scratch, binary.LittleEndian.Uint64(p))
	}
	return bytes.Equal(p, scratch), scratch
}

// TestCrashChild is the child of TestKillNineLoop; it skips unless started
// by it. It appends from several goroutines until it is killed, and writes
// "seq checksum" to stdout for every record FlushUntil made durable.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of TestKillNineLoop")
	}
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "crash child: %s: %v\n", what, err)
		os.Exit(3)
	}
	seed, err := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	if err != nil {
		fail("seed", err)
	}
	var mu sync.Mutex
	fs := vfstest.NewFaultFS(nil)
	if at := os.Getenv(crashAtEnv); at != "" {
		event, ks, _ := strings.Cut(at, ":")
		k, err := strconv.Atoi(ks)
		if err != nil {
			fail(crashAtEnv, err)
		}
		fs.SetFault(crashKiller(event, k, &mu))
	}
	l, err := Open(dir, crashConfig(os.Getenv(crashRetainEnv) == "1"), WithFS(fs))
	if err != nil {
		fail("open", err)
	}
	for g := range crashWriters {
		go func() {
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			buf := make([]byte, crashMaxSize)
			var line []byte
			for {
				p := buf[:crashSize(r)]
				crashFill(p, r.Uint64())
				id, err := l.Append(ctx, p)
				if err != nil {
					fail("append", err)
				}
				if err := l.FlushUntil(ctx, id); err != nil {
					fail(fmt.Sprintf("FlushUntil(%d)", id.Seq), err)
				}
				line = strconv.AppendUint(line[:0], id.Seq, 10)
				line = append(line, ' ')
				line = strconv.AppendUint(line, xxhash.Sum64(p), 10)
				line = append(line, '\n')
				mu.Lock()
				_, err = os.Stdout.Write(line)
				mu.Unlock()
				if err != nil {
					fail("stdout", err)
				}
			}
		}()
	}
	time.Sleep(time.Minute)
	mu.Lock()
	fail("lifetime", errors.New("not killed within a minute"))
}

// crashAck is one acknowledged record: its sequence number and the
// xxhash64 of its payload.
type crashAck struct {
	seq, sum uint64
}

// crashTotals adds up what the cycles found.
type crashTotals struct {
	cycles, idleCycles, logs  int
	acked, lost, corrupt      int
	truncations               int
	truncatedBytes, readBytes int64
	records, maxRecords       uint64
	childTime, checkTime      time.Duration
	// killedAt counts cycles by where the child died: at an event it
	// was told to kill itself at, or "timer" (killed by the parent).
	killedAt map[string]int
}

// crashLog is one log of TestKillNineLoop: its directory, and sums[seq],
// the xxhash64 of record seq once a cycle verified it (0 for records that
// retention dropped before any cycle saw them).
type crashLog struct {
	dir    string
	sums   []uint64
	retain bool
}

// TestKillNineLoop kills a child appending to a log with SIGKILL, cycle
// after cycle on the same directory, and checks after each kill that every
// acknowledged record survived intact and that the log serves only
// consistent records with dense sequence numbers. Two logs take turns: one
// without retention, and one with, whose segments are recycled files
// (their stale bytes must never be served); there records before the
// front may go, acknowledged ones included.
func TestKillNineLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 loop skipped in short mode")
	}
	cycles := crashDefaultCycles
	if s := os.Getenv(crashCyclesEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashCyclesEnv, s)
		}
		cycles = n
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d cycles", base, cycles)
	rng := rand.New(rand.NewPCG(base, 0))

	root := t.TempDir()
	logs := []*crashLog{{dir: filepath.Join(root, "log0"), sums: []uint64{0}},
		{dir: filepath.Join(root, "log1"), sums: []uint64{0}, retain: true}}
	tot := crashTotals{logs: len(logs), killedAt: map[string]int{}}
	var scratch, buf []byte
	for cycle := 1; cycle <= cycles && !t.Failed(); cycle++ {
		cl := logs[cycle%len(logs)]
		dir, sums, retain := cl.dir, cl.sums, cl.retain
		start := time.Now()
		// Half the cycles are killed at a random moment; the other
		// half kill themselves inside a rollover or a seal.
		run, at := crashMinRun+time.Duration(rng.Int64N(int64(crashMaxRun-crashMinRun)+1)), ""
		if rng.IntN(2) == 0 {
			run, at = crashEventRun, fmt.Sprintf("%s:%d", crashEvents[rng.IntN(len(crashEvents))], 1+rng.IntN(3))
		}
		acks, killedAt, err := crashRunChild(dir, rng.Uint64(), run, at, retain)
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		tot.killedAt[killedAt]++
		tot.childTime += time.Since(start)
		start = time.Now()

		// Checked with retention off, so that the front stays where
		// recovery put it while the records are read.
		cfg := crashConfig(retain)
		cfg.RetainBytes = 0
		l, err := Open(dir, cfg)
		if err != nil {
			t.Fatalf("cycle %d: reopen after kill: %v", cycle, err)
		}
		rep := l.Recovery()
		prevNext := uint64(len(sums))
		if rep.FirstSeq != 1 && !retain || rep.FirstSeq > rep.NextSeq {
			t.Errorf("cycle %d: FirstSeq %d, want 1", cycle, rep.FirstSeq)
		}
		for uint64(len(sums)) < rep.FirstSeq { // dropped before a cycle saw them
			sums = append(sums, 0)
		}
		if rep.NextSeq < prevNext {
			t.Errorf("cycle %d: NextSeq %d, but seq %d was durable before the child started", cycle, rep.NextSeq, prevNext-1)
		}
		var lost, corrupt int
		report := func(counter *int, format string, args ...any) {
			if *counter++; *counter <= 10 {
				t.Errorf("cycle %d: "+format, append([]any{cycle}, args...)...)
			}
		}
		// Every record in the log reads, verifies and is consistent.
		for seq := rep.FirstSeq; seq < rep.NextSeq; seq++ {
			rec, err := l.Read(seq, buf[:0])
			if err != nil {
				report(&corrupt, "Read(%d) in [%d, %d): %v", seq, rep.FirstSeq, rep.NextSeq, err)
				continue
			}
			buf = rec.Payload
			tot.readBytes += int64(len(rec.Payload))
			sum := xxhash.Sum64(rec.Payload)
			var ok bool
			switch {
			case rec.Seq != seq:
				report(&corrupt, "Read(%d) returned seq %d", seq, rec.Seq)
			case seq < prevNext:
				if sum != sums[seq] {
					report(&corrupt, "seq %d: payload changed since an earlier cycle verified it", seq)
				}
			default:
				if ok, scratch = crashConsistent(rec.Payload, scratch); !ok {
					report(&corrupt, "seq %d: payload of %d bytes does not match its seed", seq, len(rec.Payload))
				}
				sums = append(sums, sum)
			}
		}
		if _, err := l.Read(rep.NextSeq, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("cycle %d: Read(NextSeq=%d) = %v, want ErrNotFound", cycle, rep.NextSeq, err)
		}
		// Every acknowledged record is there, intact.
		for _, a := range acks {
			if a.seq < prevNext {
				t.Errorf("cycle %d: child acknowledged seq %d, which the log held before it started", cycle, a.seq)
			}
			if a.seq < rep.FirstSeq && retain {
				continue // retention dropped it
			}
			if a.seq < rep.FirstSeq || a.seq >= rep.NextSeq {
				report(&lost, "acknowledged seq %d is outside [%d, %d)", a.seq, rep.FirstSeq, rep.NextSeq)
				continue
			}
			rec, err := l.Read(a.seq, buf[:0])
			if err != nil {
				report(&lost, "acknowledged seq %d: %v", a.seq, err)
				continue
			}
			buf = rec.Payload
			if xxhash.Sum64(rec.Payload) != a.sum {
				report(&corrupt, "acknowledged seq %d: checksum differs from the one acknowledged", a.seq)
			}
		}
		if err := crashClose(l, 20*time.Second); err != nil {
			t.Fatalf("cycle %d: close after recovery %+v: %v", cycle, rep, err)
		}
		tot.checkTime += time.Since(start)

		tot.cycles++
		tot.acked += len(acks)
		tot.lost += lost
		tot.corrupt += corrupt
		tot.truncations += len(rep.Truncations)
		tot.truncatedBytes += rep.TruncatedBytes
		tot.records += rep.NextSeq - prevNext
		tot.maxRecords = max(tot.maxRecords, rep.NextSeq-rep.FirstSeq)
		if len(acks) == 0 {
			tot.idleCycles++
		}
		t.Logf("cycle %d (retention %v): killed at %s (asked: %q), %d acknowledged, %d new records (log %d..%d, %d segments: %d trusted, %d scanned), %d truncations (%d bytes), recovery %v",
			cycle, retain, killedAt, at, len(acks), rep.NextSeq-prevNext, rep.FirstSeq, rep.NextSeq-1, rep.Segments, rep.Trusted, rep.Scanned,
			len(rep.Truncations), rep.TruncatedBytes, rep.Duration.Round(time.Microsecond))

		cl.sums = sums
		if int64(rep.Segments)*crashConfig(retain).SegmentSize >= crashMaxLogBytes {
			cl.dir = filepath.Join(root, fmt.Sprintf("log%d", tot.logs))
			tot.logs++
			cl.sums = sums[:1]
			t.Logf("log reached %d segments; next cycle starts a fresh log", rep.Segments)
		}
	}
	t.Logf("totals: %d cycles (%d with no acknowledgement), %d logs, %d records appended, %d acknowledged, "+
		"%d acknowledged lost, %d corrupt served, %d truncations (%d bytes); largest log %d records; %d MiB verified; "+
		"child time %v, check time %v; kills by point %v",
		tot.cycles, tot.idleCycles, tot.logs, tot.records, tot.acked, tot.lost, tot.corrupt, tot.truncations,
		tot.truncatedBytes, tot.maxRecords, tot.readBytes>>20, tot.childTime.Round(time.Millisecond), tot.checkTime.Round(time.Millisecond), tot.killedAt)
	if tot.lost != 0 || tot.corrupt != 0 {
		t.Errorf("%d acknowledged records lost, %d corrupt records served", tot.lost, tot.corrupt)
	}
}

// crashClose closes l, or reports what the log looked like if Close does
// not return within d (the Close goroutine is then left behind).
func crashClose(l *Log, d time.Duration) error {
	backlog, m := l.Backlog(), l.Metrics()
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("Close did not return within %v; before Close: backlog %d bytes, metrics %+v; now: backlog %d bytes",
			d, backlog, m, l.Backlog())
	}
}

// crashRunChild starts the child on dir, kills it with SIGKILL after run
// (unless it killed itself first, as at asks) and returns the records it
// acknowledged (complete lines only) and where it died: the event it
// killed itself at, or "timer".
func crashRunChild(dir string, seed uint64, run time.Duration, at string, retain bool) ([]crashAck, string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashSeedEnv+"="+strconv.FormatUint(seed, 10), crashAtEnv+"="+at)
	if retain {
		cmd.Env = append(cmd.Env, crashRetainEnv+"=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start child: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var killErr, waitErr error
	select {
	case waitErr = <-exited:
	case <-time.After(run):
		killErr = cmd.Process.Kill()
		waitErr = <-exited
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return nil, "", fmt.Errorf("child (seed %d) ended before it was killed (kill: %v, wait: %w); stderr:\n%s", seed, killErr, waitErr, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		return nil, "", fmt.Errorf("child (seed %d) wrote to stderr:\n%s", seed, stderr.Bytes())
	}
	killedAt := "timer"
	// A line cut by the kill has no newline: drop it.
	out := stdout.Bytes()
	out = out[:bytes.LastIndexByte(out, '\n')+1]
	var acks []crashAck
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if event, ok := strings.CutPrefix(line, "kill "); ok {
			killedAt = event
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, "", fmt.Errorf("child (seed %d): malformed line %q", seed, line)
		}
		seq, err1 := strconv.ParseUint(f[0], 10, 64)
		sum, err2 := strconv.ParseUint(f[1], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, "", fmt.Errorf("child (seed %d): line %q: %w", seed, line, err)
		}
		acks = append(acks, crashAck{seq, sum})
	}
	return acks, killedAt, nil
}
