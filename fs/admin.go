package fs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/meshdrive/meshdrive/cache"
	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/href"
	"github.com/meshdrive/meshdrive/journal/repair"
	"github.com/meshdrive/meshdrive/remote"
)

// What the commands ask of an open drive beyond mounting it: sync, cache,
// snapshots, garbage, repair. Each method is a thin call into the journal,
// the cache or the repairer, so cmd/meshdrive imports none of them. The
// types below are theirs, named here because they are part of the
// drive's API.

// Types of the journal, the cache and repair that the drive's API uses.
type (
	Ino            = journal.Ino
	State          = journal.State
	Snapshot       = journal.Snapshot
	Retention      = journal.Retention
	GCOptions      = journal.GCOptions
	GCStats        = journal.GCStats
	Repairer       = repair.Repairer
	RepairStats    = repair.Stats
	RepairReport   = repair.Report
	RepairProgress = repair.Progress
	CheckRequest   = repair.CheckRequest
	StagedCheck    = journal.StagedCheck
	StagedDamage   = journal.StagedDamage
	RebuildStats   = journal.RebuildStats
)

// ErrDrainedNodeDown: a drain moved everything off a node that does not
// answer (repair.ErrDrainedNodeDown).
var ErrDrainedNodeDown = repair.ErrDrainedNodeDown

// RootIno is the drive's root folder.
const RootIno = journal.RootIno

// StateDurable: everything written is on the grid with all n shards.
const StateDurable = journal.StateDurable

// States of a file in a RepairReport.
const (
	FileDegraded      = repair.Degraded
	FileUnrecoverable = repair.Unrecoverable
)

// The journal's sentinel errors the commands tell apart.
var (
	ErrNotFound = journal.ErrNotFound
	ErrExist    = journal.ErrExist
	ErrInvalid  = journal.ErrInvalid
	ErrReadOnly = journal.ErrReadOnly
	ErrNoXattr  = journal.ErrNoXattr
	// ErrTooFewNodes: no node up could take a segment's shard (the
	// others down, draining, full or holding one of it already).
	ErrTooFewNodes = remote.ErrTooFewNodes
)

// RebuildOptions configure Rebuild.
type RebuildOptions = journal.RebuildOptions

// ReadRoot reads the drive's root record from the grid: the newest copy
// the nodes hold (remote.ErrNoRoot when none has one).
func ReadRoot(ctx context.Context, g journal.MetaGrid, s *remote.Sealer, log *slog.Logger) (*remote.RootRecord, error) {
	return journal.ReadRoot(ctx, g, s, log)
}

// Rebuild makes a drive's journal from the metadata on the grid (meshdrive
// recover).
func Rebuild(ctx context.Context, o RebuildOptions) (*RebuildStats, error) {
	return journal.Rebuild(ctx, o)
}

// CheckSnapshotName refuses a name a snapshot cannot have (a slash, a
// time name, text that is not printable UTF-8), saying why.
func CheckSnapshotName(name string) error { return journal.CheckSnapshotName(name) }

// PathHref is p %-encoded from its bytes when it is not UTF-8, else "":
// the FIELD_href companion of a path in JSON (docs/API.md).
func PathHref(p string) string { return href.IfNotUTF8(p) }

// ParseRetention parses a snapshot retention ("" is the default).
func ParseRetention(s string) (Retention, error) { return journal.ParseRetention(s) }

// Resolve returns the inode of a path relative to the drive's root
// (CleanPath form; "" is the root).
func (d *Drive) Resolve(ctx context.Context, rel string) (Ino, error) {
	if rel == "" {
		return RootIno, nil
	}
	return d.j.ResolvePath(ctx, rel)
}

// SyncGrid returns once everything written before the call is
// grid-durable, data and metadata.
func (d *Drive) SyncGrid(ctx context.Context) error { return d.j.SyncGrid(ctx) }

// CheckpointFull ships a full metadata record now (journal.Journal.CheckpointFull).
func (d *Drive) CheckpointFull(ctx context.Context) (uint64, error) { return d.j.CheckpointFull(ctx) }

// NodesBack is the mount's health check seeing nodes again after none
// was reachable: the pinner fetches what it could not.
func (d *Drive) NodesBack() {
	if d.pins != nil {
		d.pins.Kick()
	}
}

// NodesUp is the mount's health check's count of the nodes that answer,
// at each look: uploads waiting out a retry backoff go as soon as enough
// nodes to store a segment answer again (journal.Journal.NodesUp).
func (d *Drive) NodesUp(up int) { d.j.NodesUp(up) }

