package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// piece is the part of a segment range that lies in one data shard.
type piece struct {
	shard int   // data shard index
	off   int64 // payload offset in that shard
	n     int64 // length
	dst   int64 // offset in the caller's range
	// span is the chunk-aligned payload span [lo, hi) covering the piece,
	// the unit a fallback read fetches and verifies.
	lo, hi int64
}

// pieces splits segment bytes [off, off+n) over the systematic data shards:
// segment byte x lies in data shard x/ShardSize at payload offset
// x%ShardSize.
func pieces(seg *SegmentInfo, off, n int64) []piece {
	var ps []piece
	ss, cs := seg.ShardSize, int64(seg.ChunkSize)
	for done := int64(0); done < n; {
		x := off + done
		p := piece{shard: int(x / ss), off: x % ss, dst: done}
		p.n = min(n-done, ss-p.off)
		p.lo = p.off / cs * cs
		p.hi = min((p.off+p.n+cs-1)/cs*cs, ss)
		ps = append(ps, p)
		done += p.n
	}
	return ps
}

func checkRange(seg *SegmentInfo, off, n int64) error {
	if seg == nil {
		return errors.New("no segment")
	}
	if err := seg.Check(); err != nil {
		return fmt.Errorf("inconsistent info: %w", err)
	}
	if off < 0 || n <= 0 || off+n > seg.Size {
		return fmt.Errorf("segment %s: range [%d,+%d) outside its %d bytes", seg.ID, off, n, seg.Size)
	}
	return nil
}

// FetchBlock reads the sealed block ref points at and opens it. The
// healthy path is one ranged Get of the data shard holding the block (two
// when it straddles a shard boundary) and no Reed-Solomon work. When a Get
// fails, the block does not open, or the Get is slower than HedgeAfter (the
// fallback then runs in parallel and the first to finish wins), the same
// range is read from any k shards that pass their checksums and
// reconstructed. Both results are newly allocated and owned by the caller.
// Fewer than k usable shards -> *TooFewShardsError.
func (g *Grid) FetchBlock(ctx context.Context, ref BlockRef) (plain, sealed []byte, err error) {
	if err := checkRange(ref.Seg, ref.Offset, ref.Length); err != nil {
		return nil, nil, fmt.Errorf("fetch block %s: %w", ref.ID, err)
	}
	if ref.Length > MaxSealedSize {
		return nil, nil, fmt.Errorf("fetch block %s: length %d over the %d limit", ref.ID, ref.Length, MaxSealedSize)
	}
	plain, sealed, _, err = g.FetchBlockInto(ctx, ref, nil, nil)
	return plain, sealed, err
}

// FetchBlockInto is FetchBlock reading into buffers the caller reuses: the
// sealed bytes go into sealedDst's capacity and the plaintext into
// plainDst's, each when it fits (else the result is newly allocated). A
// fresh 4 MiB slice per block costs its zeroing and page faults, about a
// quarter of a cold read's CPU. Only the read of the data shards uses the
// buffers; free reports that it has ended (it won, failed or never ran),
// so a buffer the results do not share is the caller's again. With free
// false the reconstruct read answered while that read may still write
// into them: the caller must drop them.
func (g *Grid) FetchBlockInto(ctx context.Context, ref BlockRef, plainDst, sealedDst []byte) (plain, sealed []byte, free bool, err error) {
	if err := checkRange(ref.Seg, ref.Offset, ref.Length); err != nil {
		return nil, nil, true, fmt.Errorf("fetch block %s: %w", ref.ID, err)
	}
	if ref.Length > MaxSealedSize {
		return nil, nil, true, fmt.Errorf("fetch block %s: length %d over the %d limit", ref.ID, ref.Length, MaxSealedSize)
	}
	open := func(b []byte) ([]byte, error) { return g.sealer.Open(nil, ref.ID, b) }
	hb := healthyBufs{dst: sealedDst, open: func(b []byte) ([]byte, error) { return g.sealer.Open(plainDst[:0], ref.ID, b) }}
	sealed, plain, free, err = g.readBufs(ctx, ref.Seg, ref.Offset, ref.Length, false, open, hb)
	return plain, sealed, free, err
}

