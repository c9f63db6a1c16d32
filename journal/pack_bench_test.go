package journal

import (
	"testing"
	"time"
)

// BenchmarkPack is the uploader's packing of one segment of four staged
// 4 MiB blocks of random data (pack: each staging file read into
// the shard buffers, from the page cache here, and checked, VerifyIn),
// next to the check alone over the same segment: ns of the process's CPU
// per byte, to say what the check costs the uploader. Shipping (parity,
// checksums, the nodes' writes) comes on top of both (remote's
// BenchmarkWritePath).
//
//	go test -run '^$' -bench Pack -benchtime 20x ./journal/
func BenchmarkPack(b *testing.B) {
	const bs = 4 << 20
	e := newEnv(b, func(o *Options) { o.BlockSize = bs; o.SegmentSize = 16 * bs; o.IdleFlush = time.Hour })
	// The uploader ships nothing: the grid is down, and it waits for a
	// fuller segment (or an hour) before it tries.
	e.g.down.Store(true)
	f := must[Attr](b)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	data := make([]byte, 4*bs)
	fillRand(81, data)
	must[int](b)(e.j.WriteAt(bg, f.Ino, data, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, body func() int64) {
		var cpu time.Duration
		var n int64
		for b.Loop() {
			c0 := procCPU()
			n += body()
			cpu += procCPU() - c0
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/B")
	}
	b.Run("pack", func(b *testing.B) {
		run(b, func() int64 {
			seg, placed := e.j.up.pack()
			n := int64(0)
			if seg != nil {
				n = seg.Len()
				seg.Release()
			}
			if len(placed) != 4 {
				b.Fatalf("%d blocks packed, want 4", len(placed))
			}
			return n
		})
	})
	b.Run("check-alone", func(b *testing.B) {
		seg, placed := e.j.up.pack()
		if seg == nil {
			b.Fatal("nothing packed, want 4 blocks")
		}
		defer seg.Release()
		run(b, func() int64 {
			for _, p := range placed {
				if err := e.j.o.Sealer.VerifyIn(seg, p.off, p.len, p.id); err != nil {
					b.Fatal(err)
				}
			}
			return seg.Len()
		})
	})
}
