package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// Fetcher is what the cache needs from the grid. *remote.Grid satisfies it.
type Fetcher interface {
	// FetchBlock reads and opens one block. plain and sealed are newly
	// allocated and owned by the caller. (A Fetcher that also has
	// FetchBlockInto, IntoFetcher, reads into buffers the cache reuses.)
	FetchBlock(ctx context.Context, ref remote.BlockRef) (plain, sealed []byte, err error)
	// OpenBlock authenticates and opens sealed bytes of ref (read back from
	// the disk tier) and appends the plaintext to dst (in its spare
	// capacity when it fits: the cache passes a reused buffer). It must not
	// keep sealed past its return: the cache reuses that buffer too. An
	// error means the bytes are damaged.
	OpenBlock(dst []byte, ref remote.BlockRef, sealed []byte) ([]byte, error)
	// FetchFrameIndex reads the head of ref's sealed block: where its
	// frames lie (see remote.ParseFrames).
	FetchFrameIndex(ctx context.Context, ref remote.BlockRef) (*remote.Frames, error)
	// FetchFrames reads and opens frames [first, last] of ref's block with
	// one ranged read; plain is newly allocated and owned by the caller.
	FetchFrames(ctx context.Context, ref remote.BlockRef, f *remote.Frames, first, last int) (plain []byte, err error)
	// OpenFrames opens frames [first, last] from their sealed bytes (read
	// from the disk tier, into a buffer the cache reuses: it must not keep
	// sealed past its return); an error means the bytes are damaged.
	OpenFrames(ref remote.BlockRef, f *remote.Frames, first, last int, sealed []byte) ([]byte, error)
}

// Defaults for zero Options fields.
const (
	DefaultMemBytes  = 32 << 20
	DefaultDiskBytes = 4 << 30
	DefaultReadAhead = 2

	// prefetchQueue bounds the read-ahead work waiting for a worker; more
	// is dropped.
	prefetchQueue = 64
	// prefetchTimeout bounds one read-ahead fetch, which no reader waits on.
	prefetchTimeout = time.Minute
)

// ErrClosed is returned by ReadBlock after Close.
var ErrClosed = errors.New("cache is closed")

// Options configure New.
type Options struct {
	// Dir holds the disk tier (sealed blocks). "" disables the disk tier.
	Dir string
	// MemBytes bounds the plaintext kept in memory: 0 = DefaultMemBytes,
	// negative = no memory tier.
	MemBytes int64
	// DiskBytes bounds the sealed bytes kept under Dir: 0 =
	// DefaultDiskBytes, negative = no disk tier. Blocks found at New count
	// against it; if they exceed a lowered budget, the excess is evicted as
	// new blocks are written (after the owner of pinned files has had the
	// chance to Pin them again).
	DiskBytes int64
	// ReadAhead is the number of parallel read-ahead fetches: 0 =
	// DefaultReadAhead, negative = Prefetch does nothing.
	ReadAhead int
	// Fetcher reads blocks from the grid. Required.
	Fetcher Fetcher
	// Logger gets disk-tier problems and corrupt cache files. nil = discard.
	Logger *slog.Logger

	// now is the clock of the scan resistance (tests; default time.Now).
	now func() time.Time
}

// Stats is a snapshot of the cache's size and counters. Counters count
// ReadBlock calls, except Fetches/FetchErrors (grid calls, read-ahead
// included) and the Prefetch ones.
type Stats struct {
	MemBytes, MemBlocks   int64  // plaintext in memory
	DiskBytes, DiskBlocks int64  // sealed blocks on disk
	Hits                  uint64 // reads served from memory
	DiskHits              uint64 // reads served from the disk tier
	Misses                uint64 // reads that waited on the grid (joining another reader's fetch included)
	Fetches               uint64 // FetchBlock calls
	FetchErrors           uint64 // FetchBlock and FetchFrames calls that failed
	FrameFetches          uint64 // FetchFrames calls (ReadAt's misses, one frame each)
	IndexFetches          uint64 // FetchFrameIndex calls
	Evictions             uint64 // blocks evicted to stay within a budget (memory and disk)
	PrefetchIssued        uint64 // blocks queued for read-ahead
	PrefetchDropped       uint64 // read-ahead dropped because the queue was full
	DiskErrors            uint64 // disk-tier reads/writes that failed, corrupt cache files included
}

