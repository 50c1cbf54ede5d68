package aof

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// Issue 12 §2: Bounds and Metrics never look at the log while a
// TruncateBack cuts it: called during the cut, they wait for it to end
// (reader.Cuts.WaitIdle, no polling) and report the log as the cut left it.
func TestSnapshotsTakenDuringACutWaitForItsEnd(t *testing.T) {
	var (
		l       *Log
		once    sync.Once
		started = make(chan struct{})
		results = make(chan string, 2)
		looked  = make(chan error, 1)
	)
	hook := func(point string) {
		if point != crashCutMarked {
			return
		}
		once.Do(func() {
			if !cuttingNow(l) {
				looked <- fmt.Errorf("the hook at %s ran with no cut running", point)
				return
			}
			// Bounds checks, between its loads, that no cut runs.
			l.boundsPeek = func() {
				if cuttingNow(l) {
					looked <- fmt.Errorf("Bounds looked at the log while a cut ran")
				}
			}
			go func() {
				close(started)
				first, next := l.Bounds()
				results <- fmt.Sprintf("Bounds = [%d, %d)", first, next)
			}()
			go func() {
				<-started
				m := l.Metrics()
				results <- fmt.Sprintf("Metrics: NextSeq %d, DurableSeq %d", m.NextSeq, m.DurableSeq)
			}()
			<-started
		})
	}
	l = openT(t, t.TempDir(), Config{SegmentSize: 64 << 10}, withCrashPoint(hook))
	defer l.Close()
	for i := range 300 {
		if _, err := l.Append(context.Background(), make([]byte, 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateBack(context.Background(), 120); err != nil {
		t.Fatalf("TruncateBack: %v", err)
	}
	got := map[string]bool{<-results: true, <-results: true}
	for _, want := range []string{"Bounds = [1, 121)", "Metrics: NextSeq 121, DurableSeq 121"} {
		if !got[want] {
			t.Errorf("during the cut: got %v, want %q", got, want)
		}
	}
	select {
	case err := <-looked:
		t.Fatal(err)
	default:
	}
}

// cuttingNow reports whether a TruncateBack or Reset is cutting l.
func cuttingNow(l *Log) bool { return l.cuts.Gen()&1 == 1 }
