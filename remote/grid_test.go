package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote/shard"
)

type testGrid struct {
	*Grid
	stores []*MemStore
}

func newTestGrid(t testing.TB, nodes, k, m int, edit func(*GridOptions)) *testGrid {
	t.Helper()
	tg := &testGrid{}
	o := GridOptions{K: k, M: m, Sealer: newTestSealer(t), ChunkSize: 4 << 10, HedgeAfter: 50 * time.Millisecond, CallTimeout: 2 * time.Second}
	for i := range nodes {
		s := NewMemStore()
		tg.stores = append(tg.stores, s)
		o.Members = append(o.Members, Member{Name: fmt.Sprintf("node-%d", i), Store: s})
	}
	if edit != nil {
		edit(&o)
	}
	g, err := NewGrid(o)
	if err != nil {
		t.Fatal(err)
	}
	tg.Grid = g
	return tg
}

func (tg *testGrid) store(name string) *MemStore {
	for i, m := range tg.view().all {
		if m.Name == name {
			return tg.stores[i]
		}
	}
	return nil
}

// written is a segment of sealed blocks and the plaintexts they hold.
type written struct {
	seg   *SegmentInfo
	data  []byte
	refs  []BlockRef
	plain [][]byte
}

// writeMixed seals nblocks mixed blocks of about blockSize bytes (odd
// lengths, so blocks straddle shard boundaries) into one segment.
func writeMixed(t testing.TB, g *Grid, r *rand.Rand, nblocks, blockSize int) *written {
	t.Helper()
	w := &written{}
	var data []byte
	type loc struct{ off, n int64 }
	var locs []loc
	for i := range nblocks {
		n := blockSize - r.IntN(blockSize/3+1)
		p := mixedBlock(r, i, n)
		id := g.sealer.BlockID(p)
		off := int64(len(data))
		data = g.sealer.Seal(data, id, p)
		locs = append(locs, loc{off, int64(len(data)) - off})
		w.plain = append(w.plain, p)
		w.refs = append(w.refs, BlockRef{ID: id})
	}
	seg, err := g.WriteSegment(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	w.seg, w.data = seg, data
	for i := range w.refs {
		w.refs[i].Seg, w.refs[i].Offset, w.refs[i].Length = seg, locs[i].off, locs[i].n
	}
	return w
}

func (w *written) check(t testing.TB, g *Grid) {
	t.Helper()
	ctx := context.Background()
	for i, ref := range w.refs {
		plain, sealed, err := g.FetchBlock(ctx, ref)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if !bytes.Equal(plain, w.plain[i]) || !bytes.Equal(sealed, w.data[ref.Offset:ref.Offset+ref.Length]) {
			t.Fatalf("block %d: read back differs", i)
		}
	}
	// Raw ranges, including ones across shard boundaries.
	for _, r := range [][2]int64{{0, w.seg.Size}, {w.seg.ShardSize - 10, 20}, {w.seg.Size - 1, 1}, {12345 % w.seg.Size, min(70000, w.seg.Size-12345%w.seg.Size)}} {
		p := make([]byte, r[1])
		if err := g.ReadSegment(ctx, w.seg, r[0], p); err != nil {
			t.Fatalf("ReadSegment [%d,+%d): %v", r[0], r[1], err)
		}
		if !bytes.Equal(p, w.data[r[0]:r[0]+r[1]]) {
			t.Fatalf("ReadSegment [%d,+%d): differs", r[0], r[1])
		}
	}
}

// noHedge keeps a loaded test machine from hedging reads that assert
// they took the healthy path.
func noHedge(o *GridOptions) { o.HedgeAfter = time.Minute }

func TestGridRoundTrip(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, noHedge)
	r := rand.New(rand.NewPCG(1, 1))
	for range 3 {
		w := writeMixed(t, tg.Grid, r, 9, 50000)
		if w.seg.Stored() != 6 {
			t.Fatalf("stored %d shards, want 6", w.seg.Stored())
		}
		w.check(t, tg.Grid)
	}
	if st := tg.Stats(); st.FallbackReads != 0 || st.Reconstructs != 0 {
		t.Fatalf("all nodes up but stats %+v", st)
	}
}

