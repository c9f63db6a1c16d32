package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// RepairOptions configure RepairSegment.
type RepairOptions struct {
	CheckOptions
	// Health, when set, is a CheckSegment answer for this segment to use
	// instead of checking again.
	Health *SegmentHealth
	// Rebalance also moves a shard when a node that holds none of the
	// segment's shards now wins its placement (after AddMember).
	Rebalance bool
}

// RepairResult says what RepairSegment did.
type RepairResult struct {
	// Seg is the segment with its new node list (a copy; the one passed in
	// is not changed). The caller records it, then deletes Stale.
	Seg *SegmentInfo
	// Rebuilt counts shards regenerated because they were missing or
	// corrupt; Moved, intact shards copied off a draining node (or to a
	// new node, rebalancing).
	Rebuilt, Moved int
	// Stale lists shards left on nodes the new list no longer names: the
	// caller deletes them (DeleteShards) once Seg is recorded, so a crash
	// between the two leaves an extra copy, never a missing one.
	Stale []StaleShard
	// Failed counts shards that needed a node and found none that took
	// them; Seg still names their old node (repair still owed).
	Failed int
	// Bytes is the shard bytes read and written.
	Bytes int64
}

// Changed reports whether the node list changed.
func (r *RepairResult) Changed() bool { return r.Rebuilt+r.Moved > 0 }

// StaleShard is one shard object to delete from one node.
type StaleShard struct {
	Node  string
	Index int
}

