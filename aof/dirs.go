package aof

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/aof2/aof2/vfs"
)

// makeDirs creates dir and any missing parents, and makes their names
// durable. A directory's name lives in its parent, so creating it is
// durable only once the parent is synced; syncing the new directory itself
// (as the flusher does for segments/) does not do it. makeDirs syncs the
// parent of every directory it creates, and the parents of the last keep
// directories of dir whether it created them or not: an earlier run may
// have created them and crashed before it synced. Directories it creates
// get permission bits perm.
func makeDirs(fsys vfs.FS, dir string, keep int, perm fs.FileMode) error {
	var sync []string // deepest first, each once
	d := filepath.Clean(dir)
	for i := 0; ; i++ {
		parent := filepath.Dir(d)
		_, err := fsys.ReadDir(d)
		missing := errors.Is(err, fs.ErrNotExist)
		if (i < keep || missing) && parent != d {
			sync = append(sync, parent)
		}
		if (!missing && i >= keep-1) || parent == d {
			break
		}
		d = parent
	}
	if err := fsys.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, d := range sync {
		if err := fsys.SyncDir(d); err != nil {
			return fmt.Errorf("make %s durable: %w", dir, err)
		}
	}
	return nil
}
