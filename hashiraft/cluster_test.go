package hashiraft

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/aof2/aof2/vfs"
)

// kvFSM is the cluster test's state machine: the list of commands applied,
// in order.
type kvFSM struct {
	mu   sync.Mutex
	cmds []string
}

func (f *kvFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return nil
}

func (f *kvFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) { return listSnapshot(f.list()), nil }

func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds []string
	if err := json.NewDecoder(rc).Decode(&cmds); err != nil {
		return err
	}
	f.mu.Lock()
	f.cmds = cmds
	f.mu.Unlock()
	return nil
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// node is one member of the test cluster: its directory and address stay,
// its store, transport and raft are made anew by each start.
type node struct {
	id, dir, addr string
	rec           *tracetest.SpanRecorder
	tp            *sdktrace.TracerProvider
	metrics       *sdkmetric.ManualReader
	mp            *sdkmetric.MeterProvider
	// fs, if set, is the store's Config.FS; logs, if set, wraps the
	// store as raft's log store.
	fs   vfs.FS
	logs func(*Store) raft.LogStore
	// cuttable makes its transport one whose network link the test can
	// cut (layer; see partition_test.go).
	cuttable bool
	layer    *cutLayer

	store *Store
	trans *raft.NetworkTransport
	fsm   *kvFSM
	raft  *raft.Raft
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func raftConfig(id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = 150 * time.Millisecond
	c.ElectionTimeout = 150 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 30 // snapshots only when the test asks
	c.SnapshotInterval = time.Hour
	c.TrailingLogs = 4
	// Not RestoreCommittedLogs: with it, raft v1.8.0 restarts a node
	// without the configuration entries it replays, and a cluster whose
	// nodes restart one after the other loses its quorum
	// (TestRaftRestoreCommittedLogsForgetsConfiguration; the commit index
	// is tested there).
	c.LogOutput = io.Discard
	return c
}

func (n *node) start(t *testing.T) {
	t.Helper()
	cfg := testConfig()
	cfg.TracerProvider = n.tp
	cfg.MeterProvider = n.mp
	cfg.Name = n.id
	cfg.FS = n.fs
	var err error
	if n.store, err = Open(filepath.Join(n.dir, "store"), cfg); err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(n.dir, "snaps"), 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 { // the port may still be held a moment after a stop
		if n.trans, err = n.newTransport(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	n.fsm = &kvFSM{}
	var logs raft.LogStore = n.store
	if n.logs != nil {
		logs = n.logs(n.store)
	}
	if n.raft, err = raft.NewRaft(raftConfig(n.id), n.fsm, logs, n.store, snaps, n.trans); err != nil {
		t.Fatal(err)
	}
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	if n.raft == nil {
		return
	}
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	n.trans.Close()
	if err := n.store.Close(); err != nil {
		t.Fatal(err)
	}
	n.raft = nil
}

type cluster struct {
	t     *testing.T
	nodes []*node
	// acked are the commands whose Apply succeeded, in order (after the
	// state a user Restore installed); lost those whose Apply failed
	// in a way that guarantees they were never committed.
	acked []string
	lost  map[string]bool
	seq   int
}

func newCluster(t *testing.T) *cluster { return newClusterWith(t, nil) }

// newClusterWith is newCluster with setup called on each node before it
// first starts.
func newClusterWith(t *testing.T, setup func(*node)) *cluster {
	c := &cluster{t: t, lost: map[string]bool{}}
	var servers []raft.Server
	for i := range 3 {
		rec := tracetest.NewSpanRecorder()
		n := &node{
			id: fmt.Sprintf("n%d", i), dir: t.TempDir(), addr: freeAddr(t), rec: rec,
			tp: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))),
		}
		n.metrics = sdkmetric.NewManualReader()
		n.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(n.metrics))
		c.nodes = append(c.nodes, n)
		servers = append(servers, raft.Server{ID: raft.ServerID(n.id), Address: raft.ServerAddress(n.addr)})
	}
	for _, n := range c.nodes {
		if setup != nil {
			setup(n)
		}
		n.start(t)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop(t)
		}
	})
	if err := c.nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a liveness bound, not a timing assertion).
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) leader() *node {
	c.t.Helper()
	var lead *node
	c.waitFor("a leader", func() bool {
		for _, n := range c.nodes {
			if n.raft != nil && n.raft.State() == raft.Leader {
				lead = n
				return true
			}
		}
		return false
	})
	return lead
}

