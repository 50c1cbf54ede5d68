package vfstest

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/aof2/aof2/vfs"
)

// PowerFS wraps an FS, passes every operation through to it, and keeps a
// model of what the disk would hold if the machine lost power at this very
// moment. [PowerFS.Snapshot] captures that model; [PowerImage.Write] turns
// it into a directory, choosing what happened to the bytes and names that
// were not yet durable.
//
// # The model
//
// It follows what ext4 (data=ordered, the Linux default) can really do,
// and is more pessimistic wherever the POSIX promise is weaker:
//
//   - File data. A write, preallocation or zeroing is durable once a sync
//     of the same file that started after it completed has succeeded
//     (fsync/fdatasync). A sync that failed proves nothing: what it should
//     have made durable stays undurable (Linux marks the pages clean
//     anyway, so they may or may not be on disk). Undurable operations may
//     have reached the disk in part, in any order, torn at any byte: the
//     [Loss] passed to Write chooses how.
//   - Names. Creating, renaming or removing a file, and creating a
//     directory, is durable once the directory holding the name was
//     synced (SyncDir) afterwards; a rename across directories needs both.
//     A directory's own name lives in its parent: creating "a/b" is made
//     durable by syncing "a", not "a/b". Syncing a file does not make its
//     name durable (ext4 often does in practice, other file systems do
//     not). Name operations that are not durable survive as a prefix of
//     the order they were made in, because ext4 commits its metadata
//     journal in order.
//
// Only paths under the root given to NewPowerFS are modelled; the tree
// below the root as it was at that moment counts as durable. Lock passes
// through and is not modelled (a lock file holds no data).
//
// A hook set with SetOpHook runs after every modelled operation, under the
// model's lock, so a test can take a Snapshot at an exact point: between
// writing a segment's header and renaming it, between a seal's footer and
// its sync, in the middle of recovery.
type PowerFS struct {
	vfs.FS
	root string

	mu    sync.Mutex
	live  map[string]*pentry // the namespace as the process sees it
	base  map[string]*pentry // the durable namespace, as of the oldest pending name op
	ops   []*nameOp          // name operations not yet folded into base
	count int                // modelled operations so far; also their ids
	hook  func(n int, op, path string, snapshot func() *PowerImage)
}

// pentry is a name's target: a directory (node nil) or a file.
type pentry struct {
	dir  bool
	node *pnode
}

// pnode is a file (an inode): its durable content and the data operations
// made on it since.
type pnode struct {
	durable []byte
	pending []dataOp
}

type dataKind uint8

const (
	opWrite dataKind = iota
	opZero
	opAllocate
)

// dataOp is a write (data at off), a zeroing of n bytes at off, or a
// preallocation to size n.
type dataOp struct {
	id   int // the operation's number: later operations have larger ones
	kind dataKind
	off  int64
	n    int64
	data []byte
}

type nameKind uint8

const (
	opCreate nameKind = iota
	opMkdir
	opRename
	opRemove
)

// nameOp is one name operation. dirs are the directories holding the names
// it touches; synced[i] says whether dirs[i] was synced after it.
type nameOp struct {
	id       int
	kind     nameKind
	path, to string
	entry    *pentry
	dirs     []string
	synced   []bool
}

func (o *nameOp) durable() bool {
	for _, s := range o.synced {
		if !s {
			return false
		}
	}
	return true
}

// NewPowerFS returns a PowerFS over inner (Default if nil) that models the
// tree under root. Everything already under root counts as durable.
func NewPowerFS(inner vfs.FS, root string) (*PowerFS, error) {
	if inner == nil {
		inner = vfs.Default
	}
	root = filepath.Clean(root)
	p := &PowerFS{FS: inner, root: root, live: map[string]*pentry{}, base: map[string]*pentry{}}
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		e := &pentry{dir: info.IsDir()}
		if !e.dir {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			e.node = &pnode{durable: b}
		}
		p.live[path], p.base[path] = e, e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vfstest: power model of %s: %w", root, err)
	}
	return p, nil
}

