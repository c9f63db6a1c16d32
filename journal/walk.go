package journal

import (
	"context"
	"errors"
	"path"
	"syscall"
)

// ErrTooManyEntries: a WalkFiles visited more entries than its limit.
var ErrTooManyEntries = errors.New("too many entries")

// DirReader lists a folder: *Journal, or a wrapper that only reads.
type DirReader interface {
	ReadDir(ctx context.Context, dir Ino, off uint64, max int) ([]DirEntry, error)
}

// WalkFiles calls fn for every regular file under the folder dir (whose
// path is p), depth first, in each folder's order. It stops with
// ErrTooManyEntries after limit entries (files, folders and the rest), and
// with the first error fn returns.
func WalkFiles(ctx context.Context, j DirReader, dir Ino, p string, limit int, fn func(p string, e DirEntry) error) error {
	visited := 0
	var walk func(dir Ino, p string) error
	walk = func(dir Ino, p string) error {
		var off uint64
		for {
			ents, err := j.ReadDir(ctx, dir, off, 1024)
			if err != nil {
				return err
			}
			if len(ents) == 0 {
				return nil
			}
			for _, e := range ents {
				off = e.Off
				if visited++; visited > limit {
					return ErrTooManyEntries
				}
				child := path.Join(p, e.Name)
				switch e.Mode & syscall.S_IFMT {
				case syscall.S_IFDIR:
					if err := walk(e.Ino, child); err != nil {
						return err
					}
				case syscall.S_IFREG:
					if err := fn(child, e); err != nil {
						return err
					}
				}
			}
		}
	}
	return walk(dir, p)
}
