package aof

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/aof2/aof2/inspect"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// errLog is a closed log of 64 KiB segments, with at least four segments
// (the last unsealed, vouched for by the DURABLE mark), and the ID of
// every record.
type errLog struct {
	dir string
	ids []RecordID // ids[seq]
}

func buildErrLog(t *testing.T) errLog {
	t.Helper()
	dir := t.TempDir()
	l := openT(t, dir, Config{SegmentSize: 64 << 10})
	ids := []RecordID{{}}
	for i := uint64(1); len(ids) < 2 || ids[len(ids)-1].Segment < 4 || ids[len(ids)-1].Offset < 4096; i++ {
		ids = append(ids, mustAppend(t, l, payloadFor(i, 200)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return errLog{dir, ids}
}

// first returns the first record of segment index.
func (g errLog) first(index uint64) RecordID {
	for _, id := range g.ids[1:] {
		if id.Segment == index {
			return id
		}
	}
	panic("no such segment")
}

// last returns the last record of segment index.
func (g errLog) last(index uint64) RecordID {
	var last RecordID
	for _, id := range g.ids[1:] {
		if id.Segment == index {
			last = id
		}
	}
	return last
}

func (g errLog) seg(t *testing.T, index uint64) string { return segPath(t, g.dir, index) }

// trailerOf returns the trailer of the sealed segment file at path.
func trailerOf(t *testing.T, path string) segment.Trailer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := segment.DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok, err := segment.DecodeTrailer(b[len(b)-segment.TrailerSize:], hdr.Salt)
	if !ok || err != nil {
		t.Fatalf("%s: no trailer: %v", path, err)
	}
	return tr
}

// wantCorruptAt fails the test unless err is a *CorruptError (through
// every wrapping) naming file, segment and offset exactly, for which
// errors.Is(err, ErrCorrupt) holds.
func wantCorruptAt(t *testing.T, what string, err error, file string, seg uint64, off int64) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: %v; want a *CorruptError", what, err)
	}
	if ce.File != file || ce.Segment != seg || ce.Offset != off || ce.Reason == "" {
		t.Fatalf("%s: %v: got File %q Segment %d Offset %d Reason %q; want File %q Segment %d Offset %d",
			what, err, ce.File, ce.Segment, ce.Offset, ce.Reason, file, seg, off)
	}
}

