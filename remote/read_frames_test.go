package remote

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// countingStore counts the payload bytes a Store's Gets return.
type countingStore struct {
	Store
	bytes atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, name string, off int64, p []byte) error {
	c.bytes.Add(int64(len(p)))
	return c.Store.Get(ctx, name, off, p)
}

// TestFetchFramesRanged: a frame read fetches the frame's bytes and no
// more (after the frame index), from the healthy shard; with the shard's
// node down or its bytes flipped, it reconstructs and still returns the
// right plaintext.
func TestFetchFramesRanged(t *testing.T) {
	var counters []*countingStore
	tg := newTestGrid(t, 6, 4, 2, func(o *GridOptions) {
		noHedge(o)
		for i := range o.Members {
			c := &countingStore{Store: o.Members[i].Store}
			counters = append(counters, c)
			o.Members[i].Store = c
		}
	})
	got := func() int64 {
		var n int64
		for _, c := range counters {
			n += c.bytes.Load()
		}
		return n
	}
	r := rand.New(rand.NewPCG(21, 22))
	// Three blocks of 4 MiB of random bytes (incompressible, so every
	// frame is FrameSize plus its overhead): a 12 MiB segment.
	var data []byte
	var refs []BlockRef
	var plains [][]byte
	for i := range 3 {
		p := mixedBlock(r, 0, 4<<20-i)
		id := tg.sealer.BlockID(p)
		off := len(data)
		data = tg.sealer.Seal(data, id, p)
		refs = append(refs, BlockRef{ID: id, Offset: int64(off), Length: int64(len(data) - off)})
		plains = append(plains, p)
	}
	seg, err := tg.WriteSegment(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range refs {
		refs[i].Seg = seg
		ref := refs[i]
		before := got()
		f, err := tg.FetchFrameIndex(ctx, ref)
		if err != nil {
			t.Fatalf("block %d: frame index: %v", i, err)
		}
		if f.Count() != 4<<20/FrameSize || !f.Framed() {
			t.Fatalf("block %d: %d frames", i, f.Count())
		}
		headCost := got() - before
		// The head is read verified: the shard header plus a chunk.
		if headCost > 64<<10 {
			t.Fatalf("block %d: the frame index cost %d bytes", i, headCost)
		}
		for _, fi := range []int{0, 17, 63} {
			before := got()
			plain, err := tg.FetchFrames(ctx, ref, f, fi, fi)
			if err != nil {
				t.Fatalf("block %d frame %d: %v", i, fi, err)
			}
			po, pn := f.Plain(fi)
			if !bytes.Equal(plain, plains[i][po:po+pn]) {
				t.Fatalf("block %d frame %d: wrong plaintext", i, fi)
			}
			_, sn := f.Sealed(fi, fi)
			if c := got() - before; c != sn {
				t.Fatalf("block %d frame %d: fetched %d bytes for a %d-byte frame", i, fi, c, sn)
			}
		}
	}
	if st := tg.Stats(); st.Reconstructs != 0 || st.FallbackReads != 0 {
		t.Fatalf("healthy grid, stats %+v", st)
	}
	// Flip a byte in the middle of block 1's frame 5 on its data shard: the
	// frame fails to open, the fallback reconstructs it.
	ref := refs[1]
	f, err := tg.FetchFrameIndex(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	fo, fn := f.Sealed(5, 5)
	x := ref.Offset + fo + fn/2
	shard := int(x / seg.ShardSize)
	tg.store(seg.Nodes[shard]).Mutate(ShardName(seg.ID, shard), func(b []byte) { b[len(b)-int(seg.ShardSize)+int(x%seg.ShardSize)] ^= 0x40 })
	plain, err := tg.FetchFrames(ctx, ref, f, 5, 6)
	po, _ := f.Plain(5)
	lo, ln := f.Plain(6)
	if err != nil || !bytes.Equal(plain, plains[1][po:lo+ln]) {
		t.Fatalf("frames 5..6 with a flipped byte: %v", err)
	}
	if tg.Stats().FallbackReads == 0 {
		t.Fatal("a flipped byte in a frame did not start the fallback")
	}
	// That shard's node down: the frame index and frames still read.
	tg.store(seg.Nodes[shard]).SetMode(MemDown)
	if f2, err := tg.FetchFrameIndex(ctx, ref); err != nil || f2.Count() != f.Count() {
		t.Fatalf("frame index with a node down: %v", err)
	}
	if plain, err := tg.FetchFrames(ctx, ref, f, 5, 5); err != nil || !bytes.Equal(plain, plains[1][po:po+FrameSize]) {
		t.Fatalf("frame with its node down: %v", err)
	}
	// A frame index from another block gives ranges that do not open.
	other, _ := tg.FetchFrameIndex(ctx, refs[0])
	tg.store(seg.Nodes[shard]).SetMode(MemUp)
	if _, err := tg.FetchFrames(ctx, refs[2], other, 3, 3); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("frames of block 2 with block 0's index: %v", err)
	}
}
