// Package inspect is a read-only view of an aof2 log directory, for tools
// (cmd/aof) that look at a log while a writer may be appending to it.
//
// # What it never does
//
// It never writes to the log directory, never creates a file there, and
// never takes DIR/LOCK: the writer's flock stays where it is. Segment files
// are opened read-only and mapped read-only and shared, so bytes the writer
// writes with pwrite are seen at once (the page cache is shared). Every
// record returned has had its checksum verified.
//
// # Reading records
//
// Records are read with package reader, the library's own reader, over
// the directory as a Source (OpenSource): the tool and the library's
// Follow share one reader and one set of rules. The Source hands the
// Reader segments opened read-only; it brings the last one up to date
// incrementally (segment.Observe: a look when nothing is new reads one
// frame header, tries to open the next segment by its predictable name and
// stats the file, about a few µs, against 15-30 ms to rescan a full 64 MiB
// segment from its header).
//
// Without the lock, the writer renames, writes, cuts and removes segments
// while they are read. When segments do not line up, the Source and Verify
// take a fresh look (the directory listed again, FRONT and CUT reread)
// and report corruption only if the evidence still holds; records the
// writer removed are a *TruncatedError, not corruption.
//
// # Concurrency
//
// A Source serves one Reader at a time; a Dir and a Survey are for one
// goroutine each.
package inspect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// Names inside a log directory (defined by the segment package).
const (
	LockFile    = segment.LockFile
	DurableFile = segment.DurableFile
	FrontFile   = segment.FrontFile
	CutFile     = segment.CutFile
	SegmentsDir = segment.SegmentsDir
)

// ErrNotLog is wrapped when a directory does not look like an aof2 log.
var ErrNotLog = errors.New("not an aof2 log directory")

// ErrTornTail is wrapped by the error Source.Poll reports when a Reader
// stopped at bytes that are not a complete record and that no later record
// vouches were durable: what the writer truncates when it opens the log (or, on a
// live log, a write still in progress).
var ErrTornTail = errors.New("torn tail")

// File is one segment file of a log, as named on disk.
type File struct {
	Name    string // file name in DIR/segments
	Index   uint64 // segment index from the name
	BaseSeq uint64 // base sequence number from the name
}

// Dir is a listing of a log directory.
type Dir struct {
	Path     string // the log directory
	SegPath  string // DIR/segments
	Files    []File // segment files, by index
	Prepared []string
	// Mark is DIR/DURABLE as decoded, when HasMark. MarkErr says why a
	// DURABLE file that exists could not be used.
	Mark    segment.DurableMark
	HasMark bool
	MarkErr error
	// Front is the first retained sequence number DIR/FRONT records
	// (TruncateFront, retention), or 0 without one (HasFront false);
	// FrontErr says why a FRONT file could not be used.
	Front    uint64
	HasFront bool
	FrontErr error
	// Cut is DIR/CUT, when HasCut: a TruncateBack that was interrupted,
	// which the writer completes when it opens the log (records after
	// Cut.LastSeq go).
	Cut    segment.CutMark
	HasCut bool
	CutErr error

	fs vfs.FS
}

// List reads the directory of the log at path. It fails with an error
// wrapping ErrNotLog when path has no segments directory.
func List(fsys vfs.FS, path string) (*Dir, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("log directory %s: %w", path, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: %w: it is a file; give the directory the log was opened with (the one holding %s/)", path, ErrNotLog, SegmentsDir)
	}
	d := &Dir{Path: path, SegPath: filepath.Join(path, SegmentsDir), fs: fsys}
	names, err := fsys.ReadDir(d.SegPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w: no %s/ directory in it; give the directory the log was opened with", path, ErrNotLog, SegmentsDir)
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.SegPath, err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, segment.TempSuffix) {
			d.Prepared = append(d.Prepared, name)
			continue
		}
		if index, base, ok := segment.ParseName(name); ok {
			d.Files = append(d.Files, File{Name: name, Index: index, BaseSeq: base})
		}
	}
	sort.Slice(d.Files, func(i, j int) bool { return d.Files[i].Index < d.Files[j].Index })
	d.Mark, d.HasMark, d.MarkErr = readMark(fsys, filepath.Join(path, DurableFile), segment.DecodeDurableMark)
	var front segment.FrontMark
	front, d.HasFront, d.FrontErr = readMark(fsys, filepath.Join(path, FrontFile), segment.DecodeFrontMark)
	d.Front = front.Seq
	d.Cut, d.HasCut, d.CutErr = readMark(fsys, filepath.Join(path, CutFile), segment.DecodeCutMark)
	return d, nil
}

