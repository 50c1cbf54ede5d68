package aof

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/aof2/aof2/segment"
)

// Table tests of planRecovery over hand-built facts: no files. Each case
// is a directory as gatherRecovery would describe it; the plan (or the
// error) is what recovery must decide for it.

const planRec = 64 // bytes per record in the hand-built facts

// sealedF is a sealed segment whose footer verified.
func sealedF(index, base, records uint64) segFacts {
	return segFacts{name: segment.Name(index, base), index: index, hdr: segment.Header{Index: index, BaseSeq: base},
		sealed: true, end: segment.HeaderSize + int64(records)*planRec, records: records}
}

// unsealedF is an unsealed segment whose scan found count good records,
// all of them vouched durable, ending cleanly in zeros.
func unsealedF(index, base, count uint64) segFacts {
	end := segment.HeaderSize + int64(count)*planRec
	return segFacts{name: segment.Name(index, base), index: index, hdr: segment.Header{Index: index, BaseSeq: base},
		end: end, records: count, scan: segment.ScanResult{End: end, Count: count, MaxHint: end, DurableCount: count}}
}

// failedF is a segment file segment.Open failed on with err.
func failedF(index, base uint64, err error) segFacts {
	return segFacts{name: segment.Name(index, base), index: index, err: err}
}

// torn gives sf a torn tail of n bytes after its good records.
func (sf segFacts) torn(n int64) segFacts {
	sf.scan.Garbage = n
	return sf
}

// corruptMid gives sf bad bytes after its good records that a later
// record vouched durable.
func (sf segFacts) corruptMid() segFacts {
	sf.scan.Garbage = 4 * planRec
	sf.scan.Corrupt = segment.Corrupt(sf.name, sf.index, sf.scan.End, "bad record before a record appended after it was durable")
	return sf
}

// notSynced makes none of sf's records vouched durable: the segment holds
// nothing durable (MaxHint is the header).
func (sf segFacts) notSynced() segFacts {
	sf.scan.MaxHint, sf.scan.DurableCount = segment.HeaderSize, 0
	return sf
}

// backlog makes only the first n of sf's records vouched durable.
func (sf segFacts) backlog(n uint64) segFacts {
	sf.scan.MaxHint, sf.scan.DurableCount = segment.HeaderSize+int64(n)*planRec, n
	return sf
}

func noHeader(index, base uint64) segFacts {
	return failedF(index, base, fmt.Errorf("%w: %s: header is all zeros and nothing in the file was ever synced", segment.ErrNoHeader, segment.Name(index, base)))
}

func newer(index, base uint64) segFacts {
	return failedF(index, base, fmt.Errorf("segment %s: %w", segment.Name(index, base), segment.ErrUnsupportedVersion))
}

func badHeader(index, base uint64) segFacts {
	name := segment.Name(index, base)
	return failedF(index, base, segment.Corrupt(name, index, 0, "header checksum mismatch"))
}

// planView is a plan in words, for comparison.
type planView struct {
	keep     []string // "index trusted|scanned[ cut-torn|cut-corrupt][ backlog=N][ cut-here]"
	temps    []string
	dropped  []string
	removals []string
	repairs  []string
	truncs   []string // "index@offset+bytes"
	fresh    string   // "index@base", or ""
	front    uint64   // FRONT after the cut, 0 for none
	first    uint64
	unmark   bool // remove the DURABLE mark
}

func viewPlan(f *recoveryFacts, p recoveryPlan) planView {
	v := planView{temps: p.temps, dropped: p.dropped, removals: p.removals, repairs: p.repairs,
		front: frontSeq(p.front), first: p.firstSeq(f), unmark: p.removeDurableMark}
	for _, k := range p.keep {
		sf := f.files[k.file]
		s := fmt.Sprintf("%d scanned", sf.index)
		if k.trusted {
			s = fmt.Sprintf("%d trusted", sf.index)
		}
		switch {
		case k.scan.Corrupt != nil:
			s += " cut-corrupt"
		case k.scan.Garbage > 0:
			s += " cut-torn"
		}
		if b := k.scan.End - k.scan.MaxHint; !k.trusted && b > 0 {
			s += fmt.Sprintf(" backlog=%d", b)
		}
		if k.cutHere {
			s += " cut-here"
		}
		v.keep = append(v.keep, s)
	}
	for _, t := range p.truncations {
		v.truncs = append(v.truncs, fmt.Sprintf("%d@%d+%d", t.Segment, t.Offset, t.Bytes))
	}
	if p.fresh {
		v.fresh = fmt.Sprintf("%d@%d", p.freshIndex, p.freshBase)
	}
	return v
}

