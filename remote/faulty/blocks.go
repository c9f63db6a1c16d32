package faulty

import (
	"context"
	"math/rand/v2"

	"github.com/meshdrive/meshdrive/remote"
)

// BlockReader is the reader of plaintext blocks that sits between a
// drive's block cache and its journal (journal.BlockReader).
type BlockReader interface {
	ReadBlock(ctx context.Context, ref remote.BlockRef) ([]byte, error)
	ReadAt(ctx context.Context, ref remote.BlockRef, p []byte, off int64) (int, error)
	Prefetch(ctx context.Context, refs []remote.BlockRef)
}

// CorruptBlocks wraps r so that a fraction frac of the blocks it returns
// have one byte flipped: after the cache and the grid verified them, so a
// fault suite can prove that its own comparison notices (a negative
// control). The cache's slices are shared and read-only, so a flipped
// block is a fresh copy owned by the caller.
func CorruptBlocks(r BlockReader, frac float64) BlockReader {
	return &corruptBlocks{r: r, frac: frac}
}

type corruptBlocks struct {
	r    BlockReader
	frac float64
}

func (c *corruptBlocks) ReadBlock(ctx context.Context, ref remote.BlockRef) ([]byte, error) {
	b, err := c.r.ReadBlock(ctx, ref)
	if err != nil || len(b) == 0 || rand.Float64() >= c.frac {
		return b, err
	}
	bad := append([]byte(nil), b...)
	bad[rand.IntN(len(bad))] ^= 0xff
	return bad, nil
}

func (c *corruptBlocks) ReadAt(ctx context.Context, ref remote.BlockRef, p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(ctx, ref, p, off)
	if err == nil && n > 0 && rand.Float64() < c.frac {
		p[rand.IntN(n)] ^= 0xff // p is the caller's own copy
	}
	return n, err
}

func (c *corruptBlocks) Prefetch(ctx context.Context, refs []remote.BlockRef) {
	c.r.Prefetch(ctx, refs)
}
