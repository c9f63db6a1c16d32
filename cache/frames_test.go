package cache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
)

// gridBytes counts the bytes a Store's Gets return.
type gridBytes struct {
	remote.Store
	n *atomic.Int64
}

func (g gridBytes) Get(ctx context.Context, name string, off int64, p []byte) error {
	g.n.Add(int64(len(p)))
	return g.Store.Get(ctx, name, off, p)
}

// realGrid is a remote.Grid over six dirstores (k=4, m=2) holding one
// segment of the given blocks, sealed for real (framed). It returns the
// refs and a counter of the bytes read from the stores.
func realGrid(t *testing.T, plains [][]byte) (*remote.Grid, []remote.BlockRef, *atomic.Int64) {
	t.Helper()
	key := make([]byte, 32)
	key[0] = 7
	sealer, err := remote.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	read := new(atomic.Int64)
	var members []remote.Member
	for i := range 6 {
		st, err := dirstore.New(t.TempDir(), dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, remote.Member{Name: fmt.Sprintf("node-%d", i), Store: gridBytes{st, read}})
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer, HedgeAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	var refs []remote.BlockRef
	for _, p := range plains {
		id := sealer.BlockID(p)
		off := len(data)
		data = sealer.Seal(data, id, p)
		refs = append(refs, remote.BlockRef{ID: id, Offset: int64(off), Length: int64(len(data) - off)})
	}
	seg, err := g.WriteSegment(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range refs {
		refs[i].Seg = seg
	}
	return g, refs, read
}

func randomBlock(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestReadAtCostsFrames: a random 4 KiB read costs one frame (plus, once
// per block, its frame index) from the grid; after a remount, one frame
// from the disk tier and nothing from the grid; a damaged cache file is
// caught and the frame read from the grid.
func TestReadAtCostsFrames(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	text := bytes.Repeat([]byte("frames of a sealed block, each its own AEAD unit. "), 4<<20/51)
	plains := [][]byte{randomBlock(r, 4<<20), text, randomBlock(r, 1<<20+777)}
	g, refs, gridRead := realGrid(t, plains)
	dir := t.TempDir()
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: 8 << 20, ReadAhead: -1})
	ctx := context.Background()
	check := func(c *Cache, b int, off int64, n int) {
		t.Helper()
		p := make([]byte, n)
		got, err := c.ReadAt(ctx, refs[b], p, off)
		want := plains[b][min(off, int64(len(plains[b]))):min(off+int64(n), int64(len(plains[b])))]
		if err != nil || got != len(want) || !bytes.Equal(p[:got], want) {
			t.Fatalf("ReadAt block %d [%d,+%d): %d bytes, %v (want %d)", b, off, n, got, err, len(want))
		}
	}
	// Cold: the frame index once, then one frame per read.
	before := gridRead.Load()
	check(c, 0, 1<<20+4096, 4096)
	if s := c.Stats(); s.IndexFetches != 1 || s.FrameFetches != 1 || s.Fetches != 0 || s.Misses != 1 {
		t.Fatalf("cold 4 KiB read: %+v", s)
	}
	first := gridRead.Load() - before
	before = gridRead.Load()
	check(c, 0, 3<<20+100, 4096)
	if cost := gridRead.Load() - before; cost != remote.FrameSize+28 {
		t.Fatalf("a 4 KiB read of a known block read %d bytes from the grid, want one frame (%d)", cost, remote.FrameSize+28)
	}
	if first > 2*(remote.FrameSize+28)+64<<10 {
		t.Fatalf("the first read of a block read %d bytes from the grid", first)
	}
	// The same frame again: memory.
	check(c, 0, 3<<20+8192, 100)
	if s := c.Stats(); s.FrameFetches != 2 || s.Hits != 1 {
		t.Fatalf("warm read: %+v", s)
	}
	// Across a frame boundary, past the block's end, a compressed block.
	check(c, 0, remote.FrameSize-10, 4096)
	check(c, 2, int64(len(plains[2]))-100, 4096)
	check(c, 2, int64(len(plains[2]))+5, 10)
	check(c, 1, 2<<20+3, 4096)
	if s := c.Stats(); s.Fetches != 0 {
		t.Fatalf("frame reads fetched whole blocks: %+v", s)
	}

	// Whole blocks (sequential reads) still come whole, and go to disk.
	for b := range refs {
		if got, err := c.ReadBlock(ctx, refs[b]); err != nil || !bytes.Equal(got, plains[b]) {
			t.Fatalf("ReadBlock %d: %v", b, err)
		}
	}
	c.disk.waitIdle()
	c.Close()

	// Remount: random reads cost a frame of the disk tier, nothing from the grid.
	c2 := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: 8 << 20, ReadAhead: -1})
	before = gridRead.Load()
	for i := range 50 {
		b := i % len(refs)
		check(c2, b, r.Int64N(int64(len(plains[b]))), 4096)
	}
	if cost := gridRead.Load() - before; cost != 0 {
		t.Fatalf("reads after a remount read %d bytes from the grid", cost)
	}
	if s := c2.Stats(); s.DiskHits == 0 || s.FrameFetches != 0 || s.IndexFetches != 0 || s.Fetches != 0 {
		t.Fatalf("after remount: %+v", s)
	}

	// A flipped byte in a cached frame: detected, the file deleted, the
	// frame read from the grid.
	c2.Close()
	path := blockPath(dir, refs[0].ID)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x10
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	c3 := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: 8 << 20, ReadAhead: -1})
	check(c3, 0, int64(len(raw)/2)-4096, 8192)
	if s := c3.Stats(); s.DiskErrors != 1 || s.FrameFetches == 0 {
		t.Fatalf("corrupt cache file: %+v", s)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("corrupt cache file kept: %v", err)
	}
	// Wiped disk tier: a read costs the index once, then one frame.
	if err := c3.Clear(); err != nil {
		t.Fatal(err)
	}
	before = gridRead.Load()
	check(c3, 2, 5000, 4096)
	check(c3, 2, 900_000, 4096)
	if s := c3.Stats(); s.FrameFetches < 3 || s.IndexFetches != 1 {
		t.Fatalf("wiped: %+v", s)
	}
}

// TestReadAtOneLoadPerFrame: readers missing one frame at once share one
// grid read.
func TestReadAtOneLoadPerFrame(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	plain := randomBlock(r, 2<<20)
	g, refs, _ := realGrid(t, [][]byte{plain})
	c := newTestCache(t, Options{Fetcher: g, ReadAhead: -1})
	ctx := context.Background()
	if _, err := c.ReadAt(ctx, refs[0], make([]byte, 1), 0); err != nil { // learn the index
		t.Fatal(err)
	}
	done := make(chan error)
	for i := range 8 {
		go func() {
			p := make([]byte, 4096)
			off := int64(5*remote.FrameSize + i*100)
			_, err := c.ReadAt(ctx, refs[0], p, off)
			if err == nil && !bytes.Equal(p, plain[off:off+4096]) {
				err = fmt.Errorf("reader %d: wrong bytes", i)
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if s := c.Stats(); s.FrameFetches != 2 {
		t.Fatalf("8 readers of one frame: %d frame fetches, want 2 (frame 0, then frame 5 once)", s.FrameFetches)
	}
}
