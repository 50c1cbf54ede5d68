package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	gootel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/aof2/aof2/hashiraft"
	"github.com/aof2/aof2/otel/otelsetup"
)

// peer is one member of the cluster: its raft ID and its two addresses.
type peer struct {
	ID, Raft, HTTP string
}

// parseCluster parses "n1=RAFTADDR/HTTPADDR,n2=...".
func parseCluster(s string) ([]peer, error) {
	var peers []peer
	for _, p := range strings.Split(s, ",") {
		id, addrs, ok := strings.Cut(p, "=")
		r, h, ok2 := strings.Cut(addrs, "/")
		if !ok || !ok2 || id == "" || r == "" || h == "" {
			return nil, fmt.Errorf("raftkv: bad cluster member %q: want ID=RAFTADDR/HTTPADDR", p)
		}
		peers = append(peers, peer{ID: id, Raft: r, HTTP: h})
	}
	return peers, nil
}

func formatCluster(peers []peer) string {
	var b strings.Builder
	for i, p := range peers {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%s/%s", p.ID, p.Raft, p.HTTP)
	}
	return b.String()
}

// nodeConfig is what one node runs with.
type nodeConfig struct {
	ID      string
	Dir     string
	Cluster []peer
	// Telemetry receives traces and metrics as JSON lines when no OTLP
	// endpoint is set (otelsetup's default is stdout).
	Telemetry io.Writer
	// SnapshotThreshold and TrailingLogs are raft's: a snapshot is taken
	// once this many entries were added since the last one, and that many
	// entries are kept in the log after it.
	SnapshotThreshold, TrailingLogs uint64
	// RaftLog receives raft's own log lines (level LogLevel).
	RaftLog  io.Writer
	LogLevel string
}

func (c nodeConfig) self() (peer, error) {
	for _, p := range c.Cluster {
		if p.ID == c.ID {
			return p, nil
		}
	}
	return peer{}, fmt.Errorf("raftkv: node %q is not in the cluster %s", c.ID, formatCluster(c.Cluster))
}

// node is one running member: raft on a hashiraft store, and the HTTP API.
type node struct {
	cfg    nodeConfig
	self   peer
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	raft   *raft.Raft
	fsm    *kvFSM
	client *http.Client
}

// runNode runs one node until ctx is done, then shuts it down: the HTTP
// server, raft, the store, and the telemetry (which exports what is left).
func runNode(ctx context.Context, cfg nodeConfig) (err error) {
	self, err := cfg.self()
	if err != nil {
		return err
	}
	if cfg.RaftLog == nil {
		cfg.RaftLog = os.Stderr
	}
	tel, err := otelsetup.Setup(ctx, otelsetup.Config{ServiceName: "raftkv-" + cfg.ID, Writer: cfg.Telemetry, MetricInterval: 5 * time.Second})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = errors.Join(err, tel.Shutdown(sctx))
	}()

	// The raft log and stable store: one aof log under dir/store, its
	// spans and metrics named after the node.
	store, err := hashiraft.OpenContext(ctx, filepath.Join(cfg.Dir, "store"), hashiraft.Config{
		Name: cfg.ID, TracerProvider: tel.Tracer, MeterProvider: tel.Meter,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(cfg.Dir, "snapshots"), 2, cfg.RaftLog)
	if err != nil {
		return fmt.Errorf("raftkv: snapshot store: %w", err)
	}
	var trans *raft.NetworkTransport
	for range 50 { // a restarted node's port may be held a moment longer
		if trans, err = raft.NewTCPTransport(self.Raft, nil, 3, 5*time.Second, cfg.RaftLog); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("raftkv: raft transport on %s: %w", self.Raft, err)
	}
	defer trans.Close()

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	// raft's default timeouts (heartbeat and election 1 s, leader lease
	// 500 ms, commit 50 ms): shorter ones fail over faster on 127.0.0.1 but
	// make a busy machine hold elections for nothing, and a shorter
	// CommitTimeout makes the leader send (and read the previous entry
	// for) an AppendEntries to each follower that much more often.
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.SnapshotInterval = 10 * time.Second
	rc.LogOutput = cfg.RaftLog
	rc.LogLevel = cfg.LogLevel

	n := &node{
		cfg: cfg, self: self,
		tracer: tel.Tracer.Tracer("github.com/aof2/aof2/examples/raftkv"),
		prop:   gootel.GetTextMapPropagator(),
		client: &http.Client{Timeout: 10 * time.Second},
	}
	n.fsm = newFSM(n.tracer)
	if n.raft, err = raft.NewRaft(rc, n.fsm, store, store, snaps, trans); err != nil {
		return fmt.Errorf("raftkv: raft: %w", err)
	}
	defer func() { err = errors.Join(err, n.raft.Shutdown().Error()) }()

	// Every node bootstraps the same configuration on its first start
	// (raft's documented way for a fixed cluster; a node with state skips
	// it).
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("raftkv: %w", err)
	}
	if !has {
		var servers []raft.Server
		for _, p := range cfg.Cluster {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Raft)})
		}
		if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("raftkv: bootstrap: %w", err)
		}
	}

	lis, err := net.Listen("tcp", self.HTTP)
	if err != nil {
		return fmt.Errorf("raftkv: http: %w", err)
	}
	srv := &http.Server{Handler: n.routes(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	fmt.Fprintf(cfg.RaftLog, "raftkv: node %s: HTTP on http://%s, raft on %s, data in %s\n", cfg.ID, self.HTTP, self.Raft, cfg.Dir)

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("raftkv: http: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func (n *node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", n.put)
	mux.HandleFunc("GET /kv/{key}", n.get)
	mux.HandleFunc("GET /status", n.status)
	mux.HandleFunc("POST /snapshot", n.snapshot)
	return mux
}

// forwardedHeader marks a PUT a follower forwarded to the leader, so that
// a node that is not the leader either does not forward it again.
const forwardedHeader = "X-Raftkv-Forwarded-By"

// put writes a key through raft. On the leader: the PUT's span context is
// injected into the entry's Extensions (hashiraft.Inject), so every node's
// durable append of the entry (hashiraft.store_logs, aof.append, linked
// from the aof.flush that made it durable) and its apply join the PUT's
// trace; the reply comes once the entry is committed and applied here. On
// a follower: the PUT is forwarded to the leader, under a client span.
func (n *node) put(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	ctx := n.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := n.tracer.Start(ctx, "PUT /kv/{key}", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "PUT"), attribute.String("http.route", "/kv/{key}"),
			attribute.String("raftkv.key", key), attribute.String("raftkv.node", n.cfg.ID)))
	defer span.End()
	w.Header().Set("X-Trace-Id", span.SpanContext().TraceID().String())
	w.Header().Set("X-Raft-Node", n.cfg.ID)
	fail := func(code int, err error) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attribute.Int("http.response.status_code", code))
		http.Error(w, err.Error(), code)
	}
	value, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	if len(value) > 1<<20 {
		fail(http.StatusRequestEntityTooLarge, errors.New("value larger than 1 MiB"))
		return
	}
	if n.raft.State() != raft.Leader {
		if by := r.Header.Get(forwardedHeader); by != "" {
			fail(http.StatusServiceUnavailable, fmt.Errorf("node %s is not the leader (forwarded by %s)", n.cfg.ID, by))
			return
		}
		n.forward(ctx, w, r, value)
		return
	}
	data, err := json.Marshal(command{Key: key, Value: string(value)})
	if err != nil {
		fail(http.StatusInternalServerError, err)
		return
	}
	entry := raft.Log{Data: data}
	hashiraft.Inject(ctx, &entry)
	f := n.raft.ApplyLog(entry, 10*time.Second)
	if err := f.Error(); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrEnqueueTimeout) {
			code = http.StatusServiceUnavailable // the client retries
		}
		fail(code, err)
		return
	}
	if err, ok := f.Response().(error); ok {
		fail(http.StatusInternalServerError, err)
		return
	}
	span.SetAttributes(attribute.Int64("raft.index", int64(f.Index())), attribute.Int("http.response.status_code", http.StatusOK))
	w.Header().Set("X-Raft-Index", strconv.FormatUint(f.Index(), 10))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"index": f.Index(), "node": n.cfg.ID, "trace_id": span.SpanContext().TraceID().String()})
}

