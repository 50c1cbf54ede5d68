// Package e2e is the end-to-end test of the examples/collector stack: it
// runs the workload against the collector, Jaeger and Prometheus started by
// ../run.sh and checks, over their HTTP APIs, that the traces and metrics
// the library emits really arrive, that every Grafana panel's query
// returns data, and (when Chromium is there, see browser_test.go) that
// Prometheus' graph page and the aof2 console pages render their graphs in
// a real browser.
//
// It is skipped unless AOF2_E2E=1. With AOF2_E2E_STACK_UP=1 it assumes the
// stack is already up (../e2e.sh starts it); otherwise it runs `run.sh up`
// itself. At the end it runs `run.sh down` and checks that no process of
// the stack is left, unless AOF2_E2E_KEEP_UP=1.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	jaegerURL = "http://127.0.0.1:16686"
	promURL   = "http://127.0.0.1:9090"
	service   = "aof2-workload"
	// pollFor bounds how long the test waits for data to show up.
	pollFor = 90 * time.Second
)

// collectorDir returns the absolute path of examples/collector.
func collectorDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// runCmd runs a command with output going to the test log and reports how
// long it took.
func runCmd(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("$ %s %s (%v)\n%s", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
}

func TestStack(t *testing.T) {
	if os.Getenv("AOF2_E2E") != "1" {
		t.Skip("set AOF2_E2E=1 to run the end-to-end test of the collector stack")
	}
	dir := collectorDir(t)
	start := time.Now()
	if os.Getenv("AOF2_E2E_STACK_UP") != "1" {
		runCmd(t, dir, nil, "./run.sh", "up")
	}
	keep := os.Getenv("AOF2_E2E_KEEP_UP") == "1"
	downDone := false
	t.Cleanup(func() {
		if !keep && !downDone {
			exec.Command(filepath.Join(dir, "run.sh"), "down").Run()
		}
	})

	// examples/raftkv's three raft nodes run beside the workload, under a
	// load of PUTs, so the raft console page has data.
	kv := startRaftKV(t, dir)
	runStart := time.Now()
	runCmd(t, filepath.Join(dir, "e2e"), []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317"},
		"go", "run", "../workload", "-duration", "20s", "-dir", t.TempDir())
	t.Logf("workload took %v", time.Since(runStart).Round(time.Millisecond))
	kv.stop(t)

	checkStart := time.Now()
	t.Run("jaeger", testJaeger)
	t.Run("prometheus", testPrometheus)
	t.Run("dashboard", func(t *testing.T) { testDashboard(t, filepath.Join(dir, "grafana", "dashboards", "aof2.json")) })
	t.Run("raftkv", func(t *testing.T) { testRaftKV(t, kv) })
	t.Run("browser", func(t *testing.T) { testBrowser(t, dir, runStart) })
	t.Logf("checks took %v", time.Since(checkStart).Round(time.Millisecond))

	if keep {
		return
	}
	downStart := time.Now()
	runCmd(t, dir, nil, "./run.sh", "down")
	downDone = true
	out, err := exec.Command("pgrep", "-a", "-f", filepath.Join(dir, ".bin")+"/").Output()
	if err == nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("stack processes left after run.sh down:\n%s", out)
	}
	t.Logf("down took %v; whole test %v", time.Since(downStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// getJSON GETs u and decodes the JSON answer into v.
func getJSON(u string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// poll calls check until it returns nil or the deadline passes, then
// fails with check's last error.
func poll(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(pollFor)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %v", what, err)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// Jaeger's JSON API (api/traces).
type (
	kv struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}
	ref struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	}
	jspan struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []ref  `json:"references"`
		Tags          []kv   `json:"tags"`
		Logs          []struct {
			Fields []kv `json:"fields"`
		} `json:"logs"`
	}
	jtrace struct {
		TraceID string  `json:"traceID"`
		Spans   []jspan `json:"spans"`
	}
)

// tag returns the value of key among kvs as a string, and whether it is
// there.
func tag(kvs []kv, key string) (string, bool) {
	for _, f := range kvs {
		if f.Key == key {
			return fmt.Sprint(f.Value), true
		}
	}
	return "", false
}

// traces returns the workload's traces holding a span named operation
// (all traces if operation is empty), at most limit.
func traces(operation string, limit int) ([]jtrace, error) {
	q := url.Values{"service": {service}, "limit": {strconv.Itoa(limit)}, "lookback": {"1h"}}
	if operation != "" {
		q.Set("operation", operation)
	}
	var resp struct {
		Data []jtrace `json:"data"`
	}
	if err := getJSON(jaegerURL+"/api/traces?"+q.Encode(), &resp); err != nil {
		return nil, err
	}
	return resp.Data, nil
}

// findSpan returns the first span named op in ts for which ok holds.
func findSpan(ts []jtrace, op string, ok func(jspan) bool) (jspan, bool) {
	for _, tr := range ts {
		for _, s := range tr.Spans {
			if s.OperationName == op && ok(s) {
				return s, true
			}
		}
	}
	return jspan{}, false
}

func testJaeger(t *testing.T) {
	poll(t, "aof.flush span linked to an aof.append span", func() error {
		ts, err := traces("aof.flush", 300)
		if err != nil {
			return err
		}
		var checked int
		for _, tr := range ts {
			for _, s := range tr.Spans {
				if s.OperationName != "aof.flush" {
					continue
				}
				for _, r := range s.References {
					if r.RefType != "FOLLOWS_FROM" {
						continue
					}
					if checked++; checked > 20 {
						return fmt.Errorf("20 links checked, none to an aof.append span")
					}
					var resp struct {
						Data []jtrace `json:"data"`
					}
					if err := getJSON(jaegerURL+"/api/traces/"+r.TraceID, &resp); err != nil {
						continue
					}
					if _, ok := findSpan(resp.Data, "aof.append", func(a jspan) bool { return a.SpanID == r.SpanID }); ok {
						t.Logf("aof.flush %s/%s links to aof.append %s/%s", s.TraceID, s.SpanID, r.TraceID, r.SpanID)
						return nil
					}
				}
			}
		}
		return fmt.Errorf("%d traces with aof.flush, %d FOLLOWS_FROM links checked, none to an aof.append span", len(ts), checked)
	})

	poll(t, "aof.fsync.retry event with errno EINTR", func() error {
		ts, err := traces("workload.transient", 500)
		if err != nil {
			return err
		}
		if _, ok := findSpan(ts, "aof.flush", func(s jspan) bool {
			for _, l := range s.Logs {
				ev, _ := tag(l.Fields, "event")
				errno, _ := tag(l.Fields, "aof.fsync.errno")
				_, attempt := tag(l.Fields, "aof.fsync.attempt")
				if ev == "aof.fsync.retry" && errno == "EINTR" && attempt {
					return true
				}
			}
			return false
		}); ok {
			return nil
		}
		return fmt.Errorf("%d transient-phase traces, no aof.flush span with an aof.fsync.retry event (errno EINTR)", len(ts))
	})

	poll(t, "aof.flush with error status", func() error {
		ts, err := traces("workload.hard_failure", 20)
		if err != nil {
			return err
		}
		if s, ok := findSpan(ts, "aof.flush", func(s jspan) bool {
			code, _ := tag(s.Tags, "otel.status_code")
			errTag, _ := tag(s.Tags, "error")
			return code == "ERROR" || errTag == "true"
		}); ok {
			et, _ := tag(s.Tags, "error.type")
			failed := false
			for _, l := range s.Logs {
				if ev, _ := tag(l.Fields, "event"); ev == "aof.fsync.failed" {
					failed = true
				}
			}
			if et != "EIO" || !failed {
				return fmt.Errorf("failed flush: error.type %q, aof.fsync.failed event %v", et, failed)
			}
			return nil
		}
		return fmt.Errorf("%d hard-failure traces, no aof.flush span with error status", len(ts))
	})

	poll(t, "aof.recover span with a truncation event", func() error {
		ts, err := traces("aof.recover", 100)
		if err != nil {
			return err
		}
		if _, ok := findSpan(ts, "aof.recover", func(s jspan) bool {
			for _, l := range s.Logs {
				ev, _ := tag(l.Fields, "event")
				off, hasOff := tag(l.Fields, "aof.offset")
				n, hasBytes := tag(l.Fields, "aof.bytes")
				if ev == "aof.recover.segment.truncated" && hasOff && hasBytes && off != "0" && n != "0" {
					return true
				}
			}
			return false
		}); ok {
			return nil
		}
		return fmt.Errorf("%d traces with aof.recover, none with an aof.recover.segment.truncated event naming aof.offset and aof.bytes", len(ts))
	})
}

// promResult is one series of an instant query.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// instant runs an instant PromQL query.
func instant(expr string) ([]promResult, error) {
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promResult `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(promURL+"/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &resp); err != nil {
		return nil, err
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, resp.Error)
	}
	return resp.Data.Result, nil
}

// scalar runs expr, which must give exactly one series, and returns its
// value.
func scalar(expr string) (float64, error) {
	res, err := instant(expr)
	if err != nil {
		return 0, err
	}
	if len(res) != 1 {
		return 0, fmt.Errorf("query %q: %d series, want 1", expr, len(res))
	}
	s, _ := res[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

func testPrometheus(t *testing.T) {
	sel := `{job="` + service + `"}`
	onLog := func(log string) string { return `{job="` + service + `",aof_log="` + log + `"}` }
	checks := []struct {
		expr string
		ok   func(float64) bool
		want string
	}{
		{"sum(aof_append_records_total" + sel + ")", func(v float64) bool { return v > 1000 }, "> 1000"},
		{"sum(aof_append_size_bytes_total" + sel + ")", func(v float64) bool { return v > 100000 }, "> 100000"},
		{"sum(aof_fsync_retries_total" + sel + ")", func(v float64) bool { return v > 0 }, "> 0"},
		{"sum(aof_fsync_failures_total" + onLog("faulty") + ")", func(v float64) bool { return v >= 1 }, ">= 1"},
		{"sum(aof_fsync_failures_total" + onLog("main") + ")", func(v float64) bool { return v == 0 }, "== 0"},
		{"sum(aof_fsyncs_total" + sel + ")", func(v float64) bool { return v > 0 }, "> 0"},
		{"sum(aof_fsync_duration_seconds_count" + sel + ")", func(v float64) bool { return v > 0 }, "> 0"},
		{"sum(aof_flush_duration_seconds_count" + sel + ")", func(v float64) bool { return v > 0 }, "> 0"},
		{"sum(aof_durable_lag_seconds_count" + sel + ")", func(v float64) bool { return v > 0 }, "> 0"},
		{"sum(aof_durable_size_bytes_total" + sel + ")", func(v float64) bool { return v > 100000 }, "> 100000"},
		{"max(aof_backlog_size_bytes" + onLog("main") + ")", func(v float64) bool { return v == 0 }, "== 0 after the final sync"},
		{"max(aof_backlog_size_bytes" + onLog("backpressure") + ")", func(v float64) bool { return v == 0 }, "== 0 after the final sync"},
		{"max(aof_segments" + onLog("main") + ")", func(v float64) bool { return v >= 2 }, ">= 2"},
		{"sum(aof_recovery_duration_seconds_count" + sel + ")", func(v float64) bool { return v >= 4 }, ">= 4 (one per open)"},
		{"sum(aof_recovery_truncated_size_bytes_total" + onLog("crashy") + ")", func(v float64) bool { return v > 0 }, "> 0"},
	}
	for _, reason := range []string{"interval", "watermark", "rollover", "backpressure", "explicit"} {
		checks = append(checks, struct {
			expr string
			ok   func(float64) bool
			want string
		}{`sum(aof_flushes_total{job="` + service + `",aof_flush_reason="` + reason + `"})`, func(v float64) bool { return v > 0 }, "> 0"})
	}
	for _, c := range checks {
		poll(t, c.expr, func() error {
			v, err := scalar(c.expr)
			if err != nil {
				return err
			}
			if !c.ok(v) {
				return fmt.Errorf("%s = %g, want %s", c.expr, v, c.want)
			}
			t.Logf("%s = %g", c.expr, v)
			return nil
		})
	}
}

// testDashboard runs every query of the Grafana dashboard at path against
// Prometheus and checks that each returns data.
func testDashboard(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			n++
			expr := strings.ReplaceAll(tg.Expr, "$__rate_interval", "1m")
			poll(t, fmt.Sprintf("panel %q: %s", p.Title, expr), func() error {
				res, err := instant(expr)
				if err != nil {
					return err
				}
				if len(res) == 0 {
					return fmt.Errorf("no data")
				}
				t.Logf("panel %q: %d series, first %v = %v", p.Title, len(res), res[0].Metric, res[0].Value[1])
				return nil
			})
		}
	}
	if n < 10 {
		t.Errorf("dashboard has %d queries, want at least 10", n)
	}
}
