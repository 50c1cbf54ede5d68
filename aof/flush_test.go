package aof

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/vfs/vfstest"
)

// Tests of what starts a flush without a caller asking: the watermark and
// the recovery backlog. Under fake time with an interval of an hour, only
// the trigger under test can make anything durable.

// TestWatermarkStartsAFlush: once the bytes not durable reach
// FlushWatermark, the background flusher makes them durable without
// waiting for FlushInterval; below it, nothing is flushed.
func TestWatermarkStartsAFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const watermark = 8 << 10
		l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, FlushWatermark: watermark, FlushInterval: time.Hour})
		defer l.Close()
		payload := make([]byte, 1000)
		id := mustAppend(t, l, payload) // ~1 KiB: under the watermark
		synctest.Wait()
		if m := l.Metrics(); m.DurableSeq > id.Seq || m.FlushesByReason(ReasonWatermark) != 0 {
			t.Fatalf("under the watermark: %d flushes by watermark, durable below %d", m.FlushesByReason(ReasonWatermark), m.DurableSeq)
		}
		for m := l.Metrics(); m.BacklogBytes < watermark; m = l.Metrics() {
			id = mustAppend(t, l, payload)
		}
		synctest.Wait() // the flusher took the request and finished
		m := l.Metrics()
		if m.Flushes(ReasonWatermark, ModeAsync) == 0 {
			t.Fatalf("backlog reached the watermark: no watermark flush: %+v", m)
		}
		// The flush took the end when the last append asked for it: at
		// worst that record is still in flight.
		if m.DurableSeq < id.Seq {
			t.Fatalf("after the watermark flush, durable below %d, appended up to %d", m.DurableSeq, id.Seq)
		}
		if n := m.FlushesByReason(ReasonInterval); n != 0 {
			t.Fatalf("%d interval flushes within an hour-long interval", n)
		}
	})
}

// TestOpenRequestsARecoveryFlush: bytes Open found but could not prove
// durable (RecoveryReport.BacklogBytes) are made durable by a flush Open
// requests at once (reason recovery), before any caller waits and long
// before FlushInterval.
func TestOpenRequestsARecoveryFlush(t *testing.T) {
	// A log whose last records were written but whose sync failed: in the
	// page cache only, so recovery cannot prove them durable.
	fs := vfstest.NewFaultFS(nil)
	dir := t.TempDir()
	l := openT(t, dir, Config{NoBackgroundFlush: true}, WithFS(fs))
	first := mustAppend(t, l, []byte("synced"))
	if err := l.FlushUntil(ctx, first); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(vfstest.Fail(vfstest.OpSync, unix.EIO))
	var last RecordID
	for i := range 10 {
		last = mustAppend(t, l, fmt.Appendf(nil, "unsynced %d", i))
	}
	if err := l.FlushUntil(ctx, last); !errors.Is(err, unix.EIO) {
		t.Fatalf("FlushUntil: %v, want EIO", err)
	}
	image := crashCopy(t, dir)
	l.Close()

	synctest.Test(t, func(t *testing.T) {
		l := openT(t, crashCopy(t, image), Config{FlushInterval: time.Hour})
		defer l.Close()
		if rep := l.Recovery(); rep.BacklogBytes == 0 || rep.NextSeq != last.Seq+1 {
			t.Fatalf("recovery found nothing to make durable: %+v", rep)
		}
		synctest.Wait() // the requested flush ran; no time passed
		m := l.Metrics()
		if m.Flushes(ReasonRecovery, ModeAsync) == 0 {
			t.Fatalf("no recovery flush after Open: %+v", m)
		}
		if m.BacklogBytes != 0 || m.DurableSeq != last.Seq+1 {
			t.Fatalf("after the recovery flush: backlog %d, durable below %d, want 0 and %d", m.BacklogBytes, m.DurableSeq, last.Seq+1)
		}
	})
}