// OpenBlock opens a sealed block read earlier (from the disk cache) and
// appends its plaintext to dst (see Sealer.Open).
func (g *Grid) OpenBlock(dst []byte, ref BlockRef, sealed []byte) ([]byte, error) {
	return g.sealer.Open(dst, ref.ID, sealed)
}

// FetchFrameIndex reads the head of ref's sealed block (its first
// min(Length, FrameHeadMax) bytes: header and frame index) and parses it.
// The head carries no tag of its own, so it is read checksum-verified from
// the shards (with the same fallback as FetchBlock); a frame whose range it
// gets wrong still fails to open.
func (g *Grid) FetchFrameIndex(ctx context.Context, ref BlockRef) (*Frames, error) {
	if err := checkRange(ref.Seg, ref.Offset, ref.Length); err != nil {
		return nil, fmt.Errorf("fetch frame index of block %s: %w", ref.ID, err)
	}
	n := min(ref.Length, FrameHeadMax)
	// check makes a head that does not parse count as bad bytes (the other
	// path may still succeed); it runs on both paths' goroutines, so the
	// winner's bytes are parsed again here.
	check := func(b []byte) ([]byte, error) {
		_, err := ParseFrames(b, ref.Length)
		return nil, err
	}
	head, _, err := g.read(ctx, ref.Seg, ref.Offset, n, true, check)
	if err == nil {
		var f *Frames
		if f, err = ParseFrames(head, ref.Length); err == nil {
			return f, nil
		}
	}
	return nil, fmt.Errorf("fetch frame index of block %s: %w", ref.ID, err)
}

// FetchFrames reads frames [first, last] of ref's block, f being its
// frame index (FetchFrameIndex, or ParseFrames of the head of a cached
// copy), and opens them: one ranged Get of the data shard holding them
// (two when they straddle), the same fallback and hedging as FetchBlock.
// plain is newly allocated and owned by the caller.
func (g *Grid) FetchFrames(ctx context.Context, ref BlockRef, f *Frames, first, last int) (plain []byte, err error) {
	if err := checkRange(ref.Seg, ref.Offset, ref.Length); err != nil {
		return nil, fmt.Errorf("fetch block %s: %w", ref.ID, err)
	}
	if first < 0 || last < first || last >= f.Count() {
		return nil, fmt.Errorf("fetch block %s: frames [%d,%d] of %d", ref.ID, first, last, f.Count())
	}
	off, n := f.Sealed(first, last)
	if off+n > ref.Length {
		return nil, fmt.Errorf("fetch block %s: %w: frames end at %d, past the block's %d bytes", ref.ID, ErrCorrupt, off+n, ref.Length)
	}
	open := func(b []byte) ([]byte, error) { return g.sealer.OpenFrames(nil, ref.ID, f, first, last, b) }
	_, plain, err = g.read(ctx, ref.Seg, ref.Offset+off, n, false, open)
	return plain, err
}

// OpenFrames opens frames [first, last] of ref's block from sealed bytes
// read earlier (the disk cache): sealed is exactly their range.
func (g *Grid) OpenFrames(ref BlockRef, f *Frames, first, last int, sealed []byte) ([]byte, error) {
	return g.sealer.OpenFrames(nil, ref.ID, f, first, last, sealed)
}

