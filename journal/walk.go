package journal

import (
	"context"
	"fmt"
	"path"
	"syscall"
)

// WalkFiles calls fn for every regular file under dir, depth first in
// directory order, with its path below dir ("a/b") and its inode. It
// fails once it has visited more than max entries (folders and others
// included), and stops at the first error fn returns. Files created or
// removed meanwhile may or may not be seen.
func (j *Journal) WalkFiles(ctx context.Context, dir Ino, max int, fn func(rel string, ino Ino) error) error {
	visited := 0
	var walk func(dir Ino, p string) error
	walk = func(dir Ino, p string) error {
		var off uint64
		for {
			ents, err := j.ReadDir(ctx, dir, off, 1024)
			if err != nil || len(ents) == 0 {
				return err
			}
			for _, d := range ents {
				off = d.Off
				if visited++; visited > max {
					return fmt.Errorf("folder has more than %d entries; ask for a subfolder", max)
				}
				child := path.Join(p, d.Name)
				switch d.Mode & syscall.S_IFMT {
				case syscall.S_IFDIR:
					if err := walk(d.Ino, child); err != nil {
						return err
					}
				case syscall.S_IFREG:
					if err := fn(child, d.Ino); err != nil {
						return err
					}
				}
			}
		}
	}
	return walk(dir, "")
}
