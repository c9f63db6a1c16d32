package fs

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/meshdrive/meshdrive/journal"
)

// blksize is st_blksize, the I/O size we tell applications to prefer.
// stdio, cp and friends size their buffers from it: 128 KiB is the kernel's
// read-ahead window and coreutils' own minimum, so copies issue large
// requests without giving every FILE a 1 MiB buffer.
const blksize = 128 << 10

// nameMax is the longest name a directory entry may have (NAME_MAX). The
// kernel lets FUSE names grow to 1024 bytes, so we check it ourselves.
const nameMax = 255

// fileSystem is the state every node shares. Its mutable state has its
// own locks.
type fileSystem struct {
	j Journal
	// inoOff is added to the journal's inode numbers to make the kernel's
	// (0 for the drive; a snapshot's tree has one of its own, see
	// snapshots.go).
	inoOff uint64
	// snaps serves MOUNT/.snapshots (nil: no snapshots; always nil inside
	// a snapshot).
	snaps Snapshotter
	// slots numbers the snapshots' trees (set with snaps).
	slots *slotTable
	// pins handles PinXattr (nil: it is an ordinary xattr; always nil
	// inside a snapshot).
	pins Pins
	// shardsDown: MountOptions.ShardsDown (nil inside a snapshot).
	shardsDown  func(ctx context.Context, ino journal.Ino) (bool, error)
	log         *slog.Logger
	attrTimeout time.Duration
	// entryTimeout, when not 0, is how long the kernel keeps the entries
	// of this file system's lookups instead of the mount's entryTimeout
	// (a snapshot's tree: snapshotEntryTimeout).
	entryTimeout time.Duration
	// noLseek answers SEEK_DATA and SEEK_HOLE with ENOSYS, which makes the
	// kernel treat every file of the mount as all data: set with the
	// kernel's write-back cache, whose dirty pages the journal has not
	// seen (see node.Lseek).
	noLseek bool

	// killMarks holds the WRITEs being served that must clear set-ID
	// bits first (killPrivFS); nil inside a snapshot.
	killMarks *sync.Map

	statMu sync.Mutex // guards the two fields below
	statAt time.Time
	stat   journal.StatFS
}

// statfsTTL is how long a statfs answer is reused. The journal asks every
// node for its capacity; file managers call statfs several times a
// second while browsing.
const statfsTTL = time.Second

func (f *fileSystem) statFS(ctx context.Context) (journal.StatFS, error) {
	f.statMu.Lock()
	defer f.statMu.Unlock()
	if !f.statAt.IsZero() && time.Since(f.statAt) < statfsTTL {
		return f.stat, nil
	}
	st, err := f.j.StatFS(settled(ctx))
	if err != nil {
		return st, err
	}
	f.stat, f.statAt = st, time.Now()
	return st, nil
}

// node is one inode of the drive. Its StableAttr.Ino is the journal's
// inode number, which never changes and survives remount; go-fuse keeps
// one node per number, so hard links share it.
type node struct {
	fusefs.Inode
	fsys *fileSystem

	// dirty is set by every write and truncate and cleared by the Flush
	// that hands the data to the journal. With the kernel's write-back
	// cache, writes arrive on whichever handle the kernel picks, so this
	// lives on the node and not on a handle.
	dirty atomic.Bool

	// writers counts this inode's open handles that may write (O_WRONLY,
	// O_RDWR), from open to release. While one is open a shared writable
	// mmap may hold bytes in the kernel's page cache that the journal has
	// not seen (the kernel writes them back at msync, at munmap before the
	// handle's release, or in its own time), so Lseek answers the whole
	// file as data.
	writers atomic.Int32

	// last is the newest attributes seen, guarded by n.attrLock(). It
	// answers fstat of an inode whose last name is gone and which the
	// journal no longer knows (a directory renamed over while open), and
	// carries a directory's mode and group for set-group-ID inheritance.
	last packedAttr
}

// nodeSize is the most a node may take: 208 bytes is a size class of Go's
// allocator (the next is 224), and a directory of 100,000 entries keeps
// that many nodes live (TestNodeSize).
const nodeSize = 208

// attrLocks guard the nodes' last attributes, striped by inode number: a
// mutex in every node would take it over nodeSize, and the lock is held
// only to copy 64 bytes.
var attrLocks [64]sync.Mutex

func (n *node) attrLock() *sync.Mutex { return &attrLocks[n.StableAttr().Ino%uint64(len(attrLocks))] }

// packedAttr is a journal.Attr with its times as nanoseconds and without
// its inode number (the node's StableAttr has it): every inode the kernel
// knows keeps one, and 100,000 of them were 12 MiB (120 bytes each, three
// of them pointers) as journal.Attr, 6 MiB this way.
type packedAttr struct {
	mode, nlink, uid, gid, rdev uint32
	size, blocks                uint64
	atime, mtime, ctime         int64 // Unix ns; zeroTime for the zero time
}

