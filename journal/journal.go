package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"modernc.org/sqlite"

	"github.com/meshdrive/meshdrive/remote"
)

// Grid is what the journal needs from the storage grid. *remote.Grid
// satisfies it. WriteSegment and WriteSegmentBuf keep no reference to
// their data once they return. The uploader packs staged blocks straight
// into a SegmentBuf's shard objects (NewSegmentBuf), so a segment is held
// once while it ships, not also in a buffer of the uploader's.
type Grid interface {
	WriteSegment(ctx context.Context, data []byte) (*remote.SegmentInfo, error)
	NewSegmentBuf(size int64) (*remote.SegmentBuf, error)
	WriteSegmentBuf(ctx context.Context, b *remote.SegmentBuf) (*remote.SegmentInfo, error)
	DeleteSegment(ctx context.Context, seg *remote.SegmentInfo) error
	Capacity(ctx context.Context) (total, free int64)
	K() int
	M() int
}

// BlockReader reads uploaded blocks (through the cache). *cache.Cache
// satisfies it.
type BlockReader interface {
	// ReadBlock returns the plaintext of a block; the slice is read-only
	// and shared.
	ReadBlock(ctx context.Context, ref remote.BlockRef) ([]byte, error)
	// ReadAt copies the block's plaintext bytes [off, off+len(p)) into p
	// and returns how many there were (fewer only at the block's end),
	// reading no more of the block than it must: random reads use it.
	ReadAt(ctx context.Context, ref remote.BlockRef, p []byte, off int64) (int, error)
	// Prefetch is a read-ahead hint; it never blocks long.
	Prefetch(ctx context.Context, refs []remote.BlockRef)
}

// sealer is the part of *remote.Sealer the journal uses.
type sealer interface {
	BlockID(plain []byte) remote.BlockID
	Seal(dst []byte, id remote.BlockID, plain []byte) []byte
	Open(dst []byte, id remote.BlockID, sealed []byte) ([]byte, error)
	VerifyIn(b *remote.SegmentBuf, off, n int64, id remote.BlockID) error
	Verify(sealed []byte, id remote.BlockID) error
}

