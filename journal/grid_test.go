package journal

// Tests of the journal over a real remote.Grid: dirstore nodes in temp
// directories, wrapped in remote/faulty so nodes can be stopped, a real
// Sealer with a random key, and a BlockReader that fetches from the grid.
// What they measure is the node directories themselves, not a fake.

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/faulty"
)

// gridReader is a BlockReader straight over Grid.FetchBlock (no cache), so
// every read of an uploaded block goes to the nodes.
type gridReader struct {
	g     *remote.Grid
	reads atomic.Int64
}

func (r *gridReader) ReadBlock(ctx context.Context, ref remote.BlockRef) ([]byte, error) {
	r.reads.Add(1)
	plain, _, err := r.g.FetchBlock(ctx, ref)
	return plain, err
}

// ReadAt reads only the frames holding the range: the frame index, then
// the frames, from the grid.
func (r *gridReader) ReadAt(ctx context.Context, ref remote.BlockRef, p []byte, off int64) (int, error) {
	r.reads.Add(1)
	f, err := r.g.FetchFrameIndex(ctx, ref)
	if err != nil || off >= f.PlainLen() || len(p) == 0 {
		return 0, err
	}
	n := min(int64(len(p)), f.PlainLen()-off)
	first, last := f.Span(off, n)
	plain, err := r.g.FetchFrames(ctx, ref, f, first, last)
	if err != nil {
		return 0, err
	}
	po, _ := f.Plain(first)
	return copy(p[:n], plain[off-po:]), nil
}

func (r *gridReader) Prefetch(ctx context.Context, refs []remote.BlockRef) {}

// gridEnv is a journal over a grid of dirstore nodes.
type gridEnv struct {
	t      testing.TB
	k, m   int
	dirs   []string        // node directories; node i is "node-i"
	nodes  []*faulty.Store // node i's store
	grid   *remote.Grid
	reader *gridReader
	sealer *remote.Sealer
	j      *Journal
	opts   Options
	// wrap, when set, wraps every node's store from the next newGrid on.
	wrap func(remote.Store) remote.Store
}

// newGridEnv builds n dirstore nodes, a k+m grid over them and a journal
// on it; mod adjusts the journal options.
func newGridEnv(t testing.TB, n, k, m int, mod func(*Options)) *gridEnv {
	t.Helper()
	key := make([]byte, 32)
	if _, err := crand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := remote.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	e := &gridEnv{t: t, k: k, m: m, sealer: s}
	for i := range n {
		e.dirs = append(e.dirs, filepath.Join(root, fmt.Sprintf("node-%d", i)))
	}
	e.newGrid()
	e.opts = Options{
		Dir: filepath.Join(root, "journal"), Sealer: s,
		BlockSize: 1 << 20, SegmentSize: 8 << 20, IdleFlush: 100 * time.Millisecond,
		RetryMax: 100 * time.Millisecond, QuotaWait: 5 * time.Second, Quota: 1 << 30,
	}
	if mod != nil {
		mod(&e.opts)
	}
	e.open()
	t.Cleanup(func() {
		if e.j != nil {
			e.j.Close()
		}
	})
	return e
}

