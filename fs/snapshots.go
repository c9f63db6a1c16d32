package fs

import (
	"context"
	"errors"
	"math"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/meshdrive/meshdrive/journal"
)

// snapshotsName is the folder under the root that holds the snapshots.
// Like ZFS's .zfs it is reachable by path but not listed by the root's
// readdir, so cp -a, rsync and du of the drive do not walk into it.
const snapshotsName = ".snapshots"

// Snapshotter is what MOUNT/.snapshots needs: the kept snapshots and a
// read-only journal of each. *journal.Journal satisfies it.
type Snapshotter interface {
	Snapshots(ctx context.Context) ([]journal.Snapshot, error)
	FindSnapshot(ctx context.Context, name string) (journal.Snapshot, error)
	SnapshotJournal(ctx context.Context, seq uint64) (*journal.Journal, error)
}

// Inode numbers the kernel sees stay below 2^63, so that programs that
// read st_ino as a signed 64-bit number (Java, and others) never see a
// negative one. The drive's own are the journal's, which stay far below
// 2^40 (AUTOINCREMENT from 1). The .snapshots folder has snapshotsIno.
// A snapshot's tree has the journal's numbers of that snapshot plus
// snapBase + slot<<snapInoBits: [2^62, 2^63) holds 2^22 slots of 2^40
// numbers, and the ranges never meet.
const (
	snapshotsIno = 1<<62 - 1
	snapBase     = 1 << 62
	snapInoBits  = 40
	snapSlots    = 1 << (62 - snapInoBits)
)

// slotTable gives each snapshot (by seq) the slot of its inode numbers:
// seq mod snapSlots, so a snapshot has the same numbers in every mount,
// or, when a snapshot with another seq took that slot earlier in this
// mount (seqs 2^22 apart), the next free one. Two snapshots never share
// numbers: go-fuse would hand one's files for the other's.
type slotTable struct {
	mu    sync.Mutex        // guards the fields below
	slot  map[uint64]uint64 // seq → slot
	taken map[uint64]uint64 // slot → seq
}

func newSlotTable() *slotTable {
	return &slotTable{slot: map[uint64]uint64{}, taken: map[uint64]uint64{}}
}

// off is what snapshot seq's tree adds to its journal's inode numbers.
func (t *slotTable) off(seq uint64) uint64 { return t.get(seq, true) }

// peek is off without taking a slot: a listing's d_ino for snapshots it
// may never open (a slot is kept for the mount's life, so only lookups
// take one).
func (t *slotTable) peek(seq uint64) uint64 { return t.get(seq, false) }

func (t *slotTable) get(seq uint64, take bool) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.slot[seq]
	if !ok {
		s = seq % snapSlots
		for take {
			if _, used := t.taken[s]; !used {
				t.slot[seq], t.taken[s] = s, seq
				break
			}
			s = (s + 1) % snapSlots
		}
	}
	return snapBase + s<<snapInoBits
}

// snapshotsNode is MOUNT/.snapshots: read-only, one folder per snapshot.
type snapshotsNode struct {
	fusefs.Inode
	fsys *fileSystem
}

var (
	_ fusefs.NodeLookuper      = (*snapshotsNode)(nil)
	_ fusefs.NodeReaddirer     = (*snapshotsNode)(nil)
	_ fusefs.NodeGetattrer     = (*snapshotsNode)(nil)
	_ fusefs.NodeRmdirer       = (*snapshotsNode)(nil)
	_ fusefs.NodeUnlinker      = (*snapshotsNode)(nil)
	_ fusefs.NodeMkdirer       = (*snapshotsNode)(nil)
	_ fusefs.NodeRenamer       = (*snapshotsNode)(nil)
	_ fusefs.NodeSetattrer     = (*snapshotsNode)(nil)
	_ fusefs.NodeCreater       = (*snapshotsNode)(nil)
	_ fusefs.NodeSymlinker     = (*snapshotsNode)(nil)
	_ fusefs.NodeMknoder       = (*snapshotsNode)(nil)
	_ fusefs.NodeLinker        = (*snapshotsNode)(nil)
	_ fusefs.NodeSetxattrer    = (*snapshotsNode)(nil)
	_ fusefs.NodeRemovexattrer = (*snapshotsNode)(nil)
)

// The snapshots folder changes only by meshdrive snapshot: every change
// through the mount is EROFS (go-fuse answered success for an rmdir of a
// snapshot, which stayed, and EOPNOTSUPP for the others).

