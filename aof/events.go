package aof

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// EventKind says what happened to a segment.
type EventKind uint8

// Segment lifecycle events, in the order a segment goes through them.
const (
	// EventActivated: the segment started taking appends (a rollover,
	// or the fresh segment after TruncateBack or Reset).
	EventActivated EventKind = iota + 1
	// EventSealing: the segment is full and durable; its footer is being
	// written.
	EventSealing
	// EventSealed: the footer is durable; the segment is read-only. Also
	// sent when TruncateBack cuts a segment and seals it at the cut.
	EventSealed
	// EventRemoved: retention (TruncateFront, RetainBytes, RetainAge),
	// TruncateBack or Reset deleted the segment file.
	EventRemoved
)

func (k EventKind) String() string {
	switch k {
	case EventActivated:
		return "activated"
	case EventSealing:
		return "sealing"
	case EventSealed:
		return "sealed"
	case EventRemoved:
		return "removed"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// SegmentEvent is one lifecycle event of one segment.
type SegmentEvent struct {
	Kind    EventKind
	Segment uint64 // the segment's index
	File    string // its file name
	// FirstSeq is the sequence number of its first record; Records is
	// how many it holds (0 for EventActivated), and Bytes where its
	// record data ends.
	FirstSeq uint64
	Records  uint64
	Bytes    int64
	// Reason says why a segment was removed or cut: "truncate-front",
	// "retain-bytes", "retain-age", "truncate-back" or "reset".
	Reason string
	Time   time.Time
}

// eventHub hands every event to every subscription. Publishing never
// blocks: each subscription queues what it has not read yet.
type eventHub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscription receives every segment lifecycle event published after
// Log.Subscribe returned, in order, without loss: events wait in the
// subscription's queue (a few per segment) until Next takes them, so a
// slow subscriber costs memory, never a lost event, and never blocks the
// log. Close it when done. A Subscription is safe for concurrent use.
type Subscription struct {
	hub    *eventHub
	mu     sync.Mutex
	queue  []SegmentEvent
	closed bool          // the log closed: Next drains, then ErrClosed
	ready  chan struct{} // one slot: "the queue changed"
}

// Subscribe returns a Subscription to the log's segment lifecycle events.
// On a closed log the subscription's Next returns ErrClosed.
func (l *Log) Subscribe() *Subscription {
	sub := &Subscription{hub: &l.events, ready: make(chan struct{}, 1)}
	h := &l.events
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		sub.closed = true
		return sub
	}
	if h.subs == nil {
		h.subs = make(map[*Subscription]struct{})
	}
	h.subs[sub] = struct{}{}
	return sub
}

// Next returns the next event, waiting for one. It returns ctx's error if
// ctx ends first, and ErrClosed once the log closed (or the subscription
// was closed) and every event before that was returned.
func (s *Subscription) Next(ctx context.Context) (SegmentEvent, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = SegmentEvent{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return ev, nil
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return SegmentEvent{}, ErrClosed
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return SegmentEvent{}, ctx.Err()
		}
	}
}

// Close ends the subscription: no more events are queued, and Next returns
// what is queued, then ErrClosed.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	delete(s.hub.subs, s)
	s.hub.mu.Unlock()
	s.end()
}

func (s *Subscription) end() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// publish queues ev for every subscription.
func (h *eventHub) publish(ev SegmentEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		sub.mu.Lock()
		sub.queue = append(sub.queue, ev)
		sub.mu.Unlock()
		sub.signal()
	}
}

// close ends every subscription once the log is closed.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for sub := range h.subs {
		sub.end()
	}
	h.subs = nil
}

// segmentEvent describes s for an event of kind k.
func segmentEvent(k EventKind, s *seg, reason string) SegmentEvent {
	end, count := s.Reserved()
	h := s.Header()
	return SegmentEvent{Kind: k, Segment: h.Index, File: filepath.Base(s.Path()), FirstSeq: h.BaseSeq,
		Records: count, Bytes: end, Reason: reason, Time: time.Now()}
}