func TestGridEveryPairDown(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, nil)
	r := rand.New(rand.NewPCG(2, 2))
	ws := []*written{writeMixed(t, tg.Grid, r, 7, 40000), writeMixed(t, tg.Grid, r, 5, 30000)}
	pairs := 0
	for a := range 6 {
		for b := a + 1; b < 6; b++ {
			tg.stores[a].SetMode(MemDown)
			tg.stores[b].SetMode(MemDown)
			for _, w := range ws {
				w.check(t, tg.Grid)
			}
			tg.stores[a].SetMode(MemUp)
			tg.stores[b].SetMode(MemUp)
			pairs++
		}
	}
	if pairs != 15 || tg.Stats().Reconstructs == 0 {
		t.Fatalf("pairs %d, stats %+v", pairs, tg.Stats())
	}
}

func TestGridFlippedBytes(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, nil)
	r := rand.New(rand.NewPCG(3, 3))
	for round := range 20 {
		w := writeMixed(t, tg.Grid, r, 6, 30000)
		// Flip bytes in two shards of the segment: anywhere in the object,
		// header included.
		for _, i := range r.Perm(6)[:2] {
			st := tg.store(w.seg.Nodes[i])
			st.Mutate(ShardName(w.seg.ID, i), func(b []byte) {
				for range 1 + r.IntN(5) {
					b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
				}
			})
		}
		w.check(t, tg.Grid)
		_ = round
	}
	if tg.Stats().FallbackReads == 0 || tg.Stats().ShardsSkipped == 0 {
		t.Fatalf("flipped bytes never triggered the fallback: %+v", tg.Stats())
	}
}

func TestGridErrorsAndHang(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, nil)
	r := rand.New(rand.NewPCG(4, 4))
	w := writeMixed(t, tg.Grid, r, 8, 40000)
	// The nodes holding data shards 0 and 2: reads must go around them.
	tg.store(w.seg.Nodes[0]).SetMode(MemFail)
	tg.store(w.seg.Nodes[2]).SetMode(MemHang)
	t0 := time.Now()
	w.check(t, tg.Grid)
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("reads with a failing and a hung node took %v", d)
	}
	if st := tg.Stats(); st.Hedged == 0 || st.FallbackReads < 2 || st.Reconstructs < 2 {
		t.Fatalf("no fallback with a failing and a hung node: %+v", tg.Stats())
	}
}

func TestGridTooFewShardsFast(t *testing.T) {
	for _, mode := range []MemMode{MemDown, MemHang} {
		tg := newTestGrid(t, 6, 4, 2, func(o *GridOptions) { o.CallTimeout = 500 * time.Millisecond })
		r := rand.New(rand.NewPCG(5, 5))
		w := writeMixed(t, tg.Grid, r, 4, 20000)
		// Stop the node holding block 1 and two more.
		home := tg.store(w.seg.Nodes[pieces(w.seg, w.refs[1].Offset, 1)[0].shard])
		home.SetMode(mode)
		for stopped := 1; stopped < 3; {
			if s := tg.stores[r.IntN(6)]; MemMode(s.mode.Load()) == MemUp {
				s.SetMode(mode)
				stopped++
			}
		}
		t0 := time.Now()
		_, _, err := tg.FetchBlock(context.Background(), w.refs[1])
		d := time.Since(t0)
		if !errors.Is(err, ErrTooFewShards) {
			t.Fatalf("mode %d: err %v, want ErrTooFewShards", mode, err)
		}
		var tf *TooFewShardsError
		if !errors.As(err, &tf) || tf.Segment != w.seg.ID || tf.Need != 4 || tf.Usable >= 4 {
			t.Fatalf("mode %d: error %#v does not name the segment", mode, tf)
		}
		if !strings.Contains(err.Error(), w.seg.ID.String()) {
			t.Fatalf("message %q lacks the segment id", err)
		}
		if limit := 5 * time.Second; d > limit {
			t.Fatalf("mode %d: took %v", mode, d)
		}
		if mode == MemDown && d > time.Second {
			t.Fatalf("stopped nodes: took %v, want well under a second", d)
		}
		err = tg.ReadSegment(context.Background(), w.seg, w.refs[1].Offset, make([]byte, 1))
		if !errors.Is(err, ErrTooFewShards) {
			t.Fatalf("ReadSegment: %v", err)
		}
	}
}

