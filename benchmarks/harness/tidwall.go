package harness

import (
	"errors"
	"fmt"
	"sync"

	"github.com/tidwall/wal"
)

// tidwall/wal: one fsync per Write/WriteBatch unless NoSync. Segment size
// set to 64 MiB like the others (its default is 20 MB); NoCopy so Read
// hands out its cached slice (its documented allocation-free option; the
// adapter copies into dst as the others do). It needs the caller to name
// each index, so the adapter keeps the next one under a mutex: that mutex
// is also the caller-side serialisation a user needs for concurrent
// writers.
func init() {
	register(Impl{
		Name:      "tidwall",
		Note:      "github.com/tidwall/wal v1.2.1; 64 MiB segments, NoCopy; buffered = NoSync; durable = default (fsync in every Write); caller-side mutex",
		Open:      openTidwall,
		OpenSized: openTidwallSized,
		Modes:     []Mode{Buffered, Durable},
	})
}

type tidwallLog struct {
	mu    sync.Mutex
	l     *wal.Log
	next  uint64
	batch wal.Batch
}

func openTidwall(dir string, mode Mode) (Log, error) {
	return openTidwallSized(dir, mode, 64<<20)
}

func openTidwallSized(dir string, mode Mode, size int64) (Log, error) {
	opts := *wal.DefaultOptions
	opts.NoSync = mode == Buffered
	opts.SegmentSize = int(size)
	opts.NoCopy = true
	l, err := wal.Open(dir, &opts)
	if err != nil {
		return nil, fmt.Errorf("tidwall open: %w", err)
	}
	last, err := l.LastIndex()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("tidwall last index: %w", err)
	}
	return &tidwallLog{l: l, next: last + 1}, nil
}

func (t *tidwallLog) Append(p []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.l.Write(t.next, p); err != nil {
		return fmt.Errorf("tidwall write %d: %w", t.next, err)
	}
	t.next++
	return nil
}

func (t *tidwallLog) AppendBatch(ps [][]byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.batch.Clear()
	for i, p := range ps {
		t.batch.Write(t.next+uint64(i), p)
	}
	if err := t.l.WriteBatch(&t.batch); err != nil {
		return fmt.Errorf("tidwall write batch at %d: %w", t.next, err)
	}
	t.next += uint64(len(ps))
	return nil
}

func (t *tidwallLog) Read(seq uint64, dst []byte) ([]byte, error) {
	p, err := t.l.Read(seq)
	if errors.Is(err, wal.ErrNotFound) {
		return nil, fmt.Errorf("tidwall read %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("tidwall read %d: %w", seq, err)
	}
	return append(dst, p...), nil
}

func (t *tidwallLog) Scan(fn func(seq uint64, p []byte) error) error {
	first, err := t.l.FirstIndex()
	if err != nil {
		return fmt.Errorf("tidwall first index: %w", err)
	}
	last, err := t.l.LastIndex()
	if err != nil {
		return fmt.Errorf("tidwall last index: %w", err)
	}
	if first == 0 {
		return nil
	}
	for i := first; i <= last; i++ {
		p, err := t.l.Read(i)
		if err != nil {
			return fmt.Errorf("tidwall read %d: %w", i, err)
		}
		if err := fn(i, p); err != nil {
			return err
		}
	}
	return nil
}

// Syncs: tidwall/wal has no hook to count syncs (it fsyncs once per Write
// or WriteBatch unless NoSync, by its source).
func (t *tidwallLog) Syncs() int64 { return -1 }

func (t *tidwallLog) Close() error {
	if err := t.l.Close(); err != nil {
		return fmt.Errorf("tidwall close: %w", err)
	}
	return nil
}

// Sync fsyncs the log (Syncer): what a NoSync user calls to make it
// durable.
func (t *tidwallLog) Sync() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.l.Sync(); err != nil {
		return fmt.Errorf("tidwall sync: %w", err)
	}
	return nil
}
