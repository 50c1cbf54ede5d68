package inspect_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/reader"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// Unit tests of inspect.Source: package reader's Reader over a log
// directory, as aof dump, tail and stats read it.

// openReader opens dir as a Source and a Written Reader of it from seq
// from.
func openReader(t *testing.T, dir string, from uint64) (*inspect.Source, *reader.Reader) {
	t.Helper()
	src, err := inspect.OpenSource(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	r, err := reader.New(src, from, reader.Written)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return src, r
}

// drain reads r up to the frontier, going on while src learnt something
// new (as cmd/aof does), and checks every record's payload and file. It
// returns the sequence numbers read and why it stopped: the Reader's
// error, or else the Source's.
func drain(t *testing.T, src *inspect.Source, r *reader.Reader) ([]uint64, error) {
	t.Helper()
	var seqs []uint64
	for {
		for r.Next() {
			rec := r.Record()
			if !bytes.Equal(rec.Payload, payloadOf(rec.Seq)) {
				t.Fatalf("seq %d: payload %q", rec.Seq, rec.Payload)
			}
			if idx, base, ok := segment.ParseName(src.File(rec.Segment)); !ok || idx != rec.Segment || base > rec.Seq {
				t.Fatalf("seq %d: in segment %d, file %q", rec.Seq, rec.Segment, src.File(rec.Segment))
			}
			seqs = append(seqs, rec.Seq)
		}
		again, err := src.Poll()
		if r.Err() != nil {
			return seqs, r.Err()
		}
		if !again || err != nil {
			return seqs, err
		}
	}
}

// checkRange checks that seqs are first..last.
func checkRange(t *testing.T, seqs []uint64, first, last uint64) {
	t.Helper()
	if n := uint64(len(seqs)); last+1 < first || n != last+1-first {
		t.Fatalf("read %d records, want %d to %d", n, first, last)
	}
	for i, q := range seqs {
		if q != first+uint64(i) {
			t.Fatalf("record %d is seq %d, want %d", i, q, first+uint64(i))
		}
	}
}

// A closed log: every record of every segment, in order, from any seq.
func TestSourceReadsASealedLog(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 2000, true)
	for _, from := range []uint64{1, 777, 2000, 2001} {
		src, r := openReader(t, dir, from)
		seqs, err := drain(t, src, r)
		if err != nil {
			t.Fatalf("from %d: %v", from, err)
		}
		checkRange(t, seqs, from, 2000)
	}
}

// A live log the library appends to in this process: a Reader at the end
// reads the records appended since, across rollovers.
func TestSourceFollowsALiveLog(t *testing.T) {
	dir := t.TempDir()
	l := openLiveLog(t, dir)
	appendTo := func(first, last uint64) { t.Helper(); appendDurable(t, l, first, last) }
	appendTo(1, 100)
	src, r := openReader(t, dir, 1)
	seqs, err := drain(t, src, r)
	if err != nil {
		t.Fatal(err)
	}
	checkRange(t, seqs, 1, 100)
	appendTo(101, 2000) // several rollovers
	seqs, err = drain(t, src, r)
	if err != nil {
		t.Fatal(err)
	}
	checkRange(t, seqs, 101, 2000)
	if r.Next() || r.Err() != nil {
		t.Fatalf("Next at the end: %v", r.Err())
	}
}

// A crash's torn tail: the Reader returns every good record and stops
// before the garbage, which Poll calls a torn tail, not corruption. Bytes
// the DURABLE mark vouches for are corruption.
func TestSourceStopsAtATornTail(t *testing.T) {
	live := t.TempDir()
	closeLog := writeLog(t, live, 300, false)
	defer closeLog()
	dir := crashCopy(t, live)
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	last := inspect.Survey(d)[len(d.Files)-1]
	f, err := os.OpenFile(filepath.Join(d.SegPath, last.Name), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xAB}, 40), last.End); err != nil {
		t.Fatal(err)
	}
	f.Close()
	src, r := openReader(t, dir, 1)
	seqs, err := drain(t, src, r)
	if !errors.Is(err, inspect.ErrTornTail) || errors.Is(err, segment.ErrCorrupt) {
		t.Fatalf("stopped with %v, want a torn tail", err)
	}
	checkRange(t, seqs, 1, 300)

	// The DURABLE mark a clean Close leaves says the bytes were durable.
	var b [segment.DurableMarkSize]byte
	segment.EncodeDurableMark(b[:], segment.DurableMark{Index: last.Index, Offset: last.End + 64})
	if err := os.WriteFile(filepath.Join(dir, segment.DurableFile), b[:], 0o600); err != nil {
		t.Fatal(err)
	}
	src, r = openReader(t, dir, 1)
	seqs, err = drain(t, src, r)
	if !errors.Is(err, segment.ErrCorrupt) {
		t.Fatalf("stopped with %v, want corruption", err)
	}
	checkRange(t, seqs, 1, 300)
}

