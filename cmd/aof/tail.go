package main

import (
	"errors"
	"flag"
	"time"

	"github.com/aof2/aof2/inspect"
)

func tailCommand() command {
	return command{
		name:    "tail",
		args:    "DIR [-n N] [-f] [--format text|hex|json]",
		summary: "print the last records; -f follows new ones as a writer appends",
		detail: `Prints the last -n records (default 10) in the formats of aof dump. With -f it keeps
going: it prints records as a writer appends them, across rollovers to new segments, until
interrupted. It looks at the log every 1 ms while records keep coming and for 200 ms after
the last one, then backs off to one look per 100 ms while the log stays idle; a look reads
one frame header and tries to open the next segment by name.

Records are shown once they are written to the segment file (the writer's flusher writes
them with pwrite), before they are proven durable. If retention removes records before they
are shown, or the writer's TruncateBack removes records that were shown, a note on stderr
says so and tail continues where the log goes on (the first retained record, or the end of
the cut, with the records appended since).`,
		flags: func(fs *flag.FlagSet) func(*env, []string) int {
			o := outputFlags(fs)
			n := fs.Uint64("n", 10, "print the last `N` records")
			follow := fs.Bool("f", false, "follow: keep printing new records until interrupted")
			return func(e *env, args []string) int { return e.tail(args[0], *n, *follow, o) }
		},
	}
}

func (e *env) tail(path string, n uint64, follow bool, o output) int {
	p, first, next, code := e.openRecords("tail", path, o)
	if code != exitOK {
		return code
	}
	from := first
	if next-first > n {
		from = next - n
	}
	r, code := e.openReader("tail", path, from)
	if r == nil {
		return code
	}
	defer r.Close()
	wait, lastData := e.pollMin, time.Now()
	for {
		got := false
		for r.Next() {
			got = true
			if err := p.print(r.Record()); err != nil {
				return e.writeErr("tail", err)
			}
		}
		if err := p.w.Flush(); err != nil {
			return e.writeErr("tail", err)
		}
		err := r.Err()
		var trunc *inspect.TruncatedError
		if errors.As(err, &trunc) {
			// The writer removed what was being read (retention, or
			// TruncateBack): say so and read on where the log goes on.
			e.errorf("tail", "%v; continuing from %d", err, trunc.Continue())
			if err := r.restart(trunc.Continue()); err != nil {
				return e.readErr("tail", path, err)
			}
			continue
		}
		if !follow {
			return e.readErr("tail", path, err)
		}
		// Following: a torn tail may be a write in progress; wait.
		// Corruption and errors end it.
		if err != nil && !errors.Is(err, inspect.ErrTornTail) {
			return e.readErr("tail", path, err)
		}
		// Look again at once while records keep coming (for pollHot
		// after the last one), then back off while the log is idle.
		if got {
			lastData = time.Now()
		}
		if time.Since(lastData) < e.pollHot {
			wait = e.pollMin
		} else {
			wait = min(2*wait, e.pollMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-e.ctx.Done():
			t.Stop()
			return exitOK
		case <-t.C:
		}
	}
}
