package flush

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/sys/unix"
)

// RetryPolicy bounds how a failed sync is retried. Only transient errors
// (EINTR, EAGAIN, EBUSY, ETIMEDOUT) are retried; any other failure is final
// at once, because on Linux a failed fsync marks the dirty pages clean and a
// later fsync that succeeds proves nothing about them.
type RetryPolicy struct {
	// Attempts is the total number of sync attempts, the first included.
	// 1 means no retry.
	Attempts int
	// BaseDelay is the wait before the first retry; each later wait
	// doubles, up to MaxDelay.
	BaseDelay time.Duration
	// MaxDelay caps the wait between attempts.
	MaxDelay time.Duration
	// Jitter in [0, 1] randomises each wait by up to that fraction, so
	// logs sharing a disk do not retry in step.
	Jitter float64
}

// DefaultRetryPolicy suits a server: up to 5 attempts, waiting 1, 2, 4, 8 ms
// (capped at 100 ms), each ±20%.
var DefaultRetryPolicy = RetryPolicy{Attempts: 5, BaseDelay: time.Millisecond, MaxDelay: 100 * time.Millisecond, Jitter: 0.2}

// Validate reports whether p is usable.
func (p RetryPolicy) Validate() error {
	switch {
	case p.Attempts < 1:
		return fmt.Errorf("retry attempts %d: need at least 1", p.Attempts)
	case p.BaseDelay < 0 || p.MaxDelay < p.BaseDelay:
		return fmt.Errorf("retry delays: base %v, max %v: need 0 <= base <= max", p.BaseDelay, p.MaxDelay)
	case p.Jitter < 0 || p.Jitter > 1:
		return fmt.Errorf("retry jitter %v: need a fraction in [0, 1]", p.Jitter)
	}
	return nil
}

// delay returns the wait before retry number n (1 for the first retry).
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if p.Jitter > 0 && d > 0 {
		d += time.Duration((rand.Float64()*2 - 1) * p.Jitter * float64(d))
	}
	return d
}

// transient reports whether err is a sync failure worth retrying: EINTR,
// EAGAIN, EBUSY or ETIMEDOUT. EIO, ENOSPC, EROFS and everything else are
// not.
func transient(err error) bool {
	return errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) ||
		errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ETIMEDOUT)
}

// Errno returns the name of the errno inside err ("EIO"), or "" if there
// is none.
func Errno(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
		return fmt.Sprintf("errno %d", int(errno))
	}
	return ""
}

// SyncAttempt describes one sync attempt.
type SyncAttempt struct {
	Attempt  int           // the attempt, from 1
	Start    time.Time     // when the sync call began
	Duration time.Duration // how long the sync call took
	Err      error         // its error; nil if it succeeded
	Backoff  time.Duration // wait before the next attempt; 0 if none follows
	Final    bool          // Err is not retried: the sync failed
}

// SyncWithRetry runs sync until it succeeds, fails with an error that is
// not transient, or has been tried p.Attempts times. Every attempt is counted
// in m and reported to observe (which may be nil). A cancelled ctx ends
// the waits between attempts; the sync counts as failed then.
func SyncWithRetry(ctx context.Context, p RetryPolicy, m *Metrics, sync func() error, observe func(SyncAttempt)) error {
	for attempt := 1; ; attempt++ {
		m.fsyncs.Add(1)
		start := time.Now()
		err := sync()
		a := SyncAttempt{Attempt: attempt, Start: start, Duration: time.Since(start), Err: err}
		m.fsyncNanos.Add(a.Duration.Nanoseconds())
		if err == nil {
			if observe != nil {
				observe(a)
			}
			return nil
		}
		if !transient(err) || attempt >= p.Attempts {
			a.Final = true
			m.retryFailures.Add(1)
			if observe != nil {
				observe(a)
			}
			if attempt > 1 {
				return fmt.Errorf("sync failed after %d attempts: %w", attempt, err)
			}
			return err
		}
		a.Backoff = p.delay(attempt)
		m.retryAttempts.Add(1)
		if observe != nil {
			observe(a)
		}
		t := time.NewTimer(a.Backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			m.retryFailures.Add(1)
			return fmt.Errorf("sync retry abandoned: %w (last error: %w)", ctx.Err(), err)
		}
	}
}
