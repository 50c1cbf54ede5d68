// Package wake has Broadcast, a wake-up that can be waited on again and
// again by any number of goroutines.
package wake

import "sync"

// Broadcast is a wake-up for many waiters: a waiter takes the current
// channel, looks at the state it waits on, then waits on the channel;
// Wake closes the channel and installs a fresh one, so whoever took it
// looks again. The zero value is ready to use.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// Current returns the channel the next Wake closes.
func (w *Broadcast) Current() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// Detach installs a fresh channel and returns the previous one, for the
// caller to close when it is done: waiters that took it before Detach are
// woken then.
func (w *Broadcast) Detach() chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.ch
	if ch == nil {
		ch = make(chan struct{})
	}
	w.ch = make(chan struct{})
	return ch
}

// Wake wakes everyone who took the current channel.
func (w *Broadcast) Wake() { close(w.Detach()) }
