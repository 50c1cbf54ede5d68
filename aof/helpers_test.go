package aof

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	aofotel "github.com/aof2/aof2/otel"
	"github.com/aof2/aof2/segment"
)

// Helpers shared by the package's tests: opening and filling a log,
// checking what it holds, copying and damaging its files, crash points
// and an in-process OpenTelemetry SDK.

var ctx = context.Background()

func openT(t testing.TB, dir string, cfg Config, opts ...Option) *Log {
	t.Helper()
	l, err := Open(dir, cfg, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// payloadFor returns the deterministic payload of record i: its size and
// bytes depend on i, so a misplaced or corrupt record is caught.
func payloadFor(i uint64, maxLen int) []byte {
	r := rand.New(rand.NewPCG(i, 0x9e3779b97f4a7c15))
	b := make([]byte, 1+r.IntN(maxLen))
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}

func mustAppend(t testing.TB, l *Log, p []byte) RecordID {
	t.Helper()
	id, err := l.Append(ctx, p)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return id
}

// appendN appends payloadFor(i, 300) for i in [from, to) and syncs.
func appendN(t testing.TB, l *Log, from, to uint64) {
	t.Helper()
	for i := from; i < to; i++ {
		if id := mustAppend(t, l, payloadFor(i, 300)); id.Seq != i {
			t.Fatalf("Append: seq %d, want %d", id.Seq, i)
		}
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// fillActive appends records of size bytes to l until the active segment
// has room for fewer than two more frames, and returns the next sequence
// number.
func fillActive(t testing.TB, l *Log, size int) uint64 {
	t.Helper()
	n := segment.FrameSize(size)
	for l.active.Load().Free() >= 2*n {
		mustAppend(t, l, make([]byte, size))
	}
	return l.NextSeq()
}

func fillRand(r *rand.Rand, p []byte) {
	for i := range p {
		p[i] = byte(r.Uint32())
	}
}

// checkRecords reads [first, next) and compares each with payloadFor.
func checkRecords(t testing.TB, l *Log, first, next uint64, maxLen int) {
	t.Helper()
	for seq := first; seq < next; seq++ {
		rec, err := l.Read(seq, nil)
		if err != nil {
			t.Fatalf("Read(%d): %v", seq, err)
		}
		if want := payloadFor(seq, maxLen); !bytes.Equal(rec.Payload, want) {
			t.Fatalf("Read(%d): payload of %d bytes differs from the %d appended", seq, len(rec.Payload), len(want))
		}
	}
}

// readAll reads r to its frontier and returns copies of the records.
func readAll(t *testing.T, r *Reader) []Record {
	t.Helper()
	var recs []Record
	for rec, err := range r.All() {
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
		rec.Payload = bytes.Clone(rec.Payload)
		recs = append(recs, rec)
	}
	return recs
}

func wantTruncated(t testing.TB, err error, first uint64, back bool) {
	t.Helper()
	var te *TruncatedError
	if !errors.As(err, &te) || !errors.Is(err, ErrTruncated) || te.First != first || te.Back != back {
		t.Fatalf("error %v, want a *TruncatedError with First %d, Back %v", err, first, back)
	}
}

// segPath returns the path of the segment file with the given index.
func segPath(t testing.TB, dir string, index uint64) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "segments", fmt.Sprintf("%020d-*.seg", index)))
	if err != nil || len(m) != 1 {
		t.Fatalf("segment %d in %s: %v %v", index, dir, m, err)
	}
	return m[0]
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	var segs []string
	for _, n := range segDirNames(t, dir) {
		if _, _, ok := segment.ParseName(n); ok {
			segs = append(segs, n)
		}
	}
	return segs
}

// segDirNames lists the names in the log's segments directory.
func segDirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "segments"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// buildLog appends n records of payloadFor(i, 200), syncs and closes, and
// returns their IDs. The DURABLE mark is removed unless keepMark, so the
// directory looks like one after a crash that followed the sync.
func buildLog(t *testing.T, dir string, n uint64, keepMark bool) []RecordID {
	t.Helper()
	l := openT(t, dir, Config{})
	ids := []RecordID{{}}
	for i := uint64(1); i <= n; i++ {
		ids = append(ids, mustAppend(t, l, payloadFor(i, 200)))
		if i == n/2 {
			// Records after this one vouch that the first half
			// was durable.
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !keepMark {
		if err := os.Remove(filepath.Join(dir, "DURABLE")); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func frameEnd(id RecordID) int64 {
	return id.Offset + segment.FrameSize(len(payloadFor(id.Seq, 200)))
}

// crashCopy copies the log directory as it is now, while the log is open:
// the image a kill -9 would leave (the page cache survives; the process's
// memory does not).
func crashCopy(t testing.TB, dir string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// copyDir copies the regular files of src (one level of subdirectories)
// into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if info.Name() == "LOCK" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dirState records every file under dir: type, size and content hash, so a
// test can check that a failed Open changed nothing.
func dirState(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if info.Mode().IsRegular() && d.Name() != "LOCK" {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		m[path] = fmt.Sprintf("%s %d %s", info.Mode().Type(), info.Size(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	delete(m, filepath.Join(dir, "LOCK")) // Open may create it
	return m
}

// sameState fails the test if dir differs from before.
func sameState(t testing.TB, dir string, before map[string]string, what string) {
	t.Helper()
	after := dirState(t, dir)
	for path, s := range before {
		if after[path] != s {
			t.Errorf("%s: %s changed: %q -> %q", what, path, s, after[path])
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("%s: %s appeared", what, path)
		}
	}
}

// writeMarkFile writes a mark file (DURABLE, FRONT, CUT) with b.
func writeMarkFile(t testing.TB, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// patch overwrites bytes of a file at off.
func patch(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func flipBit(t testing.TB, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(t, path, off, []byte{b[off] ^ 0x10})
}

// withCrashPoint calls f at the log's named crash points (tests only).
func withCrashPoint(f func(point string)) Option {
	return func(o *options) { o.crashPoint = f }
}

// telemetryT is an in-process SDK: spans recorded synchronously, metrics
// collected on demand.
type telemetryT struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func (tt *telemetryT) opts() []Option {
	return []Option{WithTracerProvider(tt.tp), WithMeterProvider(tt.mp)}
}

// collect returns the metrics by name.
func (tt *telemetryT) collect(t *testing.T) map[string]metricdata.Metrics {
	var rm metricdata.ResourceMetrics
	if err := tt.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != aofotel.ScopeName {
			t.Fatalf("scope %q, want %q", sm.Scope.Name, aofotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func newTelemetry(t *testing.T) *telemetryT {
	sr := tracetest.NewSpanRecorder()
	rd := sdkmetric.NewManualReader()
	tt := &telemetryT{
		spans:  sr,
		tp:     sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)),
		reader: rd,
		mp:     sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd)),
	}
	t.Cleanup(func() {
		tt.tp.Shutdown(context.Background())
		tt.mp.Shutdown(context.Background())
	})
	return tt
}

func spansNamed(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}