// Cache is a two-tier block cache in front of a Fetcher. It is safe for
// concurrent use.
type Cache struct {
	f       Fetcher
	log     *slog.Logger
	mem     *mem
	disk    *disk
	base    context.Context // cancelled by Close
	stop    context.CancelFunc
	workers sync.WaitGroup // read-ahead workers
	flying  sync.WaitGroup // fetch goroutines

	hits, diskHits, misses, fetches, fetchErrors, frameFetches, indexFetches,
	evictions, prefetchIssued, prefetchDropped, diskErrors atomic.Uint64
	reused atomic.Uint64 // plaintext buffers taken from plainBufs (tests)

	idx       *indexes    // frame indexes of blocks read a frame at a time
	frameBufs sync.Pool   // of *[]byte: sealed frames read from disk (sealedBuf)
	blockBufs sync.Pool   // of *[]byte: whole sealed blocks read from disk (blockBuf)
	plainBufs sync.Pool   // of *[]byte: whole plaintext blocks nobody holds any more (plainBuf)
	isClosed  atomic.Bool // mirrors closed for the lock-free memory hit path

	mu        sync.Mutex                  // mu guards the fields below; lock order: mu, then mem.mu, then disk.mu
	flights   map[key]*flight             // a whole block's load, or one frame's
	queued    map[remote.BlockID]struct{} // in prefetchQ
	prefetchQ chan remote.BlockRef        // nil when read-ahead is off
	closed    bool
}

// flight is one load of a block (disk tier, else grid) shared by every
// reader that misses it meanwhile.
type flight struct {
	done chan struct{} // closed when p/src/err are set
	// p is the result, with a reference of the flight's own that is
	// released once every waiter has taken one (or left).
	p      *buf
	src    source
	err    error
	cancel context.CancelFunc // cancels the load once no one waits
	// waiters and released are guarded by Cache.mu.
	waiters  int
	released bool
}

type source int

const (
	fromMem source = iota
	fromDisk
	fromGrid
)

// New opens the cache, rebuilding the disk tier's index from Dir.
func New(o Options) (*Cache, error) {
	if o.Fetcher == nil {
		return nil, errors.New("cache: Options.Fetcher is required")
	}
	if o.MemBytes == 0 {
		o.MemBytes = DefaultMemBytes
	}
	if o.DiskBytes == 0 {
		o.DiskBytes = DefaultDiskBytes
	}
	if o.ReadAhead == 0 {
		o.ReadAhead = DefaultReadAhead
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		f:       o.Fetcher,
		log:     o.Logger,
		flights: make(map[key]*flight),
		idx:     newIndexes(),
		queued:  make(map[remote.BlockID]struct{}),
	}
	if o.now == nil {
		o.now = time.Now
	}
	c.mem = newMem(o.MemBytes, &c.evictions, o.now)
	c.mem.recycle = c.recycle
	d, err := newDisk(o.Dir, o.DiskBytes, o.Logger, &c.evictions, &c.diskErrors, o.now)
	if err != nil {
		return nil, err
	}
	c.disk = d
	c.base, c.stop = context.WithCancel(context.Background())
	if o.ReadAhead > 0 {
		c.prefetchQ = make(chan remote.BlockRef, prefetchQueue)
		for range o.ReadAhead {
			c.workers.Add(1)
			go c.prefetcher()
		}
	}
	return c, nil
}

// ReadBlock returns the plaintext of ref's block: from memory, else from the
// disk tier, else from the grid (one fetch however many readers miss the
// block at once).
//
// The returned slice is shared with the cache and other readers: it is
// read-only, for as long as the caller keeps it.
//
// When ctx ends first, ReadBlock returns ctx.Err() at once; the fetch goes
// on for the other readers of the block and is cancelled only when none is
// left. Errors are not cached: the next read tries again.
func (c *Cache) ReadBlock(ctx context.Context, ref remote.BlockRef) ([]byte, error) {
	p, err := c.acquire(ctx, ref)
	if err != nil {
		return nil, err
	}
	p.escape() // its holders from here on are not counted
	b := p.b
	c.mem.release(p)
	return b, nil
}

