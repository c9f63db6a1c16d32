package remote

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gate holds the first call of op on any member until release is
// closed, once armed, and tells which member it held.
type gate struct {
	op      string
	armed   atomic.Bool
	once    sync.Once
	entered chan string
	release chan struct{}
}

func newGate(op string) *gate {
	return &gate{op: op, entered: make(chan string, 1), release: make(chan struct{})}
}

func (gt *gate) wrap(o *GridOptions) {
	for i := range o.Members {
		name := o.Members[i].Name
		o.Members[i].Store = Wrap(o.Members[i].Store, func(ctx context.Context, c Call, next func(context.Context) error) error {
			if c.Op == gt.op && gt.armed.Load() {
				held := false
				gt.once.Do(func() { held = true; gt.entered <- name })
				if held {
					<-gt.release
				}
			}
			return next(ctx)
		})
	}
}

// TestReadHealthyStartsNoGetBeforeLookups: a read whose second node was
// removed returns ErrNodeRemoved without a Get to the first one still
// running, which would write into a buffer the caller reuses.
func TestReadHealthyStartsNoGetBeforeLookups(t *testing.T) {
	gt := newGate("get")
	g := newTestGrid(t, 7, 4, 2, gt.wrap)
	seg := writeMixed(t, g.Grid, rand.New(rand.NewPCG(5, 5)), 6, 20<<10).seg
	ps := pieces(seg, seg.ShardSize-10, 20)
	if len(ps) < 2 {
		t.Fatalf("the range spans %d shards; want 2", len(ps))
	}
	if err := g.RemoveMember(seg.Nodes[ps[1].shard]); err != nil {
		t.Fatal(err)
	}
	gt.armed.Store(true)
	defer close(gt.release)
	_, err := g.readHealthy(context.Background(), seg, ps, 20, false, make([]byte, 20))
	select {
	case node := <-gt.entered:
		t.Errorf("readHealthy returned %v with a Get on %s still writing the buffer", err, node)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWriteToRemovedNodeNotCounted: a shard whose Put succeeds on a node
// removed while it was in flight is not counted as stored: the segment
// names no node for it, so repair owes it.
func TestWriteToRemovedNodeNotCounted(t *testing.T) {
	gt := newGate("put")
	g := newTestGrid(t, 7, 4, 2, gt.wrap)
	gt.armed.Store(true)
	type result struct {
		info *SegmentInfo
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		info, err := g.WriteSegment(context.Background(), make([]byte, 100<<10))
		ch <- result{info, err}
	}()
	node := <-gt.entered
	if err := g.RemoveMember(node); err != nil {
		t.Fatal(err)
	}
	close(gt.release)
	r := <-ch
	if r.err != nil {
		t.Fatalf("WriteSegment: %v", r.err)
	}
	if slices.Contains(r.info.Nodes, node) {
		t.Errorf("stored %d of 6 shards, one on %s, removed while its Put ran", r.info.Stored(), node)
	}
}

// TestRepairWithStaleHealth: a repair given a health report from before
// a node was removed moves that node's shard elsewhere instead of keeping
// it where no read will look.
func TestRepairWithStaleHealth(t *testing.T) {
	g := newTestGrid(t, 7, 4, 2, nil)
	seg := writeMixed(t, g.Grid, rand.New(rand.NewPCG(7, 7)), 4, 20<<10).seg
	h := g.CheckSegment(context.Background(), seg, CheckOptions{})
	gone := seg.Nodes[2]
	if err := g.RemoveMember(gone); err != nil {
		t.Fatal(err)
	}
	res, err := g.RepairSegment(context.Background(), seg, RepairOptions{Health: h})
	if err != nil {
		t.Fatalf("RepairSegment: %v", err)
	}
	if slices.Contains(res.Seg.Nodes, gone) {
		t.Errorf("the repaired segment still names %s, removed: %v", gone, res.Seg.Nodes)
	}
	if res.Seg.Stored() != 6 {
		t.Errorf("repaired segment stores %d of 6 shards", res.Seg.Stored())
	}
}

// TestRemoveWhileDraining: a node cannot be removed when the members left
// that take shards (not draining) would be fewer than k+m.
func TestRemoveWhileDraining(t *testing.T) {
	g := newTestGrid(t, 7, 4, 2, nil)
	if err := g.SetDraining("node-0", true); err != nil {
		t.Fatal(err)
	}
	if err := g.RemoveMember("node-1"); err == nil {
		t.Error("removed node-1 with node-0 draining: 5 nodes left to take 6 shards")
	}
}

// TestRepairToRemovedNode: a drain's copy of a shard onto a node removed
// while its Put ran leaves the segment naming the draining node, whose
// copy is then not stale: deleting it would leave the shard nowhere a
// read looks.
func TestRepairToRemovedNode(t *testing.T) {
	gt := newGate("put")
	g := newTestGrid(t, 8, 4, 2, gt.wrap)
	seg := writeMixed(t, g.Grid, rand.New(rand.NewPCG(9, 9)), 4, 20<<10).seg
	draining := seg.Nodes[0]
	if err := g.SetDraining(draining, true); err != nil {
		t.Fatal(err)
	}
	gt.armed.Store(true)
	type result struct {
		res *RepairResult
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := g.RepairSegment(context.Background(), seg, RepairOptions{})
		ch <- result{res, err}
	}()
	target := <-gt.entered
	if err := g.RemoveMember(target); err != nil {
		t.Fatal(err)
	}
	close(gt.release)
	r := <-ch
	if slices.Contains(r.res.Seg.Nodes, target) {
		t.Errorf("the repaired segment names %s, removed while its Put ran: %v", target, r.res.Seg.Nodes)
	}
	for _, st := range r.res.Stale {
		if st.Node == draining {
			t.Errorf("the draining node's copy of shard %d is listed stale, though no other node a read asks holds it", st.Index)
		}
	}
	if r.err == nil {
		t.Error("RepairSegment reported no failure for a shard it could not move")
	}
}

// TestRepairBackToOldNodeRemoved: a rebuild whose Put goes back to the node that lost the shard, removed
// while that Put ran: the shard is on no member, yet the repair reports
// it rebuilt and no failure.
func TestRepairBackToOldNodeRemoved(t *testing.T) {
	gt := newGate("put")
	g := newTestGrid(t, 8, 4, 2, gt.wrap)
	seg := writeMixed(t, g.Grid, rand.New(rand.NewPCG(9, 9)), 4, 20<<10).seg
	old := seg.Nodes[1]
	if err := g.store(old).Delete(context.Background(), ShardName(seg.ID, 1)); err != nil {
		t.Fatal(err)
	}
	gt.armed.Store(true)
	type result struct {
		res *RepairResult
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := g.RepairSegment(context.Background(), seg, RepairOptions{})
		ch <- result{res, err}
	}()
	target := <-gt.entered
	if target != old {
		close(gt.release)
		<-ch
		t.Fatalf("repair placed shard 1 on %s, not on %s, which lost it and still wins its rendezvous", target, old)
	}
	if err := g.RemoveMember(target); err != nil {
		t.Fatal(err)
	}
	close(gt.release)
	r := <-ch
	t.Logf("err=%v rebuilt=%d failed=%d nodes=%v", r.err, r.res.Rebuilt, r.res.Failed, r.res.Seg.Nodes)
	if r.err == nil || r.res.Rebuilt != 0 {
		t.Errorf("shard 1 stored only on %s, removed during its Put: Rebuilt=%d Failed=%d err=%v", target, r.res.Rebuilt, r.res.Failed, r.err)
	}
}
