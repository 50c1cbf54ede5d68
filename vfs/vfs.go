// Package vfs is the narrow file-system seam the engine calls through.
//
// Production code uses [Default], a zero-cost wrapper over the operating
// system. The test doubles (a fault injector and a power-loss model) live
// apart, in package github.com/aof2/aof2/vfs/vfstest.
//
// Only what the engine needs is here: positional reads and writes, data sync,
// preallocation, zeroing, read-only memory maps and directory operations.
package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// File is an open file as the engine uses it. Implementations must be safe
// for concurrent use by one writer and many readers.
type File interface {
	// ReadAt reads len(p) bytes at off (see io.ReaderAt).
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes p at off (pwrite).
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes the file's data durable (fdatasync, falling back to fsync
	// where fdatasync is not supported).
	Sync() error
	// WriteBack writes the dirty pages of [off, off+n) to the device and
	// waits for those writes (sync_file_range(2) with WAIT_BEFORE, WRITE
	// and WAIT_AFTER). It makes nothing durable: neither the device's
	// cache nor the file's metadata is flushed, so a power cut may still
	// lose the range; Sync does that. On ext4 and XFS the blocks of the
	// range that Allocate reserved are written ones once it returns (their
	// extent conversion is done, in the journal's running transaction), so
	// a later Sync of data written there commits no conversion. Where the
	// system has no such call it syncs the file instead.
	WriteBack(off, n int64) error
	// Allocate reserves disk blocks for [0, size) so later writes and
	// mapped reads in that range can neither fail with ENOSPC nor raise
	// SIGBUS. The file's size becomes at least size.
	Allocate(size int64) error
	// ZeroRange makes [off, off+n) read as zeros, keeping the blocks
	// allocated.
	ZeroRange(off, n int64) error
	// WrittenPrefix returns n, the end of the longest prefix [0, n) of
	// the file, up to limit, whose blocks were all written: no hole and
	// no block that Allocate reserved and nothing wrote since (an
	// "unwritten" extent on ext4 or XFS, whose first sync after a write
	// commits an extent conversion). known is false where the file system
	// cannot tell (no FIEMAP), and then n is 0. A hint for performance:
	// data still in the page cache may not count yet.
	WrittenPrefix(limit int64) (n int64, known bool)
	// Size returns the file's size in bytes.
	Size() (int64, error)
	// MapReadOnly maps [0, n) of the file read-only and shared, so the
	// mapping sees bytes written with WriteAt at once (the page cache is
	// shared). The caller releases it with [Mapping.Unmap]; it stays
	// valid after the file is closed.
	MapReadOnly(n int) (Mapping, error)
	// Close closes the file.
	Close() error
	// Name returns the file's path: the one it was opened with, or the
	// one it was last renamed to with Rename.
	Name() string
	// Rename renames the file from Name() to newpath (replacing newpath
	// if it exists), and Name returns newpath from then on. Rename an
	// open file this way rather than with [FS.Rename], which cannot tell
	// the files open under the old name.
	Rename(newpath string) error
}

// FS is the file system as the engine uses it.
type FS interface {
	// Create creates a new file for reading and writing, with permission
	// bits perm (before the umask); it fails if the file exists.
	Create(path string, perm fs.FileMode) (File, error)
	// Open opens an existing file for reading and writing.
	Open(path string) (File, error)
	// OpenReadOnly opens an existing file for reading only.
	OpenReadOnly(path string) (File, error)
	// Remove removes a file.
	Remove(path string) error
	// Rename renames a file, replacing newpath if it exists. A file open
	// under oldpath keeps reporting oldpath as its Name: rename an open
	// file with [File.Rename].
	Rename(oldpath, newpath string) error
	// MkdirAll creates a directory and its parents, each it creates with
	// permission bits perm (before the umask). Existing ones are left as
	// they are.
	MkdirAll(path string, perm fs.FileMode) error
	// ReadDir lists a directory's entries by name.
	ReadDir(path string) ([]string, error)
	// SyncDir makes a directory's entries (creates, renames, removes)
	// durable.
	SyncDir(path string) error
	// Lock takes an exclusive advisory lock (flock) on path, creating the
	// file with permission bits perm (before the umask) if needed. It
	// fails at once with an error wrapping [ErrLocked] when another holder
	// has it.
	Lock(path string, perm fs.FileMode) (Unlocker, error)
}

// Unlocker releases a lock taken with [FS.Lock].
type Unlocker interface {
	Unlock() error
}

// ErrLocked is wrapped by [FS.Lock] when the lock is held elsewhere.
var ErrLocked = errors.New("vfs: locked by another holder")

// ErrNotRegular is wrapped by [FS.Open], [FS.OpenReadOnly] and [FS.Lock]
// when the path names something other than a regular file: a FIFO, a
// device, a socket, a directory, or a symbolic link (never followed, so a
// log never reads or writes outside its directory through one). The error
// is a *fs.PathError naming the path and what it is.
var ErrNotRegular = errors.New("not a regular file")

// Mapping is memory mapped read-only by [File.MapReadOnly]: the file's
// bytes, readable until Unmap.
type Mapping []byte

// Unmap releases the mapping; its bytes must not be used after. A nil or
// empty Mapping is a no-op.
func (m Mapping) Unmap() error {
	if len(m) == 0 {
		return nil
	}
	return unix.Munmap(m)
}

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

type osFile struct {
	f *os.File
	// name is the file's path, changed by Rename.
	name atomic.Pointer[string]
	// noDatasync is set once fdatasync reported it is unsupported here, so
	// later syncs go straight to fsync.
	noDatasync atomic.Bool
	// fdatasync, when not nil, replaces unix.Fdatasync (tests only: a
	// file system without fdatasync).
	fdatasync func(fd int) error
}

