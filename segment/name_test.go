package segment

import (
	"path/filepath"
	"testing"

	"github.com/aof2/aof2/vfs/vfstest"
)

// TestActivatedFileNamesItsFinalPath: once Activate renamed the prepared
// temporary file, the file's Name (what errors and a FaultFS's Op.Path
// report) is the segment's final path, not the temporary one.
func TestActivatedFileNamesItsFinalPath(t *testing.T) {
	dir := t.TempDir()
	ff := vfstest.NewFaultFS(nil)
	s, err := Prepare(ff, dir, 7, MinSize, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if err := s.Activate(1, 1, 1); err != nil {
		s.Discard()
		t.Fatal(err)
	}
	final := filepath.Join(dir, Name(1, 1))
	if s.Path() != final || s.file.Name() != final {
		t.Fatalf("after Activate: Path %q, file Name %q; want both %q", s.Path(), s.file.Name(), final)
	}
	var synced string
	ff.SetFault(vfstest.Only(vfstest.OpSync, func(op vfstest.Op) error { synced = op.Path; return nil }))
	if err := s.file.Sync(); err != nil {
		t.Fatal(err)
	}
	if synced != final {
		t.Fatalf("the sync after Activate named %q, want %q", synced, final)
	}
}
