package harness

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// raw is the floor, not a log: each record is a 4-byte length and the
// payload (no checksum, no sequence number, no padding), written with one
// pwrite at increasing offsets in files preallocated with fallocate to
// 64 MiB (file and directory synced at creation); durable mode adds one
// fdatasync per Append or AppendBatch. Concurrent callers take a mutex, so
// under many writers it is one sync per record: a floor for one writer,
// not for group commit. The sequence-number index is a slice in memory,
// rebuilt by a scan on the first Read or Append after a reopen.
//
// raw-overwrite is the same log writing into blocks already written: a
// fallocated block is "unwritten" until its first write, and the first
// fdatasync after a write into it also commits that extent change through
// the file system's journal. So Open (untimed) keeps rawSpares files
// fallocated, filled with zeros and synced, and a roll renames the next
// spare into place instead of creating a file. A roll that finds none left
// makes one on the spot, in the timed part. Durable mode only (without a
// sync the blocks' state does not show), and a floor for the write
// workloads only: its reads are raw's.
func init() {
	register(Impl{
		Name:  "raw",
		Note:  "floor: pwrite of [u32 len][payload] into files fallocated to 64 MiB; durable = + fdatasync per call; caller-side mutex; in-memory index",
		Open:  func(dir string, mode Mode) (Log, error) { return openRaw(dir, mode, false) },
		Modes: []Mode{Buffered, Durable},
	})
	register(Impl{
		Name:       "raw-overwrite",
		Note:       "floor into written blocks: raw, durable, writing into files zero-filled and synced before the timed part (4 spare files of 64 MiB topped up at each Open)",
		Open:       func(dir string, mode Mode) (Log, error) { return openRaw(dir, mode, true) },
		Modes:      []Mode{Durable},
		WritesOnly: true,
	})
}

const (
	rawFileSize = 64 << 20
	rawHeader   = 4
	// rawSpares is how many zero-filled files raw-overwrite keeps ready:
	// more than one durable writer fills in a 700 ms slice at 64 KiB.
	rawSpares   = 4
	rawSpareExt = ".spare"
)

type rawLog struct {
	dir   string
	mode  Mode
	syncs atomic.Int64
	// overwrite: raw-overwrite, rolling into zero-filled spare files.
	overwrite bool

	mu      sync.Mutex
	fd      int   // file being written, -1 before the first
	num     int   // its number
	off     int64 // next write offset in it
	index   []uint64
	indexed bool
	readFDs map[int]int
	buf     []byte
}

func openRaw(dir string, mode Mode, overwrite bool) (Log, error) {
	r := &rawLog{dir: dir, mode: mode, overwrite: overwrite, fd: -1, readFDs: map[int]int{}}
	nums, err := r.files()
	if err != nil {
		return nil, err
	}
	r.indexed = len(nums) == 0
	if overwrite {
		if err := r.topUpSpares(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *rawLog) sparePath(n int) string {
	return filepath.Join(r.dir, fmt.Sprintf("%06d%s", n, rawSpareExt))
}

// spares returns the numbers of the spare files, in order.
func (r *rawLog) spares() ([]int, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("raw list %s: %w", r.dir, err)
	}
	var nums []int
	for _, e := range ents {
		if s, ok := strings.CutSuffix(e.Name(), rawSpareExt); ok {
			if n, err := strconv.Atoi(s); err == nil {
				nums = append(nums, n)
			}
		}
	}
	sort.Ints(nums)
	return nums, nil
}

// topUpSpares makes zero-filled spare files until there are rawSpares.
func (r *rawLog) topUpSpares() error {
	nums, err := r.spares()
	if err != nil {
		return err
	}
	next := 0
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	for range rawSpares - len(nums) {
		if err := r.makeFile(r.sparePath(next), true); err != nil {
			return err
		}
		next++
	}
	return nil
}

// makeFile creates path fallocated to rawFileSize, zero-filled if zero,
// synced, with its directory entry synced, and leaves it open as r.fd.
func (r *rawLog) makeFile(path string, zero bool) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("raw create: %w", err)
	}
	err = unix.Fallocate(fd, 0, 0, rawFileSize)
	if err == nil && zero {
		zeros := make([]byte, 1<<20)
		for off := int64(0); off < rawFileSize && err == nil; off += int64(len(zeros)) {
			_, err = unix.Pwrite(fd, zeros, off)
		}
	}
	if err == nil {
		r.syncs.Add(1)
		err = unix.Fdatasync(fd)
	}
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("raw make %s: %w", path, err)
	}
	return r.syncDir()
}

