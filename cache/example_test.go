package cache_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"

	"github.com/meshdrive/meshdrive/cache"
	"github.com/meshdrive/meshdrive/remote"
)

// toyGrid stands in for *remote.Grid: its "sealed" form is the plaintext
// followed by a SHA-256 of it.
type toyGrid struct{ blocks map[remote.BlockID][]byte }

func (g toyGrid) FetchBlock(ctx context.Context, ref remote.BlockRef) ([]byte, []byte, error) {
	p, ok := g.blocks[ref.ID]
	if !ok {
		return nil, nil, remote.ErrNotFound
	}
	sum := sha256.Sum256(p)
	return append([]byte(nil), p...), append(append([]byte(nil), p...), sum[:]...), nil
}

func (g toyGrid) OpenBlock(dst []byte, ref remote.BlockRef, sealed []byte) ([]byte, error) {
	if len(sealed) < sha256.Size {
		return nil, remote.ErrCorrupt
	}
	p := sealed[:len(sealed)-sha256.Size]
	if sum := sha256.Sum256(p); string(sum[:]) != string(sealed[len(p):]) {
		return nil, remote.ErrCorrupt
	}
	return append(dst, p...), nil
}

// The toy's blocks have no frames: ReadAt on it fails. frames_test.go reads
// frames from a real grid.
func (g toyGrid) FetchFrameIndex(ctx context.Context, ref remote.BlockRef) (*remote.Frames, error) {
	return nil, remote.ErrNotFound
}

func (g toyGrid) FetchFrames(ctx context.Context, ref remote.BlockRef, f *remote.Frames, first, last int) ([]byte, error) {
	return nil, remote.ErrNotFound
}

func (g toyGrid) OpenFrames(ref remote.BlockRef, f *remote.Frames, first, last int, sealed []byte) ([]byte, error) {
	return nil, remote.ErrCorrupt
}

func Example() {
	dir, err := os.MkdirTemp("", "cache-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	plain := []byte("hello, grid")
	ref := remote.BlockRef{ID: sha256.Sum256(plain), Length: int64(len(plain) + sha256.Size)}
	grid := toyGrid{blocks: map[remote.BlockID][]byte{ref.ID: plain}}

	c, err := cache.New(cache.Options{Dir: dir, MemBytes: 1 << 20, DiskBytes: 16 << 20, Fetcher: grid})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	b, _ := c.ReadBlock(ctx, ref) // miss: fetched from the grid
	b, _ = c.ReadBlock(ctx, ref)  // hit: from memory; b is shared, read-only
	fmt.Printf("%s\n", b)
	s := c.Stats()
	fmt.Println("hits", s.Hits, "misses", s.Misses, "fetches", s.Fetches)
	c.Close() // writes the queued sealed block to disk

	// A new cache over the same directory finds the block on disk.
	c, _ = cache.New(cache.Options{Dir: dir, Fetcher: grid})
	defer c.Close()
	b, _ = c.ReadBlock(ctx, ref)
	fmt.Printf("%s, disk hits %d, fetches %d\n", b, c.Stats().DiskHits, c.Stats().Fetches)
	// Output:
	// hello, grid
	// hits 1 misses 1 fetches 1
	// hello, grid, disk hits 1, fetches 0
}
