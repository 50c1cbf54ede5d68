package harness

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aof2/aof2/aof"
)

// aof: default Config (64 MiB segments, 1 MiB watermark, 5 ms interval,
// background flusher running). Buffered: Append only, the flusher makes
// records durable in the background. Durable: Append then FlushUntil
// (group commit across goroutines, no caller-side mutex).
func init() {
	register(Impl{
		Name: "aof",
		Note: "aof2 at this commit; default Config; buffered = Append (background flusher running); durable = Append + FlushUntil (group commit); batch = AppendBatch + FlushUntil(last)",
		Open: openAOF,
		OpenSized: func(dir string, mode Mode, size int64) (Log, error) {
			return openAOFConfig(dir, mode, aof.Config{SegmentSize: size})
		},
		Modes:  []Mode{Buffered, Durable},
		Follow: followAOF,
	})
}

// aof-recycled: aof with retention, in its steady state of running on
// recycled segment files (blocks already written), the state a log reaches
// once retention or TruncateFront drops segments (a raft log after
// snapshots, a WAL after checkpoints). Like raw-overwrite's spare files,
// the state is reached before the timed part: Open of a new log (untimed)
// appends and drops whole segments until the active segment is a recycled
// file and the pool holds written ones. Buffered as aof: a recycled file
// is overwritten, so its blocks are written ones and, often, its pages are
// still in the page cache (no new page cache to fault in).
func init() {
	register(Impl{
		Name:       "aof-recycled",
		Note:       "aof2 with retention (RetainBytes 2 segments, RecycleSegments 2), running on recycled segment files: Open of a new log (untimed) first appends and drops segments until the active segment is a recycled file; buffered = Append; durable = Append + FlushUntil",
		Open:       openAOFRecycled,
		Modes:      []Mode{Buffered, Durable},
		WritesOnly: true,
	})
}

// recycledFill is the record size openAOFRecycled fills a new log with.
const recycledFill = 64 << 10

func openAOFRecycled(dir string, mode Mode) (Log, error) {
	lg, err := openAOFConfig(filepath.Join(dir, "log"), mode, aof.Config{RetainBytes: 2 * aof.DefaultSegmentSize, RecycleSegments: 2})
	if err != nil {
		return nil, err
	}
	a := lg.(*aofLog)
	baseFile := filepath.Join(dir, "base")
	if b, err := os.ReadFile(baseFile); err == nil && len(b) == 8 {
		a.base = binary.LittleEndian.Uint64(b) // reopened
		return a, nil
	}
	if err := fillRecycled(a.l); err != nil {
		a.Close()
		return nil, err
	}
	// The harness numbers records from 1: its seq 1 is the first record
	// appended after the fill.
	_, a.base = a.l.Bounds()
	if err := os.WriteFile(baseFile, binary.LittleEndian.AppendUint64(nil, a.base), 0o600); err != nil {
		a.Close()
		return nil, fmt.Errorf("aof-recycled: %w", err)
	}
	return a, nil
}

// fillRecycled appends to a new log and drops whole segments until two
// files were taken from the pool: the first is then the active segment
// (the second was taken when it was half full).
func fillRecycled(l *aof.Log) error {
	p := make([]byte, recycledFill)
	for l.Metrics().RecycledSegments < 2 {
		if _, err := l.Append(bg, p); err != nil {
			return fmt.Errorf("aof-recycled fill: %w", err)
		}
		if _, next := l.Bounds(); next%1024 == 0 {
			if err := l.Sync(bg); err != nil {
				return fmt.Errorf("aof-recycled fill: %w", err)
			}
			if err := l.TruncateFront(bg, next); err != nil {
				return fmt.Errorf("aof-recycled fill: %w", err)
			}
		}
	}
	return l.TruncateFront(bg, func() uint64 { _, n := l.Bounds(); return n }())
}

type aofLog struct {
	l    *aof.Log
	mode Mode
	// base is the sequence number of the harness's record 1 (1 but for
	// aof-recycled, whose log starts after its fill).
	base uint64
}

func openAOF(dir string, mode Mode) (Log, error) {
	return openAOFConfig(dir, mode, aof.Config{})
}

func openAOFConfig(dir string, mode Mode, cfg aof.Config) (Log, error) {
	l, err := aof.Open(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("aof open: %w", err)
	}
	return &aofLog{l: l, mode: mode, base: 1}, nil
}

var bg = context.Background()

func (a *aofLog) Append(p []byte) error {
	id, err := a.l.Append(bg, p)
	if err != nil {
		return fmt.Errorf("aof append: %w", err)
	}
	if a.mode == Durable {
		if err := a.l.FlushUntil(bg, id); err != nil {
			return fmt.Errorf("aof flush until %d: %w", id.Seq, err)
		}
	}
	return nil
}

func (a *aofLog) AppendBatch(ps [][]byte) error {
	ids, err := a.l.AppendBatch(bg, ps)
	if err != nil {
		return fmt.Errorf("aof append batch: %w", err)
	}
	if a.mode == Durable && len(ids) > 0 {
		if err := a.l.FlushUntil(bg, ids[len(ids)-1]); err != nil {
			return fmt.Errorf("aof flush until %d: %w", ids[len(ids)-1].Seq, err)
		}
	}
	return nil
}

func (a *aofLog) Read(seq uint64, dst []byte) ([]byte, error) {
	rec, err := a.l.Read(seq+a.base-1, dst)
	if errors.Is(err, aof.ErrNotFound) {
		return nil, fmt.Errorf("aof read %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("aof read %d: %w", seq, err)
	}
	return rec.Payload, nil
}

func (a *aofLog) Scan(fn func(seq uint64, p []byte) error) error {
	r, err := a.l.NewReader(a.base, aof.Written)
	if err != nil {
		return fmt.Errorf("aof reader: %w", err)
	}
	defer r.Close()
	for rec, err := range r.All() {
		if err != nil {
			return fmt.Errorf("aof scan: %w", err)
		}
		if err := fn(rec.Seq-a.base+1, rec.Payload); err != nil {
			return err
		}
	}
	return nil
}

func (a *aofLog) Syncs() int64 { return int64(a.l.Metrics().Fsyncs) }

func (a *aofLog) Close() error {
	if err := a.l.Close(); err != nil {
		return fmt.Errorf("aof close: %w", err)
	}
	return nil
}

// followAOF tails with Log.Follow at the given level.
func followAOF(ctx context.Context, lg Log, from uint64, level FollowLevel, fn func(seq uint64, p []byte)) error {
	a, ok := lg.(*aofLog)
	if !ok {
		return fmt.Errorf("aof follow: %T is not an aof log", lg)
	}
	lv := aof.Written
	if level == FollowDurable {
		lv = aof.Durable
	}
	for rec, err := range a.l.Follow(ctx, from, lv) {
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("aof follow: %w", err)
		}
		fn(rec.Seq, rec.Payload)
	}
	return nil
}

// pollInterval is how often a follower without a follow API retries a Read
// that found nothing yet.
const pollInterval = 100 * time.Microsecond

// Sync makes every record appended so far durable (Syncer).
func (a *aofLog) Sync() error {
	if err := a.l.Sync(bg); err != nil {
		return fmt.Errorf("aof sync: %w", err)
	}
	return nil
}