func (r *rawLog) syncDir() error {
	d, err := unix.Open(r.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("raw open dir: %w", err)
	}
	r.syncs.Add(1)
	err = unix.Fsync(d)
	unix.Close(d)
	if err != nil {
		return fmt.Errorf("raw sync dir: %w", err)
	}
	return nil
}

func (r *rawLog) path(n int) string { return filepath.Join(r.dir, fmt.Sprintf("%06d.raw", n)) }

func (r *rawLog) files() ([]int, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("raw list %s: %w", r.dir, err)
	}
	var nums []int
	for _, e := range ents {
		s, ok := strings.CutSuffix(e.Name(), ".raw")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(s)
		if err == nil {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	return nums, nil
}

// roll starts a fresh file (nextFile). Called with r.mu held.
func (r *rawLog) roll() error {
	if r.fd >= 0 {
		// In durable mode every call has synced already.
		if r.mode == Buffered {
			if err := r.fdatasync(); err != nil {
				return err
			}
		}
		unix.Close(r.fd)
		r.fd = -1
	}
	r.num++
	path := r.path(r.num)
	if err := r.nextFile(path); err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("raw open: %w", err)
	}
	r.fd, r.off = fd, 0
	return nil
}

// nextFile puts a fresh file, synced with its directory entry, at path:
// raw fallocates one; raw-overwrite renames its next spare there, or makes
// a zero-filled one if it has none left.
func (r *rawLog) nextFile(path string) error {
	if !r.overwrite {
		return r.makeFile(path, false)
	}
	nums, err := r.spares()
	if err != nil {
		return err
	}
	if len(nums) == 0 {
		return r.makeFile(path, true)
	}
	if err := os.Rename(r.sparePath(nums[0]), path); err != nil {
		return fmt.Errorf("raw take spare: %w", err)
	}
	return r.syncDir()
}

func (r *rawLog) fdatasync() error {
	r.syncs.Add(1)
	if err := unix.Fdatasync(r.fd); err != nil {
		return fmt.Errorf("raw fdatasync: %w", err)
	}
	return nil
}

// write writes the frames in buf at the current offset. Called with r.mu
// held.
func (r *rawLog) write(buf []byte) error {
	for len(buf) > 0 {
		n, err := unix.Pwrite(r.fd, buf, r.off)
		if err != nil {
			return fmt.Errorf("raw pwrite: %w", err)
		}
		buf = buf[n:]
		r.off += int64(n)
	}
	return nil
}

func (r *rawLog) Append(p []byte) error { return r.AppendBatch([][]byte{p}) }

func (r *rawLog) AppendBatch(ps [][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ensureIndex(); err != nil {
		return err
	}
	buf := r.buf[:0]
	start := r.off
	for _, p := range ps {
		need := int64(rawHeader + len(p))
		if need > rawFileSize {
			return fmt.Errorf("raw: record of %d bytes larger than a file", len(p))
		}
		if r.fd < 0 || start+int64(len(buf))+need > rawFileSize {
			if r.fd >= 0 {
				if err := r.flush(buf); err != nil {
					return err
				}
			}
			if err := r.roll(); err != nil {
				return err
			}
			buf, start = buf[:0], 0
		}
		r.index = append(r.index, uint64(r.num)<<32|uint64(start+int64(len(buf))))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(p))+1)
		buf = append(buf, p...)
	}
	r.buf = buf
	return r.flush(buf)
}

