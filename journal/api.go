package journal

import (
	"context"
	"fmt"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// Journal is the drive's local durable truth. All methods are safe for
// concurrent use. Each forwards to the part of the journal that owns it
// (parts.go), where its contract is written.
type Journal struct {
	*shared
}

// Lookup: see namespace.Lookup (namespace.go).
func (j *Journal) Lookup(ctx context.Context, parent Ino, name string) (Attr, error) {
	return j.ns.Lookup(ctx, parent, name)
}

// GetAttr: see namespace.GetAttr (namespace.go).
func (j *Journal) GetAttr(ctx context.Context, ino Ino) (Attr, error) { return j.ns.GetAttr(ctx, ino) }

// Mknod: see namespace.Mknod (namespace.go).
func (j *Journal) Mknod(ctx context.Context, parent Ino, name string, mode, rdev, uid, gid uint32) (Attr, error) {
	return j.ns.Mknod(ctx, parent, name, mode, rdev, uid, gid)
}

// Mkdir: see namespace.Mkdir (namespace.go).
func (j *Journal) Mkdir(ctx context.Context, parent Ino, name string, mode, uid, gid uint32) (Attr, error) {
	return j.ns.Mkdir(ctx, parent, name, mode, uid, gid)
}

// Symlink: see namespace.Symlink (namespace.go).
func (j *Journal) Symlink(ctx context.Context, parent Ino, name, target string, uid, gid uint32) (Attr, error) {
	return j.ns.Symlink(ctx, parent, name, target, uid, gid)
}

// Readlink: see namespace.Readlink (namespace.go).
func (j *Journal) Readlink(ctx context.Context, ino Ino) (string, error) {
	return j.ns.Readlink(ctx, ino)
}

// Link: see namespace.Link (namespace.go).
func (j *Journal) Link(ctx context.Context, ino, newParent Ino, newName string) (Attr, error) {
	return j.ns.Link(ctx, ino, newParent, newName)
}

// Unlink: see namespace.Unlink (namespace.go).
func (j *Journal) Unlink(ctx context.Context, parent Ino, name string) error {
	return j.ns.Unlink(ctx, parent, name)
}

// Rmdir: see namespace.Rmdir (namespace.go).
func (j *Journal) Rmdir(ctx context.Context, parent Ino, name string) error {
	return j.ns.Rmdir(ctx, parent, name)
}

// Rename: see namespace.Rename (namespace.go).
func (j *Journal) Rename(ctx context.Context, oldParent Ino, oldName string, newParent Ino, newName string, flags uint32) error {
	return j.ns.Rename(ctx, oldParent, oldName, newParent, newName, flags)
}

// ReadDir: see namespace.ReadDir (namespace.go).
func (j *Journal) ReadDir(ctx context.Context, dir Ino, off uint64, max int) ([]DirEntry, error) {
	return j.ns.ReadDir(ctx, dir, off, max)
}

// ResolvePath: see namespace.ResolvePath (namespace.go).
func (j *Journal) ResolvePath(ctx context.Context, path string) (Ino, error) {
	if err := j.ul.settle(ctx); err != nil {
		return 0, err
	}
	return j.ns.ResolvePath(ctx, path)
}

// SetAttr: see attrs.SetAttr (attr.go).
func (j *Journal) SetAttr(ctx context.Context, ino Ino, s SetAttr) (Attr, error) {
	return j.at.SetAttr(ctx, ino, s)
}

// SetDirtyTimes: see attrs.SetDirtyTimes (attr.go).
func (j *Journal) SetDirtyTimes(ino Ino, mtime, ctime time.Time) (Attr, bool) {
	return j.at.SetDirtyTimes(ino, mtime, ctime)
}

// GetXattr: see attrs.GetXattr (attr.go).
func (j *Journal) GetXattr(ctx context.Context, ino Ino, name string) ([]byte, error) {
	return j.at.GetXattr(ctx, ino, name)
}

// SetXattr: see attrs.SetXattr (attr.go).
func (j *Journal) SetXattr(ctx context.Context, ino Ino, name string, value []byte, flags uint32) error {
	return j.at.SetXattr(ctx, ino, name, value, flags)
}

// ListXattr: see attrs.ListXattr (attr.go).
func (j *Journal) ListXattr(ctx context.Context, ino Ino) ([]string, error) {
	return j.at.ListXattr(ctx, ino)
}

// RemoveXattr: see attrs.RemoveXattr (attr.go).
func (j *Journal) RemoveXattr(ctx context.Context, ino Ino, name string) error {
	return j.at.RemoveXattr(ctx, ino, name)
}

// StatFS: see attrs.StatFS (attr.go).
func (j *Journal) StatFS(ctx context.Context) (StatFS, error) { return j.at.StatFS(ctx) }

// ReadAt: see files.ReadAt (data.go).
func (j *Journal) ReadAt(ctx context.Context, ino Ino, p []byte, off int64) (int, error) {
	return j.fd.ReadAt(ctx, ino, p, off)
}

// Read: see files.Read (data.go).
func (j *Journal) Read(ctx context.Context, ino Ino, p []byte, off int64) ([]byte, error) {
	return j.fd.Read(ctx, ino, p, off)
}

// ReadShared: see files.ReadShared (data.go).
func (j *Journal) ReadShared(ctx context.Context, ino Ino, p []byte, off int64) ([]byte, func(), error) {
	return j.fd.ReadShared(ctx, ino, p, off)
}

// Seek: see files.Seek (seek.go).
func (j *Journal) Seek(ctx context.Context, ino Ino, off int64, hole bool) (int64, error) {
	return j.fd.Seek(ctx, ino, off, hole)
}

// WriteAt: see files.WriteAt (data.go).
func (j *Journal) WriteAt(ctx context.Context, ino Ino, p []byte, off int64) (int, error) {
	return j.fd.WriteAt(ctx, ino, p, off)
}

// Flush: see files.Flush (data.go).
func (j *Journal) Flush(ctx context.Context, ino Ino) error { return j.fd.Flush(ctx, ino) }

// Fsync: see files.Fsync (data.go).
func (j *Journal) Fsync(ctx context.Context, ino Ino) error { return j.fd.Fsync(ctx, ino) }

// BlockPlace: see files.BlockPlace (data.go).
func (j *Journal) BlockPlace(ctx context.Context, id remote.BlockID) (BlockPlace, bool) {
	return j.fd.BlockPlace(ctx, id)
}

// OpenFile: see inodeTable.OpenFile (inode.go).
func (j *Journal) OpenFile(ino Ino) { j.it.OpenFile(ino) }

// OpenExisting: see inodeTable.OpenExisting (inode.go).
func (j *Journal) OpenExisting(ctx context.Context, ino Ino) error {
	return j.it.OpenExisting(ctx, ino)
}

// ReleaseFile: see inodeTable.ReleaseFile (inode.go).
func (j *Journal) ReleaseFile(ino Ino) { j.it.ReleaseFile(ino) }

// Status: see gridView.Status (status.go).
func (j *Journal) Status(ctx context.Context, ino Ino) (FileStatus, error) {
	if err := j.ul.settle(ctx); err != nil {
		return FileStatus{}, err
	}
	return j.gv.Status(ctx, ino)
}

// DropKept: see keeper.DropKept (kept.go).
func (j *Journal) DropKept(ctx context.Context) error { return j.kp.DropKept(ctx) }

// GridBlocks: see gridView.GridBlocks (status.go).
func (j *Journal) GridBlocks(ctx context.Context, ino Ino) ([]GridBlock, error) {
	if err := j.ul.settle(ctx); err != nil {
		return nil, err
	}
	return j.gv.GridBlocks(ctx, ino)
}

// GridRefs: see gridView.GridRefs (status.go).
func (j *Journal) GridRefs(ctx context.Context, ino Ino) ([]remote.BlockRef, error) {
	if err := j.ul.settle(ctx); err != nil {
		return nil, err
	}
	return j.gv.GridRefs(ctx, ino)
}

// XattrInodes: see gridView.XattrInodes (status.go).
func (j *Journal) XattrInodes(ctx context.Context, name string) ([]Ino, error) {
	return j.gv.XattrInodes(ctx, name)
}

// Segments: see gridView.Segments (segments.go).
func (j *Journal) Segments(ctx context.Context) ([]SegmentRow, error) { return j.gv.Segments(ctx) }

// FileSegments: see gridView.FileSegments (segments.go).
func (j *Journal) FileSegments(ctx context.Context) (map[Ino][]remote.SegmentID, error) {
	return j.gv.FileSegments(ctx)
}

// UpdateSegment: see gridView.UpdateSegment (segments.go).
func (j *Journal) UpdateSegment(ctx context.Context, info *remote.SegmentInfo, metaSeq uint64) error {
	return j.gv.UpdateSegment(ctx, info, metaSeq)
}

// Foreground: see gridView.Foreground (segments.go).
func (j *Journal) Foreground() bool { return j.gv.Foreground() }

// WaitSegmentWrites returns once every segment write in flight when it
// was called (an upload or a metadata record between its shards and the
// row that names them) has recorded its row or failed. A drain calls it
// after marking its node draining: a write that placed a shard there
// before the mark is then in the segments it moves. It gives up after
// max, when a write keeps retrying against down nodes.
func (j *Journal) WaitSegmentWrites(ctx context.Context, max time.Duration) error {
	deadline := time.Now().Add(max)
	for !j.segWriteMu.TryLock() {
		if time.Now().After(deadline) {
			return fmt.Errorf("journal: a segment upload has been in flight for %v (a node down?); try again once it is recorded", max)
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
	j.segWriteMu.Unlock()
	return nil
}

// Stats: see uploader.Stats (upload.go).
func (j *Journal) Stats() UploadStats { return j.up.Stats() }

// SegmentSize is the size of a full segment the uploader ships (one of its
// shards is about SegmentSize/k bytes on a node).
func (j *Journal) SegmentSize() int64 { return j.o.SegmentSize }

// WaitDurable: see uploader.WaitDurable (upload.go).
func (j *Journal) WaitDurable(ctx context.Context) error { return j.up.WaitDurable(ctx) }

// RetryNow: see uploader.RetryNow (upload.go).
func (j *Journal) RetryNow() { j.up.RetryNow() }

// NodesUp: see uploader.NodesUp (upload.go).
func (j *Journal) NodesUp(up int) { j.up.NodesUp(up) }

// ShipMeta: see meta.ShipMeta (metaship.go).
func (j *Journal) ShipMeta(ctx context.Context, force bool) (uint64, error) {
	return j.md.ShipMeta(ctx, force)
}

// SyncGrid: see meta.SyncGrid (metaship.go).
func (j *Journal) SyncGrid(ctx context.Context) error { return j.md.SyncGrid(ctx) }

// CheckpointFull ships a full metadata record now, one that needs no
// earlier record, and returns its seq: when records of the newest chain
// have fewer than k shards left, recovery from the grid works again from
// it (records only snapshots need stay as they are).
func (j *Journal) CheckpointFull(ctx context.Context) (uint64, error) {
	if j.ms == nil {
		return 0, fmt.Errorf("journal: %w: no grid for metadata", ErrInvalid)
	}
	return j.ms.ship(ctx, true, true, false)
}

// MetaStats: see meta.MetaStats (metaship.go).
func (j *Journal) MetaStats(ctx context.Context) MetaStats { return j.md.MetaStats(ctx) }

// CollectGarbage: see collector.CollectGarbage (gc.go).
func (j *Journal) CollectGarbage(ctx context.Context, o GCOptions) (*GCStats, error) {
	return j.gc.CollectGarbage(ctx, o)
}

// LastGC: see collector.LastGC (gc.go).
func (j *Journal) LastGC() *GCStats { return j.gc.LastGC() }

// GarbageBytes: see collector.GarbageBytes (gc.go).
func (j *Journal) GarbageBytes(ctx context.Context) int64 { return j.gc.GarbageBytes(ctx) }

// Snapshots: see snapshots.Snapshots (snapshot.go).
func (j *Journal) Snapshots(ctx context.Context) ([]Snapshot, error) { return j.sn.Snapshots(ctx) }

// FindSnapshot: see snapshots.FindSnapshot (snapshot.go).
func (j *Journal) FindSnapshot(ctx context.Context, name string) (Snapshot, error) {
	return j.sn.FindSnapshot(ctx, name)
}

// CreateSnapshot: see snapshots.CreateSnapshot (snapshot.go).
func (j *Journal) CreateSnapshot(ctx context.Context, name string) (Snapshot, error) {
	return j.sn.CreateSnapshot(ctx, name)
}

// DeleteSnapshots: see snapshots.DeleteSnapshots (snapshot.go).
func (j *Journal) DeleteSnapshots(ctx context.Context, names []string, all bool) ([]Snapshot, error) {
	return j.sn.DeleteSnapshots(ctx, names, all)
}

// SnapshotJournal: see snapshots.SnapshotJournal (snapshot.go).
func (j *Journal) SnapshotJournal(ctx context.Context, seq uint64) (*Journal, error) {
	return j.sn.SnapshotJournal(ctx, seq)
}
