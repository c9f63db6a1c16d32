package remote

// Benchmarks of the grid primitives and the composed paths. Figures and
// the command that produced them are in docs/BENCHMARKS.md ("Grid
// primitives"). Run with -cpu=1: besides wall-clock MB/s every benchmark
// reports cpu-MB/s, bytes per second of this process's CPU time (user +
// system, GC included), which is the per-core cost and stays meaningful
// when other processes share the machine.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"
)

const benchBlock = 4 << 20

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuLoop runs body under b.Loop and reports wall MB/s (SetBytes) and
// cpu-MB/s.
func cpuLoop(b *testing.B, bytes int64, body func()) {
	b.SetBytes(bytes)
	c0 := cpuTime()
	for b.Loop() {
		body()
	}
	if c := cpuTime() - c0; c > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/c.Seconds()/1e6, "cpu-MB/s")
	}
}

// benchKinds are the two kinds of block a benchmark runs on (benchData).
var benchKinds = []struct {
	name string
	k    int
}{{"incompressible", 0}, {"compressible", 1}}

func benchData(kind int, n int) []byte {
	return mixedBlock(rand.New(rand.NewPCG(42, uint64(kind))), kind, n)
}

func BenchmarkHash(b *testing.B) {
	p := benchData(0, benchBlock)
	key := testKey(3)
	b.Run("blake3-keyed", func(b *testing.B) {
		h, _ := blake3.NewKeyed(key)
		var out [32]byte
		cpuLoop(b, int64(int64(len(p))), func() {
			h.Reset()
			h.Write(p)
			h.Sum(out[:0])
		})
	})
	b.Run("hmac-sha256", func(b *testing.B) {
		h := hmac.New(sha256.New, key)
		var out [32]byte
		cpuLoop(b, int64(int64(len(p))), func() {
			h.Reset()
			h.Write(p)
			h.Sum(out[:0])
		})
	})
	b.Run("Sealer.BlockID", func(b *testing.B) {
		s := newTestSealer(b)
		cpuLoop(b, int64(int64(len(p))), func() {
			s.BlockID(p)
		})
	})
}

func BenchmarkAESGCM(b *testing.B) {
	p := benchData(0, benchBlock)
	blk, _ := aes.NewCipher(testKey(4))
	g, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	dst := make([]byte, 0, len(p)+16)
	cpuLoop(b, int64(int64(len(p))), func() {
		dst = g.Seal(dst[:0], nonce, p, nil)
	})
}

func BenchmarkXXH3(b *testing.B) {
	p := benchData(0, benchBlock)
	cpuLoop(b, int64(int64(len(p))), func() {
		xxh3.Hash(p)
	})
}

func BenchmarkZstd(b *testing.B) {
	for _, lv := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(lv), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
		for _, kind := range []struct {
			name string
			k    int
		}{{"random", 0}, {"text", 1}} {
			p := benchData(kind.k, benchBlock)
			out := make([]byte, 0, len(p)+len(p)/8)
			b.Run(lv.String()+"/"+kind.name, func(b *testing.B) {
				cpuLoop(b, int64(int64(len(p))), func() {
					out = enc.EncodeAll(p, out[:0])
				})
				b.ReportMetric(float64(len(out))/float64(len(p)), "ratio")
			})
		}
	}
	b.Run("sample-test/random", func(b *testing.B) {
		s := newTestSealer(b)
		p := benchData(0, benchBlock)
		cpuLoop(b, int64(int64(len(p))), func() {
			if s.pays(p) {
				b.Fatal("random judged compressible")
			}
		})
	})
}