func TestGridHealthyReadOneGetPerShard(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, noHedge)
	r := rand.New(rand.NewPCG(6, 6))
	w := writeMixed(t, tg.Grid, r, 10, 30000)
	straddles := 0
	for i, ref := range w.refs {
		before := make([]int64, 6)
		for j, s := range tg.stores {
			before[j] = s.Gets.Load()
		}
		ps := pieces(ref.Seg, ref.Offset, ref.Length)
		if _, _, err := tg.FetchBlock(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
		var total int64
		for j, s := range tg.stores {
			total += s.Gets.Load() - before[j]
		}
		if total != int64(len(ps)) {
			t.Fatalf("block %d touches %d shards but took %d Gets", i, len(ps), total)
		}
		if len(ps) == 2 {
			straddles++
		}
	}
	if straddles == 0 {
		t.Fatal("no block straddled a shard boundary; test data too regular")
	}
	if st := tg.Stats(); st.Reconstructs != 0 || st.FallbackReads != 0 || st.HealthyReads != int64(len(w.refs)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestWriteDegradedAndTooFewNodes(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, nil)
	r := rand.New(rand.NewPCG(7, 7))
	tg.stores[1].SetMode(MemDown)
	w := writeMixed(t, tg.Grid, r, 3, 20000)
	if w.seg.Stored() != 5 {
		t.Fatalf("one node down: stored %d, want 5 (%v)", w.seg.Stored(), w.seg.Nodes)
	}
	for _, n := range w.seg.Nodes {
		if n == "node-1" {
			t.Fatal("shard recorded on the down node")
		}
	}
	w.check(t, tg.Grid)

	tg.stores[4].SetMode(MemFull)
	before := 0
	for _, s := range tg.stores {
		before += len(s.Objects())
	}
	_, err := tg.WriteSegment(context.Background(), bytes.Repeat([]byte("x"), 10000))
	if !errors.Is(err, ErrTooFewNodes) {
		t.Fatalf("two nodes out: err %v, want ErrTooFewNodes", err)
	}
	if !strings.Contains(err.Error(), "only 4 of 6 nodes") {
		t.Fatalf("message does not say how many nodes answered: %v", err)
	}
	after := 0
	for _, s := range tg.stores {
		after += len(s.Objects())
	}
	if after != before {
		t.Fatalf("failed write left %d orphan objects", after-before)
	}
}

func TestWriteMoreNodesThanN(t *testing.T) {
	tg := newTestGrid(t, 9, 4, 2, nil)
	r := rand.New(rand.NewPCG(8, 8))
	down := map[string]bool{"node-0": true, "node-4": true, "node-7": true}
	for i, m := range tg.view().all {
		if down[m.Name] {
			tg.stores[i].SetMode(MemDown)
		}
	}
	for range 10 {
		w := writeMixed(t, tg.Grid, r, 2, 5000)
		seen := map[string]bool{}
		for _, n := range w.seg.Nodes {
			if n == "" || down[n] || seen[n] {
				t.Fatalf("placement %v: missing, down or repeated node", w.seg.Nodes)
			}
			seen[n] = true
		}
		w.check(t, tg.Grid)
	}
}

func TestPlacementZones(t *testing.T) {
	zones := []string{"a", "a", "b", "b", "c", "c", "a", "b", "c"}
	tg := newTestGrid(t, 9, 2, 1, func(o *GridOptions) {
		for i := range o.Members {
			o.Members[i].Zone = zones[i]
		}
	})
	zoneOf := map[string]string{}
	for i, m := range tg.view().all {
		zoneOf[m.Name] = zones[i]
	}
	r := rand.New(rand.NewPCG(9, 9))
	for range 30 {
		w := writeMixed(t, tg.Grid, r, 1, 3000)
		z := map[string]bool{}
		for _, n := range w.seg.Nodes {
			z[zoneOf[n]] = true
		}
		if len(z) != 3 {
			t.Fatalf("3 shards over 3 zones landed in %d zones: %v", len(z), w.seg.Nodes)
		}
	}
	// 6 shards over 3 zones: two per zone, never three.
	tg6 := newTestGrid(t, 9, 4, 2, func(o *GridOptions) {
		for i := range o.Members {
			o.Members[i].Zone = zones[i]
		}
	})
	for range 30 {
		w := writeMixed(t, tg6.Grid, r, 1, 3000)
		z := map[string]int{}
		for _, n := range w.seg.Nodes {
			z[zoneOf[n]]++
		}
		if z["a"] != 2 || z["b"] != 2 || z["c"] != 2 {
			t.Fatalf("6 shards over 3 zones: %v", z)
		}
	}
}

func TestPlacementWeightsAndSpread(t *testing.T) {
	nodes := make([]PlaceNode, 5)
	for i := range nodes {
		nodes[i] = PlaceNode{Name: fmt.Sprintf("n%d", i)}
	}
	nodes[0].Weight = 4
	pl := NewPlacer(nodes)
	count := make([]int, 5)
	const trials = 20000
	r := rand.New(rand.NewPCG(10, 10))
	for range trials {
		var seg SegmentID
		for i := range seg {
			seg[i] = byte(r.Uint32())
		}
		j := pl.Segment(seg).Pick(0, nil)
		count[j]++
	}
	// Weight 4 against four of weight 1: wins half of the time.
	if f := float64(count[0]) / trials; f < 0.46 || f > 0.54 {
		t.Fatalf("heavy node won %.3f of first shards, want ~0.5 (%v)", f, count)
	}
	for j := 1; j < 5; j++ {
		if f := float64(count[j]) / trials; f < 0.10 || f > 0.15 {
			t.Fatalf("node %d won %.3f, want ~0.125 (%v)", j, f, count)
		}
	}
}

func TestNoPlaintextOnNodes(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, nil)
	marker := "MESHDRIVE-MARKER-7f3a9c"
	names := []string{"tax-return-2025.pdf", "holiday photos", "secret-plans.docx"}
	var data []byte
	var refs []BlockRef
	var plains [][]byte
	for i := range 6 {
		var p []byte
		switch i % 3 {
		case 0:
			p = bytes.Repeat([]byte(marker), 20000) // compressible
		case 1:
			p = []byte(strings.Repeat(strings.Join(names, "/")+"\n", 500))
		default:
			p = []byte(marker + " " + names[i%len(names)]) // tiny, not compressed
		}
		id := tg.sealer.BlockID(p)
		off := int64(len(data))
		data = tg.sealer.Seal(data, id, p)
		refs = append(refs, BlockRef{ID: id, Offset: off, Length: int64(len(data)) - off})
		plains = append(plains, p)
	}
	seg, err := tg.WriteSegment(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	meta := tg.sealer.SealMeta("root", []byte(marker+" root record "+names[0]))
	if _, err := tg.PutMeta(context.Background(), "root", meta); err != nil {
		t.Fatal(err)
	}
	needles := append([]string{marker, marker[:12]}, names...)
	objects := 0
	for _, s := range tg.stores {
		for name, obj := range s.Objects() {
			objects++
			for _, n := range needles {
				if bytes.Contains(obj, []byte(n)) || strings.Contains(name, n) {
					t.Fatalf("object %s contains %q", name, n)
				}
			}
		}
	}
	if objects != 12 {
		t.Fatalf("searched %d objects, want 6 shards + 6 meta copies", objects)
	}
	for i, ref := range refs {
		ref.Seg = seg
		got, _, err := tg.FetchBlock(context.Background(), ref)
		if err != nil || !bytes.Equal(got, plains[i]) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
}

func TestMetaObjects(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, nil)
	ctx := context.Background()
	if _, err := tg.GetMeta(ctx, "root"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing meta: %v", err)
	}
	tg.stores[5].SetMode(MemDown)
	n, err := tg.PutMeta(ctx, "root", []byte("record-1"))
	if err != nil || n != 5 {
		t.Fatalf("PutMeta with one node down: %d, %v", n, err)
	}
	tg.stores[5].SetMode(MemUp)
	// Corrupt most copies: the good one still comes back.
	for i := range 4 {
		tg.stores[i].Mutate("meta/root", func(b []byte) { b[len(b)-1] ^= 0xff })
	}
	got, err := tg.GetMeta(ctx, "root")
	if err != nil || string(got) != "record-1" {
		t.Fatalf("GetMeta: %q, %v", got, err)
	}
	tg.stores[4].Mutate("meta/root", func(b []byte) { b[len(b)-1] ^= 0xff })
	if _, err := tg.GetMeta(ctx, "root"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("all copies corrupt: %v", err)
	}
	for _, s := range tg.stores {
		s.SetMode(MemDown)
	}
	if _, err := tg.PutMeta(ctx, "root", []byte("x")); err == nil {
		t.Fatal("PutMeta with every node down succeeded")
	}
	if _, err := tg.PutMeta(ctx, "../escape", []byte("x")); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestDeleteHealthCapacity(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, func(o *GridOptions) { o.CallTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	r := rand.New(rand.NewPCG(11, 11))
	w := writeMixed(t, tg.Grid, r, 3, 10000)
	total, free := tg.Capacity(ctx)
	if total != 6<<30 || free >= total {
		t.Fatalf("capacity %d free %d", total, free)
	}
	if err := tg.DeleteSegment(ctx, w.seg); err != nil {
		t.Fatal(err)
	}
	for i, s := range tg.stores {
		if len(s.Objects()) != 0 {
			t.Fatalf("store %d still holds %d objects", i, len(s.Objects()))
		}
	}
	if err := tg.DeleteSegment(ctx, w.seg); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	tg.stores[2].SetMode(MemDown)
	tg.stores[3].SetMode(MemHang)
	t0 := time.Now()
	hs := tg.Health(ctx)
	if time.Since(t0) > time.Second {
		t.Fatalf("Health took %v", time.Since(t0))
	}
	for i, h := range hs {
		if want := i != 2 && i != 3; h.Up != want || (h.Err == "") != want {
			t.Fatalf("node %d: %+v", i, h)
		}
	}
	if total, _ := tg.Capacity(ctx); total != 4<<30 {
		t.Fatalf("capacity over 4 up nodes: %d", total)
	}
}

func TestNewGridChecks(t *testing.T) {
	s := newTestSealer(t)
	mk := func(n int) []Member {
		var ms []Member
		for i := range n {
			ms = append(ms, Member{Name: fmt.Sprint(i), Store: NewMemStore()})
		}
		return ms
	}
	bad := []GridOptions{
		{K: 4, M: 2, Members: mk(5), Sealer: s},
		{K: 0, M: 2, Members: mk(6), Sealer: s},
		{K: 4, M: 2, Members: mk(6)},
		{K: 4, M: 2, Members: append(mk(5), Member{Name: "0", Store: NewMemStore()}), Sealer: s},
		{K: 4, M: 2, Members: mk(6), Sealer: s, ChunkSize: 5000},
	}
	for i, o := range bad {
		if _, err := NewGrid(o); err == nil {
			t.Errorf("options %d accepted", i)
		}
	}
}

func TestDownNodeTriedLast(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, noHedge)
	r := rand.New(rand.NewPCG(12, 12))
	w := writeMixed(t, tg.Grid, r, 4, 20000)
	home := tg.store(w.seg.Nodes[0]) // holds block 0
	home.SetMode(MemDown)
	w.check(t, tg.Grid) // first read finds it down
	before := home.Gets.Load()
	for range 3 {
		w.check(t, tg.Grid)
	}
	if got := home.Gets.Load() - before; got != 0 {
		t.Fatalf("a node seen down within %v was asked %d more times", downFor, got)
	}
	home.SetMode(MemUp)
	home.downUntil(tg.Grid).Store(0) // as if downFor had passed
	st := tg.Stats()
	w.check(t, tg.Grid)
	if tg.Stats().FallbackReads != st.FallbackReads {
		t.Fatal("node back up but reads still go to the fallback")
	}
}

// downUntil returns the grid's down mark of the member backed by s.
func (s *MemStore) downUntil(g *Grid) *atomic.Int64 {
	for _, m := range g.view().all {
		if m.Store == Store(s) {
			return &m.downUntil
		}
	}
	panic("store not in grid")
}

// sharesArray reports whether a starts in b's backing array.
func sharesArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:1][0] == &b[:1][0]
}

