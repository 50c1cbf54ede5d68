// Command compare runs hashiraft, raft-wal and raft-boltdb through the
// same measurements in one process, the stores taking turns within each
// case (the order rotating every round) so the drift of a shared machine
// hits all alike, and prints Markdown tables of the medians over the
// rounds with hashiraft's ratio to each peer.
//
//	go run ./cmd/compare                  # ~10 minutes
//	go run ./cmd/compare -quick           # ~2 minutes, a smoke check
//	go run ./cmd/compare -o results.md    # also write the tables to a file
//
// Run from the module (cd hashiraft/bench). Every store gets a fresh
// directory under -dir (default os.TempDir()), removed after its slice.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aof2/aof2/hashiraft/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

type options struct {
	dir                    string
	stores                 []string
	rounds                 int
	warmup, measure, slice time.Duration
	diskEntries            int
	snapshots              bool
	retried                map[string]int // slices run again, by store
}

func run() error {
	var (
		quick       = flag.Bool("quick", false, "short run: 2 rounds, 1 s cluster windows, 300 ms store slices, 16 Ki-entry disk run")
		dir         = flag.String("dir", "", "where to create the stores (default: os.TempDir())")
		out         = flag.String("o", "", "also write the Markdown report to this file")
		storesF     = flag.String("stores", strings.Join(bench.Kinds, ","), "comma-separated stores")
		partsF      = flag.String("parts", "cluster,storelogs,getlog,disk", "comma-separated parts")
		sizesF      = flag.String("sizes", "256,4096", "comma-separated command sizes in bytes")
		callersF    = flag.String("callers", "1,64", "comma-separated caller counts for the cluster part")
		rounds      = flag.Int("rounds", 5, "rounds per case")
		warmup      = flag.Duration("warmup", time.Second, "cluster warm-up before each measured window")
		measure     = flag.Duration("measure", 4*time.Second, "cluster measured window per store per round")
		slice       = flag.Duration("slice", time.Second, "store-alone time per store per round")
		diskEntries = flag.Int("disk-entries", 256<<10, "entries of 4 KiB written in the disk-use run")
		snapshots   = flag.Bool("snapshots", false, "cluster part with raft snapshots (every 8,192 entries, checked each second; prefix deletes), the steady state of a raft log; use a warm-up of several seconds")
	)
	flag.Parse()
	o := options{dir: *dir, stores: strings.Split(*storesF, ","), rounds: *rounds, warmup: *warmup, measure: *measure, slice: *slice, diskEntries: *diskEntries, snapshots: *snapshots, retried: map[string]int{}}
	if *quick {
		o.rounds, o.warmup, o.measure, o.slice, o.diskEntries = 2, 300*time.Millisecond, time.Second, 300*time.Millisecond, 16<<10
	}
	if o.dir == "" {
		o.dir = os.TempDir()
	}
	for _, s := range o.stores {
		if !slices.Contains(bench.Kinds, s) {
			return fmt.Errorf("-stores: unknown store %q (%v)", s, bench.Kinds)
		}
	}
	sizes, err := ints(*sizesF)
	if err != nil {
		return err
	}
	callers, err := ints(*callersF)
	if err != nil {
		return err
	}
	parts := strings.Split(*partsF, ",")

	load0 := loadavg()
	var md bytes.Buffer
	w := io.MultiWriter(os.Stdout, &md)
	start := time.Now()
	fmt.Fprintf(w, "# hashiraft vs raft-wal vs raft-boltdb\n\n%s, %s %s/%s, %d CPUs, GOMAXPROCS %d; `go run ./cmd/compare %s`\n\n",
		start.UTC().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), strings.Join(os.Args[1:], " "))
	for _, k := range o.stores {
		fmt.Fprintf(w, "- `%s`: %s\n", k, bench.Notes[k])
	}
	fmt.Fprintf(w, "\nMedians over %d rounds; the stores take turns within each case, the order rotating every round. Ratios are hashiraft's figure over the peer's (for throughput higher is better, for latency lower is).\n\n", o.rounds)

	ctx := context.Background()
	if slices.Contains(parts, "cluster") {
		if err := clusterPart(ctx, w, o, sizes, callers); err != nil {
			return err
		}
	}
	if slices.Contains(parts, "storelogs") {
		if err := storeLogsPart(w, o, sizes); err != nil {
			return err
		}
	}
	if slices.Contains(parts, "getlog") {
		if err := getLogPart(w, o); err != nil {
			return err
		}
	}
	if slices.Contains(parts, "disk") {
		if err := diskPart(w, o); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nTotal time %s; load average at the start %s, at the end %s.\n", time.Since(start).Round(time.Second), load0, loadavg())
	if *out != "" {
		return os.WriteFile(*out, md.Bytes(), 0o644)
	}
	return nil
}