func BenchmarkRSEncode(b *testing.B) {
	const size = 32 << 20
	enc, _ := reedsolomon.New(4, 2)
	shards := make([][]byte, 6)
	for i := range shards {
		shards[i] = benchData(0, size/4)
	}
	cpuLoop(b, int64(size), func() {
		if err := enc.Encode(shards); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkRSReconstruct(b *testing.B) {
	const size = 32 << 20
	enc, _ := reedsolomon.New(4, 2)
	shards := make([][]byte, 6)
	for i := range shards {
		shards[i] = benchData(0, size/4)
	}
	enc.Encode(shards)
	work := make([][]byte, 6)
	cpuLoop(b, size/4, func() { // the bytes rebuilt
		copy(work, shards)
		work[1] = nil
		if err := enc.ReconstructSome(work, []bool{false, true, false, false, false, false}); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	s := newTestSealer(b)
	for _, kind := range benchKinds {
		p := benchData(kind.k, benchBlock)
		id := s.BlockID(p)
		dst := make([]byte, 0, len(p)+SealOverhead)
		b.Run(kind.name, func(b *testing.B) {
			cpuLoop(b, int64(int64(len(p))), func() {
				dst = s.Seal(dst[:0], id, p)
			})
		})
		b.Run("open-"+kind.name, func(b *testing.B) {
			sealed := s.Seal(nil, id, p)
			out := make([]byte, 0, len(p))
			cpuLoop(b, int64(int64(len(p))), func() {
				var err error
				if out, err = s.Open(out[:0], id, sealed); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkVerifyIn is the uploader's check of a staged 4 MiB block packed
// into a 16 MiB segment (4+2, so it crosses a shard boundary): per byte of
// sealed block, to set beside Seal's cost per byte of plaintext.
func BenchmarkVerifyIn(b *testing.B) {
	s := newTestSealer(b)
	for _, kind := range benchKinds {
		p := benchData(kind.k, benchBlock)
		id := s.BlockID(p)
		sealed := s.Seal(nil, id, p)
		seg, err := NewSegmentBuf(4, 2, 0, 16<<20)
		if err != nil {
			b.Fatal(err)
		}
		seg.Write(make([]byte, 3<<20)) // the block at 3 MiB crosses into shard 1
		seg.Write(sealed)
		b.Run(kind.name, func(b *testing.B) {
			cpuLoop(b, int64(len(sealed)), func() {
				if err := s.VerifyIn(seg, 3<<20, int64(len(sealed)), id); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkSealCompressible is the seal of a text block (compressed).
func BenchmarkSealCompressible(b *testing.B) {
	s := newTestSealer(b)
	p := benchData(1, benchBlock)
	id := s.BlockID(p)
	dst := make([]byte, 0, len(p)+SealOverhead)
	cpuLoop(b, int64(int64(len(p))), func() {
		dst = s.Seal(dst[:0], id, p)
	})
	b.ReportMetric(float64(len(dst))/float64(len(p)), "ratio")
}

// nullStore takes every Put and forgets it.
type nullStore struct{ MemStore }

func (*nullStore) Put(ctx context.Context, name string, data []byte) error { return nil }

// BenchmarkWritePath is the uploader's whole CPU path for incompressible
// data: per 4 MiB block BlockID + Seal into the segment buffer, then per
// 32 MiB segment WriteSegment (copy into shards, RS encode, shard headers
// with xxh3 checksums, placement, Puts to stores that discard).
func BenchmarkWritePath(b *testing.B) {
	s := newTestSealer(b)
	o := GridOptions{K: 4, M: 2, Sealer: s}
	for i := range 6 {
		o.Members = append(o.Members, Member{Name: string(rune('a' + i)), Store: &nullStore{}})
	}
	g, err := NewGrid(o)
	if err != nil {
		b.Fatal(err)
	}
	const blocks = 8
	plain := make([][]byte, blocks)
	for i := range plain {
		plain[i] = mixedBlock(rand.New(rand.NewPCG(9, uint64(i))), 0, benchBlock)
	}
	seg := make([]byte, 0, blocks*(benchBlock+SealOverhead))
	ctx := context.Background()
	// Warm the shard buffer pool as a running uploader has it.
	if _, err := g.WriteSegment(ctx, s.Seal(seg[:0], s.BlockID(plain[0]), plain[0])); err != nil {
		b.Fatal(err)
	}
	cpuLoop(b, int64(blocks*benchBlock), func() {
		seg = seg[:0]
		for _, p := range plain {
			seg = s.Seal(seg, s.BlockID(p), p)
		}
		if _, err := g.WriteSegment(ctx, seg); err != nil {
			b.Fatal(err)
		}
	})
}

// benchGrid writes one segment of 4 MiB incompressible blocks to an
// in-memory grid and returns the refs.
func benchGrid(b *testing.B) (*testGrid, []BlockRef) {
	tg := newTestGrid(b, 6, 4, 2, func(o *GridOptions) { o.ChunkSize = 64 << 10; o.HedgeAfter = time.Minute })
	var data []byte
	var refs []BlockRef
	for i := range 8 {
		p := benchData(i*3, benchBlock)
		id := tg.sealer.BlockID(p)
		off := int64(len(data))
		data = tg.sealer.Seal(data, id, p)
		refs = append(refs, BlockRef{ID: id, Offset: off, Length: int64(len(data)) - off})
	}
	seg, err := tg.WriteSegment(context.Background(), data)
	if err != nil {
		b.Fatal(err)
	}
	for i := range refs {
		refs[i].Seg = seg
	}
	return tg, refs
}

// BenchmarkFetchHealthy: FetchBlock of a 4 MiB block with every node up
// (one in-memory ranged Get, Open; no Reed-Solomon).
func BenchmarkFetchHealthy(b *testing.B) {
	tg, refs := benchGrid(b)
	ref := refs[0] // inside shard 0
	cpuLoop(b, int64(benchBlock), func() {
		if _, _, err := tg.FetchBlock(context.Background(), ref); err != nil {
			b.Fatal(err)
		}
	})
	if tg.Stats().Reconstructs != 0 {
		b.Fatal("healthy fetch reconstructed")
	}
}

// BenchmarkReconstruct: FetchBlock of a 4 MiB block whose data shard's
// node is down: k verified chunk spans, ReconstructSome, Open.
func BenchmarkReconstruct(b *testing.B) {
	tg, refs := benchGrid(b)
	ref := refs[0]
	tg.store(ref.Seg.Nodes[0]).SetMode(MemDown)
	cpuLoop(b, int64(benchBlock), func() {
		if _, _, err := tg.FetchBlock(context.Background(), ref); err != nil {
			b.Fatal(err)
		}
	})
	if tg.Stats().Reconstructs == 0 {
		b.Fatal("no reconstruction")
	}
}

// BenchmarkWriteRatio alternates, op by op, the write path's primitives
// alone (keyed BLAKE3 and AES-256-GCM over 8 incompressible 4 MiB blocks,
// Reed-Solomon 4+2 over the 32 MiB, xxh3 over the six shards: no copies,
// no allocations) and the composed path of BenchmarkWritePath, timing
// each by CPU time, so both see the same machine. ratio = path CPU /
// primitives CPU; the target is at most 1.3.
func BenchmarkWriteRatio(b *testing.B) {
	s := newTestSealer(b)
	o := GridOptions{K: 4, M: 2, Sealer: s}
	for i := range 6 {
		o.Members = append(o.Members, Member{Name: string(rune('a' + i)), Store: &nullStore{}})
	}
	g, err := NewGrid(o)
	if err != nil {
		b.Fatal(err)
	}
	const blocks = 8
	plain := make([][]byte, blocks)
	for i := range plain {
		plain[i] = mixedBlock(rand.New(rand.NewPCG(9, uint64(i))), 0, benchBlock)
	}
	key := testKey(3)
	bh, _ := blake3.NewKeyed(key)
	blk, _ := aes.NewCipher(testKey(4))
	gcm, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	rs, _ := reedsolomon.New(4, 2)
	seg := make([]byte, 0, blocks*(benchBlock+SealOverhead))
	shards := make([][]byte, 6)
	for i := range shards {
		shards[i] = make([]byte, blocks*benchBlock/4)
	}
	ctx := context.Background()
	for range 2 { // warm the shard buffer pool as a running uploader has it
		seg = seg[:0]
		for _, p := range plain {
			seg = s.Seal(seg, s.BlockID(p), p)
		}
		if _, err := g.WriteSegment(ctx, seg); err != nil {
			b.Fatal(err)
		}
	}
	var prim, path time.Duration
	var id [32]byte
	b.SetBytes(blocks * benchBlock)
	for b.Loop() {
		c0 := cpuTime()
		seg = seg[:0]
		for _, p := range plain {
			bh.Reset()
			bh.Write(p)
			bh.Sum(id[:0])
			seg = gcm.Seal(seg, nonce, p, id[:])
		}
		if err := rs.Encode(shards); err != nil {
			b.Fatal(err)
		}
		for _, sh := range shards {
			xxh3.Hash(sh)
		}
		c1 := cpuTime()
		seg = seg[:0]
		for _, p := range plain {
			seg = s.Seal(seg, s.BlockID(p), p)
		}
		if _, err := g.WriteSegment(ctx, seg); err != nil {
			b.Fatal(err)
		}
		c2 := cpuTime()
		prim += c1 - c0
		path += c2 - c1
	}
	mb := float64(blocks*benchBlock) * float64(b.N) / 1e6
	b.ReportMetric(mb/prim.Seconds(), "prims-cpu-MB/s")
	b.ReportMetric(mb/path.Seconds(), "path-cpu-MB/s")
	b.ReportMetric(path.Seconds()/prim.Seconds(), "ratio")
}
