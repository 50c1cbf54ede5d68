package aof

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aof2/aof2/segment"
)

// Bit flips. Two logs are built once (64 KiB segments, sealed ones and an
// unsealed tail): one closed cleanly (its DURABLE mark vouches for the
// tail) and one copied while open after a Sync (a crash image: the last
// records vouched by nothing). Each case copies one, flips one bit at a
// position drawn from one of the structures (segment header, frame header,
// payload, padding, footer, sparse index, trailer, free space, DURABLE
// mark), and opens it in strict mode. Both logs are also built on
// recycled segment files (TruncateFront drops segments, whose files the
// log reuses: the tail and the sealed segments kept hold stale bytes of
// earlier lives past their data, and the records start past 1). Either Open fails with an error
// wrapping ErrCorrupt that names an offset, or it succeeds and:
//
//   - no record is lost silently: the log ends where it did, or recovery
//     reports a truncation and the log still holds every record before
//     the flipped one (a torn tail cannot be told from a flip in bytes
//     nothing vouches for; the clean log vouches for all of its bytes, so
//     there it must fail instead);
//   - every record served (Read, and a Reader) is byte-identical to the one
//     appended; a record that fails its checksum is an ErrCorrupt, never
//     a payload;
//   - the log takes appends, and after a clean Close and Open it is the
//     same log.
const (
	bitflipsEnv     = "AOF2_BITFLIPS"
	bitflipsSeedEnv = "AOF2_BITFLIPS_SEED"
	bitflipsDefault = 60 // per log; two logs
	bitflipMaxLen   = 1500
)

// flipRegion is a byte range of one file, of one kind of structure.
type flipRegion struct {
	kind     string
	file     string // relative to the log directory
	from, to int64
	seq      uint64 // the record whose frame holds it, or 0
}

// flipTemplate is a log to flip bits in.
type flipTemplate struct {
	name    string
	dir     string
	first   uint64 // FirstSeq of the intact log
	next    uint64 // NextSeq of the intact log
	vouched bool   // every byte of it is vouched durable
	regions map[string][]flipRegion
}

