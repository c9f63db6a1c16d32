package journal

import (
	"crypto/rand"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// BenchmarkSegmentCommit is the uploader's commit of one segment of small
// files' blocks (commitSegment alone: no packing, no grid), per block:
// 256 small files staged in the database, recorded as stored in one
// segment; µs of the process's CPU per block (the commit's WAL fsync is
// wall time, not CPU). Small files' closes are logged (flushlog.go), so
// their blocks reach the upload queue only when the records are applied:
// the benchmark applies them first, outside the measure (the commit
// would otherwise apply them itself, and count their cost in its own).
// Run old and new builds in turns:
//
//	go test -run '^$' -bench SegmentCommit -benchtime 20x ./journal/
func BenchmarkSegmentCommit(b *testing.B) {
	const files = 256
	e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; o.IdleFlush = time.Hour })
	e.g.down.Store(true) // the uploader ships nothing: the benchmark commits
	data := make([]byte, 5000)
	var cpu time.Duration
	n := 0
	for i := range b.N {
		for k := range files {
			smallFile(b, e.j, i*files+k, data)
		}
		applyUnlinks(b, e.j)
		e.j.qmu.Lock()
		var placed []placedBlock
		var off int64
		for _, it := range e.j.queue {
			placed = append(placed, placedBlock{qitem: it, off: off, len: it.sealedLen})
			off += it.sealedLen
		}
		e.j.qmu.Unlock()
		if len(placed) == 0 {
			b.Fatalf("no block in the upload queue after %d small files: the commit would measure nothing; "+
				"check that their closes reach the queue (logged closes must be applied first)", files)
		}
		info := &remote.SegmentInfo{K: 4, M: 2, Size: off, ShardSize: off / 4, ChunkSize: 64 << 10,
			Nodes: []string{"a", "b", "c", "d", "e", "f"}}
		rand.Read(info.ID[:])
		c0 := procCPU()
		if err := e.j.up.commitSegment(bg, info, placed); err != nil {
			b.Fatal(err)
		}
		cpu += procCPU() - c0
		n += len(placed)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/block")
}

func procCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
