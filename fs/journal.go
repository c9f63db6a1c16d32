package fs

import (
	"context"
	"time"

	"github.com/meshdrive/meshdrive/journal"
)

// Journal is what the file system needs from the journal, in the small
// interfaces below: the namespace, attributes and xattrs, file data, and
// a file's status. *journal.Journal satisfies it; tests may use a fake
// (fake_test.go). Every method returns journal sentinel errors (see
// errno.go for how they reach applications).
type Journal interface {
	Namespace
	Attrs
	Files
	// Status says how far a file is on its way to the grid (the status
	// xattr).
	Status(ctx context.Context, ino journal.Ino) (journal.FileStatus, error)
}

// Namespace is the directory tree: names and the inodes they point at.
type Namespace interface {
	Lookup(ctx context.Context, parent journal.Ino, name string) (journal.Attr, error)
	GetAttr(ctx context.Context, ino journal.Ino) (journal.Attr, error)
	Mknod(ctx context.Context, parent journal.Ino, name string, mode, rdev, uid, gid uint32) (journal.Attr, error)
	Mkdir(ctx context.Context, parent journal.Ino, name string, mode, uid, gid uint32) (journal.Attr, error)
	Symlink(ctx context.Context, parent journal.Ino, name, target string, uid, gid uint32) (journal.Attr, error)
	Readlink(ctx context.Context, ino journal.Ino) (string, error)
	Link(ctx context.Context, ino, newParent journal.Ino, newName string) (journal.Attr, error)
	Unlink(ctx context.Context, parent journal.Ino, name string) error
	Rmdir(ctx context.Context, parent journal.Ino, name string) error
	Rename(ctx context.Context, oldParent journal.Ino, oldName string, newParent journal.Ino, newName string, flags uint32) error
	// ReadDir returns up to max entries after cookie off (0 = start),
	// without "." and "..".
	ReadDir(ctx context.Context, dir journal.Ino, off uint64, max int) ([]journal.DirEntry, error)
}

// Attrs changes an inode's attributes and keeps its extended ones.
type Attrs interface {
	SetAttr(ctx context.Context, ino journal.Ino, s journal.SetAttr) (journal.Attr, error)
	SetDirtyTimes(ino journal.Ino, mtime, ctime time.Time) (journal.Attr, bool)
	GetXattr(ctx context.Context, ino journal.Ino, name string) ([]byte, error)
	SetXattr(ctx context.Context, ino journal.Ino, name string, value []byte, flags uint32) error
	ListXattr(ctx context.Context, ino journal.Ino) ([]string, error)
	RemoveXattr(ctx context.Context, ino journal.Ino, name string) error
	StatFS(ctx context.Context) (journal.StatFS, error)
}

// Files is the data of regular files.
type Files interface {
	// OpenFile and ReleaseFile count opens: the data of an unlinked inode
	// lives until its last release.
	OpenFile(ino journal.Ino)
	// OpenExisting is OpenFile for an inode found by an earlier lookup:
	// journal.ErrNotFound, and no open counted, when it was deleted since.
	OpenExisting(ctx context.Context, ino journal.Ino) error
	ReleaseFile(ino journal.Ino)
	// ReadShared returns the bytes at off, short only at EOF: p (owned by
	// the caller) filled, or a read-only slice shared with the block
	// cache, with a release to call once when done with it.
	ReadShared(ctx context.Context, ino journal.Ino, p []byte, off int64) ([]byte, func(), error)
	// Seek answers SEEK_DATA (hole false) and SEEK_HOLE (hole true) from
	// off: the offset of the next data, or of the next hole (the end of
	// the file is one). journal.ErrNoData when off is at or past the end,
	// or no data follows it. A region reported as a hole must read as
	// zeros: cp skips it.
	Seek(ctx context.Context, ino journal.Ino, off int64, hole bool) (int64, error)
	// WriteAt uses p (owned by the caller) only during the call.
	WriteAt(ctx context.Context, ino journal.Ino, p []byte, off int64) (int, error)
	Flush(ctx context.Context, ino journal.Ino) error
	Fsync(ctx context.Context, ino journal.Ino) error
}
