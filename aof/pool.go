package aof

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// pool keeps the files of segments that retention, TruncateFront or a
// recovery dropped, up to a bound (Config.RecycleSegments), so that the
// preparer reuses them (segment.Recycle) instead of creating new files:
// their blocks are already written, and a sync into written blocks
// journals no extent conversion (1.5-1.9x cheaper from 4 KiB up, measured
// on ext4).
//
// On disk a pooled file is a segment file renamed to a pool name
// (segment.PoolSuffix) in the segments directory: a rename instead of the
// removal, made durable by the same directory sync. Recovery never reads a
// pool file as a segment, and keeps those it finds, up to the bound. Safe
// at every step: the records a pooled file held are before the log's front
// (FRONT is durable before anything is dropped), and its next life's
// checksums are salted anew (segment.Recycle, Activate), so none of its old
// bytes is ever taken for a record.
type pool struct {
	fs    vfs.FS
	dir   string
	size  int64
	bound int

	mu    sync.Mutex
	files []pooled
	next  uint64 // name counter
	taken uint64 // files handed out for reuse, since open
}

// pooled is one file of the pool; seg, while not nil, is the segment it
// held, whose readers may still map it: the file is reused only once
// nobody holds that segment.
type pooled struct {
	path string
	seg  *segment.Segment
}

func newPool(fsys vfs.FS, dir string, size int64, bound int) *pool {
	return &pool{fs: fsys, dir: dir, size: size, bound: max(bound, 0)}
}

// poolName returns the name of pool file id.
func poolName(id uint64) string { return fmt.Sprintf("%020d%s", id, segment.PoolSuffix) }

// parsePoolName parses a name made by poolName.
func parsePoolName(name string) (uint64, bool) {
	stem, ok := strings.CutSuffix(name, segment.PoolSuffix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(stem, 10, 64)
	return id, err == nil
}

// put moves the file of s, a segment the log drops, into the pool if the
// pool has room and the file suits it (this log's segment size, a salted
// format: a version-1 file's frames verify with salt 0, which would make
// a recycled file whose new header a crash lost look synced). It reports
// whether it did; if not, the caller removes the file. The caller syncs
// the directory, as for a removal.
func (p *pool) put(s *segment.Segment) bool {
	h := s.Header()
	if h.Size != p.size || h.Salt == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.files) >= p.bound {
		return false
	}
	path := filepath.Join(p.dir, poolName(p.next))
	if err := p.fs.Rename(s.Path(), path); err != nil {
		return false
	}
	p.next++
	p.files = append(p.files, pooled{path: path, seg: s})
	return true
}

// keep moves the file at path, a new segment file prepared and never
// activated, into the pool if the pool has room, else removes it. Its
// bytes are zeros or a preallocation's (no header, no frame), so it needs
// no salt: segment.Recycle gives it one when it is reused. A crash that
// loses the rename leaves the temporary name, which recovery removes.
func (p *pool) keep(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.files) < p.bound {
		to := filepath.Join(p.dir, poolName(p.next))
		if err := p.fs.Rename(path, to); err == nil {
			p.next++
			p.files = append(p.files, pooled{path: to})
			return
		}
	}
	p.fs.Remove(path)
}

// take returns the path of a pooled file nobody holds any more, oldest
// first, and removes it from the pool.
func (p *pool) take() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.files {
		if f.seg != nil && f.seg.Held() {
			continue
		}
		p.files = append(p.files[:i], p.files[i+1:]...)
		p.taken++
		return f.path, true
	}
	return "", false
}

// load adopts the pool files recovery found (names in the segments
// directory), up to the bound, and removes the others; the caller syncs
// the directory if it reports a removal.
func (p *pool) load(names []string) (removed []string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range names {
		id, _ := parsePoolName(name)
		p.next = max(p.next, id+1)
		path := filepath.Join(p.dir, name)
		if len(p.files) < p.bound && p.fits(path) {
			p.files = append(p.files, pooled{path: path})
			continue
		}
		if err := p.fs.Remove(path); err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// fits reports whether the file at path has the pool's size.
func (p *pool) fits(path string) bool {
	f, err := p.fs.OpenReadOnly(path)
	if err != nil {
		return false
	}
	defer f.Close()
	n, err := f.Size()
	return err == nil && n == p.size
}

// stats returns the number of pooled files and of files handed out for
// reuse since open.
func (p *pool) stats() (pooled int, taken uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.files), p.taken
}
