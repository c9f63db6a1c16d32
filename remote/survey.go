package remote

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// Survey is what every node holds, from one listing of each: the cheap
// way to count the present shards of many segments (a check without
// --verify, the background repair pass). A shard counts as present when
// its node lists an object of the right size under its name.
type Survey struct {
	// Down: nodes that did not answer (their shards count unreachable).
	Down map[string]error
	// objs[node][name] = size
	objs map[string]map[string]int64
}

// surveyPage is the listing page size of Survey.
const surveyPage = 1000

// Survey lists the shards on every member, in parallel. A node that
// fails is recorded in Down, not returned as an error.
func (g *Grid) Survey(ctx context.Context) *Survey {
	members := g.view().all
	s := &Survey{Down: map[string]error{}, objs: map[string]map[string]int64{}}
	var mu sync.Mutex // guards s
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			objs, err := g.listShards(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.Down[m.Name] = err
				return
			}
			s.objs[m.Name] = objs
		}()
	}
	wg.Wait()
	return s
}

func (g *Grid) listShards(ctx context.Context, m *member) (map[string]int64, error) {
	out := map[string]int64{}
	after := ""
	for {
		page, err := g.listFrom(ctx, m, "shards/", after, surveyPage)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return out, nil
		}
		for _, o := range page {
			out[o.Name] = o.Size
		}
		after = page[len(page)-1].Name
	}
}

// Segment is the health of seg as the survey sees it.
func (s *Survey) Segment(seg *SegmentInfo, byName func(string) bool) *SegmentHealth {
	h := &SegmentHealth{Seg: seg, Shards: make([]ShardCheck, len(seg.Nodes))}
	want := shard.HeaderLen(seg.ShardSize, seg.ChunkSize) + seg.ShardSize
	for i, node := range seg.Nodes {
		sc := &h.Shards[i]
		sc.Index, sc.Node = i, node
		objs, listed := s.objs[node]
		switch {
		case node == "":
			sc.State, sc.Err = ShardMissing, fmt.Errorf("not stored (repair owed)")
		case byName != nil && !byName(node):
			sc.State, sc.Err = ShardUnreachable, fmt.Errorf("node %q is not in the grid", node)
		case !listed:
			sc.State, sc.Err = ShardUnreachable, fmt.Errorf("node %s did not list its shards: %v", node, s.Down[node])
		default:
			size, ok := objs[ShardName(seg.ID, i)]
			switch {
			case !ok:
				sc.State, sc.Err = ShardMissing, fmt.Errorf("node %s: shard %d: %w", node, i, ErrNotFound)
			case size != want:
				sc.State, sc.Err = ShardCorrupt, fmt.Errorf("node %s: shard %d is %d bytes, want %d: %w", node, i, size, want, ErrCorrupt)
			default:
				sc.State = ShardOK
				h.OK++
			}
		}
	}
	return h
}

// Count is how many shard objects the survey saw on node (-1 when it did
// not answer).
func (s *Survey) Count(node string) int {
	objs, ok := s.objs[node]
	if !ok {
		return -1
	}
	return len(objs)
}

// Names lists the shard objects the survey saw on node.
func (s *Survey) Names(node string) []string {
	var out []string
	for name := range s.objs[node] {
		if strings.HasPrefix(name, "shards/") {
			out = append(out, name)
		}
	}
	return out
}

// HasMember reports whether name is a member of the grid now.
func (g *Grid) HasMember(name string) bool { return g.view().byName[name] != nil }

// DeleteObjects deletes named objects from one member (the leftovers of a
// drain). A missing object is not an error.
func (g *Grid) DeleteObjects(ctx context.Context, node string, names []string) error {
	m := g.view().byName[node]
	if m == nil {
		return fmt.Errorf("no member named %q", node)
	}
	for _, n := range names {
		err := g.call(ctx, m, func(ctx context.Context, s Store) error { return s.Delete(ctx, n) })
		if err != nil {
			return err
		}
	}
	return nil
}
