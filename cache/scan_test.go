package cache

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// The workload scaled down 1024 times in bytes (64 KiB blocks): a
// working set of a quarter of the disk tier read ten times, then a tree
// four times the tier read once. At least 90% of the working set must still
// be cached afterwards: re-reading it costs at most a tenth of its blocks
// in grid fetches. A plain LRU keeps none of it (the negative control).
func TestWorkingSetSurvivesOnePassScan(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mem, disk  int64
		wantMaxPct int
	}{
		{name: "disk tier", mem: 256 << 10, disk: 4 << 20, wantMaxPct: 10},
		{name: "memory tier", mem: 4 << 20, disk: -1, wantMaxPct: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const blockSize = 64 << 10
			g := newFakeGrid()
			rng := rand.New(rand.NewPCG(7, 7))
			budget := max(tc.mem, tc.disk)
			hot := g.addRandom(rng, int(budget/4/blockSize), blockSize, blockSize)
			scan := g.addRandom(rng, int(4*budget/blockSize), blockSize, blockSize)
			var clock fakeClock
			c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, MemBytes: tc.mem, DiskBytes: tc.disk, ReadAhead: -1, now: clock.now})
			for range 10 {
				for _, r := range hot {
					mustRead(t, c, g, r)
				}
				c.disk.waitIdle() // a write dropped from a full queue is not the policy's doing
				clock.advance(time.Second)
			}
			for i, r := range scan {
				mustRead(t, c, g, r)
				if i%16 == 0 {
					c.disk.waitIdle()
				}
			}
			c.disk.waitIdle()
			before := g.fetches.Load()
			for _, r := range hot {
				mustRead(t, c, g, r)
			}
			fetched := int(g.fetches.Load() - before)
			if fetched*100 > tc.wantMaxPct*len(hot) {
				t.Fatalf("after a one-pass scan of %d blocks, re-reading the %d-block working set fetched %d blocks from the grid (over %d%%)",
					len(scan), len(hot), fetched, tc.wantMaxPct)
			}
			t.Logf("working set %d blocks, scan %d blocks: %d grid fetches to read the working set again", len(hot), len(scan), fetched)
		})
	}
}

// Many reads of one block in a row (one pass over a file: each FUSE
// request, read-ahead) are one use: a scan made of such reads does not
// protect itself.
func TestRepeatedReadsInOnePassAreOneUse(t *testing.T) {
	g := newFakeGrid()
	rng := rand.New(rand.NewPCG(8, 8))
	refs := g.addRandom(rng, 4, 1000, 1000)
	var clock fakeClock
	c := newTestCache(t, Options{Fetcher: g, MemBytes: 100_000, DiskBytes: -1, ReadAhead: -1, now: clock.now})
	for _, r := range refs {
		for range 20 {
			mustRead(t, c, g, r)
		}
	}
	c.mem.mu.Lock()
	prot := c.mem.protected.Len()
	c.mem.mu.Unlock()
	if prot != 0 {
		t.Fatalf("%d blocks protected after reads in a row only", prot)
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.t.Add(int64(d)) }