// Options configure Open. Dir, Grid and Sealer are required (Grid may be
// nil with ReadOnly).
type Options struct {
	Dir    string
	Grid   Grid
	Sealer *remote.Sealer
	Blocks BlockReader
	// BlockSize is the block size in bytes (default 4 MiB). It must not
	// change over the life of a journal; Open refuses a different one.
	BlockSize int
	// Quota bounds dirty+staged bytes; 0 = 1/4 of free disk at open,
	// capped at 64 GiB.
	Quota int64
	// QuotaWait is how long a writer waits for the uploader before
	// ErrFull (default 10s).
	QuotaWait time.Duration
	// SegmentSize is the target segment size (default 16 MiB). The
	// uploader holds a segment's k+m shards while it ships them: about
	// 1.5x this with k=4, m=2 (the data shards are the segment). A
	// segment of small files' blocks is at most half this size.
	SegmentSize int64
	// IdleFlush: a file idle this long is flushed, and a partial segment
	// waits this long for more data before it is shipped (default 2s).
	IdleFlush time.Duration
	// RetryMax caps the uploader's retry backoff, and spaces the
	// reaper's retries of freeing deleted files (default 30s); zero
	// keeps the default.
	RetryMax time.Duration
	// GroupCommit bounds how long an ordinary commit (the flush of a
	// close, a namespace change) waits before a durable commit makes it
	// survive a power cut (default 1s). Fsync never waits for it.
	GroupCommit time.Duration
	// UnlinkDelay bounds how long an unlink of a file nothing holds, or
	// a create of a regular file, waits to be applied to the database
	// together with others (it is in the unlink log at once: unlinks.go,
	// creates.go); default 20 ms, negative: each is applied by its own
	// transaction.
	UnlinkDelay time.Duration
	ReadOnly    bool
	Logger      *slog.Logger

	// Meta, when set, is where the metadata log ships (metaship.go): the
	// grid's copy of the metadata trails the journal by at most
	// MetaInterval (default DefaultMetaInterval) while it is reachable.
	Meta         MetaGrid
	MetaInterval time.Duration
	// Retention decides which metadata checkpoints stay snapshots (nil:
	// DefaultRetention).
	Retention *Retention
	// GCInterval: with Meta set (and a Meta that is a GCGrid), garbage is
	// collected in the background this often; 0 = never.
	GCInterval time.Duration
	// Places, when set, says where a block lives now when a read of it
	// fails (a snapshot journal asks the drive's: compaction moves blocks).
	Places func(ctx context.Context, id remote.BlockID) (BlockPlace, bool)
	// Kept, when set, is asked for the plaintext of an uploaded small
	// block before the grid, in place of this journal's own kept rows: a
	// snapshot journal asks the drive's, so a snapshot of files written
	// here is browsed from local disk, as the drive reads them (KeepSmall).
	Kept func(ctx context.Context, id remote.BlockID) ([]byte, bool)
	// Uploaded, when set, is handed the staging file of each block whose
	// upload has committed durably (its path and sealed size) in place of
	// the journal deleting it, and must move or delete it. The drive gives
	// them to its disk cache (cache.Adopt), so a file just written is read
	// from local disk after a remount. Blocks staged in the database
	// (small ones) have no file and are not handed over (KeepSmall keeps
	// their rows instead). It runs with the
	// journal's write lock held, so it must not call the journal.
	Uploaded func(id remote.BlockID, path string, size int64)
	// Dropped, when set, is handed the blocks whose rows garbage
	// collection deleted with their segment (no file, snapshot or record
	// names them any more), after the commit, so the drive drops them from
	// its cache: otherwise the disk tier fills with deleted files' blocks,
	// which uploads put at its most recently used end. It runs with no
	// journal lock held.
	Dropped func(ids []remote.BlockID)
	// MakeRoom, when set, is asked to free about need bytes of the local
	// disk when a write of dirty or staged data fails with ENOSPC; the
	// write is tried once more when it freed any. The drive evicts clean
	// blocks from its disk cache (cache.MakeRoom), which shares the disk:
	// a cache must give way to what is not on the grid yet. It may run
	// with the journal's locks held, so it must not call the journal.
	MakeRoom func(need int64) int64
	// KeepSmall bounds the sealed bytes of small blocks (those staged in
	// the database, table staged) kept there after their upload, so that
	// a small file written here is read from local disk after a remount,
	// as Uploaded does for the others; the oldest go first past it
	// (kept.go). 0: none are kept.
	KeepSmall int64
	// LocalXattrs are extended attributes that say what this machine does
	// with a file (fs.PinXattr), not what the file is: a change of one
	// alone leaves the file's ctime, its Status and MetaStats.PendingRows
	// as they were (it still ships with the next metadata record), so
	// pinning a durable file does not make it read "local" until that
	// record.
	LocalXattrs []string
	// DropMissing: staged blocks whose staging file is gone (the local
	// disk or a person removed it) are marked lost at Open (reads of
	// them fail with ErrLostBlock, Status says StateLost, writing the
	// same bytes again brings them back) instead of Open refusing: the
	// way to keep everything else the journal holds.
	DropMissing bool

	// after is the group committer's clock (tests; default time.After).
	after func(time.Duration) <-chan time.Time
	// reaped, when set (tests), runs after every pass of the reaper
	// that freed what it found.
	reaped func()
}

