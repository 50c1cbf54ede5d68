package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/hashiraft"
)

// Store is what a raft node needs of its log and stable store; each kind
// is both.
type Store interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// The kinds of store, by the name the results use.
const (
	Hashiraft = "hashiraft" // this module's parent: aof2
	RaftWAL   = "raftwal"   // github.com/hashicorp/raft-wal v0.4.2
	BoltDB    = "boltdb"    // github.com/hashicorp/raft-boltdb/v2 v2.3.1
)

// Kinds lists every kind, hashiraft first.
var Kinds = []string{Hashiraft, RaftWAL, BoltDB}

// Notes says how each kind is opened, for the results' legend.
var Notes = map[string]string{
	Hashiraft: "hashiraft.Open, aof.Config{SegmentSize: 64 MiB} (the README's wiring; otherwise aof's defaults: group commit, 1 MiB watermark, 5 ms interval); log and stable store",
	RaftWAL:   "raftwal.Open with its defaults (64 MiB segments, BoltDB meta store); log and stable store",
	BoltDB:    "raftboltdb.NewBoltStore (one bbolt file, fsync per transaction); log and stable store",
}

// OpenStore opens a store of kind in dir (created if needed).
func OpenStore(kind, dir string) (Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	switch kind {
	case Hashiraft:
		s, err := hashiraft.Open(dir, hashiraft.Config{Log: aof.Config{SegmentSize: 64 << 20}, Name: dir})
		if err != nil {
			return nil, err
		}
		return s, nil
	case RaftWAL:
		w, err := raftwal.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("raft-wal open %s: %w", dir, err)
		}
		return w, nil
	case BoltDB:
		b, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
		if err != nil {
			return nil, fmt.Errorf("raft-boltdb open %s: %w", dir, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("bench: unknown store %q (want one of %v)", kind, Kinds)
}
