package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/aof2/aof2/aof"
)

// file is the checked-in dashboard that Grafana provisions.
const file = "../grafana/dashboards/aof2.json"

// TestGenerated fails when the checked-in dashboard is not what Dashboard
// builds: run `go run .` in this folder after changing a panel.
func TestGenerated(t *testing.T) {
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run `go run .` in examples/collector/dashboard", file)
	}
}

// TestStrictDecode decodes the checked-in dashboard with the SDK's strict
// decoder, which rejects unknown and missing fields.
func TestStrictDecode(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the classic (v1) dashboard is what file provisioning reads.
	var d dashboard.Dashboard
	// On success UnmarshalJSONStrict returns an empty cog.BuildErrors
	// inside a non-nil error.
	if err := d.UnmarshalJSONStrict(raw); err != nil {
		var be cog.BuildErrors
		if !errors.As(err, &be) || len(be) > 0 {
			t.Fatalf("strict decode: %v", err)
		}
	}
	if d.Uid == nil || *d.Uid != UID || len(d.Panels) < 10 {
		t.Fatalf("decoded dashboard: uid %v, %d panels", d.Uid, len(d.Panels))
	}
	// The decoder must really be strict.
	bad := bytes.Replace(raw, []byte(`"panels"`), []byte(`"panelz"`), 1)
	//lint:ignore SA1019 the classic (v1) dashboard is what file provisioning reads.
	var d2 dashboard.Dashboard
	err = d2.UnmarshalJSONStrict(bad)
	var be cog.BuildErrors
	if err == nil || (errors.As(err, &be) && len(be) == 0) {
		t.Fatal("strict decode accepted an unknown field")
	}
}

// exprs returns every PromQL expression of the dashboard JSON, in order.
func exprs(t testing.TB, raw []byte) []string {
	t.Helper()
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
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// promNames returns the Prometheus series names and label names the
// collector's exporter makes of the library's instruments, read from a
// ManualReader after an append and a flush.
func promNames(t *testing.T) (names, labels map[string]bool) {
	t.Helper()
	ctx := context.Background()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(ctx)
	l, err := aof.Open(t.TempDir(), aof.Config{}, aof.WithMeterProvider(mp), aof.WithTracerProvider(tracenoop.NewTracerProvider()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	id, err := l.Append(ctx, []byte("record"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	names, labels = map[string]bool{}, map[string]bool{"le": true}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			base := strings.ReplaceAll(m.Name, ".", "_")
			switch m.Unit {
			case "By":
				base += "_bytes"
			case "s":
				base += "_seconds"
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				if data.IsMonotonic {
					names[base+"_total"] = true
				} else {
					names[base] = true
				}
				for _, dp := range data.DataPoints {
					for _, kv := range dp.Attributes.ToSlice() {
						labels[strings.ReplaceAll(string(kv.Key), ".", "_")] = true
					}
				}
			case metricdata.Gauge[int64]:
				names[base] = true
			case metricdata.Histogram[float64]:
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[base+s] = true
				}
			default:
				t.Fatalf("instrument %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return names, labels
}

// TestQueriedMetricsExist checks that every metric and label the dashboard
// queries is one the library registers (as the collector's Prometheus
// exporter names it), and that every instrument the issue asks for has a
// panel.
func TestQueriedMetricsExist(t *testing.T) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	names, labels := promNames(t)
	t.Logf("library series: %v", keys(names))
	metricRE := regexp.MustCompile(`\baof_[a-z0-9_]+`)
	byRE := regexp.MustCompile(`by \(([^)]*)\)`)
	used := map[string]bool{}
	for _, e := range exprs(t, raw) {
		for _, byList := range byRE.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(byList[1], ",") {
				if l = strings.TrimSpace(l); !labels[l] {
					t.Errorf("query %q groups by %q, which no instrument has", e, l)
				}
			}
		}
		// Strip the by-lists so label names are not taken for metrics.
		for _, m := range metricRE.FindAllString(byRE.ReplaceAllString(e, ""), -1) {
			used[m] = true
			if !names[m] {
				t.Errorf("query %q uses %s, which the library does not register", e, m)
			}
		}
	}
	for _, m := range []string{"aof_backlog_size_bytes", "aof_flushes_total", "aof_fsync_duration_seconds_bucket",
		"aof_fsync_retries_total", "aof_fsync_failures_total", "aof_append_records_total", "aof_append_size_bytes_total",
		"aof_durable_lag_seconds_bucket", "aof_segments", "aof_recovery_duration_seconds_sum",
		"aof_recovery_truncated_size_bytes_total"} {
		if !used[m] {
			t.Errorf("no panel queries %s", m)
		}
	}
}

func keys(m map[string]bool) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
