package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/faulty"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// dumpTree describes every file under the root: path, type, mode, owner,
// size, times, link count, xattrs, link target and a content digest.
func dumpTree(t testing.TB, j *Journal) string {
	t.Helper()
	var lines []string
	var walk func(dir Ino, path string)
	walk = func(dir Ino, path string) {
		var off uint64
		for {
			ents := must[[]DirEntry](t)(j.ReadDir(bg, dir, off, 100))
			if len(ents) == 0 {
				break
			}
			for _, d := range ents {
				off = d.Off
				p := path + "/" + d.Name
				a := must[Attr](t)(j.GetAttr(bg, d.Ino))
				l := fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d nlink=%d mtime=%d ctime=%d atime=%d", p, a.Mode, a.Uid, a.Gid,
					a.Size, a.Nlink, a.Mtime.UnixNano(), a.Ctime.UnixNano(), a.Atime.UnixNano())
				names := must[[]string](t)(j.ListXattr(bg, d.Ino))
				slices.Sort(names)
				for _, n := range names {
					v := must[[]byte](t)(j.GetXattr(bg, d.Ino, n))
					l += fmt.Sprintf(" x:%s=%q", n, v)
				}
				switch a.Mode & sIFMT {
				case sIFDIR:
					walk(d.Ino, p)
				case sIFLNK:
					l += " -> " + must[string](t)(j.Readlink(bg, d.Ino))
				case sIFREG:
					data := readAll(t, j, d.Ino)
					l += fmt.Sprintf(" data=%x", remote.BlockID(testSealerFor(data)))
				}
				lines = append(lines, l)
			}
		}
	}
	walk(RootIno, "")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// testSealerFor is a cheap content digest for dumpTree.
func testSealerFor(b []byte) [32]byte {
	var d [32]byte
	for i, c := range b {
		d[i%32] ^= c
		d[(i*7+3)%32] += c
	}
	d[0] ^= byte(len(b))
	d[1] ^= byte(len(b) >> 8)
	d[2] ^= byte(len(b) >> 16)
	return d
}

