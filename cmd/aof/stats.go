package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aof2/aof2/inspect"
)

func statsCommand() command {
	return command{
		name:    "stats",
		args:    "DIR",
		summary: "records, bytes, segments, first/last seq and time, size distribution, rate",
		detail: `Reads every record (checksums verified) and prints: segments (sealed and unsealed),
records and their sequence numbers, payload bytes, record bytes on disk (frames with their
32-byte headers and padding) and the segment files' preallocated size, the first and last
record's append time and the span between them, the payload size distribution (min, p50,
p99, max, mean; nearest rank), and the average rate over the log's life (records and
payload bytes per second from the first record's append time to the last one's).`,
		flags: func(*flag.FlagSet) func(*env, []string) int {
			return func(e *env, args []string) int { return e.stats(args[0]) }
		},
	}
}

// logStats is what stats computes.
type logStats struct {
	segments, sealed  int
	records           uint64
	firstSeq, lastSeq uint64
	payloadBytes      int64
	recordBytes       int64
	fileBytes         int64
	firstTS, lastTS   int64
	sizes             []uint32
}

func (e *env) stats(path string) int {
	d, code := e.openDir("stats", path)
	if d == nil {
		return code
	}
	var st logStats
	for _, info := range inspect.Survey(d) {
		st.segments++
		if info.Sealed {
			st.sealed++
		}
		if fi, err := os.Stat(filepath.Join(d.SegPath, info.Name)); err == nil {
			st.fileBytes += fi.Size()
		}
	}
	r, code := e.openReader("stats", path, d.FirstRetained())
	if r == nil {
		return code
	}
	defer r.Close()
	for r.Next() {
		rec, _ := r.Record()
		if st.records == 0 {
			st.firstSeq, st.firstTS = rec.Seq, rec.Timestamp
		}
		st.records++
		st.lastSeq, st.lastTS = rec.Seq, rec.Timestamp
		st.payloadBytes += int64(len(rec.Payload))
		st.recordBytes += rec.Size
		st.sizes = append(st.sizes, uint32(len(rec.Payload)))
	}
	code = e.readErr("stats", path, r.Err())
	st.print(e, d.Path)
	return code
}

func (st *logStats) print(e *env, path string) {
	w := e.stdout
	fmt.Fprintf(w, "log:           %s\n", path)
	fmt.Fprintf(w, "segments:      %d (%d sealed, %d unsealed)\n", st.segments, st.sealed, st.segments-st.sealed)
	if st.records == 0 {
		fmt.Fprintf(w, "records:       0\n")
		return
	}
	fmt.Fprintf(w, "records:       %d (seq %d to %d)\n", st.records, st.firstSeq, st.lastSeq)
	fmt.Fprintf(w, "payload bytes: %d (%s)\n", st.payloadBytes, human(st.payloadBytes))
	fmt.Fprintf(w, "record bytes:  %d (%s; frames with headers and padding)\n", st.recordBytes, human(st.recordBytes))
	fmt.Fprintf(w, "file bytes:    %d (%s; segment files, preallocated)\n", st.fileBytes, human(st.fileBytes))
	fmt.Fprintf(w, "first record:  %s\n", timestamp(st.firstTS))
	fmt.Fprintf(w, "last record:   %s\n", timestamp(st.lastTS))
	spanD := time.Duration(st.lastTS - st.firstTS)
	fmt.Fprintf(w, "time span:     %s\n", spanD)
	slices.Sort(st.sizes)
	fmt.Fprintf(w, "payload size:  min %d  p50 %d  p99 %d  max %d  mean %.1f bytes\n",
		st.sizes[0], percentile(st.sizes, 50), percentile(st.sizes, 99), st.sizes[len(st.sizes)-1],
		float64(st.payloadBytes)/float64(st.records))
	if spanD > 0 {
		secs := spanD.Seconds()
		fmt.Fprintf(w, "rate:          %.1f records/s, %s/s of payload (first to last record)\n",
			float64(st.records-1)/secs, human(int64(float64(st.payloadBytes)/secs)))
	} else {
		fmt.Fprintf(w, "rate:          - (all records have the same timestamp)\n")
	}
}

// percentile returns the nearest-rank p-th percentile of sorted values.
func percentile(sorted []uint32, p int) uint32 {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}
