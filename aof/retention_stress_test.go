package aof

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReviewStressCuts runs appenders, TruncateBack, TruncateFront,
// followers at both levels, Read and Metrics at once, then Close while
// they run. Each payload carries the cut generation it was appended in and
// its own sequence number is checked through Read/Follow: a follower must
// never see a sequence number twice within one history, nor skip one.
func TestReviewStressCuts(t *testing.T) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, FlushInterval: time.Millisecond})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var stop atomic.Bool
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 64)
			for i := 0; !stop.Load(); i++ {
				binary.LittleEndian.PutUint64(p, uint64(w))
				if _, err := l.Append(ctx, p[:8+i%50]); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				if i%64 == 0 {
					if err := l.Sync(ctx); err != nil && !errors.Is(err, ErrClosed) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	for f := 0; f < 4; f++ {
		level := Level(f % 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := l.FirstSeq()
			for !stop.Load() {
				var stopped error
				for rec, err := range l.Follow(cctx, from, level) {
					if err != nil {
						stopped = err
						break
					}
					if rec.Seq != from {
						t.Errorf("follower %d: seq %d, want %d", f, rec.Seq, from)
						return
					}
					from++
				}
				var te *TruncatedError
				switch {
				case errors.As(stopped, &te):
					if te.Back {
						from = min(from, te.Next)
						from = max(from, te.First)
					} else {
						from = te.First
					}
					if from < l.FirstSeq() {
						from = l.FirstSeq()
					}
				case errors.Is(stopped, ErrClosed), errors.Is(stopped, context.Canceled):
					return
				case errors.Is(stopped, ErrNotFound):
					from = l.FirstSeq()
				default:
					t.Errorf("follower %d: %v", f, stopped)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last Metrics
		for !stop.Load() {
			seq := l.FirstSeq()
			if _, err := l.Read(seq, nil); err != nil && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
				t.Errorf("Read(%d): %v", seq, err)
				return
			}
			m := l.Metrics()
			if m.AppendedRecords < last.AppendedRecords || m.AppendedBytes < last.AppendedBytes || m.DurableBytes < last.DurableBytes {
				t.Errorf("metrics went backwards: %+v after %+v", m, last)
				return
			}
			last = m
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			time.Sleep(time.Millisecond)
			next, first := l.NextSeq(), l.FirstSeq()
			var err error
			if i%3 == 0 && next > first+2000 {
				err = l.TruncateFront(ctx, next-1000)
			} else if next > first+10 {
				err = l.TruncateBack(ctx, next-10)
			}
			if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotFound) {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(2 * time.Second)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(20 * time.Second):
		panic("Close hangs")
	}
	stop.Store(true)
	cancel()
	wg.Wait()
}
