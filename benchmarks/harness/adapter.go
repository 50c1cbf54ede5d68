// Package harness drives aof2 and peer Go write-ahead logs through the same
// workloads, each in its own equivalent durability mode, and reports what
// they did: records/s, MB/s, latency percentiles from a log-bucketed
// histogram, fsyncs per record, allocations per op and peak RSS.
//
// Every log is reached through the small Log interface below, one adapter
// per implementation (aof.go, tidwall.go, raftwal.go, pebble.go, raw.go).
// Adapters do what a user of that library would do, nothing cleverer: a
// peer without group commit gets a caller-side mutex and is measured as it
// is. Keep adapters small; they are the part to update when an API moves.
//
// Concurrency: Append and AppendBatch are safe for concurrent use on every
// adapter; Read, Scan and Close are called by one goroutine while nothing
// appends (Follow aside, see follow.go).
package harness

import (
	"errors"
	"fmt"
	"sort"
)

// Mode is the durability a log is opened in. Workloads never compare logs
// across modes.
type Mode uint8

const (
	// Buffered: Append returns once the record is in the library's
	// hands (memory or page cache), with no sync on the caller's path:
	// each peer's "no sync" mode. aof's background flusher keeps
	// running, as a user would leave it.
	Buffered Mode = iota
	// Durable: Append returns once the record is on stable storage.
	Durable
)

func (m Mode) String() string {
	if m == Buffered {
		return "buffered"
	}
	return "durable"
}

// ErrUnsupported: the implementation has no way to do this operation (it
// shows as "n/a" in the report).
var ErrUnsupported = errors.New("harness: not supported by this implementation")

// Log is one open log of one implementation.
type Log interface {
	// Append appends one record in the log's Mode. Records get sequence
	// numbers 1, 2, 3, ... in append order.
	Append(p []byte) error
	// AppendBatch appends the records in one call, in the log's Mode:
	// in Durable mode it returns once all of them are durable.
	AppendBatch(ps [][]byte) error
	// Read returns the payload of record seq (from 1), appended to dst.
	Read(seq uint64, dst []byte) ([]byte, error)
	// Scan calls fn for every record from the first, in order. The
	// payload is valid only during the call.
	Scan(fn func(seq uint64, p []byte) error) error
	// Syncs returns the number of fsync/fdatasync calls made so far, or
	// -1 when the implementation gives no way to count them.
	Syncs() int64
	// Close closes the log, making what was appended durable.
	Close() error
}

// Impl is one implementation under test.
type Impl struct {
	// Name is how the report names it.
	Name string
	// Note says, for the report, what the adapter does in each mode.
	Note string
	// Open opens (creating if needed) a log in dir, which exists.
	Open func(dir string, mode Mode) (Log, error)
	// OpenSized, if set, is Open with segments of segmentSize bytes
	// instead of the adapter's usual 64 MiB (the many-logs benchmark,
	// which cannot preallocate 64 MiB per log for a thousand logs).
	OpenSized func(dir string, mode Mode, segmentSize int64) (Log, error)
	// Modes lists the modes the implementation has; a workload skips
	// an implementation without its mode.
	Modes []Mode
	// Follow, if set, is the implementation's own tail-following API
	// (see follow.go); otherwise the follower polls Read.
	Follow FollowFunc
	// WritesOnly: a floor for the write workloads (buffered, durable,
	// batch64) only; the read and follow workloads skip it.
	WritesOnly bool
}

// Has reports whether the implementation has mode m.
func (i Impl) Has(m Mode) bool {
	for _, x := range i.Modes {
		if x == m {
			return true
		}
	}
	return false
}

var registry = map[string]Impl{}

func register(i Impl) { registry[i.Name] = i }

// Impls returns the registered implementations, aof first, then the raw
// floors (fallocated blocks, then written ones), then peers by name.
func Impls() []Impl {
	var out []Impl
	for _, i := range registry {
		out = append(out, i)
	}
	rank := func(n string) int {
		switch n {
		case "aof":
			return 0
		case "aof-recycled":
			return 1
		case "raw":
			return 2
		case "raw-overwrite":
			return 3
		}
		return 4
	}
	sort.Slice(out, func(a, b int) bool {
		ra, rb := rank(out[a].Name), rank(out[b].Name)
		if ra != rb {
			return ra < rb
		}
		return out[a].Name < out[b].Name
	})
	return out
}

// Lookup returns the implementation called name.
func Lookup(name string) (Impl, error) {
	i, ok := registry[name]
	if !ok {
		return Impl{}, fmt.Errorf("harness: no implementation %q", name)
	}
	return i, nil
}
