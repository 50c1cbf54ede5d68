package hashiraft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/vfs/vfstest"
)

// powerImage is the disk of the power-cut node as it would be had the
// power gone at one operation.
type powerImage struct {
	op   int
	what string // the operation and its path
	img  *vfstest.PowerImage
	// durable is the last index of the entries whose StoreLogs had
	// returned on n2 when the image was taken (less any DeleteRange since):
	// the image's log must hold it.
	durable uint64
}

// ackedLogs is raft's log store on the power-cut node: it records the last
// index a StoreLogs returned for (lowered before any DeleteRange).
type ackedLogs struct {
	*Store
	durable *atomic.Uint64
}

func (a ackedLogs) StoreLogs(logs []*raft.Log) error {
	err := a.Store.StoreLogs(logs)
	if err == nil && len(logs) > 0 {
		a.durable.Store(logs[len(logs)-1].Index)
	}
	return err
}

func (a ackedLogs) StoreLog(l *raft.Log) error { return a.StoreLogs([]*raft.Log{l}) }

func (a ackedLogs) DeleteRange(lo, hi uint64) error {
	if lo > 0 && a.durable.Load() >= lo {
		a.durable.Store(lo - 1)
	}
	return a.Store.DeleteRange(lo, hi)
}

// Power loss of one node's disk. Node n2's store (its log and its stable
// store) runs on a vfstest.PowerFS while the 3-node cluster applies
// commands and changes leader (so n2 also writes its term and vote); images
// of n2's disk are taken at random operations, more often at the stable
// store's. Then, for images spread over the run, n2 is "power-cut": its
// directory replaced by the image (each time another Loss), and:
//   - the store opened alone recovers (every entry of its log readable, the
//     stable store's term at least the last entry's and its vote term at
//     most its term: old or new values, in the order raft wrote them) or
//     refuses with an error wrapping aof.ErrCorrupt or ErrStableMissing that
//     says to wipe the node; then the node is wiped and rejoins as that
//     error says (RemoveServer, an empty directory, AddVoter);
//   - the two others go on meanwhile;
//   - n2 restarted catches up: every node's state machine holds exactly the
//     acknowledged commands, in order, and the logs agree.
func TestPowerLossOfOneNode(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	seed := rng.Uint64()
	t.Logf("seed %d", seed)
	var (
		pfs    *vfstest.PowerFS
		root   string
		mu     sync.Mutex // guards images (the hook runs on raft's goroutines)
		images []powerImage
		acked  atomic.Uint64
	)
	hookRng := rand.New(rand.NewPCG(seed, 3))
	c := newClusterWith(t, func(n *node) {
		if n.id != "n2" {
			return
		}
		root = filepath.Join(n.dir, "store")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if pfs, err = vfstest.NewPowerFS(nil, root); err != nil {
			t.Fatal(err)
		}
		pfs.SetOpHook(func(op int, kind, path string, snapshot func() *vfstest.PowerImage) {
			odds := 10
			if strings.Contains(path, StableFile) {
				odds = 2
			}
			if hookRng.IntN(odds) != 0 {
				return
			}
			img := snapshot()
			mu.Lock()
			images = append(images, powerImage{op: op, what: kind + " " + path, img: img, durable: acked.Load()})
			mu.Unlock()
		})
		n.fs = pfs
		n.logs = func(s *Store) raft.LogStore { return ackedLogs{s, &acked} }
	})
	n2 := c.nodes[2]

	// Commands, and leader changes: every node stopped and restarted once,
	// so n2 votes in new terms (its stable store) and, once, leads.
	c.apply(20)
	for _, n := range c.nodes {
		n.stop(t)
		c.apply(10)
		n.start(t)
		c.apply(5)
	}
	c.check("before the power cut")
	n2.stop(t)
	pfs.SetOpHook(nil)
	mu.Lock()
	all := slices.Clone(images)
	mu.Unlock()
	if len(all) == 0 {
		t.Fatal("no image taken")
	}
	stableImages := 0
	for _, im := range all {
		if strings.Contains(im.what, StableFile) {
			stableImages++
		}
	}

	// Images spread over the run, the stable store's among them.
	const cuts = 12
	var picked []powerImage
	for i := range cuts {
		picked = append(picked, all[i*len(all)/cuts])
	}
	for _, im := range all {
		if strings.Contains(im.what, StableFile) {
			picked = append(picked, im)
			break
		}
	}
	recovered, refused := 0, 0
	for i, im := range picked {
		loss := vfstest.Losses()[i%len(vfstest.Losses())]
		phase := fmt.Sprintf("image at op %d (%s, entries up to %d durable), %v", im.op, im.what, im.durable, loss)
		desc, err := im.img.Write(resetDir(t, root), loss, rand.New(rand.NewPCG(seed, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkImageStore(root, c.leader(), im.durable); err != nil {
			if !(errors.Is(err, aof.ErrCorrupt) || errors.Is(err, ErrStableMissing)) || !strings.Contains(err.Error(), "wipe the node and let it rejoin") {
				t.Fatalf("%s (%s): %v", phase, desc, err)
			}
			t.Logf("%s: refused: %v", phase, err)
			refused++
			c.wipeAndRejoin(n2)
		} else {
			t.Logf("%s: recovered", phase)
			recovered++
		}
		// The two others go on without n2.
		c.apply(5)
		n2.fs = nil
		n2.start(t)
		c.apply(5)
		c.check(phase)
		n2.stop(t)
	}

	// A damaged stable store (a flipped byte: a media error, not a power
	// cut) refuses to open, with the advice; the advice works.
	if _, err := all[len(all)-1].img.Write(resetDir(t, root), vfstest.KeepAll, rand.New(rand.NewPCG(seed, 99))); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, StableFile))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(filepath.Join(root, StableFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkImageStore(root, c.leader(), 0); !errors.Is(err, aof.ErrCorrupt) || !strings.Contains(err.Error(), "wipe the node and let it rejoin") {
		t.Fatalf("a damaged stable store: %v", err)
	}
	c.wipeAndRejoin(n2)
	n2.start(t)
	c.apply(5)
	c.check("end: n2 wiped and rejoined")
	t.Logf("power loss: %d images taken (%d at the stable store), %d cut: %d recovered, %d refused; %d commands acked, none lost",
		len(all), stableImages, len(picked), recovered, refused, len(c.acked))
}

// checkImageStore opens the store in dir alone and checks what it holds
// after a power cut: the error of Open if it refuses; otherwise that its
// log holds every entry up to durable (whose StoreLogs had returned) and
// every entry of it is readable, with terms no higher than the stable
// store's CurrentTerm, and that the stable store's LastVoteTerm is at
// most its CurrentTerm and its CurrentTerm at most the leader's.
func checkImageStore(dir string, lead *node, durable uint64) error {
	s, err := Open(dir, testConfig())
	if err != nil {
		return err
	}
	defer s.Close()
	term, _ := s.GetUint64([]byte("CurrentTerm"))
	voteTerm, _ := s.GetUint64([]byte("LastVoteTerm"))
	if voteTerm > term {
		return fmt.Errorf("recovered LastVoteTerm %d above CurrentTerm %d", voteTerm, term)
	}
	if now := lead.raft.CurrentTerm(); term > now {
		return fmt.Errorf("recovered CurrentTerm %d above the cluster's %d", term, now)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if last < durable {
		return fmt.Errorf("the recovered log ends at %d; StoreLogs had returned for entries up to %d", last, durable)
	}
	for i := first; i <= last && first > 0; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			return fmt.Errorf("recovered entry %d of [%d, %d]: %w", i, first, last, err)
		}
		if l.Term > term {
			return fmt.Errorf("recovered entry %d has term %d, the stable store's CurrentTerm is %d", i, l.Term, term)
		}
	}
	return nil
}

// wipeAndRejoin does what a store's corruption error says: the node leaves
// the configuration, its directory is emptied, and it is added back (it
// starts empty and gets everything from the leader).
func (c *cluster) wipeAndRejoin(n *node) {
	c.t.Helper()
	lead := c.leader()
	if err := lead.raft.RemoveServer(raft.ServerID(n.id), 0, 10*time.Second).Error(); err != nil {
		c.t.Fatal(err)
	}
	for _, d := range []string{"store", "snaps"} {
		if err := os.RemoveAll(filepath.Join(n.dir, d)); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := lead.raft.AddVoter(raft.ServerID(n.id), raft.ServerAddress(n.addr), 0, 10*time.Second).Error(); err != nil {
		c.t.Fatal(err)
	}
}

// failingLogs is raft's log store on a node whose disk fails: it counts
// the StoreLogs calls that returned an error.
type failingLogs struct {
	*Store
	failed *atomic.Int64
}

func (f failingLogs) StoreLogs(logs []*raft.Log) error {
	err := f.Store.StoreLogs(logs)
	if err != nil {
		f.failed.Add(1)
	}
	return err
}

func (f failingLogs) StoreLog(l *raft.Log) error { return f.StoreLogs([]*raft.Log{l}) }

// A fail-stopped node: n2's disk starts failing every sync of its log with
// EIO. Its StoreLogs fails (the log fail-stops: aof.ErrFailed), so raft on
// n2 applies nothing more; the two others go on. Closed and reopened on a
// healthy disk, n2 recovers its log and catches up.
func TestFailStoppedNode(t *testing.T) {
	ffs := vfstest.NewFaultFS(nil)
	var failed atomic.Int64
	c := newClusterWith(t, func(n *node) {
		if n.id == "n2" {
			n.fs = ffs
			n.logs = func(s *Store) raft.LogStore { return failingLogs{s, &failed} }
		}
	})
	n2 := c.nodes[2]
	c.apply(20)
	c.check("before the fault")
	if c.leader() == n2 {
		if err := n2.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatal(err)
		}
		c.waitFor("another leader", func() bool { return c.leader() != n2 })
	}
	logDir := filepath.Join(n2.store.Dir(), LogDir)
	ffs.SetFault(func(op vfstest.Op) error {
		if op.Kind == vfstest.OpSync && strings.HasPrefix(op.Path, logDir) {
			return syscall.EIO
		}
		return nil
	})
	before := len(c.acked)
	c.apply(20) // two of three
	c.waitFor("n2's StoreLogs failing", func() bool { return failed.Load() > 0 })
	lead := c.leader()
	if err := lead.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes[:2] {
		c.waitFor(n.id+" applies every command", func() bool { return slices.Equal(n.fsm.list(), c.acked) })
	}
	for _, cmd := range n2.fsm.list() {
		if slices.Contains(c.acked[before:], cmd) {
			t.Fatalf("the fail-stopped n2 applied %s, acknowledged after its disk failed", cmd)
		}
	}
	if _, err := n2.store.Log().Append(t.Context(), []byte("x")); !errors.Is(err, aof.ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("n2's log after a failed sync: %v, want aof.ErrFailed and EIO", err)
	}

	// Stopped (its Close reports the failure) and reopened on a healthy
	// disk: it recovers and catches up.
	if err := n2.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	n2.trans.Close()
	if err := n2.store.Close(); !errors.Is(err, aof.ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("n2's Close: %v, want aof.ErrFailed and EIO", err)
	}
	n2.raft = nil
	ffs.SetFault(nil)
	n2.fs, n2.logs = nil, nil
	n2.start(t)
	c.apply(10)
	c.check("n2 reopened on a healthy disk")
	t.Logf("fail-stop: %d StoreLogs calls of n2 failed; %d commands acked, none lost", failed.Load(), len(c.acked))
}

// resetDir empties dir (creating it) and returns it.
func resetDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
