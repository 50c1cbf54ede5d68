package aof

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/sys/unix"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs/vfstest"
)

// Tests of Config.NoPrewrite: the preparer writes zeros over a new
// segment file, a chunk at a time, each written back before the next and
// the last one synced; a rollover
// or Close stops it between chunks; a failure is reported and the log goes
// on.

const prewriteSeg = 64 << 10

func withPrewriteChunk(n int) Option { return func(o *options) { o.prewriteChunk = n } }

func withPrewriteHook(h func(off int64)) Option { return func(o *options) { o.prewriteHook = h } }

// tmpOp is one operation on a prepared segment file (its temporary name).
type tmpOp struct {
	kind   vfstest.OpKind
	path   string
	off    int64
	n      int
	zeros  bool
	failed bool
}

func (o tmpOp) String() string {
	return fmt.Sprintf("%v %s [%d,+%d) zeros=%v failed=%v", o.kind, o.path, o.off, o.n, o.zeros, o.failed)
}

// tmpRecorder records the operations on prepared segment files, and fails
// those fail picks.
type tmpRecorder struct {
	mu   sync.Mutex
	ops  []tmpOp
	fail func(op tmpOp, prior []tmpOp) error
}

func (r *tmpRecorder) fault(op vfstest.Op) error {
	if !strings.HasSuffix(op.Path, segment.TempSuffix) {
		return nil
	}
	t := tmpOp{kind: op.Kind, path: op.Path, off: op.Off, n: len(op.Data), zeros: op.Kind == vfstest.OpWrite && !bytes.ContainsFunc(op.Data, func(r rune) bool { return r != 0 })}
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if r.fail != nil {
		err = r.fail(t, r.ops)
	}
	t.failed = err != nil
	r.ops = append(r.ops, t)
	return err
}

// prewriteOps returns the operations of the prewrite of path: its zero
// writes and the write-backs and syncs of path, in order.
func (r *tmpRecorder) prewriteOps(path string) []tmpOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []tmpOp
	for _, o := range r.ops {
		if o.path == path && (o.kind == vfstest.OpWrite && o.zeros || o.kind == vfstest.OpSync || o.kind == vfstest.OpWriteBack) {
			out = append(out, o)
		}
	}
	return out
}

// prewrittenPaths returns the files that got zero writes, in order.
func (r *tmpRecorder) prewrittenPaths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, o := range r.ops {
		if o.kind == vfstest.OpWrite && o.zeros && (len(out) == 0 || out[len(out)-1] != o.path) {
			out = append(out, o.path)
		}
	}
	return out
}

// checkChunked checks that ops are n chunks of chunk bytes in order from
// offset 0, each write written back (sync_file_range) before the next
// write, and the last one synced instead when synced is true: a prewrite
// that reaches the segment's end makes it durable with one sync, not one
// per chunk.
func checkChunked(t *testing.T, ops []tmpOp, n, chunk int, synced bool) {
	t.Helper()
	if len(ops) != 2*n {
		t.Fatalf("prewrite: %d operations, want %d writes each followed by a write-back or sync: %v", len(ops), n, ops)
	}
	for i := range n {
		w, s := ops[2*i], ops[2*i+1]
		want := vfstest.OpWriteBack
		if synced && i == n-1 {
			want = vfstest.OpSync
		}
		if w.kind != vfstest.OpWrite || w.off != int64(i*chunk) || w.n != chunk || s.kind != want {
			t.Fatalf("prewrite chunk %d of %d: %v then %v, want a write of %d zeros at %d then a %v", i, n, w, s, chunk, i*chunk, want)
		}
	}
}

// openPrewriteRecorded opens a log in a new directory over a FaultFS that
// records the operations on prepared files, prewriting in chunks of chunk
// bytes, with hook called (with the log) before each chunk.
func openPrewriteRecorded(t *testing.T, chunk int, hook func(l *Log, off int64)) (*Log, *tmpRecorder, string) {
	t.Helper()
	rec := &tmpRecorder{}
	ffs := vfstest.NewFaultFS(nil)
	ffs.SetFault(rec.fault)
	var lp atomic.Pointer[Log]
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: prewriteSeg}, WithFS(ffs), withPrewriteChunk(chunk),
		withPrewriteHook(func(off int64) { hook(lp.Load(), off) }))
	lp.Store(l)
	return l, rec, dir
}

// waitPrepared waits until the preparer has a segment ready.
func waitPrepared(l *Log) {
	p := l.prep
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.ready == nil {
		p.cond.Wait()
	}
}

// halfFill appends records of 1 KiB until the active segment is past half
// full (the preparer is kicked), and returns the next sequence number.
func halfFill(t *testing.T, l *Log, from uint64) uint64 {
	t.Helper()
	s := l.active.Load()
	for {
		if end, _ := s.Reserved(); end >= l.prepareAt {
			return from
		}
		mustAppend(t, l, payloadFor(from, 1<<10))
		from++
	}
}