func TestBitFlips(t *testing.T) {
	n := bitflipsDefault
	if s := os.Getenv(bitflipsEnv); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", bitflipsEnv, s)
		}
	}
	if testing.Short() {
		n = 20
	}
	seed := uint64(1)
	if s := os.Getenv(bitflipsSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", bitflipsSeedEnv, s, err)
		}
	}
	t.Logf("seed %d, %d flips per log", seed, n)
	cfg := Config{SegmentSize: 64 << 10}
	var opened, failed, truncated, served, corruptReads int
	var cut uint64 // records cut as a torn tail (crashed log only)
	byKind := map[string]int{}
	for _, tpl := range []flipTemplate{buildFlipLog(t, true, false), buildFlipLog(t, false, false),
		buildFlipLog(t, true, true), buildFlipLog(t, false, true)} {
		rng := rand.New(rand.NewPCG(seed, uint64(len(tpl.name))))
		kinds := make([]string, 0, len(tpl.regions))
		for k := range tpl.regions {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for i := range n {
			if t.Failed() {
				return
			}
			// Round-robin over the kinds of structure, a random
			// region of that kind, a random bit in it.
			kind := kinds[i%len(kinds)]
			regs := tpl.regions[kind]
			reg := regs[rng.IntN(len(regs))]
			off := reg.from + rng.Int64N(reg.to-reg.from)
			bit := rng.IntN(8)
			byKind[kind]++
			what := fmt.Sprintf("%s log, flip %d: bit %d of byte %d of %s (%s, record %d)", tpl.name, i, bit, off, reg.file, kind, reg.seq)
			dir := crashCopy(t, tpl.dir)
			path := filepath.Join(dir, reg.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			patch(t, path, off, []byte{b[off] ^ 1<<bit})

			l, err := Open(dir, cfg)
			if err != nil {
				failed++
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "offset") {
					t.Fatalf("%s: Open: %v; want an error wrapping ErrCorrupt naming an offset", what, err)
				}
				// Issue 12: the *CorruptError names the file flipped
				// (a segment: at or before the flip), or the segment
				// the flipped DURABLE mark vouches for.
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.File == "" || ce.Offset < 0 {
					t.Fatalf("%s: Open: %v; want a *CorruptError naming a file and an offset, got %+v", what, err, ce)
				}
				if strings.HasPrefix(reg.file, "segments") {
					index, _, _ := segment.ParseName(ce.File)
					if ce.File != filepath.Base(reg.file) || ce.Segment != index || ce.Offset > off {
						t.Fatalf("%s: Open: %v; want a *CorruptError naming %s at or before offset %d, got %+v", what, err, filepath.Base(reg.file), off, ce)
					}
				}
				continue
			}
			opened++
			rep := l.Recovery()
			if len(rep.Truncations) > 0 {
				truncated++
			}
			switch {
			case rep.NextSeq == tpl.next:
			case rep.NextSeq > tpl.next:
				t.Fatalf("%s: the log grew: NextSeq %d, was %d", what, rep.NextSeq, tpl.next)
			case tpl.vouched:
				t.Fatalf("%s: records %d..%d vouched durable were dropped (recovery %+v)", what, rep.NextSeq, tpl.next-1, rep)
			case len(rep.Truncations) == 0 && len(rep.Removed) == 0:
				t.Fatalf("%s: records %d..%d gone without a truncation reported", what, rep.NextSeq, tpl.next-1)
			case reg.seq == 0 || rep.NextSeq < reg.seq:
				t.Fatalf("%s: recovery cut at seq %d, before the flipped record", what, rep.NextSeq)
			}
			cut += tpl.next - rep.NextSeq
			if rep.FirstSeq != tpl.first {
				t.Fatalf("%s: FirstSeq %d, was %d", what, rep.FirstSeq, tpl.first)
			}
			s, c := checkFlipped(t, l, tpl.first, rep.NextSeq, what)
			served += s
			corruptReads += c
			// The log goes on, and stays the same across a clean
			// Close and Open.
			for j := range 3 {
				if _, err := l.Append(ctx, payloadFor(rep.NextSeq+uint64(j), bitflipMaxLen)); err != nil {
					t.Fatalf("%s: Append after recovery: %v", what, err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatalf("%s: Close: %v", what, err)
			}
			l, err = Open(dir, cfg)
			if err != nil {
				t.Fatalf("%s: reopen after recovery, appends and Close: %v", what, err)
			}
			if r2 := l.Recovery(); r2.NextSeq != rep.NextSeq+3 || len(r2.Truncations) != 0 {
				t.Fatalf("%s: reopen: NextSeq %d, want %d; truncations %+v", what, r2.NextSeq, rep.NextSeq+3, r2.Truncations)
			}
			checkFlipped(t, l, tpl.first, rep.NextSeq+3, what)
			l.Close()
		}
	}
	t.Logf("totals: %d flips; Open failed with ErrCorrupt %d times, succeeded %d times (%d with a torn tail reported, "+
		"%d records cut by those, all reported); %d records served and verified, %d reads refused as corrupt, 0 corrupt served; flips by structure %v",
		opened+failed, failed, opened, truncated, cut, served, corruptReads, byKind)
}

// checkFlipped reads [first, next) with Read and with a Reader: every
// record is the one appended, or an error wrapping ErrCorrupt. It returns
// the number of records served and of reads refused.
func checkFlipped(t *testing.T, l *Log, first, next uint64, what string) (served, refused int) {
	t.Helper()
	for seq := first; seq < next; seq++ {
		rec, err := l.Read(seq, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: Read(%d): %v", what, seq, err)
			}
			checkCorruptError(t, err, what)
			refused++
			continue
		}
		if rec.Seq != seq || !bytes.Equal(rec.Payload, payloadFor(seq, bitflipMaxLen)) {
			t.Fatalf("%s: Read(%d) served a payload that is not the one appended", what, seq)
		}
		served++
	}
	r, err := l.NewReader(first, Written)
	if err != nil {
		t.Fatalf("%s: NewReader: %v", what, err)
	}
	seq := first
	for rec, err := range r.All() {
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: Reader at seq %d: %v", what, seq, err)
			}
			checkCorruptError(t, err, what)
			return served, refused
		}
		if rec.Seq != seq || !bytes.Equal(rec.Payload, payloadFor(seq, bitflipMaxLen)) {
			t.Fatalf("%s: Reader served seq %d (want %d) with a payload that is not the one appended", what, rec.Seq, seq)
		}
		seq++
	}
	if seq != next {
		t.Fatalf("%s: Reader stopped at %d without an error, log ends at %d", what, seq, next)
	}
	return served, refused
}

// flipName names a flip template.
func flipName(closed, recycled bool) string {
	name := "crashed"
	if closed {
		name = "closed"
	}
	if recycled {
		name += " recycled"
	}
	return name
}