// SetOpHook installs h, called after every modelled operation with the
// operation's number (from 1), its name ("write", "zero", "allocate",
// "sync", "create", "mkdir", "rename", "remove", "syncdir"), its path, and
// a function that captures the model as it is at that point (what
// Snapshot returns). It runs with the model locked: it must not call
// methods of p. nil removes it.
func (p *PowerFS) SetOpHook(h func(n int, op, path string, snapshot func() *PowerImage)) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

// Ops returns the number of modelled operations so far.
func (p *PowerFS) Ops() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// tick runs the hook after operation p.count. p.mu must be held.
func (p *PowerFS) tick(op, path string) {
	if p.hook != nil {
		p.hook(p.count, op, path, p.snapshot)
	}
}

// newID numbers an operation. p.mu must be held.
func (p *PowerFS) newID() int {
	p.count++
	return p.count
}

func (p *PowerFS) under(path string) (string, bool) {
	path = filepath.Clean(path)
	return path, path != p.root && strings.HasPrefix(path, p.root+string(filepath.Separator))
}

// nameOp records a name operation. p.mu must be held.
func (p *PowerFS) nameOp(kind nameKind, path, to string, e *pentry) {
	dirs := []string{filepath.Dir(path)}
	if kind == opRename && filepath.Dir(to) != dirs[0] {
		dirs = append(dirs, filepath.Dir(to))
	}
	p.ops = append(p.ops, &nameOp{id: p.newID(), kind: kind, path: path, to: to, entry: e, dirs: dirs, synced: make([]bool, len(dirs))})
}

func applyName(ns map[string]*pentry, o *nameOp) {
	switch o.kind {
	case opCreate, opMkdir:
		ns[o.path] = o.entry
	case opRename:
		if e, ok := ns[o.path]; ok {
			delete(ns, o.path)
			ns[o.to] = e
		}
	case opRemove:
		delete(ns, o.path)
	}
}

