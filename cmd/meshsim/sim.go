package main

import (
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

const year = 365.25 * 24 * 3600 // seconds

// Config is one simulated grid. Times are in seconds, rates per year.
type Config struct {
	Nodes int
	Zones int // 0: every node is a zone of its own
	K, M  int

	AFR          float64 // permanent node failures per node-year
	WeibullShape float64 // 0 or 1: exponential lifetimes; else Weibull with this shape and mean 1/AFR
	Outages      float64 // transient outages per node-year
	OutageMean   float64 // mean outage duration (exponential)
	ZoneAFR      float64 // zone-wide permanent losses per zone-year (all its nodes die)
	ZoneOutages  float64 // zone-wide outages per zone-year
	ZoneOutMean  float64 // mean zone outage duration (exponential)

	Detect  float64 // a node down this long is counted down: its shards are owed repair
	Replace float64 // a dead node is replaced by an empty one after this long

	Bandwidth float64 // repair bytes per second through one node
	NodeData  float64 // bytes of shards per node
	// ShardsPerNode is the simulation's grain: S = ShardsPerNode*Nodes/(K+M)
	// segments, each standing for NodeData/ShardsPerNode bytes per shard.
	ShardsPerNode int
	// RepairDist, when "exp" or "fixed", replaces the bandwidth model: each
	// repair takes RepairMean (fixed) or an exponential time of that mean,
	// any number at once. Used to check the simulator against formulas.
	RepairDist string
	RepairMean float64

	Policy remote.RepairPolicy
	Years  float64
	Seed   uint64
}

// Result is what one run measured.
type Result struct {
	Config
	Segments    int
	ShardBytes  float64 // bytes one simulated shard stands for
	NodeYears   float64
	SegYears    float64 // exposure: segment-years simulated
	Deaths      int     // permanent node failures
	ZoneDeaths  int     // of which in zone-wide losses
	OutagesSeen int     // transient outages
	DownEvents  int     // nodes counted down (deaths and outages detected): independent repair causes
	Losses      int     // segments lost (each is re-created so exposure continues)
	Repairs     int     // repair tasks completed
	RepairBytes float64 // network bytes of repair: k read + r written per repair
	NodeBytes   []float64
	Degraded    float64   // segment-seconds with fewer than n shards readable
	Unavailable float64   // segment-seconds with fewer than k shards readable
	RestoreTime []float64 // per episode: from a segment's first shard counted missing to all n stored
	// Chain is the per-segment Markov chain fitted to the run: time spent
	// with j shards lost for good and the repairs seen from there.
	TimeIn  []float64 // TimeIn[j], segment-seconds, j = 0..M
	RepairN [][]int   // RepairN[j][j']: repairs that took a segment from j lost shards to j'
	Elapsed time.Duration
}

type eventKind uint8

const (
	evDeath eventKind = iota
	evOutage
	evRecover
	evDetect
	evReplace
	evRepairDone
	evZoneDeath
	evZoneOutage
)

type event struct {
	t     float64
	kind  eventKind
	node  int
	epoch int // the node's epoch or gen when scheduled
	seg   int
	life  int // the segment's life when scheduled
}

type eventHeap []event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].t < h[j].t }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

type shardRef struct{ seg, idx int32 }

type node struct {
	zone     int
	gen      int
	up       bool // answering
	dead     bool // failed for good, until replaced
	detected bool // counted down: its shards are owed repair
	epoch    int  // bumped whenever it goes down or is replaced
	shards   []shardRef
	busy     bool   // running a repair
	queue    []qent // segments this node will repair
}

// qent is a segment in a repair queue or the wait list. An entry of an
// earlier life (the segment was lost and written again) is dropped.
type qent struct{ seg, life int }

type segment struct {
	id       remote.SegmentID
	life     int     // bumped when the segment is lost and written again
	holder   []int32 // node per shard, -1 when none
	queued   bool    // in a node's queue, running, or waiting
	since    float64 // when it first lacked a stored shard; -1 when complete
	lost     int     // shards on dead nodes or gone: the chain's state
	lostAt   float64 // when lost last changed
	degraded bool    // fewer than n readable
	unavail  bool    // fewer than k readable
	readAt   float64 // when degraded/unavail last changed
}

type sim struct {
	c      Config
	n      int
	rng    *rand.Rand
	now    float64
	end    float64
	ev     eventHeap
	nodes  []node
	segs   []segment
	placer *remote.Placer
	names  []remote.PlaceNode // the placer's nodes
	wait   []qent             // segments owed repair that no node can run now
	up     int                // nodes that answer
	res    *Result
	scale  float64 // Weibull scale, seconds
}

