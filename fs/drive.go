package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/meshdrive/meshdrive/cache"
	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/repair"
	"github.com/meshdrive/meshdrive/remote"
)

// DriveOptions configure OpenDrive.
type DriveOptions struct {
	// DataDir holds journal/ and cache/ (docs/DESIGN.md, "Data dir").
	DataDir string
	// Grid is the drive's storage grid (*remote.Grid satisfies it).
	Grid   Grid
	Sealer *remote.Sealer

	CacheMemBytes, CacheDiskBytes int64
	// PinBudget bounds the bytes of pinned files (0: CacheDiskBytes, or
	// the cache's default disk size; with no disk tier, CacheDiskBytes
	// below 0, nothing can be pinned).
	PinBudget    int64
	JournalQuota int64 // 0 = journal default
	BlockSize    int   // 0 = journal default (4 MiB)

	// MetaInterval bounds how far the grid's copy of the metadata trails
	// the journal (0: journal.DefaultMetaInterval).
	MetaInterval time.Duration
	// Retention decides which metadata checkpoints stay snapshots (nil:
	// journal.DefaultRetention).
	Retention *journal.Retention
	// GCInterval: garbage is collected in the background this often
	// (0: never; meshdrive gc runs it by hand).
	GCInterval time.Duration

	ReadOnly, AllowOther bool
	// DropMissing: staged blocks whose staging file is gone are marked
	// lost instead of the open failing (journal.Options.DropMissing).
	DropMissing bool
	// Writeback turns on the kernel's write-back cache (see
	// MountOptions.Writeback).
	Writeback bool
	Logger    *slog.Logger
	// ObserveOp, when set, is told of every FUSE request (metrics).
	ObserveOp OpObserver

	// WrapBlocks, when set, wraps the reader of plaintext blocks between
	// the cache and the journal (fault suites put faulty.CorruptBlocks
	// here).
	WrapBlocks func(BlockReader) BlockReader
}

// Grid is what a drive needs of its storage grid: what the cache, the
// journal (data, metadata, garbage) and repair each declare.
// *remote.Grid satisfies it.
type Grid interface {
	cache.Fetcher
	journal.Grid
	journal.GCGrid
	repair.Grid
	// DownNodes names the nodes the last health look found down (Status
	// counts no shard on them).
	DownNodes() []string
}

// BlockReader reads plaintext blocks for the journal: the block cache, or
// a wrapper of it (DriveOptions.WrapBlocks).
type BlockReader = journal.BlockReader

// keepSmall is the journal's budget for small blocks kept in its database
// after their upload (journal.Options.KeepSmall), beside a disk cache of
// diskBytes (0: the cache's default; negative: none, and nothing kept): a
// quarter of it, for blocks of at most 128 KiB that have no file to give
// the disk cache.
func keepSmall(diskBytes int64) int64 {
	if diskBytes < 0 {
		return 0
	}
	if diskBytes == 0 {
		diskBytes = cache.DefaultDiskBytes
	}
	return diskBytes / 4
}

// MemoryLimit is the peak RSS a process serving one drive aims for: the
// memory cache (cacheMem bytes of plaintext; 0 means the cache's default)
// plus 96 MiB for the rest (the uploader's segment and shards, dirty
// blocks, sqlite, the binary's own pages): 128 MiB with the default cache.
// The commands apply it with LimitMemory unless GOMEMLIMIT is set.
func MemoryLimit(cacheMem int64) int64 {
	if cacheMem == 0 {
		cacheMem = cache.DefaultMemBytes
	}
	return max(cacheMem, 0) + 96<<20
}

