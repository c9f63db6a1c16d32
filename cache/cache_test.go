package cache

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

func TestNewNeedsFetcher(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a Fetcher succeeded")
	}
}

func TestHitMissAccounting(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(1, 1)), 3, 100, 1000)
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})

	mustRead(t, c, g, refs[0]) // miss
	mustRead(t, c, g, refs[0]) // hit
	mustRead(t, c, g, refs[1]) // miss
	mustRead(t, c, g, refs[0]) // hit
	mustRead(t, c, g, refs[1]) // hit
	s := c.Stats()
	if s.Hits != 3 || s.Misses != 2 || s.Fetches != 2 || s.DiskHits != 0 || s.FetchErrors != 0 {
		t.Fatalf("stats %+v, want 3 hits, 2 misses, 2 fetches", s)
	}
	if s.MemBlocks != 2 || s.MemBytes != int64(len(g.want(refs[0].ID))+len(g.want(refs[1].ID))) {
		t.Fatalf("memory tier %d blocks / %d bytes, want the 2 blocks read", s.MemBlocks, s.MemBytes)
	}
	if got := g.fetches.Load(); got != 2 {
		t.Fatalf("fetcher saw %d fetches, want 2", got)
	}
	c.disk.waitIdle()
	if s := c.Stats(); s.DiskBlocks != 2 || s.DiskBytes != refs[0].Length+refs[1].Length {
		t.Fatalf("disk tier %d blocks / %d bytes, want the 2 sealed blocks", s.DiskBlocks, s.DiskBytes)
	}
}

// ShedMem evicts the oldest blocks first, at least the bytes asked for,
// never more blocks than that takes; the budget stays, so the next read
// of a shed block fills the tier again (from the disk tier).
func TestShedMem(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(4, 4)), 4, 1000, 1000)
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	if got := c.ShedMem(1); got != 1000 {
		t.Fatalf("ShedMem(1) evicted %d bytes, want one block of 1000", got)
	}
	if c.mem.contains(blockKey(refs[0].ID)) || !c.mem.contains(blockKey(refs[1].ID)) {
		t.Fatal("ShedMem(1) did not evict the oldest block alone")
	}
	if got := c.ShedMem(1 << 30); got != 3000 {
		t.Fatalf("ShedMem(1 GiB) evicted %d bytes, want the 3000 left", got)
	}
	if s := c.Stats(); s.MemBytes != 0 || s.MemBlocks != 0 {
		t.Fatalf("memory tier after shedding all: %+v", s)
	}
	c.disk.waitIdle()
	mustRead(t, c, g, refs[2])
	if s := c.Stats(); s.MemBlocks != 1 || s.DiskHits != 1 {
		t.Fatalf("read after shedding: %+v, want it from disk and kept in memory", s)
	}
}

// With a memory tier too small for any block, the second read comes from
// the disk tier.
func TestDiskHitWhenMemoryTooSmall(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(2, 2)), 4, 500, 1000)
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, MemBytes: 100, ReadAhead: -1})
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	c.disk.waitIdle()
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	s := c.Stats()
	if s.Misses != 4 || s.DiskHits != 4 || s.Hits != 0 || g.fetches.Load() != 4 {
		t.Fatalf("stats %+v (fetches %d), want 4 misses then 4 disk hits", s, g.fetches.Load())
	}
	if s.MemBytes != 0 {
		t.Fatalf("memory tier holds %d bytes over a 100-byte budget with blocks >= 500", s.MemBytes)
	}
}

