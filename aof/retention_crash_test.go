//go:build unix

package aof

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Truncation crash test: a child process runs TruncateFront or
// TruncateBack on a copy of a prepared log and kills itself with SIGKILL
// at a chosen point inside it; the parent reopens the log and checks that
// it shows the old or the new end (front), never a mix, with every record
// intact.
const (
	truncChildEnv = "AOF2_TRUNC_CHILD" // log directory; switches the child on
	truncOpEnv    = "AOF2_TRUNC_OP"    // "front SEQ" or "back SEQ"
	truncPointEnv = "AOF2_TRUNC_POINT" // crash point name and hit, "name/k"
	truncRecords  = 3000
)

// withCrashPoint calls f at the log's named crash points (tests only).
func withCrashPoint(f func(point string)) Option {
	return func(o *options) { o.crashPoint = f }
}

// TestTruncationCrashChild is the child of TestTruncationCrashes.
func TestTruncationCrashChild(t *testing.T) {
	dir := os.Getenv(truncChildEnv)
	if dir == "" {
		t.Skip("helper process of TestTruncationCrashes")
	}
	var op string
	var seq uint64
	var point string
	var hit int
	if _, err := fmt.Sscanf(os.Getenv(truncOpEnv), "%s %d", &op, &seq); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(os.Getenv(truncPointEnv), "%s", &point); err != nil {
		t.Fatal(err)
	}
	name, k, _ := bytes.Cut([]byte(point), []byte("/"))
	hit, _ = strconv.Atoi(string(k))
	l, err := Open(dir, retentionCfg, withCrashPoint(func(p string) {
		if p == string(name) {
			if hit--; hit <= 0 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute)
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	switch op {
	case "front":
		err = l.TruncateFront(ctx, seq)
	case "back":
		err = l.TruncateBack(ctx, seq)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The point was not reached: end normally (the parent checks the
	// new end).
	l.Close()
}

func TestTruncationCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes skipped in short mode")
	}
	template := t.TempDir()
	l := openT(t, template, retentionCfg)
	appendN(t, l, 1, truncRecords+1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	nsegs := len(segmentFiles(t, template))
	cases := []struct {
		op    string
		seq   uint64
		point string
		// decided: the crash came after the change was made durable,
		// so the new end (front) must show.
		decided bool
	}{
		{"back", 700, crashCutDrain + "/1", false},
		{"back", 700, crashCutBegin + "/1", false},
		{"back", 700, crashCutMarked + "/1", true},
		{"back", 700, crashCutRemove + "/1", true},
		{"back", 700, crashCutRemove + "/3", true},
		{"back", 700, crashCutSealed + "/1", true},
		{"back", 700, crashCutDone + "/1", true},
		{"back", 2990, crashCutMarked + "/1", true}, // inside the active segment
		{"back", 2990, crashCutSealed + "/1", true},
		{"back", 0, crashCutRemove + "/2", true}, // everything
		{"back", 0, crashCutDone + "/1", true},
		{"front", 1500, crashFrontMarked + "/1", true},
		{"front", 1500, crashFrontRemove + "/1", true},
		{"front", 1500, crashFrontRemove + "/2", true},
		{"front", 1500, "never/1", true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s-%d-%s", tc.op, tc.seq, tc.point), func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, template, dir)
			cmd := exec.Command(os.Args[0], "-test.run=^TestTruncationCrashChild$", "-test.timeout=1m")
			cmd.Env = append(os.Environ(), truncChildEnv+"="+dir,
				truncOpEnv+"="+fmt.Sprintf("%s %d", tc.op, tc.seq), truncPointEnv+"="+tc.point)
			out, err := cmd.CombinedOutput()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
			if !killed && err != nil {
				t.Fatalf("child failed: %v\n%s", err, out)
			}
			if tc.point != "never/1" && !killed {
				t.Fatalf("child was not killed at %s\n%s", tc.point, out)
			}

			l := openT(t, dir, retentionCfg)
			defer l.Close()
			first, next := l.FirstSeq(), l.NextSeq()
			switch tc.op {
			case "back":
				if first != 1 || (next != truncRecords+1 || tc.decided) && next != tc.seq+1 {
					t.Fatalf("after a crash in TruncateBack(%d): log [%d, %d), want [1, %d) or, once decided, [1, %d)",
						tc.seq, first, next, truncRecords+1, tc.seq+1)
				}
				if _, err := l.Read(next, nil); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Read(%d) past the end: %v", next, err)
				}
			case "front":
				if next != truncRecords+1 || first != tc.seq {
					t.Fatalf("after a crash in TruncateFront(%d): log [%d, %d), want [%d, %d)", tc.seq, first, next, tc.seq, truncRecords+1)
				}
				_, err := l.Read(first-1, nil)
				wantTruncated(t, err, first, false)
				if n := len(segmentFiles(t, dir)); n >= nsegs {
					t.Fatalf("%d segment files, as many as before TruncateFront", n)
				}
			}
			if next > first {
				checkRecords(t, l, first, next, 300)
			}
			if rep := l.Recovery(); len(rep.Truncations) != 0 {
				t.Fatalf("recovery truncated %+v: a completed or redone truncation leaves no torn tail", rep.Truncations)
			}
			// The log goes on.
			appendN(t, l, next, next+500)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openT(t, dir, retentionCfg)
			checkRecords(t, l, max(first, 1), next+500, 300)
		})
	}
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