// rebuildFromGrid rebuilds the journal from the grid's newest root record
// into a new directory and opens it read-only.
func (e *gridEnv) rebuildFromGrid() (*Journal, *RebuildStats) {
	e.t.Helper()
	r, err := ReadRoot(bg, e.grid, e.sealer, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	dir := filepath.Join(e.t.TempDir(), "journal")
	st, err := Rebuild(bg, RebuildOptions{Dir: dir, Grid: e.grid, Sealer: e.sealer, Seq: r.Seq, Head: r.Head, BlockSize: e.opts.BlockSize})
	if err != nil {
		e.t.Fatal(err)
	}
	j, err := Open(bg, Options{Dir: dir, Sealer: e.sealer, Blocks: e.reader, BlockSize: e.opts.BlockSize, ReadOnly: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { j.Close() })
	return j, st
}

func (e *gridEnv) syncGrid() {
	e.t.Helper()
	ctx, cancel := contextTimeout(30 * time.Second)
	defer cancel()
	if err := e.j.SyncGrid(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// TestMetaShipAndRebuild ships a namespace with every kind of inode,
// rebuilds it from the grid alone, and compares; then changes it, ships
// a delta, and compares again.
func TestMetaShipAndRebuild(t *testing.T) { bubble(t, testMetaShipAndRebuild) }

func testMetaShipAndRebuild(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	j := e.j
	dir := must[Attr](t)(j.Mkdir(bg, RootIno, "dir", 0o750, 1000, 1000))
	must[Attr](t)(j.Mkdir(bg, dir.Ino, "empty", 0o700, 0, 0))
	big := bytes.Repeat([]byte("meshdrive "), 250_000) // 2.5 MB: three blocks
	f := e.writeFile("big", big)
	must[Attr](t)(j.Mknod(bg, dir.Ino, "empty-file", 0o600, 0, 0, 0))
	must[Attr](t)(j.Symlink(bg, RootIno, "link", "dir/../big", 0, 0))
	must[Attr](t)(j.Link(bg, f, dir.Ino, "hardlink"))
	if err := j.SetXattr(bg, f, "user.color", []byte("blue\x00\xff"), 0); err != nil {
		t.Fatal(err)
	}
	sparse := must[Attr](t)(j.Mknod(bg, dir.Ino, "sparse", 0o640, 0, 0, 0))
	must[int](t)(j.WriteAt(bg, sparse.Ino, []byte("end"), 3<<20))
	if err := j.Flush(bg, sparse.Ino); err != nil {
		t.Fatal(err)
	}
	e.syncGrid()
	want := dumpTree(t, j)
	if n := strings.Count(want, "\n") + 1; n != 7 {
		t.Fatalf("the tree has %d entries, want 7:\n%s", n, want)
	}
	got, st := e.rebuildFromGrid()
	if g := dumpTree(t, got); g != want {
		t.Fatalf("rebuilt tree differs:\n got:\n%s\nwant:\n%s", g, want)
	}
	// One full record; or, when the shipper's first record of the empty
	// drive went out before the writes above, that one and a delta.
	first := st.Records
	if first < 1 || first > 2 || st.LostBlocks != 0 {
		t.Fatalf("first rebuild: %+v, want one full record (or the empty drive's and a delta) and no lost block", st)
	}
	if s := must[FileStatus](t)(j.Status(bg, f)); s.State != StateDurable || s.MetaPending {
		t.Fatalf("status after SyncGrid: %+v", s)
	}

	// Change things: the next record is a small delta.
	if err := j.Rename(bg, RootIno, "big", dir.Ino, "moved", 0); err != nil {
		t.Fatal(err)
	}
	if err := j.Unlink(bg, dir.Ino, "empty-file"); err != nil {
		t.Fatal(err)
	}
	if err := j.RemoveXattr(bg, f, "user.color"); err != nil {
		t.Fatal(err)
	}
	must[int](t)(j.WriteAt(bg, f, []byte("changed"), 100))
	if err := j.Flush(bg, f); err != nil {
		t.Fatal(err)
	}
	if s := must[FileStatus](t)(j.Status(bg, f)); !s.MetaPending || s.State != StateLocal {
		t.Fatalf("status of a changed file before SyncGrid: %+v, want local with metadata pending", s)
	}
	before := j.MetaStats(bg)
	e.syncGrid()
	after := j.MetaStats(bg)
	if after.Head <= before.Head || after.PendingRows != 0 {
		t.Fatalf("meta stats before %+v after %+v", before, after)
	}
	want = dumpTree(t, j)
	got, st = e.rebuildFromGrid()
	if g := dumpTree(t, got); g != want {
		t.Fatalf("rebuilt tree after a delta differs:\n got:\n%s\nwant:\n%s", g, want)
	}
	if st.Records != first+1 {
		t.Fatalf("second rebuild read %d records, want the %d of the first and a delta", st.Records, first)
	}
	// A sync with nothing changed ships nothing.
	e.syncGrid()
	if s := j.MetaStats(bg); s.Head != after.Head {
		t.Fatalf("a sync with no change shipped record %d", s.Head)
	}
}

// TestRootRecordRollback: a node that serves an older root record, or a
// forged one, does not win.
func TestRootRecordRollback(t *testing.T) { bubble(t, testRootRecordRollback) }

func testRootRecordRollback(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	e.writeFile("a", []byte("one"))
	e.syncGrid()
	old := must[[]byte](t)(e.grid.GetMeta(bg, remote.MetaRoot))
	e.writeFile("b", []byte("two"))
	e.syncGrid()
	newest := must[*remote.RootRecord](t)(ReadRoot(bg, e.grid, e.sealer, nil))
	// Node 0 serves the old record, node 1 garbage.
	ds := e.nodes[0]
	if err := putMetaOn(ds, remote.MetaRoot, old); err != nil {
		t.Fatal(err)
	}
	if err := putMetaOn(e.nodes[1], remote.MetaRoot, bytes.Repeat([]byte{1}, 100)); err != nil {
		t.Fatal(err)
	}
	r := must[*remote.RootRecord](t)(ReadRoot(bg, e.grid, e.sealer, nil))
	if r.Seq != newest.Seq {
		t.Fatalf("root seq %d, want the newest %d", r.Seq, newest.Seq)
	}
	j, _ := e.rebuildFromGrid()
	if _, err := j.Lookup(bg, RootIno, "b"); err != nil {
		t.Fatalf("the rebuilt drive lacks the newest file: %v", err)
	}
}

func putMetaOn(s remote.Store, name string, data []byte) error {
	obj, err := encodeMeta(data)
	if err != nil {
		return err
	}
	return s.Put(bg, "meta/"+name, obj)
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(bg, d)
}

func encodeMeta(data []byte) ([]byte, error) {
	return shard.Encode(&shard.Header{Kind: shard.KindMeta, K: 1, SegmentSize: int64(len(data)), ChunkSize: shard.DefaultChunkSize}, data)
}

// TestMetaIncremental: with many files on the drive, changing one ships
// a small record, not the drive; and a rebuild of the whole drive from the
// grid is timed (docs/BENCHMARKS.md quotes the -long run: 100k files).
func TestMetaIncremental(t *testing.T) {
	n := 10_000
	switch {
	case *long:
		n = 100_000
	case testing.Short(): // the -race pass: the full size runs without it
		n = 2_000
	}
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	j := e.j
	start := time.Now()
	var dirs []Ino
	for d := range n / 1000 {
		dirs = append(dirs, must[Attr](t)(j.Mkdir(bg, RootIno, fmt.Sprintf("d%03d", d), 0o755, 0, 0)).Ino)
	}
	var inos []Ino
	for i := range n {
		a := must[Attr](t)(j.Mknod(bg, dirs[i%len(dirs)], fmt.Sprintf("file-%06d.txt", i), 0o644, 0, 0, 0))
		must[int](t)(j.WriteAt(bg, a.Ino, []byte(fmt.Sprintf("file %d of %d\n", i, n)), 0))
		if err := j.Flush(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, a.Ino)
	}
	t.Logf("created %d files in %v", n, time.Since(start))
	e.syncGrid()
	// One change may still fold the deltas into a full record; the next
	// one after it is what a change costs.
	change := func(ino Ino) int64 {
		must[int](t)(j.WriteAt(bg, ino, []byte("changed!"), 0))
		if err := j.Flush(bg, ino); err != nil {
			t.Fatal(err)
		}
		before := e.nodeBytes()
		e.syncGrid()
		return e.nodeBytes() - before
	}
	change(inos[1])
	got := change(inos[n/2])
	t.Logf("changing one file of %d wrote %d bytes to the node dirs (data and metadata, k=4 m=2)", n, got)
	if got <= 0 || got > 1<<20 {
		t.Fatalf("changing one file of %d wrote %d bytes to the nodes, want 0 < bytes < 1 MiB", n, got)
	}
	start = time.Now()
	rj, st := e.rebuildFromGrid()
	took := time.Since(start)
	t.Logf("rebuilt %d inodes from %d records (%d bytes of metadata) in %v", st.Inodes, st.Records, st.Bytes, took)
	if st.Inodes != int64(n+len(dirs)+1) {
		t.Fatalf("rebuilt %d inodes, want %d", st.Inodes, n+len(dirs)+1)
	}
	a := must[Attr](t)(rj.Lookup(bg, dirs[(n/2)%len(dirs)], fmt.Sprintf("file-%06d.txt", n/2)))
	if got := readAll(t, rj, a.Ino); !strings.HasPrefix(string(got), "changed!") {
		t.Fatalf("the changed file reads %q after the rebuild", got)
	}
}

// TestRebuildWithCorruptShards: one flipped byte in a shard of the newest
// record is repaired around (any k shards); more flipped shards than m
// stop the rebuild with a clear error and leave nothing behind.
func TestRebuildWithCorruptShards(t *testing.T) { bubble(t, testRebuildWithCorruptShards) }

func testRebuildWithCorruptShards(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	e.writeFile("a", bytes.Repeat([]byte("abc"), 1000))
	e.syncGrid()
	r := must[*remote.RootRecord](t)(ReadRoot(bg, e.grid, e.sealer, nil))
	flip := func(i int) {
		t.Helper()
		node := r.Head.Nodes[i]
		var idx int
		fmt.Sscanf(node, "node-%d", &idx)
		p := filepath.Join(e.dirs[idx], remote.ShardName(r.Head.ID, i))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-10] ^= 0x40
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	flip(0)
	e.newGrid() // no cached shard headers
	j, _ := e.rebuildFromGrid()
	if _, err := j.Lookup(bg, RootIno, "a"); err != nil {
		t.Fatalf("rebuild around one flipped shard: %v", err)
	}
	flip(1)
	flip(2)
	e.newGrid()
	dir := filepath.Join(t.TempDir(), "journal")
	_, err := Rebuild(bg, RebuildOptions{Dir: dir, Grid: e.grid, Sealer: e.sealer, Seq: r.Seq, Head: r.Head, BlockSize: e.opts.BlockSize})
	if !errors.Is(err, remote.ErrTooFewShards) {
		t.Fatalf("rebuild with 3 of 6 shards flipped: %v, want ErrTooFewShards", err)
	}
	if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
		t.Fatalf("a failed rebuild left %s (%v)", dir, serr)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 0 {
		t.Fatalf("a failed rebuild left %d entries beside %s", len(ents), dir)
	}
}

// snapshotBetweenWrites is a journal on a grid of six nodes (k=4, m=2,
// no automatic snapshots kept) with snapshot "s" taken between two files'
// writes, both shipped to the grid.
func snapshotBetweenWrites(t *testing.T) (*gridEnv, Snapshot) {
	t.Helper()
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.MetaInterval = time.Hour
		o.Retention = &Retention{}
	})
	e.writeFile("a", []byte("before the snapshot"))
	e.syncGrid()
	snap, err := e.j.CreateSnapshot(bg, "s")
	if err != nil {
		t.Fatal(err)
	}
	e.writeFile("b", []byte("after the snapshot"))
	e.syncGrid()
	return e, snap
}

// TestSegmentsListDeletedSnapshots: a deleted snapshot whose record the
// newest checkpoint's chain still needs stays on the grid, so Segments
// lists it and UpdateSegment records its moves: check, repair and node
// drain work from that list, and a drain deletes what it leaves on the
// node (then recover could not read the chain).
func TestSegmentsListDeletedSnapshots(t *testing.T) {
	e, snap := snapshotBetweenWrites(t)
	if _, err := e.j.DeleteSnapshots(bg, []string{"s"}, false); err != nil {
		t.Fatal(err)
	}
	var segBytes []byte
	if err := e.j.db.QueryRow(`SELECT seg FROM mlog WHERE seq = ?`, snap.Seq).Scan(&segBytes); err != nil {
		t.Fatalf("the deleted snapshot's record %d left the journal: %v (the test wants it in the newest chain)", snap.Seq, err)
	}
	info, _, err := remote.DecodeSegmentInfo(segBytes)
	if err != nil {
		t.Fatal(err)
	}
	if h := e.grid.CheckSegment(bg, info, remote.CheckOptions{}); !h.Healthy() {
		t.Fatalf("record %d is not on the grid: %d shards", snap.Seq, h.OK)
	}
	segs, err := e.j.Segments(bg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(segs, func(s SegmentRow) bool { return s.MetaSeq == snap.Seq && s.Info.ID == info.ID }) {
		t.Errorf("record %d, a deleted snapshot still on the grid, is not in Segments", snap.Seq)
	}
	if err := e.j.UpdateSegment(bg, info, snap.Seq); err != nil {
		t.Errorf("UpdateSegment of record %d: %v", snap.Seq, err)
	}
}

// TestPruneForgetsRecordFirst: a metadata record no snapshot and not the
// newest chain needs is forgotten before its segment is deleted, so a
// delete that a node refuses leaves shards no row names (the orphan
// pass's) rather than a row whose segment is below k, which check, repair
// and drain (Segments) took for a lost record and could never mend.
func TestPruneForgetsRecordFirst(t *testing.T) {
	e, snap := snapshotBetweenWrites(t)
	if _, err := e.j.ms.ship(bg, true, true, false); err != nil { // a full record: s leaves the newest chain
		t.Fatal(err)
	}
	e.nodes[5].SetRules(faulty.Rule{Ops: faulty.OpDelete})
	if _, err := e.j.DeleteSnapshots(bg, []string{"s"}, false); err != nil {
		t.Fatal(err)
	}
	e.nodes[5].Clear()
	segs, err := e.j.Segments(bg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if s.MetaSeq == 0 {
			continue
		}
		if s.MetaSeq == snap.Seq {
			t.Errorf("record %d, pruned while a node refused deletes, is still listed", snap.Seq)
		}
		if h := e.grid.CheckSegment(bg, s.Info, remote.CheckOptions{}); !h.Recoverable() {
			t.Errorf("listed record %d has %d shards, below k", s.MetaSeq, h.OK)
		}
	}
}

// TestCheckpointFullStandsAlone: a delta record of the newest chain loses
// shards below k (nodes lost without repair): recovery from the grid
// fails; a full record shipped then (what check --repair does) needs no
// earlier record, and the drive rebuilds from it as it is.
func TestCheckpointFullStandsAlone(t *testing.T) { bubble(t, testCheckpointFullStandsAlone) }

func testCheckpointFullStandsAlone(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.MetaInterval = time.Hour })
	e.writeFile("a", []byte("one"))
	e.syncGrid()
	e.writeFile("b", []byte("two"))
	e.syncGrid()
	head := must[*remote.RootRecord](t)(ReadRoot(bg, e.grid, e.sealer, nil))
	segs := must[[]SegmentRow](t)(e.j.Segments(bg))
	var delta *SegmentRow
	for i := range segs {
		if segs[i].MetaSeq == head.Seq {
			delta = &segs[i]
		}
	}
	if delta == nil {
		t.Fatalf("no segment for the newest record %d", head.Seq)
	}
	for i, node := range delta.Info.Nodes[:3] {
		st := e.nodes[nodeIndex(t, node)]
		if err := st.Delete(bg, remote.ShardName(delta.Info.ID, i)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "journal")
	if _, err := Rebuild(bg, RebuildOptions{Dir: dir, Grid: e.grid, Sealer: e.sealer, Seq: head.Seq, Head: head.Head, BlockSize: e.opts.BlockSize}); err == nil {
		t.Fatal("rebuilt a chain whose newest record has 3 of 6 shards")
	}
	seq := must[uint64](t)(e.j.CheckpointFull(bg))
	if seq <= head.Seq {
		t.Fatalf("full record %d, not after %d", seq, head.Seq)
	}
	want := dumpTree(t, e.j)
	got, st := e.rebuildFromGrid()
	if g := dumpTree(t, got); g != want || st.Records != 1 {
		t.Fatalf("rebuilt from the full record (%d records):\n got:\n%s\nwant:\n%s", st.Records, g, want)
	}
}

// nodeIndex is the index of node-N in a gridEnv.
func nodeIndex(t *testing.T, name string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(name, "node-%d", &i); err != nil {
		t.Fatalf("node name %q: %v", name, err)
	}
	return i
}
