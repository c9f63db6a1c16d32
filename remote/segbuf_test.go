package remote

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// fillSegmentBuf appends data to b in pieces of odd lengths, by Write and
// ReadFull in turns, so pieces straddle shard boundaries.
func fillSegmentBuf(t *testing.T, b *SegmentBuf, data []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for off, i := 0, 0; off < len(data); i++ {
		n := min(1+r.IntN(9000), len(data)-off)
		if i%2 == 0 {
			if _, err := b.Write(data[off : off+n]); err != nil {
				t.Fatal(err)
			}
		} else if err := b.ReadFull(bytes.NewReader(data[off:off+n]), int64(n)); err != nil {
			t.Fatal(err)
		}
		off += n
		if b.Len() != int64(off) {
			t.Fatalf("Len %d after %d bytes", b.Len(), off)
		}
	}
}

// readWhole reads a segment back, whole, and checks it is want.
func readWhole(t *testing.T, g *Grid, seg *SegmentInfo, want []byte) {
	t.Helper()
	got := make([]byte, seg.Size)
	if err := g.ReadSegment(context.Background(), seg, 0, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("segment read back differs")
	}
}

// TestSegmentBuf: a segment packed into its shard objects is stored as
// WriteSegment stores it: every object verifies, it reads back, its parity
// rebuilds lost data shards, and writing it again (a retry) works.
func TestSegmentBuf(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, nil)
	data := make([]byte, 100_003)
	rand.NewChaCha8([32]byte{3}).Read(data)
	b, err := tg.NewSegmentBuf(int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	fillSegmentBuf(t, b, data)
	if _, err := b.Write([]byte{1}); err == nil {
		t.Fatal("a byte past the layout's size was taken")
	}
	if b.Len() != int64(len(data)) || !bytes.Equal(b.Bytes(), data) {
		t.Fatal("Bytes differs from what was written")
	}
	var segs []*SegmentInfo
	for range 2 {
		seg, err := tg.WriteSegmentBuf(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		if seg.Size != int64(len(data)) || seg.ShardSize != ShardSizeFor(seg.Size, 4) || seg.Stored() != 6 {
			t.Fatalf("segment %+v", seg)
		}
		segs = append(segs, seg)
	}
	for _, seg := range segs {
		for i, node := range seg.Nodes {
			obj := tg.store(node).Objects()[ShardName(seg.ID, i)]
			h, _, err := shard.Verify(obj)
			if err != nil || int(h.Index) != i || h.Segment != seg.ID || h.SegmentSize != seg.Size {
				t.Fatalf("shard %d: %+v, %v", i, h, err)
			}
		}
		readWhole(t, tg.Grid, seg, data)
	}
	// Parity: without data shards 0 and 1, k of the rest rebuild it.
	seg := segs[0]
	for i := range 2 {
		if err := tg.store(seg.Nodes[i]).Delete(context.Background(), ShardName(seg.ID, i)); err != nil {
			t.Fatal(err)
		}
	}
	readWhole(t, tg.Grid, seg, data)
}

// TestSegmentBufShort: a segment filled with less than it was laid out
// for (a block dropped out while packing) is laid out again for its
// size, and a failed ReadFull appends nothing.
func TestSegmentBufShort(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, nil)
	data := make([]byte, 60_000)
	rand.NewChaCha8([32]byte{5}).Read(data)
	b, err := tg.NewSegmentBuf(100_000)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	fillSegmentBuf(t, b, data)
	if err := b.ReadFull(bytes.NewReader(make([]byte, 10)), 30_000); err != io.ErrUnexpectedEOF {
		t.Fatalf("ReadFull of a short reader: %v", err)
	}
	if b.Len() != int64(len(data)) {
		t.Fatalf("Len %d after a failed ReadFull, want %d", b.Len(), len(data))
	}
	seg, err := tg.WriteSegmentBuf(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if seg.Size != int64(len(data)) || seg.ShardSize != ShardSizeFor(seg.Size, 4) {
		t.Fatalf("segment %+v", seg)
	}
	readWhole(t, tg.Grid, seg, data)
}
