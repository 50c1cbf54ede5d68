package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// The browser check runs when Chromium is found (AOF2_E2E_CHROMIUM, else
// chromium on PATH); AOF2_E2E_BROWSER=1 makes a missing Chromium a failure
// (CI sets it). Screenshots go to AOF2_E2E_ARTIFACTS, by default
// examples/collector/.state/screenshots.

// chromiumPath returns the Chromium to run, or skips (fails when
// AOF2_E2E_BROWSER=1) if there is none.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AOF2_E2E_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("AOF2_E2E_BROWSER") == "1" {
		t.Fatal("AOF2_E2E_BROWSER=1 but no chromium on PATH (apt-get install chromium, or set AOF2_E2E_CHROMIUM)")
	}
	t.Skip("no chromium on PATH: the pages are not checked in a browser (apt-get install chromium; AOF2_E2E_BROWSER=1 makes this a failure)")
	return ""
}

// browser runs headless Chromium on pages of run.sh's Prometheus.
type browser struct {
	bin       string
	artifacts string
}

// load opens u in a fresh headless Chromium with the window w×h, lets its
// JavaScript run (virtual time, which also waits for the page's queries),
// and returns the DOM as it then is. It fails the test on any message the
// page logged to the console (a script that did not load or threw, a
// graph whose data did not load). With shot set it also saves a screenshot
// of the window as shot in the artifacts directory.
func (b browser) load(t *testing.T, u string, w, h int, shot string) *html.Node {
	t.Helper()
	run := func(mode string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
			"--no-first-run", "--user-data-dir=" + t.TempDir(), // fresh: no cache from an earlier run
			"--enable-logging=stderr", "--v=0",
			fmt.Sprintf("--window-size=%d,%d", w, h), "--virtual-time-budget=15000", mode, u}
		cmd := exec.CommandContext(ctx, b.bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %s %s: %v\n%s", mode, u, err, stderr.String())
		}
		t.Logf("chromium %s %s: %v", mode, u, time.Since(start).Round(time.Millisecond))
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, ":CONSOLE") {
				t.Errorf("%s logged to the console: %s", u, line)
			}
		}
		return stdout.Bytes()
	}
	if shot != "" {
		p := filepath.Join(b.artifacts, shot)
		run("--screenshot=" + p)
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("no screenshot of %s at %s: %v", u, p, err)
		} else {
			t.Logf("screenshot of %s: %s (%d bytes)", u, p, fi.Size())
		}
	}
	doc, err := html.Parse(bytes.NewReader(run("--dump-dom")))
	if err != nil {
		t.Fatalf("%s: parsing the DOM: %v", u, err)
	}
	return doc
}

// attr returns n's attribute key.
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// hasClass reports whether n's class attribute lists c.
func hasClass(n *html.Node, c string) bool {
	for _, f := range strings.Fields(attr(n, "class")) {
		if f == c {
			return true
		}
	}
	return false
}

// findAll returns the elements under n (n included) for which ok holds.
func findAll(n *html.Node, ok func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && ok(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

// byID returns the element with the given id, or nil.
func byID(doc *html.Node, id string) *html.Node {
	if all := findAll(doc, func(n *html.Node) bool { return attr(n, "id") == id }); len(all) > 0 {
		return all[0]
	}
	return nil
}

// text returns the text under n, without the scripts' source.
func text(n *html.Node) string {
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style") {
			return
		}
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return sb.String()
}

// lines returns the SVG line paths (Rickshaw's path.path) under n that
// join at least two points.
func lines(n *html.Node) []*html.Node {
	return findAll(n, func(n *html.Node) bool {
		return n.Data == "path" && hasClass(n, "path") && strings.HasPrefix(attr(n, "d"), "M") && strings.Contains(attr(n, "d"), "L")
	})
}

// pageErrors are texts a page shows when a template, a query or an asset
// failed.
var pageErrors = []string{"error executing template", "error reading", "template:", "Error loading data",
	"parse error", "no such file"}

// checkNoErrorText fails if the page's text holds one of pageErrors.
func checkNoErrorText(t *testing.T, page string, doc *html.Node) {
	t.Helper()
	body := text(doc)
	for _, e := range pageErrors {
		if strings.Contains(body, e) {
			t.Errorf("%s shows %q", page, e)
		}
	}
}

// graphIDs returns the ids of the graphs a console template draws
// (aof2Graph("id", …)), read from the template itself so that every graph
// it holds is checked.
func graphIDs(t *testing.T, path string) []string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range regexp.MustCompile(`aof2Graph\("([A-Za-z0-9_]+)"`).FindAllSubmatch(src, -1) {
		ids = append(ids, string(m[1]))
	}
	return ids
}

// graphState describes one PromConsole graph: how many lines it drew, and
// the error text it shows instead (prom_graph_error), if any.
func graphState(doc *html.Node, id string) (drawn int, errText string, ok bool) {
	div := byID(doc, id)
	if div == nil {
		return 0, "", false
	}
	for _, e := range findAll(div, func(n *html.Node) bool { return hasClass(n, "prom_graph_error") }) {
		errText += strings.TrimSpace(text(e))
	}
	return len(lines(div)), errText, true
}

// consoleURL is the console page at path showing the last d, up to now.
func consoleURL(path string, d time.Duration) string {
	tc, _ := json.Marshal(map[string]int64{"duration": int64(d.Seconds()), "endTime": 0})
	return promURL + path + "#pctc" + url.PathEscape(string(tc))
}

