package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/journal"
)

// handle is one open(2) of a regular file. All I/O is done by the node
// (the kernel's write-back cache sends writes on any handle of the inode);
// the handle only carries the open flags and makes go-fuse call Release,
// which balances the journal's open count.
type handle struct {
	flags uint32
}

// openFlags says how the kernel may cache an open file. Every change to a
// file passes through this one kernel mount, so its page cache is never
// stale and is kept across opens (FOPEN_KEEP_CACHE): warm reads never
// reach the daemon. O_DIRECT asks for the opposite, and gets it.
func openFlags(flags uint32) uint32 {
	if flags&syscall.O_DIRECT != 0 {
		return fuse.FOPEN_DIRECT_IO
	}
	return fuse.FOPEN_KEEP_CACHE
}

// open registers an open of n with the journal and returns its handle.
// O_TRUNC is not seen here: the kernel truncates with a SETATTR before
// OPEN (we do not ask for atomic O_TRUNC), and Create deals with it.
// An inode found by an earlier lookup may have been deleted since (its
// last name removed by someone else before this open): the open then
// fails with ENOENT, as on a network file system, rather than succeed
// with a handle whose every read and write fails.
func (n *node) open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if err := n.fsys.j.OpenExisting(settled(ctx), n.ino()); err != nil {
		return nil, 0, n.errno("open", err)
	}
	return n.newHandle(flags), openFlags(flags), 0
}

// newHandle is a handle of n opened with flags, counted in n.writers when
// it may write (Release counts it out).
func (n *node) newHandle(flags uint32) *handle {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		n.writers.Add(1)
	}
	return &handle{flags: flags}
}

func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if n.fsys.inoOff != 0 && (flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0) {
		return nil, 0, syscall.EROFS // a snapshot's file (a shared mmap's writes would show until dropped)
	}
	return n.open(ctx, flags)
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if len(name) > nameMax {
		return nil, nil, 0, syscall.ENAMETOOLONG
	}
	if n.reserved(name) {
		return nil, nil, 0, syscall.EEXIST
	}
	uid, gid, m := n.owner(ctx, syscall.S_IFREG|mode&07777)
	for attempt := 1; ; attempt++ {
		a, err := n.fsys.j.Mknod(settled(ctx), n.ino(), name, m, 0, uid, gid)
		if errors.Is(err, journal.ErrExist) && flags&syscall.O_EXCL == 0 {
			// Lost a race with another creator: open what is there.
			a, err = n.fsys.j.Lookup(settled(ctx), n.ino(), name)
			if err == nil && a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				return nil, nil, 0, syscall.EISDIR
			}
			if err == nil && flags&syscall.O_TRUNC != 0 && a.Size > 0 {
				zero := uint64(0)
				a, err = n.fsys.j.SetAttr(settled(ctx), a.Ino, journal.SetAttr{Size: &zero})
			}
		}
		if err == nil {
			err = n.fsys.j.OpenExisting(settled(ctx), a.Ino)
			if errors.Is(err, journal.ErrNotFound) && attempt < 3 {
				// Deleted by someone else between its making (or
				// look-up) and this open: O_CREAT makes it again
				// rather than fail with ENOENT.
				continue
			}
		}
		if err != nil {
			return nil, nil, 0, n.errno("create", err)
		}
		ci := n.child(ctx, a, out)
		return ci, ci.Operations().(*node).newHandle(flags), openFlags(flags), 0
	}
}

