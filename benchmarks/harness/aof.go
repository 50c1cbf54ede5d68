package harness

import (
	"context"
	"errors"
	"fmt"
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

type aofLog struct {
	l    *aof.Log
	mode Mode
}

func openAOF(dir string, mode Mode) (Log, error) {
	return openAOFConfig(dir, mode, aof.Config{})
}

func openAOFConfig(dir string, mode Mode, cfg aof.Config) (Log, error) {
	l, err := aof.Open(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("aof open: %w", err)
	}
	return &aofLog{l: l, mode: mode}, nil
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
	rec, err := a.l.Read(seq, dst)
	if errors.Is(err, aof.ErrNotFound) {
		return nil, fmt.Errorf("aof read %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("aof read %d: %w", seq, err)
	}
	return rec.Payload, nil
}

func (a *aofLog) Scan(fn func(seq uint64, p []byte) error) error {
	r, err := a.l.NewReader(1, aof.Written)
	if err != nil {
		return fmt.Errorf("aof reader: %w", err)
	}
	defer r.Close()
	for rec, err := range r.All() {
		if err != nil {
			return fmt.Errorf("aof scan: %w", err)
		}
		if err := fn(rec.Seq, rec.Payload); err != nil {
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
