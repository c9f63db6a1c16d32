package fs

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/meshdrive/meshdrive/journal"
)

// Set-ID bits on write, truncate and chown. Without help from the daemon
// the kernel clears them itself, and to know whether a file has file
// capabilities to drop it asks for security.capability before every
// WRITE: one GETXATTR round trip per write request (2,048 for a 2 GiB
// file in 1 MiB writes). With CAP_HANDLE_KILLPRIV_V2 the kernel asks
// once per inode and then remembers the answer (SB_NOSEC), and leaves
// the clearing to us, by flags on the requests that must do it:
//
//   - WRITE: WRITE_KILL_SUIDGID, set when the file has set-ID bits and
//     the writer lacks CAP_FSETID (the kernel's own rule);
//   - SETATTR: FATTR_KILL_SUIDGID, on a truncate by such a caller and on
//     any chown of a non-directory (Setattr);
//   - an O_TRUNC open reaches us as a truncating SETATTR (no atomic
//     O_TRUNC).
//
// go-fuse's node API does not pass a write's flags to Write, so
// killPrivFS marks the requests that carry it, by their cancel channel
// (unique to a request while it is served), for node.Write to see. File
// capabilities need no clearing: the drive never reports a
// security.capability (IgnoreSecurityLabels).
type killPrivFS struct {
	fuse.RawFileSystem
	marks *sync.Map // <-chan struct{} of a WRITE being served with WRITE_KILL_SUIDGID
}

func (k *killPrivFS) Write(c <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	defer k.mark(c, in)()
	return k.RawFileSystem.Write(c, in, data)
}

func (k *killPrivFS) Writev(c <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	defer k.mark(c, in)()
	return k.RawFileSystem.Writev(c, in, data)
}

// mark records c when in asks for set-ID bits to be cleared and returns
// what forgets it.
func (k *killPrivFS) mark(c <-chan struct{}, in *fuse.WriteIn) func() {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID == 0 || c == nil {
		return func() {}
	}
	k.marks.Store(c, struct{}{})
	return func() { k.marks.Delete(c) }
}

// killRequested reports whether the WRITE being served under ctx carries
// WRITE_KILL_SUIDGID.
func (f *fileSystem) killRequested(ctx context.Context) bool {
	if f.killMarks == nil {
		return false
	}
	c, ok := ctx.(*fuse.Context)
	if !ok || c.Cancel == nil {
		return false
	}
	_, ok = f.killMarks.Load(c.Cancel)
	return ok
}

// withoutSetID is mode's permission bits with set-user-ID cleared, and
// set-group-ID too when the group may execute (otherwise it marks
// mandatory locking, which a write leaves alone); ok is false when
// nothing changes.
func withoutSetID(mode uint32) (m uint32, ok bool) {
	m = mode & 07777 &^ syscall.S_ISUID
	if mode&syscall.S_IXGRP != 0 {
		m &^= syscall.S_ISGID
	}
	return m, m != mode&07777
}

// killSetID clears n's set-ID bits (withoutSetID) before a write that
// asked for it.
func (n *node) killSetID(ctx context.Context) syscall.Errno {
	cur, err := n.fsys.j.GetAttr(settled(ctx), n.ino())
	if err != nil {
		return n.errno("write", err)
	}
	m, ok := withoutSetID(cur.Mode)
	if !ok {
		return 0
	}
	if _, err := n.fsys.j.SetAttr(settled(ctx), n.ino(), journal.SetAttr{Mode: &m}); err != nil {
		return n.errno("write", err)
	}
	return 0
}