// zeroTime stands for the zero time.Time, outside UnixNano's range.
const zeroTime = math.MinInt64

func packAttr(a journal.Attr) packedAttr {
	ns := func(t time.Time) int64 {
		if t.IsZero() {
			return zeroTime
		}
		return t.UnixNano()
	}
	return packedAttr{mode: a.Mode, nlink: a.Nlink, uid: a.Uid, gid: a.Gid, rdev: a.Rdev,
		size: a.Size, blocks: a.Blocks, atime: ns(a.Atime), mtime: ns(a.Mtime), ctime: ns(a.Ctime)}
}

// attr is p as the attributes of inode ino.
func (p packedAttr) attr(ino journal.Ino) journal.Attr {
	t := func(ns int64) time.Time {
		if ns == zeroTime {
			return time.Time{}
		}
		return time.Unix(0, ns)
	}
	return journal.Attr{Ino: ino, Mode: p.mode, Nlink: p.nlink, Uid: p.uid, Gid: p.gid, Rdev: p.rdev,
		Size: p.size, Blocks: p.blocks, Atime: t(p.atime), Mtime: t(p.mtime), Ctime: t(p.ctime)}
}

var (
	_ fusefs.NodeLookuper       = (*node)(nil)
	_ fusefs.NodeGetattrer      = (*node)(nil)
	_ fusefs.NodeSetattrer      = (*node)(nil)
	_ fusefs.NodeCreater        = (*node)(nil)
	_ fusefs.NodeTmpfiler       = (*node)(nil)
	_ fusefs.NodeMknoder        = (*node)(nil)
	_ fusefs.NodeMkdirer        = (*node)(nil)
	_ fusefs.NodeRmdirer        = (*node)(nil)
	_ fusefs.NodeUnlinker       = (*node)(nil)
	_ fusefs.NodeRenamer        = (*node)(nil)
	_ fusefs.NodeLinker         = (*node)(nil)
	_ fusefs.NodeSymlinker      = (*node)(nil)
	_ fusefs.NodeReadlinker     = (*node)(nil)
	_ fusefs.NodeStatfser       = (*node)(nil)
	_ fusefs.NodeOpener         = (*node)(nil)
	_ fusefs.NodeOpendirHandler = (*node)(nil)
	_ fusefs.NodeReader         = (*node)(nil)
	_ fusefs.NodeWriter         = (*node)(nil)
	_ fusefs.NodeFlusher        = (*node)(nil)
	_ fusefs.NodeFsyncer        = (*node)(nil)
	_ fusefs.NodeReleaser       = (*node)(nil)
	_ fusefs.NodeAllocater      = (*node)(nil)
	_ fusefs.NodeGetxattrer     = (*node)(nil)
	_ fusefs.NodeSetxattrer     = (*node)(nil)
	_ fusefs.NodeListxattrer    = (*node)(nil)
	_ fusefs.NodeRemovexattrer  = (*node)(nil)
)

func (n *node) ino() journal.Ino { return journal.Ino(n.StableAttr().Ino - n.fsys.inoOff) }

func (n *node) errno(op string, err error) syscall.Errno {
	return errno(n.fsys.log, op, n.ino(), err)
}

// remember records a as the newest attributes of n.
func (n *node) remember(a journal.Attr) {
	p := packAttr(a)
	mu := n.attrLock()
	mu.Lock()
	n.last = p
	mu.Unlock()
}

func (n *node) lastAttr() journal.Attr {
	mu := n.attrLock()
	mu.Lock()
	p := n.last
	mu.Unlock()
	return p.attr(n.ino())
}

// fillAttr copies journal attributes into a FUSE reply.
func (f *fileSystem) fillAttr(out *fuse.Attr, a journal.Attr) {
	out.Ino = uint64(a.Ino) + f.inoOff
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Uid = a.Uid
	out.Gid = a.Gid
	out.Rdev = a.Rdev
	out.Size = a.Size
	out.Blocks = a.Blocks
	out.Blksize = blksize
	out.SetTimes(&a.Atime, &a.Mtime, &a.Ctime)
}

// child returns the node for a, creating it if go-fuse does not know the
// inode yet (go-fuse dedups by StableAttr, so every name of a hard-linked
// file ends at one node), and fills out.
func (n *node) child(ctx context.Context, a journal.Attr, out *fuse.EntryOut) *fusefs.Inode {
	c := &node{fsys: n.fsys}
	c.last = packAttr(a)
	n.fsys.fillAttr(&out.Attr, a)
	if n.fsys.entryTimeout > 0 {
		out.SetEntryTimeout(n.fsys.entryTimeout)
	}
	return n.NewInode(ctx, c, fusefs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: uint64(a.Ino) + n.fsys.inoOff})
}

