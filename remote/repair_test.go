package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/faulty"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// repairGrid is a k=4 m=2 grid over dir stores in t.TempDir().
type repairGrid struct {
	*remote.Grid
	root string
}

func newRepairGrid(t *testing.T, nodes int) *repairGrid {
	t.Helper()
	root := t.TempDir()
	sealer, err := remote.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var members []remote.Member
	for i := range nodes {
		members = append(members, repairMember(t, root, i))
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer, ChunkSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return &repairGrid{g, root}
}

func repairMember(t *testing.T, root string, i int) remote.Member {
	name := fmt.Sprintf("node-%d", i)
	st, err := dirstore.New(filepath.Join(root, name), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return remote.Member{Name: name, Store: st}
}

func (g *repairGrid) shardPath(seg *remote.SegmentInfo, i int) string {
	return filepath.Join(g.root, seg.Nodes[i], remote.ShardName(seg.ID, i))
}

func states(h *remote.SegmentHealth) []remote.ShardState {
	var out []remote.ShardState
	for _, s := range h.Shards {
		out = append(out, s.State)
	}
	return out
}

// TestRepairSegment: a lost shard and a corrupt one are found (the
// corrupt one only by verify), rebuilt, and the segment reads back with
// any two nodes' shards gone.
func TestRepairSegment(t *testing.T) {
	ctx := context.Background()
	g := newRepairGrid(t, 6)
	data := make([]byte, 100_000)
	fill(data, 1)
	seg, err := g.WriteSegment(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(g.shardPath(seg, 1)); err != nil {
		t.Fatal(err)
	}
	p := g.shardPath(seg, 4)
	b, _ := os.ReadFile(p)
	b[len(b)-10] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	h := g.CheckSegment(ctx, seg, remote.CheckOptions{})
	if h.OK != 5 || h.Shards[1].State != remote.ShardMissing {
		t.Fatalf("check: %d ok, states %v", h.OK, states(h))
	}
	h = g.CheckSegment(ctx, seg, remote.CheckOptions{Verify: true})
	if h.OK != 4 || h.Shards[1].State != remote.ShardMissing || h.Shards[4].State != remote.ShardCorrupt {
		t.Fatalf("verify: %d ok, states %v", h.OK, states(h))
	}
	res, err := g.RepairSegment(ctx, seg, remote.RepairOptions{CheckOptions: remote.CheckOptions{Verify: true}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rebuilt != 2 || res.Moved != 0 || res.Seg.Stored() != 6 {
		t.Fatalf("repair: %+v", res)
	}
	if h := g.CheckSegment(ctx, res.Seg, remote.CheckOptions{Verify: true}); !h.Healthy() {
		t.Fatalf("after repair: states %v", states(h))
	}
	// Any 4 shards rebuild it now: drop two that were not repaired.
	for _, i := range []int{0, 5} {
		os.Remove(filepath.Join(g.root, res.Seg.Nodes[i], remote.ShardName(seg.ID, i)))
	}
	got := make([]byte, len(data))
	if err := g.ReadSegment(ctx, res.Seg, 0, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after repair: %v (equal %v)", err, bytes.Equal(got, data))
	}
	// Three shards gone: fewer than k, and repair says so without writing.
	os.Remove(filepath.Join(g.root, res.Seg.Nodes[1], remote.ShardName(seg.ID, 1)))
	_, err = g.RepairSegment(ctx, res.Seg, remote.RepairOptions{})
	var tf *remote.TooFewShardsError
	if !errors.As(err, &tf) || tf.Usable != 3 {
		t.Fatalf("repair of 3 shards: %v", err)
	}
}

// TestDrainAndRebalance: a seventh node joins, a segment rebalances onto
// it when it wins a shard, and draining a node moves its shard off; the
// segment stays on 6 distinct nodes and reads.
func TestDrainAndRebalance(t *testing.T) {
	ctx := context.Background()
	g := newRepairGrid(t, 6)
	var segs []*remote.SegmentInfo
	var datas [][]byte
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		d := make([]byte, 20_000)
		fill(d, r.Uint64())
		seg, err := g.WriteSegment(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		segs, datas = append(segs, seg), append(datas, d)
	}
	if err := g.AddMember(repairMember(t, g.root, 6)); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for i, seg := range segs {
		res, err := g.RepairSegment(ctx, seg, remote.RepairOptions{Rebalance: true})
		if err != nil {
			t.Fatal(err)
		}
		moved += res.Moved
		if err := g.DeleteShards(ctx, seg.ID, res.Stale); err != nil {
			t.Fatal(err)
		}
		segs[i] = res.Seg
	}
	if moved == 0 {
		t.Errorf("no shard of 8 segments moved to the 7th node")
	}
	if err := g.SetDraining("node-2", true); err != nil {
		t.Fatal(err)
	}
	if err := g.SetDraining("node-3", true); err == nil {
		t.Errorf("draining a second node of 7 with k+m=6 was allowed")
	}
	for i, seg := range segs {
		res, err := g.RepairSegment(ctx, seg, remote.RepairOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.DeleteShards(ctx, seg.ID, res.Stale); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, n := range res.Seg.Nodes {
			if n == "" || n == "node-2" || seen[n] {
				t.Errorf("segment %d after drain: nodes %v", i, res.Seg.Nodes)
			}
			seen[n] = true
		}
		got := make([]byte, len(datas[i]))
		if err := g.ReadSegment(ctx, res.Seg, 0, got); err != nil || !bytes.Equal(got, datas[i]) {
			t.Errorf("segment %d after drain: %v", i, err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(g.root, "node-2", "shards"))
	if len(ents) != 0 {
		t.Errorf("drained node still holds %d shards", len(ents))
	}
	if err := g.RemoveMember("node-2"); err != nil {
		t.Fatal(err)
	}
	if err := g.RemoveMember("node-3"); err == nil {
		t.Errorf("removing below k+m nodes was allowed")
	}
}

// TestVerifyOverHTTP: a node verifies its own shards and answers with a
// verdict; the client maps it back.
func TestVerifyOverHTTP(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := node.NewServer(node.ServerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	url, stop := serveForTest(t, srv)
	defer stop()
	c, err := node.NewClient(url, node.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj := shardObject(t, 50_000)
	if err := c.Put(ctx, "shards/x.0", obj); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx, "shards/x.0"); err != nil {
		t.Fatalf("intact: %v", err)
	}
	if err := c.Verify(ctx, "shards/none.0"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	p := filepath.Join(dir, "shards", "x.0")
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o600)
	if err := c.Verify(ctx, "shards/x.0"); !errors.Is(err, remote.ErrCorrupt) {
		t.Fatalf("corrupt: %v", err)
	}
}

func serveForTest(t *testing.T, srv *node.Server) (string, func()) {
	t.Helper()
	ts := httptest.NewServer(srv.Handler())
	return ts.URL, ts.Close
}

func shardObject(t *testing.T, n int) []byte {
	t.Helper()
	payload := make([]byte, n)
	fill(payload, 5)
	obj, err := shard.Encode(&shard.Header{Kind: shard.KindSegment, K: 1, ChunkSize: 4 << 10, SegmentSize: int64(n)}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// fill writes pseudo-random bytes from seed into b.
func fill(b []byte, seed uint64) {
	cc := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	cc.Read(b)
}

// TestReadLocatesMovedShards: a node list recorded before shards moved
// (a metadata record's link to its predecessor) still reads, when the
// shards it names in the wrong place leave fewer than k.
func TestReadLocatesMovedShards(t *testing.T) {
	ctx := context.Background()
	g := newRepairGrid(t, 7)
	data := make([]byte, 50_000)
	fill(data, 9)
	seg, err := g.WriteSegment(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	// Three shards move to other nodes; the old list still names the old ones.
	free := ""
	for _, m := range g.Members() {
		if !slices.Contains(seg.Nodes, m.Name) {
			free = m.Name
		}
	}
	stale := *seg
	stale.Nodes = slices.Clone(seg.Nodes)
	for k, i := range []int{0, 2, 4} {
		dst := free
		if k > 0 {
			dst = seg.Nodes[[]int{0, 2}[k-1]] // a node whose own shard moved on
		}
		from := filepath.Join(g.root, seg.Nodes[i], remote.ShardName(seg.ID, i))
		to := filepath.Join(g.root, dst, remote.ShardName(seg.ID, i))
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(to), 0o700)
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(from)
	}
	os.Remove(filepath.Join(g.root, seg.Nodes[5], remote.ShardName(seg.ID, 5))) // and one is lost
	got := make([]byte, len(data))
	if err := g.ReadSegment(ctx, &stale, 0, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with a stale node list: %v (equal %v)", err, bytes.Equal(got, data))
	}
}

// TestRepairWithNodeDown: with a node down and no spare node, repair
// says ErrTooFewNodes before reading anything and keeps the node list;
// with a spare node the shard goes there and the down node's old shard
// is listed as stale.
func TestRepairWithNodeDown(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	sealer, _ := remote.NewSealer(bytes.Repeat([]byte{8}, 32))
	var members []remote.Member
	var fs []*faulty.Store
	for i := range 7 {
		m := repairMember(t, root, i)
		f := faulty.New(m.Store, faulty.Options{Name: m.Name})
		fs = append(fs, f)
		m.Store = f
		members = append(members, m)
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members[:6], Sealer: sealer, ChunkSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 30_000)
	fill(data, 11)
	seg, err := g.WriteSegment(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	fs[3].SetDown(true)
	h := g.CheckSegment(ctx, seg, remote.CheckOptions{})
	if h.OK != 5 || h.Shards[slices.Index(seg.Nodes, "node-3")].State != remote.ShardUnreachable {
		t.Fatalf("check with node-3 down: %v", states(h))
	}
	before := fs[0].Stats().Calls
	res, err := g.RepairSegment(ctx, seg, remote.RepairOptions{Health: h})
	if !errors.Is(err, remote.ErrTooFewNodes) || res.Changed() || fs[0].Stats().Calls != before {
		t.Fatalf("repair with no spare node: %v, changed %v, calls %d -> %d", err, res.Changed(), before, fs[0].Stats().Calls)
	}
	if err := g.AddMember(members[6]); err != nil {
		t.Fatal(err)
	}
	res, err = g.RepairSegment(ctx, seg, remote.RepairOptions{Health: h})
	if err != nil || res.Rebuilt != 1 || !slices.Contains(res.Seg.Nodes, "node-6") || slices.Contains(res.Seg.Nodes, "node-3") {
		t.Fatalf("repair with a spare node: %v %+v", err, res)
	}
	if len(res.Stale) != 1 || res.Stale[0].Node != "node-3" {
		t.Errorf("stale shards: %+v, want the one on node-3", res.Stale)
	}
}