// ReadSegment reads segment bytes [off, off+len(p)) into p, verified
// against the shard checksums, with the same fallback and hedging as
// FetchBlock. p is owned by the caller and written only before return.
func (g *Grid) ReadSegment(ctx context.Context, seg *SegmentInfo, off int64, p []byte) error {
	if err := checkRange(seg, off, int64(len(p))); err != nil {
		return fmt.Errorf("read segment: %w", err)
	}
	b, _, err := g.read(ctx, seg, off, int64(len(p)), true, nil)
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

type readResult struct {
	data, plain []byte
	err         error
}

// read runs the healthy read and, when it fails or is slow, the
// reconstruct read; see FetchBlock. verify makes the healthy path check
// shard checksums (ReadSegment, which has no AEAD to catch bad bytes).
// open, when set, must accept the bytes for a path to succeed.
func (g *Grid) read(ctx context.Context, seg *SegmentInfo, off, n int64, verify bool,
	open func([]byte) ([]byte, error)) (data, plain []byte, err error) {
	data, plain, _, err = g.readBufs(ctx, seg, off, n, verify, open, healthyBufs{open: open})
	return data, plain, err
}

// healthyBufs are what the healthy read alone may use (FetchBlockInto):
// dst's capacity for the bytes it reads, and open in place of the read's
// (to open into the caller's buffer). The reconstruct read, which may
// still run after a read returns, never gets the caller's buffers.
type healthyBufs struct {
	dst  []byte
	open func([]byte) ([]byte, error)
}

// readBufs is read with the healthy read's buffers; free reports that the
// healthy read has ended or never started (see FetchBlockInto).
func (g *Grid) readBufs(ctx context.Context, seg *SegmentInfo, off, n int64, verify bool,
	open func([]byte) ([]byte, error), hb healthyBufs) (data, plain []byte, free bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops whichever path lost
	ps := pieces(seg, off, n)
	byName := g.view().byName
	suspect := make([]bool, len(seg.Nodes))
	healthyOK := true
	for _, p := range ps {
		suspect[p.shard] = true
		if mb := byName[seg.Nodes[p.shard]]; mb == nil || mb.isDown() {
			healthyOK = false // missing, or known down: straight to the fallback
		}
	}
	var healthy, fallback chan readResult
	fallbackStarted := false
	startFallback := func() {
		fallbackStarted = true
		g.stats.fallback.Add(1)
		fallback = make(chan readResult, 1)
		go func() {
			d, err := g.reconstruct(ctx, seg, ps, n, suspect)
			var pl []byte
			if err == nil && open != nil {
				if pl, err = open(d); err != nil {
					err = fmt.Errorf("segment %s: block fails to open after reconstruction: %w", seg.ID, err)
				}
			}
			fallback <- readResult{d, pl, err}
		}()
	}
	if healthyOK {
		healthy = make(chan readResult, 1)
		go func() {
			d, err := g.readHealthy(ctx, seg, ps, n, verify, hb.dst)
			var pl []byte
			if err == nil && hb.open != nil {
				pl, err = hb.open(d)
			}
			healthy <- readResult{d, pl, err}
		}()
	} else {
		startFallback()
	}
	hedge := time.NewTimer(g.hedgeDelay(n))
	defer hedge.Stop()
	var healthyErr error
	for healthy != nil || fallback != nil {
		select {
		case r := <-healthy:
			healthy = nil
			if r.err == nil {
				g.stats.healthy.Add(1)
				return r.data, r.plain, true, nil
			}
			healthyErr = r.err
			g.log.Debug("healthy read failed; reconstructing", "segment", seg.ID, "err", r.err)
			if !fallbackStarted {
				startFallback()
			}
		case <-hedge.C:
			if !fallbackStarted {
				g.stats.hedged.Add(1)
				startFallback()
			}
		case r := <-fallback:
			fallback = nil
			if r.err == nil {
				return r.data, r.plain, healthy == nil, nil // free if the healthy read answered (failed)
			}
			err = r.err
			if healthy != nil {
				continue // the slow healthy read may still answer
			}
			if healthyErr != nil && !errors.Is(err, ErrTooFewShards) {
				err = fmt.Errorf("%w (healthy read: %v)", err, healthyErr)
			}
			return nil, nil, true, err // both answered
		case <-ctx.Done():
			return nil, nil, healthy == nil, ctx.Err()
		}
	}
	return nil, nil, true, err // both answered
}

// readHealthy fetches the range from the data shards that hold it: one
// ranged Get each (verify: plus the header, and the chunk-aligned span is
// checked against it).
func (g *Grid) readHealthy(ctx context.Context, seg *SegmentInfo, ps []piece, n int64, verify bool, dst []byte) ([]byte, error) {
	buf := dst[:0]
	if int64(cap(buf)) >= n {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	hl := shard.HeaderLen(seg.ShardSize, seg.ChunkSize)
	// Every node is looked up before any Get starts: a Get left running
	// after an early return would write into dst, which the caller may
	// have handed to another read by then.
	byName := g.view().byName // may be newer than the caller's: a node may have gone since
	mbs := make([]*member, len(ps))
	for i, p := range ps {
		if mbs[i] = byName[seg.Nodes[p.shard]]; mbs[i] == nil {
			return nil, fmt.Errorf("shard %d: node %q: %w", p.shard, seg.Nodes[p.shard], ErrNodeRemoved)
		}
	}
	eg, ctx := errgroup.WithContext(ctx) // one piece failing ends the other
	for i, p := range ps {
		mb := mbs[i]
		eg.Go(func() error {
			if verify {
				spans, err := g.fetchVerified(ctx, seg, p.shard, mb, []piece{p})
				if err != nil {
					return err
				}
				copy(buf[p.dst:p.dst+p.n], spans[0][p.off-p.lo:])
				return nil
			}
			t0 := time.Now()
			err := g.call(ctx, mb, func(ctx context.Context, s Store) error {
				return s.Get(ctx, ShardName(seg.ID, p.shard), hl+p.off, buf[p.dst:p.dst+p.n])
			})
			if err == nil {
				g.observe(p.n, time.Since(t0))
			}
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return buf, nil
}

// fetchVerified reads shard idx's header and the chunk spans of ps, checks
// the header belongs to seg and each span against its checksums, and
// returns the spans' payload bytes (newly allocated), one per piece.
func (g *Grid) fetchVerified(ctx context.Context, seg *SegmentInfo, idx int, mb *member, ps []piece) ([][]byte, error) {
	if mb == nil {
		return nil, fmt.Errorf("shard %d: node %q: %w", idx, seg.Nodes[idx], ErrNodeRemoved)
	}
	name := ShardName(seg.ID, idx)
	hl := shard.HeaderLen(seg.ShardSize, seg.ChunkSize)
	var hdr []byte
	spans := make([][]byte, len(ps))
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		hdr = make([]byte, hl)
		return g.call(ctx, mb, func(ctx context.Context, s Store) error { return s.Get(ctx, name, 0, hdr) })
	})
	for i, p := range ps {
		spans[i] = make([]byte, p.hi-p.lo)
		eg.Go(func() error {
			return g.call(ctx, mb, func(ctx context.Context, s Store) error { return s.Get(ctx, name, hl+p.lo, spans[i]) })
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, fmt.Errorf("shard %d: %w", idx, err)
	}
	h, err := shard.Parse(hdr)
	if err != nil {
		return nil, fmt.Errorf("shard %d on node %s: %w: %w", idx, mb.Name, ErrCorrupt, err)
	}
	if h.Kind != shard.KindSegment || h.Segment != seg.ID || int(h.Index) != idx || int(h.K) != seg.K ||
		int(h.M) != seg.M || h.PayloadLen != seg.ShardSize || int(h.ChunkSize) != seg.ChunkSize {
		return nil, fmt.Errorf("shard %d on node %s: %w: header does not match the segment", idx, mb.Name, ErrCorrupt)
	}
	for i, p := range ps {
		if err := h.VerifyRange(p.lo, spans[i]); err != nil {
			return nil, fmt.Errorf("shard %d on node %s: %w: %w", idx, mb.Name, ErrCorrupt, err)
		}
	}
	return spans, nil
}

type shardSpans struct {
	idx   int
	spans [][]byte
	err   error
}

// reconstruct reads the pieces' chunk spans from any k shards that verify
// (data shards first, suspects last, one more shard every HedgeAfter while
// some are slow, a replacement for each that fails) and rebuilds the range.
func (g *Grid) reconstruct(ctx context.Context, seg *SegmentInfo, ps []piece, n int64, suspect []bool) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops shard reads no longer needed
	k := seg.K
	byName := g.view().byName
	// Candidates: healthy-looking shards first, then the ones the healthy
	// read used, then nodes recently seen down.
	var cands []int
	var causes []error
	for pass := 0; pass < 3; pass++ {
		for i, name := range seg.Nodes {
			mb := byName[name]
			switch {
			case name == "":
				if pass == 0 {
					causes = append(causes, fmt.Errorf("shard %d: not stored (repair owed)", i))
				}
			case mb == nil:
				if pass == 0 {
					causes = append(causes, fmt.Errorf("shard %d: node %q is not in the grid", i, name))
				}
			case mb.isDown():
				if pass == 2 {
					cands = append(cands, i)
				}
			case pass < 2 && suspect[i] == (pass == 1):
				cands = append(cands, i)
			}
		}
	}
	got := make([][][]byte, len(seg.Nodes)) // got[i][piece]: verified span of shard i
	ch := make(chan shardSpans, len(cands))
	next, inflight, usable := 0, 0, 0
	launch := func() {
		idx := cands[next]
		next++
		inflight++
		go func() {
			spans, err := g.fetchVerified(ctx, seg, idx, byName[seg.Nodes[idx]], ps)
			ch <- shardSpans{idx, spans, err}
		}()
	}
	for next < len(cands) && next < k {
		launch()
	}
	tick := time.NewTicker(g.hedge)
	defer tick.Stop()
	for usable < k && inflight > 0 {
		select {
		case r := <-ch:
			inflight--
			if r.err != nil {
				g.stats.skipped.Add(1)
				causes = append(causes, r.err)
				if next < len(cands) {
					launch()
				}
				continue
			}
			got[r.idx] = r.spans
			usable++
		case <-tick.C:
			if next < len(cands) {
				launch() // someone is slow: ask one more shard
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if usable < k {
		usable += g.locate(ctx, seg, ps, got, k-usable)
	}
	if usable < k {
		return nil, &TooFewShardsError{Segment: seg.ID, Usable: usable, Need: k, Causes: causes}
	}
	out := make([]byte, n)
	for pi, p := range ps {
		var src []byte
		if got[p.shard] != nil {
			src = got[p.shard][pi]
		} else {
			enc, err := g.encoder(seg.K, seg.M)
			if err != nil || enc == nil {
				return nil, fmt.Errorf("segment %s: cannot reconstruct (k=%d m=%d): %v", seg.ID, seg.K, seg.M, err)
			}
			shards := make([][]byte, len(seg.Nodes))
			required := make([]bool, len(seg.Nodes))
			required[p.shard] = true
			for i := range shards {
				if got[i] != nil {
					shards[i] = got[i][pi]
				}
			}
			g.stats.reconstructs.Add(1)
			if err := enc.ReconstructSome(shards, required); err != nil {
				return nil, fmt.Errorf("segment %s: reconstruct shard %d: %w", seg.ID, p.shard, err)
			}
			src = shards[p.shard]
		}
		copy(out[p.dst:p.dst+p.n], src[p.off-p.lo:])
	}
	return out, nil
}

// locate looks for up to need shards of seg that are not in got on the
// nodes the segment does not name for them: a node list recorded before
// a repair moved shards (a metadata record's link to its predecessor,
// a root record written before the move) still reads. It fills got and
// returns how many it found. Only reads that would fail otherwise pay
// for it.
func (g *Grid) locate(ctx context.Context, seg *SegmentInfo, ps []piece, got [][][]byte, need int) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	members := g.view().all
	type found struct {
		idx   int
		spans [][]byte
	}
	ch := make(chan found, len(got))
	var wg sync.WaitGroup
	for i := range got {
		if got[i] != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, m := range members {
				if m.Name == seg.Nodes[i] || m.isDown() {
					continue
				}
				if spans, err := g.fetchVerified(ctx, seg, i, m, ps); err == nil {
					ch <- found{i, spans}
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(ch) }()
	n := 0
	for f := range ch {
		if n < need {
			got[f.idx] = f.spans
			n++
			if n == need {
				cancel()
			}
		}
	}
	return n
}