// flipRecycled reports whether the active segment of l and the one before
// it are recycled files.
func flipRecycled(l *Log) bool {
	segs := l.segments()
	return len(segs) >= 2 && segs[len(segs)-1].Recycled() && segs[len(segs)-2].Recycled()
}

// segments returns a copy of the log's segments, oldest first.
func (l *Log) segments() []*seg {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return append([]*seg(nil), l.segs...)
}

// checkCorruptError fails the test unless err, from a read, is a
// *CorruptError naming a segment file, its index and the offset of a frame
// (issue 12).
func checkCorruptError(t *testing.T, err error, what string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v is no *CorruptError", what, err)
	}
	if index, _, ok := segment.ParseName(ce.File); !ok || index != ce.Segment || ce.Offset < segment.HeaderSize || ce.Offset%segment.Align != 0 {
		t.Fatalf("%s: %v: want a *CorruptError naming a segment file, its index and a frame offset, got %+v", what, err, ce)
	}
}

// buildFlipLog writes a log of several 64 KiB segments and maps its
// structures. closed: Close it (DURABLE mark); otherwise copy it while open
// right after a Sync, as a crash would leave it. recycled: the log keeps
// its last three segments (TruncateFront), and goes on until the active
// segment and a sealed one before it are recycled files.
func buildFlipLog(t *testing.T, closed, recycled bool) flipTemplate {
	t.Helper()
	src := t.TempDir()
	l := openT(t, src, Config{SegmentSize: 64 << 10, NoBackgroundFlush: true, RecycleSegments: 2})
	var ids []RecordID
	for i := uint64(1); len(ids) < 40 || ids[len(ids)-1].Segment < 4 || recycled && !flipRecycled(l); i++ {
		ids = append(ids, mustAppend(t, l, payloadFor(i, bitflipMaxLen)))
		if i%25 == 0 {
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if segs := l.segments(); recycled && len(segs) > 3 {
			if err := l.TruncateFront(ctx, segs[len(segs)-3].Header().BaseSeq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	tpl := flipTemplate{name: flipName(closed, recycled), first: l.FirstSeq(), next: ids[len(ids)-1].Seq + 1, regions: map[string][]flipRegion{}}
	if closed {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		tpl.dir, tpl.vouched = src, true
	} else {
		tpl.dir = crashCopy(t, src)
		l.Close()
	}
	add := func(r flipRegion) {
		if r.to > r.from {
			tpl.regions[r.kind] = append(tpl.regions[r.kind], r)
		}
	}
	names, err := filepath.Glob(filepath.Join(tpl.dir, "segments", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range names {
		file := filepath.Join("segments", filepath.Base(path))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		add(flipRegion{kind: "segment header", file: file, from: 0, to: segment.HeaderSize})
		hdr, _ := segment.DecodeHeader(b)
		off := int64(segment.HeaderSize)
		for off+segment.FrameHeaderSize <= int64(len(b)) {
			h := segment.DecodeFrameHeader(b[off:])
			if h.Seq == 0 {
				break
			}
			end := off + segment.FrameHeaderSize + int64(h.Len)
			if _, err := segment.VerifyFrame(b[off:], h, hdr.Salt); err != nil {
				break
			}
			add(flipRegion{kind: "frame header", file: file, from: off, to: off + segment.FrameHeaderSize, seq: h.Seq})
			add(flipRegion{kind: "payload", file: file, from: off + segment.FrameHeaderSize, to: end, seq: h.Seq})
			add(flipRegion{kind: "padding", file: file, from: end, to: off + segment.FrameSize(int(h.Len)), seq: h.Seq})
			off += segment.FrameSize(int(h.Len))
		}
		tr, ok, _ := segment.DecodeTrailer(b[len(b)-segment.TrailerSize:], hdr.Salt)
		if ok {
			add(flipRegion{kind: "footer", file: file, from: tr.FooterOffset, to: tr.FooterOffset + 56})
			add(flipRegion{kind: "sparse index", file: file, from: tr.FooterOffset + 56, to: tr.FooterOffset + tr.FooterLen})
			add(flipRegion{kind: "trailer", file: file, from: int64(len(b)) - segment.TrailerSize, to: int64(len(b))})
		} else if hdr.Recycled {
			add(flipRegion{kind: "stale bytes", file: file, from: off, to: min(off+4096, int64(len(b)))})
		} else {
			add(flipRegion{kind: "free space", file: file, from: off, to: min(off+4096, int64(len(b)))})
		}
	}
	if closed {
		add(flipRegion{kind: "durable mark", file: "DURABLE", from: 0, to: segment.DurableMarkSize})
	}
	return tpl
}