// verifyCorruptAt runs inspect.Verify on dir and fails the test unless one
// of its problems is a *CorruptError naming file, segment and offset.
func verifyCorruptAt(t *testing.T, dir, file string, seg uint64, off int64) {
	t.Helper()
	d, err := inspect.List(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []segment.CorruptError
	for _, p := range inspect.Verify(d, nil).Problems {
		var ce *CorruptError
		if errors.As(p.Err, &ce) {
			if ce.File == file && ce.Segment == seg && ce.Offset == off {
				return
			}
			got = append(got, *ce)
		}
	}
	t.Fatalf("verify: no *CorruptError naming %s segment %d offset %d; got %+v", file, seg, off, got)
}

// Issue 12: every check that fails is a *CorruptError naming the exact
// file, segment and offset, through Open's, Read's and the Reader's
// wrapping, and in what inspect (aof verify) reports.
func TestCorruptErrorNamesFileSegmentOffset(t *testing.T) {
	type where struct {
		file string
		seg  uint64
		off  int64
	}
	cases := []struct {
		name string
		// damage damages the log and returns where the error must point.
		damage func(t *testing.T, g errLog) where
		// open: Open (strict) fails with it; otherwise Open succeeds
		// and only inspect.Verify reports it.
		open bool
	}{
		{"segment header", func(t *testing.T, g errLog) where {
			flipBit(t, g.seg(t, 2), 20)
			return where{filepath.Base(g.seg(t, 2)), 2, 0}
		}, true},
		{"header of another segment's name", func(t *testing.T, g errLog) where {
			var b [segment.HeaderSize]byte
			segment.EncodeHeader(b[:], segment.Header{Index: 9, BaseSeq: g.first(3).Seq, Size: 64 << 10, Created: 1})
			patch(t, g.seg(t, 3), 0, b[:])
			return where{filepath.Base(g.seg(t, 3)), 3, 0}
		}, true},
		{"frame checksum in the unsealed tail the DURABLE mark vouches for", func(t *testing.T, g errLog) where {
			id := g.last(4)
			flipBit(t, g.seg(t, 4), id.Offset+segment.FrameHeaderSize)
			return where{filepath.Base(g.seg(t, 4)), 4, id.Offset}
		}, true},
		{"footer checksum", func(t *testing.T, g errLog) where {
			tr := trailerOf(t, g.seg(t, 1))
			flipBit(t, g.seg(t, 1), tr.FooterOffset+9)
			return where{filepath.Base(g.seg(t, 1)), 1, tr.FooterOffset}
		}, false},
		{"trailer checksum", func(t *testing.T, g errLog) where {
			at := int64(64<<10) - segment.TrailerSize
			flipBit(t, g.seg(t, 2), at+9)
			return where{filepath.Base(g.seg(t, 2)), 2, at}
		}, false},
		{"sparse index entry out of order (footer checksum valid)", func(t *testing.T, g errLog) where {
			path := g.seg(t, 1)
			tr := trailerOf(t, path)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			hdr, err := segment.DecodeHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			ft, err := segment.DecodeFooter(b[tr.FooterOffset:tr.FooterOffset+tr.FooterLen], hdr.Salt)
			if err != nil || len(ft.Index) < 2 {
				t.Fatalf("footer %+v: %v; want two index entries", ft, err)
			}
			ft.Index[1].Offset = ft.Index[0].Offset // not after entry 0
			nb := make([]byte, segment.FooterSize(len(ft.Index)))
			segment.EncodeFooter(nb, ft, hdr.Salt)
			patch(t, path, tr.FooterOffset, nb)
			return where{filepath.Base(path), 1, tr.FooterOffset + 56 + 8}
		}, false},
		{"segments missing in between", func(t *testing.T, g errLog) where {
			if err := os.Remove(g.seg(t, 2)); err != nil {
				t.Fatal(err)
			}
			return where{filepath.Base(g.seg(t, 3)), 3, -1}
		}, true},
		{"FRONT fails its checksum", func(t *testing.T, g errLog) where {
			var b [segment.DurableMarkSize]byte
			segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: 2})
			b[9] ^= 1
			writeMarkFile(t, g.dir, segment.FrontFile, b[:])
			return where{segment.FrontFile, 0, 0}
		}, true},
		{"FRONT of the wrong size", func(t *testing.T, g errLog) where {
			writeMarkFile(t, g.dir, segment.FrontFile, make([]byte, 7))
			return where{segment.FrontFile, 0, -1}
		}, true},
		{"FRONT past the end", func(t *testing.T, g errLog) where {
			var b [segment.DurableMarkSize]byte
			segment.EncodeFrontMark(b[:], segment.FrontMark{Seq: uint64(len(g.ids)) + 5})
			writeMarkFile(t, g.dir, segment.FrontFile, b[:])
			return where{segment.FrontFile, 0, -1}
		}, true},
		{"CUT fails its checksum", func(t *testing.T, g errLog) where {
			var b [segment.DurableMarkSize]byte
			segment.EncodeCutMark(b[:], segment.CutMark{Index: 2, LastSeq: g.first(2).Seq})
			b[20] ^= 1
			writeMarkFile(t, g.dir, segment.CutFile, b[:])
			return where{segment.CutFile, 0, 0}
		}, true},
		{"CUT keeping a record its segment does not hold", func(t *testing.T, g errLog) where {
			var b [segment.DurableMarkSize]byte
			segment.EncodeCutMark(b[:], segment.CutMark{Index: 2, LastSeq: g.first(3).Seq})
			writeMarkFile(t, g.dir, segment.CutFile, b[:])
			return where{segment.CutFile, 0, -1}
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := buildErrLog(t)
			w := c.damage(t, g)
			verifyCorruptAt(t, g.dir, w.file, w.seg, w.off)
			l, err := Open(g.dir, Config{SegmentSize: 64 << 10})
			if !c.open {
				if err != nil {
					t.Fatalf("Open: %v; the damage is not one Open checks", err)
				}
				l.Close()
				return
			}
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded")
			}
			wantCorruptAt(t, "Open", err, w.file, w.seg, w.off)
		})
	}
}

