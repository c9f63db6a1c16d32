package remote_test

// A node that keeps its connections open and never answers (kill -STOP
// of its server) against six real node servers on 127.0.0.1: once a
// health check finds it unresponsive the grid asks it nothing until one
// sees it answer, and a slow node that does answer keeps its uploads.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/node"
)

// frozenGrid starts six node servers and a grid (k=4, m=2) over them
// whose call timeout is far longer than the test's hang guard (the ctx it
// returns, of 60 s): only the health check can end a call to a node that
// never answers.
func frozenGrid(t *testing.T) ([]*testNode, *remote.Grid, context.Context) {
	return frozenGridOf(t, 6)
}

// frozenGridOf is frozenGrid of n nodes.
func frozenGridOf(t *testing.T, n int) ([]*testNode, *remote.Grid, context.Context) {
	nodes := make([]*testNode, n)
	members := make([]remote.Member, n)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("node-%d", i))
		c, err := node.NewClient("http://"+nodes[i].addr, node.ClientOptions{Timeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		members[i] = remote.Member{Name: nodes[i].name, Store: c}
	}
	sealer, err := remote.NewSealer(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer, CallTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return nodes, g, ctx
}

// waitPut waits until n has received a PUT.
func waitPut(ctx context.Context, t *testing.T, n *testNode) {
	t.Helper()
	for {
		select {
		case m := <-n.seen:
			if m == http.MethodPut {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s never received a PUT: %v", n.name, ctx.Err())
		}
	}
}

type writeResult struct {
	info *remote.SegmentInfo
	err  error
}

// writeAsync starts g.WriteSegment(ctx, data); its result comes on the
// channel.
func writeAsync(ctx context.Context, g *remote.Grid, data []byte) <-chan writeResult {
	done := make(chan writeResult, 1)
	go func() {
		info, err := g.WriteSegment(ctx, data)
		done <- writeResult{info, err}
	}()
	return done
}

func TestFrozenNodeIsSkipped(t *testing.T) {
	nodes, g, ctx := frozenGrid(t)
	frozen := nodes[5]
	frozen.mode.Store(gateHang)
	data := bytes.Repeat([]byte("frozen node "), 100_000)

	// A write that started before anyone knew: its shard Put to the frozen
	// node hangs (the call timeout is an hour) until a health check finds
	// the node unresponsive and ends it.
	done := writeAsync(ctx, g, data)
	waitPut(ctx, t, frozen)
	for _, h := range g.Health(ctx) {
		if h.Up == (h.Name == frozen.name) {
			t.Fatalf("health: %s up=%v (%s)", h.Name, h.Up, h.Err)
		}
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("write with a frozen node: %v", r.err)
	}
	if r.info.Stored() != 5 || hasNode(r.info, frozen.name) {
		t.Fatalf("write with a frozen node: stored on %q, want the 5 others", r.info.Nodes)
	}
	first := r.info

	// From now on the frozen node is asked nothing.
	asked := frozen.reqs.Load()
	for range 3 {
		info, err := g.WriteSegment(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		if info.Stored() != 5 || hasNode(info, frozen.name) {
			t.Fatalf("stored on %q, want the 5 nodes that answer", info.Nodes)
		}
	}
	got := make([]byte, len(data))
	if err := g.ReadSegment(ctx, first, 0, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(got, data))
	}
	sv := g.Survey(ctx)
	if err := sv.Down[frozen.name]; !errors.Is(err, remote.ErrUnresponsive) || len(sv.Down) != 1 {
		t.Fatalf("survey: down %v, want only %s as unresponsive", sv.Down, frozen.name)
	}
	if n, err := g.PutMeta(ctx, "frozen-test", []byte("meta")); err != nil || n != 5 {
		t.Fatalf("put meta: %d nodes took it (%v), want 5", n, err)
	}
	for _, c := range g.GetMetaAll(ctx, "frozen-test") {
		if (c.Node == frozen.name) != errors.Is(c.Err, remote.ErrUnresponsive) {
			t.Fatalf("get meta from %s: %v", c.Node, c.Err)
		}
	}
	if err := g.DeleteSegment(ctx, first); err != nil {
		t.Fatalf("delete a segment the frozen node holds no shard of: %v", err)
	}
	if n := frozen.reqs.Load() - asked; n != 0 {
		t.Fatalf("the frozen node was asked %d times after the health check found it unresponsive", n)
	}

	// It answers again (kill -CONT): the next health check brings it back.
	frozen.mode.Store(gateUp)
	for _, h := range g.Health(ctx) {
		if !h.Up {
			t.Fatalf("health after the node came back: %s down (%s)", h.Name, h.Err)
		}
	}
	info, err := g.WriteSegment(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if info.Stored() != 6 {
		t.Fatalf("after the node came back: stored on %q, want all 6", info.Nodes)
	}
}

// A drain with two frozen nodes among nine: once a health check found
// them, the shards of the draining node and those on the frozen nodes
// go to the nodes that answer, and the frozen ones are asked nothing.
func TestDrainPlacesNothingOnFrozenNodes(t *testing.T) {
	nodes, g, ctx := frozenGridOf(t, 9)
	info, err := g.WriteSegment(ctx, bytes.Repeat([]byte("drain "), 100_000))
	if err != nil {
		t.Fatal(err)
	}
	// Two of the segment's nodes freeze, a third drains.
	frozen := map[string]*testNode{}
	for _, n := range nodes {
		if hasNode(info, n.name) && len(frozen) < 2 {
			n.mode.Store(gateHang)
			frozen[n.name] = n
		}
	}
	draining := ""
	for _, name := range info.Nodes {
		if frozen[name] == nil {
			draining = name
			break
		}
	}
	if err := g.SetDraining(draining, true); err != nil {
		t.Fatal(err)
	}
	g.Health(ctx)
	asked := int64(0)
	for _, n := range frozen {
		asked += n.reqs.Load()
	}
	res, err := g.RepairSegment(ctx, info, remote.RepairOptions{})
	if err != nil {
		t.Fatalf("repair with two frozen nodes: %v", err)
	}
	for _, name := range res.Seg.Nodes {
		if name == "" || name == draining || frozen[name] != nil {
			t.Fatalf("after the repair the shards are on %q: %s drains, %d are frozen", res.Seg.Nodes, draining, len(frozen))
		}
	}
	if res.Moved != 1 || res.Rebuilt != 2 {
		t.Fatalf("repair moved %d and rebuilt %d shards, want 1 and 2", res.Moved, res.Rebuilt)
	}
	for _, n := range frozen {
		asked -= n.reqs.Load()
	}
	if asked != 0 {
		t.Fatalf("the frozen nodes were asked %d times after the health check found them", -asked)
	}
}

// A node that answers its health check while one of its uploads is slow
// keeps the upload: only a node that does not answer at all is cut off.
func TestSlowNodeKeepsItsUpload(t *testing.T) {
	nodes, g, ctx := frozenGrid(t)
	slow := nodes[2]
	slow.mode.Store(gateSlowPut)
	done := writeAsync(ctx, g, bytes.Repeat([]byte("slow node "), 100_000))
	waitPut(ctx, t, slow)
	for _, h := range g.Health(ctx) {
		if !h.Up {
			t.Fatalf("health: %s down (%s)", h.Name, h.Err)
		}
	}
	close(slow.release)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.info.Stored() != 6 || !hasNode(r.info, slow.name) {
		t.Fatalf("stored on %q, want all 6 with the slow node", r.info.Nodes)
	}
}

func hasNode(info *remote.SegmentInfo, name string) bool {
	for _, n := range info.Nodes {
		if n == name {
			return true
		}
	}
	return false
}

// Before any health check: a call about one object (a check's stat) to
// a node that never answers ends after seconds, though the grid's call
// timeout (for shards crossing a slow link) is an hour.
func TestSmallCallToFrozenNodeEnds(t *testing.T) {
	nodes, g, ctx := frozenGrid(t)
	info, err := g.WriteSegment(ctx, bytes.Repeat([]byte("small calls "), 10_000))
	if err != nil {
		t.Fatal(err)
	}
	frozen := nodes[3]
	frozen.mode.Store(gateHang)
	h := g.CheckSegment(ctx, info, remote.CheckOptions{})
	if ctx.Err() != nil {
		t.Fatalf("a check of a segment with a shard on a frozen node outlived the hang guard: %v", ctx.Err())
	}
	for _, sc := range h.Shards {
		if (sc.Node == frozen.name) != (sc.State == remote.ShardUnreachable) {
			t.Fatalf("shard %d on %s: %s (%v)", sc.Index, sc.Node, sc.State, sc.Err)
		}
		if sc.Node == frozen.name && !errors.Is(sc.Err, context.DeadlineExceeded) {
			t.Fatalf("shard on the frozen node: %v, want a timeout", sc.Err)
		}
	}
	if h.OK != 5 {
		t.Fatalf("check: %d shards ok, want the 5 on the nodes that answer", h.OK)
	}
}
