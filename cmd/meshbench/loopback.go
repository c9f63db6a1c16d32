package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ioCounts counts the read and write requests that reach a loopback
// daemon: with passthrough working, none do.
type ioCounts struct {
	reads, writes atomic.Int64
	fsyncs        atomic.Int64 // D: fsyncs made by flush (close)
}

// benchNode is go-fuse's LoopbackNode with one change: the files it opens
// are benchFiles, which count requests and, when passthrough is false,
// refuse FUSE passthrough (and, when durable, fsync at close). Every
// child node is wrapped the same way (NodeWrapChilder), so the whole tree
// behaves alike.
type benchNode struct {
	*gofs.LoopbackNode
	counts      *ioCounts
	passthrough bool
	durable     bool
}

var (
	_ gofs.NodeWrapChilder = (*benchNode)(nil)
	_ gofs.NodeOpener      = (*benchNode)(nil)
	_ gofs.NodeCreater     = (*benchNode)(nil)
)

func (n *benchNode) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	lb, ok := ops.(*gofs.LoopbackNode)
	if !ok {
		return ops
	}
	return &benchNode{LoopbackNode: lb, counts: n.counts, passthrough: n.passthrough, durable: n.durable}
}

func (n *benchNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, fuseFlags, errno
	}
	return n.wrap(fh), fuseFlags, 0
}

func (n *benchNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ino, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return ino, fh, fuseFlags, errno
	}
	return ino, n.wrap(fh), fuseFlags, 0
}

func (n *benchNode) wrap(fh gofs.FileHandle) gofs.FileHandle {
	lf, ok := fh.(*gofs.LoopbackFile)
	if !ok {
		return fh
	}
	return &benchFile{LoopbackFile: lf, counts: n.counts, passthrough: n.passthrough, durable: n.durable}
}

// benchFile is a LoopbackFile (all its methods promoted) that counts Read
// and Write and decides whether to offer its fd for passthrough. A
// durable one (D) fsyncs at the flush of close when it was written since
// the last flush: the promise the drive keeps (data and metadata on local
// disk when close returns), kept by a daemon that does nothing else.
type benchFile struct {
	*gofs.LoopbackFile
	counts      *ioCounts
	passthrough bool
	durable     bool
	written     atomic.Bool
}

var (
	_ gofs.FilePassthroughFder = (*benchFile)(nil)
	_ gofs.FileReader          = (*benchFile)(nil)
	_ gofs.FileWriter          = (*benchFile)(nil)
	_ gofs.FileFlusher         = (*benchFile)(nil)
)

// PassthroughFd answers (0, false) for the plain daemon, so the kernel
// sends it every read and write.
func (f *benchFile) PassthroughFd() (int, bool) {
	if !f.passthrough {
		return 0, false
	}
	return f.LoopbackFile.PassthroughFd()
}

func (f *benchFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.counts.reads.Add(1)
	return f.LoopbackFile.Read(ctx, dest, off)
}

func (f *benchFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f.counts.writes.Add(1)
	f.written.Store(true)
	return f.LoopbackFile.Write(ctx, data, off)
}

// Flush fsyncs first when the file is durable and was written since the
// last flush (a written file's size and times change too, so this is
// fsync, not fdatasync; on ext4 it also commits a new file's entry).
func (f *benchFile) Flush(ctx context.Context) syscall.Errno {
	if f.durable && f.written.Swap(false) {
		f.counts.fsyncs.Add(1)
		if errno := f.LoopbackFile.Fsync(ctx, 0); errno != 0 {
			return errno
		}
	}
	return f.LoopbackFile.Flush(ctx)
}

// loopbackMount is a mounted loopback (A), plain (B) or durable (D)
// filesystem.
type loopbackMount struct {
	mnt         string
	srv         *fuse.Server
	counts      *ioCounts
	passthrough bool
	durable     bool
}

// mountLoopback mounts backing at mnt with the options of go-fuse's
// example/loopback (1 s attribute and entry timeouts, default MaxWrite),
// so A is the loopback "as is", B differs from it only in PassthroughFd,
// and D from B only in the fsync of close.
func mountLoopback(mnt, backing string, passthrough, durable bool) (*loopbackMount, error) {
	root, err := gofs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("loopback root %s: %w", backing, err)
	}
	lb, ok := root.(*gofs.LoopbackNode)
	if !ok {
		return nil, fmt.Errorf("loopback root is a %T, not a *LoopbackNode", root)
	}
	counts := &ioCounts{}
	sec := time.Second
	name := "meshbench-plain"
	switch {
	case passthrough:
		name = "meshbench-loopback"
	case durable:
		name = "meshbench-durable"
	}
	opts := &gofs.Options{
		AttrTimeout:     &sec,
		EntryTimeout:    &sec,
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:      backing,
			Name:        name,
			DirectMount: true,
		},
	}
	srv, err := gofs.Mount(mnt, &benchNode{LoopbackNode: lb, counts: counts, passthrough: passthrough, durable: durable}, opts)
	if err != nil {
		return nil, fmt.Errorf("mount loopback at %s: %w", mnt, err)
	}
	return &loopbackMount{mnt: mnt, srv: srv, counts: counts, passthrough: passthrough, durable: durable}, nil
}

func (m *loopbackMount) Settle(ctx context.Context) error { return nil }
func (m *loopbackMount) ClearCache() error                { return nil }

func (m *loopbackMount) Counters() (int64, int64, int64) {
	return m.counts.reads.Load(), m.counts.writes.Load(), m.counts.fsyncs.Load()
}

func (m *loopbackMount) Info() string {
	kernel := m.srv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
	if m.durable {
		return fmt.Sprintf("kernel-passthrough=%t offered=%t fsync-at-close=true", kernel, m.passthrough)
	}
	return fmt.Sprintf("kernel-passthrough=%t offered=%t", kernel, m.passthrough)
}

func (m *loopbackMount) Unmount() error { return unmountOrDetach(m.mnt, m.srv.Unmount) }