// Issue 12: a corrupt record of a sealed segment (trusted at Open) is a
// *CorruptError naming its segment file and frame offset from Read and from
// a Reader; so is a DURABLE mark that fails its checks in what inspect
// reports (Open ignores it).
func TestCorruptErrorFromReadReaderAndDurableMark(t *testing.T) {
	g := buildErrLog(t)
	id := g.ids[len(g.ids)/4]
	if id.Segment == 1 && id.Seq == 1 {
		t.Fatal("want a record after the first")
	}
	flipBit(t, g.seg(t, id.Segment), id.Offset+segment.FrameHeaderSize)
	var b [segment.DurableMarkSize]byte
	segment.EncodeDurableMark(b[:], segment.DurableMark{Index: 9, Offset: 64})
	b[3] ^= 1
	writeMarkFile(t, g.dir, segment.DurableFile, b[:])
	d, err := inspect.List(vfs.Default, g.dir)
	if err != nil {
		t.Fatal(err)
	}
	wantCorruptAt(t, "inspect DURABLE", d.MarkErr, segment.DurableFile, 0, 0)

	l := openT(t, g.dir, Config{SegmentSize: 64 << 10})
	defer l.Close()
	name := filepath.Base(g.seg(t, id.Segment))
	_, err = l.Read(id.Seq, nil)
	wantCorruptAt(t, "Read", err, name, id.Segment, id.Offset)
	r, err := l.NewReader(1, Written)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() {
	}
	wantCorruptAt(t, "Reader", r.Err(), name, id.Segment, id.Offset)
}

// setVersion rewrites the header of the segment file at path with format
// version v and a valid checksum: a segment a newer aof2 wrote.
func setVersion(t *testing.T, path string, v uint16) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := b[:segment.HeaderSize:segment.HeaderSize]
	binary.LittleEndian.PutUint16(h[8:], v)
	binary.LittleEndian.PutUint64(h[56:], xxhash.Sum64(h[:56]))
	patch(t, path, 0, h)
}

// Issue 12: a segment of a newer format version is ErrUnsupportedVersion,
// never corruption, from strict and repair Open alike, and Open changes
// nothing in the directory: repair mode must never cut, move or rewrite
// it, also when it follows a corrupt segment repair would move aside, or
// when an interrupted TruncateBack drops it.
func TestUnsupportedVersionIsNeverRepaired(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, g errLog)
		// corruptFirst: a corrupt segment comes before the newer one,
		// so a strict Open fails on it first (ErrCorrupt).
		corruptFirst bool
	}{
		{"last segment", func(t *testing.T, g errLog) { setVersion(t, g.seg(t, 4), 3) }, false},
		{"sealed segment", func(t *testing.T, g errLog) { setVersion(t, g.seg(t, 2), 7) }, false},
		{"after a corrupt segment", func(t *testing.T, g errLog) {
			flipBit(t, g.seg(t, 2), 20)
			setVersion(t, g.seg(t, 4), 3)
		}, true},
		{"after corruption in the middle of a scanned segment", func(t *testing.T, g errLog) {
			// Unseal segment 3 (zero its trailer) and damage a record
			// that later records vouch for: repair would cut it and
			// move segment 4 aside.
			patch(t, g.seg(t, 3), 64<<10-segment.TrailerSize, make([]byte, segment.TrailerSize))
			flipBit(t, g.seg(t, 3), g.first(3).Offset+segment.FrameHeaderSize)
			setVersion(t, g.seg(t, 4), 3)
		}, false},
		{"dropped by an interrupted TruncateBack", func(t *testing.T, g errLog) {
			var b [segment.DurableMarkSize]byte
			segment.EncodeCutMark(b[:], segment.CutMark{Index: 2, LastSeq: g.first(2).Seq})
			writeMarkFile(t, g.dir, segment.CutFile, b[:])
			setVersion(t, g.seg(t, 4), 3)
		}, false},
	}
	for _, c := range cases {
		for mode, mname := range map[RecoveryMode]string{RecoverStrict: "strict", RecoverRepair: "repair"} {
			t.Run(c.name+"/"+mname, func(t *testing.T) {
				g := buildErrLog(t)
				c.damage(t, g)
				before := dirState(t, g.dir)
				l, err := Open(g.dir, Config{SegmentSize: 64 << 10, Recovery: mode})
				if err == nil {
					l.Close()
					t.Fatal("Open succeeded")
				}
				var ce *CorruptError
				if c.corruptFirst && mode == RecoverStrict {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("Open: %v; want ErrCorrupt (the corrupt segment comes first)", err)
					}
				} else if !errors.Is(err, ErrUnsupportedVersion) || errors.Is(err, ErrCorrupt) || errors.As(err, &ce) {
					t.Fatalf("Open: %v; want ErrUnsupportedVersion and not ErrCorrupt", err)
				}
				sameState(t, g.dir, before, "Open of a log with a newer segment")
			})
		}
	}
}