// RepairSegment brings seg back to k+m intact shards on distinct nodes
// (and zones): shards that are missing, corrupt, on a node no longer in
// the grid or unreachable are rebuilt from any k intact ones, and shards
// on draining nodes are copied off. Each goes to the node placement picks
// for it, skipping nodes that hold another shard of the segment, draining
// nodes, and nodes that fail (next candidate). Fewer than k intact shards
// is a *TooFewShardsError and nothing is written.
//
// The caller records Result.Seg (the journal does), then DeleteShards
// Result.Stale. A shard stored on a node whose put then failed to be
// recorded is an unreferenced object: garbage, never a loss.
func (g *Grid) RepairSegment(ctx context.Context, seg *SegmentInfo, o RepairOptions) (*RepairResult, error) {
	if err := checkRange(seg, 0, 1); err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	h := o.Health
	if h == nil {
		h = g.CheckSegment(ctx, seg, o.CheckOptions)
	}
	ms := g.view()
	n := len(seg.Nodes)
	res := &RepairResult{Seg: &SegmentInfo{ID: seg.ID, K: seg.K, M: seg.M, Size: seg.Size, ShardSize: seg.ShardSize,
		ChunkSize: seg.ChunkSize, Nodes: slices.Clone(seg.Nodes)}}
	var sources, targets []int
	moving := make([]bool, n)
	for i, sc := range h.Shards {
		mb := ms.byName[sc.Node]
		switch {
		case sc.State != ShardOK || mb == nil: // mb nil: removed since the health was taken
			targets = append(targets, i)
		case mb != nil && mb.draining.Load():
			sources = append(sources, i)
			targets = append(targets, i)
			moving[i] = true
		default:
			sources = append(sources, i)
		}
	}
	hl := shard.HeaderLen(seg.ShardSize, seg.ChunkSize)
	need := hl + seg.ShardSize // one shard object's bytes
	pl := newPlacer(ms.all, seg.ID, need, true)
	idx := make(map[string]int, len(ms.all))
	for j, m := range ms.all {
		idx[m.Name] = j
	}
	for i, sc := range h.Shards {
		if j, ok := idx[sc.Node]; ok && sc.State == ShardOK && !moving[i] {
			pl.claim(j)
		}
	}
	if o.Rebalance && len(targets) == 0 {
		targets = g.rebalanceTargets(seg, ms, need, moving)
		for _, i := range targets {
			moving[i] = true
		}
	}
	if len(targets) == 0 {
		return res, nil
	}
	if pl.free() == 0 {
		full := ""
		if names, frees := pl.noRoom(); len(names) > 0 {
			full = "; " + fullNote(names, frees, need)
		}
		return res, fmt.Errorf("repair segment %s: %w: every node that could take one of its %d missing shards holds another shard of it, is draining, is down or is full; start the stopped nodes or add one (meshdrive node add)%s",
			seg.ID, ErrTooFewNodes, len(targets), full)
	}
	if len(sources) < seg.K {
		var causes []error
		for _, sc := range h.Shards {
			if sc.State != ShardOK {
				causes = append(causes, fmt.Errorf("shard %d: %s: %v", sc.Index, sc.State, sc.Err))
			}
		}
		return res, &TooFewShardsError{Segment: seg.ID, Usable: len(sources), Need: seg.K, Causes: causes}
	}

	payloads, read, err := g.readShards(ctx, seg, ms, sources, targets)
	if err != nil {
		return res, err
	}
	res.Bytes += read

	// Build each target's object, then place and store them in parallel.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards res and errs
		errs []error
		put  = make([]bool, n) // target i's Put succeeded
	)
	for _, i := range targets {
		obj := make([]byte, 0, hl+seg.ShardSize)
		hd := shard.Header{Kind: shard.KindSegment, K: uint8(seg.K), M: uint8(seg.M), Index: uint8(i),
			ChunkSize: uint32(seg.ChunkSize), Segment: seg.ID, SegmentSize: seg.Size}
		obj, err := shard.AppendHeader(obj, &hd, payloads[i])
		if err != nil {
			return res, fmt.Errorf("repair segment %s: shard %d header: %w", seg.ID, i, err)
		}
		obj = append(obj, payloads[i]...)
		old := seg.Nodes[i] // a node that lost or spoiled the shard may take it back
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, ok := pl.pick(i)
			for ok {
				mb := ms.all[j]
				err := g.call(ctx, mb, func(ctx context.Context, s Store) error {
					return s.Put(ctx, ShardName(seg.ID, i), obj)
				})
				putDone(mb, int64(len(obj)), err)
				if err == nil {
					mu.Lock()
					res.Seg.Nodes[i] = mb.Name
					put[i] = true
					res.Bytes += int64(len(obj))
					if moving[i] {
						res.Moved++
					} else {
						res.Rebuilt++
					}
					if old != "" && old != mb.Name {
						res.Stale = append(res.Stale, StaleShard{Node: old, Index: i})
					}
					mu.Unlock()
					return
				}
				mu.Lock()
				errs = append(errs, fmt.Errorf("shard %d: %w", i, err))
				mu.Unlock()
				pl.fail(j)
				if ctx.Err() != nil {
					break
				}
				j, ok = pl.pick(i)
			}
			mu.Lock()
			res.Failed++ // the list keeps naming the old node: its shard may come back with it
			mu.Unlock()
		}()
	}
	wg.Wait()
	// A target removed while its Put ran holds a shard no read will ask
	// for: the segment keeps naming the old node (its copy is not stale).
	cur := g.view().byName
	for _, i := range targets {
		name, old := res.Seg.Nodes[i], seg.Nodes[i]
		if !put[i] || cur[name] != nil {
			continue
		}
		res.Seg.Nodes[i] = old
		res.Stale = slices.DeleteFunc(res.Stale, func(s StaleShard) bool { return s.Index == i })
		if moving[i] {
			res.Moved--
		} else {
			res.Rebuilt--
		}
		res.Failed++
		errs = append(errs, fmt.Errorf("shard %d: node %q: %w", i, name, ErrNodeRemoved))
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("repair segment %s: %d shards found no node to take them (start stopped nodes, free space or add a node): %w",
			seg.ID, res.Failed, errors.Join(errs...))
	}
	return res, nil
}

