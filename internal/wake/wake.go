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

// Detach takes the current channel away, so that waiters from now on get
// a fresh one, and returns it for the caller to close when it is done
// (Detached.Wake): waiters that took it before Detach are woken then.
func (w *Broadcast) Detach() Detached {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.ch
	w.ch = nil // made when someone waits: no channel when no one does
	return Detached{ch}
}

// Wake wakes everyone who took the current channel.
func (w *Broadcast) Wake() { w.Detach().Wake() }

// Detached is a channel Detach took away.
type Detached struct{ ch chan struct{} }

// Wake wakes everyone who took the channel before it was detached.
func (d Detached) Wake() {
	if d.ch != nil {
		close(d.ch)
	}
}
