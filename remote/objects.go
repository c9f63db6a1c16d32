package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// listPage is how many objects one List call asks for.
const listPage = 1000

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
				var page []ObjectInfo
				err := g.call(ctx, m, func(ctx context.Context, s Store) error {
					var err error
					page, err = s.List(ctx, prefix, after, listPage)
					return err
				})
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
