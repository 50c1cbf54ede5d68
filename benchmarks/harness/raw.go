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
func init() {
	register(Impl{
		Name:  "raw",
		Note:  "floor: pwrite of [u32 len][payload] into files fallocated to 64 MiB; durable = + fdatasync per call; caller-side mutex; in-memory index",
		Open:  openRaw,
		Modes: []Mode{Buffered, Durable},
	})
}

const (
	rawFileSize = 64 << 20
	rawHeader   = 4
)

type rawLog struct {
	dir   string
	mode  Mode
	syncs atomic.Int64

	mu      sync.Mutex
	fd      int   // file being written, -1 before the first
	num     int   // its number
	off     int64 // next write offset in it
	index   []uint64
	indexed bool
	readFDs map[int]int
	buf     []byte
}

func openRaw(dir string, mode Mode) (Log, error) {
	r := &rawLog{dir: dir, mode: mode, fd: -1, readFDs: map[int]int{}}
	nums, err := r.files()
	if err != nil {
		return nil, err
	}
	r.indexed = len(nums) == 0
	return r, nil
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

// roll starts a fresh preallocated file. Called with r.mu held.
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
	fd, err := unix.Open(r.path(r.num), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("raw create: %w", err)
	}
	if err := unix.Fallocate(fd, 0, 0, rawFileSize); err != nil {
		unix.Close(fd)
		return fmt.Errorf("raw fallocate: %w", err)
	}
	r.fd, r.off = fd, 0
	if err := r.fdatasync(); err != nil {
		return err
	}
	d, err := unix.Open(r.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("raw open dir: %w", err)
	}
	err = unix.Fsync(d)
	unix.Close(d)
	if err != nil {
		return fmt.Errorf("raw sync dir: %w", err)
	}
	r.syncs.Add(1)
	return nil
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