// LimitMemory keeps the process's RSS near target until ctx ends: every
// 500 ms it sets the Go memory limit to target less the resident memory
// the Go runtime does not manage (sqlite's page caches, the mapped
// database and the binary's pages), so the collector works to keep the
// whole process under target. A directory of 100,000 entries keeps tens
// of MiB of inodes alive in go-fuse and the journal: when the live heap
// does not fit, shed (nil: none; Drive.ShedMemory) is asked first to free
// what does not fit (the memory cache gives way), at most once per
// collection, since the live heap is known only after one; what still
// does not fit keeps the limit a quarter above the live heap, so the
// collector runs more often but never back to back. It changes a
// process-wide setting: call it once, from main.
func LimitMemory(ctx context.Context, target int64, shed func(n int64) int64) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	var shedAt uint64 // the collection of the last shed
	set := func() {
		metrics.Read(samples)
		var v [4]int64
		for i, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				v[i] = int64(s.Value.Uint64())
			}
		}
		other := int64(0)
		if rss, ok := residentBytes(); ok {
			other = rss - (v[1] - v[2])
		}
		if n := overLive(target-limitSlack-shedMargin, other, v[0]); n > 0 && shed != nil && uint64(v[3]) != shedAt {
			if shed(n) > 0 {
				shedAt = uint64(v[3])
			}
		}
		debug.SetMemoryLimit(goMemoryLimit(target-limitSlack, other, v[0]))
	}
	set()
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				set()
			}
		}
	}()
}

// limitSlack is kept below the target: the Go limit is soft (a large
// buffer allocated at the limit is allocated all the same) and the other
// memory is sampled only every 500 ms. Without it, writes peaked at
// 130-133 MiB against a 128 MiB target; at 8 MiB, with two spare Ps
// (RaiseProcs: more threads allocating at once), a full run's create
// after the reads and the copy peaked at 130 MiB. At 12 MiB the copy,
// the read of the copied tree and the create, run alone, peaked at
// 115-134 MiB: the Go heap fills its limit whatever the live heap
// (shedding the memory tier sooner, or all of it, left the peak where
// it was). At 20 MiB the same runs peaked at 108-127 MiB, the copy's
// and the read's rows 8 MiB lower; the collector then runs more often
// while the create's inodes fill the heap: about a tenth more CPU for
// the create (25-31 s against 23-25 s for 100,000 files on a slow host).
const limitSlack = 20 << 20

// shedMargin: the memory cache gives way while the collector still has
// this much room under the limit, not once it has none. A directory's
// create after reads and a copy (the cache full, tens of MiB of inodes
// coming) peaked at 128-135 MiB with the cache giving way at the limit:
// the limit is soft, and the memory outside Go is sampled only every
// 500 ms.
const shedMargin = 8 << 20

// goMemoryLimit is the Go memory limit for a process whose RSS should stay
// under target, with other bytes resident outside the Go runtime and a
// live Go heap of live bytes: what target leaves of other, but at least
// 1.125x live + 8 MiB (the collector's headroom).
func goMemoryLimit(target, other, live int64) int64 {
	return max(target-max(other, 0), liveFloor(live))
}

// liveFloor is the least Go memory limit for a live heap of live bytes:
// the collector's headroom above it.
func liveFloor(live int64) int64 { return live + live/8 + 8<<20 }

// overLive is how much of a live heap of live bytes must be freed for
// goMemoryLimit to be what target leaves of other again (0: it is).
func overLive(target, other, live int64) int64 {
	return max(liveFloor(live)-(target-max(other, 0)), 0) * 8 / 9
}

// residentBytes is the process's resident memory (/proc/self/statm);
// false where that is not available.
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// Drive is an open drive: its journal, its block cache and the options to
// mount it with.
type Drive struct {
	o     DriveOptions
	log   *slog.Logger
	j     *journal.Journal
	cache *cache.Cache
	pins  *Pinner // nil read-only
	// stopPins ends the pinner; pinsDone is closed when it has stopped.
	stopPins context.CancelFunc
	pinsDone chan struct{}

	rate     rateSampler
	stopRate context.CancelFunc
	rateDone chan struct{}

	mu     sync.Mutex // guards mounts
	mounts []*mounted

	prune pruner
}