// Random reads of random-size blocks never take either tier over budget,
// and always return the right bytes.
func TestBudgetsHoldUnderRandomWorkload(t *testing.T) {
	const memBudget, diskBudget = 20_000, 30_000
	g := newFakeGrid()
	rng := rand.New(rand.NewPCG(3, 3))
	refs := g.addRandom(rng, 60, 100, 4000)
	dir := t.TempDir()
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: memBudget, DiskBytes: diskBudget, ReadAhead: -1})
	for i := range 2000 {
		// Skewed: a few hot blocks, many cold ones.
		var r remote.BlockRef
		if rng.IntN(2) == 0 {
			r = refs[rng.IntN(5)]
		} else {
			r = refs[rng.IntN(len(refs))]
		}
		mustRead(t, c, g, r)
		if i%50 == 0 {
			c.disk.waitIdle()
		}
		s := c.Stats()
		if s.MemBytes > memBudget || s.DiskBytes > diskBudget {
			t.Fatalf("step %d: mem %d / %d, disk %d / %d: over budget", i, s.MemBytes, memBudget, s.DiskBytes, diskBudget)
		}
	}
	c.disk.waitIdle()
	s := c.Stats()
	if s.Evictions == 0 || s.Hits == 0 || s.DiskHits == 0 || s.Misses == 0 {
		t.Fatalf("stats %+v: the workload should hit, miss, hit disk and evict", s)
	}
	// What is really on disk agrees with the index and the budget.
	files, total := diskUsage(t, dir)
	if files != int(s.DiskBlocks) || total != s.DiskBytes || total > diskBudget {
		t.Fatalf("on disk: %d files, %d bytes; index: %d blocks, %d bytes; budget %d", files, total, s.DiskBlocks, s.DiskBytes, diskBudget)
	}
	// Memory accounting agrees with the LRU's contents.
	var sum int64
	c.mem.mu.Lock()
	for _, v := range append(c.mem.probation.Values(), c.mem.protected.Values()...) {
		sum += int64(len(v.p.b))
	}
	c.mem.mu.Unlock()
	if sum != s.MemBytes {
		t.Fatalf("memory tier counts %d bytes, holds %d", s.MemBytes, sum)
	}
}

func TestSingleFlight(t *testing.T) {
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(4, 4)), 1, 1000, 1000)[0]
	g.gate = make(chan struct{})
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})

	const readers = 100
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	got := make([][]byte, readers)
	for i := range readers {
		wg.Go(func() {
			b, err := c.ReadBlock(context.Background(), ref)
			got[i] = b
			errs <- err
		})
	}
	eventually(t, "100 readers waiting", func() bool { return c.waiters(ref.ID) == readers })
	close(g.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
	}
	for i, b := range got {
		if !bytes.Equal(b, g.want(ref.ID)) {
			t.Fatalf("reader %d got wrong bytes", i)
		}
	}
	if n := g.fetches.Load(); n != 1 {
		t.Fatalf("%d readers caused %d fetches, want 1", readers, n)
	}
	if s := c.Stats(); s.Fetches != 1 || s.Misses != readers {
		t.Fatalf("stats %+v, want 1 fetch, %d misses", s, readers)
	}
}

func TestCancelledReaderReturnsAndOthersGetBlock(t *testing.T) {
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(5, 5)), 1, 1000, 1000)[0]
	g.gate = make(chan struct{})
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})

	other := make(chan error, 1)
	go func() {
		b, err := c.ReadBlock(context.Background(), ref)
		if err == nil && !bytes.Equal(b, g.want(ref.ID)) {
			err = errors.New("wrong bytes")
		}
		other <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	mine := make(chan error, 1)
	go func() {
		_, err := c.ReadBlock(ctx, ref)
		mine <- err
	}()
	eventually(t, "2 readers waiting", func() bool { return c.waiters(ref.ID) == 2 })
	cancel()
	select {
	case err := <-mine:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled reader got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled reader still blocked while the fetch is held")
	}
	select {
	case err := <-other:
		t.Fatalf("other reader returned (%v) before the fetch was released", err)
	default:
	}
	close(g.gate)
	if err := <-other; err != nil {
		t.Fatalf("other reader: %v", err)
	}
	if g.ctxEnded.Load() != 0 || g.fetches.Load() != 1 {
		t.Fatalf("fetch was cancelled (%d) or repeated (%d fetches)", g.ctxEnded.Load(), g.fetches.Load())
	}
}

// When the last waiting reader leaves, the fetch is cancelled, and the next
// reader starts a fresh one.
func TestLastReaderLeavingCancelsFetch(t *testing.T) {
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(6, 6)), 1, 1000, 1000)[0]
	g.gate = make(chan struct{})
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := c.ReadBlock(ctx, ref)
		res <- err
	}()
	select {
	case err := <-res:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReadBlock = %v, want DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		close(g.gate)
		t.Fatal("ReadBlock ignored its ctx deadline")
	}
	eventually(t, "the abandoned fetch to be cancelled", func() bool { return g.ctxEnded.Load() == 1 })
	close(g.gate)
	mustRead(t, c, g, ref)
	if n := g.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (abandoned one, fresh one)", n)
	}
}