// Run simulates c and returns what it measured. It stops early with
// ctx's error.
func Run(ctx context.Context, c Config) (*Result, error) {
	start := time.Now()
	s, err := newSim(ctx, c)
	if err != nil {
		return nil, err
	}
	for steps := 0; len(s.ev) > 0; steps++ {
		if steps%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e := heap.Pop(&s.ev).(event)
		if e.t > s.end {
			break
		}
		s.now = e.t
		s.handle(e)
	}
	s.now = s.end
	for i := range s.segs {
		s.account(i)
		s.accountRead(i)
	}
	s.res.SegYears = float64(len(s.segs)) * c.Years
	s.res.NodeYears = float64(c.Nodes) * c.Years
	s.res.Elapsed = time.Since(start)
	return s.res, nil
}

func newSim(ctx context.Context, c Config) (*sim, error) {
	n := c.K + c.M
	if c.Nodes < n {
		return nil, fmt.Errorf("%d nodes for k=%d m=%d: need at least %d", c.Nodes, c.K, c.M, n)
	}
	nseg := max(1, c.ShardsPerNode*c.Nodes/n)
	s := &sim{c: c, n: n, rng: rand.New(rand.NewPCG(c.Seed, uint64(c.Nodes)<<32|uint64(c.K)<<16|uint64(c.M))),
		end: c.Years * year, nodes: make([]node, c.Nodes), segs: make([]segment, nseg)}
	s.res = &Result{Config: c, Segments: nseg, ShardBytes: c.NodeData / float64(max(1, c.ShardsPerNode)),
		NodeBytes: make([]float64, c.Nodes), TimeIn: make([]float64, c.M+1), RepairN: make([][]int, c.M+2)}
	for j := range s.res.RepairN {
		s.res.RepairN[j] = make([]int, c.M+2)
	}
	if c.WeibullShape > 0 && c.WeibullShape != 1 && c.AFR > 0 {
		s.scale = year / c.AFR / math.Gamma(1+1/c.WeibullShape)
	}
	for j := range s.nodes {
		nd := &s.nodes[j]
		nd.up = true
		s.up++
		if c.Zones > 0 {
			nd.zone = j % c.Zones
		}
		s.scheduleNode(j)
	}
	for z := range c.Zones {
		s.after(s.expo(c.ZoneAFR), event{kind: evZoneDeath, node: z})
		s.after(s.expo(c.ZoneOutages), event{kind: evZoneOutage, node: z})
	}
	s.rebuildPlacer()
	for i := range s.segs {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.write(i)
	}
	return s, nil
}

// scheduleNode draws a fresh node's death and first outage.
func (s *sim) scheduleNode(j int) {
	life := s.expo(s.c.AFR)
	if s.scale > 0 {
		life = s.scale * math.Pow(-math.Log(1-s.rng.Float64()), 1/s.c.WeibullShape)
	}
	s.after(life, event{kind: evDeath, node: j, epoch: s.nodes[j].gen})
	s.after(s.expo(s.c.Outages), event{kind: evOutage, node: j, epoch: s.nodes[j].gen})
}

// expo draws an exponential wait for a rate per year; +Inf for 0.
func (s *sim) expo(perYear float64) float64 {
	if perYear <= 0 {
		return math.Inf(1)
	}
	return s.rng.ExpFloat64() * year / perYear
}

func (s *sim) after(d float64, e event) {
	if math.IsInf(d, 1) || s.now+d > s.end {
		return
	}
	e.t = s.now + d
	heap.Push(&s.ev, e)
}

// rebuildPlacer makes the drive's placer over the current node names
// (node j is "node-j.gen": a replacement is a new node to placement).
func (s *sim) rebuildPlacer(changed ...int) {
	if s.names == nil {
		s.names = make([]remote.PlaceNode, len(s.nodes))
		changed = nil
		for j := range s.nodes {
			changed = append(changed, j)
		}
	}
	for _, j := range changed {
		s.names[j] = remote.PlaceNode{Name: fmt.Sprintf("node-%d.%d", j, s.nodes[j].gen)}
		if s.c.Zones > 0 {
			s.names[j].Zone = fmt.Sprintf("zone-%d", s.nodes[j].zone)
		}
	}
	s.placer = remote.NewPlacer(s.names)
}

