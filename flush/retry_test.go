package flush

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTransient(t *testing.T) {
	for _, e := range []unix.Errno{unix.EINTR, unix.EAGAIN, unix.EBUSY, unix.ETIMEDOUT} {
		if !transient(&fs.PathError{Op: "fdatasync", Path: "x", Err: e}) {
			t.Errorf("%v not transient", e)
		}
	}
	for _, e := range []unix.Errno{unix.EIO, unix.ENOSPC, unix.EROFS, unix.EBADF} {
		if transient(fmt.Errorf("wrapped: %w", e)) {
			t.Errorf("%v transient", e)
		}
	}
	if got := Errno(fmt.Errorf("x: %w", unix.EIO)); got != "EIO" {
		t.Errorf("Errno = %q", got)
	}
}

func TestDelayIsBoundedAndGrows(t *testing.T) {
	p := RetryPolicy{Attempts: 10, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	want := []time.Duration{1, 2, 4, 5, 5}
	for i, w := range want {
		if d := p.delay(i + 1); d != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i+1, d, w*time.Millisecond)
		}
	}
	p.Jitter = 0.5
	for range 100 {
		if d := p.delay(2); d < time.Millisecond || d > 3*time.Millisecond {
			t.Fatalf("Delay with 50%% jitter = %v, want within [1ms, 3ms]", d)
		}
	}
}

func TestSyncRetriesOnlyTransientErrors(t *testing.T) {
	p := RetryPolicy{Attempts: 4, BaseDelay: time.Microsecond, MaxDelay: time.Microsecond}
	var m Metrics
	var events []SyncAttempt
	calls := 0
	err := SyncWithRetry(context.Background(), p, &m, func() error {
		calls++
		if calls < 3 {
			return unix.EAGAIN
		}
		return nil
	}, func(e SyncAttempt) { events = append(events, e) })
	if err != nil || calls != 3 || len(events) != 3 || events[1].Attempt != 2 || events[0].Backoff <= 0 || events[2].Err != nil {
		t.Fatalf("err %v, calls %d, events %+v", err, calls, events)
	}
	if s := m.Snapshot(); s.RetryAttempts != 2 || s.RetryFailures != 0 || s.Fsyncs != 3 {
		t.Fatalf("snapshot %+v", s)
	}

	calls = 0
	err = SyncWithRetry(context.Background(), p, &m, func() error { calls++; return unix.EIO }, nil)
	if !errors.Is(err, unix.EIO) || calls != 1 {
		t.Fatalf("EIO: err %v after %d calls; want one call", err, calls)
	}
	calls = 0
	err = SyncWithRetry(context.Background(), p, &m, func() error { calls++; return unix.EINTR }, nil)
	if !errors.Is(err, unix.EINTR) || calls != 4 {
		t.Fatalf("EINTR forever: err %v after %d calls; want 4", err, calls)
	}
	if s := m.Snapshot(); s.RetryFailures != 2 {
		t.Fatalf("retry failures %d, want 2", s.RetryFailures)
	}
}

// fakeTarget is a Target whose durable frontier advances to whatever was
// "appended" when Flush starts.
type fakeTarget struct {
	appended, durable chan uint64 // one-slot mailboxes
	err               error
}

func newFake() *fakeTarget {
	f := &fakeTarget{appended: make(chan uint64, 1), durable: make(chan uint64, 1)}
	f.appended <- 0
	f.durable <- 0
	return f
}

func (f *fakeTarget) append(n uint64) {
	a := <-f.appended
	f.appended <- a + n
}

func (f *fakeTarget) Flush(ctx context.Context, r Reason, m Mode) (uint64, bool, error) {
	a := <-f.appended
	f.appended <- a
	d := <-f.durable
	if f.err != nil {
		// A failed sync makes nothing new durable.
		f.durable <- d
		return d + 1, false, f.err
	}
	f.durable <- a
	return a + 1, true, nil
}

func (f *fakeTarget) OldestPending() (int64, bool) {
	if f.Backlog() == 0 {
		return 0, false
	}
	return 1, true // long ago
}

func (f *fakeTarget) Backlog() int64 {
	a := <-f.appended
	f.appended <- a
	d := <-f.durable
	f.durable <- d
	return int64(a - d)
}

func TestWaitDurableNeverHangs(t *testing.T) {
	f := newFake()
	var m Metrics
	p := New(f, Config{Interval: time.Hour, Watermark: 1 << 30}, &m, 1)
	p.Start()
	defer p.Close(errors.New("closed"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := uint64(1); i <= 200; i++ {
		f.append(1)
		if err := p.waitDurable(ctx, i); err != nil {
			t.Fatalf("WaitDurable(%d): %v", i, err)
		}
	}
	f.err = unix.EIO
	f.append(1)
	err := p.waitDurable(ctx, 201)
	var fe *FailError
	if !errors.As(err, &fe) || !errors.Is(err, unix.EIO) || !errors.Is(err, ErrFailed) {
		t.Fatalf("after EIO: %v", err)
	}
	if err := p.waitDurable(ctx, 500); !errors.Is(err, ErrFailed) {
		t.Fatalf("a later waiter: %v", err)
	}
}

func TestIntervalFlushesWithoutRequests(t *testing.T) {
	f := newFake()
	var m Metrics
	p := New(f, Config{Interval: time.Millisecond, Watermark: 1 << 30}, &m, 1)
	p.Start()
	defer p.Close(errors.New("closed"))
	f.append(5)
	p.Arm()
	deadline := time.Now().Add(10 * time.Second)
	for p.Durable() != 6 {
		if time.Now().After(deadline) {
			t.Fatal("the interval never flushed")
		}
		time.Sleep(time.Millisecond)
	}
	if s := m.Snapshot(); s.ByReason(ReasonInterval) == 0 || s.ByMode(ModeAsync) == 0 {
		t.Fatalf("snapshot %+v", s)
	}
}
