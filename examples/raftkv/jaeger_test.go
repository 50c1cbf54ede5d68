package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPrintTrace: -trace prints a trace from Jaeger's API as a tree, with
// each node's aof.flush (a span of its own trace, found by service,
// operation and time) under the append it links, and ignores a flush that
// links other appends.
func TestPrintTrace(t *testing.T) {
	const tid = "0e9d8a5ec3b6920946084e769b2b0e75"
	tag := func(k string, v any) jaegerTag { return jaegerTag{Key: k, Value: v} }
	child := func(id string) []jaegerRef { return []jaegerRef{{RefType: "CHILD_OF", TraceID: tid, SpanID: id}} }
	trace := jaegerTrace{TraceID: tid, Processes: map[string]jaegerProcess{"p1": {"raftkv-n1"}, "p2": {"raftkv-n2"}}, Spans: []jaegerSpan{
		{TraceID: tid, SpanID: "a1", OperationName: "aof.append", References: child("s1"), StartTime: 1_000_500, Duration: 4, ProcessID: "p1", Tags: []jaegerTag{tag("aof.seq", 3)}},
		{TraceID: tid, SpanID: "put", OperationName: "PUT /kv/{key}", StartTime: 1_000_000, Duration: 1087, ProcessID: "p1", Tags: []jaegerTag{tag("raft.index", 3)}},
		{TraceID: tid, SpanID: "s1", OperationName: "hashiraft.store_logs", References: child("put"), StartTime: 1_000_496, Duration: 403, ProcessID: "p1"},
		{TraceID: tid, SpanID: "s2", OperationName: "hashiraft.store_logs", References: child("put"), StartTime: 1_001_024, Duration: 366, ProcessID: "p2"},
		{TraceID: tid, SpanID: "a2", OperationName: "aof.append", References: child("s2"), StartTime: 1_001_026, Duration: 2, ProcessID: "p2"},
	}}
	flush := func(svc, trace, span, links string, start int64) jaegerTrace {
		return jaegerTrace{TraceID: trace, Processes: map[string]jaegerProcess{"p1": {svc}}, Spans: []jaegerSpan{
			{TraceID: trace, SpanID: span, OperationName: "aof.flush", StartTime: start, Duration: 384, ProcessID: "p1",
				References: []jaegerRef{{RefType: "FOLLOWS_FROM", TraceID: tid, SpanID: links}},
				Tags:       []jaegerTag{tag("aof.flush.reason", "explicit"), tag("aof.flush.mode", "sync"), tag("aof.flush.records", 1)}},
			{TraceID: trace, SpanID: span + "s", OperationName: "aof.fsync", StartTime: start + 10, Duration: 232, ProcessID: "p1",
				References: []jaegerRef{{RefType: "CHILD_OF", TraceID: trace, SpanID: span}}, Tags: []jaegerTag{tag("aof.fsync.target", "data")}},
		}}
	}
	var queried []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var data []jaegerTrace
		switch {
		case r.URL.Path == "/api/traces/"+tid:
			data = []jaegerTrace{trace}
		case r.URL.Path == "/api/traces" && r.URL.Query().Get("operation") == "aof.flush":
			svc := r.URL.Query().Get("service")
			queried = append(queried, svc)
			if svc == "raftkv-n1" {
				data = []jaegerTrace{flush(svc, "f1", "fl1", "a1", 1_000_512), flush(svc, "f9", "fl9", "elsewhere", 1_000_900)}
			} else {
				data = []jaegerTrace{flush(svc, "f2", "fl2", "a2", 1_001_032)}
			}
		default:
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(jaegerResponse{Data: data})
	}))
	defer srv.Close()

	var out strings.Builder
	if err := printTrace(context.Background(), &out, srv.URL, tid); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Log("\n" + got)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	want := []string{ // each line's start, in order
		"PUT /kv/{key}",
		"  hashiraft.store_logs                           raftkv-n1  +   0.496 ms    0.403 ms",
		"    aof.append                                   raftkv-n1  +   0.500 ms    0.004 ms  aof.seq=3",
		"      <- aof.flush (links it)                    raftkv-n1  +   0.512 ms    0.384 ms  reason=explicit mode=sync records=1; aof.fsync data 0.232 ms (its own trace f1)",
		"  hashiraft.store_logs                           raftkv-n2",
		"    aof.append                                   raftkv-n2",
		"      <- aof.flush (links it)                    raftkv-n2",
		"5 spans in trace " + tid + " from raftkv-n1, raftkv-n2; 2 aof.flush spans",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n got %q\nwant %q...", i, lines[i], w)
		}
	}
	if strings.Join(queried, ",") != "raftkv-n1,raftkv-n2" {
		t.Errorf("flushes looked up for %v, want each service of the trace once", queried)
	}
	if strings.Contains(got, "f9") {
		t.Error("printed a flush that links no append of the trace")
	}
}