// testBrowser loads Prometheus' graph page and the aof2 console pages in
// headless Chromium after the workload ran (it started at since) and
// checks what they render.
func testBrowser(t *testing.T, dir string, since time.Time) {
	b := browser{bin: chromiumPath(t), artifacts: os.Getenv("AOF2_E2E_ARTIFACTS")}
	if b.artifacts == "" {
		b.artifacts = filepath.Join(dir, ".state", "screenshots")
	}
	if err := os.MkdirAll(b.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	// The graphs show the whole workload and little before it.
	window := time.Since(since).Round(time.Second) + 20*time.Second

	t.Run("graph", func(t *testing.T) {
		expr := "sum by (aof_log) (rate(aof_append_records_total[1m]))"
		q := url.Values{"g0.expr": {expr}, "g0.tab": {"0"}, "g0.range_input": {fmt.Sprintf("%ds", int(window.Seconds()))}}
		doc := b.load(t, promURL+"/classic/graph?"+q.Encode(), 1400, 900, "prometheus-graph.png")
		checkNoErrorText(t, "/classic/graph", doc)
		for _, a := range findAll(doc, func(n *html.Node) bool { return hasClass(n, "alert-danger") }) {
			if msg := strings.TrimSpace(text(a)); msg != "" && !strings.Contains(attr(a, "style"), "display: none") {
				t.Errorf("/classic/graph shows an error: %s", msg)
			}
		}
		drawn := lines(doc)
		legend := text(doc)
		for _, log := range []string{"main", "backpressure", "faulty"} {
			if !strings.Contains(legend, `aof_log="`+log+`"`) {
				t.Errorf("/classic/graph: no series for aof_log=%q in the legend", log)
			}
		}
		if len(drawn) < 3 {
			t.Errorf("/classic/graph drew %d lines for %s, want one per log (>= 3)", len(drawn), expr)
		}
		t.Logf("/classic/graph: %d lines drawn for %s", len(drawn), expr)
	})

	t.Run("aof2", func(t *testing.T) {
		ids := graphIDs(t, filepath.Join(dir, "prometheus", "consoles", "aof2.html"))
		if len(ids) < 12 {
			t.Errorf("aof2.html draws %d graphs, want the 12 panels of the Grafana dashboard", len(ids))
		}
		doc := b.load(t, consoleURL("/consoles/aof2.html", window), 1400, 4700, "console-aof2.png")
		checkNoErrorText(t, "/consoles/aof2.html", doc)
		for _, id := range ids {
			drawn, errText, ok := graphState(doc, id)
			switch {
			case !ok:
				t.Errorf("aof2.html: no graph element %q", id)
			case errText != "" || drawn == 0:
				t.Errorf("aof2.html: graph %q drew %d lines, shows %q", id, drawn, errText)
			default:
				t.Logf("aof2.html: graph %q: %d lines", id, drawn)
			}
		}
		// The table's failure count comes from a query the template ran;
		// the workload makes one log fail for good.
		if n := byID(doc, "aof2_failures"); n == nil {
			t.Error("aof2.html: no fsync failure count")
		} else if v := strings.TrimSpace(text(n)); v == "" || v == "0" || !hasClass(n, "aof2_bad") {
			t.Errorf("aof2.html: fsync failures %q (class %q), want >= 1 shown as bad", v, attr(n, "class"))
		}
	})

	t.Run("raft", func(t *testing.T) {
		ids := graphIDs(t, filepath.Join(dir, "prometheus", "consoles", "aof2-raft.html"))
		if len(ids) < 5 {
			t.Errorf("aof2-raft.html draws %d graphs, want >= 5", len(ids))
		}
		doc := b.load(t, consoleURL("/consoles/aof2-raft.html", window), 1400, 2200, "console-aof2-raft.png")
		checkNoErrorText(t, "/consoles/aof2-raft.html", doc)
		// examples/raftkv ran beside the workload (three nodes, PUTs, a
		// snapshot on each): the page must not say that no store reports,
		// and every graph must draw (entries and bytes written and read,
		// head truncations, stable store sets, oldest entry age).
		noData := byID(doc, "aof2_raft_nodata") != nil
		if noData {
			t.Error("aof2-raft.html says no hashiraft metrics, but examples/raftkv's three nodes reported")
		}
		for _, id := range ids {
			drawn, errText, ok := graphState(doc, id)
			switch {
			case !ok:
				t.Errorf("aof2-raft.html: no graph element %q", id)
			case drawn == 0 || errText != "":
				t.Errorf("aof2-raft.html: graph %q drew %d lines, shows %q", id, drawn, errText)
			default:
				t.Logf("aof2-raft.html: graph %q: %d lines", id, drawn)
			}
		}
		t.Logf("aof2-raft.html: hashiraft metrics present: %v", !noData)
	})

	t.Run("index", func(t *testing.T) {
		doc := b.load(t, promURL+"/consoles/index.html", 1000, 500, "")
		checkNoErrorText(t, "/consoles/index.html", doc)
		links := map[string]bool{}
		for _, a := range findAll(doc, func(n *html.Node) bool { return n.Data == "a" }) {
			links[attr(a, "href")] = true
		}
		for _, want := range []string{"/consoles/aof2.html", "/consoles/aof2-raft.html", "/classic/graph"} {
			if !links[want] {
				t.Errorf("/consoles/index.html has no link to %s", want)
			}
		}
	})
}
