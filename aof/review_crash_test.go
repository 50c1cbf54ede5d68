//go:build unix

package aof

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/aof2/aof2/segment"
)

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
