//go:build unix

package aof

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aof2/aof2/segment"
)

// Truncation crash test: a child process runs TruncateFront, TruncateBack
// or Reset on a copy of a prepared log and kills itself with SIGKILL at a
// chosen point inside it; the parent reopens the log and checks that it
// shows the old or the new end (front), never a mix, with every record
// intact: for Reset, the log as before or empty at the reset's next.
const (
	truncChildEnv = "AOF2_TRUNC_CHILD" // log directory; switches the child on
	truncOpEnv    = "AOF2_TRUNC_OP"    // "front SEQ", "back SEQ" or "reset SEQ"
	truncPointEnv = "AOF2_TRUNC_POINT" // crash point name and hit, "name/k"
	truncRecords  = 3000
)

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
	case "reset":
		err = l.Reset(ctx, seq)
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
	// For Reset: the same log with its front at 1500, and an empty log.
	fronted := t.TempDir()
	copyDir(t, template, fronted)
	l = openT(t, fronted, retentionCfg)
	if err := l.TruncateFront(ctx, 1500); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if err := openT(t, empty, retentionCfg).Close(); err != nil {
		t.Fatal(err)
	}
	templates := map[string]string{"": template, "fronted": fronted, "empty": empty}
	type tcase struct {
		op    string
		seq   uint64
		point string
		// decided: the crash came after the change was made durable,
		// so the new end (front) must show.
		decided bool
		// from names the template for Reset: "" (the log [1, 3001)),
		// "fronted" ([1500, 3001)) or "empty" ([1, 1)).
		from string
	}
	resetPoints := []struct {
		point   string
		decided bool
	}{
		{crashCutDrain + "/1", false},
		{crashCutBegin + "/1", false},
		{crashResetMarked + "/1", true},
		{crashResetFront + "/1", true},
		{crashCutRemove + "/1", true},
		{crashCutSealed + "/1", true},
		{crashCutDone + "/1", true},
		{"never/1", true},
	}
	var resets []tcase
	for _, r := range []struct {
		from string
		seq  uint64
	}{{"fronted", 100}, {"", 5000}, {"empty", 700}, {"", 1000}} {
		for _, p := range resetPoints {
			resets = append(resets, tcase{"reset", r.seq, p.point, p.decided, r.from})
		}
	}
	resets = append(resets, tcase{"reset", 100, crashCutRemove + "/3", true, "fronted"})
	cases := append(resets, []tcase{
		{"back", 700, crashCutDrain + "/1", false, ""},
		{"back", 700, crashCutBegin + "/1", false, ""},
		{"back", 700, crashCutMarked + "/1", true, ""},
		{"back", 700, crashCutRemove + "/1", true, ""},
		{"back", 700, crashCutRemove + "/3", true, ""},
		{"back", 700, crashCutSealed + "/1", true, ""},
		{"back", 700, crashCutDone + "/1", true, ""},
		{"back", 2990, crashCutMarked + "/1", true, ""}, // inside the active segment
		{"back", 2990, crashCutSealed + "/1", true, ""},
		{"back", 0, crashCutRemove + "/2", true, ""}, // everything
		{"back", 0, crashCutDone + "/1", true, ""},
		{"front", 1500, crashFrontMarked + "/1", true, ""},
		{"front", 1500, crashFrontRemove + "/1", true, ""},
		{"front", 1500, crashFrontRemove + "/2", true, ""},
		{"front", 1500, "never/1", true, ""},
	}...)
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s%s-%d-%s", tc.from, tc.op, tc.seq, tc.point), func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, templates[tc.from], dir)
			oldFirst, oldNext := uint64(1), uint64(truncRecords+1)
			switch tc.from {
			case "fronted":
				oldFirst = 1500
			case "empty":
				oldNext = 1
			}
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
			case "reset":
				// As before, or, once decided, empty at seq.
				if (first != oldFirst || next != oldNext || tc.decided) && (first != tc.seq || next != tc.seq) {
					t.Fatalf("after a crash in Reset(%d): log [%d, %d), want [%d, %d) or, once decided, [%d, %d)",
						tc.seq, first, next, oldFirst, oldNext, tc.seq, tc.seq)
				}
				if first > 1 {
					_, err := l.Read(first-1, nil)
					wantTruncated(t, err, first, false)
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

// TestReviewCutEverythingAfterFrontCrash: TruncateBack(FirstSeq()-1) when
// the front is at the first segment's first record removes every segment
// file before it makes the fresh one. A crash after the CUT mark was
// durable must give the new end: an empty log whose next record is the
// old front. Recovery used to find no segment at all and start a new log
// at seq 1, so the sequence numbers went back to 1 (and with them every
// RecordID a Raft store had handed out).
func TestReviewCutEverythingAfterFrontCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes skipped in short mode")
	}
	template := t.TempDir()
	l := openT(t, template, retentionCfg)
	appendN(t, l, 1, truncRecords+1)
	_, front, _ := segment.ParseName(segmentFiles(t, template)[2])
	if err := l.TruncateFront(ctx, front); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, base, _ := segment.ParseName(segmentFiles(t, template)[0]); base != front {
		t.Fatalf("first segment starts at %d, want the front %d", base, front)
	}
	for _, point := range []string{crashCutRemove + "/1", crashCutSealed + "/1", "never/1"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, template, dir)
			cmd := exec.Command(os.Args[0], "-test.run=^TestTruncationCrashChild$", "-test.timeout=1m")
			cmd.Env = append(os.Environ(), truncChildEnv+"="+dir,
				truncOpEnv+"="+fmt.Sprintf("back %d", front-1), truncPointEnv+"="+point)
			out, err := cmd.CombinedOutput()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
			if !killed && err != nil {
				t.Fatalf("child failed: %v\n%s", err, out)
			}
			l := openT(t, dir, retentionCfg)
			defer l.Close()
			if first, next := l.FirstSeq(), l.NextSeq(); first != front || next != front {
				t.Fatalf("after TruncateBack(%d) and a crash at %s: log [%d, %d), want [%d, %d)", front-1, point, first, next, front, front)
			}
			if id := mustAppend(t, l, payloadFor(front, 300)); id.Seq != front {
				t.Fatalf("first append after the cut got seq %d, want %d", id.Seq, front)
			}
		})
	}
}
