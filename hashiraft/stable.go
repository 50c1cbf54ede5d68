package hashiraft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"path/filepath"
	"slices"
	"sync"

	"github.com/aof2/aof2/aof"
	"github.com/aof2/aof2/segment"
	"github.com/aof2/aof2/vfs"
)

// StableFile is the name of the stable store's file in the store's
// directory; StableFile+".tmp" is the file a Set writes before renaming it.
const StableFile = "STABLE"

// stableMagic starts the stable file; the version follows it.
var stableMagic = [7]byte{'A', 'O', 'F', '2', 'S', 'T', 'B'}

const stableVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// stable is the stable store: every key and value, kept in memory and in
// one checksummed file, rewritten whole and atomically by each Set.
//
// The file is magic (7 bytes), version (1), the number of keys (uvarint),
// each key and value as a uvarint length and bytes, in key order, then the
// CRC-32C of everything before it (4 bytes, little-endian).
type stable struct {
	fs   vfs.FS
	dir  string
	perm iofs.FileMode

	mu     sync.RWMutex
	kv     map[string][]byte
	closed bool // set by close: set fails, the file is never written again
}

// openStable reads the stable file of dir. A missing file is an empty store
// when create is true (the file is written then), and an error otherwise;
// a file that fails its checks is an error wrapping aof.ErrCorrupt.
func openStable(fsys vfs.FS, dir string, perm iofs.FileMode, create bool) (*stable, error) {
	s := &stable{fs: fsys, dir: dir, perm: perm, kv: map[string][]byte{}}
	if err := fsys.Remove(s.path() + ".tmp"); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("hashiraft: remove the stable store's temporary file: %w", err)
	}
	b, err := readAll(fsys, s.path())
	if errors.Is(err, iofs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("hashiraft: %s is missing but the log holds entries: the node's term and vote are lost: %w", s.path(), ErrStableMissing)
		}
		if err := s.write(s.kv); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hashiraft: read the stable store: %w", err)
	}
	if s.kv, err = decodeStable(b); err != nil {
		return nil, fmt.Errorf("hashiraft: %s: %w", s.path(), err)
	}
	return s, nil
}

func (s *stable) path() string { return filepath.Join(s.dir, StableFile) }

// readAll reads the whole file at path.
func readAll(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		return nil, err
	}
	return b, nil
}

func encodeStable(kv map[string][]byte) []byte {
	b := append(stableMagic[:len(stableMagic):len(stableMagic)], stableVersion)
	b = binary.AppendUvarint(b, uint64(len(kv)))
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(kv[k])))
		b = append(b, kv[k]...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeStable(b []byte) (map[string][]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: stable store: %s", aof.ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if len(b) < len(stableMagic)+1+1+4 || string(b[:len(stableMagic)]) != string(stableMagic[:]) {
		return nil, bad("not a stable store file (%d bytes)", len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, bad("checksum %#08x, the file says %#08x", got, sum)
	}
	if v := body[len(stableMagic)]; v != stableVersion {
		return nil, fmt.Errorf("stable store version %d: %w", v, aof.ErrUnsupportedVersion)
	}
	p := len(stableMagic) + 1
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(body[p:])
		if k <= 0 || n > uint64(len(body)-p-k) {
			return nil, false
		}
		p += k
		v := body[p : p+int(n) : p+int(n)]
		p += int(n)
		return v, true
	}
	count, k := binary.Uvarint(body[p:])
	if k <= 0 {
		return nil, bad("key count")
	}
	p += k
	kv := make(map[string][]byte)
	for i := uint64(0); i < count; i++ {
		key, ok := next()
		if !ok {
			return nil, bad("key %d", i)
		}
		val, ok := next()
		if !ok {
			return nil, bad("value %d", i)
		}
		kv[string(key)] = val
	}
	if p != len(body) {
		return nil, bad("%d bytes after the last key", len(body)-p)
	}
	return kv, nil
}

// write replaces the stable file with kv, durably and atomically
// (segment.ReplaceFileSync: a temporary file written and synced, renamed
// over the file, the directory synced).
func (s *stable) write(kv map[string][]byte) error {
	if err := segment.ReplaceFileSync(s.fs, s.path(), encodeStable(kv), s.perm); err != nil {
		return fmt.Errorf("hashiraft: write the stable store: %w", err)
	}
	return nil
}

// set stores key = val durably; after close it fails. On an error the
// store keeps the old value in memory; the file holds the old or the new
// one.
func (s *stable) set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("hashiraft: set stable key %q: %w", key, aof.ErrClosed)
	}
	kv := make(map[string][]byte, len(s.kv)+1)
	for k, v := range s.kv {
		kv[k] = v
	}
	kv[string(key)] = slices.Clone(val)
	if err := s.write(kv); err != nil {
		return err
	}
	s.kv = kv
	return nil
}

// close makes later sets fail with aof.ErrClosed, once a set in progress
// is done: the Store next opened on the directory owns the file.
func (s *stable) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// get returns a copy of key's value and whether the key is set.
func (s *stable) get(key []byte) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.kv[string(key)]
	if !ok {
		return nil, false
	}
	return slices.Clone(v), true
}