// newGrid opens fresh dirstores over the node directories (all up) and a
// fresh grid and reader over them: nothing is shared with the old ones.
func (e *gridEnv) newGrid() {
	e.t.Helper()
	e.nodes = nil
	var members []remote.Member
	for i, dir := range e.dirs {
		ds, err := dirstore.New(dir, dirstore.Options{})
		if err != nil {
			e.t.Fatal(err)
		}
		name := fmt.Sprintf("node-%d", i)
		f := faulty.New(ds, faulty.Options{Name: name, Seed: uint64(i + 1)})
		e.nodes = append(e.nodes, f)
		var st remote.Store = f
		if e.wrap != nil {
			st = e.wrap(st)
		}
		members = append(members, remote.Member{Name: name, Store: st})
	}
	g, err := remote.NewGrid(remote.GridOptions{K: e.k, M: e.m, Members: members, Sealer: e.sealer,
		CallTimeout: 30 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.grid = g
	e.reader = &gridReader{g: g}
}

func (e *gridEnv) open() {
	e.t.Helper()
	e.opts.Grid, e.opts.Blocks = e.grid, e.reader
	if e.opts.MetaInterval != 0 {
		e.opts.Meta = e.grid
	}
	j, err := Open(bg, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.j = j
}

// reopen closes the journal, checks its database, and opens it again over
// a fresh grid and reader.
func (e *gridEnv) reopen() {
	e.t.Helper()
	if err := e.j.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.j = nil
	checkDB(e.t, e.opts.Dir)
	e.newGrid()
	e.open()
}

// nodeBytes is the sum of the sizes of all files under the node
// directories.
func (e *gridEnv) nodeBytes() int64 {
	e.t.Helper()
	var sum int64
	for _, dir := range e.dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sum += fi.Size()
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			e.t.Fatal(err)
		}
	}
	return sum
}

// shardFiles maps each segment found in the node directories to the node
// index holding each shard index (a shard on two nodes is reported as an
// error).
func (e *gridEnv) shardFiles() map[remote.SegmentID]map[int]int {
	e.t.Helper()
	out := map[remote.SegmentID]map[int]int{}
	for node, dir := range e.dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			if rel == dirstore.MarkName {
				return nil // the store's own mark, not the drive's
			}
			if !strings.HasPrefix(rel, "shards/") {
				return fmt.Errorf("node-%d holds an unexpected file %s", node, rel)
			}
			base := strings.TrimPrefix(rel, "shards/")
			dot := strings.LastIndexByte(base, '.')
			if dot < 0 {
				return fmt.Errorf("node-%d: shard file %s has no index", node, rel)
			}
			id, err := remote.ParseSegmentID(base[:dot])
			if err != nil {
				return fmt.Errorf("node-%d: %s: %w", node, rel, err)
			}
			idx, err := strconv.Atoi(base[dot+1:])
			if err != nil {
				return fmt.Errorf("node-%d: %s: %w", node, rel, err)
			}
			if out[id] == nil {
				out[id] = map[int]int{}
			}
			if prev, dup := out[id][idx]; dup {
				return fmt.Errorf("shard %d of segment %s is on node-%d and node-%d", idx, id, prev, node)
			}
			out[id][idx] = node
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			e.t.Fatal(err)
		}
	}
	return out
}

// segments returns every segment the journal has recorded.
func (e *gridEnv) segments() []*remote.SegmentInfo {
	e.t.Helper()
	rows, err := e.j.db.Query(`SELECT id FROM segments`)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []remote.SegmentID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			e.t.Fatal(err)
		}
		var id remote.SegmentID
		copy(id[:], b)
		ids = append(ids, id)
	}
	rows.Close()
	var out []*remote.SegmentInfo
	for _, id := range ids {
		out = append(out, must[*remote.SegmentInfo](e.t)(loadSegment(bg, e.j.db, id)))
	}
	return out
}

// checkPlacement checks that the node directories hold exactly the shards
// the journal recorded: want shards per segment, each on the node named
// in the segment's Nodes, none on a node that is down, and no other shard
// files. It returns the number of segments.
func (e *gridEnv) checkPlacement(want int) int {
	e.t.Helper()
	segs := e.segments()
	files := e.shardFiles()
	if len(segs) == 0 {
		e.t.Fatal("the journal recorded no segments")
	}
	if len(files) != len(segs) {
		e.t.Fatalf("node directories hold shards of %d segments, the journal recorded %d", len(files), len(segs))
	}
	for _, s := range segs {
		got := files[s.ID]
		if len(got) != want || s.Stored() != want {
			e.t.Fatalf("segment %s: %d shard files, %d recorded (%q), want %d", s.ID, len(got), s.Stored(), s.Nodes, want)
		}
		for idx, node := range got {
			if e.nodes[node].IsDown() {
				e.t.Fatalf("segment %s: shard %d is on node-%d, which is down", s.ID, idx, node)
			}
			if name := fmt.Sprintf("node-%d", node); s.Nodes[idx] != name {
				e.t.Fatalf("segment %s: shard %d is on %s, recorded on %q", s.ID, idx, name, s.Nodes[idx])
			}
		}
	}
	return len(segs)
}

// writeFile creates name and writes data in 1 MiB pieces.
func (e *gridEnv) writeFile(name string, data []byte) Ino {
	e.t.Helper()
	f := must[Attr](e.t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
	for off := 0; off < len(data); off += 1 << 20 {
		must[int](e.t)(e.j.WriteAt(bg, f.Ino, data[off:min(off+1<<20, len(data))], int64(off)))
	}
	return f.Ino
}

// waitFor polls cond (a read-only look at the journal) until it holds or
// timeout passes.
func (e *gridEnv) waitFor(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			e.t.Fatalf("waited %v for %s; stats %+v", timeout, what, e.j.Stats())
		}
	}
}

func (e *gridEnv) waitDurable(d time.Duration) error {
	ctx, cancel := context.WithTimeout(bg, d)
	defer cancel()
	return e.j.WaitDurable(ctx)
}