func newOSFile(f *os.File) *osFile {
	of := &osFile{f: f}
	name := f.Name()
	of.name.Store(&name)
	return of
}

func (osFS) Create(path string, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	return newOSFile(f), nil
}

func (osFS) Open(path string) (File, error) {
	f, err := openRegular(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return newOSFile(f), nil
}

func (osFS) OpenReadOnly(path string) (File, error) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return newOSFile(f), nil
}

// openRegular opens an existing regular file, and nothing else, without
// ever blocking: O_NONBLOCK makes the open of a FIFO return at once (a
// plain read-only open would wait for a writer, forever), O_NOFOLLOW
// refuses a symbolic link as the last component, and fstat on the open
// descriptor checks the type. Anything but a regular file is an error
// wrapping ErrNotRegular that names the path and says what it is.
// O_NONBLOCK means nothing for a regular file's reads and writes. perm
// applies when flag has O_CREATE.
func openRegular(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.EISDIR) {
		// ELOOP: a symbolic link. ENXIO: a FIFO with no reader
		// (write-only opens), or a device without its driver.
		// EISDIR: a directory opened for writing.
		return nil, notRegular(path)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotRegular, fileKind(st.Mode()))}
	}
	return f, nil
}

// notRegular is the error for path, found not to be a regular file when
// it was opened; it looks at what path is to say so.
func notRegular(path string) error {
	kind := "not a regular file"
	if st, err := os.Lstat(path); err == nil {
		kind = fileKind(st.Mode())
	}
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotRegular, kind)}
}

// fileKind names the type of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link (never followed)"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

func (osFS) Remove(path string) error                     { return os.Remove(path) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

func (osFS) ReadDir(path string) ([]string, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

func (osFS) SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &fs.PathError{Op: "fsync", Path: path, Err: unwrapErrno(err)}
	}
	return nil
}

type flockUnlocker struct{ f *os.File }

func (u flockUnlocker) Unlock() error {
	// Closing the descriptor releases the flock.
	return u.f.Close()
}

func (osFS) Lock(path string, perm fs.FileMode) (Unlocker, error) {
	// LOCK may not exist yet.
	f, err := openRegular(path, os.O_RDWR|os.O_CREATE, perm)
	if err != nil {
		return nil, err
	}
	err = ignoringEINTR(func() error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) })
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, &fs.PathError{Op: "flock", Path: path, Err: err}
	}
	return flockUnlocker{f: f}, nil
}

func (f *osFile) ReadAt(p []byte, off int64) (int, error)  { return f.f.ReadAt(p, off) }
func (f *osFile) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }
func (f *osFile) Close() error                             { return f.f.Close() }
func (f *osFile) Name() string                             { return *f.name.Load() }

func (f *osFile) Rename(newpath string) error {
	if err := os.Rename(f.Name(), newpath); err != nil {
		return err
	}
	f.name.Store(&newpath)
	return nil
}

func (f *osFile) Size() (int64, error) {
	st, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f *osFile) Sync() error {
	fd := int(f.f.Fd())
	if !f.noDatasync.Load() {
		// EINTR is returned, not retried here: the caller's retry
		// policy decides, and counts it.
		datasync := unix.Fdatasync
		if f.fdatasync != nil {
			datasync = f.fdatasync
		}
		err := datasync(fd)
		if err != unix.EINVAL && err != unix.ENOTSUP {
			return pathErr("fdatasync", f.Name(), err)
		}
		// fdatasync is not supported on this file system: use fsync
		// from now on.
		f.noDatasync.Store(true)
	}
	return pathErr("fsync", f.Name(), unix.Fsync(fd))
}

func (f *osFile) Allocate(size int64) error {
	fd := int(f.f.Fd())
	err := ignoringEINTR(func() error { return unix.Fallocate(fd, 0, 0, size) })
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		// No fallocate here (tmpfs supports it; some file systems do
		// not): write zeros past the current end so the blocks exist
		// all the same. Existing bytes are left alone.
		cur, serr := f.Size()
		if serr != nil {
			return pathErr("allocate", f.Name(), serr)
		}
		return pathErr("allocate", f.Name(), f.writeZeros(cur, size-cur))
	}
	return pathErr("fallocate", f.Name(), err)
}

func (f *osFile) WriteBack(off, n int64) error {
	err := unix.SyncFileRange(int(f.f.Fd()), off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	if err == unix.ENOSYS {
		return f.Sync() // writes the range back too, and more
	}
	return pathErr("sync_file_range", f.Name(), err)
}

func (f *osFile) WrittenPrefix(limit int64) (int64, bool) {
	return writtenPrefix(int(f.f.Fd()), limit)
}

func (f *osFile) ZeroRange(off, n int64) error {
	if n <= 0 {
		return nil
	}
	fd := int(f.f.Fd())
	err := ignoringEINTR(func() error {
		return unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	})
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		return pathErr("zero", f.Name(), f.writeZeros(off, n))
	}
	return pathErr("fallocate", f.Name(), err)
}

// writeZeros writes zeros over [off, off+n) in 1 MiB pieces.
func (f *osFile) writeZeros(off, n int64) error {
	zeros := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

func (f *osFile) MapReadOnly(n int) (Mapping, error) {
	b, err := unix.Mmap(int(f.f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, pathErr("mmap", f.Name(), err)
	}
	return b, nil
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// unwrapErrno returns the errno inside err, if any, so callers can classify
// it with errors.Is against unix errno values.
func unwrapErrno(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
