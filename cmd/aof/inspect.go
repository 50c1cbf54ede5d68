package main

import (
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/segment"
)

func inspectCommand() command {
	return command{
		name:    "inspect",
		args:    "DIR",
		summary: "table of segments: base seq, records, bytes, sealed, durable",
		detail: `Prints one line per segment file: its index, first and last sequence number, records,
record bytes (frames from the header to the end of the last good record), whether it is
sealed, and how many of its records are proven durable. A sealed segment is durable as a
whole (its footer is trusted, as the writer's recovery does). An unsealed segment is scanned
with the writer's own scan: a record is proven durable when a later record's durable hint,
or the DURABLE mark a clean Close leaves, vouches for it; the rest were written (they are in
the file) but nothing on disk proves they were synced yet.

Also shows whether a writer holds DIR/LOCK (read from /proc/locks, without touching the
lock), the DURABLE mark, and the first retained sequence number. Torn tails and corruption
found by the scans are listed under the table; exit status 1 if there is corruption.`,
		flags: func(*flag.FlagSet) func(*env, []string) int {
			return func(e *env, args []string) int { return e.inspect(args[0]) }
		},
	}
}

func (e *env) inspect(path string) int {
	d, code := e.openDir("inspect", path)
	if d == nil {
		return code
	}
	live := e.inspectMarks(d)
	infos := inspect.Survey(d)
	w := e.stdout
	if first, next, err := d.Span(); err != nil {
		fmt.Fprintf(w, "records:        unknown: %v\n", err)
	} else if next > first {
		fmt.Fprintf(w, "records:        seq %d to %d (%d)\n", first, next-1, next-first)
	} else {
		fmt.Fprintf(w, "records:        none (the next record gets seq %d)\n", first)
	}
	if len(d.Prepared) > 0 {
		fmt.Fprintf(w, "prepared:       %d segment file(s) made ahead of time, not yet in use\n", len(d.Prepared))
	}
	fmt.Fprintln(w)
	t := e.segmentTable(infos, live)
	if len(infos) == 0 {
		fmt.Fprintf(w, "(no segment files yet)\n")
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.notes {
			fmt.Fprintln(w, n)
		}
	}
	switch {
	case t.corrupt:
		e.errorf("inspect", "corruption found; run `aof verify %s` for every problem with file and offset", path)
		return exitCorrupt
	case t.newer:
		e.errorf("inspect", "some segment files were written by a newer aof2 (see above)\n%s", newerHint)
		return exitNewer
	case t.failed:
		e.errorf("inspect", "some segment files could not be read (see above): check their permissions and the disk")
		return exitError
	}
	return exitOK
}

// inspectMarks prints the log's directory, whether a writer holds its
// lock, and its DURABLE, FRONT and CUT marks. live reports whether a
// writer holds the lock.
func (e *env) inspectMarks(d *inspect.Dir) (live bool) {
	w := e.stdout
	fmt.Fprintf(w, "log:            %s\n", d.Path)
	pid, live, ok := d.Writer()
	switch {
	case !ok:
		fmt.Fprintf(w, "writer:         unknown (cannot read /proc/locks)\n")
	case live:
		fmt.Fprintf(w, "writer:         running, pid %d holds %s (the unsealed tail may grow while you look)\n", pid, inspect.LockFile)
	default:
		fmt.Fprintf(w, "writer:         none holds %s\n", inspect.LockFile)
	}
	switch {
	case d.MarkErr != nil:
		fmt.Fprintf(w, "durable mark:   unusable: %v\n", d.MarkErr)
	case d.HasMark:
		fmt.Fprintf(w, "durable mark:   segment %d durable up to offset %d (left by the last clean Close)\n", d.Mark.Index, d.Mark.Offset)
	default:
		fmt.Fprintf(w, "durable mark:   none (a clean Close leaves one; Open removes it)\n")
	}
	if d.FrontErr != nil {
		fmt.Fprintf(w, "front mark:     unusable: %v\n                (aof.Open fails until it is resolved: restore DIR/FRONT from a copy, or remove it to make the records before the lost front readable again)\n", d.FrontErr)
	} else if d.Front > 0 {
		fmt.Fprintf(w, "front mark:     records before seq %d removed by retention\n", d.Front)
	}
	if d.CutErr != nil {
		fmt.Fprintf(w, "cut mark:       unusable: %v\n                (aof.Open fails until it is resolved: a TruncateBack was running and where it ended is unknown; keep a copy of the directory, then remove DIR/CUT to open the log as the disk has it)\n", d.CutErr)
	} else if d.HasCut {
		fmt.Fprintf(w, "cut mark:       a TruncateBack to seq %d was interrupted; the writer completes it when it opens the log\n", d.Cut.LastSeq)
	}
	return live
}