// FetchBlockInto reads into the caller's buffers on the healthy path and
// says they are free; buffers too small are not used; when the
// reconstruct read answers while the healthy read hangs, the results are
// the fallback's own and the buffers are not free (the hung read may
// still write into them).
func TestFetchBlockIntoBuffers(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, noHedge)
	r := rand.New(rand.NewPCG(7, 7))
	w := writeMixed(t, tg.Grid, r, 6, 30000)
	ctx := context.Background()
	check := func(i int, plain, sealed []byte) {
		t.Helper()
		ref := w.refs[i]
		if !bytes.Equal(plain, w.plain[i]) || !bytes.Equal(sealed, w.data[ref.Offset:ref.Offset+ref.Length]) {
			t.Fatalf("block %d: read back differs", i)
		}
	}
	pd, sd := make([]byte, 7, 64<<10), make([]byte, 3, 64<<10) // lengths ignored
	for i, ref := range w.refs {
		plain, sealed, free, err := tg.FetchBlockInto(ctx, ref, pd, sd)
		if err != nil {
			t.Fatal(err)
		}
		check(i, plain, sealed)
		if !free || !sharesArray(plain, pd) || !sharesArray(sealed, sd) {
			t.Fatalf("block %d: free %v, plaintext in the buffer %v, sealed in the buffer %v; want all true",
				i, free, sharesArray(plain, pd), sharesArray(sealed, sd))
		}
	}
	small := make([]byte, 0, 100)
	plain, sealed, free, err := tg.FetchBlockInto(ctx, w.refs[0], small, small)
	if err != nil {
		t.Fatal(err)
	}
	check(0, plain, sealed)
	if !free || sharesArray(plain, small) || sharesArray(sealed, small) {
		t.Fatalf("buffers too small: free %v, used %v %v; want free, unused", free, sharesArray(plain, small), sharesArray(sealed, small))
	}

	hedged := newTestGrid(t, 6, 4, 2, nil)
	w2 := writeMixed(t, hedged.Grid, r, 2, 30000)
	ref := w2.refs[0]
	home := hedged.store(w2.seg.Nodes[pieces(ref.Seg, ref.Offset, ref.Length)[0].shard])
	home.SetMode(MemHang)
	plain, sealed, free, err = hedged.FetchBlockInto(ctx, ref, pd, sd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, w2.plain[0]) {
		t.Fatal("hedged read differs")
	}
	if free || sharesArray(plain, pd) || sharesArray(sealed, sd) {
		t.Fatalf("answered by the reconstruct read while the healthy one hangs: free %v, used %v %v; want not free, unused",
			free, sharesArray(plain, pd), sharesArray(sealed, sd))
	}
	home.SetMode(MemUp)
}

