package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

func ghostKey(i int) key {
	var id remote.BlockID
	binary.LittleEndian.PutUint64(id[:], uint64(i)*0x9e3779b97f4a7c15)
	return key{id, int32(i % 7), 4096}
}

// TestGhostsFirstInFirstOut: the last ghostKeys keys added are
// remembered, older ones are not, and remove forgets a key once.
func TestGhostsFirstInFirstOut(t *testing.T) {
	var g ghosts
	if g.remove(ghostKey(1)) {
		t.Fatal("an empty ghost list remembers a key")
	}
	const extra = 1000
	for i := range ghostKeys + extra {
		g.add(ghostKey(i))
	}
	for i := range extra {
		if g.remove(ghostKey(i)) {
			t.Fatalf("key %d of %d added is still remembered, past the %d kept", i, ghostKeys+extra, ghostKeys)
		}
	}
	for _, i := range []int{extra, extra + 1, ghostKeys, ghostKeys + extra - 1} {
		if !g.remove(ghostKey(i)) {
			t.Fatalf("key %d, among the last %d added, is not remembered", i, ghostKeys)
		}
		if g.remove(ghostKey(i)) {
			t.Fatalf("key %d is remembered after remove", i)
		}
	}
	if len(g.n) != ghostKeys-4 || len(g.ring) != ghostKeys {
		t.Fatalf("%d fingerprints counted in a ring of %d, want %d in %d", len(g.n), len(g.ring), ghostKeys-4, ghostKeys)
	}
	g.purge()
	if g.remove(ghostKey(ghostKeys)) || g.n != nil {
		t.Fatal("purge kept keys")
	}
}

// TestMemGhostComesBackProtected: a block evicted from probation and put
// again soon after enters protected, so a scan of new blocks that passes
// through probation afterwards does not evict it.
func TestMemGhostComesBackProtected(t *testing.T) {
	var ev atomic.Uint64
	m := newMem(4*100, &ev, time.Now)
	b := make([]byte, 100)
	m.put(ghostKey(0), newBuf(b, false))
	for i := 1; i <= 4; i++ { // evicts 0 from probation
		m.put(ghostKey(i), newBuf(b, false))
	}
	if m.contains(ghostKey(0)) {
		t.Fatal("block 0 was not evicted by 4 newer ones in a tier of 4")
	}
	m.put(ghostKey(0), newBuf(b, false)) // a ghost: protected
	for i := 100; i < 110; i++ {
		m.put(ghostKey(i), newBuf(b, false))
	}
	if !m.contains(ghostKey(0)) {
		t.Fatal("block 0, put again soon after its eviction, did not survive a scan of 10 new blocks")
	}
}

// TestAcquiredBlocksReusedNotClobbered reads blocks from the disk tier
// through a memory tier of two blocks, from several goroutines, so that
// blocks are evicted while readers hold them and their buffers are
// reused for others: every reader's bytes must stay those of its block
// until it releases them, and the pool must be used.
func TestAcquiredBlocksReusedNotClobbered(t *testing.T) {
	const size = minPooledPlain
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(5, 6)), 12, size, size)
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, MemBytes: 2 * size, DiskBytes: 64 << 20, ReadAhead: -1})
	ctx := context.Background()
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	c.disk.waitIdle()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range 40 {
				r := refs[rng.IntN(len(refs))]
				b, release, err := c.AcquireBlock(ctx, r)
				if err != nil {
					errs <- err
					return
				}
				want := g.plain[r.ID]
				if !bytes.Equal(b, want) {
					errs <- fmt.Errorf("block %s read wrong", r.ID)
					release.Release()
					return
				}
				runtime.Gosched() // let the others evict and reuse meanwhile
				if !bytes.Equal(b, want) {
					errs <- fmt.Errorf("block %s changed while held: its buffer was reused before release", r.ID)
					release.Release()
					return
				}
				release.Release()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c.reused.Load() == 0 {
		t.Fatal("no plaintext buffer was reused: blocks read from disk each took a new one")
	}
	// A block handed out by ReadBlock is never reused: it must still hold
	// its bytes after many other blocks went through memory.
	held, err := c.ReadBlock(ctx, refs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs[1:] {
		mustRead(t, c, g, r)
		mustRead(t, c, g, r)
	}
	if !bytes.Equal(held, g.plain[refs[0].ID]) {
		t.Fatal("a block returned by ReadBlock changed: its buffer was reused")
	}
}
