package remote

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/meshdrive/meshdrive/remote/shard"
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
// data is only read, and only during the call.
func (g *Grid) WriteSegment(ctx context.Context, data []byte) (*SegmentInfo, error) {
	k, m := g.k, g.m
	n := k + m
	if len(data) == 0 {
		return nil, errors.New("write segment: no data")
	}
	ss := ShardSizeFor(int64(len(data)), k)
	if ss > shard.MaxPayloadLen {
		return nil, fmt.Errorf("write segment: %d bytes make %d-byte shards, over the %d limit; write smaller segments", len(data), ss, shard.MaxPayloadLen)
	}
	info := &SegmentInfo{K: k, M: m, Size: int64(len(data)), ShardSize: ss, ChunkSize: g.chunk, Nodes: make([]string, n)}
	if _, err := rand.Read(info.ID[:]); err != nil {
		return nil, fmt.Errorf("write segment: random id: %w", err)
	}

	// One buffer per shard object: header, then payload. Data shards get
	// their slice of data copied in once (zero padding after the end);
	// parity is encoded straight into the parity payloads.
	hl := int(shard.HeaderLen(ss, g.chunk))
	objs := make([][]byte, n)
	payloads := make([][]byte, n)
	for i := range objs {
		objs[i] = g.getBuf(hl + int(ss))
		payloads[i] = objs[i][hl:]
	}
	defer func() {
		for _, b := range objs {
			g.putBuf(b)
		}
	}()
	for i := range k {
		lo := min(int64(i)*ss, int64(len(data)))
		hi := min(lo+ss, int64(len(data)))
		c := copy(payloads[i], data[lo:hi])
		clear(payloads[i][c:])
	}
	if m > 0 {
		enc, err := g.encoder(k, m)
		if err != nil {
			return nil, err
		}
		if err := enc.Encode(payloads); err != nil {
			return nil, fmt.Errorf("write segment: encode: %w", err)
		}
	}
	for i := range n {
		h := shard.Header{Kind: shard.KindSegment, K: uint8(k), M: uint8(m), Index: uint8(i),
			ChunkSize: uint32(g.chunk), Segment: info.ID, SegmentSize: info.Size}
		hdr, err := shard.AppendHeader(objs[i][:0], &h, payloads[i])
		if err != nil {
			return nil, fmt.Errorf("write segment: shard header: %w", err)
		}
		if len(hdr) != hl || &hdr[0] != &objs[i][0] {
			return nil, fmt.Errorf("write segment: shard header is %d bytes, expected %d", len(hdr), hl)
		}
	}

	members := g.view().all
	pl := newPlacer(members, info.ID, n)
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

	stored := info.Stored()
	if stored == n || (stored >= k+1 && ctx.Err() == nil) {
		if stored < n {
			g.log.Warn("segment stored degraded; repair owed", "segment", info.ID, "stored", stored, "n", n, "errors", errors.Join(errs...))
		}
		return info, nil
	}
	// Too few: take back what was stored so nothing is orphaned.
	cleanCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	if err := g.DeleteSegment(cleanCtx, info); err != nil {
		g.log.Warn("could not remove the shards of a failed segment write", "segment", info.ID, "err", err)
	}
	cause := errors.Join(errs...)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("write segment %s: %w (stored %d of %d shards before it stopped)", info.ID, ctx.Err(), stored, n)
	}
	return nil, fmt.Errorf("write segment %s: %w: only %d of %d nodes tried took a shard, need at least %d of %d; "+
		"start the stopped nodes or free space on full ones, then retry (the data is kept until then): %w",
		info.ID, ErrTooFewNodes, stored, len(tried), k+1, n, cause)
}

// getBuf returns a buffer of exactly n bytes from the shard buffer pool.
func (g *Grid) getBuf(n int) []byte {
	if p, ok := g.bufs.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

func (g *Grid) putBuf(b []byte) {
	b = b[:0]
	g.bufs.Put(&b)
}
