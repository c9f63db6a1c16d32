package remote

import (
	"encoding/binary"
	"math"
	"sync"
	"time"

	"github.com/zeebo/xxh3"
)

// rendezvousScore is the weighted rendezvous (highest random weight) score
// of member name for shard i of seg: -w/ln(u) with u uniform in (0,1)
// derived from a hash of (seg, i, name). The member with the highest score
// wins; a member of weight 2w wins twice as often as one of weight w.
func rendezvousScore(seg SegmentID, i int, name string, w float64) float64 {
	u := (float64(rendezvousHash(seg, i, name)) + 0.5) / (1 << 53)
	return -w / math.Log(u)
}

// rendezvousHash is the 53-bit hash behind rendezvousScore's u. Among
// members of equal weight the score grows with it, so they can be ranked
// by it without the logarithm.
func rendezvousHash(seg SegmentID, i int, name string) uint64 {
	var buf [16 + 2 + MaxNameLen]byte
	b := append(buf[:0], seg[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(i))
	b = append(b, name...)
	return xxh3.Hash(b) >> 11
}

// PlaceNode is what placement knows of one node.
type PlaceNode struct {
	Name string
	// Zone is the node's failure domain; "" is a zone of its own.
	Zone string
	// Weight biases placement (e.g. free space); 0 means 1.
	Weight float64
}

// Placer is the drive's placement: weighted rendezvous hashing of
// (segment, shard index) over a fixed list of nodes, each shard of a
// segment on a different node, zones spread as evenly as the nodes allow.
// Grid.WriteSegment places with it, repair must place rebuilt shards with
// it, and meshsim simulates grids with it. It is pure (the same nodes and
// segment give the same choices) and read-only after NewPlacer, so safe
// for concurrent use.
type Placer struct {
	nodes  []PlaceNode
	weight []float64
	zone   []int // zone[j]: node j's failure domain, numbered from 0
	nzones int
	equal  bool // all weights are equal: rank by rendezvousHash alone
}

// NewPlacer returns the placer over nodes; node j of the list is j in
// every answer. nodes is copied.
func NewPlacer(nodes []PlaceNode) *Placer {
	p := &Placer{nodes: append([]PlaceNode(nil), nodes...), weight: make([]float64, len(nodes)), zone: make([]int, len(nodes))}
	zones := map[string]int{}
	for j, n := range nodes {
		p.weight[j] = n.Weight
		if p.weight[j] == 0 {
			p.weight[j] = 1
		}
		key := "z:" + n.Zone
		if n.Zone == "" {
			key = "n:" + n.Name
		}
		z, ok := zones[key]
		if !ok {
			z = len(zones)
			zones[key] = z
		}
		p.zone[j] = z
	}
	p.nzones = len(zones)
	p.equal = true
	for _, w := range p.weight {
		p.equal = p.equal && w == p.weight[0]
	}
	return p
}

// Len is the number of nodes.
func (p *Placer) Len() int { return len(p.nodes) }

// Segment starts the placement of seg's shards with no node holding one.
func (p *Placer) Segment(seg SegmentID) *Placement {
	return &Placement{p: p, seg: seg, taken: make([]bool, len(p.nodes)), zones: make([]int, p.nzones)}
}

// Place returns the nodes for shards 0..n-1 of seg when every node takes
// its shard: WriteSegment's first choices. ok is false when there are
// fewer than n nodes.
func (p *Placer) Place(seg SegmentID, n int) (nodes []int, ok bool) {
	pl := p.Segment(seg)
	nodes = make([]int, n)
	for i := range n {
		if nodes[i] = pl.Pick(i, nil); nodes[i] < 0 {
			return nil, false
		}
	}
	return nodes, true
}

// Placement is the placement of one segment's shards in progress: which
// nodes hold (or are taking) one of them. It is not safe for concurrent
// use.
type Placement struct {
	p     *Placer
	seg   SegmentID
	taken []bool // node holds (or is storing) a shard of this segment, or failed
	zones []int  // shards of this segment per zone
}

// Hold records that node j holds a shard of the segment (repair: the
// shards that survive), so no other shard goes there and its zone counts.
func (pl *Placement) Hold(j int) {
	if !pl.taken[j] {
		pl.taken[j] = true
		pl.zones[pl.p.zone[j]]++
	}
}

// Pick claims the node for shard i: of the nodes not taken and usable
// (usable nil means every node), the one whose zone holds the fewest shards
// of this segment so far, ties broken by the highest rendezvous score of
// (segment, i, node name), then by the lower index. It returns -1 when no
// node is left.
func (pl *Placement) Pick(i int, usable func(j int) bool) int {
	p := pl.p
	best, bestZone, bestScore := -1, 0, 0.0
	for j := range p.nodes {
		if pl.taken[j] || usable != nil && !usable(j) {
			continue
		}
		z := pl.zones[p.zone[j]]
		if best >= 0 && z > bestZone {
			continue
		}
		var s float64
		if p.equal {
			s = float64(rendezvousHash(pl.seg, i, p.nodes[j].Name)) // exact below 2^53
		} else {
			s = rendezvousScore(pl.seg, i, p.nodes[j].Name, p.weight[j])
		}
		if best < 0 || z < bestZone || s > bestScore {
			best, bestZone, bestScore = j, z, s
		}
	}
	if best >= 0 {
		pl.Hold(best)
	}
	return best
}

// Fail records that node j, picked earlier, could not take its shard: it
// stays taken (no other shard of this segment tries it) and its zone slot
// is freed.
func (pl *Placement) Fail(j int) {
	pl.zones[pl.p.zone[j]]--
}

// placer hands out members to the shards of one segment (a write, a
// repair) for concurrent callers: the Placement of a Placer over the
// members, draining members never, members without room for a shard
// (as far as the grid knows, see space) never, members the last health
// check found unresponsive never (liveness), members recently seen down
// only when no other is left. Lock order: mu, then a member's
// space.mu.
type placer struct {
	members []*member
	need    int64      // bytes of one shard object; 0: space is not looked at
	claims  bool       // pick claims the room (a Put follows; putDone ends it)
	now     time.Time  // when the placement started: space is judged as of then
	mu      sync.Mutex // guards pl
	pl      *Placement
}

// newPlacer places the shards of seg, need bytes each, on members. With
// claim, each pick counts the shard in flight on its member until
// putDone.
func newPlacer(members []*member, seg SegmentID, need int64, claim bool) *placer {
	nodes := make([]PlaceNode, len(members))
	for j, m := range members {
		nodes[j] = PlaceNode{Name: m.Name, Zone: m.Zone, Weight: m.weight}
	}
	return &placer{members: members, need: need, claims: claim, now: time.Now(), pl: NewPlacer(nodes).Segment(seg)}
}

// room reports whether member j has room for a shard.
func (p *placer) room(j int) bool {
	ok, _ := p.members[j].space.room(p.need, p.now)
	return ok
}

// pick claims the best free member for shard i. ok is false when no
// member is left.
func (p *placer) pick(i int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	up := func(j int) bool { return !p.members[j].draining.Load() && !p.members[j].isDown() && p.room(j) }
	placeable := func(j int) bool {
		down, _ := p.members[j].live.unresponsive()
		return !p.members[j].draining.Load() && !down && p.room(j)
	}
	for {
		j := p.pl.Pick(i, up)
		if j < 0 {
			j = p.pl.Pick(i, placeable)
		}
		if j < 0 {
			return -1, false
		}
		if !p.claims || p.members[j].space.claim(p.need, p.now) {
			return j, true
		}
		p.pl.Fail(j) // another segment's shard took the room meanwhile
	}
}

// free counts members that could still take a shard.
func (p *placer) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for j, m := range p.members {
		if !p.pl.taken[j] && !m.draining.Load() && !m.isDown() && p.room(j) {
			n++
		}
	}
	return n
}

// noRoom names the members, not draining, that have no room for a shard,
// and their free bytes: what an error says when too few nodes took one.
func (p *placer) noRoom() (names []string, frees []int64) {
	for _, m := range p.members {
		if ok, free := m.space.room(p.need, p.now); !ok && !m.draining.Load() {
			names = append(names, m.Name)
			frees = append(frees, free)
		}
	}
	return names, frees
}

// claim marks member j as holding a shard of this segment already (a
// shard repair keeps), so no other shard goes there.
func (p *placer) claim(j int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pl.Hold(j)
}

// fail records that member j could not take a shard.
func (p *placer) fail(j int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pl.Fail(j)
}

// putDone ends the claim of a Put of n bytes on m that pick made, with
// its outcome, in what the grid knows of m's space.
func putDone(m *member, n int64, err error) {
	m.space.done(n, err, time.Now())
}