func TestCancelledContextBeforeRead(t *testing.T) {
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(7, 7)), 1, 10, 10)[0]
	c := newTestCache(t, Options{Fetcher: g, ReadAhead: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.ReadBlock(ctx, ref); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadBlock = %v, want Canceled", err)
	}
	if g.fetches.Load() != 0 {
		t.Fatal("a read with a dead ctx fetched")
	}
}

func TestFetchErrorsAreReturnedNotCached(t *testing.T) {
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(8, 8)), 1, 100, 100)[0]
	g.failN.Store(1)
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})
	_, err := c.ReadBlock(context.Background(), ref)
	if !errors.Is(err, errFake) {
		t.Fatalf("ReadBlock = %v, want the fetcher's error", err)
	}
	mustRead(t, c, g, ref)
	s := c.Stats()
	if s.Fetches != 2 || s.FetchErrors != 1 || g.fetches.Load() != 2 {
		t.Fatalf("stats %+v, want 2 fetches, 1 error", s)
	}

	// The grid's sentinels survive the wrapping.
	missing := remote.BlockRef{ID: remote.BlockID{1, 2, 3}}
	if _, err := c.ReadBlock(context.Background(), missing); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("ReadBlock of a missing block = %v, want remote.ErrNotFound", err)
	}
}

// Readers sharing a failed fetch all get the error; the next read retries.
func TestSharedFetchErrorReachesAllWaiters(t *testing.T) {
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(9, 9)), 1, 100, 100)[0]
	g.gate = make(chan struct{})
	g.failN.Store(1)
	c := newTestCache(t, Options{Fetcher: g, ReadAhead: -1})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := c.ReadBlock(context.Background(), ref)
			errs <- err
		})
	}
	eventually(t, "10 readers waiting", func() bool { return c.waiters(ref.ID) == 10 })
	close(g.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, errFake) {
			t.Fatalf("reader got %v, want the fetch error", err)
		}
	}
	mustRead(t, c, g, ref)
	if g.fetches.Load() != 2 {
		t.Fatalf("%d fetches, want 2", g.fetches.Load())
	}
}

func TestClosedCache(t *testing.T) {
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(10, 10)), 1, 100, 100)[0]
	c, err := New(Options{Dir: t.TempDir(), Fetcher: g})
	if err != nil {
		t.Fatal(err)
	}
	mustRead(t, c, g, ref)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.ReadBlock(context.Background(), ref); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadBlock after Close = %v, want ErrClosed", err)
	}
	c.Prefetch(context.Background(), []remote.BlockRef{ref}) // must not panic
}

// Close cancels a fetch that would otherwise hang, and the reader gets an error.
func TestCloseCancelsHungFetch(t *testing.T) {
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(11, 11)), 1, 100, 100)[0]
	g.gate = make(chan struct{}) // never opened
	c, err := New(Options{Fetcher: g})
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := c.ReadBlock(context.Background(), ref)
		res <- err
	}()
	eventually(t, "reader waiting", func() bool { return c.waiters(ref.ID) == 1 })
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("reader of a hung fetch succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the hung fetch")
	}
	<-closed
}

func TestPrefetchMakesReadsHits(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(12, 12)), 8, 500, 1000)
	g.delay = time.Millisecond
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: 3})

	c.Prefetch(context.Background(), refs)
	c.Prefetch(context.Background(), refs) // duplicates are skipped
	eventually(t, "read-ahead to finish", c.idle)
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	s := c.Stats()
	if s.Hits != uint64(len(refs)) || s.Misses != 0 {
		t.Fatalf("stats %+v: every read after read-ahead should be a memory hit", s)
	}
	if n := g.fetches.Load(); n != int64(len(refs)) {
		t.Fatalf("%d fetches for %d blocks", n, len(refs))
	}
	if s.PrefetchIssued < uint64(len(refs)) || s.PrefetchIssued > 2*uint64(len(refs)) {
		t.Fatalf("PrefetchIssued %d", s.PrefetchIssued)
	}
	// Blocks in memory are not queued again.
	before := c.Stats().PrefetchIssued
	c.Prefetch(context.Background(), refs)
	if after := c.Stats().PrefetchIssued; after != before {
		t.Fatalf("prefetch of cached blocks queued %d", after-before)
	}
}

