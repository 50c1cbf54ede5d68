package flush

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// gatedTarget is a fakeTarget whose Flush announces that it started and
// then waits to be released.
type gatedTarget struct {
	*fakeTarget
	entered, release chan struct{}
}

func (g gatedTarget) Flush(ctx context.Context, r Reason, m Mode) (uint64, bool, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.fakeTarget.Flush(ctx, r, m)
}

func TestWaitAdvance(t *testing.T) {
	g := gatedTarget{newFake(), make(chan struct{}), make(chan struct{})}
	var m Metrics
	p := New(g, Config{Interval: time.Hour, Watermark: 1 << 30}, &m, 1)
	ctx := context.Background()

	// It never asks for a flush: with none running, it waits for ctx.
	g.append(3)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	err := p.waitAdvance(short, 1)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || p.Durable() != 1 {
		t.Fatalf("WaitAdvance with no flush: %v, durable %d", err, p.Durable())
	}

	// A waiter that registers while the last flush runs is woken when
	// that flush stores the new frontier, though no flush follows.
	flushed := make(chan error)
	go func() { flushed <- p.Flush(ctx, ReasonExplicit) }()
	<-g.entered
	waited := make(chan error)
	go func() { waited <- p.waitAdvance(ctx, 1) }()
	time.Sleep(10 * time.Millisecond) // let the waiter register
	close(g.release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil || p.Durable() != 4 {
			t.Fatalf("WaitAdvance: %v, durable %d", err, p.Durable())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitAdvance missed the flush that advanced the frontier")
	}
	if err := p.waitAdvance(ctx, 3); err != nil {
		t.Fatalf("WaitAdvance below the frontier: %v", err)
	}

	// A failure and Close end waits.
	g.err = unix.EIO
	g.append(1)
	go func() { waited <- p.waitAdvance(ctx, 4) }()
	go func() { <-g.entered }()
	if err := p.Flush(ctx, ReasonExplicit); !errors.Is(err, ErrFailed) {
		t.Fatalf("flush after EIO: %v", err)
	}
	if err := <-waited; !errors.Is(err, ErrFailed) {
		t.Fatalf("WaitAdvance after a failure: %v", err)
	}

	q := New(newFake(), Config{Interval: time.Hour, Watermark: 1 << 30}, &m, 1)
	closedErr := errors.New("closed")
	go func() { waited <- q.waitAdvance(ctx, 1) }()
	time.Sleep(10 * time.Millisecond)
	q.Close(closedErr)
	if err := <-waited; !errors.Is(err, closedErr) {
		t.Fatalf("WaitAdvance after Close: %v", err)
	}
}
