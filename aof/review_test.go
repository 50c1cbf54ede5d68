package aof

import (
	"bytes"
	"runtime/debug"
	"testing"

	"github.com/aof2/aof2/segment"
)

// Tests from the second review of reading and retention: each one failed
// before the fix that came with it.

// TestReviewLeasedAppendBufferOutlivesRemoval: a zero-copy payload read
// from the append buffer of the active segment stays mapped after that
// segment is sealed (the buffer is retired, not unmapped, while a lease
// holds it) and then removed by retention. The owner's Release used to
// unmap the retired buffer although the Reader's lease still held it:
// reading the payload then faulted (SIGSEGV).
func TestReviewLeasedAppendBufferOutlivesRemoval(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, retentionCfg)
	defer l.Close()
	mustAppend(t, l, payloadFor(1, 300))
	r, err := l.NewReader(1, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() {
		t.Fatal(r.Err())
	}
	held := r.Record().Payload // a slice of segment 1's append buffer
	// Roll over and seal segment 1 while the Reader leases it.
	appendN(t, l, 2, 1001)
	if l.sealedCount.Load() == 0 {
		t.Fatal("no segment sealed")
	}
	// Remove it: the owner releases it, the lease remains.
	if err := l.TruncateFront(ctx, 900); err != nil {
		t.Fatal(err)
	}
	if _, base, _ := parseFirst(t, dir); base == 1 {
		t.Fatal("segment 1 was not removed")
	}
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("reading a leased payload faulted: %v", p)
			}
		}()
		if !bytes.Equal(held, payloadFor(1, 300)) {
			t.Fatal("leased payload changed")
		}
	}()
}

func parseFirst(t *testing.T, dir string) (uint64, uint64, bool) {
	t.Helper()
	files := segmentFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no segment files")
	}
	return segment.ParseName(files[0])
}