// Prefetch of far more blocks than the queue holds returns at once and
// drops the excess; blocked fetches stay bounded by ReadAhead.
func TestPrefetchNeverBlocks(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(13, 13)), 500, 10, 20)
	g.gate = make(chan struct{})
	c := newTestCache(t, Options{Fetcher: g, ReadAhead: 2})
	start := time.Now()
	c.Prefetch(context.Background(), refs)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Prefetch took %v with every fetch blocked", d)
	}
	s := c.Stats()
	if s.PrefetchDropped == 0 || s.PrefetchIssued > prefetchQueue+2 || s.PrefetchIssued+s.PrefetchDropped != uint64(len(refs)) {
		t.Fatalf("issued %d, dropped %d of %d", s.PrefetchIssued, s.PrefetchDropped, len(refs))
	}
	eventually(t, "2 workers fetching", func() bool { return g.fetches.Load() == 2 })
	if n := g.fetches.Load(); n > 2 {
		t.Fatalf("%d fetches running with ReadAhead 2", n)
	}
	// A reader of a block being read ahead joins that fetch.
	res := make(chan error, 1)
	go func() {
		b, err := c.ReadBlock(context.Background(), refs[0])
		if err == nil && !bytes.Equal(b, g.want(refs[0].ID)) {
			err = errors.New("wrong bytes")
		}
		res <- err
	}()
	eventually(t, "reader joining the read-ahead", func() bool { return c.waiters(refs[0].ID) == 2 })
	close(g.gate)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	eventually(t, "read-ahead to finish", c.idle)
	if n := g.fetches.Load(); n != int64(s.PrefetchIssued) {
		t.Fatalf("%d fetches for %d queued blocks", n, s.PrefetchIssued)
	}
}

func TestPrefetchWithDeadContextDoesNothing(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(14, 14)), 3, 10, 20)
	c := newTestCache(t, Options{Fetcher: g})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Prefetch(ctx, refs)
	if s := c.Stats(); s.PrefetchIssued != 0 {
		t.Fatalf("issued %d with a dead ctx", s.PrefetchIssued)
	}
}

// Many goroutines reading, prefetching, pinning and clearing at once: run
// with -race. Every read returns the right bytes.
func TestConcurrentMixedWorkload(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(15, 15)), 40, 100, 3000)
	g.delay = 100 * time.Microsecond
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, MemBytes: 15_000, DiskBytes: 25_000, ReadAhead: 2})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for range 300 {
				r := refs[rng.IntN(len(refs))]
				switch rng.IntN(20) {
				case 0:
					c.Prefetch(context.Background(), refs[rng.IntN(len(refs)):])
				case 1:
					c.Pin(r.ID)
				case 2:
					c.Unpin(r.ID)
				case 3:
					if err := c.Clear(); err != nil {
						t.Errorf("Clear: %v", err)
					}
				case 4:
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(200))*time.Microsecond)
					b, err := c.ReadBlock(ctx, r)
					cancel()
					if err == nil && !bytes.Equal(b, g.want(r.ID)) {
						t.Errorf("wrong bytes for %s", r.ID)
					}
				default:
					b, err := c.ReadBlock(context.Background(), r)
					if err != nil || !bytes.Equal(b, g.want(r.ID)) {
						t.Errorf("ReadBlock %s: %v (or wrong bytes)", r.ID, err)
					}
				}
				if s := c.Stats(); s.MemBytes > 15_000 {
					t.Errorf("memory tier over budget: %d", s.MemBytes)
				}
			}
		})
	}
	wg.Wait()
}

// Has sees a block in memory and on disk, not before it is read, and not
// after Clear; it fetches nothing and counts no hit or miss.
func TestHas(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(9, 9)), 2, 500, 1000)
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})
	if c.Has(refs[0].ID) || c.Has(refs[1].ID) {
		t.Fatal("Has before any read")
	}
	mustRead(t, c, g, refs[0])
	if !c.Has(refs[0].ID) || c.Has(refs[1].ID) {
		t.Fatalf("after reading block 0: Has = %v, %v; want true, false", c.Has(refs[0].ID), c.Has(refs[1].ID))
	}
	c.disk.waitIdle()
	c.mem.clear(func(remote.BlockID) bool { return false }) // disk tier only now
	if !c.Has(refs[0].ID) {
		t.Fatal("Has misses a block held only on disk")
	}
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	if c.Has(refs[0].ID) {
		t.Fatal("Has after Clear")
	}
	if s := c.Stats(); s.Hits != 0 || s.DiskHits != 0 || s.Misses != 1 || g.fetches.Load() != 1 {
		t.Fatalf("Has changed the counters: %+v, %d fetches", s, g.fetches.Load())
	}
}