// shared is what every part of the journal shares (parts.go): the
// options, the database handles, the caches, the inode table, the upload
// queue and the locks that guard them, in one place the parts point at.
// It has no methods, so a part that embeds it gets its fields and nothing
// else.
type shared struct {
	parts

	o    Options
	seal sealer
	log  *slog.Logger
	db   *sql.DB
	// w is the connection of every write transaction (wmu held): one
	// connection keeps its page cache across commits, which another
	// connection's commit would make it read again from the WAL. Its
	// synchronous is NORMAL, FULL for a durable commit (durableTxLocked).
	w *sql.Conn
	// commitGen counts the commits of w (see lookAhead); flushGen is
	// commitGen after the newest flush's commit (flushedSince).
	commitGen atomic.Uint64
	flushGen  atomic.Uint64
	la        lookAhead
	dirs      knownDirs
	lastLk    lastLookup
	ac        attrCache
	created   created      // guarded by imu
	scope     Ino          // of the running transaction; guarded by wmu (scopeLocked)
	narrow    []Ino        // set by the running transaction; guarded by wmu (narrowLocked)
	foldLight bool         // the next transaction folds creates and directory changes only; guarded by wmu (txLocked)
	ents      entryChanges // said by the running transaction; guarded by wmu
	names     nameSets
	st        stmts
	wst       stmts      // the hot reads on w (prepareHot, reader)
	pmu       sync.Mutex // guards pcache
	pcache    map[string]*sql.Stmt
	dirty     string // Dir/dirty
	stage     string // Dir/staging
	bs        int64  // block size
	closed    atomic.Bool
	roLost    roMissing // read-only: staged blocks whose staging file is gone (romissing.go)

	// bufferedStage: the staging directory refused O_DIRECT writes, so
	// staging files are written through the page cache (stagefile.go).
	bufferedStage atomic.Bool

	// wmu serializes write transactions and the staging-file operations
	// that must agree with them. Lock order: inode.mu -> wmu -> cmu ->
	// imu -> qmu (doc.go).
	wmu sync.Mutex

	// imu guards inodes. Its writers hold imapMu too, which the reads
	// that need no more than the map take alone (a leaf after imu): a
	// GETATTR, LOOKUP or UNLINK does not wait while the unlinker's
	// apply of unlinks holds imu through its transaction.
	imu    sync.Mutex
	imapMu sync.Mutex
	inodes map[Ino]*inode

	// segMu guards segs, a cache of segment rows.
	segMu sync.Mutex
	segs  map[remote.SegmentID]*remote.SegmentInfo

	uploadQueue
	unl   unlinkQueue // deferred unlinks (unlinks.go)
	known knownBlocks // a filter of the block ids in table blocks (known.go)

	// appReads counts block reads from the grid that an application is
	// waiting for; the uploader yields to them (yieldToForeground).
	appReads atomic.Int64
	// keptReads and stagedReads count the block reads served from the
	// journal's own copies (ReadStatsOf): kept rows of uploaded small
	// blocks (a snapshot's, through Options.Kept, included) and blocks
	// still staged.
	keptReads, stagedReads atomic.Uint64
	// bigFlushes counts flushes of bigFlushBlocks or more blocks in
	// progress (an fsync or close after a large write) and write-behind
	// goroutines running; the uploader holds back while one runs
	// (yieldToForeground).
	bigFlushes atomic.Int64
	behindSem  chan struct{}  // one slot per write-behind goroutine
	memBlocks  memBlocks      // in-memory dirty blocks of all files (dirty.go)
	behindWG   sync.WaitGroup // write-behind goroutines running; Close waits
	behindMu   sync.Mutex     // orders behindWG.Add before Close's Wait (taken alone)
	// behindEnd is when a write-behind goroutine last ended (Unix
	// nanoseconds): a sequential writer's goroutines come and go between
	// its blocks, and the uploader keeps yielding for behindLinger after
	// one ends (yieldToForeground).
	behindEnd atomic.Int64

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	// retryNow cuts short the uploader's wait between failed uploads
	// (Journal.RetryNow).
	retryNow chan struct{}
	// nodesUp is the nodes the mount's health check last saw answer (-1
	// before its first look; NodesUp).
	nodesUp atomic.Int64
	// orphanKick wakes the reaper (reclaimLater); reaperDone is closed
	// when it has stopped.
	orphanKick chan struct{}
	reaperDone chan struct{}
	// ms ships the metadata to the grid (nil without Options.Meta or
	// read-only).
	ms *metaShipper
	// pending is mdirty's keys in memory, for Status (metapending.go).
	pending pendingKeys
	// snapMu guards snaps, the snapshot journals opened (SnapshotJournal).
	snapMu sync.Mutex
	snaps  map[uint64]*Journal
	// gcMu serializes collections; gcMu2 guards lastGC. gcDone is closed
	// when the background collector has stopped.
	gcMu  sync.Mutex
	gcMu2 sync.Mutex
	// segWriteMu is read-held from a segment's WriteSegment until the row
	// that names it is committed (uploads, metadata records); the orphan
	// pass write-holds it while it lists the nodes and reads which
	// segments are known, so a segment being written is never an orphan.
	// Lock order: metaShipper.mu -> segWriteMu -> wmu.
	segWriteMu sync.RWMutex
	lastGC     *GCStats
	gcDone     chan struct{}

	// groupKick wakes the group committer (kickGroup); groupDone is
	// closed when it has stopped. after is its clock (time.After; tests
	// inject theirs through Options.after).
	groupKick chan struct{}
	groupDone chan struct{}
	// ckpt holds a token while a background WAL checkpoint runs
	// (checkpointSoon); Close takes it to wait for the last one.
	ckpt  chan struct{}
	after func(time.Duration) <-chan time.Time
	// incremental: journal.db is auto_vacuum=INCREMENTAL, so the group
	// committer gives its free pages back (vacuum.go). Set by Open.
	incremental bool

	// durableGen is commitGen after the newest durable commit; lazyFree
	// holds the blocks whose staging files wait for the next durable
	// commit (freeLaterLocked). Both guarded by wmu.
	durableGen uint64
	lazyFree   map[remote.BlockID]struct{}
	// keptB is the sealed bytes of uploaded blocks whose rows table
	// staged keeps (Options.KeepSmall), guarded by wmu.
	keptB int64
	// durableHook, when set (tests), runs after every durable commit,
	// wmu held; durableStartHook before each begins (what was logged by
	// then is in it: a close or unlink logged meanwhile may or may not
	// be, since logging takes no wmu).
	durableHook      func()
	durableStartHook func()
	// appliedHook, when set (tests), runs after the commit of the
	// pending records' apply and before they are forgotten, wmu held.
	appliedHook func()
	// applyingHook, when set (tests), runs in the transaction of an
	// apply of n pending records, after them, wmu held.
	applyingHook func(n int)
	// attrReadHook, when set (tests), runs in GetAttr between the read
	// of the row and the overlay of what memory holds over it.
	attrReadHook func(Ino)
	// createdHook, when set (tests), runs in createdOverlay between the
	// first look at the pending create and the overlay.
	createdHook func()
}

