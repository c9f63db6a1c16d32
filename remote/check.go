package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// Verifier is implemented by stores that can check an object's checksums
// where it lives (a dir store reads its own disk; a node client asks its
// server), so verifying a shard ships a verdict, not the shard. Verify
// returns nil for an intact object, an error wrapping ErrCorrupt for one
// that fails a checksum, ErrNotFound for a missing one. CheckSegment falls
// back to reading the whole object for stores without it.
type Verifier interface {
	Verify(ctx context.Context, name string) error
}

// ShardState is the verdict on one shard of a segment.
type ShardState uint8

const (
	ShardOK          ShardState = iota // present (check) or present and intact (verify)
	ShardMissing                       // the segment names no node for it, or the node says it is gone
	ShardCorrupt                       // it failed a checksum or has the wrong size or header
	ShardUnreachable                   // its node did not answer, or is not in the grid
)

func (s ShardState) String() string {
	switch s {
	case ShardOK:
		return "ok"
	case ShardMissing:
		return "missing"
	case ShardCorrupt:
		return "corrupt"
	case ShardUnreachable:
		return "unreachable"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ShardCheck is one shard's verdict.
type ShardCheck struct {
	Index int
	Node  string // "" when the segment names none
	State ShardState
	Err   error // why, when not ShardOK
}

// SegmentHealth is CheckSegment's answer.
type SegmentHealth struct {
	Seg    *SegmentInfo
	Shards []ShardCheck // one per shard, in index order
	OK     int          // shards in ShardOK
}

// Healthy: every shard is present and intact.
func (h *SegmentHealth) Healthy() bool { return h.OK == len(h.Shards) }

// Recoverable: at least k shards are present and intact.
func (h *SegmentHealth) Recoverable() bool { return h.OK >= h.Seg.K }

// CheckOptions configure CheckSegment and RepairSegment.
type CheckOptions struct {
	// Verify checks every byte of every shard against its checksums (on
	// the node when its store is a Verifier); otherwise a shard counts
	// when its node has an object of the right size.
	Verify bool
	// Down lists nodes to count as unreachable without asking (a caller
	// that checks many segments asks Health once and passes the nodes
	// that did not answer, so a dead node costs no timeout per shard).
	Down map[string]bool
}

// CheckSegment asks each shard's node about it, in parallel. It never
// fails: every problem is a shard's verdict.
func (g *Grid) CheckSegment(ctx context.Context, seg *SegmentInfo, o CheckOptions) *SegmentHealth {
	h := &SegmentHealth{Seg: seg, Shards: make([]ShardCheck, len(seg.Nodes))}
	byName := g.view().byName
	want := shard.HeaderLen(seg.ShardSize, seg.ChunkSize) + seg.ShardSize
	var wg sync.WaitGroup
	for i, name := range seg.Nodes {
		sc := &h.Shards[i]
		sc.Index, sc.Node = i, name
		mb := byName[name]
		switch {
		case name == "":
			sc.State, sc.Err = ShardMissing, errors.New("not stored (repair owed)")
			continue
		case mb == nil:
			sc.State, sc.Err = ShardUnreachable, fmt.Errorf("node %q is not in the grid", name)
			continue
		case o.Down[name]:
			sc.State, sc.Err = ShardUnreachable, fmt.Errorf("node %s: %w", name, ErrUnavailable)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.checkShard(ctx, seg, i, mb, want, o.Verify)
			sc.State, sc.Err = shardVerdict(err), err
		}()
	}
	wg.Wait()
	for _, sc := range h.Shards {
		if sc.State == ShardOK {
			h.OK++
		}
	}
	return h
}

func shardVerdict(err error) ShardState {
	switch {
	case err == nil:
		return ShardOK
	case errors.Is(err, ErrNotFound):
		return ShardMissing
	case errors.Is(err, ErrCorrupt) || errors.Is(err, shard.ErrCorrupt) || errors.Is(err, shard.ErrFormat):
		return ShardCorrupt
	}
	return ShardUnreachable
}

// checkShard checks shard i of seg on mb: its size (check), or every
// checksum and that its header belongs to seg (verify).
func (g *Grid) checkShard(ctx context.Context, seg *SegmentInfo, i int, mb *member, want int64, verify bool) error {
	name := ShardName(seg.ID, i)
	return g.call(ctx, mb, func(ctx context.Context, s Store) error {
		if !verify {
			st, err := s.Stat(ctx, name)
			if err != nil {
				return err
			}
			if st.Size != want {
				return fmt.Errorf("%w: shard %d is %d bytes, the segment's shards are %d", ErrCorrupt, i, st.Size, want)
			}
			return nil
		}
		if v, ok := s.(Verifier); ok {
			if err := v.Verify(ctx, name); err != nil {
				return err
			}
			// The node vouches for the checksums; the header must also
			// be this segment's shard i (a misplaced object is corrupt).
			hdr := make([]byte, shard.HeaderLen(seg.ShardSize, seg.ChunkSize))
			if err := s.Get(ctx, name, 0, hdr); err != nil {
				if errors.Is(err, ErrRange) {
					return fmt.Errorf("%w: shard %d is shorter than its header", ErrCorrupt, i)
				}
				return err
			}
			h, err := shard.Parse(hdr)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			return matchHeader(h, seg, i)
		}
		obj := make([]byte, want)
		if err := s.Get(ctx, name, 0, obj); err != nil {
			if errors.Is(err, ErrRange) {
				return fmt.Errorf("%w: shard %d is shorter than the segment's shards", ErrCorrupt, i)
			}
			return err
		}
		h, _, err := shard.Verify(obj)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return matchHeader(h, seg, i)
	})
}

func matchHeader(h *shard.Header, seg *SegmentInfo, i int) error {
	if h.Kind != shard.KindSegment || h.Segment != seg.ID || int(h.Index) != i || int(h.K) != seg.K ||
		int(h.M) != seg.M || h.PayloadLen != seg.ShardSize || int(h.ChunkSize) != seg.ChunkSize {
		return fmt.Errorf("%w: shard %d: header does not match the segment", ErrCorrupt, i)
	}
	return nil
}

// verifyPiece is how much of an object VerifyObject reads at a time (a
// chunk, when chunks are larger).
const verifyPiece = 4 << 20

// VerifyObject reads the object name from s and checks every checksum:
// what a store's Verify does when it has nothing faster. It reads the
// header, then the payload a piece at a time, so what it holds does not
// grow with what a store says the object's size is.
func VerifyObject(ctx context.Context, s Store, name string) error {
	st, err := s.Stat(ctx, name)
	if err != nil {
		return err
	}
	corrupt := func(err error) error { return fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err) }
	if st.Size > shard.MaxPayloadLen+shard.HeaderLen(shard.MaxPayloadLen, shard.MinChunkSize) {
		return fmt.Errorf("%w: %s is %d bytes, larger than any shard", ErrCorrupt, name, st.Size)
	}
	if st.Size < shard.FixedLen {
		return fmt.Errorf("%w: %s is %d bytes, shorter than a shard header", ErrCorrupt, name, st.Size)
	}
	fixed := make([]byte, shard.FixedLen)
	if err := s.Get(ctx, name, 0, fixed); err != nil {
		return err
	}
	h, hl, err := shard.ParseFixed(fixed)
	if err != nil {
		return corrupt(err)
	}
	if hl+h.PayloadLen != st.Size {
		return fmt.Errorf("%w: %s is %d bytes, its header says %d", ErrCorrupt, name, st.Size, hl+h.PayloadLen)
	}
	head := make([]byte, hl)
	if err := s.Get(ctx, name, 0, head); err != nil {
		return err
	}
	if h, err = shard.Parse(head); err != nil {
		return corrupt(err)
	}
	cs := int64(h.ChunkSize)
	buf := make([]byte, min(max(verifyPiece/cs, 1)*cs, h.PayloadLen))
	for off := int64(0); off < h.PayloadLen; off += int64(len(buf)) {
		p := buf[:min(int64(len(buf)), h.PayloadLen-off)]
		if err := s.Get(ctx, name, hl+off, p); err != nil {
			return err
		}
		if err := h.VerifyRange(off, p); err != nil {
			return corrupt(err)
		}
	}
	return nil
}

// Opener is implemented by stores that can hold one version of an object
// open and read it in parts: a reader of a large object (the node server,
// which streams it in pieces) then never mixes the bytes of two versions
// when a Put replaces the name meanwhile.
type Opener interface {
	Open(ctx context.Context, name string) (Object, error)
}

// Object is one version of a stored object, open for reading.
type Object interface {
	// Info returns the object's name, size and modification time.
	Info() ObjectInfo
	// ReadAt reads exactly len(p) bytes at off into p, verified as Get
	// verifies them.
	ReadAt(ctx context.Context, p []byte, off int64) error
	Close() error
}