// write (re)creates segment i: a new id placed as WriteSegment places it,
// on nodes that answer and then on any that are not dead.
func (s *sim) write(i int) {
	sg := &s.segs[i]
	sg.life++
	binary.LittleEndian.PutUint64(sg.id[:], uint64(i))
	binary.LittleEndian.PutUint64(sg.id[8:], s.rng.Uint64())
	if sg.holder == nil {
		sg.holder = make([]int32, s.n)
	}
	p := s.placer.Segment(sg.id)
	for idx := range s.n {
		j := p.Pick(idx, func(j int) bool { return s.nodes[j].up })
		if j < 0 {
			j = p.Pick(idx, func(j int) bool { return !s.nodes[j].dead })
		}
		sg.holder[idx] = int32(j)
		if j >= 0 {
			s.nodes[j].shards = append(s.nodes[j].shards, shardRef{int32(i), int32(idx)})
		}
	}
	sg.since, sg.lostAt, sg.readAt = -1, s.now, s.now
	sg.lost = s.countLost(i)
	sg.degraded, sg.unavail = false, false
	s.accountRead(i)
	s.check(i)
}

// held reports whether shard idx of segment ref.seg is still on node j.
func (s *sim) held(j int, r shardRef) bool { return s.segs[r.seg].holder[r.idx] == int32(j) }

// counts of segment i: stored (the grid's view: on a node not counted
// down), readable (on a node that answers), and lost (gone for good).
func (s *sim) stored(i int) int {
	c := 0
	for _, h := range s.segs[i].holder {
		if h >= 0 && !s.nodes[h].detected {
			c++
		}
	}
	return c
}

func (s *sim) readable(i int) int {
	c := 0
	for _, h := range s.segs[i].holder {
		if h >= 0 && s.nodes[h].up {
			c++
		}
	}
	return c
}

func (s *sim) countLost(i int) int {
	c := 0
	for _, h := range s.segs[i].holder {
		if h < 0 || s.nodes[h].dead {
			c++
		}
	}
	return c
}

// account moves segment i's chain state to its current count of lost
// shards, recording the time spent and the transition. It returns true
// when the segment is lost (fewer than k shards left anywhere).
func (s *sim) account(i int) bool {
	sg := &s.segs[i]
	l := s.countLost(i)
	s.res.TimeIn[min(sg.lost, s.c.M)] += s.now - sg.lostAt
	sg.lostAt = s.now
	if l < sg.lost {
		s.res.RepairN[min(sg.lost, s.c.M+1)][l]++
	}
	sg.lost = l
	return l > s.c.M
}

// accountRead updates the degraded and unavailable time of segment i.
func (s *sim) accountRead(i int) {
	sg := &s.segs[i]
	d := s.now - sg.readAt
	if sg.degraded {
		s.res.Degraded += d
	}
	if sg.unavail {
		s.res.Unavailable += d
	}
	sg.readAt = s.now
	r := s.readable(i)
	sg.degraded, sg.unavail = r < s.n, r < s.c.K
}

func (s *sim) handle(e event) {
	var nd *node
	if e.node >= 0 && e.node < len(s.nodes) {
		nd = &s.nodes[e.node]
	}
	switch e.kind {
	case evDeath:
		if e.epoch == nd.gen && !nd.dead {
			s.die(e.node)
		}
	case evOutage:
		if e.epoch != nd.gen || nd.dead {
			return
		}
		s.after(s.expo(s.c.Outages), event{kind: evOutage, node: e.node, epoch: nd.gen})
		if nd.up {
			s.down(e.node, s.rng.ExpFloat64()*s.c.OutageMean)
		}
	case evRecover:
		if e.epoch == nd.epoch && !nd.dead && !nd.up {
			s.recover(e.node)
		}
	case evDetect:
		if e.epoch == nd.epoch && !nd.up && !nd.detected {
			s.detect(e.node)
		}
	case evReplace:
		s.replace(e.node)
	case evRepairDone:
		s.repairDone(e)
	case evZoneDeath:
		s.after(s.expo(s.c.ZoneAFR), event{kind: evZoneDeath, node: e.node})
		for j := range s.nodes {
			if s.nodes[j].zone == e.node && !s.nodes[j].dead {
				s.res.ZoneDeaths++
				s.die(j)
			}
		}
	case evZoneOutage:
		s.after(s.expo(s.c.ZoneOutages), event{kind: evZoneOutage, node: e.node})
		d := s.rng.ExpFloat64() * s.c.ZoneOutMean
		for j := range s.nodes {
			if s.nodes[j].zone == e.node && s.nodes[j].up {
				s.down(j, d)
			}
		}
	}
}