// uploadQueue is the upload queue's state, a part of shared. The
// uploader owns the queue (one goroutine drains it, upload.go); flushes
// append to it.
type uploadQueue struct {
	// qmu guards the fields below.
	qmu   sync.Mutex
	queue map[remote.BlockID]qitem
	// inflight: the blocks of the segment the uploader is shipping (by
	// seq), read and checked when it packed them (checkStaged).
	inflight  map[remote.BlockID]int64
	nextSeq   int64
	progress  chan struct{} // closed and replaced on every upload commit or queue removal
	force     bool          // ship a partial segment now
	stats     UploadStats
	stageGone bool          // the uploader found the staging folder gone (noteStaging)
	dirtyB    int64         // bytes of dirty blocks (counted by block)
	stagedB   int64         // sealed bytes in staging
	quotaFree chan struct{} // closed and replaced whenever space is freed
}

// Open opens (or creates) the journal in o.Dir, recovers from a crash
// (discarding whatever was not committed) and starts the uploader.
func Open(ctx context.Context, o Options) (*Journal, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("journal: %w: Options.Dir is empty", ErrInvalid)
	}
	if o.Sealer == nil {
		return nil, fmt.Errorf("journal: %w: Options.Sealer is nil", ErrInvalid)
	}
	if o.Grid == nil && !o.ReadOnly {
		return nil, fmt.Errorf("journal: %w: Options.Grid is nil", ErrInvalid)
	}
	j, err := open(ctx, o, o.Sealer)
	if err != nil {
		return nil, dbDamaged(err, o.Dir)
	}
	return j, nil
}

// dbDamaged adds what to do to sqlite's word that journal.db is damaged
// ("database disk image is malformed", "file is not a database"), which
// says only what happened.
func dbDamaged(err error, dir string) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	const corrupt, notADB = 11, 26 // SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)
	if c := se.Code() & 0xff; c != corrupt && c != notADB {
		return err
	}
	return fmt.Errorf("%w: journal.db is damaged (the local disk lost or changed it). Keep a copy of %s for a bug report; "+
		"meshdrive recover --node URL --data NEWDIR rebuilds the drive from its grid as of its last metadata checkpoint "+
		"(what this journal held that never reached the grid is not in it)", err, dir)
}