func (e *gridEnv) wantContent(ino Ino, want []byte) {
	e.t.Helper()
	if got := readAll(e.t, e.j, ino); !bytes.Equal(got, want) {
		e.t.Fatalf("inode %d: %d bytes read back differ from the %d written", ino, len(got), len(want))
	}
}

func (e *gridEnv) wantState(ino Ino, want State) FileStatus {
	e.t.Helper()
	st := must[FileStatus](e.t)(e.j.Status(bg, ino))
	if st.State != want {
		e.t.Fatalf("inode %d: status %v (%+v), want %v", ino, st.State, st, want)
	}
	return st
}

// sealedBytes is the total sealed length of the blocks the journal holds.
func (e *gridEnv) sealedBytes() int64 {
	e.t.Helper()
	var n int64
	if err := e.j.db.QueryRow(`SELECT coalesce(sum(sealed_len), 0) FROM blocks WHERE refcount > 0`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// gridOverhead bounds what the grid adds to size×n/k for the given number
// of segments: sealing (nonce, tag, framing per block), shard padding and
// headers with chunk checksums. Generous but far below one block.
func gridOverhead(size int64, segs int) int64 { return size/100 + int64(segs)*64<<10 }

// TestGridDedup: the same content under three names grows the node
// directories by about size×n/k, not three times that.
func TestGridDedup(t *testing.T) { bubble(t, testGridDedup) }

func testGridDedup(t *testing.T) {
	size := int64(24 << 20)
	if *long {
		size = 100 << 20
	}
	// No idle flush while a file is written: on a loaded machine a pause
	// between two writes would seal and upload a half-written block that
	// the next flush supersedes (garbage on the nodes, counted here).
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.BlockSize = 4 << 20; o.SegmentSize = 16 << 20; o.IdleFlush = time.Minute })
	data := make([]byte, size)
	fillRand(21, data)
	before := e.nodeBytes()
	var inos []Ino
	for _, name := range []string{"one", "two", "three"} {
		inos = append(inos, e.writeFile(name, data))
	}
	if err := e.waitDurable(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	grown := e.nodeBytes() - before
	segs := e.checkPlacement(6)
	expect := size * 6 / 4
	limit := expect + gridOverhead(expect, segs)
	t.Logf("3 × %d MiB: node dirs grew %d bytes; %d MiB × n/k = %d; limit %d; 3 copies would be %d (%.3f of expected)",
		size>>20, grown, size>>20, expect, limit, 3*expect, float64(grown)/float64(expect))
	if grown < expect || grown > limit {
		t.Fatalf("node directories grew %d bytes, want %d..%d (size × n/k plus metadata)", grown, expect, limit)
	}
	if sealed := e.sealedBytes(); sealed < size || sealed > size+size/100 {
		t.Fatalf("the journal holds %d sealed bytes for %d bytes of content stored 3 times", sealed, size)
	}
	if st := e.j.Stats(); st.ShippedBytes > limit || st.RepairOwed != 0 || st.QueuedBlocks != 0 {
		t.Fatalf("stats after dedup upload: %+v (shipped limit %d)", st, limit)
	}
	for _, ino := range inos {
		e.wantState(ino, StateDurable)
		e.wantContent(ino, data)
	}
	if e.reader.reads.Load() == 0 {
		t.Fatal("the read-back never reached the grid")
	}
	e.reopen()
	e.wantContent(inos[2], data)
}

// TestGridDifferential: changing 1 MiB in the middle of a big file grows
// the node directories by at most 2 blocks × n/k plus metadata.
func TestGridDifferential(t *testing.T) { bubble(t, testGridDifferential) }

func testGridDifferential(t *testing.T) {
	size, bs := int64(64<<20), int64(4<<20)
	if *long {
		size = 1 << 30
	}
	// No idle flush mid-write (see TestGridDedup).
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.BlockSize = int(bs); o.SegmentSize = 16 << 20; o.IdleFlush = time.Minute })
	data := make([]byte, size)
	fillRand(22, data)
	ino := e.writeFile("big", data)
	if err := e.waitDurable(5 * time.Minute); err != nil {
		t.Fatal(err)
	}
	first := e.nodeBytes()
	shipped0 := e.j.Stats().ShippedBytes
	segs0 := e.checkPlacement(6)
	if want := size * 6 / 4; first < want || first > want+gridOverhead(want, segs0) {
		t.Fatalf("a %d-byte file grew the node directories by %d bytes, want about %d", size, first, want)
	}

	// 1 MiB of fresh random bytes straddling the block boundary at size/2.
	edit := make([]byte, 1<<20)
	fillRand(23, edit)
	off := size/2 - int64(len(edit))/2
	must[int](t)(e.j.WriteAt(bg, ino, edit, off))
	copy(data[off:], edit)
	if err := e.j.Fsync(bg, ino); err != nil {
		t.Fatal(err)
	}
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	grown := e.nodeBytes() - first
	shipped := e.j.Stats().ShippedBytes - shipped0
	segs := e.checkPlacement(6) - segs0
	expect := 2 * bs * 6 / 4
	limit := expect + gridOverhead(expect, segs)
	t.Logf("%d MiB file, %d MiB blocks: first upload %d bytes in %d segments; 1 MiB edit grew node dirs %d bytes "+
		"(uploader counted %d) in %d segment(s); 2 blocks × n/k = %d, limit %d",
		size>>20, bs>>20, first, segs0, grown, shipped, segs, expect, limit)
	// The edited blocks are new random bytes, so both must really ship.
	if grown < expect || grown > limit {
		t.Fatalf("a 1 MiB edit grew the node directories by %d bytes, want %d..%d", grown, expect, limit)
	}
	if shipped < expect || shipped > limit {
		t.Fatalf("the uploader counted %d shard bytes for a 1 MiB edit, want %d..%d", shipped, expect, limit)
	}
	e.wantState(ino, StateDurable)
	e.reopen()
	p := make([]byte, 3*bs)
	lo := size/2 - bs - bs/2
	must[int](t)(e.j.ReadAt(bg, ino, p, lo))
	if !bytes.Equal(p, data[lo:lo+3*bs]) {
		t.Fatal("the edited region does not read back from the grid")
	}
	if *long {
		e.wantContent(ino, data)
	}
}

