package aof

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// Issue 12: aof.recover is a child of the span OpenContext's ctx carries;
// Open's is a root span.
func TestOpenContextParentsTheRecoverSpan(t *testing.T) {
	tt := newTelemetry(t)
	dir := t.TempDir()
	reqCtx, parent := tt.tp.Tracer("test").Start(context.Background(), "startup")
	l, err := OpenContext(reqCtx, dir, Config{}, tt.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	parent.End()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, Config{}, tt.opts()...)
	defer l.Close()
	recs := spansNamed(tt.spans.Ended(), aofotel.SpanRecover)
	if len(recs) != 2 {
		t.Fatalf("%d recover spans, want 2", len(recs))
	}
	if got := recs[0].Parent(); got.SpanID() != parent.SpanContext().SpanID() || got.TraceID() != parent.SpanContext().TraceID() {
		t.Fatalf("OpenContext's recover span has parent %v, want the caller's span %v", got.SpanID(), parent.SpanContext().SpanID())
	}
	if recs[1].Parent().IsValid() {
		t.Fatalf("Open's recover span has parent %v, want a root span", recs[1].Parent().SpanID())
	}
}

// Issue 12: a ctx already done fails OpenContext at once: no directory is
// created.
func TestOpenContextDoneCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if l, err := OpenContext(cctx, dir, Config{}); !errors.Is(err, context.Canceled) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("OpenContext with a cancelled ctx: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("OpenContext with a cancelled ctx left %s: %v", dir, err)
	}
}

// cancelOnSegmentOpen cancels a context when recovery opens a segment
// file, so the cancellation lands in the middle of recovery.
type cancelOnSegmentOpen struct {
	vfs.FS
	cancel context.CancelFunc
}

func (c cancelOnSegmentOpen) Open(path string) (vfs.File, error) {
	if _, _, ok := segment.ParseName(filepath.Base(path)); ok {
		c.cancel()
	}
	return c.FS.Open(path)
}

// Issue 12: a ctx cancelled while recovery reads the segments stops it
// before the scan of the torn segment: OpenContext fails with the ctx's
// error, the torn tail is still on disk and the directory is unlocked; a
// later Open recovers it as usual.
func TestOpenContextCancelledDuringRecoveryChangesNothing(t *testing.T) {
	dir := t.TempDir()
	ids := buildLog(t, dir, 20, false)
	last := ids[len(ids)-1]
	garbage := []byte("garbage after the tail")
	path := segPath(t, dir, last.Segment)
	patch(t, path, frameEnd(last), garbage)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fs := cancelOnSegmentOpen{FS: vfs.Default, cancel: cancel}
	if l, err := OpenContext(cctx, dir, Config{}, WithFS(fs)); !errors.Is(err, context.Canceled) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("OpenContext cancelled during recovery: %v, want context.Canceled", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a cancelled recovery changed the segment")
	}
	l := openT(t, dir, Config{})
	defer l.Close()
	if rep := l.Recovery(); len(rep.Truncations) != 1 || rep.Truncations[0].Offset != frameEnd(last) {
		t.Fatalf("reopen after a cancelled recovery: truncations %+v, want the torn tail at %d", rep.Truncations, frameEnd(last))
	}
	if got := l.nextSeq(); got != last.Seq+1 {
		t.Fatalf("next seq %d, want %d", got, last.Seq+1)
	}
}
