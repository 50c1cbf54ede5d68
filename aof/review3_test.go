package aof

import (
	"context"
	"testing"
	"time"
)

// Review of issue 12's engine code: ReadRange must not block for good when
// a TruncateBack cuts the rest of its range under it (the follower it uses
// waits at the new end for records that may never come).
// The same for a Reset to the next record of the range.
func TestReadRangeEndsWhenTruncateBackCutsTheRangeUnderIt(t *testing.T) {
	t.Run("truncate-back", func(t *testing.T) {
		readRangeUnderCut(t, 1, func(l *Log) error { return l.TruncateBack(context.Background(), 3) })
	})
	t.Run("reset", func(t *testing.T) {
		readRangeUnderCut(t, 4, func(l *Log) error { return l.Reset(context.Background(), 4) })
	})
}

// readRangeUnderCut runs ReadRange(2, 6) over records 1..5, cuts the log
// with cut once it has yielded 3, and wants the range to end with a
// *TruncatedError (Back set, First first).
func readRangeUnderCut(t *testing.T, first uint64, cut func(*Log) error) {
	l := openT(t, t.TempDir(), Config{SegmentSize: 64 << 10, NoBackgroundFlush: true})
	defer l.Close()
	appendN(t, l, 1, 6) // records 1..5
	type result struct {
		seqs []uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		for rec, err := range l.ReadRange(2, 6, 0, CopyPayloads()) {
			if err != nil {
				res.err = err
				break
			}
			res.seqs = append(res.seqs, rec.Seq)
			if rec.Seq == 3 {
				// The rest of the range, [4, 6), goes.
				if err := cut(l); err != nil {
					res.err = err
					break
				}
			}
		}
		done <- res
	}()
	select {
	case res := <-done:
		if len(res.seqs) != 2 || res.seqs[0] != 2 || res.seqs[1] != 3 {
			t.Fatalf("ReadRange yielded %v, want [2 3]", res.seqs)
		}
		wantTruncated(t, res.err, first, true)
	case <-time.After(time.Minute):
		// A guard against a hang, not a timing assertion: release the
		// range with Close.
		l.Close()
		<-done
		t.Fatal("ReadRange blocked at the end a cut left, inside its range")
	}
}
