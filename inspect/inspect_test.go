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

// Unit tests of the read-only view the aof tool is built on: listing,
// survey, verify and the reader, on logs the library wrote.

// payloadOf is the payload of record seq in these tests.
func payloadOf(seq uint64) []byte {
	return []byte(fmt.Sprintf("record %06d %s", seq, bytes.Repeat([]byte{'x'}, 80)))
}

// writeLog appends n records to a new log in dir (64 KiB segments, so it
// rolls over many times). With closeIt the log is closed (its DURABLE mark
// vouches for everything); otherwise it is synced and left open, and the
// returned function closes it.
func writeLog(t *testing.T, dir string, n int, closeIt bool) func() {
	t.Helper()
	ctx := context.Background()
	l, err := aof.Open(dir, aof.Config{SegmentSize: 64 << 10, NoBackgroundFlush: !closeIt})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= uint64(n); seq++ {
		if _, err := l.Append(ctx, payloadOf(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if closeIt {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return func() {}
	}
	return func() { l.Close() }
}

// openLiveLog opens a new log in dir with 64 KiB segments (it rolls over
// many times), closed when the test ends: a writer the tool reads beside.
func openLiveLog(t *testing.T, dir string) *aof.Log {
	t.Helper()
	l, err := aof.Open(dir, aof.Config{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendDurable appends the records first..last (payloadOf each) to l and
// makes them durable.
func appendDurable(t *testing.T, l *aof.Log, first, last uint64) {
	t.Helper()
	ctx := context.Background()
	var id aof.RecordID
	for seq := first; seq <= last; seq++ {
		var err error
		if id, err = l.Append(ctx, payloadOf(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.FlushUntil(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func TestListSurveyVerifyReadCleanLog(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 2000, true)
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files) < 3 || !d.HasMark || d.MarkErr != nil || d.HasFront || d.HasCut {
		t.Fatalf("List: %d files, DURABLE %v (%v), FRONT %v, CUT %v; want several segments and a DURABLE mark only",
			len(d.Files), d.HasMark, d.MarkErr, d.HasFront, d.HasCut)
	}
	infos := inspect.Survey(d)
	next := uint64(1)
	for i, s := range infos {
		if s.Err != nil || s.Corrupt != nil || s.Garbage != 0 {
			t.Fatalf("segment %s: err %v, corrupt %v, garbage %d", s.Name, s.Err, s.Corrupt, s.Garbage)
		}
		if s.BaseSeq != next || s.Header.BaseSeq != next || s.Header.Index != s.Index {
			t.Fatalf("segment %s starts at %d (header %d, index %d), want %d", s.Name, s.BaseSeq, s.Header.BaseSeq, s.Header.Index, next)
		}
		if last := i == len(infos)-1; s.Sealed == last {
			t.Fatalf("segment %s: sealed %v; only the last one is unsealed", s.Name, s.Sealed)
		}
		if s.DurableRecords != s.Records || s.DurableEnd != s.End {
			t.Fatalf("segment %s: %d of %d records proven durable after a clean Close", s.Name, s.DurableRecords, s.Records)
		}
		next += s.Records
	}
	if next != 2001 {
		t.Fatalf("the survey counts records up to %d, want 2000", next-1)
	}
	if first, end, err := d.Span(); err != nil || first != 1 || end != 2001 {
		t.Fatalf("Span = [%d, %d), %v; want [1, 2001)", first, end, err)
	}
	v := inspect.Verify(d, nil)
	if len(v.Problems) != 0 || v.Records != 2000 || v.Segments != len(d.Files) || v.Sealed != len(d.Files)-1 {
		t.Fatalf("Verify: %+v", v)
	}
	src, err := inspect.OpenSource(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := reader.New(src, 1, reader.Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	seq := uint64(1)
	for r.Next() {
		rec := r.Record()
		if rec.Seq != seq || !bytes.Equal(rec.Payload, payloadOf(seq)) {
			t.Fatalf("reader: record %d = seq %d %q", seq, rec.Seq, rec.Payload)
		}
		seq++
	}
	if _, perr := src.Poll(); r.Err() != nil || perr != nil || seq != 2001 {
		t.Fatalf("reader stopped at %d: %v (source: %v)", seq, r.Err(), perr)
	}
}

func TestListRejectsADirectoryThatIsNotALog(t *testing.T) {
	if _, err := inspect.List(vfs.Default, t.TempDir()); !errors.Is(err, inspect.ErrNotLog) {
		t.Fatalf("List of an empty directory: %v, want ErrNotLog", err)
	}
}

// A flipped payload byte in a sealed segment: Survey trusts the footer (as
// the writer's recovery does), Verify reads every frame and finds it,
// naming the file and the frame's offset.
func TestVerifyFindsAFlippedByteSurveyTrusts(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 2000, true)
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	victim := d.Files[1]
	path := filepath.Join(d.SegPath, victim.Name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := segment.HeaderSize + segment.FrameHeaderSize + 5 // in the first record's payload
	b[at] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if s := inspect.Survey(d)[1]; s.Err != nil || s.Corrupt != nil || !s.Sealed {
		t.Fatalf("Survey of the flipped sealed segment: err %v, corrupt %v, sealed %v; want the footer trusted", s.Err, s.Corrupt, s.Sealed)
	}
	v := inspect.Verify(d, nil)
	if !v.Corrupt() || len(v.Problems) != 1 {
		t.Fatalf("Verify: %+v; want one corruption", v.Problems)
	}
	p := v.Problems[0]
	var ce *segment.CorruptError
	if !errors.As(p.Err, &ce) || ce.Segment != victim.Index || ce.Offset != segment.HeaderSize || p.File != victim.Name {
		t.Fatalf("problem %v (file %q, %+v); want segment %d offset %d in %s", p, p.File, ce, victim.Index, segment.HeaderSize, victim.Name)
	}
}

// Bytes after the last record that nothing vouches for are a torn tail:
// Survey counts them as garbage, not corruption, and Verify reports a
// problem that is not corruption.
func TestSurveyAndVerifyTellATornTail(t *testing.T) {
	src := t.TempDir()
	closeLog := writeLog(t, src, 300, false)
	defer closeLog()
	dir := crashCopy(t, src)
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	infos := inspect.Survey(d)
	last := infos[len(infos)-1]
	if last.Sealed || last.Garbage != 0 {
		t.Fatalf("last segment before the tear: sealed %v, garbage %d", last.Sealed, last.Garbage)
	}
	f, err := os.OpenFile(filepath.Join(d.SegPath, last.Name), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xAB}, 40), last.End); err != nil {
		t.Fatal(err)
	}
	f.Close()
	torn := inspect.Survey(d)[len(infos)-1]
	if torn.Garbage == 0 || torn.Corrupt != nil || torn.Records != last.Records {
		t.Fatalf("after a torn write: garbage %d, corrupt %v, records %d (was %d)", torn.Garbage, torn.Corrupt, torn.Records, last.Records)
	}
	v := inspect.Verify(d, nil)
	if v.Corrupt() || len(v.Problems) != 1 {
		t.Fatalf("Verify of a torn tail: %v; want one problem that is not corruption", v.Problems)
	}
}

// crashCopy copies the open log at src as a crash leaves it (no DURABLE
// mark, no lock) and returns the copy's directory.
func crashCopy(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"", segment.SegmentsDir} {
		entries, err := os.ReadDir(filepath.Join(src, sub))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, sub), 0o700)
		for _, e := range entries {
			if e.IsDir() || e.Name() == segment.LockFile {
				continue
			}
			b, err := os.ReadFile(filepath.Join(src, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, sub, e.Name()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}