// Create implements FS.
func (p *PowerFS) Create(path string, perm fs.FileMode) (vfs.File, error) {
	f, err := p.FS.Create(path, perm)
	if err != nil {
		return nil, err
	}
	path, ok := p.under(path)
	if !ok {
		return f, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := &pentry{node: &pnode{}}
	p.live[path] = e
	p.nameOp(opCreate, path, "", e)
	p.tick("create", path)
	return &powerFile{File: f, p: p, node: e.node}, nil
}

// Open implements FS.
func (p *PowerFS) Open(path string) (vfs.File, error) {
	f, err := p.FS.Open(path)
	if err != nil {
		return nil, err
	}
	path, ok := p.under(path)
	if !ok {
		return f, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.live[path]
	if e == nil || e.dir {
		f.Close()
		return nil, fmt.Errorf("vfstest: power model: open %s: not a file the model knows", path)
	}
	return &powerFile{File: f, p: p, node: e.node}, nil
}

// Remove implements FS.
func (p *PowerFS) Remove(path string) error {
	if err := p.FS.Remove(path); err != nil {
		return err
	}
	if path, ok := p.under(path); ok {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.live, path)
		p.nameOp(opRemove, path, "", nil)
		p.tick("remove", path)
	}
	return nil
}

// Rename implements FS.
func (p *PowerFS) Rename(oldpath, newpath string) error {
	if err := p.FS.Rename(oldpath, newpath); err != nil {
		return err
	}
	p.renamed(oldpath, newpath)
	return nil
}

// renamed models a rename that succeeded.
func (p *PowerFS) renamed(oldpath, newpath string) {
	from, ok1 := p.under(oldpath)
	to, ok2 := p.under(newpath)
	if ok1 && ok2 {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.live[to] = p.live[from]
		delete(p.live, from)
		p.nameOp(opRename, from, to, nil)
		p.tick("rename", from)
	}
}

// MkdirAll implements FS.
func (p *PowerFS) MkdirAll(path string, perm fs.FileMode) error {
	if err := p.FS.MkdirAll(path, perm); err != nil {
		return err
	}
	path, ok := p.under(path)
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var missing []string
	for d := path; d != p.root && strings.HasPrefix(d, p.root); d = filepath.Dir(d) {
		if p.live[d] == nil {
			missing = append(missing, d)
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		e := &pentry{dir: true}
		p.live[missing[i]] = e
		p.nameOp(opMkdir, missing[i], "", e)
		p.tick("mkdir", missing[i])
	}
	return nil
}

// SyncDir implements FS.
func (p *PowerFS) SyncDir(path string) error {
	p.mu.Lock()
	start := p.count
	p.mu.Unlock()
	if err := p.FS.SyncDir(path); err != nil {
		return err
	}
	path = filepath.Clean(path)
	if path != p.root {
		if _, ok := p.under(path); !ok {
			return nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Only operations made before the sync started are made durable by it.
	for _, o := range p.ops {
		if o.id > start {
			break
		}
		for i, d := range o.dirs {
			if d == path {
				o.synced[i] = true
			}
		}
	}
	for len(p.ops) > 0 && p.ops[0].durable() {
		applyName(p.base, p.ops[0])
		p.ops = p.ops[1:]
	}
	p.newID()
	p.tick("syncdir", path)
	return nil
}

// powerFile is a file under the model's root.
type powerFile struct {
	vfs.File
	p    *PowerFS
	node *pnode
}

func (f *powerFile) record(op dataOp, name string) {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	op.id = f.p.newID()
	f.node.pending = append(f.node.pending, op)
	f.p.tick(name, f.Name())
}

func (f *powerFile) Rename(newpath string) error {
	oldpath := f.Name()
	if err := f.File.Rename(newpath); err != nil {
		return err
	}
	f.p.renamed(oldpath, newpath)
	return nil
}

func (f *powerFile) WriteAt(b []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(b, off)
	if n > 0 {
		f.record(dataOp{kind: opWrite, off: off, n: int64(n), data: append([]byte(nil), b[:n]...)}, "write")
	}
	return n, err
}

func (f *powerFile) ZeroRange(off, n int64) error {
	if err := f.File.ZeroRange(off, n); err != nil {
		return err
	}
	f.record(dataOp{kind: opZero, off: off, n: n}, "zero")
	return nil
}

func (f *powerFile) Allocate(size int64) error {
	if err := f.File.Allocate(size); err != nil {
		return err
	}
	f.record(dataOp{kind: opAllocate, n: size}, "allocate")
	return nil
}

// WriteBack makes nothing durable in the model: a power cut may lose
// writes that were written back but not synced, as it may on a device
// with a volatile cache or with the extent conversion still in the
// journal.
func (f *powerFile) WriteBack(off, n int64) error {
	if err := f.File.WriteBack(off, n); err != nil {
		return err
	}
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	f.p.newID()
	f.p.tick("writeback", f.Name())
	return nil
}

func (f *powerFile) Sync() error {
	f.p.mu.Lock()
	start := f.p.count
	f.p.mu.Unlock()
	if err := f.File.Sync(); err != nil {
		return err
	}
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	// Only operations made before the sync started are made durable by it.
	n := 0
	for n < len(f.node.pending) && f.node.pending[n].id <= start {
		op := f.node.pending[n]
		f.node.durable = op.apply(f.node.durable, op.n)
		n++
	}
	f.node.pending = append([]dataOp(nil), f.node.pending[n:]...)
	f.p.newID()
	f.p.tick("sync", f.Name())
	return nil
}

// apply applies the first k bytes of op to b (all of a preallocation when
// k > 0) and returns the grown b.
func (op dataOp) apply(b []byte, k int64) []byte {
	if k <= 0 {
		return b
	}
	grow := func(size int64) {
		if int64(len(b)) < size {
			b = append(b, make([]byte, size-int64(len(b)))...)
		}
	}
	switch op.kind {
	case opAllocate:
		grow(op.n)
	case opWrite:
		grow(op.off + k)
		copy(b[op.off:], op.data[:k])
	case opZero:
		// Zeroing keeps the size (FALLOC_FL_KEEP_SIZE).
		end := min(op.off+k, int64(len(b)))
		if op.off < end {
			clear(b[op.off:end])
		}
	}
	return b
}

// PowerImage is the model of a PowerFS captured by Snapshot: what is
// durable, and what was done since that may or may not have reached the
// disk.
type PowerImage struct {
	root  string
	base  map[string]*pentry
	ops   []nameOp
	nodes map[*pnode]*pnode // captured copies
}

// Snapshot captures the model as it is now. (From the op hook, call the
// function the hook is given instead.)
func (p *PowerFS) Snapshot() *PowerImage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshot()
}

func (p *PowerFS) snapshot() *PowerImage {
	img := &PowerImage{root: p.root, base: make(map[string]*pentry, len(p.base)), nodes: map[*pnode]*pnode{}}
	capture := func(n *pnode) {
		if n == nil || img.nodes[n] != nil {
			return
		}
		img.nodes[n] = &pnode{durable: append([]byte(nil), n.durable...), pending: append([]dataOp(nil), n.pending...)}
	}
	for k, e := range p.base {
		img.base[k] = e
		capture(e.node)
	}
	for _, o := range p.ops {
		c := *o
		c.synced = append([]bool(nil), o.synced...)
		img.ops = append(img.ops, c)
		if o.entry != nil {
			capture(o.entry.node)
		}
	}
	return img
}

// Loss says what happened, at the power cut, to what was not yet durable.
//
// Zeros stand for blocks that were allocated (fallocate) but whose new
// data never reached them: ext4 reads unwritten extents as zeros. Zeros
// never replace bytes that were durable: a sector holding durable data is
// in a written extent, and after a power cut it holds its old bytes or its
// new ones, or a mix of them if torn (drives and ext4 in ordered mode do
// not destroy data around or under a write; SQLite calls this "powersafe
// overwrite"). Every log relies on it when it appends into a sector that
// already holds durable records, and recovery relies on it when it
// rewrites bytes it cannot prove durable.
type Loss uint8

const (
	// LoseAll: nothing that was not durable reached the disk.
	LoseAll Loss = iota
	// KeepAll: everything reached the disk (what a kill -9 leaves).
	KeepAll
	// ZeroUnsynced: undurable writes read as zeros (the blocks were
	// allocated, their data never written; a write past the end still
	// grew the file); a random prefix of the undurable name operations
	// survived.
	ZeroUnsynced
	// TornPrefix: each file's undurable operations reached the disk in
	// order up to a random one, which is torn at a random byte; a random
	// prefix of the undurable name operations survived.
	TornPrefix
	// Scramble: every 512-byte sector of every undurable write
	// independently reached the disk, was lost, or reads as zeros, and
	// one write is torn at a random byte (writeback in any order, sectors
	// that never got their data); a random prefix of the undurable name
	// operations survived.
	Scramble
	numLoss
)

// Losses returns every Loss.
func Losses() []Loss { return []Loss{LoseAll, KeepAll, ZeroUnsynced, TornPrefix, Scramble} }

func (l Loss) String() string {
	switch l {
	case LoseAll:
		return "lose-all"
	case KeepAll:
		return "keep-all"
	case ZeroUnsynced:
		return "zero-unsynced"
	case TornPrefix:
		return "torn-prefix"
	case Scramble:
		return "scramble"
	}
	return fmt.Sprintf("Loss(%d)", uint8(l))
}

const sectorSize = 512

// Write creates the tree the disk would hold into dir (which must exist and
// be empty), standing for the PowerFS's root, with what was not durable
// treated as loss says; rng draws the random choices. It returns a short
// description of the choices made, for failure messages.
func (img *PowerImage) Write(dir string, loss Loss, rng *rand.Rand) (string, error) {
	if loss >= numLoss {
		return "", fmt.Errorf("vfstest: unknown loss %v", loss)
	}
	ns, desc := img.names(loss, rng)
	// The tree: directories first (shortest paths first), then files whose
	// directories all exist. Contents are resolved in that order, so the
	// same rng gives the same tree.
	paths := make([]string, 0, len(ns))
	for k := range ns {
		paths = append(paths, k)
	}
	sort.Slice(paths, func(i, j int) bool {
		return len(paths[i]) < len(paths[j]) || len(paths[i]) == len(paths[j]) && paths[i] < paths[j]
	})
	contents := map[*pnode][]byte{}
	for _, path := range paths {
		if e := ns[path]; !e.dir && contents[e.node] == nil {
			contents[e.node] = resolve(img.nodes[e.node], loss, rng)
		}
	}
	return desc, img.writeTree(dir, ns, paths, contents)
}

// names returns the names the disk holds after the power cut: the durable
// ones, then a prefix of the rest (all, none or a random one, as loss
// says), and a description of the choice.
func (img *PowerImage) names(loss Loss, rng *rand.Rand) (map[string]*pentry, string) {
	ns := make(map[string]*pentry, len(img.base))
	for k, e := range img.base {
		ns[k] = e
	}
	var undurable int
	for i := range img.ops {
		if !img.ops[i].durable() {
			undurable++
		}
	}
	keep := 0
	switch loss {
	case KeepAll:
		keep = undurable
	case LoseAll:
	default:
		keep = rng.IntN(undurable + 1)
	}
	seen := 0
	for i := range img.ops {
		o := &img.ops[i]
		if o.durable() {
			applyName(ns, o)
			continue
		}
		if seen < keep {
			applyName(ns, o)
		}
		seen++
	}
	return ns, fmt.Sprintf("%v: %d of %d undurable name ops kept", loss, keep, undurable)
}

// writeTree creates, under dir, the directories and files of ns reachable
// from the root, in the order of paths, files holding contents.
func (img *PowerImage) writeTree(dir string, ns map[string]*pentry, paths []string, contents map[*pnode][]byte) error {
	reachable := func(path string) bool {
		for d := filepath.Dir(path); d != img.root && len(d) > len(img.root); d = filepath.Dir(d) {
			if e := ns[d]; e == nil || !e.dir {
				return false
			}
		}
		return true
	}
	for _, path := range paths {
		e := ns[path]
		if !reachable(path) {
			continue
		}
		rel, err := filepath.Rel(img.root, path)
		if err != nil {
			return err
		}
		out := filepath.Join(dir, rel)
		if e.dir {
			if err := os.Mkdir(out, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(out, contents[e.node], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// resolve returns a file's content after the power cut.
func resolve(n *pnode, loss Loss, rng *rand.Rand) []byte {
	b := append([]byte(nil), n.durable...)
	switch loss {
	case LoseAll:
	case KeepAll:
		for _, op := range n.pending {
			b = op.apply(b, op.n)
		}
	case ZeroUnsynced:
		for _, op := range n.pending {
			if op.kind != opWrite {
				b = op.apply(b, op.n)
				continue
			}
			for s := op.off; s < op.off+op.n; {
				e := min((s/sectorSize+1)*sectorSize, op.off+op.n)
				b = zeroSector(b, e)
				s = e
			}
		}
	case TornPrefix:
		if len(n.pending) == 0 {
			break
		}
		k := rng.IntN(len(n.pending) + 1)
		for _, op := range n.pending[:k] {
			b = op.apply(b, op.n)
		}
		if k < len(n.pending) {
			op := n.pending[k]
			b = op.apply(b, rng.Int64N(op.n+1))
		}
	case Scramble:
		// One operation is torn inside one of its sectors.
		torn, tornAt := -1, int64(-1)
		if len(n.pending) > 0 {
			torn = rng.IntN(len(n.pending))
			op := n.pending[torn]
			if op.n > 0 {
				tornAt = max(op.off, (op.off+rng.Int64N(op.n))/sectorSize*sectorSize)
			}
		}
		for i, op := range n.pending {
			if op.kind == opAllocate {
				if rng.IntN(2) == 0 {
					b = op.apply(b, op.n)
				}
				continue
			}
			// Sector by sector, aligned to the file's sectors.
			for s := op.off; s < op.off+op.n; {
				e := min((s/sectorSize+1)*sectorSize, op.off+op.n)
				part := dataOp{kind: op.kind, off: s, n: e - s}
				if op.kind == opWrite {
					part.data = op.data[s-op.off : e-op.off]
				}
				switch k := rng.IntN(3); {
				case i == torn && s == tornAt:
					b = part.apply(b, rng.Int64N(part.n+1))
				case k == 0:
					b = part.apply(b, part.n)
				case k == 1 && op.kind == opWrite:
					b = zeroSector(b, e)
				}
				s = e
			}
		}
	}
	return b
}

// zeroSector makes the part of a write that ends at e read as zeros: the blocks
// were allocated, the data never came. Bytes that were durable keep their
// value (see Loss); since the rest were zeros already, that is growing b
// to e if the write had grown the file.
func zeroSector(b []byte, e int64) []byte {
	return dataOp{kind: opAllocate, n: e}.apply(b, 1)
}