// flush writes buf and, in durable mode, syncs.
func (r *rawLog) flush(buf []byte) error {
	if err := r.write(buf); err != nil {
		return err
	}
	if r.mode == Durable {
		return r.fdatasync()
	}
	return nil
}

// ensureIndex rebuilds the index of a reopened log by a scan, and finds
// where the last file ends. Called with r.mu held.
func (r *rawLog) ensureIndex() error {
	if r.indexed {
		return nil
	}
	nums, err := r.files()
	if err != nil {
		return err
	}
	for _, n := range nums {
		end, err := r.scanFile(n, func(off int64, _ []byte) error {
			r.index = append(r.index, uint64(n)<<32|uint64(off))
			return nil
		})
		if err != nil {
			return err
		}
		if n == nums[len(nums)-1] {
			fd, err := unix.Open(r.path(n), unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("raw reopen: %w", err)
			}
			r.fd, r.num, r.off = fd, n, end
		}
	}
	r.indexed = true
	return nil
}

// scanFile calls fn for each frame of file n and returns where the frames
// end (the first zero length, or too little room left).
func (r *rawLog) scanFile(n int, fn func(off int64, p []byte) error) (int64, error) {
	f, err := os.Open(r.path(n))
	if err != nil {
		return 0, fmt.Errorf("raw open: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var (
		off int64
		hdr [rawHeader]byte
		buf []byte
	)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return off, nil
			}
			return off, fmt.Errorf("raw read %s: %w", r.path(n), err)
		}
		l := binary.LittleEndian.Uint32(hdr[:])
		if l == 0 || off+rawHeader+int64(l-1) > rawFileSize {
			return off, nil
		}
		if cap(buf) < int(l-1) {
			buf = make([]byte, l-1)
		}
		buf = buf[:l-1]
		if _, err := io.ReadFull(br, buf); err != nil {
			return off, fmt.Errorf("raw read %s at %d: %w", r.path(n), off, err)
		}
		if err := fn(off, buf); err != nil {
			return off, err
		}
		off += rawHeader + int64(l-1)
	}
}

func (r *rawLog) Read(seq uint64, dst []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ensureIndex(); err != nil {
		return nil, err
	}
	if seq == 0 || seq > uint64(len(r.index)) {
		return nil, fmt.Errorf("raw read %d: %w", seq, ErrNotFound)
	}
	pos := r.index[seq-1]
	n, off := int(pos>>32), int64(pos&(1<<32-1))
	fd, ok := r.readFDs[n]
	if !ok {
		var err error
		fd, err = unix.Open(r.path(n), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("raw open: %w", err)
		}
		r.readFDs[n] = fd
	}
	var hdr [rawHeader]byte
	if _, err := unix.Pread(fd, hdr[:], off); err != nil {
		return nil, fmt.Errorf("raw pread: %w", err)
	}
	l := int(binary.LittleEndian.Uint32(hdr[:])) - 1
	start := len(dst)
	dst = slices.Grow(dst, l)[:start+l]
	if _, err := unix.Pread(fd, dst[start:], off+rawHeader); err != nil {
		return nil, fmt.Errorf("raw pread: %w", err)
	}
	return dst, nil
}

func (r *rawLog) Scan(fn func(seq uint64, p []byte) error) error {
	nums, err := r.files()
	if err != nil {
		return err
	}
	var seq uint64
	for _, n := range nums {
		if _, err := r.scanFile(n, func(_ int64, p []byte) error {
			seq++
			return fn(seq, p)
		}); err != nil {
			return err
		}
	}
	return nil
}

func (r *rawLog) Syncs() int64 { return r.syncs.Load() }

func (r *rawLog) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if r.fd >= 0 {
		err = r.fdatasync()
		unix.Close(r.fd)
		r.fd = -1
	}
	for n, fd := range r.readFDs {
		unix.Close(fd)
		delete(r.readFDs, n)
	}
	return err
}
