package repair_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/repair"
	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
)

// gridBlocks reads blocks straight from the grid (no cache), so every
// read in the benchmark goes to the nodes.
type gridBlocks struct{ g *remote.Grid }

func (r gridBlocks) ReadBlock(ctx context.Context, ref remote.BlockRef) ([]byte, error) {
	plain, _, err := r.g.FetchBlock(ctx, ref)
	return plain, err
}

func (r gridBlocks) ReadAt(ctx context.Context, ref remote.BlockRef, p []byte, off int64) (int, error) {
	plain, err := r.ReadBlock(ctx, ref)
	if err != nil {
		return 0, err
	}
	if off >= int64(len(plain)) {
		return 0, nil
	}
	return copy(p, plain[off:]), nil
}

func (gridBlocks) Prefetch(context.Context, []remote.BlockRef) {}

// BenchmarkRepairBudget wipes one node of a 6-node grid (k=4 m=2) holding
// 48 MiB and lets the background pass repair it under a 4 MiB/s budget,
// while a reader reads every file from the grid (no cache) in a loop. It
// reports the repair's traffic against its budget (budget-ratio, want
// <= 1.1) and the reader's time per pass during repair (a node wiped, its
// shards rebuilt meanwhile) against the same degraded grid before the
// repair started (read-slowdown, want <= 1.2), and against the healthy
// grid (read-vs-healthy: that adds the cost of reading around the lost
// node). docs/BENCHMARKS.md quotes a run:
//
//	go test -run '^$' -bench RepairBudget -benchtime 1x ./journal/repair/
func BenchmarkRepairBudget(b *testing.B) {
	const limit = 4 << 20
	for range b.N {
		root := b.TempDir()
		sealer, err := remote.NewSealer(bytes.Repeat([]byte{3}, 32))
		if err != nil {
			b.Fatal(err)
		}
		var members []remote.Member
		for i := range 6 {
			name := fmt.Sprintf("node-%d", i)
			st, err := dirstore.New(filepath.Join(root, "nodes", name), dirstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			members = append(members, remote.Member{Name: name, Store: st})
		}
		g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(root, "journal"), Grid: g, Sealer: sealer,
			Blocks: gridBlocks{g}, SegmentSize: 8 << 20})
		if err != nil {
			b.Fatal(err)
		}
		var inos []journal.Ino
		for f := range 6 {
			a, err := j.Mknod(ctx, journal.RootIno, fmt.Sprint("f", f), syscall.S_IFREG|0o644, 0, 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 8<<20)
			rand.Read(data)
			if _, err := j.WriteAt(ctx, a.Ino, data, 0); err != nil {
				b.Fatal(err)
			}
			inos = append(inos, a.Ino)
		}
		if err := j.WaitDurable(ctx); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		readAll := func() time.Duration {
			start := time.Now()
			for _, ino := range inos {
				for off := int64(0); off < 8<<20; off += int64(len(buf)) {
					if _, err := j.ReadAt(ctx, ino, buf, off); err != nil {
						b.Fatal(err)
					}
				}
			}
			return time.Since(start)
		}
		// The baseline: the healthy grid, no repair. Then wipe node 5
		// (its directory survives, empty).
		idle := readAll()
		idle = min(idle, readAll())
		os.RemoveAll(filepath.Join(root, "nodes", "node-5"))
		os.MkdirAll(filepath.Join(root, "nodes", "node-5"), 0o700)
		degraded := readAll()
		degraded = min(degraded, readAll())

		r := repair.New(repair.Options{Grid: g, Journal: j, Limit: limit})
		done := make(chan error, 1)
		b.ResetTimer()
		start := time.Now()
		go func() { done <- r.Background(ctx, false) }()
		var during []time.Duration
		for running := true; running; {
			during = append(during, readAll())
			select {
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
				running = false
			default:
			}
		}
		took := time.Since(start)
		b.StopTimer()
		st := r.Stats()
		var sum time.Duration
		for _, d := range during {
			sum += d
		}
		avg := sum / time.Duration(len(during))
		// The limiter lets one burst (a second's worth) through at once;
		// the rest is paced.
		b.ReportMetric(float64(st.Bytes)/took.Seconds()/limit, "budget-ratio")
		b.ReportMetric(float64(avg)/float64(idle), "read-vs-healthy")
		b.ReportMetric(float64(avg)/float64(degraded), "read-slowdown")
		b.ReportMetric(float64(st.Bytes)/(1<<20), "repair-MiB")
		b.ReportMetric(took.Seconds(), "repair-s")
		if st.Repaired == 0 {
			b.Fatalf("the pass repaired nothing: %+v", st)
		}
		j.Close()
	}
}
