package inspect

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// ErrNoHeader is wrapped when a segment file's header is all zeros: it was
// created but its header never reached the disk (the writer removes such
// a file when it opens the log, if nothing after it is durable).
var ErrNoHeader = segment.ErrNoHeader

// mapped is one segment file mapped read-only, decoded with the pure
// functions of segment/format.go. It never writes.
type mapped struct {
	file  File
	f     vfs.File
	ino   uint64      // inode of the file when it was opened; 0 when unknown
	data  vfs.Mapping // read-only shared mapping of [0, hdr.Size)
	hdr   segment.Header
	limit int64 // segment.DataLimit(hdr.Size)

	sealed bool
	footer segment.Footer
	// trailerErr is set when the file carries a trailer or footer that
	// fails its checks (damage, or a crash during seal).
	trailerErr error
}

// openMapped opens and maps one segment file and checks its header against
// its name. A file shorter than its header says is an error: mapping past
// the end of a file faults, and only the writer extends such a file.
func openMapped(fsys vfs.FS, segDir string, file File) (_ *mapped, err error) {
	path := filepath.Join(segDir, file.Name)
	// The inode before the open: if a new file takes the name in
	// between, stillThere sees a change and the reader looks afresh.
	var st unix.Stat_t
	ino := uint64(0)
	if unix.Stat(path, &st) == nil {
		ino = st.Ino
	}
	f, err := fsys.OpenReadOnly(path)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	m := &mapped{file: file, f: f, ino: ino}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	hdr, err := segment.ReadHeader(f, file.Name)
	if err != nil {
		return nil, err
	}
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file.Name, err)
	}
	if size < hdr.Size {
		return nil, segment.Corrupt(file.Name, hdr.Index, -1, "the file is %d bytes, its header says %d (cut or copied short?)", size, hdr.Size)
	}
	m.hdr = hdr
	m.limit = segment.DataLimit(hdr.Size)
	if m.data, err = f.MapReadOnly(int(hdr.Size)); err != nil {
		return nil, fmt.Errorf("%s: %w", file.Name, err)
	}
	m.checkSealed()
	return m, nil
}

// stillThere reports whether the file's name in segDir still names the
// file m maps (one stat; the writer's TruncateBack removes segment files,
// and may give a new one the same name). It says true when it cannot tell.
func (m *mapped) stillThere(segDir string) bool {
	var st unix.Stat_t
	err := unix.Stat(filepath.Join(segDir, m.file.Name), &st)
	if errors.Is(err, unix.ENOENT) {
		return false
	}
	return err != nil || m.ino == 0 || st.Ino == m.ino
}

// sameAs reports whether the file named m.file.Name in segDir carries the
// header m was opened with (a new file that took the name has another
// creation time). It says true when it cannot tell.
func (m *mapped) sameAs(fsys vfs.FS, segDir string) bool {
	h, err := readHeader(fsys, segDir, m.file.Name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNoHeader) {
		return false
	}
	return err != nil || h == m.hdr
}

// firstCreatedAfter returns the base sequence number of the lowest-indexed
// segment of d created after m, among those indexed at most like m: the
// segment a TruncateBack that removed m's file made (any later ones follow
// it). ok is false when there is none.
func (m *mapped) firstCreatedAfter(fsys vfs.FS, d *Dir) (base uint64, ok bool) {
	for i := len(d.Files) - 1; i >= 0; i-- {
		f := d.Files[i]
		if f.Index > m.file.Index {
			continue
		}
		h, err := readHeader(fsys, d.SegPath, f.Name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || h.Created <= m.hdr.Created {
			break
		}
		base, ok = f.BaseSeq, true
	}
	return base, ok
}

// readHeader reads and checks the header of the segment file name.
func readHeader(fsys vfs.FS, segDir, name string) (segment.Header, error) {
	f, err := fsys.OpenReadOnly(filepath.Join(segDir, name))
	if err != nil {
		return segment.Header{}, err
	}
	defer f.Close()
	return segment.ReadHeader(f, name)
}

func (m *mapped) close() error {
	err := m.data.Unmap()
	m.data = nil
	return errors.Join(err, m.f.Close())
}

// checkSealed reads the trailer and footer, if any. A writer seals a
// segment after it was read for a while, so followers call it again.
func (m *mapped) checkSealed() bool {
	if m.sealed {
		return true
	}
	f, sealed, err := segment.SealedFooter(m.hdr, m.data)
	if err != nil {
		m.trailerErr = segment.At(err, m.file.Name, m.hdr.Index, 0)
		return false
	}
	if !sealed {
		return false
	}
	m.trailerErr = nil
	m.sealed, m.footer = true, f
	return true
}

// frameStatus says what frameAt found.
type frameStatus uint8

const (
	frameOK    frameStatus = iota
	frameEmpty             // zeros: nothing written here (yet)
	frameBad               // bytes that are not the expected complete frame
)

// frameAt decodes and verifies the frame at off, which must hold seq.
// payload is a slice of the mapping. Errors do not name the file, and
// their offset is relative to the frame: callers place them (segment.At).
func (m *mapped) frameAt(off int64, seq uint64) (h segment.FrameHeader, payload []byte, next int64, st frameStatus, err error) {
	if off+segment.FrameHeaderSize > m.limit {
		return h, nil, off, frameEmpty, nil
	}
	b := m.data[off : off+segment.FrameHeaderSize]
	if bytes.Equal(b, zeroFrameHeader[:]) {
		return h, nil, off, frameEmpty, nil
	}
	h = segment.DecodeFrameHeader(b)
	if !segment.Plausible(h, off, seq, m.limit) {
		return h, nil, off, frameBad, segment.Corrupt("", 0, 0, "no valid frame for seq %d (header says seq %d, length %d, hint %d)",
			seq, h.Seq, h.Len, h.Hint)
	}
	payload, err = segment.VerifyFrame(m.data[off:m.limit], h)
	if err != nil {
		return h, nil, off, frameBad, err
	}
	return h, payload, off + segment.FrameSize(int(h.Len)), frameOK, nil
}

var zeroFrameHeader [segment.FrameHeaderSize]byte

// seek returns the offset of the frame holding seq, walking frame lengths
// (without checksums; reading verifies) from the nearest footer index entry
// of a sealed segment, or from the header. ok is false when the walk meets
// bytes that are not a plausible frame before reaching seq.
func (m *mapped) seek(seq uint64) (off int64, at uint64, ok bool) {
	off, at = segment.HeaderSize, m.hdr.BaseSeq
	if m.sealed {
		for _, e := range m.footer.Index {
			if e.Seq > seq {
				break
			}
			off, at = e.Offset, e.Seq
		}
	}
	for at < seq {
		if off+segment.FrameHeaderSize > m.limit {
			return off, at, false
		}
		h := segment.DecodeFrameHeader(m.data[off:])
		if !segment.Plausible(h, off, at, m.limit) {
			return off, at, false
		}
		off += segment.FrameSize(int(h.Len))
		at++
	}
	return off, at, true
}
