package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// ClusterCase is one measurement through raft.
type ClusterCase struct {
	Kind    string        // the log and stable store of every node
	Size    int           // command payload bytes
	Callers int           // goroutines applying commands in a closed loop
	Warmup  time.Duration // applied but not measured, after the leader is elected
	Measure time.Duration // the measured window, unless Applies is set
	Applies int           // if set, the number of measured Applies instead
	// Snapshots runs raft with snapshots (SnapshotRaftConfig) instead of
	// without: the steady state of a raft log, whose prefix is deleted
	// after each snapshot.
	Snapshots bool
}

// RaftConfig is the raft.Config of every node of every cluster: raft's
// defaults (MaxAppendEntries 64, CommitTimeout 50 ms, no BatchApplyCh),
// with snapshots out of the way of a short run. The defaults' 1 s
// heartbeat and election timeouts are kept: shorter ones make a loaded
// 2-core machine hold spurious elections.
func RaftConfig(id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.SnapshotThreshold = 1 << 40
	c.SnapshotInterval = time.Hour
	c.LogOutput = io.Discard
	return c
}

// SnapshotRaftConfig is RaftConfig with snapshots on: raft checks every
// second and snapshots once 8,192 entries came since the last one, keeping
// its default 10,240 trailing entries, so every store's log has its prefix
// deleted (DeleteRange) every 8,192 entries, as a raft log in service has.
func SnapshotRaftConfig(id string) *raft.Config {
	c := RaftConfig(id)
	c.SnapshotThreshold = 8192
	c.SnapshotInterval = time.Second
	return c
}

// countFSM counts applied commands; its snapshot is the count.
type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) any { f.n.Add(1); return nil }

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnap(f.n.Load()), nil }

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	f.n.Store(n)
	return nil
}

type countSnap uint64

func (s countSnap) Persist(sink raft.SnapshotSink) error {
	var b [8]byte
	for i := range b {
		b[i] = byte(uint64(s) >> (56 - 8*i))
	}
	if _, err := sink.Write(b[:]); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnap) Release() {}

// clusterNode is one member of a benchmark cluster.
type clusterNode struct {
	store Store
	trans *raft.NetworkTransport
	raft  *raft.Raft
}

// Cluster is a 3-node raft cluster on 127.0.0.1, every node's log and
// stable store of one kind, each in its own directory under root.
type Cluster struct {
	nodes []*clusterNode
}

// StartCluster starts a 3-node cluster with stores of kind under root and
// waits (under ctx) until it has a leader.
func StartCluster(ctx context.Context, kind, root string) (*Cluster, error) {
	return startCluster(ctx, kind, root, RaftConfig)
}

func startCluster(ctx context.Context, kind, root string, config func(id string) *raft.Config) (*Cluster, error) {
	c := &Cluster{}
	var servers []raft.Server
	var listeners []net.Listener
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("n%d", i)), Address: raft.ServerAddress(l.Addr().String())})
	}
	for _, l := range listeners {
		l.Close()
	}
	for i, srv := range servers {
		dir := filepath.Join(root, string(srv.ID))
		n := &clusterNode{}
		c.nodes = append(c.nodes, n)
		var err error
		if n.store, err = OpenStore(kind, filepath.Join(dir, "store")); err != nil {
			c.Close()
			return nil, err
		}
		snaps, err := raft.NewFileSnapshotStore(filepath.Join(dir, "snaps"), 2, io.Discard)
		if err != nil {
			c.Close()
			return nil, err
		}
		if n.trans, err = raft.NewTCPTransport(string(srv.Address), nil, 3, 10*time.Second, io.Discard); err != nil {
			c.Close()
			return nil, err
		}
		if n.raft, err = raft.NewRaft(config(string(srv.ID)), &countFSM{}, n.store, n.store, snaps, n.trans); err != nil {
			c.Close()
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			c.Close()
			return nil, fmt.Errorf("bootstrap node %d: %w", i, err)
		}
	}
	for {
		if c.Leader() != nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("bench: no leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Leader returns the leader's raft, nil when there is none.
func (c *Cluster) Leader() *raft.Raft {
	for _, n := range c.nodes {
		if n.raft != nil && n.raft.State() == raft.Leader {
			return n.raft
		}
	}
	return nil
}

// Close shuts every node down and closes its store.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.nodes {
		if n.raft != nil {
			errs = append(errs, n.raft.Shutdown().Error())
		}
		if n.trans != nil {
			errs = append(errs, n.trans.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
	}
	return errors.Join(errs...)
}

// Run has cs.Callers goroutines Apply commands of cs.Size bytes through
// the leader in a closed loop for cs.Warmup, then either cs.Applies
// commands (when it is set: Elapsed is the time they took) or for
// cs.Measure. The result counts the Applies that returned within the
// measured window and times those that also started in it. An Apply that
// fails fails the run (a leader change during a benchmark would make its
// figures meaningless).
func (c *Cluster) Run(ctx context.Context, cs ClusterCase) (Result, error) {
	r := c.Leader()
	if r == nil {
		return Result{}, errors.New("bench: the cluster has no leader")
	}
	cmd := Payload(cs.Size, 0)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      []time.Duration
		done     int
		firstErr error
		stop     atomic.Bool
		tickets  atomic.Int64 // Applies left to start, when cs.Applies is set
	)
	tickets.Store(int64(cs.Applies))
	start := time.Now().Add(cs.Warmup)
	end := start.Add(cs.Measure)
	if cs.Applies > 0 {
		end = time.Now().Add(24 * time.Hour)
	}
	apply := func() bool {
		if stop.Load() || ctx.Err() != nil {
			return false
		}
		return cs.Applies == 0 || time.Now().Before(start) || tickets.Add(-1) >= 0
	}
	for range cs.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			n := 0
			for apply() {
				t0 := time.Now()
				err := r.Apply(cmd, 10*time.Second).Error()
				t1 := time.Now()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop.Store(true)
					break
				}
				if !t1.Before(start) && !t1.After(end) {
					n++
					if !t0.Before(start) {
						mine = append(mine, t1.Sub(t0))
					}
				}
				if !t1.Before(end) {
					break
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			done += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Result{}, fmt.Errorf("bench: apply: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	elapsed := cs.Measure
	if cs.Applies > 0 {
		elapsed = time.Since(start)
	}
	return Result{Ops: done, Elapsed: elapsed, Lat: lat}, nil
}

// RunCluster starts a cluster of cs.Kind under root, runs cs and closes
// the cluster.
func RunCluster(ctx context.Context, root string, cs ClusterCase) (Result, error) {
	config := RaftConfig
	if cs.Snapshots {
		config = SnapshotRaftConfig
	}
	c, err := startCluster(ctx, cs.Kind, root, config)
	if err != nil {
		return Result{}, err
	}
	res, err := c.Run(ctx, cs)
	return res, errors.Join(err, c.Close())
}
