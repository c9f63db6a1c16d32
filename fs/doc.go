// Package fs is the drive as applications see it: go-fuse nodes that turn
// POSIX calls into journal calls, and the wiring of journal, block cache
// and grid into a mountable Drive.
//
// # What it owns
//
// fs holds no durable state and never talks to nodes. Every name, inode,
// attribute, xattr and byte lives in the journal (package journal), which
// reads sealed blocks through the cache (package cache) from the grid
// (package remote). fs owns the FUSE protocol details and the one errno
// table (errno.go): journal and remote sentinels are matched with
// errors.Is, context.Canceled becomes EINTR, a syscall.Errno passes
// through but ENOENT (a missing name is journal.ErrNotFound; an ENOENT is
// one of the drive's own local files gone, which the program must not
// take for its own), and anything else becomes EIO with its cause logged.
// A domain error is never handed to go-fuse's ToErrno (which would say
// ENOSYS).
//
// # Inodes
//
// A node's StableAttr.Ino is the journal's inode number, which is never
// reused and survives remount, so `ls -i` and tools that remember inode
// numbers (rsync, git, tar) see the same numbers after a restart. go-fuse
// keeps one node per number: every name of a hard-linked file ends at one
// *fs.Inode. The .snapshots folder and the snapshots' trees have numbers
// of their own in [2^62, 2^63), the same in every mount while the drive's
// stay far below (snapshots.go); every number is below 2^63, so programs
// that read st_ino as signed see none negative. Directory offsets are the
// journal's entry cookies (see
// dir.go), so telldir/seekdir work across calls and a listing taken while
// entries come and go returns each surviving entry once.
//
// # Permissions and POSIX details
//
// The mount uses default_permissions: the kernel checks access against
// our attributes, including the sticky-directory rules, and decides when
// set-user-ID and set-group-ID bits must go (a write or truncate by a
// caller without CAP_FSETID, a chown); with handle_killpriv_v2 it flags
// those requests and fs clears the bits, which spares a GETXATTR of
// security.capability before every write (killpriv.go). fs adds what the
// kernel leaves to a file system: group inheritance from set-group-ID
// directories, NAME_MAX (FUSE itself allows 1024-byte names), POSIX
// ACLs as ext4 treats an ACL that is only the mode (set: a chmod; read:
// none; removed: nothing to do, EROFS in a snapshot) and refused
// otherwise, so tools fall back to chmod (xattr.go), and the read-only
// user.meshdrive.status xattr (StatusXattr), and the pin xattr
// user.meshdrive.pinned (PinXattr), which goes through the drive's Pinner
// (pins.go): a pin over the budget is ENOSPC.
//
// # Caching
//
// Attribute, entry and negative-entry timeouts are one second (mount.go
// says why). Open files keep the kernel page cache across opens
// (FOPEN_KEEP_CACHE) because every change passes through this mount;
// O_DIRECT opens bypass it (FOPEN_DIRECT_IO). The kernel write-back cache
// is optional (MountOptions.Writeback).
//
// # Errors and interrupts
//
// Every call passes go-fuse's request context to the journal. When the
// caller is interrupted (a signal, including the Go runtime's SIGURG) the
// context is cancelled and a journal call that honours it returns
// context.Canceled, which the application sees as EINTR. An uncached
// block with too few nodes up is EIO, fast; a journal over its quota is
// ENOSPC.
//
// # Parallelism and locking
//
// go-fuse runs requests in parallel; the journal is safe for concurrent
// use and serialises what must be. A node's mutable state is its dirty
// flag (atomic) and its last seen attributes (guarded by node.mu, a leaf
// lock: nothing else is locked while it is held). A directory handle's
// cursor is guarded by dirHandle.mu; go-fuse also serialises calls on one
// handle. File locks are the kernel's own (EnableLocks off): correct for
// one machine, which is the only place a drive is mounted.
//
// # Buffers
//
// Read fills the request buffer go-fuse lends (journal.ReadAt reads into
// it directly; it is ours until the reply is sent), so reads need no pool
// and no copy of ours. Write's data belongs to go-fuse and is reused
// after we return; journal.WriteAt copies what it keeps. Setxattr data is
// lent the same way.
//
// # Deadlocks
//
// A process that serves the mount must not block on it from a thread the
// server needs. Tests that mmap a file on the mount keep GOMAXPROCS >= 2
// (a page fault holds its thread and P), never start a subprocess with
// its working directory on the mount (the child's chdir would wait for
// us between fork and exec) and run binaries on the mount through sh.
// Drive.Close unmounts before closing the journal, so no request can
// arrive at a closed journal.
//
// # Durability
//
// write(2) returns when the journal has the data; close(2) of a file
// written since its last flush returns when data and metadata are
// committed to the journal (journal.Flush: no fsync of its own, so a
// kill -9 of the drive loses nothing closed, and the journal's group
// commit puts it on local disk within about a second); fsync(2) of a
// file or a directory returns when data and metadata are on local disk
// (journal.Fsync). Getting the data onto the grid is the journal
// uploader's business.
package fs
