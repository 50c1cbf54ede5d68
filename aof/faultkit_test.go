package aof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/flush"
	"github.com/aof2/aof2/vfs/vfstest"
)

// TestStalledSyncRespectsContext: while a sync stalls (the disk hangs),
// FlushUntil and Sync return their context's error when it ends, appends
// and reads go on, nothing is claimed durable, and the cancelled callers
// do not fail-stop the log: once the sync finishes, everything becomes
// durable and survives a reopen.
func TestStalledSyncRespectsContext(t *testing.T) {
	for _, background := range []bool{false, true} {
		t.Run(fmt.Sprintf("background=%v", background), func(t *testing.T) {
			fs := vfstest.NewFaultFS(nil)
			dir := t.TempDir()
			l := openT(t, dir, Config{SegmentSize: 64 << 10, NoBackgroundFlush: !background}, WithFS(fs))
			first := mustAppend(t, l, []byte("durable before the stall"))
			if err := l.FlushUntil(ctx, first); err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			entered := make(chan int, 1)
			fs.SetFault(vfstest.StallUntil(vfstest.OpSync, release, entered))

			a := mustAppend(t, l, []byte("a"))
			leader := make(chan error, 1)
			go func() { leader <- l.FlushUntil(ctx, a) }()
			<-entered // a sync is stalled now, holding the flush lock

			b := mustAppend(t, l, []byte("b, appended during the stall"))
			for _, wait := range []func(context.Context) error{
				func(c context.Context) error { return l.FlushUntil(c, b) },
				func(c context.Context) error { return l.Sync(c) },
				func(c context.Context) error { return l.FlushUntil(c, a) },
			} {
				c, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- wait(c) }()
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("wait during a stalled sync, context cancelled: %v, want context.Canceled", err)
				}
			}
			if rec, err := l.Read(b.Seq, nil); err != nil || string(rec.Payload) != "b, appended during the stall" {
				t.Fatalf("Read during the stall: %q, %v", rec.Payload, err)
			}
			if m := l.Metrics(); m.DurableSeq != first.Seq+1 || m.RetryFailures != 0 {
				t.Fatalf("during the stall: durable %d (want %d), failures %d", m.DurableSeq, first.Seq+1, m.RetryFailures)
			}
			select {
			case err := <-leader:
				t.Fatalf("FlushUntil returned %v while its sync was stalled", err)
			default:
			}

			close(release)
			fs.SetFault(nil)
			if err := <-leader; err != nil {
				t.Fatalf("leader after the stall: %v", err)
			}
			if err := l.FlushUntil(ctx, b); err != nil {
				t.Fatalf("FlushUntil after the stall: %v", err)
			}
			if m := l.Metrics(); m.DurableSeq != b.Seq+1 || m.BacklogBytes != 0 || m.RetryFailures != 0 {
				t.Fatalf("after the stall: %+v", m)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openT(t, dir, Config{SegmentSize: 64 << 10})
			defer l.Close()
			if rep := l.Recovery(); rep.NextSeq != b.Seq+1 || len(rep.Truncations) != 0 {
				t.Fatalf("reopen: %+v", rep)
			}
		})
	}
}

// TestStallForDelaysSyncs: the timed stall hook delays syncs without
// failing them: under fake time, FlushUntil is still waiting (the record
// not durable) while the stall lasts, and returns nil once it has passed.
func TestStallForDelaysSyncs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const stall = time.Hour // fake time: costs nothing
		fs := vfstest.NewFaultFS(nil)
		l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, NoBackgroundFlush: true}, WithFS(fs))
		defer l.Close()
		id := mustAppend(t, l, []byte("slow disk"))
		before := fs.Count(vfstest.OpSync)
		fs.SetFault(vfstest.StallFor(vfstest.OpSync, stall))
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- l.FlushUntil(ctx, id) }()
		synctest.Wait() // FlushUntil is inside the stalled sync
		select {
		case err := <-done:
			t.Fatalf("FlushUntil returned %v while its sync was stalled", err)
		default:
		}
		if m := l.Metrics(); m.DurableSeq > id.Seq {
			t.Fatalf("record %d durable while its sync was stalled: %+v", id.Seq, m)
		}
		if err := <-done; err != nil {
			t.Fatalf("FlushUntil after the stall: %v", err)
		}
		if waited := time.Since(start); waited < stall {
			t.Fatalf("FlushUntil returned after %v, before the %v stall ended", waited, stall)
		}
		if fs.Count(vfstest.OpSync) == before {
			t.Fatal("no sync went through the hook")
		}
		fs.SetFault(nil)
	})
}

