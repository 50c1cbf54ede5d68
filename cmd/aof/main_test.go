package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

var bg = context.Background()

// smallSegments rolls over every 64 KiB.
var smallSegments = aof.Config{SegmentSize: 64 << 10}

// payload returns a printable payload of size n for record i.
func payload(i, n int) []byte {
	b := []byte(fmt.Sprintf("record %06d ", i))
	for len(b) < n {
		b = append(b, byte('a'+(i+len(b))%26))
	}
	return b[:n]
}

// writeLog appends payloads to a new log in dir, syncs and closes it.
func writeLog(t *testing.T, dir string, cfg aof.Config, payloads [][]byte) {
	t.Helper()
	l, err := aof.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range payloads {
		if _, err := l.Append(bg, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func textPayloads(n, size int) [][]byte {
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = payload(i+1, size)
	}
	return ps
}

// aofRun runs the tool in-process.
func aofRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(bg, args, &o, &e)
	return o.String(), e.String(), code
}

// segFiles returns the log's segment file names in order.
func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// flip inverts one byte of a file.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, smallSegments, textPayloads(3, 10))
	cases := []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{nil, exitUsage, "", "usage: aof <command>"},
		{[]string{"help"}, exitOK, "commands:", ""},
		{[]string{"--help"}, exitOK, "commands:", ""},
		{[]string{"help", "dump"}, exitOK, "usage: aof dump DIR", ""},
		{[]string{"help", "nope"}, exitUsage, "", "unknown command"},
		{[]string{"nope", dir}, exitUsage, "", `unknown command "nope"`},
		{[]string{"dump", "--help"}, exitOK, "--from", ""},
		{[]string{"tail", dir, "-h"}, exitOK, "follow", ""},
		{[]string{"verify", "--help"}, exitOK, "usage: aof verify DIR", ""},
		{[]string{"inspect", "-help"}, exitOK, "usage: aof inspect DIR", ""},
		{[]string{"stats", "--help"}, exitOK, "usage: aof stats DIR", ""},
		{[]string{"dump"}, exitUsage, "", "want exactly one log directory"},
		{[]string{"dump", dir, dir}, exitUsage, "", "want exactly one log directory"},
		{[]string{"dump", dir, "--bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"dump", dir, "--format", "xml"}, exitUsage, "", "use text, hex or json"},
		{[]string{"dump", dir, "--from", "7"}, exitUsage, "", "seq 7 is past the last record 3"},
		{[]string{"inspect", filepath.Join(dir, "missing")}, exitError, "", "check the path"},
		{[]string{"inspect", filepath.Join(dir, "LOCK")}, exitError, "", "not an aof2 log directory"},
		{[]string{"stats", t.TempDir()}, exitError, "", "no segments/ directory"},
	}
	for _, c := range cases {
		out, errOut, code := aofRun(t, c.args...)
		if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errOut, c.err) {
			t.Errorf("aof %q: exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout to contain %q, stderr %q", c.args, code, c.code, out, errOut, c.out, c.err)
		}
	}
}

// rowRE matches an inspect table row: index, base, last, records, bytes,
// sealed, durable..., file.
var rowRE = regexp.MustCompile(`(?m)^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(yes|no)\s+(.*?)\s+(\S+\.seg)$`)

