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
		mu   sync.Mutex // guards ok, errs
		ok   int
		errs []error
	)
	for _, m := range g.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.callSized(ctx, m, len(obj), func(ctx context.Context, s Store) error { return s.Put(ctx, full, obj) })
			mu.Lock()
			defer mu.Unlock()
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
		g.log.Warn("meta object not on every node", "name", name, "stored", ok, "nodes", len(g.members), "errors", errors.Join(errs...))
	}
	return ok, nil
}

// GetMeta returns the payload of the first copy of "meta/"+name that any
// member serves and that verifies (newly allocated, owned by the caller).
// All members asked in parallel; when none has a good copy the error wraps
// ErrNotFound if every member said not found, else the causes.
func (g *Grid) GetMeta(ctx context.Context, name string) ([]byte, error) {
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
	ch := make(chan res, len(g.members))
	for _, m := range g.members {
		go func() {
			var data []byte
			err := g.call(ctx, m, func(ctx context.Context, s Store) error {
				st, err := s.Stat(ctx, full)
				if err != nil {
					return err
				}
				if st.Size < shard.FixedLen || st.Size > MaxMetaSize+shard.HeaderLen(MaxMetaSize, shard.MinChunkSize) {
					return fmt.Errorf("%w: meta object of %d bytes", ErrCorrupt, st.Size)
				}
				obj := make([]byte, st.Size)
				if err := s.Get(ctx, full, 0, obj); err != nil {
					return err
				}
				h, payload, err := shard.Verify(obj)
				if err != nil {
					return fmt.Errorf("%w: %w", ErrCorrupt, err)
				}
				if h.Kind != shard.KindMeta {
					return fmt.Errorf("%w: object is not a meta object", ErrCorrupt)
				}
				data = payload
				return nil
			})
			ch <- res{data, err}
		}()
	}
	var errs []error
	notFound := 0
	for range g.members {
		r := <-ch
		if r.err == nil {
			return r.data, nil
		}
		if errors.Is(r.err, ErrNotFound) {
			notFound++
		}
		errs = append(errs, r.err)
	}
	if notFound == len(g.members) {
		return nil, fmt.Errorf("meta object %q: %w on any node", name, ErrNotFound)
	}
	return nil, fmt.Errorf("meta object %q: no node served a good copy: %w", name, errors.Join(errs...))
}