// forward sends a PUT to the leader and copies its answer back.
func (n *node) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, value []byte) {
	_, id := n.raft.LeaderWithID()
	var leader string
	for _, p := range n.cfg.Cluster {
		if raft.ServerID(p.ID) == id {
			leader = p.HTTP
		}
	}
	if leader == "" {
		http.Error(w, fmt.Sprintf("node %s: no leader known", n.cfg.ID), http.StatusServiceUnavailable)
		return
	}
	ctx, span := n.tracer.Start(ctx, "raftkv.forward", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("raftkv.leader", string(id))))
	defer span.End()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+leader+r.URL.EscapedPath(), bytes.NewReader(value))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set(forwardedHeader, n.cfg.ID)
	n.prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := n.client.Do(req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		http.Error(w, fmt.Sprintf("node %s: forward to leader %s: %v", n.cfg.ID, id, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "X-Raft-Index"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("X-Raft-Leader", string(id))
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// get reads a key from this node's state machine: on the leader it holds
// every PUT the leader acknowledged; a follower may lag behind by the
// entries not yet applied there (X-Raft-Applied-Index says how far it is).
func (n *node) get(w http.ResponseWriter, r *http.Request) {
	v, ok, applied := n.fsm.get(r.PathValue("key"))
	w.Header().Set("X-Raft-Node", n.cfg.ID)
	w.Header().Set("X-Raft-State", n.raft.State().String())
	w.Header().Set("X-Raft-Applied-Index", strconv.FormatUint(applied, 10))
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	io.WriteString(w, v)
}

// nodeStatus is GET /status's answer.
type nodeStatus struct {
	ID                string `json:"id"`
	PID               int    `json:"pid"`
	State             string `json:"state"`
	Leader            string `json:"leader"`
	LastIndex         uint64 `json:"last_index"`
	AppliedIndex      uint64 `json:"applied_index"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
}

func (n *node) status(w http.ResponseWriter, _ *http.Request) {
	_, leader := n.raft.LeaderWithID()
	stats := n.raft.Stats()
	snap, _ := strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	_, _, applied := n.fsm.get("")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(nodeStatus{
		ID: n.cfg.ID, PID: os.Getpid(), State: n.raft.State().String(), Leader: string(leader),
		LastIndex: n.raft.LastIndex(), AppliedIndex: applied, LastSnapshotIndex: snap,
	})
}

// snapshot takes a raft snapshot now (raft compacts the log behind it,
// keeping TrailingLogs entries).
func (n *node) snapshot(w http.ResponseWriter, _ *http.Request) {
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	meta, rc, err := f.Open()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rc.Close()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": meta.ID, "index": meta.Index, "term": meta.Term})
}