// table is what segmentTable found: notes to print under the table, and
// whether any segment was corrupt, written by a newer aof2, or unreadable.
type table struct {
	notes                  []string
	corrupt, newer, failed bool
}

// segmentTable prints one line per segment of infos; live says whether a
// writer holds the lock (garbage after the last record is then most
// likely a write in progress).
func (e *env) segmentTable(infos []inspect.SegmentInfo, live bool) table {
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "SEGMENT\tBASE SEQ\tLAST SEQ\tRECORDS\tBYTES\tSEALED\tDURABLE\tFILE\n")
	var t table
	for _, s := range infos {
		if s.Err != nil {
			fmt.Fprintf(tw, "%d\t%d\t-\t-\t-\t-\t-\t%s\n", s.Index, s.BaseSeq, s.Name)
			t.unreadable(s)
			continue
		}
		last := "-"
		if s.Records > 0 {
			last = fmt.Sprint(s.LastSeq())
		}
		sealed, durable := "no", "all"
		if s.Sealed {
			sealed = "yes"
		} else if s.DurableRecords < s.Records {
			durable = fmt.Sprintf("%d +%d unproven", s.DurableRecords, s.Records-s.DurableRecords)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%s\t%s\t%s\n", s.Index, s.BaseSeq, last, s.Records, s.End-segment.HeaderSize, sealed, durable, s.Name)
		switch {
		case s.Corrupt != nil:
			t.corrupt = true
			t.notes = append(t.notes, fmt.Sprintf("segment %d: CORRUPT: %v", s.Index, s.Corrupt))
		case s.Garbage > 0 && live:
			t.notes = append(t.notes, fmt.Sprintf("segment %d: %d bytes at offset %d are not a complete record yet: most likely a write in progress (the writer is running)", s.Index, s.Garbage, s.End))
		case s.Garbage > 0:
			t.notes = append(t.notes, fmt.Sprintf("segment %d: torn tail: %d bytes at offset %d that are not a complete record and that nothing vouches were durable (the writer zeroes them when it opens the log)", s.Index, s.Garbage, s.End))
		}
	}
	return t
}

// unreadable notes a segment file that could not be opened.
func (t *table) unreadable(s inspect.SegmentInfo) {
	switch {
	case errors.Is(s.Err, inspect.ErrNoHeader):
		t.notes = append(t.notes, fmt.Sprintf("segment %d: %v (a crash right after it was created; the writer removes it when it opens the log)", s.Index, s.Err))
	case errors.Is(s.Err, segment.ErrCorrupt):
		t.corrupt = true
		t.notes = append(t.notes, fmt.Sprintf("segment %d: CORRUPT: %v", s.Index, s.Err))
	case errors.Is(s.Err, segment.ErrUnsupportedVersion):
		t.newer = true
		t.notes = append(t.notes, fmt.Sprintf("segment %d: NEWER: %v", s.Index, s.Err))
	default:
		t.failed = true
		t.notes = append(t.notes, fmt.Sprintf("segment %d: cannot be read: %v", s.Index, s.Err))
	}
}