// readMark reads and decodes one of the log's mark files, as the writer
// reads it (segment.ReadMark). A missing file is no mark and no error.
func readMark[M any](fsys vfs.FS, path string, decode func([]byte) (M, error)) (M, bool, error) {
	var zero M
	b, ok, err := segment.ReadMark(fsys, path)
	if err != nil || !ok {
		return zero, false, err
	}
	m, err := decode(b[:])
	if err != nil {
		return zero, false, fmt.Errorf("%s: %w", path, err)
	}
	return m, true, nil
}

// Vouched returns the offset the DURABLE mark vouches for in the segment
// with the given index, or 0.
func (d *Dir) Vouched(index uint64) int64 {
	if d.HasMark && d.Mark.Index == index {
		return d.Mark.Offset
	}
	return 0
}

// FirstRetained returns the sequence number of the first record the log
// still holds: the front DIR/FRONT records (TruncateFront, retention), or
// the base sequence number of the first segment file if that is later (1
// for an empty log). This is the one place that decides it.
//
// While a CUT mark is there (a TruncateBack under way, or interrupted by a
// crash), the segments it drops are not counted: the log is what the
// writer's Open keeps. A Reset's CUT drops them all and sets the front.
func (d *Dir) FirstRetained() uint64 {
	if d.HasCut && d.CutErr == nil && d.Cut.Reset {
		return d.Cut.LastSeq + 1
	}
	first := uint64(1)
	for _, f := range d.Files {
		if !d.Dropped(f.Index) {
			first = f.BaseSeq
			break
		}
	}
	return max(first, d.Front)
}

// CutEnd returns where the log ends once the TruncateBack that DIR/CUT
// records is complete (Cut.LastSeq+1), and whether there is such a mark.
// The writer completes it when it opens the log, whatever happened to the
// writer that decided it: records from CutEnd on are gone.
func (d *Dir) CutEnd() (uint64, bool) {
	if !d.HasCut || d.CutErr != nil {
		return 0, false
	}
	return d.Cut.LastSeq + 1, true
}

// Dropped reports whether the segment with this index is one that the
// TruncateBack DIR/CUT records removes (segment.CutMark.Drops).
func (d *Dir) Dropped(index uint64) bool {
	return d.HasCut && d.CutErr == nil && d.Cut.Drops(index)
}

// Writer says whether a process holds the log's lock (DIR/LOCK), found in
// /proc/locks without touching the lock. pid is the holder's process id as
// the kernel reports it. With no LOCK file no writer holds it (held false,
// ok true); ok is false when it cannot be told (no /proc/locks, or the
// LOCK file cannot be looked at).
func (d *Dir) Writer() (pid int, held, ok bool) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(d.Path, LockFile), &st); err != nil {
		return 0, false, errors.Is(err, fs.ErrNotExist)
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, false, false
	}
	dev := uint64(st.Dev)
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), st.Ino)
	for line := range strings.Lines(string(b)) {
		// "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; lines of
		// blocked waiters carry "->" after the number.
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "->" {
			continue
		}
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != want {
			continue
		}
		pid, _ := strconv.Atoi(f[4])
		return pid, true, true
	}
	return 0, false, true
}