// TestEIOOnNthSync fails the Nth file sync (and, separately, the Nth
// directory sync) of a busy log with EIO, for several N, under a power
// model. Every FlushUntil that returned nil is below the frontier the
// failure names; every waiter gets an answer; nothing at or above it was
// reported durable; and after a power cut (undurable bytes lost) and after
// a plain reopen (the page cache kept), every acknowledged record is there
// and every record served is the one appended.
func TestEIOOnNthSync(t *testing.T) {
	var cases, acked int
	for _, dirSync := range []bool{false, true} {
		// File syncs: the first ones, and later ones that fall on
		// rollovers and seals. Directory syncs: one per new segment.
		ns := []int{1, 2, 3, 5, 8, 13, 21, 34, 55}
		if dirSync {
			ns = []int{1, 2, 3}
		}
		for _, n := range ns {
			root := t.TempDir()
			pfs, err := vfstest.NewPowerFS(nil, root)
			if err != nil {
				t.Fatal(err)
			}
			fs := vfstest.NewFaultFS(pfs)
			dir := filepath.Join(root, "log")
			what := fmt.Sprintf("EIO on %s sync %d after Open", map[bool]string{false: "file", true: "directory"}[dirSync], n)
			l := openT(t, dir, Config{SegmentSize: 64 << 10, FlushInterval: 1e6}, WithFS(fs))
			// Count from after Open (which syncs directories itself,
			// and fails if that fails).
			if dirSync {
				fs.SetFault(vfstest.FailNth(vfstest.OpSyncDir, fs.Count(vfstest.OpSyncDir)+n, unix.EIO, false))
			} else {
				fs.SetFault(vfstest.FailNth(vfstest.OpSync, fs.Count(vfstest.OpSync)+n, unix.EIO, false))
			}
			var (
				mu       sync.Mutex
				payloads = map[uint64][]byte{}
				ok       []uint64 // FlushUntil returned nil
				failed   []uint64
			)
			var wg sync.WaitGroup
			for g := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(n), uint64(g)))
					for range 60 {
						p := make([]byte, r.IntN(6000))
						fillRand(r, p)
						id, err := l.Append(ctx, p)
						if err != nil {
							if !errors.Is(err, ErrFailed) {
								t.Errorf("%s: Append: %v", what, err)
							}
							return
						}
						mu.Lock()
						payloads[id.Seq] = p
						mu.Unlock()
						err = l.FlushUntil(ctx, id)
						mu.Lock()
						if err == nil {
							ok = append(ok, id.Seq)
						} else {
							failed = append(failed, id.Seq)
						}
						mu.Unlock()
						if err != nil {
							var fe *flush.FailError
							if !errors.As(err, &fe) || !errors.Is(err, unix.EIO) || id.Seq < fe.Durable {
								t.Errorf("%s: FlushUntil(%d): %v; want a FailError wrapping EIO whose frontier is at most the record", what, id.Seq, err)
							}
							return
						}
					}
				}()
			}
			wg.Wait()
			img := pfs.Snapshot() // the power goes now
			var frontier uint64
			closeErr := l.Close()
			var fe *flush.FailError
			if errors.As(closeErr, &fe) {
				frontier = fe.Durable
			} else if len(failed) > 0 {
				t.Fatalf("%s: FlushUntil failed for %v, but Close says %v", what, failed, closeErr)
			}
			if len(failed) == 0 {
				// The Nth sync came after the workload (Close's): a
				// legitimate outcome when n is large; every
				// acknowledged record still counts below.
				frontier = ^uint64(0)
			}
			for _, seq := range ok {
				if seq >= frontier {
					t.Fatalf("%s: FlushUntil(%d) returned nil, but the failure names frontier %d", what, seq, frontier)
				}
			}
			cases++
			acked += len(ok)
			// After the power cut, and with the page cache kept.
			for _, loss := range []vfstest.Loss{vfstest.LoseAll, vfstest.KeepAll} {
				out := t.TempDir()
				if _, err := img.Write(out, loss, rand.New(rand.NewPCG(1, 1))); err != nil {
					t.Fatal(err)
				}
				checkAcked(t, filepath.Join(out, "log"), ok, payloads, fmt.Sprintf("%s, power cut (%v)", what, loss))
			}
			checkAcked(t, dir, ok, payloads, what+", reopened")
		}
	}
	t.Logf("%d cases, %d acknowledged records checked after power cut and reopen", cases, acked)
}