// diskFull marks sqlite's word that the disk is full ("database or disk
// is full") as ErrDiskFull, so that the application sees ENOSPC, as it
// would on a local disk, rather than EIO.
func diskFull(err error) error {
	var se *sqlite.Error
	if err == nil || errors.Is(err, ErrDiskFull) || !errors.As(err, &se) {
		return err
	}
	const full = 13 // SQLITE_FULL (primary code)
	if se.Code()&0xff != full {
		return err
	}
	return fmt.Errorf("%w (%w)", err, ErrDiskFull)
}

func open(ctx context.Context, o Options, s sealer) (*Journal, error) {
	if o.BlockSize <= 0 {
		o.BlockSize = 4 << 20
	}
	if o.QuotaWait <= 0 {
		o.QuotaWait = 10 * time.Second
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = 16 << 20
	}
	if o.IdleFlush <= 0 {
		o.IdleFlush = 2 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.GroupCommit <= 0 {
		o.GroupCommit = time.Second
	}
	if o.UnlinkDelay == 0 {
		o.UnlinkDelay = 20 * time.Millisecond
	}
	if o.after == nil {
		o.after = realAfter
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	j := &Journal{newShared(&shared{
		o: o, seal: s, log: o.Logger,
		dirty:      filepath.Join(o.Dir, "dirty"),
		stage:      filepath.Join(o.Dir, "staging"),
		bs:         int64(o.BlockSize),
		inodes:     map[Ino]*inode{},
		segs:       map[remote.SegmentID]*remote.SegmentInfo{},
		kick:       make(chan struct{}, 1),
		retryNow:   make(chan struct{}, 1),
		orphanKick: make(chan struct{}, 1),
		reaperDone: make(chan struct{}),
		groupKick:  make(chan struct{}, 1),
		groupDone:  make(chan struct{}),
		ckpt:       make(chan struct{}, 1),
		after:      o.after,
		lazyFree:   map[remote.BlockID]struct{}{},
		behindSem:  make(chan struct{}, behindWorkers),
		done:       make(chan struct{}),
	})}
	j.nodesUp.Store(-1)
	j.unl.unlKick = make(chan struct{}, 1)
	j.unl.unlDone = make(chan struct{})
	j.queue = map[remote.BlockID]qitem{}
	j.progress = make(chan struct{})
	j.quotaFree = make(chan struct{})
	for _, d := range []string{o.Dir, j.dirty, j.stage} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("journal: create %s: %w", d, err)
		}
	}
	if o.Quota <= 0 {
		var st unix.Statfs_t
		if err := unix.Statfs(o.Dir, &st); err != nil {
			return nil, fmt.Errorf("journal: statfs %s: %w", o.Dir, err)
		}
		q := int64(st.Bavail) * int64(st.Bsize) / 4
		q = min(q, 64<<30)
		j.o.Quota = max(q, 4*j.bs)
	}
	db, err := openDB(ctx, filepath.Join(o.Dir, "journal.db"), o.ReadOnly)
	if err != nil {
		return nil, err
	}
	j.db = db
	if o.ReadOnly {
		if err := j.c.createSchema(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := j.c.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if !o.ReadOnly {
		j.incremental = space{j.c}.convert(ctx)
	}
	if err := j.c.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if o.ReadOnly {
		err := j.ul.warnUnapplied(ctx)
		if err == nil {
			err = findMissingReadOnly(ctx, j.c)
		}
		if err != nil {
			j.c.closeStmts()
			db.Close()
			return nil, err
		}
	} else {
		if err := j.fl.recover(ctx); err != nil {
			j.c.closeStmts()
			j.w.Close()
			db.Close()
			return nil, err
		}
		if err := j.ul.openUnlinkLog(ctx); err != nil {
			if j.unl.ulog != nil {
				j.unl.ulog.Close()
			}
			j.c.closeStmts()
			j.w.Close()
			db.Close()
			return nil, err
		}
	}
	uctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	if o.ReadOnly {
		close(j.done)
		close(j.reaperDone)
		close(j.groupDone)
		close(j.unl.unlDone)
	} else {
		go j.up.uploader(uctx)
		go j.it.reaper(uctx)
		go j.c.groupCommitter(uctx)
		j.c.kickGroup() // a first round, which gives back what deletes before this Open freed
		j.known.build = func(k *knownBlocks) { j.fl.buildKnown(uctx, k) }
		j.known.buildSoon()
		if j.unl.ulog != nil {
			go j.ul.unlinker(uctx)
		} else {
			close(j.unl.unlDone)
		}
		if o.Meta != nil {
			j.ms = newMetaShipper(j.md)
			go j.ms.run(uctx)
			if _, ok := o.Meta.(GCGrid); ok && o.GCInterval > 0 {
				j.gcDone = make(chan struct{})
				go j.gc.gcLoop(uctx, o.GCInterval)
			}
		}
	}
	return j, nil
}

// createSchema gives a read-only journal that has no schema yet (a new
// drive whose first mount is read-only; the database file was just created
// empty) its schema and empty root, on a read-write connection of its own,
// so the read-only open shows an empty drive instead of failing. It also
// brings an older schema up to date the same way: the migrations after
// the first only add empty tables, so no file changes.
func (j *core) createSchema(ctx context.Context) error {
	var v int
	if err := j.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("journal: read schema version: %w", err)
	}
	if v == len(migrations) {
		return nil
	}
	rw, err := openDB(ctx, filepath.Join(j.o.Dir, "journal.db"), false)
	if err != nil {
		return err
	}
	ro, roDB := j.o.ReadOnly, j.db
	j.o.ReadOnly, j.db = false, rw
	err = j.migrate(ctx)
	j.o.ReadOnly, j.db = ro, roDB
	if cerr := rw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal: close database: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("journal: bring the journal's schema up to date for a read-only open: %w", err)
	}
	return nil
}

