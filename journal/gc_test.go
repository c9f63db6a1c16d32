package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestCollectGarbage: deleted files leave the grid; a block shared by two
// files (dedup) and the blocks a kept snapshot names survive the deletion
// of one file, through compaction; deleting the snapshot frees them too;
// the drive still rebuilds from the grid; an orphaned shard goes.
func TestCollectGarbage(t *testing.T) {
	var (
		droppedMu sync.Mutex
		dropped   []remote.BlockID
	)
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.MetaInterval = time.Hour
		o.Retention = &Retention{} // only the newest checkpoint and named snapshots
		o.Dropped = func(ids []remote.BlockID) {
			droppedMu.Lock()
			dropped = append(dropped, ids...)
			droppedMu.Unlock()
		}
	})
	j := e.j
	// Three groups, each uploaded before the next is written, so that no
	// segment mixes them whatever the machine's speed: the survivor with
	// d and the small files (mostly dead after the first deletions: the
	// survivor moves), c alone (kept by the snapshot, dead without it),
	// the shared blocks of a and b (live throughout).
	flush := func() {
		t.Helper()
		if err := e.waitDurable(time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	survivorData := randBytes(1 << 20)
	survivor := e.writeFile("survivor", survivorData)
	e.writeFile("d", randBytes(4<<20))
	for i := range 20 {
		e.writeFile(fmt.Sprintf("small-%d", i), randBytes(10_000+i))
	}
	flush()
	keep := randBytes(3 << 20)
	c := e.writeFile("c", keep)
	flush()
	shared := randBytes(2<<20 + 5)
	e.writeFile("a", shared)
	b := e.writeFile("b", shared) // the same blocks: dedup
	e.syncGrid()
	// d and the small files go before the snapshot, a and c after it.
	if err := j.Unlink(bg, RootIno, "d"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := j.Unlink(bg, RootIno, fmt.Sprintf("small-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.syncGrid()
	if _, err := j.CreateSnapshot(bg, "keep"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "c"} {
		if err := j.Unlink(bg, RootIno, n); err != nil {
			t.Fatal(err)
		}
	}
	// An orphan: a shard of a segment no record names.
	var orphan remote.SegmentID
	rand.Read(orphan[:])
	if err := putMetaOnRaw(e.nodes[0], remote.ShardName(orphan, 3), []byte("orphan")); err != nil {
		t.Fatal(err)
	}
	before := e.nodeBytes()
	st, err := j.CollectGarbage(bg, GCOptions{OrphanGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	mid := e.nodeBytes()
	t.Logf("first collection: %+v; node bytes %d -> %d", st, before, mid)
	if st.Orphans != 1 || st.DeadSegments+st.Compacted == 0 || mid >= before {
		t.Fatalf("first collection freed nothing or missed the orphan: %+v, node bytes %d -> %d", st, before, mid)
	}
	if st.KeptBytes < int64(len(keep)) {
		t.Errorf("first collection: %d bytes kept for the snapshot; want at least c's %d", st.KeptBytes, len(keep))
	}
	e.wantContent(b, shared)
	e.wantContent(survivor, survivorData)
	// The cache is told of the blocks that went (d's and the small
	// files'), and of none that lives on.
	droppedMu.Lock()
	gone := slices.Clone(dropped)
	droppedMu.Unlock()
	if len(gone) < 2 {
		t.Errorf("the first collection handed %d dropped blocks to the cache; want d's and the small files'", len(gone))
	}
	for _, id := range gone {
		var n int
		if err := j.db.QueryRow(`SELECT count(*) FROM blocks WHERE id = ?`, id[:]).Scan(&n); err != nil || n != 0 {
			t.Errorf("block %s handed over as dropped still has %d rows (%v)", id, n, err)
		}
	}
	snap, err := j.FindSnapshot(bg, "keep")
	if err != nil {
		t.Fatal(err)
	}
	sj, err := j.SnapshotJournal(bg, snap.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, sj, c); !bytes.Equal(got, keep) {
		t.Fatalf("the snapshot's copy of c: %d bytes differ after collection", len(got))
	}

	// Without the snapshot, c's blocks go too.
	if _, err := j.DeleteSnapshots(bg, []string{"keep"}, false); err != nil {
		t.Fatal(err)
	}
	st, err = j.CollectGarbage(bg, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := e.nodeBytes()
	t.Logf("second collection: %+v; node bytes %d -> %d", st, mid, after)
	if st.KeptBytes != 0 {
		t.Errorf("second collection, no snapshot left: %d bytes kept for snapshots", st.KeptBytes)
	}
	left := int64(len(shared) + 1<<20)
	// Every segment left is at least half live (the threshold): at most
	// twice the live bytes, times n/k, plus headers and metadata.
	if after >= mid || after > left*6/4*2+512<<10 {
		t.Fatalf("after both collections the nodes hold %d bytes for %d bytes of files", after, left)
	}
	e.wantContent(b, shared)
	got, _ := e.rebuildFromGrid()
	a := must[Attr](t)(got.Lookup(bg, RootIno, "b"))
	if data := readAll(t, got, a.Ino); !bytes.Equal(data, shared) {
		t.Fatalf("b after a rebuild from the collected grid: %d bytes differ", len(data))
	}
	if _, err := got.Lookup(bg, RootIno, "c"); err == nil {
		t.Fatal("c is back after a rebuild")
	}
}

func putMetaOnRaw(s remote.Store, name string, data []byte) error {
	obj, err := encodeMeta(data)
	if err != nil {
		return err
	}
	return s.Put(bg, name, obj)
}

// cutGrid passes calls to a grid and cancels ctx (the crash) right after
// the n-th call that changes the grid (a write or a delete) has done its
// work.
type cutGrid struct {
	*remote.Grid
	n, calls int
	cancel   func()
}

func (g *cutGrid) step() {
	g.calls++
	if g.calls == g.n {
		g.cancel()
	}
}

func (g *cutGrid) WriteSegment(ctx context.Context, data []byte) (*remote.SegmentInfo, error) {
	info, err := g.Grid.WriteSegment(ctx, data)
	g.step()
	return info, err
}

func (g *cutGrid) DeleteSegment(ctx context.Context, seg *remote.SegmentInfo) error {
	err := g.Grid.DeleteSegment(ctx, seg)
	g.step()
	return err
}

func (g *cutGrid) PutMeta(ctx context.Context, name string, data []byte) (int, error) {
	n, err := g.Grid.PutMeta(ctx, name, data)
	g.step()
	return n, err
}

func (g *cutGrid) DeleteObject(ctx context.Context, node, name string) error {
	err := g.Grid.DeleteObject(ctx, node, name)
	g.step()
	return err
}

// TestGCCrashPoints stops a collection after each of its steps in turn
// (each write or delete on the grid: the compaction's copy, the record
// naming the new places, its root record, each segment deleted), closes
// the journal as a crash would leave it, and collects again: nothing live
// is lost, and the second collection finishes the job.
func TestGCCrashPoints(t *testing.T) {
	for n, last := 1, false; !last && n <= 20; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newGridEnv(t, 6, 4, 2, func(o *Options) {
				o.MetaInterval = time.Hour
				o.Retention = &Retention{}
			})
			keep := map[string][]byte{}
			for i := range 12 {
				data := randBytes(200_000 + i*150_000)
				name := fmt.Sprint("f", i)
				e.writeFile(name, data)
				if i%4 == 0 {
					keep[name] = data
				}
			}
			e.syncGrid()
			for i := range 12 {
				if i%4 != 0 {
					if err := e.j.Unlink(bg, RootIno, fmt.Sprint("f", i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			e.syncGrid()
			// Reopen over a grid that crashes after step n.
			if err := e.j.Close(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(bg)
			cg := &cutGrid{Grid: e.grid, n: n, cancel: cancel}
			o := e.opts
			o.Meta = cg
			j, err := Open(bg, o)
			if err != nil {
				t.Fatal(err)
			}
			_, gcErr := j.CollectGarbage(ctx, GCOptions{OrphanGrace: time.Nanosecond})
			j.Close()
			t.Logf("step %d of %d: %v", n, cg.calls, gcErr)
			last = cg.calls < n // the collection ended before step n
			e.j = nil
			e.newGrid()
			e.open()
			if _, err := e.j.CollectGarbage(bg, GCOptions{OrphanGrace: time.Nanosecond}); err != nil {
				t.Fatal(err)
			}
			for name, data := range keep {
				a := must[Attr](t)(e.j.Lookup(bg, RootIno, name))
				e.wantContent(a.Ino, data)
			}
			var left int64
			for _, d := range keep {
				left += int64(len(d))
			}
			if b := e.nodeBytes(); b > left*6/4*2+512<<10 {
				t.Fatalf("after the second collection the nodes hold %d bytes for %d live", b, left)
			}
			got, _ := e.rebuildFromGrid()
			for name, data := range keep {
				a := must[Attr](t)(got.Lookup(bg, RootIno, name))
				if d := readAll(t, got, a.Ino); !bytes.Equal(d, data) {
					t.Fatalf("%s differs after a rebuild", name)
				}
			}
		})
	}
}

// durableCheckGrid records, at each DeleteSegment, whether every commit so
// far is durable: a segment's shards may go only once no power cut can
// bring back the rows that named it.
type durableCheckGrid struct {
	*remote.Grid
	j                   *Journal
	deletes, notDurable int
}

func (g *durableCheckGrid) DeleteSegment(ctx context.Context, seg *remote.SegmentInfo) error {
	g.j.wmu.Lock()
	if g.j.durableGen != g.j.commitGen.Load() {
		g.notDurable++
	}
	g.j.wmu.Unlock()
	g.deletes++
	return g.Grid.DeleteSegment(ctx, seg)
}

// TestSegmentForgottenDurablyBeforeItsShardsGo: the commit that forgets a
// dead segment is durable before its shards are deleted. Were it not, a
// power cut could bring back garbage rows naming the deleted segment, and
// a new write of the same bytes would revive one (dedup) into a file
// whose block is nowhere.
func TestSegmentForgottenDurablyBeforeItsShardsGo(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.MetaInterval = time.Hour
		o.Retention = &Retention{}
	})
	for i := range 4 {
		e.writeFile(fmt.Sprint("f", i), randBytes(300_000+i))
	}
	e.syncGrid()
	for i := range 4 {
		if err := e.j.Unlink(bg, RootIno, fmt.Sprint("f", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.syncGrid()
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	g := &durableCheckGrid{Grid: e.grid}
	o := e.opts
	o.Meta = g
	j, err := Open(bg, o)
	if err != nil {
		t.Fatal(err)
	}
	e.j = j
	g.j = j
	if _, err := j.CollectGarbage(bg, GCOptions{OrphanGrace: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if g.deletes == 0 || g.notDurable != 0 {
		t.Fatalf("%d segments deleted, %d of them while the commit that forgot them was not durable", g.deletes, g.notDurable)
	}
}

// TestDamagedSegmentRows: rows of journal.db that no meshdrive writes (a
// chunk size of 0, a negative coding, a block's negative length, a node
// list that is no JSON list) are
// errors that say the database is damaged, in the listing that check and
// repair read and in garbage collection, not a division by zero or a
// panic of make.
func TestDamagedSegmentRows(t *testing.T) {
	for _, tc := range []struct {
		name, damage string
		listed       bool // Segments sees it too
	}{
		{"chunk size 0", `UPDATE segments SET chunk_size = 0`, true},
		{"k -1", `UPDATE segments SET k = -1, m = 4`, true},
		{"block length -1", `UPDATE blocks SET seg_len = -1 WHERE segment IS NOT NULL`, false},
		{"node list cut", `UPDATE segments SET nodes = '["node-1",'`, true},
		{"node list not a list", `UPDATE segments SET nodes = '{}'`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newGridEnv(t, 3, 2, 1, func(o *Options) { o.MetaInterval = time.Hour })
			e.writeFile("f", randBytes(1<<20))
			if err := e.waitDurable(time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, err := e.j.db.Exec(tc.damage); err != nil {
				t.Fatal(err)
			}
			e.reopen()
			_, err := e.j.Segments(bg)
			if tc.listed != (err != nil) || err != nil && !strings.Contains(err.Error(), "damaged") {
				t.Errorf("Segments: %v", err)
			}
			if _, err := e.j.CollectGarbage(bg, GCOptions{}); err == nil || !strings.Contains(err.Error(), "damaged") {
				t.Errorf("CollectGarbage: %v, want an error that says journal.db is damaged", err)
			}
		})
	}
}

// TestGCDryRunCountsCompaction: a dry run says what the collection would
// free, compacted segments included: the same segments, bytes freed and
// live bytes to move as the collection then reports.
func TestGCDryRunCountsCompaction(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.MetaInterval = time.Hour
		o.Retention = &Retention{}
	})
	j := e.j
	e.writeFile("survivor", randBytes(1<<20))
	e.writeFile("d", randBytes(4<<20))
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := j.Unlink(bg, RootIno, "d"); err != nil {
		t.Fatal(err)
	}
	e.syncGrid()
	dry, err := j.CollectGarbage(bg, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := j.CollectGarbage(bg, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run: %+v; collection: %+v", dry, st)
	if st.Compacted == 0 {
		t.Fatalf("nothing compacted: %+v", st)
	}
	if dry.Compacted != st.Compacted || dry.DeadSegments != st.DeadSegments || dry.FreedBytes != st.FreedBytes || dry.MovedBytes != st.MovedBytes {
		t.Errorf("dry run said %d compacted, %d deleted, %d bytes freed, %d moved; the collection did %d, %d, %d, %d",
			dry.Compacted, dry.DeadSegments, dry.FreedBytes, dry.MovedBytes, st.Compacted, st.DeadSegments, st.FreedBytes, st.MovedBytes)
	}
}

// TestLostBlocksKeepOlderVersion: a file uploaded and named by a metadata
// record (v1) is rewritten (v2) while the grid is down, and v2's staging
// files are gone before its upload: a mount with DropMissing marks them
// lost, and the next record names v2's lost blocks, not v1's. With a
// retention that keeps only the newest record, pruning and garbage
// collection would destroy v1, the last good copy of the file's bytes.
// While a block is lost every record stays a snapshot and v1 reads from
// one after a collection; once the file is restored from it, the drive
// collects as its retention says again.
func TestLostBlocksKeepOlderVersion(t *testing.T) {
	e := newGridEnv(t, 3, 2, 1, func(o *Options) {
		o.MetaInterval = time.Hour
		o.Retention = &Retention{} // only the newest checkpoint and named snapshots
	})
	v1, v2 := randBytes(2<<20), randBytes(2<<20)
	f := e.writeFile("f", v1)
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	e.syncGrid()
	for _, n := range e.nodes {
		n.SetDown(true)
	}
	must[int](t)(e.j.WriteAt(bg, f, v2, 0))
	if err := e.j.Fsync(bg, f); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	staged, _ := filepath.Glob(filepath.Join(e.opts.Dir, "staging", "*"))
	if len(staged) != 2 {
		t.Fatalf("%d staging files, want v2's 2", len(staged))
	}
	for _, p := range staged {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	e.opts.DropMissing = true
	e.newGrid() // all nodes up
	e.open()
	if st := must[FileStatus](t)(e.j.Status(bg, f)); st.State != StateLost || st.LostBlocks != 2 {
		t.Fatalf("f after the drop: %+v", st)
	}
	// Records after the drop: the first names v2's lost blocks.
	e.syncGrid()
	e.writeFile("other", randBytes(100_000))
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	e.syncGrid()
	if _, err := e.j.CollectGarbage(bg, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	older := func() (Snapshot, bool) {
		t.Helper()
		snaps := must[[]Snapshot](t)(e.j.Snapshots(bg))
		for _, s := range snaps {
			sj, err := e.j.SnapshotJournal(bg, s.Seq)
			if err != nil {
				t.Fatalf("snapshot %s: %v", s.Name, err)
			}
			ino, err := sj.Lookup(bg, RootIno, "f")
			if err != nil {
				continue
			}
			buf := make([]byte, len(v1)+1)
			if n, err := sj.ReadAt(bg, ino.Ino, buf, 0); err == nil && bytes.Equal(buf[:n], v1) {
				return s, true
			}
		}
		return Snapshot{}, false
	}
	if _, ok := older(); !ok {
		t.Fatalf("after a collection no snapshot holds f's older version, its last good copy (%d snapshots)",
			len(must[[]Snapshot](t)(e.j.Snapshots(bg))))
	}

	// The user decides: f restored from the snapshot (its bytes written
	// again). Nothing is lost any more, and the retention applies.
	must[int](t)(e.j.WriteAt(bg, f, v1, 0))
	if err := e.j.Fsync(bg, f); err != nil {
		t.Fatal(err)
	}
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	e.syncGrid()
	if r := must[LostReport](t)(e.j.Lost(bg)); r.Blocks != 0 {
		t.Fatalf("lost after the restore: %+v", r)
	}
	if _, err := e.j.CollectGarbage(bg, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(must[[]Snapshot](t)(e.j.Snapshots(bg))); n != 1 {
		t.Fatalf("%d snapshots after the restore, want the newest only", n)
	}
	e.wantContent(f, v1)
	e.reopen()
	e.wantContent(f, v1)
}
