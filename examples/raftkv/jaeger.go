package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Jaeger's query API (api/traces), the fields printTrace reads.
type jaegerResponse struct {
	Data []jaegerTrace `json:"data"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerSpan struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []jaegerRef `json:"references"`
	StartTime     int64       `json:"startTime"` // µs since the epoch
	Duration      int64       `json:"duration"`  // µs
	Tags          []jaegerTag `json:"tags"`
	ProcessID     string      `json:"processID"`
}

type jaegerRef struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

type jaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

func (s jaegerSpan) tag(key string) (string, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value), true
		}
	}
	return "", false
}

func jaegerGet(ctx context.Context, base, path string, q url.Values) ([]jaegerTrace, error) {
	u := strings.TrimRight(base, "/") + "/api/" + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("raftkv: jaeger: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("raftkv: jaeger %s: %s: %s", u, resp.Status, b)
	}
	var r jaegerResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("raftkv: jaeger %s: %w", u, err)
	}
	return r.Data, nil
}

// printTrace prints one trace from Jaeger's query API at base as a span
// tree (service, start offset, duration, the raft and aof attributes),
// and under each aof.append the aof.flush that made it durable: a flush is
// a span of its own trace that links (FOLLOWS_FROM) the appends it made
// durable, so it is looked up by service, operation and time.
func printTrace(ctx context.Context, w io.Writer, base, traceID string) error {
	traces, err := jaegerGet(ctx, base, "traces/"+traceID, nil)
	if err != nil {
		return err
	}
	if len(traces) == 0 {
		return fmt.Errorf("raftkv: trace %s not in Jaeger", traceID)
	}
	t := traces[0]
	service := func(tr jaegerTrace, s jaegerSpan) string { return tr.Processes[s.ProcessID].ServiceName }
	t0, end := t.Spans[0].StartTime, int64(0)
	children := map[string][]jaegerSpan{}
	appends := map[string]bool{}
	var services []string
	for _, s := range t.Spans {
		t0 = min(t0, s.StartTime)
		end = max(end, s.StartTime+s.Duration)
		parent := ""
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" && r.TraceID == t.TraceID {
				parent = r.SpanID
			}
		}
		children[parent] = append(children[parent], s)
		if s.OperationName == "aof.append" {
			appends[s.SpanID] = true
		}
		if svc := service(t, s); !slices.Contains(services, svc) {
			services = append(services, svc)
		}
	}
	slices.Sort(services)

	// The flushes that link this trace's appends, found among each
	// service's aof.flush spans around the trace's time.
	type flush struct {
		span jaegerSpan
		tr   jaegerTrace
	}
	flushes := map[string]flush{}
	for _, svc := range services {
		q := url.Values{
			"service": {svc}, "operation": {"aof.flush"}, "limit": {"1000"},
			"start": {strconv.FormatInt(t0-int64(time.Second/time.Microsecond), 10)},
			"end":   {strconv.FormatInt(end+int64(5*time.Second/time.Microsecond), 10)},
		}
		trs, err := jaegerGet(ctx, base, "traces", q)
		if err != nil {
			return err
		}
		for _, tr := range trs {
			for _, s := range tr.Spans {
				if s.OperationName != "aof.flush" {
					continue
				}
				for _, r := range s.References {
					if r.TraceID == t.TraceID && appends[r.SpanID] {
						flushes[r.SpanID] = flush{s, tr}
					}
				}
			}
		}
	}

	ms := func(us int64) string { return fmt.Sprintf("%8.3f ms", float64(us)/1000) }
	var show func(s jaegerSpan, depth int)
	show = func(s jaegerSpan, depth int) {
		ind := strings.Repeat("  ", depth)
		var attrs []string
		for _, k := range []string{"raft.index", "raft.index.first", "aof.seq", "raftkv.leader"} {
			if v, ok := s.tag(k); ok {
				attrs = append(attrs, k+"="+v)
			}
		}
		fmt.Fprintf(w, "%-48s %-10s +%s %s  %s\n", ind+s.OperationName, service(t, s), ms(s.StartTime-t0), ms(s.Duration), strings.Join(attrs, " "))
		if f, ok := flushes[s.SpanID]; ok {
			reason, _ := f.span.tag("aof.flush.reason")
			mode, _ := f.span.tag("aof.flush.mode")
			records, _ := f.span.tag("aof.flush.records")
			var syncs []string
			for _, c := range f.tr.Spans {
				if c.OperationName == "aof.fsync" {
					target, _ := c.tag("aof.fsync.target")
					syncs = append(syncs, fmt.Sprintf("aof.fsync %s %.3f ms", target, float64(c.Duration)/1000))
				}
			}
			fmt.Fprintf(w, "%-48s %-10s +%s %s  reason=%s mode=%s records=%s; %s (its own trace %s)\n",
				ind+"  <- aof.flush (links it)", service(f.tr, f.span), ms(f.span.StartTime-t0), ms(f.span.Duration),
				reason, mode, records, strings.Join(syncs, ", "), f.span.TraceID)
		}
		kids := children[s.SpanID]
		slices.SortFunc(kids, func(a, b jaegerSpan) int { return int(a.StartTime - b.StartTime) })
		for _, c := range kids {
			show(c, depth+1)
		}
	}
	for _, root := range children[""] {
		show(root, 0)
	}
	fmt.Fprintf(w, "%d spans in trace %s from %s; %d aof.flush spans (in their own traces) link its appends\n",
		len(t.Spans), t.TraceID, strings.Join(services, ", "), len(flushes))
	return nil
}
