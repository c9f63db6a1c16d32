package journal

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkSeqWrite is the journal's share of `dd bs=1M conv=fsync` of a
// big file of random bytes: 1 MiB writes in order, then fsync, with 4 MiB
// blocks and write-behind. It reports the process's CPU per MiB (the
// write-behind goroutines' hashing, sealing and staging included) and the
// blocks the writer put in the dirty file instead of memory (spilled):
//
//	go test -run '^$' -bench SeqWrite -benchtime 3x ./journal/
func BenchmarkSeqWrite(b *testing.B) {
	const size, io = 256 << 20, 1 << 20
	e := newEnv(b, func(o *Options) {
		o.BlockSize = 4 << 20
		o.SegmentSize = 16 << 20
		o.IdleFlush = time.Hour
		o.Quota = 4 << 30
	})
	buf := make([]byte, io)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	var cpu time.Duration
	var spilled int
	b.ResetTimer()
	for i := range b.N {
		a, err := e.j.Mknod(bg, RootIno, "big"+string(rune('a'+i%26))+string(rune('a'+i/26)), 0o100600, 0, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		e.j.OpenFile(a.Ino)
		before := cpuTime()
		for off := int64(0); off < size; off += io {
			binary.LittleEndian.PutUint64(buf, uint64(off)|uint64(i)<<48) // no block dedups
			if _, err := e.j.WriteAt(bg, a.Ino, buf, off); err != nil {
				b.Fatal(err)
			}
		}
		n := e.j.it.getInode(a.Ino)
		n.mu.Lock()
		if n.f != nil {
			spilled += len(n.f.inBase)
		}
		n.mu.Unlock()
		e.j.it.putInode(n)
		if err := e.j.Fsync(bg, a.Ino); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - before
		e.j.ReleaseFile(a.Ino)
	}
	b.StopTimer()
	b.SetBytes(size)
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N)/(size>>20), "cpu-ms/MiB")
	b.ReportMetric(float64(spilled)/float64(b.N), "spilled-blocks/op")
}