// rebalanceTargets lists shards whose rendezvous winner among all
// members with room for a shard of need bytes is a node that holds no
// shard of seg.
func (g *Grid) rebalanceTargets(seg *SegmentInfo, ms *membership, need int64, moving []bool) []int {
	holds := map[string]bool{}
	for _, name := range seg.Nodes {
		holds[name] = true
	}
	ideal := newPlacer(ms.all, seg.ID, need, false)
	var out []int
	for i := range seg.Nodes {
		j, ok := ideal.pick(i)
		if ok && !holds[ms.all[j].Name] {
			out = append(out, i)
			holds[ms.all[j].Name] = true
		}
	}
	return out
}

// readShards reads the whole payload of k intact shards (sources, data
// shards first, another source for each that fails) and reconstructs the
// payloads of targets. payloads[i] is set for every source read and every
// target.
func (g *Grid) readShards(ctx context.Context, seg *SegmentInfo, ms *membership, sources, targets []int) ([][]byte, int64, error) {
	n := len(seg.Nodes)
	whole := []piece{{shard: 0, off: 0, n: seg.ShardSize, lo: 0, hi: seg.ShardSize}}
	payloads := make([][]byte, n)
	var read int64
	var causes []error
	type got struct {
		i    int
		data []byte
		err  error
	}
	ch := make(chan got, len(sources))
	next, inflight, usable := 0, 0, 0
	launch := func() {
		i := sources[next]
		next++
		inflight++
		go func() {
			spans, err := g.fetchVerified(ctx, seg, i, ms.byName[seg.Nodes[i]], whole)
			var d []byte
			if err == nil {
				d = spans[0]
			}
			ch <- got{i, d, err}
		}()
	}
	for next < len(sources) && next < seg.K {
		launch()
	}
	for usable < seg.K && inflight > 0 {
		r := <-ch
		inflight--
		if r.err != nil {
			causes = append(causes, r.err)
			if next < len(sources) {
				launch()
			}
			continue
		}
		payloads[r.i] = r.data
		read += int64(len(r.data))
		usable++
	}
	for inflight > 0 { // drain: every goroutine sends once
		if r := <-ch; r.err == nil && usable < seg.K {
			payloads[r.i] = r.data
			usable++
		}
		inflight--
	}
	if usable < seg.K {
		return nil, read, &TooFewShardsError{Segment: seg.ID, Usable: usable, Need: seg.K, Causes: causes}
	}
	need := false
	for _, i := range targets {
		need = need || payloads[i] == nil
	}
	if !need {
		return payloads, read, nil
	}
	enc, err := g.encoder(seg.K, seg.M)
	if err != nil || enc == nil {
		return nil, read, fmt.Errorf("repair segment %s: cannot reconstruct (k=%d m=%d): %v", seg.ID, seg.K, seg.M, err)
	}
	required := make([]bool, n)
	for _, i := range targets {
		required[i] = payloads[i] == nil
	}
	g.stats.reconstructs.Add(1)
	if err := enc.ReconstructSome(payloads, required); err != nil {
		return nil, read, fmt.Errorf("repair segment %s: reconstruct: %w", seg.ID, err)
	}
	return payloads, read, nil
}

// DeleteShards deletes shards from their nodes (Stale of a RepairResult
// once the new node list is recorded). A node gone from the grid or down
// is skipped and reported; a shard already gone is not an error.
func (g *Grid) DeleteShards(ctx context.Context, seg SegmentID, stale []StaleShard) error {
	byName := g.view().byName
	var errs []error
	for _, s := range stale {
		mb := byName[s.Node]
		if mb == nil {
			continue // forgotten node: nothing to reach
		}
		err := g.call(ctx, mb, func(ctx context.Context, st Store) error { return st.Delete(ctx, ShardName(seg, s.Index)) })
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete stale shards of segment %s: %w", seg, errors.Join(errs...))
	}
	return nil
}
