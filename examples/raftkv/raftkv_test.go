package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/aof2/aof2/hashiraft"
	aofotel "github.com/aof2/aof2/otel"
)

// childEnv, set, makes the test binary run raftkv's main with its
// arguments: the test's nodes are child processes, as `go run .` starts
// them.
const childEnv = "RAFTKV_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// receiver is an in-process OTLP/gRPC receiver keeping what the nodes
// export.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu      sync.Mutex
	spans   []*tracepb.ResourceSpans
	metrics []*metricpb.ResourceMetrics
}

func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, req.GetResourceSpans()...)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	r *receiver
}

func (m metricsService) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	m.r.metrics = append(m.r.metrics, req.GetResourceMetrics()...)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

func startReceiver(t *testing.T) (*receiver, string) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	colmetricpb.RegisterMetricsServiceServer(srv, metricsService{r: r})
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return r, "http://" + lis.Addr().String()
}

// span is a received span with its node's service.name.
type span struct {
	service string
	*tracepb.Span
}

func (r *receiver) allSpans() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, rs := range r.spans {
		svc := attr(rs.GetResource().GetAttributes(), "service.name").GetStringValue()
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				out = append(out, span{svc, s})
			}
		}
	}
	return out
}

// counter returns the last value of a sum metric per service.
func (r *receiver) counter(name string) map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for _, rm := range r.metrics {
		svc := attr(rm.GetResource().GetAttributes(), "service.name").GetStringValue()
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() != name {
					continue
				}
				var v int64
				for _, dp := range m.GetSum().GetDataPoints() {
					v += dp.GetAsInt()
				}
				out[svc] = v
			}
		}
	}
	return out
}

func attr(kvs []*commonpb.KeyValue, key string) *commonpb.AnyValue {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return nil
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testNode is one child process of the test's cluster.
type testNode struct {
	peer
	cmd    *exec.Cmd
	exited chan error
}

type testCluster struct {
	t        *testing.T
	dir      string
	endpoint string
	nodes    []*testNode
	client   *http.Client
}

func (c *testCluster) start(n *testNode) {
	c.t.Helper()
	var peers []peer
	for _, m := range c.nodes {
		peers = append(peers, m.peer)
	}
	// A snapshot only when the test asks (POST /snapshot); 4 entries
	// kept after it, so a follower that missed more needs the snapshot.
	cmd := exec.Command(os.Args[0], "-node", n.ID, "-cluster", formatCluster(peers), "-dir", c.dir,
		"-snapshot-threshold", "1000000", "-trailing-logs", "4", "-log-level", "ERROR")
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+c.endpoint, "OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_SERVICE_NAME=", "OTEL_TRACES_SAMPLER=parentbased_always_on",
		"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_METRIC_EXPORT_INTERVAL=500")
	cmd.Stdout = &prefixWriter{t: c.t, id: n.ID}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	n.cmd, n.exited = cmd, make(chan error, 1)
	go func() { n.exited <- cmd.Wait() }()
}

// prefixWriter logs a node's output through t.Log.
type prefixWriter struct {
	t  *testing.T
	id string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Logf("[%s] %s", w.id, line)
	}
	return len(p), nil
}

func (c *testCluster) kill(n *testNode) {
	c.t.Helper()
	n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// stop ends a node with SIGTERM and checks it shut down cleanly.
func (c *testCluster) stop(n *testNode) {
	c.t.Helper()
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.exited:
		if err != nil {
			c.t.Errorf("node %s: clean shutdown failed: %v", n.ID, err)
		}
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
		c.t.Errorf("node %s did not stop within 20 s of SIGTERM", n.ID)
	}
	n.cmd = nil
}

// waitFor polls cond until it holds (30 s at most: a bound on failure, not
// a timing assertion).
func (c *testCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *testCluster) status(n *testNode) (nodeStatus, bool) {
	var s nodeStatus
	resp, err := c.client.Get("http://" + n.HTTP + "/status")
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s) == nil
}

