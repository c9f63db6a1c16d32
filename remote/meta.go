package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// MaxMetaSize bounds a metadata object's payload.
const MaxMetaSize = 16 << 20

// metaName is the object name of metadata object name on a node.
func metaName(name string) (string, error) {
	full := "meta/" + name
	if err := ValidName(full); err != nil {
		return "", fmt.Errorf("meta object %q: %w", name, err)
	}
	return full, nil
}

// PutMeta stores data (the caller seals it, e.g. with SealMeta) on every
// member as a KindMeta shard named "meta/"+name, in parallel. It returns
// how many members took it; the error is non-nil only when none did.
// data is only read during the call.
func (g *Grid) PutMeta(ctx context.Context, name string, data []byte) (int, error) {
	return g.PutMetaEach(ctx, name, data, nil)
}

// PutMetaEach is PutMeta that calls each (when not nil) as each member
// answers, with the member's name and its error (nil: it took the
// object), one call at a time, so a command can show its progress.
func (g *Grid) PutMetaEach(ctx context.Context, name string, data []byte, each func(node string, err error)) (int, error) {
	full, err := metaName(name)
	if err != nil {
		return 0, err
	}
	if len(data) > MaxMetaSize {
		return 0, fmt.Errorf("meta object %q: %d bytes, over the %d limit", name, len(data), MaxMetaSize)
	}
	obj, err := shard.Encode(&shard.Header{Kind: shard.KindMeta, K: 1, SegmentSize: int64(len(data)), ChunkSize: uint32(g.chunk)}, data)
	if err != nil {
		return 0, fmt.Errorf("meta object %q: %w", name, err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards ok, errs and calls to each
		ok   int
		errs []error
	)
	for _, m := range g.view().all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.call(ctx, m, func(ctx context.Context, s Store) error { return s.Put(ctx, full, obj) })
			mu.Lock()
			defer mu.Unlock()
			if each != nil {
				each(m.Name, err)
			}
			if err != nil {
				errs = append(errs, err)
				return
			}
			ok++
		}()
	}
	wg.Wait()
	if ok == 0 {
		return 0, fmt.Errorf("meta object %q: no node took it (check that the nodes are up): %w", name, errors.Join(errs...))
	}
	if len(errs) > 0 {
		g.log.Warn("meta object not on every node", "name", name, "stored", ok, "nodes", len(g.view().all), "errors", errors.Join(errs...))
	}
	return ok, nil
}

// GetMeta returns the payload of the first copy of "meta/"+name that any
// member serves and that verifies (newly allocated, owned by the caller),
// falling back to the name drives made before 2026-12 used
// (LegacyMetaName). All members asked in parallel; when none has a good
// copy the error wraps ErrNotFound if every member said not found, else
// the causes.
func (g *Grid) GetMeta(ctx context.Context, name string) ([]byte, error) {
	data, err := g.getMeta(ctx, name)
	if errors.Is(err, ErrNotFound) {
		if old := LegacyMetaName(name); old != "" {
			if d, lerr := g.getMeta(ctx, old); lerr == nil {
				return d, nil
			}
		}
	}
	return data, err
}

func (g *Grid) getMeta(ctx context.Context, name string) ([]byte, error) {
	full, err := metaName(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type res struct {
		data []byte
		err  error
	}
	members := g.view().all
	ch := make(chan res, len(members))
	for _, m := range members {
		go func() {
			var data []byte
			err := g.call(ctx, m, func(ctx context.Context, s Store) error {
				var err error
				data, err = readMeta(ctx, s, full)
				return err
			})
			ch <- res{data, err}
		}()
	}
	var errs []error
	notFound := 0
	for range members {
		r := <-ch
		if r.err == nil {
			return r.data, nil
		}
		if errors.Is(r.err, ErrNotFound) {
			notFound++
		}
		errs = append(errs, r.err)
	}
	if notFound == len(members) {
		return nil, fmt.Errorf("meta object %q: %w on any node", name, ErrNotFound)
	}
	return nil, fmt.Errorf("meta object %q: no node served a good copy: %w", name, errors.Join(errs...))
}

// MetaCopy is one member's answer to GetMetaAll.
type MetaCopy struct {
	Node string
	Data []byte // nil when Err is set
	Err  error
}

// GetMetaAll asks every member for its copy of "meta/"+name, in parallel,
// and returns each answer in member order: the root record is read this
// way, since copies differ and the newest valid one wins.
func (g *Grid) GetMetaAll(ctx context.Context, name string) []MetaCopy {
	full, err := metaName(name)
	members := g.view().all
	out := make([]MetaCopy, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i].Node = m.Name
		if err != nil {
			out[i].Err = err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Err = g.call(ctx, m, func(ctx context.Context, s Store) error {
				var err error
				out[i].Data, err = readMeta(ctx, s, full)
				return err
			})
		}()
	}
	wg.Wait()
	return out
}

// GetMetaFrom reads meta object name from one store that is not (yet) part
// of a grid: recovery starts from one node's address. It falls back to
// the legacy name like GetMeta.
func GetMetaFrom(ctx context.Context, s Store, name string) ([]byte, error) {
	full, err := metaName(name)
	if err != nil {
		return nil, err
	}
	data, err := readMeta(ctx, s, full)
	if errors.Is(err, ErrNotFound) {
		if old := LegacyMetaName(name); old != "" {
			if d, lerr := readMeta(ctx, s, "meta/"+old); lerr == nil {
				return d, nil
			}
		}
	}
	return data, err
}

// DeleteMeta removes meta object name (and its legacy name) from every
// member that is up; it returns how many members answered without error.
func (g *Grid) DeleteMeta(ctx context.Context, name string) int {
	full, err := metaName(name)
	if err != nil {
		return 0
	}
	names := []string{full}
	if old := LegacyMetaName(name); old != "" {
		names = append(names, "meta/"+old)
	}
	return g.deleteMeta(ctx, names)
}

// DeleteLegacyMeta removes only the pre-2026-12 copy of meta object name
// (passwd does, so that the old passphrase no longer unwraps a key kept
// under the old name).
func (g *Grid) DeleteLegacyMeta(ctx context.Context, name string) int {
	old := LegacyMetaName(name)
	if old == "" {
		return len(g.view().all)
	}
	return g.deleteMeta(ctx, []string{"meta/" + old})
}

func (g *Grid) deleteMeta(ctx context.Context, names []string) int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards ok
		ok int
	)
	for _, m := range g.view().all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.call(ctx, m, func(ctx context.Context, s Store) error {
				for _, n := range names {
					if err := s.Delete(ctx, n); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
				}
				return nil
			})
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

// readMeta reads and verifies one meta object from s.
func readMeta(ctx context.Context, s Store, full string) ([]byte, error) {
	st, err := s.Stat(ctx, full)
	if err != nil {
		return nil, err
	}
	if st.Size < shard.FixedLen || st.Size > MaxMetaSize+shard.HeaderLen(MaxMetaSize, shard.MinChunkSize) {
		return nil, fmt.Errorf("%w: meta object of %d bytes", ErrCorrupt, st.Size)
	}
	obj := make([]byte, st.Size)
	if err := s.Get(ctx, full, 0, obj); err != nil {
		return nil, err
	}
	h, payload, err := shard.Verify(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if h.Kind != shard.KindMeta {
		return nil, fmt.Errorf("%w: object is not a meta object", ErrCorrupt)
	}
	return payload, nil
}
