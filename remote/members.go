package remote

import (
	"fmt"
	"slices"
)

// membership is one immutable view of the grid's nodes. A change builds
// a new view and swaps it in whole, so a read or write in flight keeps
// the view it started with; member structs (their down marks and call
// slots) carry over from view to view.
type membership struct {
	all    []*member
	byName map[string]*member
}

func (g *Grid) view() *membership { return g.mem.Load() }

func (g *Grid) newMember(mb Member) (*member, error) {
	if mb.Name == "" || mb.Store == nil {
		return nil, fmt.Errorf("grid: member %q has no name or no store", mb.Name)
	}
	if mb.Weight < 0 {
		return nil, fmt.Errorf("grid: member %q has negative weight %v", mb.Name, mb.Weight)
	}
	if len(mb.Name) > MaxNameLen {
		return nil, fmt.Errorf("grid: member name %q is longer than %d bytes", mb.Name, MaxNameLen)
	}
	m := &member{Member: mb, weight: mb.Weight, live: newLiveness()}
	// The grid's stack, innermost first: each call's timeout starts once
	// it has a slot; the breaker sees what the caller sees; the gate
	// turns away a call to a node the health check found unresponsive
	// before it waits for a slot.
	m.st = Wrap(Wrap(Wrap(Wrap(mb.Store, callTimeout(g.timeout)), slots(g.conc)), m.breaker()), m.gate())
	if m.weight == 0 {
		m.weight = 1
	}
	m.zoneKey = "z:" + mb.Zone
	if mb.Zone == "" {
		m.zoneKey = "n:" + mb.Name
	}
	return m, nil
}

// MemberInfo describes one member of the grid as it is now.
type MemberInfo struct {
	Name, Zone string
	Draining   bool
}

// Members lists the grid's members in the order they were added.
func (g *Grid) Members() []MemberInfo {
	var out []MemberInfo
	for _, m := range g.view().all {
		out = append(out, MemberInfo{Name: m.Name, Zone: m.Zone, Draining: m.draining.Load()})
	}
	return out
}

// AddMember adds a node. New segments may place shards on it at once;
// existing segments move shards to it only when a repair pass rebalances
// (RepairOptions.Rebalance).
func (g *Grid) AddMember(mb Member) error {
	g.memMu.Lock()
	defer g.memMu.Unlock()
	old := g.view()
	if _, dup := old.byName[mb.Name]; dup {
		return fmt.Errorf("grid: a member named %q already exists", mb.Name)
	}
	m, err := g.newMember(mb)
	if err != nil {
		return err
	}
	ms := &membership{all: append(slices.Clip(old.all), m), byName: make(map[string]*member, len(old.all)+1)}
	for _, x := range ms.all {
		ms.byName[x.Name] = x
	}
	g.mem.Store(ms)
	return nil
}

// RemoveMember forgets a node: reads no longer ask it and no shard is
// placed on it. Shards the segments still name on it count as missing, so
// repair regenerates them elsewhere. Removing below k+m nodes is refused.
func (g *Grid) RemoveMember(name string) error {
	g.memMu.Lock()
	defer g.memMu.Unlock()
	old := g.view()
	if old.byName[name] == nil {
		return fmt.Errorf("grid: no member named %q", name)
	}
	if len(old.all)-1 < g.k+g.m {
		return fmt.Errorf("grid: removing %s would leave %d nodes for k=%d m=%d; add a node first", name, len(old.all)-1, g.k, g.m)
	}
	// Draining nodes take no shard: the ones left that do must hold k+m.
	placeable := 0
	for _, x := range old.all {
		if x.Name != name && !x.draining.Load() {
			placeable++
		}
	}
	if placeable < g.k+g.m {
		return fmt.Errorf("grid: removing %s would leave %d nodes that take shards (the others are draining) for k=%d m=%d; add a node first (meshdrive node add), or let the drains finish", name, placeable, g.k, g.m)
	}
	ms := &membership{byName: make(map[string]*member, len(old.all)-1)}
	for _, x := range old.all {
		if x.Name != name {
			ms.all = append(ms.all, x)
			ms.byName[x.Name] = x
		}
	}
	g.mem.Store(ms)
	return nil
}

// SetDraining marks a node as draining (it takes no new shard, and
// repair moves its shards to other nodes) or clears the mark. Draining
// below k+m placeable nodes is refused.
func (g *Grid) SetDraining(name string, on bool) error {
	g.memMu.Lock()
	defer g.memMu.Unlock()
	ms := g.view()
	m := ms.byName[name]
	if m == nil {
		return fmt.Errorf("grid: no member named %q", name)
	}
	if on && !m.draining.Load() {
		left := 0
		for _, x := range ms.all {
			if !x.draining.Load() {
				left++
			}
		}
		if left-1 < g.k+g.m {
			return fmt.Errorf("grid: draining %s would leave %d nodes to place k+m=%d shards on; add a node first (meshdrive node add)", name, left-1, g.k+g.m)
		}
	}
	m.draining.Store(on)
	return nil
}
