package journal

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote/limit"
)

// A small file saved and fsync'd after a bulk copy was queued is
// grid-durable (its data and its metadata on the grid) while most of the
// copy still waits: its blocks go first (prio 0), and the metadata record
// leaves out the copy's rows instead of waiting for its blocks. Then the
// copy becomes durable too, and a rebuild from the grid has both. The grid
// is paced by the bandwidth wrapper (remote/limit); the test counts, it
// does not time.
func TestFsyncedSmallFileDurableBeforeBulk(t *testing.T) {
	lim := limit.New(limit.Rates{Up: 8 << 20}) // shard bytes, all nodes together
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.BlockSize = 256 << 10
		o.SegmentSize = 1 << 20
		o.MetaInterval = 200 * time.Millisecond
	})
	e.wrap = lim.Wrap
	e.reopen()
	// The first record is a full one, which never leaves anything out
	// (the grid would forget older versions of the files left out).
	e.syncGrid()

	rng := rand.New(rand.NewPCG(18, 18))
	bulk := make([]byte, 24<<20) // 36 MiB of shards: 4.5 s at 8 MiB/s
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	bulkIno := e.writeFile("bulk", bulk)
	must[struct{}](t)(struct{}{}, e.j.Flush(bg, bulkIno))
	bulkBlocks := must[FileStatus](t)(e.j.Status(bg, bulkIno)).Blocks

	small := make([]byte, 10<<10)
	for i := range small {
		small[i] = byte(rng.Uint32())
	}
	smallIno := e.writeFile("small", small)
	if err := e.j.Fsync(bg, smallIno); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.waitFor(time.Minute, "the fsync'd small file to be grid-durable", func() bool {
		st, err := e.j.Status(bg, smallIno)
		return err == nil && st.State == StateDurable
	})
	took := time.Since(start)
	bst := must[FileStatus](t)(e.j.Status(bg, bulkIno))
	t.Logf("small file grid-durable after %v; the bulk file then had %d of %d blocks waiting", took.Round(time.Millisecond), bst.PendingBlocks, bulkBlocks)
	if bst.State == StateDurable || bst.PendingBlocks*2 < bulkBlocks {
		t.Fatalf("the small file became grid-durable only when the bulk file was %v with %d of %d blocks waiting: it waited for the copy",
			bst.State, bst.PendingBlocks, bulkBlocks)
	}

	e.syncGrid()
	e.wantState(bulkIno, StateDurable)
	e.wantState(smallIno, StateDurable)
	// The grid alone has both files, whole.
	j2, _ := e.rebuildFromGrid()
	defer j2.Close()
	for name, want := range map[string][]byte{"bulk": bulk, "small": small} {
		a := must[Attr](t)(j2.Lookup(bg, RootIno, name))
		if got := readAll(t, j2, a.Ino); len(got) != len(want) || string(got) != string(want) {
			t.Fatalf("rebuilt %s: %d bytes, want the %d written", name, len(got), len(want))
		}
	}
}