// Hold is a counted reference to a block's plaintext (AcquireBlock):
// Retain adds one, Release drops one; once every one is released the
// cache may reuse the memory for another block.
type Hold = interface {
	Retain()
	Release()
}

// AcquireBlock is ReadBlock for a caller that says when it is done: b is
// read-only and stays valid until h's references are all released (one
// from AcquireBlock, one more per Retain), after which the cache may reuse
// its memory for another block. A sequential read of a big file then
// costs no new 4 MiB slice per block (the reuse saves the allocation and
// its zeroing).
func (c *Cache) AcquireBlock(ctx context.Context, ref remote.BlockRef) (b []byte, h Hold, err error) {
	p, err := c.acquire(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	return p.b, &hold{c.mem, p}, nil
}

// hold is a Hold on one buf.
type hold struct {
	m *mem
	p *buf
}

func (h *hold) Retain()  { h.p.refs.Add(1) }
func (h *hold) Release() { h.m.release(h.p) }

// acquire returns ref's block with a reference for the caller.
func (c *Cache) acquire(ctx context.Context, ref remote.BlockRef) (*buf, error) {
	if c.isClosed.Load() {
		return nil, ErrClosed
	}
	if p, ok := c.memGet(blockKey(ref.ID)); ok {
		c.hits.Add(1)
		return p, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, src, err := c.loadBlock(ctx, ref)
	if err != nil {
		return nil, err
	}
	c.count(src)
	return p, nil
}

// memGet is mem.get that tells the disk tier when memory saw the block
// used again, so a block kept hot in memory is protected on disk too. The
// caller releases what it gets.
func (c *Cache) memGet(k key) (*buf, bool) {
	p, ok, promoted := c.mem.get(k)
	if promoted {
		c.disk.promote(k.id)
	}
	return p, ok
}

// memBytes is memGet for a frame, or a block read into a slice it keeps
// (escaped): the bytes stay valid for as long as the caller keeps them.
func (c *Cache) memBytes(k key) ([]byte, bool) {
	p, ok := c.memGet(k)
	if !ok {
		return nil, false
	}
	p.escape()
	b := p.b
	c.mem.release(p)
	return b, true
}

// plainBuf returns an empty slice from the pool with room for n bytes of
// plaintext, nil when the pool has none that fits: the opener then
// allocates. A buffer more than a third larger than n goes back: the
// memory tier counts a block by its length, so a small block must not
// sit in a big buffer.
func (c *Cache) plainBuf(n int64) []byte {
	b, ok := c.plainBufs.Get().(*[]byte)
	if !ok {
		return nil
	}
	if int64(cap(*b)) < n || int64(cap(*b)) > n+n/3 {
		c.plainBufs.Put(b)
		return nil
	}
	c.reused.Add(1)
	return (*b)[:0]
}

// recycle takes back a plaintext buffer that nobody holds.
func (c *Cache) recycle(b []byte) {
	if cap(b) >= minPooledPlain {
		c.plainBufs.Put(&b)
	}
}

// minPooledPlain: smaller plaintexts (small files' blocks) are not worth
// keeping for reuse.
const minPooledPlain = 256 << 10

// count counts one read served from src.
func (c *Cache) count(src source) {
	switch src {
	case fromMem:
		c.hits.Add(1)
	case fromDisk:
		c.diskHits.Add(1)
	default:
		c.misses.Add(1)
	}
}

// loadBlock loads ref's whole block (one flight per block), with a
// reference for the caller.
func (c *Cache) loadBlock(ctx context.Context, ref remote.BlockRef) (*buf, source, error) {
	return c.load(ctx, blockKey(ref.ID), func(ctx context.Context) (*buf, source, error) { return c.fill(ctx, ref) })
}

// load joins the flight of k, starting one that runs fill if there is
// none, and waits for it or for ctx. What it returns has a reference for
// the caller; fill's result has one for the flight.
func (c *Cache) load(ctx context.Context, k key, fill func(context.Context) (*buf, source, error)) (*buf, source, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, 0, ErrClosed
	}
	fl, ok := c.flights[k]
	if !ok {
		fctx, cancel := context.WithCancel(c.base)
		fl = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[k] = fl
		c.flying.Add(1)
		go c.fly(fctx, k, fl, fill)
	}
	fl.waiters++
	c.mu.Unlock()

	select {
	case <-fl.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		if fl.p != nil {
			fl.p.refs.Add(1) // the caller's
		}
		fl.waiters--
		c.settleLocked(fl)
		return fl.p, fl.src, fl.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fl.waiters--
	if fl.waiters == 0 {
		select {
		case <-fl.done:
			c.settleLocked(fl)
		default:
			// Nobody is left to want the block: stop the fetch, and let the
			// next reader start a fresh one rather than join a dying one.
			fl.cancel()
			if c.flights[k] == fl {
				delete(c.flights, k)
			}
		}
	}
	return nil, 0, ctx.Err()
}

// settleLocked releases the flight's reference to its result once it
// has ended and every waiter has taken its own or left. c.mu held.
func (c *Cache) settleLocked(fl *flight) {
	if fl.waiters == 0 && !fl.released {
		fl.released = true
		if fl.p != nil {
			c.mem.release(fl.p)
		}
	}
}

// fly runs one flight and publishes its result.
func (c *Cache) fly(ctx context.Context, k key, fl *flight, fill func(context.Context) (*buf, source, error)) {
	defer c.flying.Done()
	p, src, err := fill(ctx)
	c.mu.Lock()
	if c.flights[k] == fl {
		delete(c.flights, k)
	}
	fl.p, fl.src, fl.err = p, src, err
	close(fl.done)
	c.settleLocked(fl) // nobody waits any more (all gave up)
	c.mu.Unlock()
	fl.cancel()
}

// fill loads a block: memory (a flight that just ended may have put it
// there), disk tier, grid. It stores what it loads in the tiers and
// returns it with a reference for the flight.
func (c *Cache) fill(ctx context.Context, ref remote.BlockRef) (*buf, source, error) {
	if p, ok := c.memGet(blockKey(ref.ID)); ok {
		return p, fromMem, nil
	}
	if p, ok, err := c.diskBlock(ref); ok {
		return p, fromDisk, nil
	} else if err != nil {
		c.diskErrors.Add(1)
		c.log.Warn("cache: cached block failed to open (corrupt cache file); deleting it and fetching from the grid",
			"block", ref.ID, "err", err)
		c.disk.remove(ref.ID)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	c.fetches.Add(1)
	plain, sealed, pooled, err := c.fetchBlock(ctx, ref)
	if err != nil {
		c.fetchErrors.Add(1)
		return nil, 0, fmt.Errorf("cache: fetch block %s: %w", ref.ID, err)
	}
	p := newBuf(plain, true) // a new or recycled slice: reusable once nobody holds it
	c.mem.put(blockKey(ref.ID), p)
	c.idx.learn(ref, sealed) // copies what it keeps
	var done func()
	if pooled {
		done = func() { b := sealed[:0]; c.blockBufs.Put(&b) } // written: the next fetch's
	}
	c.disk.store(ref.ID, sealed, done)
	return p, fromGrid, nil
}

// IntoFetcher is a Fetcher that can also read a block into buffers the
// cache reuses (remote.Grid does; see its FetchBlockInto): the sealed
// bytes into sealedDst, the plaintext into plainDst, each when it fits.
// free false means a read that lost a race may still write into them.
type IntoFetcher interface {
	FetchBlockInto(ctx context.Context, ref remote.BlockRef, plainDst, sealedDst []byte) (plain, sealed []byte, free bool, err error)
}

// fetchBlock fetches ref's block from the grid, into a pooled sealed
// buffer and a recycled plaintext one when the Fetcher can (a fresh 4 MiB
// slice per block costs its zeroing and page faults: about a quarter of a
// cold read's CPU). pooled: sealed may go back to c.blockBufs once the
// disk tier has written it.
func (c *Cache) fetchBlock(ctx context.Context, ref remote.BlockRef) (plain, sealed []byte, pooled bool, err error) {
	f, ok := c.f.(IntoFetcher)
	if !ok {
		plain, sealed, err = c.f.FetchBlock(ctx, ref)
		return plain, sealed, false, err
	}
	sb := c.blockBuf()
	// A framed block's plaintext is its sealed length less a little per
	// frame; a compressed one's is longer and opens into a new slice.
	pd := c.plainBuf(ref.Length - ref.Length/64)
	plain, sealed, free, err := f.FetchBlockInto(ctx, ref, pd, (*sb)[:0])
	if !free {
		return plain, sealed, false, err // the losing read may write into sb and pd: dropped
	}
	if pd != nil && !sameArray(plain, pd) {
		c.recycle(pd)
	}
	if cap(*sb) > 0 && !sameArray(sealed, *sb) {
		c.blockBufs.Put(sb) // unused (too small); an empty one would only take the slot of the next
	}
	return plain, sealed, err == nil, err
}

// sameArray reports whether a and b start in the same backing array (b
// nonempty in capacity): whether a was read into b.
func sameArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:1][0] == &b[:1][0]
}

// Prefetch queues refs for read-ahead and returns at once. Blocks already
// in memory, being fetched or queued are skipped; when the queue is full the
// rest is dropped. The read-ahead does not depend on ctx (the request that
// asked for it ends long before); it stops at Close.
func (c *Cache) Prefetch(ctx context.Context, refs []remote.BlockRef) {
	if c.prefetchQ == nil || ctx.Err() != nil {
		return
	}
	var queued []remote.BlockID
	defer func() {
		// Outside c.mu: the kernel starts reading the queued blocks'
		// files while the workers are busy with the ones before.
		for _, id := range queued {
			c.disk.willNeed(id)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for _, ref := range refs {
		if _, ok := c.flights[blockKey(ref.ID)]; ok {
			continue
		}
		if _, ok := c.queued[ref.ID]; ok {
			continue
		}
		if c.mem.contains(blockKey(ref.ID)) {
			continue
		}
		select {
		case c.prefetchQ <- ref:
			c.queued[ref.ID] = struct{}{}
			c.prefetchIssued.Add(1)
			queued = append(queued, ref.ID)
		default:
			c.prefetchDropped.Add(1)
		}
	}
}

// prefetcher is one read-ahead worker.
func (c *Cache) prefetcher() {
	defer c.workers.Done()
	for ref := range c.prefetchQ {
		if c.base.Err() == nil { // else closing: drain without work
			ctx, cancel := context.WithTimeout(c.base, prefetchTimeout)
			if p, _, err := c.loadBlock(ctx, ref); err != nil && !errors.Is(err, ErrClosed) {
				c.log.Debug("cache: read-ahead failed", "block", ref.ID, "err", err)
			} else if err == nil {
				c.mem.release(p)
			}
			cancel()
		}
		// Still "queued" while loading, so Prefetch does not queue it again.
		c.mu.Lock()
		delete(c.queued, ref.ID)
		c.mu.Unlock()
	}
}

// Pin keeps id on disk: a pinned block is never evicted, and Clear keeps
// it. Pins are a set (pinning twice is pinning once) held in memory; the
// owner of pinned files pins their blocks again after a restart. A pinned
// block is cached on disk even when that takes the tier over DiskBytes.
// Pinning does not fetch: read the block to bring it in.
func (c *Cache) Pin(id remote.BlockID) { c.disk.pin(id) }

// ErrNoDiskTier is returned by Keep when the cache has no disk tier.
var ErrNoDiskTier = errors.New("the cache has no disk tier (cache size 0), so nothing can be kept on this machine")

// Keep pins ref's block and makes sure it is on disk: it returns at once
// when it is, else it fetches the sealed block from the grid and writes it
// before returning (not through the write queue, which may drop it). It
// does not touch the memory tier, so keeping a folder offline does not
// push out what is being read. An error means the block is not on disk
// (yet): the grid failed, or the disk did.
func (c *Cache) Keep(ctx context.Context, ref remote.BlockRef) error {
	if c.isClosed.Load() {
		return ErrClosed
	}
	if c.disk.dir == "" {
		return ErrNoDiskTier
	}
	c.disk.pin(ref.ID)
	if c.disk.has(ref.ID) {
		return nil
	}
	c.fetches.Add(1)
	_, sealed, err := c.f.FetchBlock(ctx, ref)
	if err != nil {
		c.fetchErrors.Add(1)
		return fmt.Errorf("cache: fetch block %s to keep it: %w", ref.ID, err)
	}
	c.disk.writeNow(ref.ID, sealed)
	if !c.disk.has(ref.ID) {
		return fmt.Errorf("cache: block %s could not be written to the disk cache in %s (see the log)", ref.ID, c.disk.dir)
	}
	return nil
}

// OnDisk reports whether block id is in the disk tier now (see Has).
func (c *Cache) OnDisk(id remote.BlockID) bool { return c.disk.has(id) }

// Unpin makes id evictable again.
func (c *Cache) Unpin(id remote.BlockID) { c.disk.unpin(id) }

// Adopt takes the file at path, which holds block id's sealed bytes (size
// of them), into the disk tier by renaming it there: the journal hands
// over the staging file of each block whose upload committed, so a file
// just written is read from local disk after a remount, not fetched back
// from the grid. The caller gives the file up: when the tier does not
// take it (disabled, closed, on another file system, no room beside
// pinned blocks), it is deleted. The block goes in as any block the
// cache writes does, evicting the least recently used ones for room.
func (c *Cache) Adopt(id remote.BlockID, path string, size int64) {
	c.disk.adopt(id, path, size)
}

// MakeRoom evicts unpinned blocks from the disk tier, least recently used
// first, until about need bytes are freed or none is left, and returns
// the bytes freed. The journal calls it when a write of data not yet on
// the grid finds the disk full: the cache, which only saves fetches,
// gives way. Pinned blocks stay.
func (c *Cache) MakeRoom(need int64) int64 {
	return c.disk.makeRoom(need)
}

// Forget drops blocks nothing names any more (garbage collection deleted
// them with their segment) from memory and disk, pinned or not, so the
// disk tier keeps room for live blocks. A read or fetch running meanwhile
// may cache one again; that costs room, never correctness (a block's
// bytes are its id's).
func (c *Cache) Forget(ids []remote.BlockID) {
	for _, id := range ids {
		c.mem.remove(blockKey(id))
		c.disk.remove(id)
	}
}

// Clear drops every unpinned block from memory and disk, and the disk
// writes still queued. Reads and fetches running meanwhile may cache their
// block again.
func (c *Cache) Clear() error {
	c.mem.clear(c.disk.isPinned)
	c.idx.clear()
	return c.disk.clear()
}

// ShedMem evicts at least n bytes from the memory tier (or all it holds),
// oldest and least used first, and returns the bytes evicted: for a
// process whose other memory grew past its budget (fs.LimitMemory). The
// tier's budget stays, so later reads fill it again.
func (c *Cache) ShedMem(n int64) int64 { return c.mem.shed(n) }

// Has reports whether block id is cached now, in memory or on disk. It is
// a map lookup under the tiers' locks: no I/O, no fetch, and it does not
// change which blocks are least recently used. The answer can be stale as
// soon as it is returned (a read may bring the block in; eviction or Clear
// may drop it).
func (c *Cache) Has(id remote.BlockID) bool {
	return c.mem.contains(blockKey(id)) || c.disk.has(id)
}

// Stats returns a snapshot of sizes and counters.
func (c *Cache) Stats() Stats {
	var s Stats
	s.MemBytes, s.MemBlocks = c.mem.stats()
	s.DiskBytes, s.DiskBlocks = c.disk.stats()
	s.Hits = c.hits.Load()
	s.DiskHits = c.diskHits.Load()
	s.Misses = c.misses.Load()
	s.Fetches = c.fetches.Load()
	s.FetchErrors = c.fetchErrors.Load()
	s.FrameFetches = c.frameFetches.Load()
	s.IndexFetches = c.indexFetches.Load()
	s.Evictions = c.evictions.Load()
	s.PrefetchIssued = c.prefetchIssued.Load()
	s.PrefetchDropped = c.prefetchDropped.Load()
	s.DiskErrors = c.diskErrors.Load()
	return s
}

// Close cancels running fetches and read-ahead, writes the queued blocks to
// disk and stops. ReadBlock fails with ErrClosed afterwards. Close is
// idempotent.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.isClosed.Store(true)
	if c.prefetchQ != nil {
		close(c.prefetchQ)
	}
	c.mu.Unlock()
	c.stop()
	c.workers.Wait()
	c.flying.Wait()
	c.disk.close()
	return nil
}
