// Command dashboard generates the aof2 Grafana dashboard
// (../grafana/dashboards/aof2.json) with grafana-foundation-sdk. It lives in
// its own module so the library does not depend on the SDK.
//
// Regenerate after changing a panel:
//
//	cd examples/collector/dashboard && go run . -out ../grafana/dashboards/aof2.json
//
// The test in this module fails when the checked-in file differs from what
// Dashboard builds, when it does not decode strictly, or when a query names
// a metric the library does not register.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// UID is the dashboard's uid (stable, so links to it keep working).
const UID = "aof2-durability"

// promDS is the provisioned Prometheus datasource (uid "prometheus").
func promDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("prometheus")}
}

// query is a Prometheus target with a legend.
func query(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(promDS()).Expr(expr).LegendFormat(legend)
}

// quantile is the q-quantile of the histogram h over the rate interval.
func quantile(q float64, h string) string {
	return fmt.Sprintf("histogram_quantile(%g, sum by (le) (rate(%s_bucket[$__rate_interval])))", q, h)
}

// series is a time series panel.
func series(title, desc, unit string, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(desc).Unit(unit).Datasource(promDS()).
		Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).
			DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	for _, t := range targets {
		p.WithTarget(t)
	}
	return p
}

// alertAt returns thresholds that turn red at v.
func alertAt(v float64) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Value: nil, Color: "green"}, {Value: cog.ToPtr(v), Color: "red"}})
}

// Dashboard builds the aof2 dashboard.
//
//lint:ignore SA1019 the classic (v1) dashboard is what file provisioning reads.
func Dashboard() (dashboard.Dashboard, error) {
	//lint:ignore SA1019 Grafana's file provisioning reads the classic (v1) dashboard JSON this builder makes.
	return dashboard.NewDashboardBuilder("aof2 durability").
		Uid(UID).
		Description("aof2 append-only log: backlog, flushes, fsync latency and errors, durable lag, segments, recovery.").
		Tags([]string{"aof2", "opentelemetry"}).
		Refresh("10s").
		Time("now-15m", "now").
		Timezone(common.TimeZoneBrowser).
		WithPanel(series("Backlog (bytes not yet durable)",
			"Bytes appended but not yet durable, per log. Alert when it stays near MaxUnflushed: appenders are then flushing under backpressure.",
			"bytes",
			query(`sum by (aof_log) (aof_backlog_size_bytes)`, "{{aof_log}}"))).
		WithPanel(series("Flushes per second by reason and mode",
			"Group commits: interval, watermark, rollover, recovery, backpressure or explicit (FlushUntil/Sync/Close); async = background flusher, sync = caller's goroutine.",
			"ops",
			query(`sum by (aof_flush_reason, aof_flush_mode) (rate(aof_flushes_total[$__rate_interval]))`, "{{aof_flush_reason}} / {{aof_flush_mode}}"))).
		WithPanel(series("fsync latency p50 / p99",
			"Duration of each fdatasync attempt. Exemplars link to the flush span in Jaeger. Alert when p99 exceeds your bound.",
			"s",
			query(quantile(0.5, "aof_fsync_duration_seconds"), "p50").Exemplar(true),
			query(quantile(0.99, "aof_fsync_duration_seconds"), "p99").Exemplar(true))).
		WithPanel(heatmap.NewPanelBuilder().Title("fsync latency heatmap").
			Description("fsync attempts per latency bucket.").
			Datasource(promDS()).
			Calculate(false).
			YAxis(heatmap.NewYAxisConfigBuilder().Unit("s")).
			WithTarget(query(`sum by (le) (increase(aof_fsync_duration_seconds_bucket[$__rate_interval]))`, "{{le}}").
				Format(prometheus.PromQueryFormatHeatmap))).
		WithPanel(series("fsync retries and failures",
			"Retries: transient sync errors (EINTR, EAGAIN, EBUSY, ETIMEDOUT) that were retried. Failures: syncs that failed for good; the log fail-stops. Alert on any failure.",
			"short",
			query(`sum by (aof_log) (increase(aof_fsync_retries_total[$__rate_interval]))`, "retries {{aof_log}}"),
			query(`sum by (aof_log) (aof_fsync_failures_total)`, "failures (total) {{aof_log}}"))).
		WithPanel(stat.NewPanelBuilder().Title("fsync failures (alert on > 0)").
			Description("Syncs that failed for good since each log was opened.").
			Datasource(promDS()).
			Thresholds(alertAt(1)).
			WithTarget(query(`sum(aof_fsync_failures_total)`, "failures"))).
		WithPanel(series("Appends: records per second",
			"Records appended per second, per log.",
			"ops",
			query(`sum by (aof_log) (rate(aof_append_records_total[$__rate_interval]))`, "{{aof_log}}"))).
		WithPanel(series("Appends: bytes per second",
			"Frame bytes appended per second (payload, 32-byte header, padding), per log.",
			"Bps",
			query(`sum by (aof_log) (rate(aof_append_size_bytes_total[$__rate_interval]))`, "{{aof_log}}"))).
		WithPanel(series("Durable lag p50 / p99",
			"Time from append to durable of the oldest record each flush made durable.",
			"s",
			query(quantile(0.5, "aof_durable_lag_seconds"), "p50").Exemplar(true),
			query(quantile(0.99, "aof_durable_lag_seconds"), "p99").Exemplar(true))).
		WithPanel(series("Segments",
			"Segment files per log.",
			"short",
			query(`sum by (aof_log) (aof_segments)`, "{{aof_log}}"))).
		WithPanel(series("Recovery duration (mean per open)",
			"How long Open took to recover each log.",
			"s",
			query(`max by (aof_log) (aof_recovery_duration_seconds_sum / aof_recovery_duration_seconds_count)`, "{{aof_log}}"))).
		WithPanel(series("Recovery: truncated bytes",
			"Bytes cut by recovery at Open (torn tails, repairs), per log.",
			"bytes",
			query(`sum by (aof_log) (aof_recovery_truncated_size_bytes_total)`, "{{aof_log}}"))).
		Build()
}

// render returns the dashboard as indented JSON with a final newline.
func render() ([]byte, error) {
	d, err := Dashboard()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func main() {
	out := flag.String("out", "../grafana/dashboards/aof2.json", "file to write")
	flag.Parse()
	b, err := render()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}
