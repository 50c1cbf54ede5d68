// Command raftkv is a small replicated key-value service: three
// hashicorp/raft nodes on 127.0.0.1 whose log and stable store is aof2
// (hashiraft), each serving PUT and GET /kv/{key} over HTTP, and exporting
// traces and metrics with otelsetup (OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
// is set, JSON lines otherwise).
//
//	go run .                 # the 3 nodes, each a child process
//	curl -X PUT --data-binary hello http://127.0.0.1:8001/kv/greeting
//	curl http://127.0.0.1:8002/kv/greeting
//
// With -node ID it runs one node of the cluster (what the parent starts
// three times). With -trace TRACEID it prints that trace from Jaeger's
// query API as a span tree, each node's aof.flush under the append it made
// durable.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run parses args and runs either one node (-node) or the supervisor of
// the whole cluster.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("raftkv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		nodeID    = fs.String("node", "", "run only this node of -cluster (the parent runs every node with it)")
		cluster   = fs.String("cluster", "", "the members, ID=RAFTADDR/HTTPADDR,... (default: -nodes members on -host, raft ports from -raft-port, HTTP ports from -http-port)")
		nodes     = fs.Int("nodes", 3, "how many nodes the parent starts")
		host      = fs.String("host", "127.0.0.1", "the address every node listens on")
		raftPort  = fs.Int("raft-port", 7001, "the first node's raft port (the next nodes count up)")
		httpPort  = fs.Int("http-port", 8001, "the first node's HTTP port (the next nodes count up)")
		dir       = fs.String("dir", "raftkv-data", "the data directory: each node uses DIR/ID")
		telemetry = fs.String("telemetry", "", "without an OTLP endpoint, write each node's traces and metrics as JSON lines to this file (default: the parent gives each node DIR/ID/telemetry.jsonl; a lone -node writes to stdout)")
		snapAt    = fs.Uint64("snapshot-threshold", 1024, "raft takes a snapshot once this many entries were added since the last")
		trailing  = fs.Uint64("trailing-logs", 1024, "entries raft keeps in the log after a snapshot")
		logLevel  = fs.String("log-level", "WARN", "raft's log level (TRACE, DEBUG, INFO, WARN, ERROR)")
		restart   = fs.Bool("restart", true, "the parent restarts a node that exits (after a kill -9, say) after a second")
		traceID   = fs.String("trace", "", "print this trace from Jaeger's query API (-jaeger) as a span tree, with the aof.flush spans that link it, and exit")
		jaeger    = fs.String("jaeger", "http://127.0.0.1:16686", "Jaeger's query API, for -trace")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *traceID != "" {
		return printTrace(ctx, os.Stdout, *jaeger, *traceID)
	}
	members := *cluster
	if members == "" {
		var peers []peer
		for i := range *nodes {
			peers = append(peers, peer{
				ID:   fmt.Sprintf("n%d", i+1),
				Raft: fmt.Sprintf("%s:%d", *host, *raftPort+i),
				HTTP: fmt.Sprintf("%s:%d", *host, *httpPort+i),
			})
		}
		members = formatCluster(peers)
	}
	peers, err := parseCluster(members)
	if err != nil {
		return err
	}
	if *nodeID == "" {
		return supervise(ctx, supervisorConfig{
			Peers: peers, Dir: *dir, Restart: *restart, Stderr: stderr,
			NodeArgs: []string{
				"-snapshot-threshold", fmt.Sprint(*snapAt), "-trailing-logs", fmt.Sprint(*trailing), "-log-level", *logLevel,
			},
		})
	}
	cfg := nodeConfig{
		ID: *nodeID, Dir: filepath.Join(*dir, *nodeID), Cluster: peers,
		SnapshotThreshold: *snapAt, TrailingLogs: *trailing, RaftLog: stderr, LogLevel: *logLevel,
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("raftkv: %w", err)
	}
	if *telemetry != "" {
		f, err := os.OpenFile(*telemetry, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("raftkv: %w", err)
		}
		defer f.Close()
		cfg.Telemetry = f
	}
	return runNode(ctx, cfg)
}