// TestGridTwoDownOfEight: with 8 nodes (k=4, m=2) and 2 down, uploads
// complete with all 6 shards on nodes that are up.
func TestGridTwoDownOfEight(t *testing.T) { bubble(t, testGridTwoDownOfEight) }

func testGridTwoDownOfEight(t *testing.T) {
	e := newGridEnv(t, 8, 4, 2, nil)
	e.nodes[2].SetDown(true)
	e.nodes[5].SetDown(true)
	data := make([]byte, 20<<20)
	fillRand(24, data)
	ino := e.writeFile("f", data)
	small := e.writeFile("small", data[:5000])
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	segs := e.checkPlacement(6)
	st := e.j.Stats()
	t.Logf("8 nodes, 2 down: %d segments, each with 6 shards on up nodes; stats %+v", segs, st)
	if st.RepairOwed != 0 {
		t.Fatalf("RepairOwed = %d with 6 nodes up, want 0", st.RepairOwed)
	}
	if e.nodes[2].Stats().Down == 0 && e.nodes[5].Stats().Down == 0 {
		t.Fatal("no call reached a down node: the test did not exercise skipping them")
	}
	e.wantState(ino, StateDurable)
	e.wantState(small, StateDurable)
	e.wantContent(ino, data)
	e.wantContent(small, data[:5000])
}

// TestGridOneDownOfSix: with 6 nodes and 1 down, uploads complete with
// k+1 shards, repair is owed and the file says degraded.
func TestGridOneDownOfSix(t *testing.T) { bubble(t, testGridOneDownOfSix) }

func testGridOneDownOfSix(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, nil)
	e.nodes[3].SetDown(true)
	data := make([]byte, 12<<20)
	fillRand(25, data)
	ino := e.writeFile("f", data)
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	segs := e.checkPlacement(5)
	for _, s := range e.segments() {
		if countEmpty(s.Nodes) != 1 {
			t.Fatalf("segment %s: nodes %q, want exactly one missing shard", s.ID, s.Nodes)
		}
	}
	st := e.j.Stats()
	t.Logf("6 nodes, 1 down: %d segments with 5 shards each; stats %+v", segs, st)
	if st.RepairOwed != int64(segs) || st.RepairOwed == 0 {
		t.Fatalf("RepairOwed = %d, want %d (every segment)", st.RepairOwed, segs)
	}
	fst := e.wantState(ino, StateDegraded)
	if fst.PendingBlocks != 0 || fst.Blocks != 12 {
		t.Fatalf("status %+v, want 12 blocks none pending", fst)
	}
	e.wantContent(ino, data) // with node-3 still down: reconstructs where needed
	e.nodes[3].SetDown(false)
	e.reopen()
	e.wantState(ino, StateDegraded) // repair is owed until someone repairs
	e.wantContent(ino, data)
}

func countEmpty(s []string) int {
	n := 0
	for _, x := range s {
		if x == "" {
			n++
		}
	}
	return n
}

