package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble's record.LogWriter, the WAL writer inside Pebble and the one Go
// peer with group commit: SyncRecord queues a record with a WaitGroup and
// its flush loop writes and syncs whole queues at once. Files are opened
// as Pebble opens its WAL (vfs.Default wrapped by vfs.NewSyncingFile, so
// Sync is fdatasync, and preallocated), one per 64 MiB: the adapter rolls
// to a new file when the current one is full. Calls into the LogWriter are
// serialised by a mutex (Pebble's commit pipeline does the same); the wait
// for durability happens outside it. It has no random read by sequence
// number, so it takes no part in the random-read and follow workloads.
func init() {
	register(Impl{
		Name:  "pebble",
		Note:  "github.com/cockroachdb/pebble/v2 v2.1.7 record.LogWriter; files via vfs.NewSyncingFile (fdatasync, 64 MiB preallocation), new file per 64 MiB; buffered = WriteRecord; durable = SyncRecord + wait (group commit); batch = WriteRecord x63 + SyncRecord; no random read",
		Open:  openPebble,
		Modes: []Mode{Buffered, Durable},
	})
}

const pebbleFileSize = 64 << 20

type pebbleLog struct {
	dir   string
	mode  Mode
	syncs atomic.Int64
	sem   chan struct{}

	mu  sync.Mutex
	w   *record.LogWriter
	num uint64
}

func openPebble(dir string, mode Mode) (Log, error) {
	p := &pebbleLog{dir: dir, mode: mode, sem: make(chan struct{}, record.SyncConcurrency)}
	nums, err := p.files()
	if err != nil {
		return nil, err
	}
	if len(nums) > 0 {
		p.num = nums[len(nums)-1]
	}
	return p, nil
}

// files lists the log's file numbers in order.
func (p *pebbleLog) files() ([]uint64, error) {
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("pebble list %s: %w", p.dir, err)
	}
	var nums []uint64
	for _, e := range ents {
		s, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue
		}
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums, nil
}

func (p *pebbleLog) path(num uint64) string {
	return filepath.Join(p.dir, fmt.Sprintf("%06d.log", num))
}

// writer returns the current LogWriter, rolling to a new file when the
// next n bytes would not fit. Called with p.mu held.
func (p *pebbleLog) writer(n int) (*record.LogWriter, error) {
	if p.w != nil && p.w.Size()+int64(n) <= pebbleFileSize {
		return p.w, nil
	}
	if p.w != nil {
		// Close flushes and syncs, and completes every queued SyncRecord.
		if err := p.w.Close(); err != nil {
			return nil, fmt.Errorf("pebble close %06d: %w", p.num, err)
		}
		p.w = nil
	}
	p.num++
	f, err := vfs.Default.Create(p.path(p.num), vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("pebble create: %w", err)
	}
	sf := vfs.NewSyncingFile(f, vfs.SyncingFileOptions{PreallocateSize: pebbleFileSize})
	p.w = newLogWriter(record.NewLogWriter, &countingSyncer{File: sf, syncs: &p.syncs}, p.num, record.LogWriterConfig{
		QueueSemChan:        p.sem,
		WriteWALSyncOffsets: func() bool { return false },
	})
	return p.w, nil
}

// newLogWriter and newLogReader call record.NewLogWriter and
// record.NewReader, whose file-number type lives in an internal package and
// so cannot be named here: type inference names it.
func newLogWriter[N ~uint64](ctor func(io.Writer, N, record.LogWriterConfig) *record.LogWriter,
	w io.Writer, num uint64, cfg record.LogWriterConfig) *record.LogWriter {
	return ctor(w, N(num), cfg)
}

func newLogReader[N ~uint64](ctor func(io.Reader, N) *record.Reader, r io.Reader, num uint64) *record.Reader {
	return ctor(r, N(num))
}

func (p *pebbleLog) Append(b []byte) error {
	if p.mode == Buffered {
		p.mu.Lock()
		defer p.mu.Unlock()
		w, err := p.writer(len(b))
		if err != nil {
			return err
		}
		if _, err := w.WriteRecord(b); err != nil {
			return fmt.Errorf("pebble write record: %w", err)
		}
		return nil
	}
	p.mu.Lock()
	w, err := p.writer(len(b))
	if err != nil {
		p.mu.Unlock()
		return err
	}
	return p.syncRecord(w, b)
}

// syncRecord writes b with SyncRecord, releases p.mu (held by the caller)
// and waits, outside the lock, for the sync that covers b: Pebble's group
// commit.
func (p *pebbleLog) syncRecord(w *record.LogWriter, b []byte) error {
	var (
		wg      sync.WaitGroup
		syncErr error
	)
	wg.Add(1)
	p.sem <- struct{}{}
	if _, err := w.SyncRecord(b, &wg, &syncErr); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("pebble sync record: %w", err)
	}
	p.mu.Unlock()
	wg.Wait()
	if syncErr != nil {
		return fmt.Errorf("pebble sync: %w", syncErr)
	}
	return nil
}

func (p *pebbleLog) AppendBatch(ps [][]byte) error {
	if len(ps) == 0 {
		return nil
	}
	var total int
	for _, b := range ps {
		total += len(b)
	}
	p.mu.Lock()
	w, err := p.writer(total)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	last := len(ps)
	if p.mode == Durable {
		last--
	}
	for _, b := range ps[:last] {
		if _, err := w.WriteRecord(b); err != nil {
			p.mu.Unlock()
			return fmt.Errorf("pebble write record: %w", err)
		}
	}
	if p.mode == Buffered {
		p.mu.Unlock()
		return nil
	}
	return p.syncRecord(w, ps[last])
}

// Read: the record package reads sequentially only.
func (p *pebbleLog) Read(uint64, []byte) ([]byte, error) { return nil, ErrUnsupported }

// Scan reads every file with record.NewReader, as Pebble replays its WAL:
// a zeroed or invalid chunk (the preallocated, never written tail) ends a
// file.
func (p *pebbleLog) Scan(fn func(seq uint64, b []byte) error) error {
	nums, err := p.files()
	if err != nil {
		return err
	}
	var (
		seq uint64
		buf []byte
	)
	for _, n := range nums {
		f, err := os.Open(p.path(n))
		if err != nil {
			return fmt.Errorf("pebble open %06d: %w", n, err)
		}
		r := newLogReader(record.NewReader, bufio.NewReaderSize(f, 1<<20), n)
		for {
			rr, err := r.Next()
			if errors.Is(err, io.EOF) || record.IsInvalidRecord(err) {
				break
			}
			if err == nil {
				buf, err = readAllInto(buf[:0], rr)
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("pebble read %06d record %d: %w", n, seq+1, err)
			}
			seq++
			if err := fn(seq, buf); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	return nil
}

// readAllInto is io.ReadAll reusing buf.
func readAllInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (p *pebbleLog) Syncs() int64 { return p.syncs.Load() }

func (p *pebbleLog) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil {
		return nil
	}
	err := p.w.Close()
	p.w = nil
	if err != nil {
		return fmt.Errorf("pebble close: %w", err)
	}
	return nil
}

// countingSyncer counts the LogWriter's syncs.
type countingSyncer struct {
	vfs.File
	syncs *atomic.Int64
}

func (c *countingSyncer) Sync() error {
	c.syncs.Add(1)
	return c.File.Sync()
}