// Tmpfile answers open(O_TMPFILE): a file in no directory. The journal
// has no nameless inodes, so it is created under a hidden unique name,
// opened, and unlinked at once; the open count keeps it alive until the
// last close. For that instant the name is visible to a concurrent
// readdir, and the kernel is told to forget it. linkat(2) of the
// descriptor gives it a name (Link takes an open inode with no links).
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, nil, 0, n.errno("tmpfile", err)
	}
	name := ".meshdrive-tmpfile-" + hex.EncodeToString(r[:])
	uid, gid, m := n.owner(ctx, syscall.S_IFREG|mode&07777)
	a, err := n.fsys.j.Mknod(settled(ctx), n.ino(), name, m, 0, uid, gid)
	if err != nil {
		return nil, nil, 0, n.errno("tmpfile", err)
	}
	n.fsys.j.OpenFile(a.Ino)
	if err := n.fsys.j.Unlink(settled(ctx), n.ino(), name); err != nil {
		n.fsys.j.ReleaseFile(a.Ino)
		return nil, nil, 0, n.errno("tmpfile", err)
	}
	// This unlink is the one change to a name the kernel does not make
	// itself: a listing (READDIRPLUS) that saw the name in its instant
	// left an entry, which the kernel would keep for entryTimeout (a
	// minute), showing a file that is gone. Not sent from here: the
	// kernel takes the folder's lock for it, which a listing in flight
	// holds.
	go n.NotifyEntry(name)
	a.Nlink = 0
	c := &node{fsys: n.fsys}
	c.last = packAttr(a)
	n.fsys.fillAttr(&out.Attr, a)
	child := n.NewInode(ctx, c, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: uint64(a.Ino) + n.fsys.inoOff})
	return child, child.Operations().(*node).newHandle(flags), openFlags(flags), 0
}

// Read answers with dest (the request buffer go-fuse lends us until the
// reply is sent) filled, or with a read-only slice of a block's
// plaintext that the journal shares with the cache: go-fuse writes it to
// the kernel before it lets go of the result, and nobody writes to it.
// Either way no pool of our own.
func (n *node) Read(ctx context.Context, f fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	b, release, err := n.fsys.j.ReadShared(ctx, n.ino(), dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		if release != nil {
			release()
		}
		return nil, n.errno("read", err)
	}
	if release != nil {
		return &sharedResult{b: b, release: release}, 0
	}
	return dataResult(b), 0
}

// dataResult is a reply of bytes that need no release, written with
// writev like sharedResult. (go-fuse first tries to splice a
// fuse.ReadResultData reply: it takes a pipe, writes the reply's header
// into it and falls back, for every READ, and logs an error when the
// READ is bigger than a pipe may be, as 1 MiB ones are.)
type dataResult []byte

func (r dataResult) Size() int { return len(r) }

func (r dataResult) Bytes(buf []byte) ([]byte, fuse.Status) { return r, fuse.OK }

func (r dataResult) Slices() ([][]byte, fuse.Status) { return [][]byte{r}, fuse.OK }

func (r dataResult) Done() {}

// sharedResult is a reply of bytes shared with the block cache: go-fuse
// calls Done once it has written them to the kernel, and the cache may
// then reuse the block's memory. (A reply go-fuse never sends, such as
// one to an interrupted request, is never released: the cache then leaves
// that buffer to the collector instead of reusing it.)
type sharedResult struct {
	b       []byte
	release func()
	once    sync.Once
}

func (r *sharedResult) Size() int { return len(r.b) }

func (r *sharedResult) Bytes(buf []byte) ([]byte, fuse.Status) { return r.b, fuse.OK }

// Slices lets go-fuse write the bytes with writev, without a copy.
func (r *sharedResult) Slices() ([][]byte, fuse.Status) { return [][]byte{r.b}, fuse.OK }

func (r *sharedResult) Done() { r.once.Do(r.release) }

// Lseek answers SEEK_DATA and SEEK_HOLE (the kernel serves the other
// whences itself), so cp, tar and rsync skip a sparse file's holes
// instead of reading their zeros. The journal answers at block
// granularity and counts dirty data as data (Files.Seek); while a handle
// that may write is open, the whole file is data (node.writers). With
// the kernel's write-back cache the newest bytes may sit in the page
// cache, unseen by the journal, and a hole reported over them would be
// skipped by every copy: ENOSYS then makes the kernel report the whole
// file as data (and stop asking, for this mount).
func (n *node) Lseek(ctx context.Context, f fusefs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if n.fsys.noLseek {
		return 0, syscall.ENOSYS
	}
	var hole bool
	switch whence {
	case unix.SEEK_DATA:
	case unix.SEEK_HOLE:
		hole = true
	default:
		return 0, syscall.EINVAL
	}
	if off > math.MaxInt64 {
		return 0, syscall.ENXIO // a negative offset, as the kernel passes it on
	}
	if n.writers.Load() > 0 {
		// A shared writable mmap may hold bytes the journal has not
		// seen, and the kernel does not write them back before it asks:
		// a hole reported over them would be skipped by every copy. The
		// whole file is data, as a file system without SEEK_HOLE says.
		// (A copy whose calls straddle the last writer's release gets
		// this answer, then the journal's, which has every byte by then:
		// the kernel writes a mapping's pages back at munmap.)
		a, err := n.fsys.j.GetAttr(settled(ctx), n.ino())
		if err != nil {
			return 0, n.errno("lseek", err)
		}
		if off >= a.Size {
			return 0, syscall.ENXIO
		}
		if hole {
			return a.Size, 0
		}
		return off, 0
	}
	// Not interruptible: the answer is a query of the local journal, and
	// an EINTR would fail cp's lseek, which nobody retries (Go's runtime
	// signals its own threads often enough to make that common).
	o, err := n.fsys.j.Seek(settled(ctx), n.ino(), int64(off), hole)
	if err != nil {
		return 0, n.errno("lseek", err)
	}
	return uint64(o), 0
}