// owner is the uid and gid a new child of n gets: the caller's, except
// that a set-group-ID directory hands down its group (and, to
// directories, the set-group-ID bit), as on a local disk.
func (n *node) owner(ctx context.Context, mode uint32) (uid, gid, newMode uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		uid, gid = c.Uid, c.Gid
	}
	newMode = mode
	if p := n.lastAttr(); p.Mode&syscall.S_ISGID != 0 {
		gid = p.Gid
		if mode&syscall.S_IFMT == syscall.S_IFDIR {
			newMode |= syscall.S_ISGID
		}
	}
	return uid, gid, newMode
}

// reserved: name is the snapshots folder in the drive's root, which no
// file, folder or link may take (it would hide behind the folder).
func (n *node) reserved(name string) bool {
	return name == snapshotsName && n.fsys.snaps != nil && n.ino() == journal.RootIno
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.reserved(name) {
		return n.snapshotsDir(ctx, out)
	}
	a, err := n.fsys.j.Lookup(settled(ctx), n.ino(), name)
	if err != nil {
		return nil, n.errno("lookup", err)
	}
	return n.child(ctx, a, out), 0
}

func (n *node) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, err := n.fsys.j.GetAttr(settled(ctx), n.ino())
	if errors.Is(err, journal.ErrNotFound) {
		// The kernel still holds this inode (an open descriptor), but
		// it has no name left and the journal dropped it: answer what
		// we last knew, with no links, as a local disk does.
		a = n.lastAttr()
		if a.Ino == 0 {
			return syscall.ENOENT
		}
		a.Nlink = 0
		err = nil
	}
	if err != nil {
		return n.errno("getattr", err)
	}
	n.remember(a)
	n.fsys.fillAttr(&out.Attr, a)
	return 0
}

func (n *node) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var s journal.SetAttr
	if m, ok := in.GetMode(); ok {
		s.Mode = &m
	}
	if uid, ok := in.GetUID(); ok {
		s.Uid = &uid
	}
	if gid, ok := in.GetGID(); ok {
		s.Gid = &gid
	}
	if size, ok := in.GetSize(); ok {
		s.Size = &size
		n.dirty.Store(true)
	}
	if t, ok := in.GetATime(); ok {
		t = clampTime(t)
		s.Atime = &t
	}
	if t, ok := in.GetMTime(); ok {
		t = clampTime(t)
		s.Mtime = &t
	}
	if t, ok := in.GetCTime(); ok {
		s.Ctime = &t // the write-back cache's own (see journal.SetAttr)
	}
	if in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0 {
		// chown(2) with -1 for both ids, the one SETATTR that names no
		// attribute: it changes no owner, but as any chown it moves
		// ctime and clears the set-ID bits of a non-directory (the
		// kernel leaves the clearing to us, killpriv.go, and here sends
		// no FATTR_KILL_SUIDGID).
		cur, err := n.fsys.j.GetAttr(settled(ctx), n.ino())
		if err != nil {
			return n.errno("setattr", err)
		}
		m := cur.Mode & 07777
		if cur.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			if k, ok := withoutSetID(cur.Mode); ok {
				m = k
			}
		}
		s.Mode = &m // the same bits or fewer: a change, so ctime moves
	}
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 && s.Mode == nil {
		// A truncate by a caller without CAP_FSETID, or a chown: the
		// kernel leaves clearing set-ID bits to us (killpriv.go).
		cur, err := n.fsys.j.GetAttr(settled(ctx), n.ino())
		if err != nil {
			return n.errno("setattr", err)
		}
		if m, ok := withoutSetID(cur.Mode); ok {
			s.Mode = &m
		}
	}
	if in.Valid&fuse.FATTR_CTIME != 0 && s.Mode == nil && s.Uid == nil && s.Gid == nil && s.Size == nil {
		// The write-back cache flushing the kernel's own times. For a
		// file with unflushed data they go with its flush (no commit
		// of their own). When they are what we have, change nothing: a
		// SetAttr would move ctime to now.
		if ct, ok := in.GetCTime(); ok && s.Mtime != nil && s.Atime == nil {
			if a, ok := n.fsys.j.SetDirtyTimes(n.ino(), *s.Mtime, ct); ok {
				return n.replyAttr(a, out)
			}
		}
		cur, err := n.fsys.j.GetAttr(settled(ctx), n.ino())
		if err != nil {
			return n.errno("setattr", err)
		}
		if (s.Atime == nil || s.Atime.Equal(cur.Atime)) && (s.Mtime == nil || s.Mtime.Equal(cur.Mtime)) {
			return n.replyAttr(cur, out)
		}
	}
	a, err := n.fsys.j.SetAttr(settled(ctx), n.ino(), s)
	if err != nil {
		return n.errno("setattr", err)
	}
	return n.replyAttr(a, out)
}