// A flipped byte inside a sealed segment's data is a *segment.CorruptError
// naming the file and the frame's offset; the records before it are read.
func TestSourceReportsCorruptionInASealedSegment(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 2000, true)
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	victim := d.Files[1]
	frame := segment.FrameSize(len(payloadOf(1)))
	flipByte(t, filepath.Join(d.SegPath, victim.Name), segment.HeaderSize+5*frame+40)
	src, r := openReader(t, dir, 1)
	seqs, err := drain(t, src, r)
	var ce *segment.CorruptError
	if !errors.As(err, &ce) || ce.File != victim.Name || ce.Offset != segment.HeaderSize+5*frame {
		t.Fatalf("stopped with %v, want a *segment.CorruptError at %s offset %d", err, victim.Name, segment.HeaderSize+5*frame)
	}
	checkRange(t, seqs, 1, victim.BaseSeq+4)
}

// flipByte flips every bit of the byte at off of the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xFF
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A CUT mark that appears while a Reader is at the end (a TruncateBack
// under way in the writer's process) holds the Reader: Next returns false
// with no error while the mark is there. Once it is gone, the Reader,
// which returned records past the cut, fails with a *TruncatedError that
// says where the log goes on.
func TestSourceHoldsReadersWhileACutMarkIsThere(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 2000, true)
	src, r := openReader(t, dir, 1)
	if _, err := drain(t, src, r); err != nil {
		t.Fatal(err)
	}
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	// The writer's TruncateBack, stopped after its first steps: the CUT
	// mark, then the last segment removed.
	kept := d.Files[1]
	var b [segment.DurableMarkSize]byte
	segment.EncodeCutMark(b[:], segment.CutMark{Index: kept.Index, LastSeq: kept.BaseSeq + 10})
	if err := os.WriteFile(filepath.Join(dir, segment.CutFile), b[:], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(d.SegPath, d.Files[len(d.Files)-1].Name)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if r.Next() || r.Err() != nil {
			t.Fatalf("Next under a cut: %v", r.Err())
		}
		if _, err := src.Poll(); err != nil {
			t.Fatalf("Poll under a cut: %v", err)
		}
	}
	if !reader.Cutting(src.Cuts().Gen()) {
		t.Fatal("the Source's Cuts show no cut while the CUT mark is there")
	}
	if err := os.Remove(filepath.Join(dir, segment.CutFile)); err != nil {
		t.Fatal(err)
	}
	_, err = drain(t, src, r)
	var te *inspect.TruncatedError
	if !errors.As(err, &te) || !te.Back || te.Seq != 2001 || te.Next != kept.BaseSeq+11 || te.Continue() != kept.BaseSeq+11 {
		t.Fatalf("after the cut: %v, want a TruncateBack's *TruncatedError going on at %d", err, kept.BaseSeq+11)
	}
}

// Retention removes the segments after the one a Reader is in: once it
// read that one, it fails with a *TruncatedError (not Back) whose First is
// the new front, not with corruption.
func TestSourceReportsRetention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, src, r, d := readerBehindRetention(ctx, t, dir)
	front := d.Files[3].BaseSeq
	seqs, err := drain(t, src, r)
	var te *inspect.TruncatedError
	if !errors.As(err, &te) || te.Back || te.Seq != d.Files[1].BaseSeq || te.First != front {
		t.Fatalf("after retention: %v, want a *TruncatedError for seq %d with First %d", err, d.Files[1].BaseSeq, front)
	}
	checkRange(t, seqs, 2, d.Files[1].BaseSeq-1)
}