func TestInspectSealedAndUnsealed(t *testing.T) {
	dir := t.TempDir()
	l, err := aof.Open(dir, aof.Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// 600 records of 300 B fill a few 64 KiB segments; the last batch
	// of 10 is synced, but no record after it vouches it was.
	for i := 1; i <= 600; i++ {
		if _, err := l.Append(bg, payload(i, 300)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(bg); err != nil {
		t.Fatal(err)
	}
	for i := 601; i <= 610; i++ {
		if _, err := l.Append(bg, payload(i, 300)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(bg); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := aofRun(t, "inspect", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Log("\n" + out)
	if !strings.Contains(out, fmt.Sprintf("writer:         running, pid %d", os.Getpid())) {
		t.Errorf("writer not reported running with this pid")
	}
	if !strings.Contains(out, "records:        seq 1 to 610 (610)") {
		t.Errorf("record range missing")
	}
	rows := rowRE.FindAllStringSubmatch(out, -1)
	if len(rows) < 3 {
		t.Fatalf("want several segments, got %d rows", len(rows))
	}
	var total int
	for i, r := range rows {
		var records int
		fmt.Sscan(r[4], &records)
		total += records
		last := i == len(rows)-1
		if sealed := r[6] == "yes"; sealed == last {
			t.Errorf("row %d: sealed %s", i, r[6])
		}
		if !last && r[7] != "all" {
			t.Errorf("row %d: durable %q", i, r[7])
		}
		if last && !strings.HasSuffix(r[7], "+10 unproven") {
			t.Errorf("last row: durable %q, want the last 10 unproven", r[7])
		}
	}
	if total != 610 {
		t.Errorf("records add up to %d", total)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, smallSegments, textPayloads(600, 300))
	out, errOut, code := aofRun(t, "verify", dir)
	if code != exitOK || !strings.Contains(out, "600 records") || !strings.Contains(out, "ok: no problems") {
		t.Fatalf("clean log: exit %d\n%s%s", code, out, errOut)
	}
	// Flip a payload byte of the third record of the first (sealed)
	// segment.
	files := segFiles(t, dir)
	off := int64(segment.HeaderSize) + 2*segment.FrameSize(300)
	flip(t, filepath.Join(dir, "segments", files[0]), off+segment.FrameHeaderSize+100)
	out, errOut, code = aofRun(t, "verify", dir)
	want := fmt.Sprintf("CORRUPT: %s offset %d:", files[0], off)
	if code != exitCorrupt || !strings.Contains(out, want) || !strings.Contains(errOut, "RecoverRepair") {
		t.Fatalf("flipped byte: exit %d, want 1 and %q\n%s%s", code, want, out, errOut)
	}
	// Only that record (the walk resumes at the next index entry), and
	// no false alarm about the next segment.
	if n := strings.Count(out, "CORRUPT: "); n != 2 || !strings.Contains(out, "CORRUPT: 1 problem(s)") {
		t.Errorf("%d problems reported in %s, want 1:\n%s", n, files[0], out)
	}
	// dump stops there too, after printing the two good records.
	out, errOut, code = aofRun(t, "dump", dir)
	if code != exitCorrupt || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "aof verify") {
		t.Fatalf("dump over corruption: exit %d\n%s%s", code, out, errOut)
	}
}

func TestVerifyTornTailAndCorruptTail(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, smallSegments, textPayloads(100, 300))
	files := segFiles(t, dir)
	last := filepath.Join(dir, "segments", files[len(files)-1])
	// A crash: no DURABLE mark, and half a record after the last one.
	if err := os.Remove(filepath.Join(dir, "DURABLE")); err != nil {
		t.Fatal(err)
	}
	out, _, _ := aofRun(t, "inspect", dir)
	rows := rowRE.FindAllStringSubmatch(out, -1)
	var end int64
	fmt.Sscan(rows[len(rows)-1][5], &end)
	end += segment.HeaderSize
	f, err := os.OpenFile(last, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xab}, 40), end); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, errOut, code := aofRun(t, "verify", dir)
	want := fmt.Sprintf("torn: %s offset %d: torn tail: 40 bytes", files[len(files)-1], end)
	if code != exitOK || !strings.Contains(out, want) {
		t.Fatalf("torn tail: exit %d, want 0 and %q\n%s%s", code, want, out, errOut)
	}
	out, errOut, code = aofRun(t, "dump", dir, "--format", "json")
	if code != exitOK || strings.Count(out, "\n") != 100 || !strings.Contains(errOut, "torn tail") {
		t.Fatalf("dump to a torn tail: exit %d\n%s", code, errOut)
	}
	// Now damage a record that a later record vouches was durable: the
	// first frame of the unsealed segment (records after it carry hints
	// past it once a flush made it durable, which Close did, and the
	// DURABLE mark is gone): corruption, not a torn tail.
	dir2 := t.TempDir()
	l, err := aof.Open(dir2, aof.Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if _, err := l.Append(bg, payload(i, 100)); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(bg); err != nil {
			t.Fatal(err)
		}
	}
	files = segFiles(t, dir2)
	flip(t, filepath.Join(dir2, "segments", files[0]), segment.HeaderSize+segment.FrameHeaderSize+3)
	out, errOut, code = aofRun(t, "verify", dir2)
	want = fmt.Sprintf("CORRUPT: %s offset %d:", files[0], segment.HeaderSize)
	if code != exitCorrupt || !strings.Contains(out, want) {
		t.Fatalf("vouched damage: exit %d, want 1 and %q\n%s%s", code, want, out, errOut)
	}
	if _, _, code := aofRun(t, "inspect", dir2); code != exitCorrupt {
		t.Errorf("inspect: exit %d, want 1", code)
	}
	flip(t, filepath.Join(dir2, "segments", files[0]), segment.HeaderSize+segment.FrameHeaderSize+3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDumpFormats(t *testing.T) {
	dir := t.TempDir()
	payloads := [][]byte{
		[]byte("hello"),
		{},
		{0, 1, 2, 0xff, 0xfe},
		[]byte("line\nwith \"quotes\" and ünïcode"),
		bytes.Repeat([]byte("x"), 500),
	}
	for i := range 400 {
		payloads = append(payloads, payload(i+6, 200+i%50))
	}
	writeLog(t, dir, smallSegments, payloads)

	out, errOut, code := aofRun(t, "dump", dir, "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		var r jsonRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if r.Seq != uint64(n+1) || !bytes.Equal(r.Payload, payloads[n]) || r.Len != len(payloads[n]) {
			t.Fatalf("line %d: seq %d payload %q, want %q", n+1, r.Seq, r.Payload, payloads[n])
		}
		ts, err := time.Parse(time.RFC3339Nano, r.TS)
		if err != nil || ts.UnixNano() != r.TSNanos {
			t.Fatalf("line %d: ts %q / %d: %v", n+1, r.TS, r.TSNanos, err)
		}
		n++
	}
	if n != len(payloads) {
		t.Fatalf("%d records, want %d", n, len(payloads))
	}

	out, _, code = aofRun(t, "dump", dir, "--limit", "5")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != exitOK || len(lines) != 5 {
		t.Fatalf("text: exit %d, %d lines:\n%s", code, len(lines), out)
	}
	wantEnds := []string{` 5 "hello"`, ` 0 ""`, ` 5 hex:000102fffe`, `"line\nwith \"quotes\" and ünïcode"`, `500 "` + strings.Repeat("x", 96) + `"...(+404 bytes)`}
	for i, w := range wantEnds {
		if !strings.HasPrefix(lines[i], fmt.Sprint(i+1)+" ") || !strings.HasSuffix(lines[i], w) {
			t.Errorf("text line %d: %q, want it to end with %q", i+1, lines[i], w)
		}
	}

	out, _, code = aofRun(t, "dump", dir, "--from", "3", "--limit", "1", "--format", "hex")
	if code != exitOK || !strings.HasPrefix(out, "# seq 3 ") || !strings.Contains(out, "00000000  00 01 02 ff fe") {
		t.Fatalf("hex: exit %d\n%s", code, out)
	}

	// Flags before the directory work too; --from inside a later
	// segment seeks through its footer index.
	out, _, code = aofRun(t, "dump", "--from", "300", "--limit", "2", dir)
	if code != exitOK || !strings.HasPrefix(out, "300 ") || !strings.Contains(out, "\n301 ") {
		t.Fatalf("from 300: exit %d\n%s", code, out)
	}

	// Retention (simulated): the first segment is gone.
	files := segFiles(t, dir)
	if err := os.Remove(filepath.Join(dir, "segments", files[0])); err != nil {
		t.Fatal(err)
	}
	_, base, _ := segment.ParseName(files[1])
	_, errOut, code = aofRun(t, "dump", dir, "--from", "2")
	want := fmt.Sprintf("seq 2 is before the first retained record %d; use --from %d", base, base)
	if code != exitUsage || !strings.Contains(errOut, want) {
		t.Fatalf("before first: exit %d, want %q in %s", code, want, errOut)
	}
	out, _, _ = aofRun(t, "dump", dir, "--limit", "1")
	if !strings.HasPrefix(out, fmt.Sprint(base)+" ") {
		t.Fatalf("default --from is not the first retained record %d: %s", base, out)
	}
}

func TestStats(t *testing.T) {
	dir := t.TempDir()
	var payloads [][]byte
	for i := 1; i <= 1000; i++ {
		payloads = append(payloads, payload(i, 20+i%100)) // 20..119
	}
	writeLog(t, dir, smallSegments, payloads)
	out, errOut, code := aofRun(t, "stats", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Log("\n" + out)
	var sum int64
	for _, p := range payloads {
		sum += int64(len(p))
	}
	for _, want := range []string{
		"records:       1000 (seq 1 to 1000)",
		fmt.Sprintf("payload bytes: %d ", sum),
		"payload size:  min 20  p50 69  p99 118  max 119  mean 69.5 bytes",
		"sealed",
		"records/s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lack %q", want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestTailFollowsLiveWriter(t *testing.T) {
	dir := t.TempDir()
	l, err := aof.Open(dir, smallSegments)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= 30; i++ {
		if _, err := l.Append(bg, payload(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(bg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	var out, errOut syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"tail", "-f", "-n", "5", dir}, &out, &errOut) }()

	waitLines := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s := out.String()
			if lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n"); s != "" && len(lines) >= n {
				return lines
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %d lines; have:\n%s\nstderr: %s", n, s, errOut.String())
			}
			time.Sleep(time.Millisecond)
		}
	}
	lines := waitLines(5)
	if !strings.HasPrefix(lines[0], "26 ") || !strings.HasPrefix(lines[4], "30 ") {
		t.Fatalf("last 5: %q", lines)
	}
	// 2000 records of 100 B roll over several 64 KiB segments; the
	// flusher writes them on its own (no Sync).
	for i := 31; i <= 2030; i++ {
		if _, err := l.Append(bg, payload(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	lines = waitLines(2005)
	for i, line := range lines {
		if !strings.HasPrefix(line, fmt.Sprintf("%d ", 26+i)) {
			t.Fatalf("line %d: %q", i, line)
		}
	}
	if len(segFiles(t, dir)) < 3 {
		t.Fatalf("no rollover happened")
	}
	cancel()
	if code := <-done; code != exitOK || errOut.String() != "" {
		t.Fatalf("tail -f: exit %d, stderr %s", code, errOut.String())
	}
}

// snapshot records every file under dir: size, mtime and content hash.
func snapshot(t *testing.T, dir string) map[string]string {
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
		if !d.IsDir() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		m[path] = fmt.Sprintf("%d %s %s %s", info.Size(), info.ModTime().Format(time.RFC3339Nano), info.Mode(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReadOnlyWhileWriterHoldsLock runs every command against a log whose
// writer holds the lock, and checks that no file changed and the writer
// works on.
func TestReadOnlyWhileWriterHoldsLock(t *testing.T) {
	dir := t.TempDir()
	l, err := aof.Open(dir, aof.Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= 500; i++ {
		if _, err := l.Append(bg, payload(i, 300)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(bg); err != nil {
		t.Fatal(err)
	}
	// The segment preparer works in the background: wait until the
	// directory is still.
	before := snapshot(t, dir)
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		now := snapshot(t, dir)
		if fmt.Sprint(now) == fmt.Sprint(before) {
			break
		}
		before = now
	}
	for _, args := range [][]string{
		{"inspect", dir},
		{"verify", dir},
		{"dump", dir, "--format", "json"},
		{"dump", dir, "--format", "hex", "--from", "250"},
		{"tail", dir, "-n", "3"},
		{"stats", dir},
	} {
		out, errOut, code := aofRun(t, args...)
		if code != exitOK || out == "" {
			t.Errorf("aof %q: exit %d\n%s", args, code, errOut)
		}
	}
	after := snapshot(t, dir)
	for path, s := range before {
		if after[path] != s {
			t.Errorf("%s changed: %s -> %s", path, s, after[path])
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("%s appeared", path)
		}
	}
	id, err := l.Append(bg, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FlushUntil(bg, id); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRetentionMarks: after TruncateFront the tool starts at the front
// DIR/FRONT records, and refuses to dump before it.
func TestRetentionMarks(t *testing.T) {
	dir := t.TempDir()
	l, err := aof.Open(dir, smallSegments)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range textPayloads(2000, 200) {
		if _, err := l.Append(bg, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateFront(bg, 1234); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := aofRun(t, "inspect", dir)
	if code != exitOK || !strings.Contains(out, "records before seq 1234 removed") || !strings.Contains(out, "seq 1234 to 2000") {
		t.Fatalf("inspect exit %d:\n%s%s", code, out, errOut)
	}
	out, errOut, code = aofRun(t, "dump", dir, "--limit", "1", "--format", "json")
	if code != exitOK || !strings.Contains(out, `"seq":1234`) {
		t.Fatalf("dump from the front: exit %d:\n%s%s", code, out, errOut)
	}
	if _, errOut, code = aofRun(t, "dump", dir, "--from", "5"); code != exitUsage || !strings.Contains(errOut, "1234") {
		t.Fatalf("dump before the front: exit %d: %s", code, errOut)
	}
	if out, errOut, code = aofRun(t, "verify", dir); code != exitOK {
		t.Fatalf("verify after TruncateFront: exit %d:\n%s%s", code, out, errOut)
	}
}

// TestZerosInsideSealedSegment: zeros where a sealed segment's footer says
// records are is corruption for every command that reads records, not an
// early end of the log.
func TestZerosInsideSealedSegment(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, smallSegments, textPayloads(1000, 200))
	first := filepath.Join(dir, "segments", segFiles(t, dir)[0])
	f, err := os.OpenFile(first, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The frame header of the fourth record: 64-byte header, then frames
	// of 32 + 200 bytes.
	if _, err := f.WriteAt(make([]byte, 32), 64+3*232); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, cmd := range []string{"dump", "stats", "verify"} {
		out, errOut, code := aofRun(t, cmd, dir)
		if code != exitCorrupt {
			t.Fatalf("%s: exit %d, want %d (corruption)\n%s%s", cmd, code, exitCorrupt, out, errOut)
		}
	}
}

// TestMarkFiles: a damaged CUT mark (aof.Open refuses the log) is
// corruption with advice; a damaged DURABLE mark (the writer ignores it)
// is a warning only.
func TestMarkFiles(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, smallSegments, textPayloads(100, 200))
	if err := os.WriteFile(filepath.Join(dir, "DURABLE"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := aofRun(t, "verify", dir)
	if code != exitOK || !strings.Contains(out, "warning: DURABLE") {
		t.Fatalf("verify with an empty DURABLE: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "CUT"), []byte("not a mark"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := aof.Open(dir, smallSegments); err == nil {
		t.Fatal("aof.Open accepted a damaged CUT mark")
	}
	out, errOut, code = aofRun(t, "verify", dir)
	if code != exitCorrupt || !strings.Contains(out, "CORRUPT: CUT") || !strings.Contains(out, "remove it") {
		t.Fatalf("verify with a damaged CUT: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = aofRun(t, "inspect", dir)
	if !strings.Contains(out, "cut mark:       unusable") {
		t.Fatalf("inspect does not show the damaged CUT mark:\n%s", out)
	}
}

// runNoHang runs the tool in-process and returns what it printed and its
// exit status. If it blocks on the FIFO at fifo (issue 11 defect 13), the
// FIFO is opened for writing to release it and the test fails: a guard
// against a hang, not a timing assertion.
func runNoHang(t *testing.T, fifo string, args ...string) (out string, code int) {
	t.Helper()
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		var o, e bytes.Buffer
		code := run(bg, args, &o, &e)
		done <- result{o.String() + e.String(), code}
	}()
	select {
	case r := <-done:
		return r.out, r.code
	case <-time.After(time.Minute):
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatalf("aof %q blocked on the FIFO %s", args, fifo)
		return "", 0
	}
}

// Issue 11 defect 13: no command blocks on a FIFO where the log keeps a
// file, and verify reports it, naming it.
func TestDefect13ToolDoesNotBlockOnFifo(t *testing.T) {
	for _, name := range []string{"DURABLE", "FRONT", "CUT", "segment"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeLog(t, dir, smallSegments, textPayloads(1000, 200))
			path := filepath.Join(dir, name)
			if name == "segment" {
				segs := segFiles(t, dir)
				index, base, _ := segment.ParseName(segs[len(segs)-1])
				path = filepath.Join(dir, "segments", segment.Name(index+1, base+1000))
			}
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			for _, cmd := range []string{"inspect", "verify", "dump", "tail", "stats"} {
				out, code := runNoHang(t, path, cmd, dir)
				if cmd == "verify" && (code == exitOK || !strings.Contains(out, filepath.Base(path)) || !strings.Contains(out, "FIFO")) {
					t.Errorf("verify with a FIFO %s: exit %d\n%s", name, code, out)
				}
			}
		})
	}
}

// Issue 11 defects 9 and 10: verify rejects the CUT and FRONT marks that
// aof.Open rejects (a CUT that keeps a record its segment does not hold, a
// FRONT past the end of the log), and accepts those it accepts.
func TestDefect09And10VerifyJudgesMarks(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, smallSegments, textPayloads(1000, 200))
	segs := segFiles(t, dir)
	index, base, _ := segment.ParseName(segs[1])
	var b [segment.DurableMarkSize]byte
	for _, c := range []struct {
		file string
		mark func()
		ok   bool
	}{
		{"CUT", func() { segment.EncodeCutMark(b[:], segment.CutMark{Index: 1, LastSeq: base + 10}) }, false},
		{"CUT", func() { segment.EncodeCutMark(b[:], segment.CutMark{Index: index, LastSeq: base - 1}) }, false},
		{"CUT", func() { segment.EncodeCutMark(b[:], segment.CutMark{Index: 0, LastSeq: 500}) }, false},
		{"CUT", func() { segment.EncodeCutMark(b[:], segment.CutMark{Index: index, LastSeq: base + 10}) }, true},
		{"FRONT", func() { segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: 1 << 40}) }, false},
		{"FRONT", func() { segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: 1002}) }, false},
		{"FRONT", func() { segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: 1001}) }, true},
	} {
		c.mark()
		path := filepath.Join(dir, c.file)
		if err := os.WriteFile(path, b[:], 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := aofRun(t, "verify", dir)
		if c.ok && code != exitOK || !c.ok && (code != exitCorrupt || !strings.Contains(out, "CORRUPT: "+c.file)) {
			t.Errorf("verify with %s %x (consistent: %v): exit %d\n%s%s", c.file, b[8:24], c.ok, code, out, errOut)
		}
		// aof.Open judges it the same way (on a copy: it completes
		// what it accepts).
		cp := t.TempDir()
		copyTree(t, dir, cp)
		l, err := aof.Open(cp, smallSegments)
		if err == nil {
			l.Close()
		}
		if c.ok != (err == nil) || err != nil && !errors.Is(err, aof.ErrCorrupt) {
			t.Errorf("aof.Open with %s %x (consistent: %v): %v", c.file, b[8:24], c.ok, err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Issue 12, Reset: a log a crash left in the middle of a Reset (its CUT
// mark written, the old segments and an older FRONT still there) is, for
// the tool as for aof.Open, empty at the reset's next: verify accepts it
// and Span says so, below and above the old range alike; a reset mark
// that claims to keep a segment is corrupt for both.
func TestResetMarkVerifyAndSpan(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, smallSegments, textPayloads(1000, 200))
	var b [segment.DurableMarkSize]byte
	segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: 300})
	if err := os.WriteFile(filepath.Join(dir, "FRONT"), b[:], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mark segment.CutMark
		ok   bool
	}{
		{segment.CutMark{LastSeq: 99, Reset: true}, true},   // below the front
		{segment.CutMark{LastSeq: 4999, Reset: true}, true}, // above the end
		{segment.CutMark{Index: 2, LastSeq: 99, Reset: true}, false},
	} {
		segment.EncodeCutMark(b[:], c.mark)
		path := filepath.Join(dir, "CUT")
		if err := os.WriteFile(path, b[:], 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := aofRun(t, "verify", dir)
		if c.ok && code != exitOK || !c.ok && (code != exitCorrupt || !strings.Contains(out, "CORRUPT: CUT")) {
			t.Errorf("verify with reset mark %+v: exit %d\n%s%s", c.mark, code, out, errOut)
		}
		if c.ok {
			d, err := inspect.List(vfs.Default, dir)
			if err != nil {
				t.Fatal(err)
			}
			if first, next, err := d.Span(); err != nil || first != c.mark.LastSeq+1 || next != first {
				t.Errorf("Span with reset mark %+v: [%d, %d), %v; want empty at %d", c.mark, first, next, err, c.mark.LastSeq+1)
			}
		}
		cp := t.TempDir()
		copyTree(t, dir, cp)
		l, err := aof.Open(cp, smallSegments)
		if c.ok != (err == nil) || err != nil && !errors.Is(err, aof.ErrCorrupt) {
			t.Errorf("aof.Open with reset mark %+v: %v", c.mark, err)
		}
		if err == nil {
			if l.FirstSeq() != c.mark.LastSeq+1 || l.NextSeq() != c.mark.LastSeq+1 {
				t.Errorf("aof.Open with reset mark %+v: log [%d, %d)", c.mark, l.FirstSeq(), l.NextSeq())
			}
			l.Close()
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 12, file modes: the tool only reads. Every command leaves every
// file and directory of a log as it found it, modes included, for a log
// with the default private modes and one with widened modes.
func TestToolNeverChangesModes(t *testing.T) {
	for _, c := range []struct {
		cfg       aof.Config
		file, dir fs.FileMode
	}{
		{smallSegments, 0o600, 0o700},
		{aof.Config{SegmentSize: 64 << 10, FileMode: 0o640, DirMode: 0o750}, 0o640, 0o750},
	} {
		dir := filepath.Join(t.TempDir(), "log")
		l, err := aof.Open(dir, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 500; i++ {
			if _, err := l.Append(bg, payload(i, 300)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.TruncateFront(bg, 100); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, dir)
		for _, args := range [][]string{
			{"inspect", dir},
			{"verify", dir},
			{"dump", dir, "--format", "json"},
			{"tail", dir, "-n", "3"},
			{"stats", dir},
		} {
			if out, errOut, code := aofRun(t, args...); code != exitOK || out == "" {
				t.Errorf("aof %q: exit %d\n%s", args, code, errOut)
			}
		}
		after := snapshot(t, dir)
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("the tool changed the log:\nbefore %v\nafter  %v", before, after)
		}
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			want := c.file
			if d.IsDir() {
				want = c.dir
			}
			// The umask may narrow them, never widen.
			if info.Mode().Perm()&^want != 0 {
				t.Errorf("%s: mode %v, want at most %v", path, info.Mode(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
