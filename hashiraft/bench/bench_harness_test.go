package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestStoresRoundTrip: every kind stores, reads back, compacts and keeps
// its stable keys, so the figures compare stores that work.
func TestStoresRoundTrip(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenStore(kind, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := StoreLogs(s, 100, 3, 10, 0); err != nil {
				t.Fatal(err)
			}
			if last, _ := s.LastIndex(); last != 30 {
				t.Fatalf("last index %d, want 30", last)
			}
			r, err := GetLog(s, true, 100, 0)
			if err != nil || r.Ops != 100 || r.Pct(99) <= 0 {
				t.Fatalf("GetLog: %+v ops, err %v", r.Ops, err)
			}
			var l raft.Log
			if err := s.GetLog(31, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog past the end: %v", err)
			}
			if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
				t.Fatal(err)
			}
			if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
				t.Fatalf("GetUint64: %d, %v", v, err)
			}
			// More trailing entries than a snapshot's worth: the first
			// snapshot deletes nothing (30 entries stored above, 400
			// here), the second cuts down to the newest 300.
			d, err := DiskUse(s, dir, 100, 400, 256, 300)
			if err != nil {
				t.Fatal(err)
			}
			if d.Entries != 430 || d.Apparent <= 0 {
				t.Fatalf("after compaction: %+v", d)
			}
		})
	}
}

// TestClusterRuns: a short run through a 3-node cluster of every kind
// applies commands and times them.
func TestClusterRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three clusters")
	}
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := RunCluster(ctx, t.TempDir(), ClusterCase{Kind: kind, Size: 256, Callers: 4, Warmup: 50 * time.Millisecond, Measure: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if r.Ops == 0 || len(r.Lat) == 0 || r.Pct(50) <= 0 {
				t.Fatalf("nothing measured: %d ops, %d latencies", r.Ops, len(r.Lat))
			}
			r2, err := RunCluster(ctx, t.TempDir(), ClusterCase{Kind: kind, Size: 256, Callers: 4, Applies: 50})
			if err != nil {
				t.Fatal(err)
			}
			if r2.Ops != 50 || len(r2.Lat) != 50 {
				t.Fatalf("Applies 50: %d ops, %d latencies", r2.Ops, len(r2.Lat))
			}
		})
	}
}

// TestClusterWithSnapshotsDeletesPrefixes: with Snapshots, raft snapshots
// and deletes each store's log prefix while the commands are applied, so
// the cluster part measures a log in its steady state.
func TestClusterWithSnapshotsDeletesPrefixes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := startCluster(ctx, "hashiraft", t.TempDir(), SnapshotRaftConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Run(ctx, ClusterCase{Kind: "hashiraft", Size: 64, Callers: 16, Applies: 30000, Snapshots: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.nodes {
		for {
			first, err := n.store.FirstIndex()
			if err != nil {
				t.Fatal(err)
			}
			if first > 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a node's log still starts at %d after 30,000 commands with snapshots every 8,192", first)
			}
			time.Sleep(100 * time.Millisecond) // raft checks for a snapshot each second
		}
	}
}