// The writer's TruncateBack cuts the sealed segment a Reader is reading:
// it writes the new footer and zeros over the records cut, which the
// Reader's mapping shows. A Reader still before the cut returned no record
// the cut removed: it is not to call the zeros corruption, and goes on
// silently at the cut's end, with the records appended since. A Reader
// that read the whole segment fails with the TruncateBack's
// *TruncatedError, instead of waiting for ever for a successor.
func TestSourceReaderInASegmentTheWriterCuts(t *testing.T) {
	for _, where := range []string{"before the cut", "at the segment's end"} {
		t.Run(where, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			l := openLiveLog(t, dir)
			appendDurable(t, l, 1, 2000)
			d, err := inspect.List(vfs.Default, dir)
			if err != nil {
				t.Fatal(err)
			}
			kept := d.Files[1]
			src, r := openReader(t, dir, kept.BaseSeq)
			upTo := kept.BaseSeq // the last record read before the cut
			if where != "before the cut" {
				upTo = d.Files[2].BaseSeq - 1
			}
			for r.Next() && r.Record().Seq < upTo {
			}
			if r.Err() != nil || r.Record().Seq != upTo {
				t.Fatalf("read up to %d: at %d, %v", upTo, r.Record().Seq, r.Err())
			}
			last := kept.BaseSeq + 100
			if err := l.TruncateBack(ctx, last); err != nil {
				t.Fatal(err)
			}
			appendDurable(t, l, last+1, last+50)
			seqs, err := drain(t, src, r)
			if where == "before the cut" {
				if err != nil {
					t.Fatalf("after the cut: %v", err)
				}
				checkRange(t, seqs, upTo+1, last+50)
				return
			}
			var te *inspect.TruncatedError
			if !errors.As(err, &te) || !te.Back || te.Seq != upTo+1 || te.Continue() != last+1 {
				t.Fatalf("after the cut: %v (read %d more), want a TruncateBack's *TruncatedError going on at %d", err, len(seqs), last+1)
			}
		})
	}
}

// reader.Follow over a Source follows a live log the library appends to,
// across rollovers, as it follows the log itself.
func TestSourceFollow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	l := openLiveLog(t, dir)
	src, err := inspect.OpenSource(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	done := make(chan error, 1)
	go func() {
		want := uint64(1)
		for rec, err := range reader.Follow(ctx, src, 1, reader.Written) {
			switch {
			case err != nil:
				done <- err
				return
			case rec.Seq != want || !bytes.Equal(rec.Payload, payloadOf(want)):
				done <- fmt.Errorf("record %d: seq %d %q", want, rec.Seq, rec.Payload)
				return
			case want == 2000:
				done <- nil
				return
			}
			want++
		}
	}()
	for seq := uint64(1); seq <= 2000; seq++ {
		id, err := l.Append(ctx, payloadOf(seq))
		if err == nil && seq%500 == 0 {
			err = l.FlushUntil(ctx, id)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// readerBehindRetention writes a live log of 3,000 durable records (five
// segments or more) in dir, opens a Reader there that has read seq 1, and
// then drops the log's first three segments (TruncateFront): it returns the
// log, the Reader's source, the Reader and the listing taken before the
// drop (the new front is the base of its fourth file).
func readerBehindRetention(ctx context.Context, t *testing.T, dir string) (*aof.Log, *inspect.Source, *reader.Reader, *inspect.Dir) {
	t.Helper()
	l := openLiveLog(t, dir)
	appendDurable(t, l, 1, 3000)
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files) < 5 {
		t.Fatalf("want 5 segments or more, got %d", len(d.Files))
	}
	src, r := openReader(t, dir, 1)
	if !r.Next() || r.Record().Seq != 1 {
		t.Fatalf("first Next: %v", r.Err())
	}
	front := d.Files[3].BaseSeq
	if err := l.TruncateFront(ctx, front); err != nil {
		t.Fatal(err)
	}
	return l, src, r, d
}
