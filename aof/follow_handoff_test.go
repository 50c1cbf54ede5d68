package aof

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aof2/aof2/vfs"
)

// noSyncFS is the real file system with a Sync that does nothing: no
// system call in which the Go runtime could hand the writer's processor
// to another goroutine (a test of scheduling, not of durability).
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error { return nil }

func (f noSyncFS) Create(path string, perm fs.FileMode) (vfs.File, error) {
	file, err := f.FS.Create(path, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{file}, nil
}

func (f noSyncFS) Open(path string) (vfs.File, error) {
	file, err := f.FS.Open(path)
	if err != nil {
		return nil, err
	}
	return noSyncFile{file}, nil
}

// TestDurableFollowerRunsWhenTheWriterFlushes: a Durable follower waiting
// at the tail is woken by the flush of the writer's own FlushUntil, and
// runs then, not whenever the writer's processor next happens to be free.
// A writer that leads its flushes never blocks: before, the follower it
// woke waited in its processor's run queue until another thread took it
// (or, on an idle machine, the next tick of the flush interval's timer:
// the p99 of about FlushInterval seen in the benchmarks). Now the leader
// yields its processor to the followers it woke. With one processor and
// syncs that enter no system call, the follower must have seen each
// record (or, when the scheduler's fairness tick runs the writer first,
// the one before) when FlushUntil returns.
func TestDurableFollowerRunsWhenTheWriterFlushes(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	l := openT(t, t.TempDir(), Config{FlushInterval: time.Hour}, WithFS(noSyncFS{vfs.Default}))
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen atomic.Uint64
	done := make(chan error, 1)
	go func() {
		for rec, err := range l.Follow(ctx, 1, Durable) {
			if err != nil {
				done <- err
				return
			}
			seen.Store(rec.Seq)
		}
		done <- nil
	}()
	for l.pipe.Following() == 0 { // the follower waits at the tail
		runtime.Gosched()
	}
	for i := range 50 {
		id := mustAppend(t, l, fmt.Appendf(nil, "record %d", i))
		if err := l.FlushUntil(ctx, id); err != nil {
			t.Fatal(err)
		}
		if s := seen.Load(); s+1 < id.Seq {
			t.Fatalf("FlushUntil(%d) returned; the Durable follower has seen up to seq %d", id.Seq, s)
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
