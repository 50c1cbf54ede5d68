package hashiraft

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// crashNodeEnv, when set, makes the test binary a raft node of
// TestKill9Cluster instead of running tests: its value is the node's
// crashNodeSpec as JSON.
const crashNodeEnv = "HASHIRAFT_CRASH_NODE"

// crashCyclesEnv sets how many kill -9 cycles TestKill9Cluster runs
// (default 10; HASHIRAFT_CRASH_CYCLES=1000 is the long run).
const crashCyclesEnv = "HASHIRAFT_CRASH_CYCLES"

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashNodeEnv); spec != "" {
		if err := runCrashNode(spec); err != nil {
			fmt.Fprintln(os.Stderr, "crash node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashNodeSpec is what a child node is told by its parent.
type crashNodeSpec struct {
	ID, Dir, RaftAddr, HTTPAddr string
	// Bootstrap, on the first start of one node, is the cluster's
	// configuration to bootstrap.
	Bootstrap []raft.Server
}

// dedupFSM is the crash test's state machine: the command ids applied, in
// order, each at most once. A client retries a command whose outcome it
// does not know, so the same id may be committed twice; the FSM skips the
// second (and counts it). sums[i] is a hash of cmds[:i+1], so that two
// nodes' orders compare without sending the lists.
type dedupFSM struct {
	mu      sync.Mutex
	cmds    []string
	sums    []uint64
	seen    map[string]bool
	skipped int
}

// add appends id to the list; the caller holds mu.
func (f *dedupFSM) add(id string) {
	h := fnv.New64a()
	var prev [8]byte
	if n := len(f.sums); n > 0 {
		binary.LittleEndian.PutUint64(prev[:], f.sums[n-1])
	}
	h.Write(prev[:])
	h.Write([]byte(id))
	f.seen[id] = true
	f.cmds = append(f.cmds, id)
	f.sums = append(f.sums, h.Sum64())
}

func (f *dedupFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := string(l.Data)
	if f.seen[id] {
		f.skipped++
		return nil
	}
	f.add(id)
	return nil
}

func (f *dedupFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(slices.Clone(f.cmds)), nil
}

func (f *dedupFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds []string
	if err := json.NewDecoder(rc).Decode(&cmds); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds, f.sums, f.seen = nil, nil, make(map[string]bool, len(cmds))
	for _, c := range cmds {
		f.add(c)
	}
	return nil
}

// crashNodeState is what a child node's GET /state answers.
type crashNodeState struct {
	State   string
	Len     int // ids applied
	Skipped int // retried ids skipped
}

// runCrashNode runs one raft node of TestKill9Cluster until it is killed:
// hashiraft.Store as its log and stable store, file snapshots, raft's TCP
// transport, and an HTTP server on spec.HTTPAddr:
//
//	POST /apply?id=X  applies X through this node if it is the leader:
//	                  200 once the leader's future returned nil, 421 if
//	                  the node is not the leader, 503 with the error else
//	POST /barrier     a raft Barrier (leader only)
//	GET  /state       crashNodeState as JSON
//	GET  /sum?n=K     the hash of the first K ids applied (404 if fewer)
//	GET  /cmds        the ids applied, in order, as JSON
func runCrashNode(specJSON string) error {
	var spec crashNodeSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return err
	}
	store, err := Open(filepath.Join(spec.Dir, "store"), testConfig())
	if err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(spec.Dir, "snaps"), 2, os.Stderr)
	if err != nil {
		return err
	}
	var trans *raft.NetworkTransport
	for range 100 { // the port may be held a moment after the kill
		if trans, err = raft.NewTCPTransport(spec.RaftAddr, nil, 3, 2*time.Second, os.Stderr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(spec.ID)
	c.HeartbeatTimeout = 400 * time.Millisecond
	c.ElectionTimeout = 400 * time.Millisecond
	c.LeaderLeaseTimeout = 200 * time.Millisecond
	c.CommitTimeout = 10 * time.Millisecond
	c.SnapshotThreshold = 256 // snapshots and compaction during the run
	c.SnapshotInterval = 500 * time.Millisecond
	c.TrailingLogs = 64
	// Not RestoreCommittedLogs: raft v1.8.0's NewRaft then skips the
	// configuration entries among the replayed committed entries when it
	// rebuilds the configuration, and a node whose bootstrap
	// configuration is not yet in a snapshot restarts knowing no peers
	// (TestRaftRestoreCommittedLogsForgetsConfiguration).
	c.LogOutput = os.Stderr
	c.LogLevel = "INFO"
	fsm := &dedupFSM{seen: map[string]bool{}}
	r, err := raft.NewRaft(c, fsm, store, store, snaps, trans)
	if err != nil {
		return err
	}
	if spec.Bootstrap != nil {
		if err := r.BootstrapCluster(raft.Configuration{Servers: spec.Bootstrap}).Error(); err != nil {
			return err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apply", func(w http.ResponseWriter, req *http.Request) {
		if r.State() != raft.Leader {
			http.Error(w, "not the leader", http.StatusMisdirectedRequest)
			return
		}
		if err := r.Apply([]byte(req.URL.Query().Get("id")), 5*time.Second).Error(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("POST /barrier", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Barrier(5 * time.Second).Error(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, req *http.Request) {
		fsm.mu.Lock()
		st := crashNodeState{State: r.State().String(), Len: len(fsm.cmds), Skipped: fsm.skipped}
		fsm.mu.Unlock()
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /sum", func(w http.ResponseWriter, req *http.Request) {
		k, err := strconv.Atoi(req.URL.Query().Get("n"))
		fsm.mu.Lock()
		defer fsm.mu.Unlock()
		switch {
		case err != nil || k < 0 || k > len(fsm.sums):
			http.Error(w, "no such prefix", http.StatusNotFound)
		case k == 0:
			json.NewEncoder(w).Encode(uint64(0))
		default:
			json.NewEncoder(w).Encode(fsm.sums[k-1])
		}
	})
	mux.HandleFunc("GET /cmds", func(w http.ResponseWriter, req *http.Request) {
		fsm.mu.Lock()
		cmds := slices.Clone(fsm.cmds)
		fsm.mu.Unlock()
		json.NewEncoder(w).Encode(cmds)
	})
	return http.ListenAndServe(spec.HTTPAddr, mux) // until SIGKILL
}

// crashNode is the parent's handle on one child node.
type crashNode struct {
	spec   crashNodeSpec
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	logf   *os.File
}

// crashCluster is the parent's view of TestKill9Cluster's cluster and its
// clients' results.
type crashCluster struct {
	t     *testing.T
	nodes []*crashNode
	http  *http.Client

	mu      sync.Mutex
	acked   []string // ids whose Apply returned nil on the leader
	unknown int      // ids given up on, outcome unknown
}

func (c *crashCluster) start(n *crashNode) {
	c.t.Helper()
	spec, err := json.Marshal(n.spec)
	if err != nil {
		c.t.Fatal(err)
	}
	n.cmd = exec.Command(os.Args[0])
	n.cmd.Env = append(os.Environ(), crashNodeEnv+"="+string(spec))
	n.cmd.Stdout, n.cmd.Stderr = n.logf, n.logf
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	cmd, exited := n.cmd, make(chan struct{})
	n.exited = exited
	go func() {
		cmd.Wait() // "signal: killed", or why the node stopped
		close(exited)
	}()
	n.spec.Bootstrap = nil // only the first start bootstraps
	c.waitFor(n.spec.ID+" serving", func() bool {
		select {
		case <-exited:
			c.dumpLogs()
			c.t.Fatalf("%s exited at start: %v", n.spec.ID, cmd.ProcessState)
		default:
		}
		_, err := c.state(n)
		return err == nil
	})
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *crashCluster) kill(n *crashNode) {
	c.t.Helper()
	select {
	case <-n.exited:
		c.dumpLogs()
		c.t.Fatalf("%s had exited: %v", n.spec.ID, n.cmd.ProcessState)
	default:
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-n.exited
	n.cmd = nil
}

func (c *crashCluster) state(n *crashNode) (crashNodeState, error) {
	var st crashNodeState
	return st, c.get(n, "/state", &st)
}

// get decodes the JSON answer of GET path from n into v.
func (c *crashCluster) get(n *crashNode, path string, v any) error {
	resp, err := c.http.Get("http://" + n.spec.HTTPAddr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: GET %s: %s", n.spec.ID, path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *crashCluster) post(n *crashNode, path string) (int, error) {
	resp, err := c.http.Post("http://"+n.spec.HTTPAddr+path, "text/plain", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a liveness bound on a shared machine, not a timing assertion).
func (c *crashCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.dumpLogs()
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dumpLogs prints the end of every node's log, for a failure.
func (c *crashCluster) dumpLogs() {
	for _, n := range c.nodes {
		b, _ := os.ReadFile(n.logf.Name())
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		c.t.Logf("--- %s's log (end) ---\n%s", n.spec.ID, b)
	}
}

// client applies fresh ids until stop is closed. Each id is sent to the
// node believed to lead and, on any failure, again (the same id) to the
// next node, until one acknowledges it or 20 s pass (the outcome is then
// unknown: the id may or may not be applied, and the check does not
// require it).
func (c *crashCluster) client(k int, stop <-chan struct{}) {
	target := 0
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("k%d-%06d", k, seq)
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, err := c.post(c.nodes[target], "/apply?id="+url.QueryEscape(id))
			if err == nil && code == http.StatusOK {
				c.mu.Lock()
				c.acked = append(c.acked, id)
				c.mu.Unlock()
				break
			}
			if time.Now().After(deadline) {
				c.mu.Lock()
				c.unknown++
				c.mu.Unlock()
				break
			}
			target = (target + 1) % len(c.nodes)
			if err != nil || code != http.StatusMisdirectedRequest {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

func (c *crashCluster) ackedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acked)
}

// leader returns the node that says it leads.
func (c *crashCluster) leader() *crashNode {
	c.t.Helper()
	var lead *crashNode
	c.waitFor("a leader", func() bool {
		for _, n := range c.nodes {
			if n.cmd == nil {
				continue
			}
			if st, err := c.state(n); err == nil && st.State == raft.Leader.String() {
				lead = n
				return true
			}
		}
		return false
	})
	return lead
}

// ordersAgree checks that the running nodes' state machines applied the
// same ids in the same order, some further along: for each pair, the
// hashes of their common prefix are equal. (A node's list only grows while
// it runs, so the prefix read after its length is the same one.)
func (c *crashCluster) ordersAgree(phase string) {
	c.t.Helper()
	var running []*crashNode
	lens := map[*crashNode]int{}
	for _, n := range c.nodes {
		if n.cmd == nil {
			continue
		}
		st, err := c.state(n)
		if err != nil {
			c.t.Fatalf("%s: %v", phase, err)
		}
		running = append(running, n)
		lens[n] = st.Len
	}
	for i, a := range running {
		for _, b := range running[i+1:] {
			m := min(lens[a], lens[b])
			var sa, sb uint64
			if err := c.get(a, fmt.Sprintf("/sum?n=%d", m), &sa); err != nil {
				c.t.Fatalf("%s: %v", phase, err)
			}
			if err := c.get(b, fmt.Sprintf("/sum?n=%d", m), &sb); err != nil {
				c.t.Fatalf("%s: %v", phase, err)
			}
			if sa != sb {
				c.dumpLogs()
				c.t.Fatalf("%s: %s and %s applied different commands among their first %d", phase, a.spec.ID, b.spec.ID, m)
			}
		}
	}
}

// kill -9 of a real raft cluster: three child processes (this test binary
// re-executed), hashiraft as each node's log and stable store, raft's TCP
// transport and file snapshots on 127.0.0.1. Clients apply unique ids
// through the leader while the parent SIGKILLs a random node (half the
// time the leader) and restarts it on the same directory and port. After
// each restart the cluster must make progress and the nodes' state
// machines agree on order; at the end every id whose Apply returned nil on
// the leader is in every node's state machine exactly once, in the same
// order everywhere. HASHIRAFT_CRASH_CYCLES sets the number of cycles
// (default 10).
func TestKill9Cluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	cycles := 10
	if v := os.Getenv(crashCyclesEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashCyclesEnv, v)
		}
		cycles = n
	}
	c := &crashCluster{t: t, http: &http.Client{Timeout: 15 * time.Second}}
	var servers []raft.Server
	for i := range 3 {
		dir := t.TempDir()
		logf, err := os.Create(filepath.Join(dir, "node.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logf.Close() })
		n := &crashNode{spec: crashNodeSpec{ID: fmt.Sprintf("n%d", i), Dir: dir, RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t)}, logf: logf}
		c.nodes = append(c.nodes, n)
		servers = append(servers, raft.Server{ID: raft.ServerID(n.spec.ID), Address: raft.ServerAddress(n.spec.RaftAddr)})
	}
	c.nodes[0].spec.Bootstrap = servers
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.cmd != nil {
				c.kill(n)
			}
		}
	})
	for _, n := range c.nodes {
		c.start(n)
	}

	stop := make(chan struct{})
	var clients sync.WaitGroup
	for k := range 3 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			c.client(k, stop)
		}()
	}
	stopClients := sync.OnceFunc(func() {
		close(stop)
		clients.Wait()
	})
	defer stopClients()
	c.waitFor("the first commands", func() bool { return c.ackedCount() >= 20 })

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	leaderKills := 0
	for cycle := range cycles {
		victim := c.nodes[rng.IntN(len(c.nodes))]
		if rng.IntN(2) == 0 {
			victim = c.leader()
		}
		if st, err := c.state(victim); err == nil && st.State == raft.Leader.String() {
			leaderKills++
		}
		before := c.ackedCount()
		c.kill(victim)
		// The two others go on while it is down.
		c.waitFor(fmt.Sprintf("cycle %d: progress with %s down", cycle, victim.spec.ID), func() bool {
			return c.ackedCount() >= before+5
		})
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		c.start(victim)
		after := c.ackedCount()
		c.waitFor(fmt.Sprintf("cycle %d: progress after restarting %s", cycle, victim.spec.ID), func() bool {
			return c.ackedCount() >= after+10
		})
		c.ordersAgree(fmt.Sprintf("cycle %d", cycle))
	}
	stopClients()

	// Every node catches up: a barrier on the leader, then every state
	// machine holds every acknowledged id, once, in the same order.
	c.waitFor("a barrier on the leader", func() bool {
		code, err := c.post(c.leader(), "/barrier")
		return err == nil && code == http.StatusOK
	})
	acked := c.acked
	var final []string // everything committed, applied on the leader
	if err := c.get(c.leader(), "/cmds", &final); err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, n := range c.nodes {
		var st crashNodeState
		c.waitFor(n.spec.ID+" catching up", func() bool {
			var err error
			st, err = c.state(n)
			return err == nil && st.Len >= len(final)
		})
		skipped += st.Skipped
	}
	c.ordersAgree("end")
	lost, dup := 0, 0
	for _, n := range c.nodes {
		var cmds []string
		if err := c.get(n, "/cmds", &cmds); err != nil {
			t.Fatal(err)
		}
		count := make(map[string]int, len(cmds))
		for _, id := range cmds {
			count[id]++
		}
		for _, id := range acked {
			switch count[id] {
			case 0:
				lost++
				t.Errorf("%s lost the acknowledged command %s", n.spec.ID, id)
			case 1:
			default:
				dup++
				t.Errorf("%s applied %s %d times", n.spec.ID, id, count[id])
			}
		}
		if !slices.Equal(cmds, final) {
			t.Errorf("%s's state machine differs from the leader's", n.spec.ID)
		}
	}
	t.Logf("kill -9: %d cycles (%d of the leader), %d commands acked, %d of unknown outcome, lost %d, duplicated %d (%d retried entries skipped by the state machines)",
		cycles, leaderKills, len(acked), c.unknown, lost, dup, skipped)
	if t.Failed() {
		c.dumpLogs()
	}
}
