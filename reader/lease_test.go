package reader

import (
	"bytes"
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
