package remote

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
)

// shardAlign rounds shard payloads up so every shard is the same, SIMD-
// friendly length.
const shardAlign = 64

// ShardSizeFor is the shard payload length of a segment of size bytes
// split into k data shards.
func ShardSizeFor(size int64, k int) int64 {
	ss := (size + int64(k) - 1) / int64(k)
	return (ss + shardAlign - 1) / shardAlign * shardAlign
}

// WriteSegment codes data into k+m shards and stores them on distinct
// nodes (weighted rendezvous order, zones spread, nodes that fail skipped
// in favour of the next candidate). All n stored -> ok. Fewer but at least
// k+1 -> ok, with Nodes[i] == "" for each missing shard (repair owed).
// Fewer -> the shards stored are deleted (best effort) and the error wraps
// ErrTooFewNodes; the caller still owns data and should retry later.
//
// data is only read, and only during the call: it is copied once, into
// the shard objects. A caller that builds segments of its own should
// build them in a SegmentBuf (WriteSegmentBuf), which needs no copy.
func (g *Grid) WriteSegment(ctx context.Context, data []byte) (*SegmentInfo, error) {
	if len(data) == 0 {
		return nil, errors.New("write segment: no data")
	}
	b, err := g.NewSegmentBuf(int64(len(data)))
	if err != nil {
		return nil, err
	}
	defer b.Release()
	if _, err := b.Write(data); err != nil {
		return nil, err
	}
	return g.WriteSegmentBuf(ctx, b)
}

// WriteSegmentBuf stores the segment b holds, as WriteSegment does. b
// stays the caller's: it is only read (its parity and headers are
// written in place) and may be written again after an error. A b not
// filled to the size it was laid out for, or laid out for another code,
// is copied into a new layout first.
func (g *Grid) WriteSegmentBuf(ctx context.Context, b *SegmentBuf) (*SegmentInfo, error) {
	if b.n == 0 {
		return nil, errors.New("write segment: no data")
	}
	if b.n != b.size || b.k != g.k || b.m != g.m || b.chunk != g.chunk {
		nb, err := g.NewSegmentBuf(b.n)
		if err != nil {
			return nil, err
		}
		defer nb.Release()
		for i := int64(0); i*b.ss < b.n; i++ {
			if _, err := nb.Write(b.objs[i][b.hl : b.hl+min(b.ss, b.n-i*b.ss)]); err != nil {
				return nil, err
			}
		}
		b = nb
	}
	k, m := g.k, g.m
	n := k + m
	info := &SegmentInfo{K: k, M: m, Size: b.n, ShardSize: b.ss, ChunkSize: g.chunk, Nodes: make([]string, n)}
	if _, err := rand.Read(info.ID[:]); err != nil {
		return nil, fmt.Errorf("write segment: random id: %w", err)
	}
	if err := b.seal(g, info.ID); err != nil {
		return nil, err
	}
	objs := b.objs

	members := g.view().all
	pl := newPlacer(members, info.ID, int64(len(objs[0])), true)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards errs and info.Nodes
		errs  []error
		tried = map[string]bool{}
	)
	for i := range n {
		first, ok := pl.pick(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := first
			for ok {
				mb := members[j]
				err := g.call(ctx, mb, func(ctx context.Context, s Store) error {
					return s.Put(ctx, ShardName(info.ID, i), objs[i])
				})
				putDone(mb, int64(len(objs[i])), err)
				mu.Lock()
				tried[mb.Name] = true
				if err == nil {
					info.Nodes[i] = mb.Name
					mu.Unlock()
					return
				}
				errs = append(errs, fmt.Errorf("shard %d: %w", i, err))
				mu.Unlock()
				pl.fail(j)
				if ctx.Err() != nil {
					return
				}
				j, ok = pl.pick(i)
			}
		}()
	}
	wg.Wait()
	// A node removed while its Put ran is one no read will ask: its shard
	// counts as missing (repair owed), as for a segment stored before
	// the remove.
	cur := g.view().byName
	for i, name := range info.Nodes {
		if name != "" && cur[name] == nil {
			info.Nodes[i] = ""
			errs = append(errs, fmt.Errorf("shard %d: node %q: %w", i, name, ErrNodeRemoved))
		}
	}

	stored := info.Stored()
	if stored == n || (stored >= k+1 && ctx.Err() == nil) {
		if stored < n {
			names, frees := pl.noRoom()
			g.log.Warn("segment stored degraded; repair owed", "segment", info.ID, "stored", stored, "n", n, "errors", errors.Join(errs...),
				"full", fullNote(names, frees, int64(len(objs[0]))))
		}
		return info, nil
	}
	// Too few: take back what was stored so nothing is orphaned.
	cleanCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	if err := g.DeleteSegment(cleanCtx, info); err != nil {
		g.log.Warn("could not remove the shards of a failed segment write", "segment", info.ID, "err", err)
	}
	if names, frees := pl.noRoom(); len(names) > 0 {
		errs = append(errs, errors.New(fullNote(names, frees, int64(len(objs[0])))))
	}
	cause := errors.Join(errs...)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("write segment %s: %w (stored %d of %d shards before it stopped)", info.ID, ctx.Err(), stored, n)
	}
	return nil, fmt.Errorf("write segment %s: %w: only %d of %d nodes tried took a shard, need at least %d of %d; "+
		"start the stopped nodes or free space on full ones, then retry (the data is kept until then): %w",
		info.ID, ErrTooFewNodes, stored, len(tried), k+1, n, cause)
}