// leader waits until every running node names the same leader, and
// returns it.
func (c *testCluster) leader() *testNode {
	c.t.Helper()
	var leader *testNode
	c.waitFor("a leader every running node agrees on", func() bool {
		leader = nil
		var name string
		for _, n := range c.nodes {
			if n.cmd == nil {
				continue
			}
			s, ok := c.status(n)
			if !ok || s.Leader == "" || (name != "" && s.Leader != name) {
				return false
			}
			name = s.Leader
			if s.State == "Leader" && s.ID == name {
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

func (c *testCluster) followers(leader *testNode) []*testNode {
	var f []*testNode
	for _, n := range c.nodes {
		if n != leader {
			f = append(f, n)
		}
	}
	return f
}

// put PUTs key=value through n and returns the PUT's trace ID.
func (c *testCluster) put(n *testNode, key, value string) string {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+n.HTTP+"/kv/"+key, strings.NewReader(value))
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("PUT %s via %s: %v", key, n.ID, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("PUT %s via %s: %s: %s", key, n.ID, resp.Status, body)
	}
	return resp.Header.Get("X-Trace-Id")
}

// get GETs key from n: its value, or ok false if n does not have it (yet).
func (c *testCluster) get(n *testNode, key string) (string, bool) {
	resp, err := c.client.Get("http://" + n.HTTP + "/kv/" + key)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err == nil && resp.StatusCode == http.StatusOK
}

func (c *testCluster) eventually(n *testNode, key, want string) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%s to hold %s=%s", n.ID, key, want), func() bool {
		v, ok := c.get(n, key)
		return ok && v == want
	})
}

// TestRaftKV runs the example as a user would: three nodes, each its own
// process exporting OTLP (here to an in-process receiver). A PUT through a
// follower is forwarded to the leader; the leader reads its own write at
// once, the followers eventually; the PUT's trace holds every node's
// durable append of the entry, each linked from that node's aof.flush. A
// follower killed with SIGKILL misses writes and a snapshot compacts them
// away; restarted on its directory it catches up through the snapshot.
func TestRaftKV(t *testing.T) {
	rec, endpoint := startReceiver(t)
	c := &testCluster{t: t, dir: t.TempDir(), endpoint: endpoint, client: &http.Client{Timeout: 15 * time.Second}}
	for i := range 3 {
		c.nodes = append(c.nodes, &testNode{peer: peer{ID: fmt.Sprintf("n%d", i+1), Raft: freePort(t), HTTP: freePort(t)}})
	}
	for _, n := range c.nodes {
		c.start(n)
	}
	defer func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
	}()

	leader := c.leader()
	via := c.followers(leader)[0]
	traceID := c.put(via, "greeting", "hello")
	if v, ok := c.get(leader, "greeting"); !ok || v != "hello" {
		t.Fatalf("leader %s right after the PUT: %q, %v; want hello (read your write)", leader.ID, v, ok)
	}
	for _, n := range c.nodes {
		c.eventually(n, "greeting", "hello")
	}
	checkTrace(t, c, rec, traceID, leader, via)

	// A follower down: writes go on with two of three, a snapshot
	// compacts the log past what it has.
	down := c.followers(leader)[1]
	c.kill(down)
	for i := range 20 {
		c.put(leader, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d", i))
	}
	resp, err := c.client.Post("http://"+leader.HTTP+"/snapshot", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("snapshot: %s", resp.Status)
	}
	c.start(down)
	c.eventually(down, "k19", "v19")
	for i := range 20 {
		if v, ok := c.get(down, fmt.Sprintf("k%02d", i)); !ok || v != fmt.Sprintf("v%02d", i) {
			t.Errorf("restarted %s: k%02d = %q, %v", down.ID, i, v, ok)
		}
	}
	if s, _ := c.status(down); s.LastSnapshotIndex == 0 {
		t.Errorf("restarted %s caught up without installing the leader's snapshot: %+v", down.ID, s)
	}
	// And it takes part again: a write through it reaches everyone.
	c.put(down, "after", "restart")
	for _, n := range c.nodes {
		c.eventually(n, "after", "restart")
	}
	// Each node's hashiraft store exported its metrics.
	c.waitFor("hashiraft entries-written metrics from all three nodes", func() bool {
		w := rec.counter("hashiraft.entries.written")
		return w["raftkv-n1"] > 0 && w["raftkv-n2"] > 0 && w["raftkv-n3"] > 0
	})
}

// checkTrace checks that the PUT's trace (started on via, forwarded to
// leader) reached the receiver whole: on every node a hashiraft.store_logs
// span child of the leader's PUT span, an aof.append child of it, an
// aof.flush (in the flush's own trace) linking that append, and the
// node's raftkv.apply.
func checkTrace(t *testing.T, c *testCluster, rec *receiver, traceID string, leader, via *testNode) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := traceMissing(rec.allSpans(), traceID, leader, via)
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s after 30 s: %s", traceID, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// traceMissing returns what the trace lacks, "" if it is whole.
func traceMissing(spans []span, traceID string, leader, via *testNode) string {
	var inTrace []span
	for _, s := range spans {
		if hex.EncodeToString(s.GetTraceId()) == traceID {
			inTrace = append(inTrace, s)
		}
	}
	find := func(service, name string, parent func(span) bool) (span, bool) {
		for _, s := range inTrace {
			if s.service == service && s.GetName() == name && parent(s) {
				return s, true
			}
		}
		return span{}, false
	}
	childOf := func(p span) func(span) bool {
		return func(s span) bool { return string(s.GetParentSpanId()) == string(p.GetSpanId()) }
	}
	root, ok := find("raftkv-"+via.ID, "PUT /kv/{key}", func(s span) bool { return len(s.GetParentSpanId()) == 0 })
	if !ok {
		return "no root PUT span on " + via.ID
	}
	fwd, ok := find("raftkv-"+via.ID, "raftkv.forward", childOf(root))
	if !ok {
		return "no raftkv.forward span on " + via.ID
	}
	put, ok := find("raftkv-"+leader.ID, "PUT /kv/{key}", childOf(fwd))
	if !ok {
		return "no PUT span on the leader " + leader.ID + " under the forward"
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		svc := "raftkv-" + id
		store, ok := find(svc, hashiraft.SpanStoreLogs, childOf(put))
		if !ok {
			return "no " + hashiraft.SpanStoreLogs + " span on " + id + " under the leader's PUT"
		}
		app, ok := find(svc, aofotel.SpanAppend, childOf(store))
		if !ok {
			return "no " + aofotel.SpanAppend + " span on " + id + " under its store_logs"
		}
		if _, ok := find(svc, "raftkv.apply", childOf(put)); !ok {
			return "no raftkv.apply span on " + id
		}
		var linked bool
		for _, s := range spans {
			if s.service != svc || s.GetName() != aofotel.SpanFlush {
				continue
			}
			for _, l := range s.GetLinks() {
				linked = linked || (string(l.GetTraceId()) == string(app.GetTraceId()) && string(l.GetSpanId()) == string(app.GetSpanId()))
			}
		}
		if !linked {
			return "no " + aofotel.SpanFlush + " span on " + id + " links its append of the PUT's entry"
		}
	}
	return ""
}