// down takes node j off the grid for d seconds.
func (s *sim) down(j int, d float64) {
	nd := &s.nodes[j]
	s.res.OutagesSeen++
	nd.up, nd.busy = false, false // a running repair is lost
	s.up--
	nd.epoch++
	s.after(s.c.Detect, event{kind: evDetect, node: j, epoch: nd.epoch})
	s.after(d, event{kind: evRecover, node: j, epoch: nd.epoch})
	s.eachShard(j, s.accountRead)
}

func (s *sim) eachShard(j int, f func(seg int)) {
	nd := &s.nodes[j]
	live := nd.shards[:0]
	for _, r := range nd.shards {
		if s.held(j, r) {
			live = append(live, r)
		}
	}
	nd.shards = live
	for _, r := range slices.Clone(live) {
		f(int(r.seg))
	}
}

func (s *sim) die(j int) {
	nd := &s.nodes[j]
	s.res.Deaths++
	nd.dead = true
	if nd.up {
		nd.up, nd.busy = false, false
		s.up--
		nd.epoch++
		s.after(s.c.Detect, event{kind: evDetect, node: j, epoch: nd.epoch})
	}
	s.after(s.c.Replace, event{kind: evReplace, node: j})
	s.eachShard(j, func(i int) {
		s.accountRead(i)
		if s.account(i) {
			s.lose(i)
		}
	})
}

// lose counts segment i lost and writes it again, so the exposure goes on.
func (s *sim) lose(i int) {
	s.res.Losses++
	s.accountRead(i)
	for idx := range s.segs[i].holder {
		s.segs[i].holder[idx] = -1
	}
	s.segs[i].queued = false
	s.write(i)
}

func (s *sim) recover(j int) {
	nd := &s.nodes[j]
	nd.up = true
	s.up++
	nd.detected = false
	s.eachShard(j, func(i int) {
		s.accountRead(i)
		s.check(i)
	})
	s.startNext(j)
	s.retryWaiting()
}

func (s *sim) detect(j int) {
	nd := &s.nodes[j]
	nd.detected = true
	s.res.DownEvents++
	s.eachShard(j, s.check)
	// Its queue goes to nodes that answer.
	q := nd.queue
	nd.queue = nil
	s.requeue(q)
}

// requeue checks again the segments of a queue or wait list.
func (s *sim) requeue(q []qent) {
	for _, e := range q {
		if s.segs[e.seg].life == e.life {
			s.segs[e.seg].queued = false
			s.check(e.seg)
		}
	}
}

func (s *sim) replace(j int) {
	nd := &s.nodes[j]
	old := nd.shards
	nd.shards = nil
	for _, r := range old {
		if s.held(j, r) {
			s.segs[r.seg].holder[r.idx] = -1
		}
	}
	q := nd.queue
	*nd = node{zone: nd.zone, gen: nd.gen + 1, epoch: nd.epoch + 1, up: true}
	s.up++
	s.rebuildPlacer(j)
	s.scheduleNode(j)
	for _, r := range old {
		s.account(int(r.seg))
		s.accountRead(int(r.seg))
		s.check(int(r.seg))
	}
	s.requeue(q)
	s.retryWaiting()
}

// check queues segment i for repair when the policy says it is owed one.
func (s *sim) check(i int) {
	sg := &s.segs[i]
	st := s.stored(i)
	switch {
	case st == s.n && sg.since >= 0:
		s.res.RestoreTime = append(s.res.RestoreTime, s.now-sg.since)
		sg.since = -1
	case st < s.n && sg.since < 0:
		sg.since = s.now
	}
	if sg.queued || !s.c.Policy.Needs(st, s.c.K, s.c.M) || sg.lost > s.c.M {
		return
	}
	sg.queued = true
	if s.c.RepairDist != "" {
		s.startRepair(-1, i, st)
		return
	}
	// The repair runs on a node holding a readable shard: the first.
	for _, h := range sg.holder {
		if h >= 0 && s.nodes[h].up {
			s.nodes[h].queue = append(s.nodes[h].queue, qent{i, sg.life})
			s.startNext(int(h))
			return
		}
	}
	s.wait = append(s.wait, qent{i, sg.life})
}

func (s *sim) retryWaiting() {
	w := s.wait
	s.wait = nil
	s.requeue(w)
}

