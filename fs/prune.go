package fs

import (
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// Files the kernel keeps cached cost the drive memory. Every name the
// kernel has looked up or created holds an inode in go-fuse's tables, in
// its parent's children and in the drive's nodes until the kernel
// forgets it, which it does only under memory pressure of its own: a
// directory of 100,000 files made in one go kept 52 MB of the drive's
// heap live. Within the 128 MiB a mount aims for (LimitMemory) that left
// the collector a few MiB of room, and it ran a dozen times a second for
// the rest of the create.
//
// When the memory cache has nothing left to give (ShedMemory), the drive
// asks the kernel to forget files it is not using (FUSE_NOTIFY_PRUNE):
// the kernel drops their unused cached names as it would under memory
// pressure, then sends FORGET, and go-fuse drops the inodes. A file that
// is open, mapped or a working directory keeps its name in use and is
// not forgotten; a forgotten one is looked up again by its next use, as
// after any eviction by the kernel. Directories are left alone: their
// children hold them, and a directory is worth more to keep than a file.

// inodeBytes is about what one file the kernel knows costs the drive's
// heap (go-fuse's inode and its table entries, its place in its parent's
// children, the drive's node): 52 MB of heap for 100,000 created files.
const inodeBytes = 512

// pruneEvery spaces the prunes out: the kernel's forgets arrive after the
// notification, and the heap shows them only after a collection, which
// may come before they are all in (LimitMemory asks once per collection).
const pruneEvery = 2 * time.Second

// pruneBatch is the most inodes one notification names.
const pruneBatch = 256

// pruner is a drive's state of inode pruning.
type pruner struct {
	mu   sync.Mutex
	last time.Time // the last prune
	off  bool      // the kernel cannot be asked (ENOSYS: too old)
}

// pruneInodes asks the kernel to forget enough files of the drive's
// mounts to free about n bytes of heap, and returns the bytes it expects
// to free (0: none asked, a prune ran within pruneEvery, or the kernel
// cannot be asked).
func (d *Drive) pruneInodes(n int64) int64 {
	if n <= 0 || !d.prune.mu.TryLock() {
		return 0 // a prune is under way
	}
	defer d.prune.mu.Unlock()
	if d.prune.off || time.Since(d.prune.last) < pruneEvery {
		return 0
	}
	d.mu.Lock()
	mounts := append([]*mounted(nil), d.mounts...)
	d.mu.Unlock()
	want := int(n/inodeBytes) + 1
	asked := 0
	for _, m := range mounts {
		k, errno := pruneTree(m.root.EmbeddedInode(), want-asked)
		asked += k
		if errno == syscall.ENOSYS {
			d.prune.off = true
			d.log.Info("fs: the kernel cannot be asked to forget cached files (FUSE_NOTIFY_PRUNE needs a newer kernel); a tree of many files keeps more of the drive's memory")
			break
		}
		if errno != 0 {
			d.log.Debug("fs: ask the kernel to forget cached files", "asked", k, "errno", errno.Error())
		}
		if asked >= want {
			break
		}
	}
	d.prune.last = time.Now()
	if asked > 0 {
		d.log.Debug("fs: asked the kernel to forget cached files, for memory", "files", asked, "need", n)
	}
	return int64(asked) * inodeBytes
}

// pruneTree asks the kernel to forget up to max files (not directories)
// under root, pruneBatch per notification, and returns how many it named
// and the first failure.
func pruneTree(root *fusefs.Inode, max int) (int, syscall.Errno) {
	batch := make([]*fusefs.Inode, 0, pruneBatch)
	asked := 0
	send := func() syscall.Errno {
		if len(batch) == 0 {
			return 0
		}
		errno := root.NotifyPrune(batch)
		if errno == 0 {
			asked += len(batch)
		}
		clear(batch)
		batch = batch[:0]
		return errno
	}
	dirs := []*fusefs.Inode{root}
	for len(dirs) > 0 && asked+len(batch) < max {
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		for _, ch := range dir.Children() {
			if ch.IsDir() {
				dirs = append(dirs, ch)
				continue
			}
			if asked+len(batch) >= max {
				break
			}
			batch = append(batch, ch)
			if len(batch) == pruneBatch {
				if errno := send(); errno != 0 {
					return asked, errno
				}
			}
		}
	}
	return asked, send()
}