// Write hands data to the journal. data belongs to go-fuse and is reused
// once we return; the journal copies what it keeps. The file is marked
// dirty once the journal has the data: a Flush (another descriptor's
// close) or an Fsync that takes the mark while this write is on its way
// commits without it, and the mark set after it makes the writer's own
// close commit it.
func (n *node) Write(ctx context.Context, f fusefs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if n.fsys.killRequested(ctx) {
		if errno := n.killSetID(ctx); errno != 0 {
			return 0, errno
		}
	}
	k, err := n.fsys.j.WriteAt(ctx, n.ino(), data, off)
	n.dirty.Store(true) // after a failed write too: part of it may be in
	if err != nil {
		return uint32(k), n.errno("write", err)
	}
	return uint32(k), 0
}

// Flush runs on every close(2). When the inode was written since the last
// flush, the journal commits its data and metadata before close returns,
// without an fsync of its own: a kill -9 of the drive loses nothing
// closed, a power cut at most the last second that nobody fsync'd (the
// journal's group commit; DESIGN promise 1). A read-only open costs
// nothing.
func (n *node) Flush(ctx context.Context, f fusefs.FileHandle) syscall.Errno {
	if !n.dirty.Swap(false) {
		return 0
	}
	if err := n.fsys.j.Flush(settled(ctx), n.ino()); err != nil {
		n.dirty.Store(true)
		return n.errno("flush", err)
	}
	return 0
}

// Fsync makes the inode's data and metadata durable on local disk. It
// also serves fsync of a directory.
func (n *node) Fsync(ctx context.Context, f fusefs.FileHandle, flags uint32) syscall.Errno {
	n.dirty.Store(false)
	if err := n.fsys.j.Fsync(settled(ctx), n.ino()); err != nil {
		n.dirty.Store(true)
		return n.errno("fsync", err)
	}
	return 0
}

func (n *node) Release(ctx context.Context, f fusefs.FileHandle) syscall.Errno {
	if h, ok := f.(*handle); ok {
		if h.flags&syscall.O_ACCMODE != syscall.O_RDONLY {
			n.writers.Add(-1)
		}
		n.fsys.j.ReleaseFile(n.ino())
	}
	return 0
}

// Allocate implements fallocate(2) modes 0 and KEEP_SIZE. Nothing is
// reserved (space lives on the grid, and the journal's quota decides when
// writes wait); mode 0 extends the file as a local disk would. Hole
// punching and the other modes answer EOPNOTSUPP.
func (n *node) Allocate(ctx context.Context, f fusefs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	switch mode {
	case 0:
		a, err := n.fsys.j.GetAttr(settled(ctx), n.ino())
		if err != nil {
			return n.errno("fallocate", err)
		}
		end := off + size
		if end < off || end > journal.MaxFileSize {
			return syscall.EFBIG
		}
		if end > a.Size {
			a, err = n.fsys.j.SetAttr(settled(ctx), n.ino(), journal.SetAttr{Size: &end})
			if err != nil {
				return n.errno("fallocate", err)
			}
			n.dirty.Store(true)
		}
		n.remember(a)
		return 0
	case unix.FALLOC_FL_KEEP_SIZE:
		return 0
	}
	return syscall.EOPNOTSUPP
}
