package remote_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
)

// A grid of six local directory stores, k=4 m=2: seal a block, write it
// as a one-block segment, read it back with two nodes gone.
func ExampleGrid() {
	root, err := os.MkdirTemp("", "meshdrive-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	master := bytes.Repeat([]byte{42}, 32) // a real drive's key comes from remote/keyring
	sealer, err := remote.NewSealer(master)
	if err != nil {
		log.Fatal(err)
	}
	var members []remote.Member
	for i := range 6 {
		st, err := dirstore.New(filepath.Join(root, fmt.Sprintf("node-%d", i)), dirstore.Options{})
		if err != nil {
			log.Fatal(err)
		}
		members = append(members, remote.Member{Name: fmt.Sprintf("node-%d", i), Store: st})
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	plain := []byte("hello, grid")
	id := sealer.BlockID(plain)
	sealed := sealer.Seal(nil, id, plain)
	seg, err := g.WriteSegment(ctx, sealed)
	if err != nil {
		log.Fatal(err)
	}
	ref := remote.BlockRef{ID: id, Seg: seg, Offset: 0, Length: int64(len(sealed))}

	// Two nodes lose their data: any 4 of the 6 shards still rebuild it.
	os.RemoveAll(filepath.Join(root, seg.Nodes[0]))
	os.RemoveAll(filepath.Join(root, seg.Nodes[5]))
	got, _, err := g.FetchBlock(ctx, ref)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d shards stored, read back %q\n", seg.Stored(), got)
	// Output: 6 shards stored, read back "hello, grid"
}

// Placement as a pure function of the node list: where a segment's shards
// go, and where repair puts shard 2 again when its node has died.
func ExamplePlacer() {
	var nodes []remote.PlaceNode
	for i := range 8 {
		nodes = append(nodes, remote.PlaceNode{Name: fmt.Sprintf("node-%d", i)})
	}
	pl := remote.NewPlacer(nodes)
	var seg remote.SegmentID // a real segment id is random
	first, _ := pl.Place(seg, 6)

	dead := first[2]
	p := pl.Segment(seg)
	for i, j := range first {
		if i != 2 {
			p.Hold(j) // the surviving shards stay where they are
		}
	}
	again := p.Pick(2, func(j int) bool { return j != dead })
	fmt.Println(again != dead, !slices.Contains(first, again))
	// Output: true true
}

// The repair order: a segment with no shard to spare goes before one that
// has lost a shard earlier but still has one to spare.
func ExampleRepairPolicy() {
	var policy remote.RepairPolicy // the default: repair any missing shard
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	old := remote.RepairItem{K: 4, Stored: 5, Since: t0}
	critical := remote.RepairItem{K: 4, Stored: 4, Since: t0.Add(time.Hour)}
	fmt.Println(policy.Needs(5, 4, 2), policy.Needs(6, 4, 2))
	fmt.Println(policy.Before(critical, old))
	// Output:
	// true false
	// true
}
