package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// raftkv is examples/raftkv (three hashicorp/raft nodes on hashiraft)
// running beside the workload, exporting to the stack, so that the raft
// console page has data and one PUT's trace crosses three services.
type raftkv struct {
	cmd      *exec.Cmd
	out      lockedBuffer
	exited   chan error
	http     []string // the nodes' HTTP addresses
	stopLoad chan struct{}
	loadDone chan struct{}

	mu      sync.Mutex
	traceID string // of a PUT a follower forwarded to the leader
	puts    int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
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

// startRaftKV builds examples/raftkv (its own module), starts its three
// nodes with OTLP to the collector, waits for a leader and starts a load
// of PUTs through all three nodes, with one snapshot on each node after
// 8 s (so the truncation graph has data).
func startRaftKV(t *testing.T, collectorDir string) *raftkv {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "raftkv")
	start := time.Now()
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(collectorDir, "..", "raftkv")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/raftkv: %v\n%s", err, out)
	}
	t.Logf("examples/raftkv built in %v", time.Since(start).Round(time.Millisecond))
	r := &raftkv{exited: make(chan error, 1), stopLoad: make(chan struct{}), loadDone: make(chan struct{})}
	var members []string
	for i := range 3 {
		h := freeAddr(t)
		r.http = append(r.http, h)
		members = append(members, fmt.Sprintf("n%d=%s/%s", i+1, freeAddr(t), h))
	}
	r.cmd = exec.Command(bin, "-dir", filepath.Join(tmp, "data"), "-cluster", strings.Join(members, ","),
		"-snapshot-threshold", "1000000", "-trailing-logs", "64")
	r.cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_METRIC_EXPORT_INTERVAL=2000", "OTEL_BSP_SCHEDULE_DELAY=500")
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() { r.stop(t) })

	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for !r.hasLeader(client) {
		if time.Now().After(deadline) {
			t.Fatalf("examples/raftkv elected no leader in 60 s:\n%s", r.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	go r.load(client)
	return r
}

func (r *raftkv) hasLeader(client *http.Client) bool {
	resp, err := client.Get("http://" + r.http[0] + "/status")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && !strings.Contains(b.String(), `"leader":""`)
}

// load PUTs a key every 20 ms, through each node in turn, until stopLoad.
func (r *raftkv) load(client *http.Client) {
	defer close(r.loadDone)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	snapAt := time.Now().Add(8 * time.Second)
	for i := 0; ; i++ {
		select {
		case <-r.stopLoad:
			return
		case <-tick.C:
		}
		node := r.http[i%len(r.http)]
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/kv/k%d", node, i%100), strings.NewReader(fmt.Sprint("v", i)))
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			r.mu.Lock()
			if resp.StatusCode == http.StatusOK {
				r.puts++
				if r.traceID == "" && resp.Header.Get("X-Raft-Leader") != "" {
					r.traceID = resp.Header.Get("X-Trace-Id")
				}
			}
			r.mu.Unlock()
		}
		if !snapAt.IsZero() && time.Now().After(snapAt) {
			snapAt = time.Time{}
			for _, n := range r.http {
				if resp, err := client.Post("http://"+n+"/snapshot", "", nil); err == nil {
					resp.Body.Close()
				}
			}
		}
	}
}

// stop ends the load and the nodes (SIGTERM: each exports what is left)
// and logs their output.
func (r *raftkv) stop(t *testing.T) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	select {
	case <-r.stopLoad:
	default:
		close(r.stopLoad)
	}
	<-r.loadDone
	r.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-r.exited:
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		err = fmt.Errorf("no exit within 30 s of SIGTERM: %v", <-r.exited)
	}
	r.cmd = nil
	r.mu.Lock()
	t.Logf("examples/raftkv: %d PUTs acknowledged; output:\n%s", r.puts, r.out.String())
	r.mu.Unlock()
	if err != nil {
		t.Errorf("examples/raftkv did not stop cleanly: %v", err)
	}
}

// testRaftKV checks in Jaeger that a PUT a follower forwarded is one trace
// across the three services: on each, the entry's durable append
// (hashiraft.store_logs with its aof.append) and its apply.
func testRaftKV(t *testing.T, r *raftkv) {
	r.mu.Lock()
	id := r.traceID
	r.mu.Unlock()
	if id == "" {
		t.Fatal("examples/raftkv: no PUT was forwarded by a follower")
	}
	var resp struct {
		Data []struct {
			Spans []struct {
				jspan
				ProcessID string `json:"processID"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	poll(t, "the forwarded PUT's trace across raftkv-n1..n3 in Jaeger", func() error {
		if err := getJSON(jaegerURL+"/api/traces/"+id, &resp); err != nil {
			return err
		}
		if len(resp.Data) == 0 {
			return fmt.Errorf("trace %s not found", id)
		}
		ops := map[string]map[string]bool{}
		for _, s := range resp.Data[0].Spans {
			svc := resp.Data[0].Processes[s.ProcessID].ServiceName
			if ops[svc] == nil {
				ops[svc] = map[string]bool{}
			}
			ops[svc][s.OperationName] = true
		}
		for _, svc := range []string{"raftkv-n1", "raftkv-n2", "raftkv-n3"} {
			for _, op := range []string{"hashiraft.store_logs", "aof.append", "raftkv.apply"} {
				if !ops[svc][op] {
					return fmt.Errorf("trace %s: no %s span from %s (services and operations: %v)", id, op, svc, ops)
				}
			}
		}
		t.Logf("trace %s: %d spans from %d services", id, len(resp.Data[0].Spans), len(ops))
		return nil
	})
}