func (s *snapshotsNode) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (s *snapshotsNode) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (s *snapshotsNode) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (s *snapshotsNode) Rename(context.Context, string, fusefs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (s *snapshotsNode) Setattr(context.Context, fusefs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (s *snapshotsNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (s *snapshotsNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (s *snapshotsNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (s *snapshotsNode) Link(context.Context, fusefs.InodeEmbedder, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (s *snapshotsNode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}
func (s *snapshotsNode) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

func (n *node) snapshotsDir(ctx context.Context, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	s := &snapshotsNode{fsys: n.fsys}
	snaps, err := s.fsys.snaps.Snapshots(settled(ctx))
	if err != nil {
		return nil, errno(s.fsys.log, "lookup .snapshots", journal.RootIno, err)
	}
	s.fill(&out.Attr, n.lastAttr(), len(snaps))
	out.SetAttrTimeout(time.Nanosecond) // see Getattr
	return n.NewInode(ctx, s, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: snapshotsIno}), 0
}

// fill gives .snapshots the root's owner and times, mode 0555, and the
// link count of a folder with one subfolder per snapshot: 2 + snaps
// (find and fts count a folder's subfolders by it).
func (s *snapshotsNode) fill(out *fuse.Attr, root journal.Attr, snaps int) {
	out.Ino = snapshotsIno
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = uint32(min(2+snaps, math.MaxUint32))
	out.Uid, out.Gid = root.Uid, root.Gid
	out.Blksize = blksize
	now := time.Now()
	out.SetTimes(&now, &root.Mtime, &root.Ctime)
}

func (s *snapshotsNode) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	root, err := s.fsys.j.GetAttr(settled(ctx), journal.RootIno)
	if err != nil {
		return errno(s.fsys.log, "getattr .snapshots", journal.RootIno, err)
	}
	snaps, err := s.fsys.snaps.Snapshots(settled(ctx))
	if err != nil {
		return errno(s.fsys.log, "getattr .snapshots", journal.RootIno, err)
	}
	s.fill(&out.Attr, root, len(snaps))
	// The link count changes with every checkpoint the retention keeps
	// or prunes, behind the kernel's back: it must not cache it.
	out.SetTimeout(time.Nanosecond)
	return 0
}

func (s *snapshotsNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	snaps, err := s.fsys.snaps.Snapshots(settled(ctx))
	if err != nil {
		return nil, errno(s.fsys.log, "readdir .snapshots", journal.RootIno, err)
	}
	ents := make([]fuse.DirEntry, 0, len(snaps))
	for _, sn := range snaps {
		ents = append(ents, fuse.DirEntry{Name: sn.Name, Mode: syscall.S_IFDIR, Ino: s.fsys.slots.peek(sn.Seq) + uint64(journal.RootIno)})
	}
	return fusefs.NewListDirStream(ents), 0
}

// snapshotEntryTimeout is how long the kernel keeps a snapshot's name in
// .snapshots and the names in its tree: the mount's entryTimeout relies on
// every change going through the kernel, but snapshots are deleted by the
// mount process, so a deleted one must be gone from the kernel's cache as
// soon as a second later, as before the longer entryTimeout.
const snapshotEntryTimeout = time.Second

func (s *snapshotsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	ctx0 := settled(ctx)
	sn, err := s.fsys.snaps.FindSnapshot(ctx0, name)
	if errors.Is(err, journal.ErrNotFound) {
		// No negative entry: snapshots are made by the mount process,
		// not through the kernel, which would go on answering ENOENT
		// for a snapshot made right after a miss (go-fuse caches an
		// ENOENT for NegativeTimeout unless the entry has a timeout).
		out.SetEntryTimeout(time.Nanosecond)
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, errno(s.fsys.log, "lookup .snapshots", journal.RootIno, err)
	}
	sj, err := s.fsys.snaps.SnapshotJournal(ctx0, sn.Seq)
	if err != nil {
		return nil, errno(s.fsys.log, "open snapshot "+name, journal.RootIno, err)
	}
	a, err := sj.GetAttr(ctx0, journal.RootIno)
	if err != nil {
		return nil, errno(s.fsys.log, "open snapshot "+name, journal.RootIno, err)
	}
	fsys := &fileSystem{j: sj, log: s.fsys.log, attrTimeout: s.fsys.attrTimeout, entryTimeout: snapshotEntryTimeout,
		inoOff: s.fsys.slots.off(sn.Seq), noLseek: s.fsys.noLseek}
	c := &node{fsys: fsys}
	c.last = packAttr(a)
	fsys.fillAttr(&out.Attr, a)
	out.SetEntryTimeout(snapshotEntryTimeout)
	return s.NewInode(ctx, c, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: uint64(a.Ino) + fsys.inoOff}), 0
}
