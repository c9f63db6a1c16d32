package cache

import (
	"context"
	"math/rand/v2"
	"testing"
)

const benchBlock = 1 << 20

func BenchmarkReadBlockMemHit(b *testing.B) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(1, 2)), 16, benchBlock, benchBlock)
	c := newTestCache(b, Options{Fetcher: g, MemBytes: 64 << 20, ReadAhead: -1})
	for _, r := range refs {
		mustRead(b, c, g, r)
	}
	ctx := context.Background()
	b.SetBytes(benchBlock)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := c.ReadBlock(ctx, refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if c.Stats().Misses != uint64(len(refs)) {
		b.Fatal("benchmark reads missed")
	}
}

// Disk hit: read the file, authenticate and open it (the fake's XOR and
// SHA-256 stand in for AEAD), no memory tier.
func BenchmarkReadBlockDiskHit(b *testing.B) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(3, 4)), 16, benchBlock, benchBlock)
	c := newTestCache(b, Options{Dir: b.TempDir(), Fetcher: g, MemBytes: -1, DiskBytes: 64 << 20, ReadAhead: -1})
	for _, r := range refs {
		mustRead(b, c, g, r)
	}
	c.disk.waitIdle()
	ctx := context.Background()
	b.SetBytes(benchBlock)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := c.ReadBlock(ctx, refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if c.Stats().Fetches != uint64(len(refs)) {
		b.Fatal("benchmark reads went to the grid")
	}
}
