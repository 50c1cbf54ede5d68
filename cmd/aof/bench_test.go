package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// benchLog writes a log of about size bytes of 1 KiB records in 64 MiB
// segments and returns its directory.
func benchLog(b *testing.B, size int64) string {
	b.Helper()
	dir := b.TempDir()
	l, err := aof.Open(dir, aof.Config{})
	if err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 1024)
	for i := int64(0); i < size/segment.FrameSize(len(p)); i++ {
		p[0], p[1] = byte(i), byte(i>>8)
		if _, err := l.Append(bg, p); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkVerify measures aof verify's checking rate, page cache warm:
// 64 MiB of 1 KiB records, or 1 GiB with AOF2_BENCH_BIG=1.
func BenchmarkVerify(b *testing.B) {
	size := int64(64 << 20)
	if os.Getenv("AOF2_BENCH_BIG") != "" {
		size = 1 << 30
	}
	dir := benchLog(b, size)
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		b.Fatal(err)
	}
	var v inspect.VerifyResult
	b.ResetTimer()
	for b.Loop() {
		v = inspect.Verify(d, nil)
	}
	if len(v.Problems) != 0 {
		b.Fatal(v.Problems)
	}
	b.SetBytes(v.Bytes)
	b.ReportMetric(float64(v.Segments), "segments")
}

// BenchmarkFollowPoll compares what tail -f pays to look for new records
// at the end of a full 64 MiB unsealed segment: rescanning it from the
// header (segment.Scan, as recovery does) against the Reader's incremental
// look (one frame header, one failed open of the next segment by name, one stat).
func BenchmarkFollowPoll(b *testing.B) {
	// A writer that stops just short of rolling over leaves one full
	// unsealed segment.
	p := make([]byte, 1024)
	dir := b.TempDir()
	l, err := aof.Open(dir, aof.Config{})
	if err != nil {
		b.Fatal(err)
	}
	limit := segment.DataLimit(aof.DefaultSegmentSize) - segment.FrameSize(len(p))
	for n := int64(segment.HeaderSize); n+segment.FrameSize(len(p)) <= limit; n += segment.FrameSize(len(p)) {
		if _, err := l.Append(bg, p); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	segDir := filepath.Join(dir, "segments")
	names, _ := vfs.Default.ReadDir(segDir)
	var name string
	for _, n := range names {
		if strings.HasSuffix(n, ".seg") {
			name = n
		}
	}
	b.Run("rescan", func(b *testing.B) {
		s, err := segment.OpenReadOnly(vfs.Default, segDir, name)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Release()
		if s.Sealed() {
			b.Fatal("sealed")
		}
		for b.Loop() {
			s.Scan(0)
		}
		b.SetBytes(s.Scan(0).End)
	})
	b.Run("incremental", func(b *testing.B) {
		src, err := inspect.OpenSource(vfs.Default, dir)
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		r, err := reader.New(src, 1, reader.Written)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		n := 0
		for r.Next() {
			n++
		}
		if _, perr := src.Poll(); r.Err() != nil || perr != nil || n < 60000 {
			b.Fatalf("read %d records: %v %v", n, r.Err(), perr)
		}
		for b.Loop() {
			if r.Next() {
				b.Fatal("a record appeared")
			}
		}
	})
}

// BenchmarkTailLatency measures, for tail -f in-process against a live
// writer, the time from FlushUntil returning (the record is in the file)
// to tail printing it, after the log sat idle for the given gap (the poll
// backs off from 1 ms to 100 ms while idle).
func BenchmarkTailLatency(b *testing.B) {
	for _, gap := range []time.Duration{0, 20 * time.Millisecond, 300 * time.Millisecond} {
		b.Run("idle="+gap.String(), func(b *testing.B) {
			dir := b.TempDir()
			l, err := aof.Open(dir, aof.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx, cancel := context.WithCancel(bg)
			var out, errOut syncBuffer
			done := make(chan int)
			go func() { done <- run(ctx, []string{"tail", "-f", "--format", "json", dir}, &out, &errOut) }()
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				time.Sleep(gap)
				n := strings.Count(out.String(), "\n")
				id, err := l.Append(bg, []byte("x"))
				if err == nil {
					err = l.FlushUntil(bg, id)
				}
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				for strings.Count(out.String(), "\n") == n {
					time.Sleep(50 * time.Microsecond)
				}
				total += time.Since(t0)
				b.StartTimer()
			}
			cancel()
			<-done
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/latency")
		})
	}
}
