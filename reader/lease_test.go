package reader

import (
	"bytes"
	"fmt"
	"testing"
)

// TestReaderLeaseDoesNotPinTheBuffer: a Reader that follows the tail
// holds a lease on the active segment all along, yet the append buffer
// behind the record it returned last is released once durable (its
// lease moves on with it, Lease.Advance), while that record stays valid.
// The payload of an early record, which the Reader no longer vouches for,
// is kept here only to see its pages go: it reads as zeros once released.
func TestReaderLeaseDoesNotPinTheBuffer(t *testing.T) {
	src := newFakeSource(t)
	s := src.segs[0]
	payload := bytes.Repeat([]byte{0xab}, 1000)
	var last uint64
	for range 40 {
		last = src.add(string(payload))
	}
	end, _ := s.Advance()
	if _, err := s.WriteOut(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.MarkDurable(end)

	r, err := New(src, 1, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() {
		t.Fatalf("Next: %v", r.Err())
	}
	first := r.Record().Payload // valid until the next Next, kept to look at
	for seq := uint64(2); seq <= last; seq++ {
		if !r.Next() {
			t.Fatalf("Next at %d: %v", seq, r.Err())
		}
	}
	if r.Next() {
		t.Fatal("Next past the last record")
	}
	held := r.Record().Payload
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(held, payload) {
		t.Fatal("the payload of the record the Reader returned last changed when the buffer was trimmed")
	}
	if !bytes.Equal(first, make([]byte, len(first))) {
		t.Fatal("the pages of the first record are still there: the Reader's lease pinned the buffer")
	}
	// Every record still reads back, through the file mapping.
	r2, err := New(src, 1, Written, CopyPayloads())
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for seq := uint64(1); seq <= last; seq++ {
		if !r2.Next() || !bytes.Equal(r2.Record().Payload, payload) {
			t.Fatalf("record %d after the trim: %v", seq, r2.Err())
		}
	}
}

// TestReaderWindowOutlivesTheSeal: a Reader that took its window of
// complete frames in the append buffer reads on from it after the flusher
// wrote the segment out, trimmed what it could and sealed it (the buffer
// is retired, kept for the lease), and every payload is the one appended;
// then it crosses into the next segment.
func TestReaderWindowOutlivesTheSeal(t *testing.T) {
	src := newFakeSource(t)
	s := src.segs[0]
	payload := func(seq uint64) []byte { return bytes.Repeat([]byte{byte(seq)}, 1000) }
	var last uint64
	for range 40 {
		seq := last + 1
		last = src.add(string(payload(seq)))
	}
	end, _ := s.Advance()

	r, err := New(src, 1, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() || !bytes.Equal(r.Record().Payload, payload(1)) {
		t.Fatalf("first record: %v", r.Err())
	}
	if r.lim <= r.off {
		t.Fatal("the Reader took no window of complete frames")
	}

	// The flusher writes everything out, trims and seals meanwhile.
	if _, err := s.WriteOut(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.MarkDurable(end)
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	src.roll(last + 1) // closes s
	if err := s.WriteFooter(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishSeal(); err != nil {
		t.Fatal(err)
	}
	after := src.add("after the seal")

	for seq := uint64(2); seq <= last; seq++ {
		if !r.Next() {
			t.Fatalf("Next at %d after the seal: %v", seq, r.Err())
		}
		if rec := r.Record(); rec.Seq != seq || !bytes.Equal(rec.Payload, payload(seq)) {
			t.Fatalf("record %d after the seal: seq %d, payload changed", seq, rec.Seq)
		}
	}
	if got := next(r); got != fmt.Sprintf("%d:after the seal", after) {
		t.Fatalf("into the next segment: %s", got)
	}
}