// replyAttr answers a SETATTR: go-fuse leaves its attribute timeout at
// zero, which would make the kernel ask again at once.
func (n *node) replyAttr(a journal.Attr, out *fuse.AttrOut) syscall.Errno {
	n.remember(a)
	n.fsys.fillAttr(&out.Attr, a)
	out.SetTimeout(n.fsys.attrTimeout)
	return 0
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.reserved(name) {
		return nil, syscall.EEXIST
	}
	switch mode & syscall.S_IFMT {
	case 0:
		mode |= syscall.S_IFREG
	case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	default:
		return nil, syscall.EINVAL
	}
	uid, gid, mode := n.owner(ctx, mode)
	a, err := n.fsys.j.Mknod(settled(ctx), n.ino(), name, mode, dev, uid, gid)
	if err != nil {
		return nil, n.errno("mknod", err)
	}
	return n.child(ctx, a, out), 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.reserved(name) {
		return nil, syscall.EEXIST
	}
	uid, gid, mode := n.owner(ctx, syscall.S_IFDIR|mode&07777)
	a, err := n.fsys.j.Mkdir(settled(ctx), n.ino(), name, mode, uid, gid)
	if err != nil {
		return nil, n.errno("mkdir", err)
	}
	return n.child(ctx, a, out), 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.reserved(name) {
		return nil, syscall.EEXIST
	}
	uid, gid, _ := n.owner(ctx, syscall.S_IFLNK)
	a, err := n.fsys.j.Symlink(settled(ctx), n.ino(), name, target, uid, gid)
	if err != nil {
		return nil, n.errno("symlink", err)
	}
	return n.child(ctx, a, out), 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := n.fsys.j.Readlink(settled(ctx), n.ino())
	if err != nil {
		return nil, n.errno("readlink", err)
	}
	return []byte(target), 0
}

func (n *node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	t, ok := target.(*node)
	if !ok || t.fsys != n.fsys {
		// Another tree (a snapshot and the drive): its inode numbers are
		// not this journal's.
		return nil, syscall.EXDEV
	}
	if n.reserved(name) {
		return nil, syscall.EEXIST
	}
	a, err := n.fsys.j.Link(settled(ctx), t.ino(), n.ino(), name)
	if err != nil {
		return nil, n.errno("link", err)
	}
	t.remember(a)
	n.fsys.fillAttr(&out.Attr, a)
	// The same *Inode: hard links share one node.
	return t.EmbeddedInode(), 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.errno("unlink", n.fsys.j.Unlink(settled(ctx), n.ino(), name))
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.errno("rmdir", n.fsys.j.Rmdir(settled(ctx), n.ino(), name))
}

func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if len(newName) > nameMax {
		return syscall.ENAMETOOLONG
	}
	np, ok := newParent.(*node)
	if !ok || np.fsys != n.fsys {
		// Between a snapshot and the drive, or two snapshots: each
		// tree's inode numbers are its own journal's. Into a snapshot
		// this is EROFS, out of one a copy (mv copies on EXDEV).
		if ok && np.fsys.inoOff != 0 {
			return syscall.EROFS
		}
		return syscall.EXDEV
	}
	if np.reserved(newName) {
		return syscall.EROFS // the snapshots folder, which is read-only
	}
	var jflags uint32
	switch flags {
	case 0:
	case unixRenameNoReplace:
		jflags = journal.RenameNoReplace
	case unixRenameExchange:
		jflags = journal.RenameExchange
	default:
		// RENAME_WHITEOUT (overlayfs) and combinations.
		return syscall.EINVAL
	}
	return n.errno("rename", n.fsys.j.Rename(settled(ctx), n.ino(), name, np.ino(), newName, jflags))
}

// renameat2(2) flags as the kernel sends them.
const (
	unixRenameNoReplace = 1
	unixRenameExchange  = 2
)

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st, err := n.fsys.statFS(ctx)
	if err != nil {
		return n.errno("statfs", err)
	}
	const bsize = 4096
	// The journal numbers inodes without a limit; report plenty free so
	// tools that check f_ffree never refuse.
	const freeFiles = 1 << 32
	out.Bsize = bsize
	out.Frsize = bsize
	out.Blocks = st.TotalBytes / bsize
	out.Bfree = st.FreeBytes / bsize
	out.Bavail = out.Bfree
	out.Files = st.Files + freeFiles
	out.Ffree = freeFiles
	out.NameLen = nameMax
	return 0
}

// Times the drive keeps: nanoseconds since 1970 in an int64, from 1677 to
// 2262. A time past either end is kept as that end (it wrapped: year 1
// was stored as 1754, 10^11 s as 2216).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func clampTime(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case t.After(maxTime):
		return maxTime
	}
	return t
}

// addSat is a+b, or math.MaxInt64 past it (sizes of many huge sparse
// files).
func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