// Close flushes every dirty file to local disk, stops the uploader (what
// is queued stays queued for the next Open) and closes the database.
func (j *Journal) Close() error {
	if j.closed.Swap(true) {
		return nil
	}
	// No write-behind goroutine starts after this (writeBehind checks
	// closed under behindMu), so behindWG.Wait below is safe.
	j.behindMu.Lock()
	j.behindMu.Unlock()
	var errs []error
	for _, ino := range j.it.dirtyInodes() {
		if err := j.fd.flushIno(context.Background(), ino, false); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	j.cancel()
	<-j.done
	<-j.reaperDone
	<-j.groupDone
	<-j.unl.unlDone
	j.known.mu.Lock()
	j.known.build = nil // no build starts after this
	j.known.mu.Unlock()
	j.known.wg.Wait()
	if j.ms != nil {
		<-j.ms.done
	}
	if j.gcDone != nil {
		<-j.gcDone
	}
	j.gc.closeSnapshots()
	j.behindWG.Wait() // they see closed and stop after the block in hand
	if !j.o.ReadOnly && j.w != nil {
		// What the group committer had not made durable yet, and the
		// staging files waiting for that (the checkpoint below would
		// make the commits durable, but not remove the files).
		if err := j.c.barrier(context.Background()); err != nil {
			errs = append(errs, fmt.Errorf("journal: last durable commit: %w", err))
		}
	}
	j.unl.closeLog() // the barrier applied what it held and emptied it
	j.imu.Lock()
	for _, n := range j.inodes {
		n.stopTimer()
		if n.f != nil {
			n.f.remove() // Open would delete it: nothing in it is promised
			n.f = nil
		}
	}
	j.imu.Unlock()
	j.c.closeStmts()
	if j.w != nil {
		j.w.Close()
	}
	if j.ckpt != nil {
		j.ckpt <- struct{}{} // no background checkpoint from here on
	}
	if !j.o.ReadOnly {
		if _, err := j.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			errs = append(errs, fmt.Errorf("journal: checkpoint: %w", err))
		}
	}
	if err := j.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("journal: close db: %w", err))
	}
	return errors.Join(errs...)
}

func (j *core) checkOpen() error {
	if j.closed.Load() {
		return ErrClosed
	}
	return nil
}

func (j *core) checkWrite() error {
	if j.closed.Load() {
		return ErrClosed
	}
	if j.o.ReadOnly {
		return ErrReadOnly
	}
	return nil
}