// CheckStaged authenticates the blocks written and not yet uploaded on
// the local disk, every one, or (path not "") those of the files at or
// under path; with repair it marks damaged ones lost
// (journal.Journal.CheckStaged).
func (d *Drive) CheckStaged(ctx context.Context, path string, repair bool, progress func(done, total int)) (*StagedCheck, error) {
	return d.j.CheckStaged(ctx, path, repair, progress)
}

// WaitDurable returns once every queued upload is on the grid.
func (d *Drive) WaitDurable(ctx context.Context) error { return d.j.WaitDurable(ctx) }

// CacheStats is the block cache's counters, and the block reads the
// journal served from its copies of blocks written here, which never
// reach the cache (journal.ReadStats): a folder of small files written
// here and read back is read almost wholly from those. Its JSON is
// cache.Stats' with the two fields added.
type CacheStats struct {
	cache.Stats
	KeptReads   uint64 // uploaded small blocks read from the journal's kept rows
	StagedReads uint64 // blocks not yet uploaded, read from the journal's staging
}

// CacheStats reports the block cache and the journal's local reads.
func (d *Drive) CacheStats() CacheStats {
	r := journal.ReadStatsOf(d.j)
	return CacheStats{Stats: d.cache.Stats(), KeptReads: r.Kept, StagedReads: r.Staged}
}

// ClearCache empties the block cache but for pinned blocks, and drops the
// copies of small blocks the journal keeps (journal.Options.KeepSmall).
// Every block of a pinned file is pinned first, those of a file uploaded
// under a pinned folder since the pinner's last pass included.
func (d *Drive) ClearCache() error {
	if d.pins != nil {
		if err := d.pins.Hold(context.Background()); err != nil {
			return fmt.Errorf("cache clear: could not list the blocks of the pinned files, so nothing was cleared (a clear now could drop pinned blocks); try again, and see the log if it persists: %w", err)
		}
	}
	if err := d.cache.Clear(); err != nil {
		return err
	}
	if d.o.ReadOnly {
		return nil
	}
	return d.j.DropKept(context.Background())
}

// ShedMemory evicts at least n bytes from the block cache's memory tier
// (or all it holds) and returns the bytes evicted: LimitMemory's shed,
// when the rest of the process needs the memory. When the tier holds
// less than n, the kernel is asked to forget files it keeps cached
// (pruneInodes), and their share of n counts as freed.
func (d *Drive) ShedMemory(n int64) int64 {
	freed := d.cache.ShedMem(n)
	if freed < n {
		freed += d.pruneInodes(n - freed)
	}
	return freed
}

// GarbageBytes is the sealed bytes no file refers to (snapshots may).
func (d *Drive) GarbageBytes(ctx context.Context) int64 { return d.j.GarbageBytes(ctx) }

// LostReport counts the blocks that cannot be read from anywhere.
type LostReport = journal.LostReport

// Lost reports the blocks that cannot be read from anywhere and their
// files (journal.Journal.Lost).
func (d *Drive) Lost(ctx context.Context) (LostReport, error) { return d.j.Lost(ctx) }

// LastGC is what the last garbage collection did (nil: none yet).
func (d *Drive) LastGC() *GCStats { return d.j.LastGC() }

// CollectGarbage runs one garbage collection.
func (d *Drive) CollectGarbage(ctx context.Context, o GCOptions) (*GCStats, error) {
	return d.j.CollectGarbage(ctx, o)
}

// Snapshots lists the kept snapshots.
func (d *Drive) Snapshots(ctx context.Context) ([]Snapshot, error) { return d.j.Snapshots(ctx) }

// CreateSnapshot makes a named snapshot of the drive as it is now.
func (d *Drive) CreateSnapshot(ctx context.Context, name string) (Snapshot, error) {
	return d.j.CreateSnapshot(ctx, name)
}

// DeleteSnapshots deletes the named snapshots, or all of them.
func (d *Drive) DeleteSnapshots(ctx context.Context, names []string, all bool) ([]Snapshot, error) {
	return d.j.DeleteSnapshots(ctx, names, all)
}

// RepairOptions configure StartRepair (see repair.Options).
type RepairOptions struct {
	// Below: the background pass repairs segments with fewer shards
	// present (0: k+m). Limit bounds its shard traffic, bytes per second
	// (0: none). Interval is the time between passes (0: repair's
	// default).
	Below    int
	Limit    float64
	Interval time.Duration
}

// StartRepair makes the drive's repairer over its grid and journal and
// runs its background pass until ctx ends. A read-only drive repairs
// nothing: it returns nil.
func (d *Drive) StartRepair(ctx context.Context, o RepairOptions) *Repairer {
	if d.o.ReadOnly {
		return nil
	}
	r := repair.New(repair.Options{Grid: d.o.Grid, Journal: d.j, Below: o.Below, Limit: o.Limit,
		Interval: o.Interval, Logger: d.log})
	go r.Run(ctx)
	return r
}