// checkAcked opens the log at dir and checks that every acknowledged
// record is there and that every record is the one appended.
func checkAcked(t *testing.T, dir string, acked []uint64, payloads map[uint64][]byte, what string) {
	t.Helper()
	l, err := Open(dir, Config{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatalf("%s: Open: %v", what, err)
	}
	defer l.Close()
	rep := l.Recovery()
	for _, seq := range acked {
		if seq >= rep.NextSeq {
			t.Fatalf("%s: acknowledged seq %d lost (log ends before %d)", what, seq, rep.NextSeq)
		}
	}
	for seq := rep.FirstSeq; seq < rep.NextSeq; seq++ {
		rec, err := l.Read(seq, nil)
		if err != nil || !bytes.Equal(rec.Payload, payloads[seq]) {
			t.Fatalf("%s: Read(%d): %d bytes, %v; not the record appended", what, seq, len(rec.Payload), err)
		}
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("%s: Sync after reopen: %v", what, err)
	}
}

// TestRealENOSPC fills a real, small file system (a 1 MiB tmpfs, mounted
// for the test; skipped where mounting is not allowed): Append fails with
// ENOSPC when the next segment cannot be allocated, every acknowledged
// record stays readable, and once space returns the log appends again and
// reopens with everything.
func TestRealENOSPC(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root and mount permission): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	// Ballast: space to give back later.
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "log")
	cfg := Config{SegmentSize: 64 << 10}
	l := openT(t, dir, cfg)
	var acked []RecordID
	var err error
	for i := uint64(1); ; i++ {
		var id RecordID
		if id, err = l.Append(ctx, payloadFor(i, 2000)); err != nil {
			break
		}
		if err = l.FlushUntil(ctx, id); err != nil {
			t.Fatalf("FlushUntil(%d) on a filling disk: %v", id.Seq, err)
		}
		acked = append(acked, id)
		if i > 10000 {
			t.Fatal("a 1 MiB file system never filled")
		}
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Append at a full disk: %v, want ENOSPC", err)
	}
	last := acked[len(acked)-1]
	checkRecords(t, l, 1, last.Seq+1, 2000)
	if _, err := l.Append(ctx, payloadFor(last.Seq+1, 2000)); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("second Append at a full disk: %v, want ENOSPC again", err)
	}
	// Space returns.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	id, err := l.Append(ctx, payloadFor(last.Seq+1, 2000))
	if err != nil || id.Seq != last.Seq+1 || id.Segment != last.Segment+1 {
		t.Fatalf("Append after space returned: %+v, %v; want seq %d in segment %d", id, err, last.Seq+1, last.Segment+1)
	}
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, cfg)
	defer l.Close()
	if rep := l.Recovery(); rep.NextSeq != id.Seq+1 || len(rep.Truncations) != 0 {
		t.Fatalf("reopen: %+v", rep)
	}
	checkRecords(t, l, 1, id.Seq+1, 2000)
	t.Logf("%d records acknowledged before the disk filled (%d segments), none lost", len(acked), last.Segment)
}
