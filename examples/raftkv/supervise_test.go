package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the supervisor's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSupervisor runs the one command a user runs (no -node): it starts
// the three nodes as child processes, a PUT through one reaches all; a
// node killed with SIGKILL is restarted by the parent and catches up; the
// nodes write their telemetry as JSON lines to DIR/ID/telemetry.jsonl when
// no OTLP endpoint is set; and cancelling the parent stops every node
// cleanly.
func TestSupervisor(t *testing.T) {
	t.Setenv(childEnv, "1") // the children re-execute the test binary
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	dir := t.TempDir()
	c := &testCluster{t: t, client: &http.Client{Timeout: 15 * time.Second}}
	var members []string
	for i := range 3 {
		n := &testNode{peer: peer{ID: fmt.Sprintf("n%d", i+1), Raft: freePort(t), HTTP: freePort(t)}}
		c.nodes = append(c.nodes, n)
		members = append(members, fmt.Sprintf("%s=%s/%s", n.ID, n.Raft, n.HTTP))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dir", dir, "-cluster", strings.Join(members, ","), "-log-level", "ERROR"}, &out)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("supervisor output:\n%s", out.String())
		}
	}()
	var leader *testNode
	c.waitFor("a leader", func() bool {
		for _, n := range c.nodes {
			if s, ok := c.status(n); ok && s.State == "Leader" {
				leader = n
				return true
			}
		}
		return false
	})
	c.put(leader, "a", "1")
	for _, n := range c.nodes {
		c.eventually(n, "a", "1")
	}

	victim := c.followers(leader)[0]
	s, ok := c.status(victim)
	if !ok {
		t.Fatal("no status from", victim.ID)
	}
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.waitFor(victim.ID+" restarted by the parent", func() bool {
		s2, ok := c.status(victim)
		return ok && s2.PID != s.PID
	})
	c.put(leader, "b", "2")
	c.eventually(victim, "b", "2")
	c.eventually(victim, "a", "1")
	if !strings.Contains(out.String(), "raftkv: node "+victim.ID+" exited: signal: killed") {
		t.Errorf("the parent did not report %s's death", victim.ID)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the parent, cancelled: %v (want every node stopped cleanly)", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the parent did not return within 60 s of its cancellation")
	}
	for _, n := range c.nodes {
		b, err := os.ReadFile(filepath.Join(dir, n.ID, "telemetry.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"hashiraft.store_logs"`)) || !bytes.Contains(b, []byte(`"raftkv-`+n.ID+`"`)) {
			t.Errorf("%s/telemetry.jsonl (%d bytes) has no hashiraft.store_logs span of service raftkv-%s", n.ID, len(b), n.ID)
		}
	}
}
