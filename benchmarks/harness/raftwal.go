package harness

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// hashicorp/raft-wal through its raft.LogStore API: every StoreLogs is
// written and fsynced before it returns; there is no no-sync mode, so it
// takes part in durable workloads only. 64 MiB segments (its default).
// Records are raft.Log{Type: LogCommand, Term: 1, Data: payload}. Syncs are
// counted by wrapping its VFS (segment files only: the BoltDB meta store's
// syncs at segment rotation are not seen).
func init() {
	register(Impl{
		Name: "raftwal",
		Note: "github.com/hashicorp/raft-wal v0.4.2 (raft.LogStore: StoreLog/StoreLogs, GetLog); 64 MiB segments; durable only (fsync per StoreLogs, no no-sync mode); caller-side mutex",
		Open: openRaftWAL,
		OpenSized: func(dir string, mode Mode, size int64) (Log, error) {
			return openRaftWALSized(dir, int(size))
		},
		Modes: []Mode{Durable},
	})
}

type raftWALLog struct {
	mu    sync.Mutex
	w     *raftwal.WAL
	next  uint64
	syncs *atomic.Int64
	logs  []raft.Log
	ptrs  []*raft.Log
}

func openRaftWAL(dir string, _ Mode) (Log, error) { return openRaftWALSized(dir, 0) }

// openRaftWALSized opens with segments of size bytes, or raft-wal's
// default (64 MiB) if size is 0.
func openRaftWALSized(dir string, size int) (Log, error) {
	syncs := new(atomic.Int64)
	vfs := &countingVFS{VFS: fs.New(), syncs: syncs}
	filer := raftwal.WithSegmentFiler(segment.NewFiler(dir, vfs))
	var w *raftwal.WAL
	var err error
	if size > 0 {
		w, err = raftwal.Open(dir, filer, raftwal.WithSegmentSize(size))
	} else {
		w, err = raftwal.Open(dir, filer)
	}
	if err != nil {
		return nil, fmt.Errorf("raft-wal open: %w", err)
	}
	last, err := w.LastIndex()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("raft-wal last index: %w", err)
	}
	return &raftWALLog{w: w, next: last + 1, syncs: syncs}, nil
}

func (r *raftWALLog) Append(p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := raft.Log{Index: r.next, Term: 1, Type: raft.LogCommand, Data: p}
	if err := r.w.StoreLog(&l); err != nil {
		return fmt.Errorf("raft-wal store %d: %w", r.next, err)
	}
	r.next++
	return nil
}

func (r *raftWALLog) AppendBatch(ps [][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cap(r.logs) < len(ps) {
		r.logs = make([]raft.Log, len(ps))
		r.ptrs = make([]*raft.Log, len(ps))
	}
	r.logs, r.ptrs = r.logs[:len(ps)], r.ptrs[:len(ps)]
	for i, p := range ps {
		r.logs[i] = raft.Log{Index: r.next + uint64(i), Term: 1, Type: raft.LogCommand, Data: p}
		r.ptrs[i] = &r.logs[i]
	}
	if err := r.w.StoreLogs(r.ptrs); err != nil {
		return fmt.Errorf("raft-wal store logs at %d: %w", r.next, err)
	}
	r.next += uint64(len(ps))
	return nil
}

func (r *raftWALLog) Read(seq uint64, dst []byte) ([]byte, error) {
	var l raft.Log
	err := r.w.GetLog(seq, &l)
	if errors.Is(err, raft.ErrLogNotFound) {
		return nil, fmt.Errorf("raft-wal get %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raft-wal get %d: %w", seq, err)
	}
	return append(dst, l.Data...), nil
}

func (r *raftWALLog) Scan(fn func(seq uint64, p []byte) error) error {
	first, err := r.w.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft-wal first index: %w", err)
	}
	last, err := r.w.LastIndex()
	if err != nil {
		return fmt.Errorf("raft-wal last index: %w", err)
	}
	if first == 0 {
		return nil
	}
	var l raft.Log
	for i := first; i <= last; i++ {
		if err := r.w.GetLog(i, &l); err != nil {
			return fmt.Errorf("raft-wal get %d: %w", i, err)
		}
		if err := fn(i, l.Data); err != nil {
			return err
		}
	}
	return nil
}

func (r *raftWALLog) Syncs() int64 { return r.syncs.Load() }

func (r *raftWALLog) Close() error {
	if err := r.w.Close(); err != nil {
		return fmt.Errorf("raft-wal close: %w", err)
	}
	return nil
}

// countingVFS counts Sync calls on the segment files raft-wal writes.
type countingVFS struct {
	types.VFS
	syncs *atomic.Int64
}

func (v *countingVFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := v.VFS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return &countingFile{WritableFile: f, syncs: v.syncs}, nil
}

func (v *countingVFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := v.VFS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return &countingFile{WritableFile: f, syncs: v.syncs}, nil
}

type countingFile struct {
	types.WritableFile
	syncs *atomic.Int64
}

func (f *countingFile) Sync() error {
	f.syncs.Add(1)
	return f.WritableFile.Sync()
}
