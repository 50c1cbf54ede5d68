package aof

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/aof2/aof2/segment"
)

// fileModes returns the permission bits of every file and directory under
// root (root included), by path.
func fileModes(t testing.TB, root string) map[string]fs.FileMode {
	t.Helper()
	modes := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		modes[path] = info.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return modes
}

// TestFilesPrivateByDefault (issue 12, file modes): every file a log
// creates (segments, prepared segments, LOCK, FRONT, DURABLE, a repair
// copy) is 0600 and every directory (the log's, a missing parent,
// segments, repair) 0700 by default; with Config.FileMode and DirMode
// widened, the modes follow. The umask is cleared for the test, so the
// modes seen are the ones the log asked for (not parallel: the umask is
// the process's).
func TestFilesPrivateByDefault(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name           string
		file, dir      fs.FileMode // Config fields
		wantF, wantDir fs.FileMode
	}{
		{"default", 0, 0, 0o600, 0o700},
		{"widened", 0o640, 0o750, 0o640, 0o750},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "parent", "log") // Open creates both
			cfg := Config{SegmentSize: 64 << 10, FileMode: tc.file, DirMode: tc.dir}
			l := openT(t, dir, cfg)
			var ids []RecordID
			for i := uint64(1); i <= 1000; i++ { // several rollovers
				ids = append(ids, mustAppend(t, l, payloadFor(i, 300)))
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if err := l.TruncateFront(ctx, 500); err != nil { // FRONT
				t.Fatal(err)
			}
			if err := l.Close(); err != nil { // DURABLE
				t.Fatal(err)
			}
			// Damage a record of the last segment, before records the
			// DURABLE mark vouches for: repair mode moves a copy of
			// what it cuts into repair/.
			victim := ids[len(ids)-20]
			flipBit(t, segPath(t, dir, victim.Segment), victim.Offset+segment.FrameHeaderSize+3)
			cfg.Recovery = RecoverRepair
			l = openT(t, dir, cfg)
			rep := l.Recovery()
			if len(rep.Truncations) != 1 || rep.Truncations[0].KeptAt == "" {
				t.Fatalf("repair: %+v", rep.Truncations)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			modes := fileModes(t, dir)
			for _, want := range []string{segment.LockFile, segment.FrontFile, segment.DurableFile, "repair", rep.Truncations[0].KeptAt} {
				if !filepath.IsAbs(want) {
					want = filepath.Join(dir, want)
				}
				if _, ok := modes[want]; !ok {
					t.Fatalf("%s missing: the test covers it", want)
				}
			}
			modes[filepath.Dir(dir)] = fileModes(t, filepath.Dir(dir))[filepath.Dir(dir)]
			var files int
			for path, m := range modes {
				want := tc.wantF
				if m.IsDir() {
					want = tc.wantDir | fs.ModeDir
				} else {
					files++
				}
				if m != want {
					t.Errorf("%s: mode %v, want %v", path, m, want)
				}
			}
			if files < 6 {
				t.Fatalf("%d files: %v", files, modes)
			}
		})
	}
}

// TestFileModeConfigChecked (issue 12, file modes): modes that would lock
// the log out of its own files, or that carry bits beyond 0777, are
// refused with ErrInvalidConfig before anything is created.
func TestFileModeConfigChecked(t *testing.T) {
	for _, cfg := range []Config{
		{FileMode: 0o400}, {FileMode: 0o066}, {FileMode: 0o600 | fs.ModeSetuid}, {FileMode: 0o1600},
		{DirMode: 0o500}, {DirMode: 0o077}, {DirMode: 0o700 | fs.ModeSticky},
	} {
		dir := filepath.Join(t.TempDir(), "log")
		if _, err := Open(dir, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Open with FileMode %v DirMode %v: %v, want ErrInvalidConfig", cfg.FileMode, cfg.DirMode, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open with a bad mode created %s: %v", dir, err)
		}
	}
}

// TestMappedSegmentsConfigChecked: a negative bound of mapped sealed
// segments is refused with ErrInvalidConfig; 0 means the default.
func TestMappedSegmentsConfigChecked(t *testing.T) {
	if _, err := Open(t.TempDir(), Config{MappedSegments: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open with MappedSegments -1: %v, want ErrInvalidConfig", err)
	}
	l := openT(t, t.TempDir(), Config{})
	defer l.Close()
	if l.maps.bound != DefaultMappedSegments {
		t.Fatalf("mapping bound %d with MappedSegments 0, want %d", l.maps.bound, DefaultMappedSegments)
	}
}
