// Package vfstest holds test doubles of the [vfs.FS] seam: a [FaultFS]
// that fails, stalls or observes any file-system operation a test chooses
// (a sync with EIO, a preallocation with ENOSPC, a removal, a rename …);
// and a [PowerFS] that models what the disk would hold after a power cut
// at any moment, and writes that image out. Production code never uses
// them: it passes [vfs.Default].
package vfstest

import (
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"github.com/aof2/aof2/vfs"
)

// OpKind is a kind of operation a [FaultFS] lets a [Fault] decide.
type OpKind uint8

// The operations a FaultFS passes to its Fault.
const (
	// OpCreate is FS.Create.
	OpCreate OpKind = iota
	// OpWrite is File.WriteAt.
	OpWrite
	// OpAllocate is File.Allocate.
	OpAllocate
	// OpSync is File.Sync.
	OpSync
	// OpSyncDir is FS.SyncDir.
	OpSyncDir
	// OpRename is FS.Rename or File.Rename.
	OpRename
	// OpRemove is FS.Remove.
	OpRemove
	// OpWriteBack is File.WriteBack.
	OpWriteBack
	numOpKinds
)

// String returns the operation's name: "create", "write", "allocate",
// "sync", "syncdir", "rename", "remove" or "writeback".
func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpWrite:
		return "write"
	case OpAllocate:
		return "allocate"
	case OpSync:
		return "sync"
	case OpSyncDir:
		return "syncdir"
	case OpRename:
		return "rename"
	case OpRemove:
		return "remove"
	case OpWriteBack:
		return "writeback"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// errOp is the name of the system call a failed operation of kind k
// reports in its *fs.PathError, as the real one would.
func (k OpKind) errOp() string {
	switch k {
	case OpCreate:
		return "open"
	case OpAllocate:
		return "fallocate"
	case OpSync:
		return "fdatasync"
	case OpSyncDir:
		return "fsync"
	case OpWriteBack:
		return "sync_file_range"
	}
	return k.String()
}

// Op is one operation about to run through a [FaultFS].
type Op struct {
	// Kind is what the operation is.
	Kind OpKind
	// N counts the operations of this kind made through the FaultFS so
	// far, this one included, from 1.
	N int
	// Path is the file's or directory's path: a file's current name (see
	// vfs.File.Name); for a rename, the old path.
	Path string
	// To is a rename's new path.
	To string
	// Off and Data are a write's offset and bytes (Data must not be kept
	// or changed).
	Off  int64
	Data []byte
}

// Fault decides the fate of one operation, just before it runs. A non-nil
// result is returned to the engine instead of running it (wrapped in an
// *fs.PathError naming the system call, or an *os.LinkError for a
// rename). A Fault may also block (to stall the operation), act on the log
// (to append during a sync), or only observe (a crash test kills the
// process at an exact point). It is called from whatever goroutine makes
// the operation, possibly several at once.
type Fault func(op Op) error

// FaultFS wraps an FS and passes every create, write, allocate, sync,
// directory sync, rename and remove to one [Fault] chosen by the test
// before running it. The Fault can be swapped at any time, also while a
// log runs. With no Fault set it behaves exactly like the wrapped FS.
type FaultFS struct {
	vfs.FS

	counts [numOpKinds]atomic.Int64
	fault  atomic.Pointer[Fault]
}

// NewFaultFS returns a FaultFS over inner (vfs.Default if nil).
func NewFaultFS(inner vfs.FS) *FaultFS {
	if inner == nil {
		inner = vfs.Default
	}
	return &FaultFS{FS: inner}
}

// SetFault installs h for every later operation (nil removes it).
func (f *FaultFS) SetFault(h Fault) { f.fault.Store(&h) }

// Count returns the number of operations of kind k attempted through f
// (including those a Fault failed).
func (f *FaultFS) Count(k OpKind) int { return int(f.counts[k].Load()) }

