// Package vfstest holds test doubles of the [vfs.FS] seam: a [FaultFS]
// that fails a chosen file or directory sync with a chosen errno, stalls a
// sync, runs a hook during a sync, or fails file creation and
// preallocation with ENOSPC; and a [PowerFS] that models what the disk
// would hold after a power cut at any moment, and writes that image out.
// Production code never uses them: it passes [vfs.Default].
package vfstest

import (
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/aof2/aof2/vfs"
)

// SyncHook decides the fate of one file sync. n counts the syncs made
// through the FaultFS so far, from 1; name is the file's path. A non-nil
// result is returned to the engine instead of syncing. A hook may also
// block (to stall a sync) or act on the log (to append during a sync).
type SyncHook func(n int, name string) error

// PathHook decides the fate of one create or allocate call on path.
type PathHook func(path string) error

// OpHook observes an operation just before it runs: op is "write",
// "create", "allocate", "rename", "remove", "sync" or "syncdir"; path is
// the file's path (a file keeps the path it was opened with; for rename,
// the old path); off and b are a write's offset and bytes (b must not be
// kept or changed). A crash test uses it to kill the process at an exact
// point (before a segment's trailer is written, say).
type OpHook func(op, path string, off int64, b []byte)

// FaultFS wraps an FS and injects faults chosen by a test: failed or stalled
// syncs, and ENOSPC at file creation or preallocation. Hooks can be swapped
// at any time, also while a log runs. With no hooks set it behaves exactly
// like the wrapped FS.
type FaultFS struct {
	vfs.FS

	syncs      atomic.Int64
	syncHook   atomic.Pointer[SyncHook]
	dirSyncs   atomic.Int64
	dirHook    atomic.Pointer[SyncHook]
	createHook atomic.Pointer[PathHook]
	opHook     atomic.Pointer[OpHook]
	allocHook  atomic.Pointer[PathHook]
}

// NewFaultFS returns a FaultFS over inner (Default if nil).
func NewFaultFS(inner vfs.FS) *FaultFS {
	if inner == nil {
		inner = vfs.Default
	}
	return &FaultFS{FS: inner}
}

// SetSyncHook installs h for every later file sync (nil removes it).
func (f *FaultFS) SetSyncHook(h SyncHook) { setHook(&f.syncHook, h) }

// SetSyncDirHook installs h for every later directory sync (nil removes
// it). Its n counts directory syncs, apart from file syncs.
func (f *FaultFS) SetSyncDirHook(h SyncHook) { setHook(&f.dirHook, h) }

// SetOpHook installs h, called before every operation (nil removes it).
func (f *FaultFS) SetOpHook(h OpHook) { setHook(&f.opHook, h) }

func (f *FaultFS) observe(op, path string, off int64, b []byte) {
	if h := f.opHook.Load(); h != nil && *h != nil {
		(*h)(op, path, off, b)
	}
}

// Rename implements FS.
func (f *FaultFS) Rename(oldpath, newpath string) error {
	f.observe("rename", oldpath, 0, nil)
	return f.FS.Rename(oldpath, newpath)
}

// Remove implements FS.
func (f *FaultFS) Remove(path string) error {
	f.observe("remove", path, 0, nil)
	return f.FS.Remove(path)
}

// SetCreateHook installs h for every later file creation (nil removes it).
func (f *FaultFS) SetCreateHook(h PathHook) { setHook(&f.createHook, h) }

// SetAllocateHook installs h for every later preallocation (nil removes it).
func (f *FaultFS) SetAllocateHook(h PathHook) { setHook(&f.allocHook, h) }

// Syncs returns the number of file syncs attempted through f.
func (f *FaultFS) Syncs() int { return int(f.syncs.Load()) }

// SyncDirs returns the number of directory syncs attempted through f.
func (f *FaultFS) SyncDirs() int { return int(f.dirSyncs.Load()) }

// SyncDir implements FS.
func (f *FaultFS) SyncDir(path string) error {
	f.observe("syncdir", path, 0, nil)
	n := int(f.dirSyncs.Add(1))
	if h := f.dirHook.Load(); h != nil && *h != nil {
		if err := (*h)(n, path); err != nil {
			return &fs.PathError{Op: "fsync", Path: path, Err: err}
		}
	}
	return f.FS.SyncDir(path)
}

// StallFor returns a SyncHook that stalls every sync for d, then lets it
// run.
func StallFor(d time.Duration) SyncHook {
	return func(int, string) error {
		time.Sleep(d)
		return nil
	}
}

// StallUntil returns a SyncHook that stalls every sync until release is
// closed, then lets it run; entered, if not nil, receives the number of
// each sync as it starts to stall (without blocking: give it room).
func StallUntil(release <-chan struct{}, entered chan<- int) SyncHook {
	return func(n int, _ string) error {
		if entered != nil {
			select {
			case entered <- n:
			default:
			}
		}
		<-release
		return nil
	}
}

// FailNth returns a SyncHook that fails sync number n (as counted by the
// FaultFS) with err, and every later one if sticky.
func FailNth(n int, err error, sticky bool) SyncHook {
	return func(i int, _ string) error {
		if i == n || sticky && i > n {
			return err
		}
		return nil
	}
}

// setHook installs h; a nil h removes the hook (callers check *h).
func setHook[H any](p *atomic.Pointer[H], h H) { p.Store(&h) }

func runPathHook(p *atomic.Pointer[PathHook], path string) error {
	if h := p.Load(); h != nil && *h != nil {
		return (*h)(path)
	}
	return nil
}

// Create implements FS.
func (f *FaultFS) Create(path string, perm fs.FileMode) (vfs.File, error) {
	f.observe("create", path, 0, nil)
	if err := runPathHook(&f.createHook, path); err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	file, err := f.FS.Create(path, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// Open implements FS.
func (f *FaultFS) Open(path string) (vfs.File, error) {
	file, err := f.FS.Open(path)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

type faultFile struct {
	vfs.File
	fs *FaultFS
}

func (f *faultFile) Sync() error {
	f.fs.observe("sync", f.Name(), 0, nil)
	n := int(f.fs.syncs.Add(1))
	if h := f.fs.syncHook.Load(); h != nil && *h != nil {
		if err := (*h)(n, f.Name()); err != nil {
			return &fs.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
	}
	return f.File.Sync()
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.observe("write", f.Name(), off, b)
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Allocate(size int64) error {
	f.fs.observe("allocate", f.Name(), 0, nil)
	if err := runPathHook(&f.fs.allocHook, f.Name()); err != nil {
		return &fs.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return f.File.Allocate(size)
}