// OpenDrive opens the cache (DataDir/cache, fetching from the grid) and the
// journal (DataDir/journal, reading blocks through the cache).
func OpenDrive(ctx context.Context, o DriveOptions) (*Drive, error) {
	if o.DataDir == "" || o.Grid == nil || o.Sealer == nil {
		return nil, errors.New("open drive: DataDir, Grid and Sealer are required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := cache.New(cache.Options{
		Dir:       filepath.Join(o.DataDir, "cache"),
		MemBytes:  o.CacheMemBytes,
		DiskBytes: o.CacheDiskBytes,
		Fetcher:   o.Grid,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("open drive at %s: block cache: %w", o.DataDir, err)
	}
	var blocks journal.BlockReader = c
	if o.WrapBlocks != nil {
		blocks = o.WrapBlocks(c)
	}
	j, err := journal.Open(ctx, journal.Options{
		Dir:          filepath.Join(o.DataDir, "journal"),
		Grid:         o.Grid,
		Sealer:       o.Sealer,
		Blocks:       blocks,
		BlockSize:    o.BlockSize,
		Quota:        o.JournalQuota,
		ReadOnly:     o.ReadOnly,
		Logger:       log,
		Meta:         o.Grid,
		MetaInterval: o.MetaInterval,
		Retention:    o.Retention,
		GCInterval:   o.GCInterval,
		Uploaded:     c.Adopt,
		Dropped:      c.Forget,
		MakeRoom:     c.MakeRoom,
		KeepSmall:    keepSmall(o.CacheDiskBytes),
		LocalXattrs:  []string{PinXattr},
		DropMissing:  o.DropMissing,
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("open drive at %s: journal: %w", o.DataDir, err)
	}
	d := &Drive{o: o, log: log, j: j, cache: c, rateDone: make(chan struct{})}
	d.rate.lastAt, d.rate.lastDone = time.Now(), j.Stats().DoneBytes
	rctx, stop := context.WithCancel(context.Background())
	d.stopRate = stop
	go func() {
		defer close(d.rateDone)
		d.sampleRate(rctx)
	}()
	if !o.ReadOnly {
		budget := o.PinBudget
		if budget <= 0 {
			budget = o.CacheDiskBytes
		}
		if budget == 0 {
			budget = cache.DefaultDiskBytes
		}
		budget = max(budget, 0) // no disk tier: nothing can be pinned
		d.pins = NewPinner(j, c, budget, log)
		var pctx context.Context
		pctx, d.stopPins = context.WithCancel(context.Background())
		d.pinsDone = make(chan struct{})
		go func() {
			defer close(d.pinsDone)
			d.pins.Run(pctx)
		}()
	}
	return d, nil
}

// Mount mounts the drive on mountpoint and returns once the mount is
// ready. Unmount with server.Unmount() before Close.
func (d *Drive) Mount(mountpoint string) (*fuse.Server, error) {
	mo := MountOptions{
		AllowOther: d.o.AllowOther,
		ReadOnly:   d.o.ReadOnly,
		Writeback:  d.o.Writeback,
		Logger:     d.log,
		Observe:    d.o.ObserveOp,
		ShardsDown: d.fileShardsDown,
	}
	if !d.o.ReadOnly {
		mo.Snapshots = d.j
		mo.Pins = d.pins
	}
	m, err := mount(mountpoint, d.j, mo)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.mounts = append(d.mounts, m)
	d.mu.Unlock()
	return m.server, nil
}

// Pins returns the drive's pinner (nil on a read-only drive).
func (d *Drive) Pins() *Pinner { return d.pins }

// Close unmounts any mount still up, then closes the journal (which
// flushes dirty data to local disk and stops the uploader; what is not yet
// on the grid resumes at the next open) and the cache.
func (d *Drive) Close() error {
	d.mu.Lock()
	mounts := d.mounts
	d.mounts = nil
	d.mu.Unlock()
	d.stopRate()
	<-d.rateDone
	var errs []error
	for _, m := range mounts {
		if err := m.server.Unmount(); err != nil {
			// Already unmounted by its owner: nothing to do.
			d.log.Debug("fs: unmount at close", "err", err)
		}
	}
	if d.pins != nil {
		d.stopPins()
		<-d.pinsDone
	}
	if err := d.j.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close journal: %w", err))
	}
	if err := d.cache.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close cache: %w", err))
	}
	return errors.Join(errs...)
}

var (
	_ Journal = (*journal.Journal)(nil)
	_ Grid    = (*remote.Grid)(nil)
	// The journal reuses block buffers only through this: a change of
	// AcquireBlock's signature must not silently turn that off.
	_ journal.BlockAcquirer = (*cache.Cache)(nil)
)
