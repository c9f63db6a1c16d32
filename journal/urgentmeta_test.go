package journal

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote/limit"
)

// TestFsyncedFileBehindLongSegment: under an upload limit a bulk segment
// in flight can take longer than the metadata shipper waits for urgent
// blocks (half the interval). The record it then ships leaves the
// fsync'd file out; the file's record follows once its block is on the
// grid, not a whole interval later (a document saved during a copy at
// 512 KiB/s became grid-durable 45 s later, after the next interval).
func TestFsyncedFileBehindLongSegment(t *testing.T) { bubble(t, testFsyncedFileBehindLongSegment) }

func testFsyncedFileBehindLongSegment(t *testing.T) {
	const interval = 20 * time.Second
	lim := limit.New(limit.Rates{Up: 512 << 10}) // a 4 MiB segment, 6 MiB of shards: 12 s
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.BlockSize = 1 << 20
		o.SegmentSize = 4 << 20
		o.MetaInterval = interval
	})
	e.wrap = lim.Wrap
	e.reopen()
	e.syncGrid() // the first record is a full one, which leaves nothing out

	rng := rand.New(rand.NewPCG(7, 7))
	bulk := make([]byte, 8<<20)
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	bulkIno := e.writeFile("bulk", bulk)
	must[struct{}](t)(struct{}{}, e.j.Flush(bg, bulkIno))
	e.waitFor(time.Minute, "a bulk segment in flight", func() bool { return e.j.Stats().InFlightBytes > 0 })

	smallIno := e.writeFile("small", []byte("a document saved during the copy\n"))
	if err := e.j.Fsync(bg, smallIno); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.waitFor(time.Minute, "the fsync'd file's block on the grid", func() bool {
		st, err := e.j.Status(bg, smallIno)
		return err == nil && st.PendingBlocks == 0
	})
	landed := time.Since(start)
	e.waitFor(2*time.Minute, "the fsync'd file grid-durable", func() bool {
		st, err := e.j.Status(bg, smallIno)
		return err == nil && st.State == StateDurable
	})
	took := time.Since(start)
	t.Logf("block on the grid after %v, grid-durable after %v", landed, took)
	if took-landed > interval/4 {
		t.Fatalf("the fsync'd file became grid-durable %v after its block reached the grid (%v after the fsync): its record waited for the next interval", took-landed, took)
	}
}
