package remote

import (
	"encoding/binary"
	"math"
	"sort"
	"sync"

	"github.com/zeebo/xxh3"
)

// rendezvousScore is the weighted rendezvous (highest random weight) score
// of member name for shard i of seg: -w/ln(u) with u uniform in (0,1)
// derived from a hash of (seg, i, name). The member with the highest score
// wins; a member of weight 2w wins twice as often as one of weight w.
func rendezvousScore(seg SegmentID, i int, name string, w float64) float64 {
	var buf [16 + 2 + MaxNameLen]byte
	b := append(buf[:0], seg[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(i))
	b = append(b, name...)
	h := xxh3.Hash(b)
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -w / math.Log(u)
}

// placer hands out nodes to the shards of one segment write: each shard's
// candidates in its rendezvous order, no node twice, zones spread as evenly
// as the candidates allow, failed nodes never again.
type placer struct {
	members []*member
	order   [][]int // order[i]: member indexes by descending score for shard i

	mu     sync.Mutex // guards the fields below
	taken  []bool     // member holds (or is storing) a shard of this segment, or failed
	zones  map[string]int
	failed int
}

func newPlacer(members []*member, seg SegmentID, n int) *placer {
	p := &placer{members: members, order: make([][]int, n), taken: make([]bool, len(members)), zones: map[string]int{}}
	scores := make([]float64, len(members))
	for i := range n {
		idx := make([]int, len(members))
		for j, m := range members {
			idx[j] = j
			scores[j] = rendezvousScore(seg, i, m.Name, m.weight)
		}
		sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
		p.order[i] = idx
	}
	return p
}

// pick claims the best free member for shard i: the one whose zone holds
// the fewest shards of this segment so far, ties broken by rendezvous
// order; members recently seen down only when no other is left. ok is
// false when no member is left.
func (p *placer) pick(i int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if j := p.pickLocked(i, false); j >= 0 {
		return j, true
	}
	j := p.pickLocked(i, true)
	return j, j >= 0
}

func (p *placer) pickLocked(i int, downOK bool) int {
	best, bestZone := -1, 0
	for _, j := range p.order[i] {
		if p.taken[j] || p.members[j].draining.Load() || !downOK && p.members[j].isDown() {
			continue
		}
		z := p.zones[p.members[j].zoneKey]
		if best < 0 || z < bestZone {
			best, bestZone = j, z
			if z == 0 {
				break
			}
		}
	}
	if best < 0 {
		return -1
	}
	p.taken[best] = true
	p.zones[p.members[best].zoneKey]++
	return best
}

// free counts members that could still take a shard.
func (p *placer) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for j, m := range p.members {
		if !p.taken[j] && !m.draining.Load() && !m.isDown() {
			n++
		}
	}
	return n
}

// claim marks member j as holding a shard of this segment already (a
// shard repair keeps), so no other shard goes there.
func (p *placer) claim(j int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.taken[j] {
		p.taken[j] = true
		p.zones[p.members[j].zoneKey]++
	}
}

// fail records that member j could not take a shard: it stays taken (no
// other shard of this segment tries it) and its zone slot is freed.
func (p *placer) fail(j int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.zones[p.members[j].zoneKey]--
	p.failed++
}