// errRetry marks a slice's failure as worth another run: the cluster lost
// its leader.
var errRetry = errors.New("the cluster lost its leader")

// maxRetries bounds the runs again of one slice.
const maxRetries = 3

// rounds runs fn for every store in every round, the order rotating, and
// returns each store's results by round.
func rounds(o options, label string, fn func(kind, dir string) (bench.Result, error)) (map[string][]bench.Result, error) {
	res := map[string][]bench.Result{}
	for r := range o.rounds {
		for i := range o.stores {
			kind := o.stores[(i+r)%len(o.stores)]
			dir, err := os.MkdirTemp(o.dir, "hashiraft-bench-"+kind+"-")
			if err != nil {
				return nil, err
			}
			got, err := fn(kind, dir)
			os.RemoveAll(dir)
			syscall.Sync() // one slice's write-back does not land in the next
			for try := 1; err != nil && errors.Is(err, errRetry) && try <= maxRetries; try++ {
				// A leader change under a stalled disk: the slice says
				// nothing about throughput; run it again, and count it.
				fmt.Fprintf(os.Stderr, "%s round %d %s: %v; again (%d/%d)\n", label, r+1, kind, err, try, maxRetries)
				o.retried[kind]++
				if dir, err = os.MkdirTemp(o.dir, "hashiraft-bench-"+kind+"-"); err != nil {
					return nil, err
				}
				got, err = fn(kind, dir)
				os.RemoveAll(dir)
				syscall.Sync()
			}
			if err != nil {
				return nil, fmt.Errorf("%s, %s, round %d: %w", label, kind, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "%s round %d %-9s %10.0f/s p50 %-9s p99 %s\n", label, r+1, kind, got.PerSec(), dur(got.Pct(50)), dur(got.Pct(99)))
			res[kind] = append(res[kind], got)
		}
	}
	return res, nil
}

// medians returns the medians over the rounds of the rate, p50 and p99.
func medians(rs []bench.Result) (rate float64, p50, p99 time.Duration) {
	var rates []float64
	var p50s, p99s []time.Duration
	for _, r := range rs {
		rates = append(rates, r.PerSec())
		p50s = append(p50s, r.Pct(50))
		p99s = append(p99s, r.Pct(99))
	}
	return median(rates), median(p50s), median(p99s)
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// table prints one row per case: each store's rate, p50 and p99, then
// hashiraft's ratios to each peer.
func table(w io.Writer, unit string, cases []string, res []map[string][]bench.Result, o options) {
	peers := slices.DeleteFunc(slices.Clone(o.stores), func(k string) bool { return k == bench.Hashiraft })
	hasH := slices.Contains(o.stores, bench.Hashiraft)
	fmt.Fprintf(w, "| case |")
	for _, k := range o.stores {
		fmt.Fprintf(w, " %s %s | p50 | p99 |", k, unit)
	}
	if hasH {
		for _, p := range peers {
			fmt.Fprintf(w, " %s ÷ %s | p99 ÷ |", unit, p)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "|---|")
	for range o.stores {
		fmt.Fprint(w, "--:|--:|--:|")
	}
	if hasH {
		for range peers {
			fmt.Fprint(w, "--:|--:|")
		}
	}
	fmt.Fprintln(w)
	for i, c := range cases {
		fmt.Fprintf(w, "| %s |", c)
		for _, k := range o.stores {
			rate, p50, p99 := medians(res[i][k])
			fmt.Fprintf(w, " %s | %s | %s |", num(rate), dur(p50), dur(p99))
		}
		if hasH {
			hr, _, hp99 := medians(res[i][bench.Hashiraft])
			for _, p := range peers {
				pr, _, pp99 := medians(res[i][p])
				fmt.Fprintf(w, " %.2f× | %.2f× |", hr/pr, float64(hp99)/float64(pp99))
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

func clusterPart(ctx context.Context, w io.Writer, o options, sizes, callers []int) error {
	fmt.Fprintf(w, "## Through raft: a 3-node cluster on 127.0.0.1\n\nraft v1.8.0, `raft.NewTCPTransport`, one `raft.Config` for every node (raft's defaults: MaxAppendEntries 64, CommitTimeout 50 ms; %s). Each caller applies a command (incompressible payload) through the leader and waits for `Apply(...).Error()`, in a closed loop; a fresh cluster per store per round, %s warm-up, %s measured. cmds/s = commands applied in the window; p50/p99 = Apply latency.\n\n", snapshotNote(o.snapshots), o.warmup, o.measure)
	var cases []string
	var res []map[string][]bench.Result
	for _, n := range callers {
		for _, size := range sizes {
			label := fmt.Sprintf("%s, %d caller%s", sizeName(size), n, plural(n))
			r, err := rounds(o, label, func(kind, dir string) (bench.Result, error) {
				cctx, cancel := context.WithTimeout(ctx, o.warmup+o.measure+time.Minute)
				defer cancel()
				r, err := bench.RunCluster(cctx, dir, bench.ClusterCase{Kind: kind, Size: size, Callers: n, Warmup: o.warmup, Measure: o.measure, Snapshots: o.snapshots})
				if errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrEnqueueTimeout) {
					err = fmt.Errorf("%w: %w", errRetry, err)
				}
				return r, err
			})
			if err != nil {
				return err
			}
			cases, res = append(cases, label), append(res, r)
		}
	}
	table(w, "cmds/s", cases, res, o)
	if len(o.retried) > 0 {
		fmt.Fprintf(w, "Slices run again after the cluster lost its leader (a stalled disk), by store: %v.\n\n", o.retried)
	}
	goals(w, cases, res)
	return nil
}

// goals prints issue 13's goals for the cluster: hashiraft at >= 1.3x
// raft-wal's applied commands/s with 64 callers, and the lowest p99 of
// the stores in every case.
func goals(w io.Writer, cases []string, res []map[string][]bench.Result) {
	if len(res) == 0 || res[0][bench.Hashiraft] == nil {
		return
	}
	fmt.Fprintln(w, "Goals: hashiraft ≥ 1.3× raft-wal's cmds/s at 64 callers; the lowest p99 of the stores.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| goal | case | hashiraft | best peer | ratio | verdict |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|---|")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	for i, c := range cases {
		h, _, hp99 := medians(res[i][bench.Hashiraft])
		if strings.HasSuffix(c, " 64 callers") && res[i][bench.RaftWAL] != nil {
			p, _, _ := medians(res[i][bench.RaftWAL])
			fmt.Fprintf(w, "| cmds/s ≥ 1.3× raft-wal | %s | %s | %s (raftwal) | %.2f× | %s |\n", c, num(h), num(p), h/p, verdict(h >= 1.3*p))
		}
		best, bestK := time.Duration(0), ""
		for k, rs := range res[i] {
			if k == bench.Hashiraft {
				continue
			}
			if _, _, p99 := medians(rs); bestK == "" || p99 < best {
				best, bestK = p99, k
			}
		}
		if bestK != "" {
			fmt.Fprintf(w, "| lowest p99 | %s | %s | %s (%s) | %.2f× | %s |\n", c, dur(hp99), dur(best), bestK, float64(hp99)/float64(best), verdict(hp99 <= best))
		}
	}
	fmt.Fprintln(w)
}

// settle lets a freshly opened store's background work (aof prepares its
// next segment) finish before it is timed, the same pause for every store.
const settle = 300 * time.Millisecond

func storeLogsPart(w io.Writer, o options, sizes []int) error {
	fmt.Fprintf(w, "## The store alone: StoreLogs\n\nOne caller (raft stores a node's entries from one goroutine), durable batches of 1 or 64 entries, %s per store per round on a fresh store. entries/s; p50/p99 per call.\n\n", o.slice)
	var cases []string
	var res []map[string][]bench.Result
	for _, batch := range []int{1, 64} {
		for _, size := range sizes {
			label := fmt.Sprintf("%s, batch %d", sizeName(size), batch)
			r, err := rounds(o, label, func(kind, dir string) (bench.Result, error) {
				s, err := bench.OpenStore(kind, dir)
				if err != nil {
					return bench.Result{}, err
				}
				time.Sleep(settle)
				r, err := bench.StoreLogs(s, size, batch, 0, o.slice)
				if cerr := s.Close(); err == nil {
					err = cerr
				}
				return r, err
			})
			if err != nil {
				return err
			}
			cases, res = append(cases, label), append(res, r)
		}
	}
	table(w, "entries/s", cases, res, o)
	return nil
}

func getLogPart(w io.Writer, o options) error {
	const n, size = 256 << 10, 256
	fmt.Fprintf(w, "## The store alone: GetLog\n\nA log of %d Ki entries of %d B per store (built once, page cache warm), then GetLog at sequential (wrapping) or uniformly random indexes, %s per store per round. reads/s; p50/p99 per call.\n\n", n>>10, size, o.slice)
	stores := map[string]bench.Store{}
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	for _, kind := range o.stores {
		dir, err := os.MkdirTemp(o.dir, "hashiraft-bench-read-"+kind+"-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		s, err := bench.OpenStore(kind, dir)
		if err != nil {
			return err
		}
		stores[kind] = s
		if err := bench.Fill(s, size, n); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	syscall.Sync()
	var cases []string
	var res []map[string][]bench.Result
	for _, order := range []string{"sequential", "random"} {
		r, err := rounds(o, "GetLog "+order, func(kind, _ string) (bench.Result, error) {
			return bench.GetLog(stores[kind], order == "random", 0, o.slice)
		})
		if err != nil {
			return err
		}
		cases, res = append(cases, order), append(res, r)
	}
	table(w, "reads/s", cases, res, o)
	return nil
}

func diskPart(w io.Writer, o options) error {
	const size, snapEvery, trailing = 4096, 8192, 10240
	fmt.Fprintf(w, "## Disk use after a long run with compaction\n\n%d entries of %d B (%s) stored in batches of 64; every %d entries (raft's default SnapshotThreshold) the prefix is deleted down to the newest %d (raft's default TrailingLogs), as raft does after a snapshot. Disk use of the store's directory at the end, the store open; allocated = blocks (du), apparent = file sizes.\n\n",
		o.diskEntries, size, mib(int64(o.diskEntries)*size), snapEvery, trailing)
	fmt.Fprintln(w, "| store | entries kept | allocated | apparent | allocated ÷ hashiraft's | time |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
	got := map[string]bench.Disk{}
	for _, kind := range o.stores {
		dir, err := os.MkdirTemp(o.dir, "hashiraft-bench-disk-"+kind+"-")
		if err != nil {
			return err
		}
		s, err := bench.OpenStore(kind, filepath.Join(dir, "store"))
		if err != nil {
			return err
		}
		d, err := bench.DiskUse(s, dir, size, o.diskEntries, snapEvery, trailing)
		s.Close()
		os.RemoveAll(dir)
		syscall.Sync()
		if err != nil {
			return fmt.Errorf("disk use, %s: %w", kind, err)
		}
		fmt.Fprintf(os.Stderr, "disk %-9s allocated %s apparent %s in %s\n", kind, mib(d.Allocated), mib(d.Apparent), d.Elapsed.Round(time.Millisecond))
		got[kind] = d
	}
	h, hasH := got[bench.Hashiraft]
	for _, kind := range o.stores {
		d := got[kind]
		ratio := "—"
		if hasH && h.Allocated > 0 {
			ratio = fmt.Sprintf("%.2f×", float64(d.Allocated)/float64(h.Allocated))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", kind, d.Entries, mib(d.Allocated), mib(d.Apparent), ratio, d.Elapsed.Round(100*time.Millisecond))
	}
	fmt.Fprintln(w)
	return nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("not a positive integer: %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func sizeName(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func num(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	default:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// loadavg returns the machine's 1, 5 and 15 minute load averages
// (/proc/loadavg), which say how busy the shared machine was.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// snapshotNote says in the report how the cluster part ran raft's
// snapshots.
func snapshotNote(on bool) string {
	if on {
		return "snapshots every 8,192 entries, checked each second, 10,240 trailing entries kept: each store's log has its prefix deleted, the steady state of a raft log"
	}
	return "snapshots off for the run"
}
