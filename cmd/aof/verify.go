package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aof2/aof2/inspect"
)

func verifyCommand() command {
	return command{
		name:    "verify",
		args:    "DIR",
		summary: "check every record's checksum; exit 1 on corruption",
		detail: `Reads every byte of record data and checks it: every frame of every sealed segment (its
checksum covers the frame header and the payload), the footer's record count, data checksum
and sparse index; every unsealed segment with the writer's own recovery scan, which tells a
torn tail (bad bytes after the last good record that no later record vouches were durable:
what a crash leaves and what the writer truncates when it opens the log) from corruption
(bad bytes that a later record, or the DURABLE mark, says were durable). Also checks that
segments follow each other without gaps.

Each problem is printed with its file and offset. A torn tail is reported but is not
corruption (exit 0); any corruption exits 1. A segment file written by a newer aof2 (a
format version this build does not read) is reported as NEWER, not as corruption, and
exits 5 (when nothing is corrupt). On a terminal, a progress bar is drawn on stderr.`,
		flags: func(fs *flag.FlagSet) func(*env, []string) int {
			quiet := fs.Bool("q", false, "print problems only, not the summary")
			return func(e *env, args []string) int { return e.verify(args[0], *quiet) }
		},
	}
}

func (e *env) verify(path string, quiet bool) int {
	d, code := e.openDir("verify", path)
	if d == nil {
		return code
	}
	var bar *progressBar
	var progress inspect.Progress
	if e.term {
		bar = newProgressBar(e.stderr, "verify")
		progress = bar.update
	}
	start := time.Now()
	v := inspect.Verify(d, progress)
	elapsed := time.Since(start)
	if bar != nil {
		bar.clear()
	}
	for _, p := range v.Problems {
		fmt.Fprintln(e.stdout, p)
	}
	torn, corrupt, newer, failed := 0, 0, 0, 0
	for _, p := range v.Problems {
		switch p.Kind() {
		case "torn":
			torn++
		case "CORRUPT":
			corrupt++
		case "NEWER":
			newer++
		case "ERROR":
			failed++
		}
	}
	if !quiet {
		rate := float64(v.Bytes) / max(elapsed.Seconds(), 1e-9)
		fmt.Fprintf(e.stdout, "verified %d segments (%d sealed), %d records, %s of record data in %s (%s/s)\n",
			v.Segments, v.Sealed, v.Records, human(v.Bytes), elapsed.Round(time.Millisecond), human(int64(rate)))
		switch {
		case corrupt > 0:
			fmt.Fprintf(e.stdout, "CORRUPT: %d problem(s); %d torn\n", corrupt, torn)
		case newer > 0:
			fmt.Fprintf(e.stdout, "NEWER: %d segment file(s) written by a newer aof2, not verified; %d torn\n", newer, torn)
		case failed > 0:
			fmt.Fprintf(e.stdout, "ERROR: %d file(s) could not be read; %d torn\n", failed, torn)
		case torn > 0:
			fmt.Fprintf(e.stdout, "ok: no corruption; %d torn tail(s), which the writer truncates when it opens the log\n", torn)
		default:
			fmt.Fprintf(e.stdout, "ok: no problems\n")
		}
	}
	if corrupt > 0 {
		e.errorf("verify", "%d corrupt spot(s) in %s. Keep a copy of the directory before anything else.\n"+
			"  The library never returns a record whose checksum fails (Read and readers return ErrCorrupt).\n"+
			"  Damage in an unsealed segment makes aof.Open fail, unless Config.Recovery is aof.RecoverRepair,\n"+
			"  which cuts the log there and keeps what it cut in DIR/repair/. A sealed segment's footer is\n"+
			"  trusted at Open, so damage inside one shows when its records are read.", corrupt, path)
		return exitCorrupt
	}
	if newer > 0 {
		e.errorf("verify", "%d segment file(s) of %s were written by a newer aof2 (see above)\n%s", newer, path, newerHint)
		return exitNewer
	}
	if failed > 0 {
		e.errorf("verify", "%d file(s) could not be read (see above): check their permissions and the disk, then verify again", failed)
		return exitError
	}
	return exitOK
}

// progressBar draws "verify  42% [=====>    ] 1.2 GiB / 2.9 GiB" on a
// terminal, at most every 100 ms.
type progressBar struct {
	w     io.Writer
	label string
	last  time.Time
	start time.Time
	drawn bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, start: time.Now()}
}

func (b *progressBar) update(done, total int64) {
	now := time.Now()
	if now.Sub(b.last) < 100*time.Millisecond && done < total {
		return
	}
	b.last = now
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	rate := float64(done) / max(now.Sub(b.start).Seconds(), 1e-9)
	fmt.Fprintf(b.w, "\r%s %3.0f%% [%s] %s / %s  %s/s ", b.label, frac*100, bar, human(done), human(total), human(int64(rate)))
	b.drawn = true
}

func (b *progressBar) clear() {
	if b.drawn {
		fmt.Fprintf(b.w, "\r%s\r", strings.Repeat(" ", 90))
	}
}

// human formats a byte count with a binary unit.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i-1])
}