// decide counts op and asks the Fault about it.
func (f *FaultFS) decide(op Op) error {
	op.N = int(f.counts[op.Kind].Add(1))
	h := f.fault.Load()
	if h == nil || *h == nil {
		return nil
	}
	err := (*h)(op)
	if err == nil {
		return nil
	}
	if op.Kind == OpRename {
		return &os.LinkError{Op: "rename", Old: op.Path, New: op.To, Err: err}
	}
	return &fs.PathError{Op: op.Kind.errOp(), Path: op.Path, Err: err}
}

// Only returns a Fault that passes operations of kind k to h and lets
// every other one run.
func Only(k OpKind, h Fault) Fault {
	return func(op Op) error {
		if op.Kind != k {
			return nil
		}
		return h(op)
	}
}

// Fail returns a Fault that fails every operation of kind k with err.
func Fail(k OpKind, err error) Fault {
	return Only(k, func(Op) error { return err })
}

// FailNth returns a Fault that fails operation number n of kind k (as
// [Op.N] counts) with err, and every later one of that kind if sticky.
func FailNth(k OpKind, n int, err error, sticky bool) Fault {
	return Only(k, func(op Op) error {
		if op.N == n || sticky && op.N > n {
			return err
		}
		return nil
	})
}

// StallFor returns a Fault that stalls every operation of kind k for d,
// then lets it run.
func StallFor(k OpKind, d time.Duration) Fault {
	return Only(k, func(Op) error {
		time.Sleep(d)
		return nil
	})
}

// StallUntil returns a Fault that stalls every operation of kind k until
// release is closed, then lets it run; entered, if not nil, receives the
// [Op.N] of each as it starts to stall (without blocking: give it room).
func StallUntil(k OpKind, release <-chan struct{}, entered chan<- int) Fault {
	return Only(k, func(op Op) error {
		if entered != nil {
			select {
			case entered <- op.N:
			default:
			}
		}
		<-release
		return nil
	})
}

// Create implements vfs.FS.
func (f *FaultFS) Create(path string, perm fs.FileMode) (vfs.File, error) {
	if err := f.decide(Op{Kind: OpCreate, Path: path}); err != nil {
		return nil, err
	}
	file, err := f.FS.Create(path, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// Open implements vfs.FS.
func (f *FaultFS) Open(path string) (vfs.File, error) {
	file, err := f.FS.Open(path)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// Rename implements vfs.FS.
func (f *FaultFS) Rename(oldpath, newpath string) error {
	if err := f.decide(Op{Kind: OpRename, Path: oldpath, To: newpath}); err != nil {
		return err
	}
	return f.FS.Rename(oldpath, newpath)
}

// Remove implements vfs.FS.
func (f *FaultFS) Remove(path string) error {
	if err := f.decide(Op{Kind: OpRemove, Path: path}); err != nil {
		return err
	}
	return f.FS.Remove(path)
}

// SyncDir implements vfs.FS.
func (f *FaultFS) SyncDir(path string) error {
	if err := f.decide(Op{Kind: OpSyncDir, Path: path}); err != nil {
		return err
	}
	return f.FS.SyncDir(path)
}

type faultFile struct {
	vfs.File
	fs *FaultFS
}

func (f *faultFile) Rename(newpath string) error {
	if err := f.fs.decide(Op{Kind: OpRename, Path: f.Name(), To: newpath}); err != nil {
		return err
	}
	return f.File.Rename(newpath)
}

func (f *faultFile) Sync() error {
	if err := f.fs.decide(Op{Kind: OpSync, Path: f.Name()}); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) WriteBack(off, n int64) error {
	if err := f.fs.decide(Op{Kind: OpWriteBack, Path: f.Name(), Off: off}); err != nil {
		return err
	}
	return f.File.WriteBack(off, n)
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.decide(Op{Kind: OpWrite, Path: f.Name(), Off: off, Data: b}); err != nil {
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Allocate(size int64) error {
	if err := f.fs.decide(Op{Kind: OpAllocate, Path: f.Name()}); err != nil {
		return err
	}
	return f.File.Allocate(size)
}
