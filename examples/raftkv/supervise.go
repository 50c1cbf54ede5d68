package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aof2/aof2/otel/otelsetup"
)

// supervisorConfig is what the parent process runs.
type supervisorConfig struct {
	Peers    []peer
	Dir      string
	Restart  bool
	Stderr   io.Writer
	NodeArgs []string // passed to every node
}

// supervise runs every node as a child process of this executable (its
// own service.name, its own process to kill -9) until ctx is done, then
// stops them with SIGTERM; their output goes to Stderr, each line prefixed
// with the node's ID.
func supervise(ctx context.Context, cfg supervisorConfig) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("raftkv: %w", err)
	}
	var mu sync.Mutex // orders lines on Stderr
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(cfg.Stderr, format+"\n", a...)
	}
	otlp := otelsetup.OTLPConfigured()
	where := "OTLP to " + firstEnv("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if !otlp {
		where = "JSON lines in " + filepath.Join(cfg.Dir, "ID", "telemetry.jsonl")
	}
	say("raftkv: %d nodes, data in %s, telemetry: %s (service.name raftkv-ID)", len(cfg.Peers), cfg.Dir, where)
	for _, p := range cfg.Peers {
		say("  %s: http://%s  (raft %s)", p.ID, p.HTTP, p.Raft)
	}
	say("try: curl -X PUT --data-binary hello http://%s/kv/greeting; curl http://%s/kv/greeting; curl http://%s/status",
		cfg.Peers[0].HTTP, cfg.Peers[len(cfg.Peers)-1].HTTP, cfg.Peers[0].HTTP)

	// Each node gets its own service.name: a shared OTEL_SERVICE_NAME
	// would override it.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "OTEL_SERVICE_NAME=") })
	var wg sync.WaitGroup
	errs := make([]error, len(cfg.Peers))
	for i, p := range cfg.Peers {
		args := []string{"-node", p.ID, "-cluster", formatCluster(cfg.Peers), "-dir", cfg.Dir}
		if !otlp {
			if err := os.MkdirAll(filepath.Join(cfg.Dir, p.ID), 0o755); err != nil {
				return fmt.Errorf("raftkv: %w", err)
			}
			args = append(args, "-telemetry", filepath.Join(cfg.Dir, p.ID, "telemetry.jsonl"))
		}
		args = append(args, cfg.NodeArgs...)
		wg.Go(func() {
			for {
				err := runChild(ctx, exe, args, env, p.ID, say)
				if ctx.Err() != nil {
					errs[i] = err
					return
				}
				say("raftkv: node %s exited: %v", p.ID, err)
				if !cfg.Restart {
					errs[i] = err
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				say("raftkv: restarting node %s", p.ID)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runChild runs one node until it exits or ctx is done (then SIGTERM, and
// SIGKILL 15 s later).
func runChild(ctx context.Context, exe string, args, env []string, id string, say func(string, ...any)) error {
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("raftkv: start node %s: %w", id, err)
	}
	say("raftkv: node %s started, pid %d", id, cmd.Process.Pid)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			say("[%s] %s", id, sc.Text())
		}
	}()
	exited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
			}
		case <-exited:
		}
	}()
	<-copied // the pipe closes when the child exits
	err = cmd.Wait()
	close(exited)
	return err
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
