package remote

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestPlacerIsWriteSegments: on a healthy grid, WriteSegment puts shard i
// on Placer.Place's node i, so meshsim and repair place as the drive does.
func TestPlacerIsWriteSegments(t *testing.T) {
	tg := newTestGrid(t, 9, 4, 2, func(o *GridOptions) {
		for i := range o.Members {
			o.Members[i].Zone = []string{"a", "b", "c", ""}[i%4]
			o.Members[i].Weight = float64(1 + i%3)
		}
	})
	var nodes []PlaceNode
	for _, m := range tg.view().all {
		nodes = append(nodes, PlaceNode{Name: m.Name, Zone: m.Zone, Weight: m.Weight})
	}
	pl := NewPlacer(nodes)
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		seg := writeMixed(t, tg.Grid, r, 1, 2000).seg
		idx, ok := pl.Place(seg.ID, len(seg.Nodes))
		if !ok {
			t.Fatal("Place found too few nodes")
		}
		for i, j := range idx {
			if nodes[j].Name != seg.Nodes[i] {
				t.Fatalf("segment %s shard %d: WriteSegment chose %s, Place %s", seg.ID, i, seg.Nodes[i], nodes[j].Name)
			}
		}
	}
}

func TestPlacementRepairAvoidsHolders(t *testing.T) {
	nodes := make([]PlaceNode, 8)
	for i := range nodes {
		nodes[i] = PlaceNode{Name: fmt.Sprintf("n%d", i)}
	}
	pl := NewPlacer(nodes)
	var seg SegmentID
	seg[0] = 7
	first, _ := pl.Place(seg, 6)
	// Shard 2's node died: the rebuilt shard goes to a node holding none.
	p := pl.Segment(seg)
	for i, j := range first {
		if i != 2 {
			p.Hold(j)
		}
	}
	j := p.Pick(2, func(j int) bool { return j != first[2] })
	if j < 0 || slices.Contains(first, j) {
		t.Fatalf("rebuilt shard went to %d; holders and the dead node were %v", j, first)
	}
}

func TestRepairPolicy(t *testing.T) {
	var def RepairPolicy
	if !def.Needs(5, 4, 2) || def.Needs(6, 4, 2) {
		t.Fatal("default policy: repair any missing shard")
	}
	lazy := RepairPolicy{Below: 5}
	if lazy.Needs(5, 4, 2) || !lazy.Needs(4, 4, 2) {
		t.Fatal("Below 5: repair at 4 stored, not at 5")
	}
	t0 := time.Unix(1000, 0)
	old := RepairItem{K: 4, Stored: 5, Since: t0}
	young := RepairItem{K: 4, Stored: 5, Since: t0.Add(time.Hour)}
	endangered := RepairItem{K: 4, Stored: 4, Since: t0.Add(2 * time.Hour)}
	wide := RepairItem{K: 10, Stored: 12, Since: t0} // two to spare
	items := []RepairItem{wide, young, old, endangered}
	slices.SortFunc(items, func(a, b RepairItem) int {
		if def.Before(a, b) {
			return -1
		}
		if def.Before(b, a) {
			return 1
		}
		return 0
	})
	want := []RepairItem{endangered, old, young, wide}
	if !slices.Equal(items, want) {
		t.Fatalf("order %v, want %v", items, want)
	}
}

// TestPlacerEqualWeights: with equal weights Pick ranks by the hash alone;
// the winner must be the node with the highest rendezvous score.
func TestPlacerEqualWeights(t *testing.T) {
	nodes := make([]PlaceNode, 50)
	for i := range nodes {
		nodes[i] = PlaceNode{Name: fmt.Sprintf("n%d", i), Weight: 3}
	}
	pl := NewPlacer(nodes)
	r := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		var seg SegmentID
		for i := range seg {
			seg[i] = byte(r.Uint32())
		}
		shard := r.IntN(10)
		best := 0
		for j := range nodes {
			if rendezvousScore(seg, shard, nodes[j].Name, 3) > rendezvousScore(seg, shard, nodes[best].Name, 3) {
				best = j
			}
		}
		if got := pl.Segment(seg).Pick(shard, nil); got != best {
			t.Fatalf("segment %s shard %d: Pick chose %d, the highest score is %d", seg, shard, got, best)
		}
	}
}