// rollOver appends records of 1 KiB until the log rolls over, syncs, and
// returns the next sequence number.
func rollOver(t *testing.T, l *Log, from uint64) uint64 {
	t.Helper()
	s := l.active.Load()
	for l.active.Load() == s {
		mustAppend(t, l, payloadFor(from, 1<<10))
		from++
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return from
}

// reopenCheck closes l, reopens dir and checks records [1, next).
func reopenCheck(t *testing.T, l *Log, dir string, next uint64) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openT(t, dir, Config{SegmentSize: prewriteSeg})
	defer l2.Close()
	checkRecords(t, l2, 1, next, 1<<10)
}

// TestPrewriteWritesBackEachChunk: with prewriting on, the preparer writes
// zeros over the whole next segment, each chunk written back before the next
// and the last synced, before any record goes there; with it off, nothing.
func TestPrewriteWritesBackEachChunk(t *testing.T) {
	const chunk = 16 << 10
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("on=%v", on), func(t *testing.T) {
			rec := &tmpRecorder{}
			ffs := vfstest.NewFaultFS(nil)
			ffs.SetFault(rec.fault)
			dir := t.TempDir()
			l := openT(t, dir, Config{SegmentSize: prewriteSeg, NoPrewrite: !on}, WithFS(ffs), withPrewriteChunk(chunk))
			next := halfFill(t, l, 1)
			waitPrepared(l)
			l.prep.mu.Lock()
			tmp := l.prep.ready.Path()
			l.prep.mu.Unlock()
			next = rollOver(t, l, next)
			ops := rec.prewriteOps(tmp)
			m := l.Metrics()
			if !on {
				if len(ops) != 0 || m.PrewrittenBytes != 0 {
					t.Fatalf("prewrite off: %d prewrite operations (%v), %d bytes prewritten", len(ops), ops, m.PrewrittenBytes)
				}
				reopenCheck(t, l, dir, next)
				return
			}
			checkChunked(t, ops, prewriteSeg/chunk, chunk, true)
			if m.PrewrittenBytes != prewriteSeg || m.PrewriteFailures != 0 {
				t.Fatalf("metrics: %d bytes prewritten, %d failures; want %d, 0", m.PrewrittenBytes, m.PrewriteFailures, prewriteSeg)
			}
			// The active segment is the prewritten file, under its
			// final name, and the zeros came before every record.
			if got := rec.prewrittenPaths(); len(got) != 1 || got[0] != tmp {
				t.Fatalf("prewritten files %v, want [%s]", got, tmp)
			}
			reopenCheck(t, l, dir, next)
		})
	}
}

// TestPrewriteStopsForRollover: a rollover that finds the prewrite running
// waits for its current chunk only, and takes the segment with the chunks
// written so far, all written back (no dirty page for its first sync).
func TestPrewriteStopsForRollover(t *testing.T) {
	const chunk = 8 << 10
	started := make(chan struct{})
	l, rec, dir := openPrewriteRecorded(t, chunk, func(l *Log, off int64) {
		if off != 2*chunk {
			return
		}
		close(started)
		// Hold the prewrite here until a rollover asks for the
		// segment.
		l.prep.mu.Lock()
		hurry := l.prep.hurry
		l.prep.mu.Unlock()
		<-hurry
	})
	next := halfFill(t, l, 1)
	<-started
	next = rollOver(t, l, next)
	paths := rec.prewrittenPaths()
	if len(paths) != 1 {
		t.Fatalf("prewritten files %v, want one", paths)
	}
	checkChunked(t, rec.prewriteOps(paths[0]), 2, chunk, false)
	if m := l.Metrics(); m.PrewrittenBytes != 2*chunk || m.PrewriteFailures != 0 {
		t.Fatalf("metrics: %d bytes prewritten, %d failures; want %d, 0", m.PrewrittenBytes, m.PrewriteFailures, 2*chunk)
	}
	if got := l.active.Load().Header().Index; got != 2 {
		t.Fatalf("active segment %d, want 2", got)
	}
	reopenCheck(t, l, dir, next)
}