func (v planView) String() string {
	return fmt.Sprintf("keep %q temps %q dropped %q removals %q repairs %q truncs %q fresh %q front %d first %d unmark %v",
		v.keep, v.temps, v.dropped, v.removals, v.repairs, v.truncs, v.fresh, v.front, v.first, v.unmark)
}

func names(fs ...segFacts) []string {
	var n []string
	for _, f := range fs {
		n = append(n, f.name)
	}
	return n
}

// Issue 12: every kind of decision planRecovery makes, over hand-built
// facts.
func TestPlanRecoveryDecisions(t *testing.T) {
	const (
		hs = segment.HeaderSize
		pr = planRec
	)
	cases := []struct {
		name   string
		facts  recoveryFacts
		repair bool
		want   planView
	}{
		{
			name:  "empty directory: a fresh first segment",
			facts: recoveryFacts{},
			want:  planView{fresh: "1@1", first: 1},
		},
		{
			name:  "empty directory after TruncateFront: the fresh segment starts at the front",
			facts: recoveryFacts{front: &segment.FrontMark{Seq: 42}},
			want:  planView{fresh: "1@42", front: 42, first: 42},
		},
		{
			name:  "sealed segments are trusted, the unsealed tail scanned and resumed",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), sealedF(2, 11, 10), unsealedF(3, 21, 5)}},
			want:  planView{keep: []string{"1 trusted", "2 trusted", "3 scanned"}, first: 1},
		},
		{
			name:  "every segment sealed: a fresh active segment follows the last",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), sealedF(2, 11, 10)}},
			want:  planView{keep: []string{"1 trusted", "2 trusted"}, fresh: "3@21", first: 1},
		},
		{
			name:  "prepared files never used are removed",
			facts: recoveryFacts{temps: []string{"7.seg.tmp"}, files: []segFacts{unsealedF(1, 1, 3)}},
			want:  planView{keep: []string{"1 scanned"}, temps: []string{"7.seg.tmp"}, first: 1},
		},
		{
			name:  "a torn tail is cut",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 11, 4).torn(100)}},
			want:  planView{keep: []string{"1 trusted", "2 scanned cut-torn"}, first: 1},
		},
		{
			name:  "bytes not proven durable are kept as backlog, to be rewritten",
			facts: recoveryFacts{files: []segFacts{unsealedF(1, 1, 10).backlog(6)}},
			want:  planView{keep: []string{fmt.Sprintf("1 scanned backlog=%d", 4*pr)}, first: 1},
		},
		{
			name:  "several unsealed segments (a crash before their seals) are all resumed",
			facts: recoveryFacts{files: []segFacts{unsealedF(1, 1, 10), unsealedF(2, 11, 3)}},
			want:  planView{keep: []string{"1 scanned", "2 scanned"}, first: 1},
		},
		{
			name:  "the DURABLE mark is removed once read",
			facts: recoveryFacts{mark: segment.DurableMark{Index: 1, Offset: hs + 3*pr}, files: []segFacts{unsealedF(1, 1, 3)}},
			want:  planView{keep: []string{"1 scanned"}, first: 1, unmark: true},
		},
		{
			name:  "a last segment whose header never reached the disk is removed",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), noHeader(2, 11)}},
			want:  planView{keep: []string{"1 trusted"}, removals: names(noHeader(2, 11)), fresh: "2@11", first: 1},
		},
		{
			name:  "segments after a header that never reached the disk, holding nothing durable, go with it",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), noHeader(2, 11), unsealedF(3, 11, 2).notSynced(), noHeader(4, 13)}},
			want: planView{keep: []string{"1 trusted"}, removals: names(noHeader(2, 11), unsealedF(3, 11, 2), noHeader(4, 13)),
				fresh: "2@11", first: 1},
		},
		{
			name:  "segments after a torn tail, holding nothing durable, are removed and reported",
			facts: recoveryFacts{files: []segFacts{unsealedF(1, 1, 4).torn(64), unsealedF(2, 9, 2).notSynced()}},
			want: planView{keep: []string{"1 scanned cut-torn"}, removals: names(unsealedF(2, 9, 2)),
				truncs: []string{fmt.Sprintf("2@%d+%d", hs, 2*pr)}, first: 1},
		},
		{
			name:   "repair mode cuts a corrupt middle, keeping a copy",
			facts:  recoveryFacts{files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 11, 4).corruptMid()}},
			repair: true,
			want:   planView{keep: []string{"1 trusted", "2 scanned cut-corrupt"}, first: 1},
		},
		{
			name:   "repair mode moves aside a damaged header and everything after it",
			facts:  recoveryFacts{files: []segFacts{sealedF(1, 1, 10), badHeader(2, 11), sealedF(3, 21, 10)}},
			repair: true,
			want:   planView{keep: []string{"1 trusted"}, repairs: names(badHeader(2, 11), sealedF(3, 21, 10)), fresh: "2@11", first: 1},
		},
		{
			name:   "repair mode moves aside the segments after a gap",
			facts:  recoveryFacts{files: []segFacts{sealedF(1, 1, 10), sealedF(3, 21, 10)}},
			repair: true,
			want:   planView{keep: []string{"1 trusted"}, repairs: names(sealedF(3, 21, 10)), fresh: "2@11", first: 1},
		},
		{
			name:   "repair mode moves aside a segment whose sequence numbers do not follow",
			facts:  recoveryFacts{files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 15, 3)}},
			repair: true,
			want:   planView{keep: []string{"1 trusted"}, repairs: names(unsealedF(2, 15, 3)), fresh: "2@11", first: 1},
		},
		{
			name:   "repair mode moves aside durable segments after a torn tail",
			facts:  recoveryFacts{files: []segFacts{unsealedF(1, 1, 4).torn(64), sealedF(2, 9, 2)}},
			repair: true,
			want:   planView{keep: []string{"1 scanned cut-torn"}, repairs: names(sealedF(2, 9, 2)), first: 1},
		},
		{
			name:  "a front past the first segment's start: the log opens at the front",
			facts: recoveryFacts{front: &segment.FrontMark{Seq: 15}, files: []segFacts{sealedF(1, 1, 10), sealedF(2, 11, 10), unsealedF(3, 21, 1)}},
			want:  planView{keep: []string{"1 trusted", "2 trusted", "3 scanned"}, front: 15, first: 15},
		},
		{
			name:  "an interrupted TruncateBack drops the later segments and cuts the one keeping its last record",
			facts: recoveryFacts{cut: &segment.CutMark{Index: 2, LastSeq: 13}, files: []segFacts{sealedF(1, 1, 10), sealedF(2, 11, 10), unsealedF(3, 21, 4)}},
			want:  planView{keep: []string{"1 trusted", "2 trusted cut-here"}, dropped: names(unsealedF(3, 21, 4)), fresh: "3@14", first: 1},
		},
		{
			name: "an interrupted TruncateBack into an unsealed segment: bad bytes after its last record go with the cut",
			facts: recoveryFacts{cut: &segment.CutMark{Index: 2, LastSeq: 12},
				files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 11, 4).corruptMid(), unsealedF(3, 15, 1)}},
			want: planView{keep: []string{"1 trusted", "2 scanned cut-here"}, dropped: names(unsealedF(3, 15, 1)), fresh: "3@13", first: 1},
		},
		{
			name:  "an interrupted TruncateBack to before every segment: the log continues at the FRONT it wrote first",
			facts: recoveryFacts{front: &segment.FrontMark{Seq: 6}, cut: &segment.CutMark{LastSeq: 5}, files: []segFacts{sealedF(3, 6, 10), unsealedF(4, 16, 2)}},
			want:  planView{dropped: names(sealedF(3, 6, 10), unsealedF(4, 16, 2)), fresh: "1@6", front: 6, first: 6},
		},
		{
			name:  "an interrupted Reset drops every segment and replaces the front",
			facts: recoveryFacts{front: &segment.FrontMark{Seq: 3}, cut: &segment.CutMark{Reset: true, LastSeq: 99}, files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 11, 2)}},
			want:  planView{dropped: names(sealedF(1, 1, 10), unsealedF(2, 11, 2)), fresh: "1@100", front: 100, first: 100},
		},
		{
			name:  "an interrupted Reset whose segments were already removed",
			facts: recoveryFacts{front: &segment.FrontMark{Seq: 100}, cut: &segment.CutMark{Reset: true, LastSeq: 99}},
			want:  planView{fresh: "1@100", front: 100, first: 100},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.facts
			p, err := planRecovery(&f, c.repair)
			if err != nil {
				t.Fatalf("planRecovery: %v", err)
			}
			if got := viewPlan(&f, p); got.String() != c.want.String() {
				t.Fatalf("plan\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

// Issue 12: every contradiction planRecovery rejects, and the damage that
// fails a strict recovery, over hand-built facts. A rejected plan is
// empty: nothing is done.
func TestPlanRecoveryRejects(t *testing.T) {
	const hs = segment.HeaderSize
	notRegular := failedF(2, 11, fmt.Errorf("open segment: %w", ErrNotRegular))
	io := failedF(2, 11, fmt.Errorf("open segment: %w", fs.ErrPermission))
	cases := []struct {
		name   string
		facts  recoveryFacts
		repair bool
		is     error  // errors.Is target, or nil
		file   string // the *CorruptError's File, or ""
		in     string // in the message
	}{
		{
			name:  "strict: a corrupt middle",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 11, 4).corruptMid()}},
			file:  segment.Name(2, 11), in: "bad record",
		},
		{
			name:  "strict: a damaged header",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), badHeader(2, 11)}},
			file:  segment.Name(2, 11), in: "header",
		},
		{
			name:  "strict: a gap between segments",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), sealedF(3, 21, 10)}},
			file:  segment.Name(3, 21), in: "segments in between are missing",
		},
		{
			name:  "strict: sequence numbers that do not follow",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 12, 3)}},
			file:  segment.Name(2, 12), in: "starts at seq 12",
		},
		{
			name:  "strict: a sealed segment after a torn tail",
			facts: recoveryFacts{files: []segFacts{unsealedF(1, 1, 4).torn(64), sealedF(2, 9, 2)}},
			file:  segment.Name(1, 1), in: "holds durable records",
		},
		{
			name:  "strict: after a torn tail, a segment whose own records vouch for a sync",
			facts: recoveryFacts{files: []segFacts{unsealedF(1, 1, 4).torn(64), unsealedF(2, 9, 2)}},
			file:  segment.Name(1, 1), in: "holds durable records",
		},
		{
			name: "strict: after a torn tail, a segment the DURABLE mark vouches for: corruption, not a torn tail",
			facts: recoveryFacts{mark: segment.DurableMark{Index: 2, Offset: hs + planRec},
				files: []segFacts{unsealedF(1, 1, 4).torn(64), unsealedF(2, 9, 2).notSynced()}},
			file: segment.Name(1, 1), in: "holds durable records",
		},
		{
			name:  "strict: no header, but the DURABLE mark says the segment was durable",
			facts: recoveryFacts{mark: segment.DurableMark{Index: 2, Offset: hs + planRec}, files: []segFacts{sealedF(1, 1, 10), noHeader(2, 11)}},
			file:  segment.Name(2, 11), in: "the durable mark says",
		},
		{
			name:  "strict: no header, but a later segment holds durable records",
			facts: recoveryFacts{files: []segFacts{noHeader(1, 1), sealedF(2, 1, 3)}},
			file:  segment.Name(1, 1), in: "no header, but segment 2",
		},
		{
			name:  "strict: no header, and a later segment fails to open",
			facts: recoveryFacts{files: []segFacts{noHeader(1, 1), badHeader(2, 1)}},
			file:  segment.Name(2, 1), in: "header checksum",
		},
		{
			name:   "repair: a segment of a newer format is never repaired",
			facts:  recoveryFacts{files: []segFacts{sealedF(1, 1, 10), newer(2, 11)}},
			repair: true, is: ErrUnsupportedVersion,
		},
		{
			name:   "repair: a segment of a newer format after damage is not moved with it",
			facts:  recoveryFacts{files: []segFacts{sealedF(1, 1, 10), badHeader(2, 11), newer(3, 21)}},
			repair: true, is: ErrUnsupportedVersion,
		},
		{
			name:  "a segment of a newer format that a cut drops is not removed",
			facts: recoveryFacts{cut: &segment.CutMark{Index: 1, LastSeq: 5}, files: []segFacts{sealedF(1, 1, 10), newer(2, 11)}},
			is:    ErrUnsupportedVersion,
		},
		{
			name:   "repair: a file that is not regular is not repaired",
			facts:  recoveryFacts{files: []segFacts{sealedF(1, 1, 10), notRegular}},
			repair: true, is: ErrNotRegular,
		},
		{
			name:  "strict: an I/O error opening a segment",
			facts: recoveryFacts{files: []segFacts{sealedF(1, 1, 10), io}},
			is:    fs.ErrPermission,
		},
		{
			name:  "CUT names a segment the log does not have",
			facts: recoveryFacts{cut: &segment.CutMark{Index: 5, LastSeq: 12}, files: []segFacts{sealedF(1, 1, 10), sealedF(2, 11, 10)}},
			file:  segment.CutFile, in: "no such segment",
		},
		{
			name:  "CUT keeps a record its segment does not hold",
			facts: recoveryFacts{cut: &segment.CutMark{Index: 2, LastSeq: 30}, files: []segFacts{sealedF(1, 1, 10), sealedF(2, 11, 10)}},
			file:  segment.CutFile, in: "which holds seqs [11, 21)",
		},
		{
			name: "CUT names a segment after a torn tail, which holds nothing durable",
			facts: recoveryFacts{cut: &segment.CutMark{Index: 2, LastSeq: 9},
				files: []segFacts{unsealedF(1, 1, 4).torn(64), unsealedF(2, 9, 2).notSynced()}},
			file: segment.CutFile, in: "no such segment",
		},
		{
			name:  "CUT keeps no segment, and there is no FRONT",
			facts: recoveryFacts{cut: &segment.CutMark{LastSeq: 5}, files: []segFacts{sealedF(1, 1, 10)}},
			file:  segment.CutFile, in: "there is no FRONT mark",
		},
		{
			name:  "CUT keeps no segment, and FRONT contradicts it",
			facts: recoveryFacts{front: &segment.FrontMark{Seq: 3}, cut: &segment.CutMark{LastSeq: 5}, files: []segFacts{sealedF(1, 1, 10)}},
			file:  segment.CutFile, in: "FRONT says seq 3",
		},
		{
			name:  "a Reset's CUT that names a segment",
			facts: recoveryFacts{cut: &segment.CutMark{Reset: true, Index: 1, LastSeq: 99}, files: []segFacts{sealedF(1, 1, 10)}},
			file:  segment.CutFile, in: "a reset keeps no segment",
		},
		{
			name:  "FRONT past the end of the log",
			facts: recoveryFacts{front: &segment.FrontMark{Seq: 50}, files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 11, 3)}},
			file:  segment.FrontFile, in: "the front is seq 50",
		},
		{
			name:  "FRONT past the end of a log whose tail is torn",
			facts: recoveryFacts{front: &segment.FrontMark{Seq: 14}, files: []segFacts{sealedF(1, 1, 10), unsealedF(2, 11, 2).torn(64)}},
			file:  segment.FrontFile, in: "ends before seq 13",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.facts
			p, err := planRecovery(&f, c.repair)
			if err == nil {
				t.Fatalf("planRecovery accepted it: %v", viewPlan(&f, p))
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v, want one wrapping %v", err, c.is)
			}
			if c.file != "" {
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.File != c.file {
					t.Fatalf("error %v (%#v), want a *CorruptError naming %s", err, ce, c.file)
				}
			}
			if !strings.Contains(err.Error(), c.in) {
				t.Fatalf("error %q, want it to say %q", err, c.in)
			}
			if !slices.Equal(p.removals, nil) || p.keep != nil || p.fresh || p.temps != nil || p.dropped != nil || p.repairs != nil {
				t.Fatalf("a rejected plan still plans: %v", viewPlan(&f, p))
			}
		})
	}
}