func (s *sim) item(i int) remote.RepairItem {
	return remote.RepairItem{K: s.c.K, Stored: s.stored(i), Since: time.Unix(int64(s.segs[i].since), 0)}
}

// startNext starts node j's most urgent repair, in the policy's order.
func (s *sim) startNext(j int) {
	nd := &s.nodes[j]
	for !nd.busy && nd.up && len(nd.queue) > 0 {
		// Drop what no longer needs repair (nodes came back), then take
		// the first in the policy's order.
		live := nd.queue[:0]
		var best remote.RepairItem
		bi := -1
		for _, e := range nd.queue {
			sg := &s.segs[e.seg]
			if sg.life != e.life {
				continue
			}
			it := s.item(e.seg)
			if !s.c.Policy.Needs(it.Stored, s.c.K, s.c.M) {
				sg.queued = false
				continue
			}
			if bi < 0 || s.c.Policy.Before(it, best) {
				bi, best = len(live), it
			}
			live = append(live, e)
		}
		nd.queue = live
		if bi < 0 {
			return
		}
		e := nd.queue[bi]
		nd.queue = slices.Delete(nd.queue, bi, bi+1)
		if r := s.readable(e.seg); r < s.c.K || s.up-r < 1 {
			// Too few sources, or no node to put a shard on: wait for a
			// node to come back or be replaced.
			s.wait = append(s.wait, e)
			continue
		}
		s.startRepair(j, e.seg, best.Stored)
	}
}

// startRepair begins the repair of segment i on node j (-1: the formula
// models, which have no node). A repair reads k shards and writes the
// missing ones through j's link: (k + missing) shard bytes.
func (s *sim) startRepair(j, i, stored int) {
	var d float64
	switch s.c.RepairDist {
	case "exp":
		d = s.rng.ExpFloat64() * s.c.RepairMean
	case "fixed":
		d = s.c.RepairMean
	default:
		d = float64(s.c.K+s.n-stored) * s.res.ShardBytes / s.c.Bandwidth
		s.nodes[j].busy = true
	}
	e := event{kind: evRepairDone, node: j, seg: i, life: s.segs[i].life}
	if j >= 0 {
		e.epoch = s.nodes[j].epoch
	}
	s.after(d, e)
}

// repairDone finishes the repair e started: every shard missing now is
// rebuilt where the drive's placement puts it.
func (s *sim) repairDone(e event) {
	i := e.seg
	sg := &s.segs[i]
	if j := e.node; j >= 0 {
		nd := &s.nodes[j]
		if nd.epoch != e.epoch {
			// The node went down mid-repair (which freed it): start over.
			if sg.life == e.life {
				sg.queued = false
				s.check(i)
			}
			return
		}
		nd.busy = false
		defer s.startNext(j)
	}
	if sg.life != e.life {
		return // lost and written again meanwhile
	}
	sg.queued = false
	if s.readable(i) < s.c.K {
		s.check(i)
		return
	}
	p := s.placer.Segment(sg.id)
	var missing []int
	for idx, h := range sg.holder {
		if h >= 0 && !s.nodes[h].detected {
			p.Hold(int(h))
		} else {
			missing = append(missing, idx)
		}
	}
	if len(missing) == 0 {
		s.check(i) // the nodes came back before the repair needed them
		return
	}
	var src []int32 // the k shards read
	for _, h := range sg.holder {
		if len(src) < s.c.K && h >= 0 && s.nodes[h].up {
			src = append(src, h)
		}
	}
	rebuilt := 0
	for _, idx := range missing {
		dst := p.Pick(idx, func(d int) bool { nd := &s.nodes[d]; return nd.up && !nd.detected })
		if dst < 0 {
			continue
		}
		sg.holder[idx] = int32(dst)
		s.nodes[dst].shards = append(s.nodes[dst].shards, shardRef{int32(i), int32(idx)})
		s.res.NodeBytes[dst] += s.res.ShardBytes
		rebuilt++
	}
	if rebuilt == 0 {
		sg.queued = true
		s.wait = append(s.wait, qent{i, sg.life}) // no node to put a shard on
		return
	}
	for _, h := range src {
		s.res.NodeBytes[h] += s.res.ShardBytes
	}
	if e.node >= 0 {
		s.res.NodeBytes[e.node] += float64(s.c.K+rebuilt) * s.res.ShardBytes
	}
	s.res.Repairs++
	s.res.RepairBytes += float64(s.c.K+rebuilt) * s.res.ShardBytes
	s.account(i)
	s.accountRead(i)
	s.check(i)
}