// TestGridWaitsForNodes: with fewer than k+1 nodes up, then all down,
// uploads wait with the data safe and readable in the journal, and resume
// on their own when the nodes return.
func TestGridWaitsForNodes(t *testing.T) { bubble(t, testGridWaitsForNodes) }

func testGridWaitsForNodes(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, nil)
	e.nodes[0].SetDown(true)
	e.nodes[4].SetDown(true)
	a := make([]byte, 6<<20+12345)
	fillRand(26, a)
	inoA := e.writeFile("a", a)
	if err := e.j.Fsync(bg, inoA); err != nil {
		t.Fatal(err)
	}
	if err := e.waitDurable(time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDurable with 4 of 6 nodes up: %v, want DeadlineExceeded", err)
	}
	st := e.j.Stats()
	if st.Errors == 0 || !strings.Contains(st.LastError, remote.ErrTooFewNodes.Error()) {
		t.Fatalf("stats with 4 of 6 nodes up: %+v, want errors naming %q", st, remote.ErrTooFewNodes)
	}
	if st.QueuedBlocks != 7 || st.QueuedBytes != int64(len(a)) {
		t.Fatalf("stats with 4 of 6 nodes up: %+v, want 7 blocks of %d bytes queued", st, len(a))
	}
	if fst := e.wantState(inoA, StateLocal); fst.PendingBytes != int64(len(a)) {
		t.Fatalf("status %+v, want %d bytes pending", fst, len(a))
	}
	e.wantContent(inoA, a)

	// All down: a second file waits too. Puts are refused first, so the
	// attempt under way (if any) still removes the shards it stored on the
	// 4 nodes that were up; once two more attempts have failed none is
	// under way, and the nodes go down for good.
	errs0 := e.j.Stats().Errors
	for _, n := range e.nodes {
		n.SetRules(faulty.Rule{Ops: faulty.OpPut, Action: faulty.Fail})
	}
	e.waitFor(10*time.Second, "two failed uploads with every put refused", func() bool { return e.j.Stats().Errors >= errs0+2 })
	for _, n := range e.nodes {
		n.SetDown(true)
		n.SetRules()
	}
	if files := e.shardFiles(); len(files) != 0 {
		t.Fatalf("failed segment writes left shards of %d segments on the nodes", len(files))
	}
	b := make([]byte, 3<<20)
	fillRand(27, b)
	inoB := e.writeFile("b", b)
	if err := e.waitDurable(time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDurable with every node down: %v, want DeadlineExceeded", err)
	}
	errsDown := e.j.Stats().Errors
	e.wantState(inoA, StateLocal)
	e.wantState(inoB, StateLocal)
	e.wantContent(inoA, a)
	e.wantContent(inoB, b)
	if files := e.shardFiles(); len(files) != 0 {
		t.Fatalf("with every node down, shards of %d segments appeared", len(files))
	}

	// The nodes return; the test only watches.
	for _, n := range e.nodes {
		n.SetDown(false)
	}
	start := time.Now()
	e.waitFor(30*time.Second, "the queue to drain after the nodes returned", func() bool { return e.j.Stats().QueuedBlocks == 0 })
	drained := time.Since(start)
	if err := e.waitDurable(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	segs := e.checkPlacement(6)
	st = e.j.Stats()
	t.Logf("queue drained %v after the nodes returned (%d upload errors while down): %d segments, %d bytes done, %d shard bytes shipped",
		drained.Round(time.Millisecond), errsDown, segs, st.DoneBytes, st.ShippedBytes)
	if st.DoneBytes != int64(len(a)+len(b)) || st.RepairOwed != 0 {
		t.Fatalf("stats after the nodes returned: %+v, want %d bytes done, no repair owed", st, len(a)+len(b))
	}
	e.wantState(inoA, StateDurable)
	e.wantState(inoB, StateDurable)

	// Reopen over fresh stores, grid and reader: the bytes come from the
	// node directories.
	e.reopen()
	if ents, err := os.ReadDir(filepath.Join(e.opts.Dir, "staging")); err != nil || len(ents) != 0 {
		t.Fatalf("staging after the upload: %d files, %v", len(ents), err)
	}
	e.wantContent(inoA, a)
	e.wantContent(inoB, b)
	if r := e.reader.reads.Load(); r < 8 {
		t.Fatalf("the fresh reader fetched %d blocks from the grid, want at least 8", r)
	}
	if gs := e.grid.Stats(); gs.HealthyReads == 0 {
		t.Fatalf("grid stats after the read-back: %+v", gs)
	}
}