// apply applies k new commands through the leader, retrying when the node
// was no longer the leader; a command whose Apply failed for any other
// reason fails the test (its fate would be unknown).
func (c *cluster) apply(k int) {
	c.t.Helper()
	for range k {
		c.seq++
		cmd := fmt.Sprintf("c%04d", c.seq)
		c.applyCmd(context.Background(), cmd)
	}
}

func (c *cluster) applyCmd(ctx context.Context, cmd string) {
	c.t.Helper()
	l := raft.Log{Data: []byte(cmd)}
	Inject(ctx, &l)
	for attempt := 0; ; attempt++ {
		err := c.leader().raft.ApplyLog(l, 5*time.Second).Error()
		if err == nil {
			c.acked = append(c.acked, cmd)
			return
		}
		if err == raft.ErrNotLeader && attempt < 20 {
			continue // never enqueued: the leader changed
		}
		c.t.Fatalf("apply %s: %v", cmd, err)
	}
}

// check waits until every running node's state machine holds exactly the
// acknowledged commands, in order, then checks that the nodes' logs agree
// on their common range.
func (c *cluster) check(phase string) {
	c.t.Helper()
	lead := c.leader()
	if err := lead.raft.Barrier(5 * time.Second).Error(); err != nil {
		c.t.Fatalf("%s: barrier: %v", phase, err)
	}
	for _, n := range c.nodes {
		if n.raft == nil {
			continue
		}
		c.waitFor(phase+": "+n.id+" applies every command", func() bool {
			return slices.Equal(n.fsm.list(), c.acked)
		})
		for _, cmd := range n.fsm.list() {
			if c.lost[cmd] {
				c.t.Fatalf("%s: %s applied %s, an entry never committed", phase, n.id, cmd)
			}
		}
	}
	for i, a := range c.nodes {
		for _, b := range c.nodes[i+1:] {
			if a.raft != nil && b.raft != nil {
				c.sameLogs(phase, a, b)
			}
		}
	}
}

// sameLogs checks that a's and b's logs hold the same entries (index,
// term, type, data, extensions and the leader's AppendedAt) where both
// hold entries.
func (c *cluster) sameLogs(phase string, a, b *node) {
	c.t.Helper()
	af, _ := a.store.FirstIndex()
	al, _ := a.store.LastIndex()
	bf, _ := b.store.FirstIndex()
	bl, _ := b.store.LastIndex()
	lo, hi := max(af, bf), min(al, bl)
	for i := lo; i <= hi && lo > 0; i++ {
		var x, y raft.Log
		if err := a.store.GetLog(i, &x); err != nil {
			c.t.Fatalf("%s: %s GetLog(%d): %v", phase, a.id, i, err)
		}
		if err := b.store.GetLog(i, &y); err != nil {
			c.t.Fatalf("%s: %s GetLog(%d): %v", phase, b.id, i, err)
		}
		if !sameLog(&x, &y) {
			c.t.Fatalf("%s: entry %d differs: %s has %+v, %s has %+v", phase, i, a.id, x, b.id, y)
		}
	}
}

