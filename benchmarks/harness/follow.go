package harness

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound: no record with that sequence number yet. Adapters wrap it
// so a polling follower can tell "not yet" from a failure.
var ErrNotFound = errors.New("harness: record not found")

// FollowLevel is what a follower waits for.
type FollowLevel uint8

const (
	// FollowWritten: records visible to readers, maybe not durable.
	FollowWritten FollowLevel = iota
	// FollowDurable: only records known durable.
	FollowDurable
)

func (f FollowLevel) String() string {
	if f == FollowDurable {
		return "durable"
	}
	return "written"
}

// FollowFunc tails lg from sequence number from, calling fn for each
// record in order, until ctx ends (then it returns nil).
type FollowFunc func(ctx context.Context, lg Log, from uint64, level FollowLevel, fn func(seq uint64, p []byte)) error

// pollFollow is the follower for libraries without a follow API, written
// as a user would: Read the next sequence number; when it is not there
// yet, sleep pollInterval and retry. A peer's Read sees only what its
// Append has handed over, and in Durable mode its Append returns after the
// sync, so "visible" means durable there.
func pollFollow(ctx context.Context, lg Log, from uint64, fn func(seq uint64, p []byte)) error {
	var buf []byte
	for seq := from; ; {
		if ctx.Err() != nil {
			return nil
		}
		p, err := lg.Read(seq, buf[:0])
		if errors.Is(err, ErrNotFound) {
			time.Sleep(pollInterval)
			continue
		}
		if err != nil {
			return err
		}
		buf = p
		fn(seq, p)
		seq++
	}
}
