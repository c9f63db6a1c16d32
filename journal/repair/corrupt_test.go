package repair_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/meshdrive/meshdrive/journal/repair"
	"github.com/meshdrive/meshdrive/remote/faulty"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// TestCheckRepairCorruptBelowK: a segment missing a shard, whose nodes
// list the other five but only three (k-1) pass their checksums, cannot
// be repaired, now or later: check --repair counts it unrecoverable (its
// file too), names it and its corrupt shards, and counts no failed
// repair; before, it was a failed repair that "check --repair tries
// again". With one of those shards only out of reach (its node fails
// every read), the segment is named out of reach with that node, not
// lost; with its node failing one read, a later try can pass: that
// stays a failed repair.
func TestCheckRepairCorruptBelowK(t *testing.T) {
	ctx := t.Context()
	d := newDrive(t)
	d.write(t, "f", bytes.Repeat([]byte("corrupt below k "), 8000))
	seg := d.onlySegment(t)
	shardPath := func(i int) string { return d.shardPath(seg, i) }
	if err := os.Remove(shardPath(5)); err != nil {
		t.Fatal(err)
	}
	r := repair.New(repair.Options{Grid: d.g, Journal: d.j})

	remotetest.FlipFile(t, shardPath(0))
	var unreadable *faulty.Store
	for i, f := range d.faults {
		if fmt.Sprintf("node-%d", i) == seg.Nodes[1] {
			unreadable = f
		}
	}
	unreadable.SetRules(faulty.Rule{Ops: faulty.OpGet, Prefix: "shards/"})
	rep, err := r.Check(ctx, repair.CheckRequest{Repair: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepairFailed != 0 || !slices.Equal(rep.OutOfReach, []string{seg.ID.String()}) || !slices.Equal(rep.OutOfReachNodes, []string{seg.Nodes[1]}) ||
		len(rep.CorruptUnrecoverable) != 0 || rep.SegmentsUnrecoverable != 0 || rep.Unrecoverable != 0 {
		t.Fatalf("a shard missing, one corrupt, one out of reach: %d failed repairs (want 0), out of reach %v on %v (want [%s] on [%s]), corrupt below k %v (want none), %d segments and %d files unrecoverable (want 0)",
			rep.RepairFailed, rep.OutOfReach, rep.OutOfReachNodes, seg.ID, seg.Nodes[1], rep.CorruptUnrecoverable, rep.SegmentsUnrecoverable, rep.Unrecoverable)
	}

	unreadable.SetRules(faulty.Rule{Ops: faulty.OpGet, Prefix: "shards/", Count: 1})
	rep, err = r.Check(ctx, repair.CheckRequest{Repair: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepairFailed != 1 || len(rep.RepairErrors) != 1 || len(rep.OutOfReach) != 0 || len(rep.CorruptUnrecoverable) != 0 {
		t.Fatalf("a shard missing, one corrupt, one read failing once: %d failed repairs %v (want 1), out of reach %v, corrupt below k %v (want none)",
			rep.RepairFailed, rep.RepairErrors, rep.OutOfReach, rep.CorruptUnrecoverable)
	}

	unreadable.Clear()
	remotetest.FlipFile(t, shardPath(1))
	rep, err = r.Check(ctx, repair.CheckRequest{Repair: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepairFailed != 0 || len(rep.RepairErrors) != 0 || rep.Repaired != 0 {
		t.Errorf("a shard missing, two corrupt: %d repaired, %d failed repairs %v; want none: no later try can rebuild it", rep.Repaired, rep.RepairFailed, rep.RepairErrors)
	}
	if len(rep.CorruptUnrecoverable) != 1 || rep.CorruptUnrecoverable[0] != seg.ID.String() {
		t.Errorf("a shard missing, two corrupt: corrupt below k %v, want [%s]", rep.CorruptUnrecoverable, seg.ID)
	}
	if rep.SegmentsUnrecoverable != 1 || rep.Unrecoverable != 1 || len(rep.Files) != 1 ||
		rep.Files[0].State != repair.Unrecoverable || rep.Files[0].Shards != 3 || len(rep.Files[0].Segments) != 1 {
		t.Errorf("a shard missing, two corrupt: %d segments unrecoverable, files %+v; want f unrecoverable, 3 of 6 shards, its segment named",
			rep.SegmentsUnrecoverable, rep.Files)
	}
	states := map[int]string{}
	for _, p := range rep.Problems {
		if p.Segment == seg.ID.String() && p.Node == seg.Nodes[p.Index] {
			states[p.Index] = p.State
		}
	}
	if want := map[int]string{0: "corrupt", 1: "corrupt", 5: "missing"}; len(rep.Problems) != 3 || fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("a shard missing, two corrupt: problems %+v, want %v", rep.Problems, want)
	}
}