func (c *cluster) follower() *node {
	lead := c.leader()
	for _, n := range c.nodes {
		if n != lead && n.raft != nil {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// A 3-node cluster on 127.0.0.1 (raft's TCP transport, file snapshots)
// with hashiraft as every node's log and stable store, through every path
// raft takes through a log store. After each phase every node's state
// machine holds exactly the acknowledged commands, in order, and the logs
// agree where they overlap.
func TestCluster(t *testing.T) {
	c := newCluster(t)

	// Bootstrap, then commands, one of them traced from a client: every
	// node's aof.flush links the append of that entry.
	c.apply(20)
	clientTP, _ := newTracing()
	ctx, client := clientTP.Tracer("client").Start(context.Background(), "client.put")
	c.seq++
	c.applyCmd(ctx, fmt.Sprintf("c%04d", c.seq))
	client.End()
	c.check("bootstrap")
	for _, n := range c.nodes {
		c.waitFor(n.id+"'s flush linking the client's write", func() bool {
			return linksTo(n.rec.Ended(), client.SpanContext())
		})
	}

	// A follower stopped; the leader snapshots and compacts past the
	// follower's log; the follower restarted gets the snapshot
	// (InstallSnapshot: every entry deleted, then entries from past the
	// snapshot's index).
	f := c.follower()
	f.stop(t)
	fLast := c.lastIndexOnDisk(f)
	c.apply(30)
	lead := c.leader()
	if err := lead.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := lead.store.FirstIndex(); first <= fLast+1 {
		t.Fatalf("leader compacted only to %d, the stopped follower has up to %d", first, fLast)
	}
	c.apply(10)
	f.start(t)
	c.check("follower restarted")
	if first, _ := f.store.FirstIndex(); first <= fLast+1 || c.truncations(f, endAll) == 0 {
		t.Fatalf("the restarted follower's log starts at %d: it was not sent a snapshot (its log ended at %d)", first, fLast)
	}

	// Leader failover and restart.
	old := c.leader()
	old.stop(t)
	c.apply(15)
	old.start(t)
	c.check("leader failover and restart")

	// A leader cut off from its followers appends entries it can never
	// commit; the others elect a leader and go on; on its return the
	// conflicting entries are deleted from its log (a suffix delete).
	lead = c.leader()
	var others []*node
	for _, n := range c.nodes {
		if n != lead {
			others = append(others, n)
		}
	}
	for _, n := range others {
		n.stop(t)
	}
	before, _ := lead.store.LastIndex()
	var futures []raft.ApplyFuture
	for i := range 3 {
		cmd := fmt.Sprintf("lost%d", i)
		c.lost[cmd] = true
		futures = append(futures, lead.raft.Apply([]byte(cmd), 5*time.Second))
	}
	c.waitFor("the isolated leader storing its entries", func() bool {
		last, _ := lead.store.LastIndex()
		return last >= before+3
	})
	for _, fu := range futures {
		if fu.Error() == nil {
			t.Fatal("an isolated leader committed an entry")
		}
	}
	lead.stop(t)
	for _, n := range others {
		n.start(t)
	}
	c.apply(10)
	lead.start(t)
	c.check("isolated leader healed")
	var e raft.Log
	if err := lead.store.GetLog(before+1, &e); err != nil || c.lost[string(e.Data)] {
		t.Fatalf("the healed leader's entry %d: %+v %v", before+1, e, err)
	}
	if n := c.truncations(lead, endTail); n == 0 {
		t.Fatal("the healed leader's conflicting entries were not deleted as a suffix")
	}

	// A user Restore on the leader replaces the state; the followers get
	// it as a snapshot.
	restored := []string{"r1", "r2", "r3"}
	var snap bytes.Buffer
	if err := json.NewEncoder(&snap).Encode(restored); err != nil {
		t.Fatal(err)
	}
	lead = c.leader()
	if err := lead.raft.Restore(&raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(snap.Len())}, &snap, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c.acked = slices.Clone(restored)
	c.apply(10)
	c.check("user restore")

	// Every node restarted from its directory.
	for _, n := range c.nodes {
		n.stop(t)
	}
	for _, n := range c.nodes {
		n.start(t)
	}
	c.check("all restarted")
	c.apply(10)
	c.check("all restarted, more commands")
}

// truncations returns how many DeleteRange calls of n deleted at end.
func (c *cluster) truncations(n *node, end string) int64 {
	c.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := n.metrics.Collect(context.Background(), &rm); err != nil {
		c.t.Fatal(err)
	}
	v, _ := sumOf(rm, MetricTruncations, AttrTruncateEnd.String(end))
	return v
}

// lastIndexOnDisk reopens a stopped node's store to read its last index.
func (c *cluster) lastIndexOnDisk(n *node) uint64 {
	c.t.Helper()
	s, err := Open(filepath.Join(n.dir, "store"), testConfig())
	if err != nil {
		c.t.Fatal(err)
	}
	defer s.Close()
	last, _ := s.LastIndex()
	return last
}