// TestCloseStopsPrewrite: Close stops the prewrite after its current chunk,
// removes the unfinished file and leaves no goroutine behind.
func TestCloseStopsPrewrite(t *testing.T) {
	const chunk = 8 << 10
	started := make(chan struct{})
	l, rec, dir := openPrewriteRecorded(t, chunk, func(l *Log, off int64) {
		if off == chunk {
			close(started)
			<-l.prep.stopc // Close has begun
		}
	})
	next := halfFill(t, l, 1)
	<-started
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.prep.done:
	default:
		t.Fatal("the preparer's goroutine runs on after Close")
	}
	paths := rec.prewrittenPaths()
	if len(paths) != 1 {
		t.Fatalf("prewritten files %v, want one", paths)
	}
	checkChunked(t, rec.prewriteOps(paths[0]), 1, chunk, false)
	for _, name := range segDirNames(t, dir) {
		if strings.HasSuffix(name, segment.TempSuffix) || strings.HasSuffix(name, segment.PoolSuffix) {
			t.Fatalf("Close left the partly prewritten file as %s", name)
		}
	}
	l2 := openT(t, dir, Config{SegmentSize: prewriteSeg})
	defer l2.Close()
	checkRecords(t, l2, 1, next, 1<<10)
}

// TestPrewriteEIO: a write, a write-back or the sync of the prewrite fails
// with EIO. The log goes on (the file is replaced by a plain one), and the
// failure is in Metrics, the aof.prewrite.failures counter and an
// aof.prewrite span with the error.
func TestPrewriteEIO(t *testing.T) {
	const chunk = 16 << 10
	for _, kind := range []vfstest.OpKind{vfstest.OpWrite, vfstest.OpWriteBack, vfstest.OpSync} {
		t.Run(kind.String(), func(t *testing.T) {
			rec := &tmpRecorder{fail: func(op tmpOp, prior []tmpOp) error {
				// Fail the second chunk's write or write-back, or
				// the one sync, after the last chunk.
				if op.kind != kind || kind == vfstest.OpWrite && !op.zeros {
					return nil
				}
				n := 0
				for _, p := range prior {
					if p.kind == kind && (kind != vfstest.OpWrite || p.zeros) {
						n++
					}
				}
				if kind == vfstest.OpSync && n == 0 || kind != vfstest.OpSync && n == 1 {
					return unix.EIO
				}
				return nil
			}}
			ffs := vfstest.NewFaultFS(nil)
			ffs.SetFault(rec.fault)
			tt := newTelemetry(t)
			dir := t.TempDir()
			l := openT(t, dir, Config{SegmentSize: prewriteSeg}, append(tt.opts(), WithFS(ffs), withPrewriteChunk(chunk))...)
			next := halfFill(t, l, 1)
			waitPrepared(l)
			l.prep.mu.Lock()
			ready := l.prep.ready.Path()
			l.prep.mu.Unlock()
			paths := rec.prewrittenPaths()
			if len(paths) != 1 || paths[0] == ready {
				t.Fatalf("prewritten %v, ready %s: want the failed file replaced by another", paths, ready)
			}
			// The log goes on: through the rollover and the next one.
			next = rollOver(t, l, next)
			next = rollOver(t, l, next)
			if err := l.usable(); err != nil {
				t.Fatalf("log after a failed prewrite: %v", err)
			}
			if m := l.Metrics(); m.PrewriteFailures != 1 {
				t.Fatalf("Metrics.PrewriteFailures %d, want 1", m.PrewriteFailures)
			}
			var failed []string
			for _, s := range spansNamed(tt.spans.Ended(), aofotel.SpanPrewrite) {
				if s.Status().Code == codes.Error {
					failed = append(failed, s.Status().Description)
				}
			}
			if len(failed) != 1 || !strings.Contains(failed[0], unix.EIO.Error()) {
				t.Fatalf("aof.prewrite spans with an error: %q, want one with EIO", failed)
			}
			got := tt.collect(t)[aofotel.MetricPrewriteFailures]
			if sum, ok := got.Data.(metricdata.Sum[int64]); !ok || len(sum.DataPoints) != 1 || sum.DataPoints[0].Value != 1 {
				t.Fatalf("%s: %+v, want 1", aofotel.MetricPrewriteFailures, got.Data)
			}
			reopenCheck(t, l, dir, next)
		})
	}
}

// TestIdleIOAndRestore: idleIO puts the calling thread in the idle I/O
// class, and restore puts back the class it had.
func TestIdleIOAndRestore(t *testing.T) {
	ioprio := func() uintptr {
		v, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, 0, 0)
		if errno != 0 {
			t.Skipf("ioprio_get: %v", errno)
		}
		return v
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Checked on a thread of its own, which the runtime drops at
		// the end whatever its class.
		runtime.LockOSThread()
		before := ioprio()
		restore := idleIO()
		if got := ioprio(); got>>ioprioClassShift != ioprioClassIdle {
			t.Errorf("after idleIO: ioprio %#x, want the idle class (%d)", got, ioprioClassIdle)
		}
		restore()
		if got := ioprio(); got != before {
			t.Errorf("after restore: ioprio %#x, want %#x", got, before)
		}
	}()
	<-done
}
