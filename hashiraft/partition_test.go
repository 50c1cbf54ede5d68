package hashiraft

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// errPartitioned is what a dial across a cut link returns.
var errPartitioned = errors.New("network partitioned (test)")

// cutLayer is raft's TCP stream layer (what NewTCPTransport builds) with a
// switch: while cut, the node can neither dial nor be dialled, and every
// connection it had is closed — a network partition of that node, over
// real TCP on 127.0.0.1, without stopping the node.
type cutLayer struct {
	net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func listenCuttable(addr string) (*cutLayer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &cutLayer{Listener: ln, conns: map[net.Conn]struct{}{}}, nil
}

// Accept returns the next connection made while the link is up; one that
// arrives while it is cut is closed at once.
func (l *cutLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c, ok := l.track(c); ok {
			return c, nil
		}
	}
}

// Dial connects to addr unless the link is cut.
func (l *cutLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	cut := l.cut
	l.mu.Unlock()
	if cut {
		return nil, errPartitioned
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if c, ok := l.track(c); ok {
		return c, nil
	}
	return nil, errPartitioned
}

// track records c to be closed by a cut, or closes it if the link is cut.
func (l *cutLayer) track(c net.Conn) (net.Conn, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		c.Close()
		return nil, false
	}
	l.conns[c] = struct{}{}
	return &trackedConn{Conn: c, l: l}, true
}

// setCut cuts the node off (closing every connection it has) or heals it.
func (l *cutLayer) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			c.Close()
		}
		clear(l.conns)
	}
}

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	l *cutLayer
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c.Conn)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// leaderAmong waits for one of nodes to be the leader and returns it.
func (c *cluster) leaderAmong(nodes ...*node) *node {
	c.t.Helper()
	var lead *node
	c.waitFor("a leader among the majority", func() bool {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				lead = n
				return true
			}
		}
		return false
	})
	return lead
}

// TestClusterPartitionedLeader: the leader of a 3-node cluster is cut off
// by a real network partition (its TCP connections closed, dials refused;
// the node keeps running). It goes on storing entries it can never commit;
// the other two elect a leader and commit new commands; when the partition
// heals, the old leader's uncommitted entries are deleted from its log (a
// suffix DeleteRange), it takes the majority's entries, and no node ever
// applies an entry that was not committed.
func TestClusterPartitionedLeader(t *testing.T) {
	c := newClusterWith(t, func(n *node) { n.cuttable = true })
	c.apply(10)
	c.check("before the partition")

	old := c.leader()
	var majority []*node
	for _, n := range c.nodes {
		if n != old {
			majority = append(majority, n)
		}
	}
	before, _ := old.store.LastIndex()
	old.layer.setCut(true)
	var futures []raft.ApplyFuture
	for i := range 3 {
		cmd := fmt.Sprintf("lost%d", i)
		c.lost[cmd] = true
		futures = append(futures, old.raft.Apply([]byte(cmd), 5*time.Second))
	}
	c.waitFor("the partitioned leader storing its entries", func() bool {
		last, _ := old.store.LastIndex()
		return last >= before+3
	})

	// The majority side elects a leader and commits.
	for i := range 10 {
		cmd := fmt.Sprintf("m%04d", i)
		for attempt := 0; ; attempt++ {
			err := c.leaderAmong(majority...).raft.Apply([]byte(cmd), 5*time.Second).Error()
			if err == nil {
				c.acked = append(c.acked, cmd)
				break
			}
			if !errors.Is(err, raft.ErrNotLeader) || attempt == 20 {
				t.Fatalf("apply %s on the majority: %v", cmd, err)
			}
		}
	}
	for _, fu := range futures {
		if fu.Error() == nil {
			t.Fatal("a partitioned leader committed an entry")
		}
	}
	if old.raft.State() == raft.Leader {
		t.Fatal("the partitioned leader did not step down")
	}

	old.layer.setCut(false)
	c.apply(5)
	c.check("partition healed")
	var e raft.Log
	if err := old.store.GetLog(before+1, &e); err != nil || c.lost[string(e.Data)] {
		t.Fatalf("the healed leader's entry %d: %+v %v", before+1, e, err)
	}
	if n := c.truncations(old, endTail); n == 0 {
		t.Fatal("the healed leader's conflicting entries were not deleted as a suffix")
	}
}

// newTransport returns n's transport: raft's TCP transport, or the same
// over a cuttable stream layer.
func (n *node) newTransport() (*raft.NetworkTransport, error) {
	if !n.cuttable {
		return raft.NewTCPTransport(n.addr, nil, 3, 2*time.Second, io.Discard)
	}
	layer, err := listenCuttable(n.addr)
	if err != nil {
		return nil, err
	}
	n.layer = layer
	return raft.NewNetworkTransport(layer, 3, 2*time.Second, io.Discard), nil
}