// forgetfulStore answers List from the start whatever after says, as a
// broken or foreign node might.
type forgetfulStore struct{ *MemStore }

func (s forgetfulStore) List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error) {
	return s.MemStore.List(ctx, prefix, "", limit)
}

// TestListFromForgetfulNode: a node whose listing does not move past
// after is an error of that node (ListObjects) or a node down (Survey),
// not a loop that lists, and grows its list, for ever.
func TestListFromForgetfulNode(t *testing.T) {
	tg := newTestGrid(t, 3, 2, 1, func(o *GridOptions) {
		o.Members[1].Store = forgetfulStore{o.Members[1].Store.(*MemStore)}
	})
	ctx := context.Background()
	for i := range listPage + 1 {
		if err := tg.stores[1].Put(ctx, fmt.Sprintf("shards/%08d.0", i), []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		objs, err := tg.ListObjects(ctx, "shards/")
		if err == nil || !strings.Contains(err.Error(), "node-1") || !strings.Contains(err.Error(), "out of order") {
			t.Errorf("ListObjects: %v, want an error of node-1", err)
		}
		if _, ok := objs["node-1"]; ok || len(objs) != 2 {
			t.Errorf("ListObjects listed %d nodes, node-1 among them: %v", len(objs), ok)
		}
		s := tg.Survey(ctx)
		if err := s.Down["node-1"]; err == nil || !strings.Contains(err.Error(), "out of order") {
			t.Errorf("Survey: node-1 down with %v, want an error", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("listing a node that ignores after did not end")
	}
}

// bigStatStore says every object is much bigger than it is, as a broken
// node's HEAD might.
type bigStatStore struct{ *MemStore }

func (s bigStatStore) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	st, err := s.MemStore.Stat(ctx, name)
	st.Size += 900 << 20
	return st, err
}

// TestVerifyObject: the whole-object verify that stores without a faster
// one use (and nodes too old for verify) checks the header and every
// chunk, reading a piece at a time, and does not size a buffer from the
// size a store claims.
func TestVerifyObject(t *testing.T) {
	ctx := context.Background()
	ms := NewMemStore()
	payload := make([]byte, 9<<20+123) // three pieces of 4 MiB, the last short
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	obj, err := shard.Encode(&shard.Header{K: 2, M: 1, ChunkSize: 4 << 10, SegmentSize: 2 * int64(len(payload))}, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Put(ctx, "shards/a.0", obj); err != nil {
		t.Fatal(err)
	}
	if err := VerifyObject(ctx, ms, "shards/a.0"); err != nil {
		t.Fatalf("intact object: %v", err)
	}
	for _, at := range []int{5, 60, len(obj) - 7<<20, len(obj) - 1} { // header, checksums, payload
		bad := bytes.Clone(obj)
		bad[at] ^= 1
		ms.Put(ctx, "shards/b.0", bad)
		if err := VerifyObject(ctx, ms, "shards/b.0"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d flipped: %v, want ErrCorrupt", at, err)
		}
	}
	ms.Put(ctx, "shards/c.0", obj[:len(obj)-1])
	if err := VerifyObject(ctx, ms, "shards/c.0"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated: %v, want ErrCorrupt", err)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	if err := VerifyObject(ctx, bigStatStore{ms}, "shards/a.0"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a size 900 MiB larger than the object: %v, want ErrCorrupt", err)
	}
	runtime.ReadMemStats(&m1)
	if a := m1.TotalAlloc - m0.TotalAlloc; a > 64<<20 {
		t.Errorf("verifying an object whose store claims 900 MiB allocated %d MiB", a>>20)
	}
}

// TestReadAfterNodeRemoved: a read that chose its shards before a node
// left the grid (node remove, drain) and reads them in a newer view of
// it gets an error for that shard, not a nil node: the mount crashed on
// it when two nodes were removed one after the other during a repair.
func TestReadAfterNodeRemoved(t *testing.T) {
	g := newTestGrid(t, 7, 4, 2, nil)
	w := writeMixed(t, g.Grid, rand.New(rand.NewPCG(5, 5)), 6, 20<<10)
	seg := w.seg
	ps := pieces(seg, 0, int64(len(w.data)))
	gone := seg.Nodes[ps[0].shard]
	if err := g.RemoveMember(gone); err != nil {
		t.Fatal(err)
	}
	for _, verify := range []bool{false, true} {
		if _, err := g.readHealthy(context.Background(), seg, ps, int64(len(w.data)), verify, nil); !errors.Is(err, ErrNodeRemoved) {
			t.Errorf("healthy read (verify %v) with a shard on a removed node: %v, want ErrNodeRemoved", verify, err)
		}
	}
	if _, err := g.fetchVerified(context.Background(), seg, ps[0].shard, nil, ps[:1]); !errors.Is(err, ErrNodeRemoved) {
		t.Errorf("fetchVerified of a removed node: %v", err)
	}
	// The whole read goes to the other shards.
	got := make([]byte, len(w.data))
	if err := g.ReadSegment(context.Background(), seg, 0, got); err != nil || !bytes.Equal(got, w.data) {
		t.Fatalf("read with a node removed: %v", err)
	}
}

// TestDownNodes: DownNodes names the nodes the last Health look found
// not answering (a node down, a node that hangs), none before the first
// look and none once they answer again; a look its caller cancels marks
// no node down.
func TestDownNodes(t *testing.T) {
	tg := newTestGrid(t, 6, 4, 2, func(o *GridOptions) { o.CallTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	tg.stores[2].SetMode(MemDown)
	tg.stores[3].SetMode(MemHang)
	if d := tg.DownNodes(); len(d) != 0 {
		t.Fatalf("DownNodes before any look: %v", d)
	}
	tg.Health(ctx)
	if d := tg.DownNodes(); !slices.Equal(d, []string{"node-2", "node-3"}) {
		t.Fatalf("DownNodes with nodes 2 and 3 down: %v", d)
	}
	tg.stores[2].SetMode(MemUp)
	tg.stores[3].SetMode(MemUp)
	tg.Health(ctx)
	if d := tg.DownNodes(); len(d) != 0 {
		t.Fatalf("DownNodes once every node answers: %v", d)
	}
	tg.stores[3].SetMode(MemHang)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	tg.Health(cctx)
	if d := tg.DownNodes(); len(d) != 0 {
		t.Fatalf("DownNodes after a look its caller cancelled: %v", d)
	}
}
