package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// listPage is how many objects one List call asks for.
const listPage = 1000

// listFrom asks m for one page of the names under prefix after after,
// and checks it: at most limit names, each under prefix, each past the
// one before. A node that answers otherwise (one that ignores after)
// would keep its caller listing, and growing its list, for ever.
func (g *Grid) listFrom(ctx context.Context, m *member, prefix, after string, limit int) ([]ObjectInfo, error) {
	var page []ObjectInfo
	err := g.call(ctx, m, func(ctx context.Context, s Store) error {
		var err error
		page, err = s.List(ctx, prefix, after, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	bad := func(what string) ([]ObjectInfo, error) {
		return nil, fmt.Errorf("node %s: %s in a listing of %q after %q: the node does not keep the storage protocol; "+
			"update its meshdrive, or replace it (meshdrive node remove %s: repair regenerates its shards elsewhere)", m.Name, what, prefix, after, m.Name)
	}
	if len(page) > limit {
		return bad(fmt.Sprintf("%d names where at most %d were asked for", len(page), limit))
	}
	prev := after
	for i, o := range page {
		if !strings.HasPrefix(o.Name, prefix) {
			return bad(fmt.Sprintf("name %q not under the prefix", o.Name))
		}
		if (i > 0 || after != "") && o.Name <= prev {
			return bad(fmt.Sprintf("name %q out of order after %q", o.Name, prev))
		}
		prev = o.Name
	}
	return page, nil
}

// ListObjects lists, on every member that answers, the objects whose names
// start with prefix: garbage collection finds orphaned shards this way.
// A member that fails is left out of the map and named in the error; the
// others are still listed.
func (g *Grid) ListObjects(ctx context.Context, prefix string) (map[string][]ObjectInfo, error) {
	out := map[string][]ObjectInfo{}
	var errs []error
	for _, m := range g.view().all {
		var objs []ObjectInfo
		after := ""
		err := func() error {
			for {
				page, err := g.listFrom(ctx, m, prefix, after, listPage)
				if err != nil {
					return err
				}
				objs = append(objs, page...)
				if len(page) < listPage {
					return nil
				}
				after = page[len(page)-1].Name
			}
		}()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[m.Name] = objs
	}
	return out, errors.Join(errs...)
}

// DeleteObject deletes one object from one member; a missing object is no
// error.
func (g *Grid) DeleteObject(ctx context.Context, node, name string) error {
	m := g.view().byName[node]
	if m == nil {
		return fmt.Errorf("delete %s: node %q is not in the grid", name, node)
	}
	err := g.call(ctx, m, func(ctx context.Context, s Store) error { return s.Delete(ctx, name) })
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// ParseShardName parses a name ShardName made.
func ParseShardName(name string) (SegmentID, int, bool) {
	rest, ok := strings.CutPrefix(name, "shards/")
	if !ok {
		return SegmentID{}, 0, false
	}
	idHex, idx, ok := strings.Cut(rest, ".")
	if !ok {
		return SegmentID{}, 0, false
	}
	id, err := ParseSegmentID(idHex)
	if err != nil {
		return SegmentID{}, 0, false
	}
	var i int
	if _, err := fmt.Sscanf(idx, "%d", &i); err != nil || i < 0 || i > 255 || fmt.Sprint(i) != idx {
		return SegmentID{}, 0, false
	}
	return id, i, true
}
