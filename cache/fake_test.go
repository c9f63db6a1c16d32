package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// errFake is what the fake returns when told to fail.
var errFake = errors.New("fake grid failure")

// fakeGrid is a Fetcher over an in-memory set of blocks. "Sealing" is XOR
// with a key plus a SHA-256 trailer over id and plaintext, so OpenBlock
// detects any damage. It counts calls and can block, fail and delay.
type fakeGrid struct {
	key byte

	mu     sync.Mutex // mu guards plain
	plain  map[remote.BlockID][]byte
	gate   chan struct{} // when non-nil, FetchBlock waits until it is closed (or ctx ends)
	delay  time.Duration
	failID *remote.BlockID // when non-nil, only this block fails (if failN > 0)

	fetches  atomic.Int64 // FetchBlock calls
	opens    atomic.Int64 // OpenBlock calls
	failN    atomic.Int64 // fail this many more fetches
	ctxEnded atomic.Int64 // fetches that returned because their ctx ended

	// FetchBlockInto: the calls whose sealed bytes and plaintext went into
	// the caller's buffers; lose makes it answer as a reconstruct read
	// that won while the healthy read still runs (not free), which then
	// scribbles over the buffers it was given.
	sealedInto, plainInto atomic.Int64
	lose                  atomic.Bool
}

func newFakeGrid() *fakeGrid {
	return &fakeGrid{key: 0x5a, plain: make(map[remote.BlockID][]byte)}
}

func (g *fakeGrid) seal(id remote.BlockID, plain []byte) []byte {
	out := make([]byte, len(plain), len(plain)+sha256.Size)
	g.xor(out, plain)
	sum := trailer(id, plain)
	return append(out, sum[:]...)
}

// xor sets dst = src XOR the key (len(dst) == len(src)).
func (g *fakeGrid) xor(dst, src []byte) {
	var pad [512]byte
	for i := range pad {
		pad[i] = g.key
	}
	for len(src) > 0 {
		n := subtle.XORBytes(dst, src, pad[:])
		dst, src = dst[n:], src[n:]
	}
}

func trailer(id remote.BlockID, plain []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(id[:])
	h.Write(plain)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// add registers a block and returns its ref.
func (g *fakeGrid) add(plain []byte) remote.BlockRef {
	id := remote.BlockID(sha256.Sum256(plain))
	g.mu.Lock()
	g.plain[id] = plain
	g.mu.Unlock()
	return remote.BlockRef{ID: id, Seg: &remote.SegmentInfo{K: 4, M: 2}, Length: int64(len(plain) + sha256.Size)}
}

// addRandom registers n random blocks of sizes in [min, max].
func (g *fakeGrid) addRandom(rng *rand.Rand, n, min, max int) []remote.BlockRef {
	refs := make([]remote.BlockRef, n)
	for i := range refs {
		p := make([]byte, min+rng.IntN(max-min+1))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		refs[i] = g.add(p)
	}
	return refs
}

func (g *fakeGrid) want(id remote.BlockID) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.plain[id]
}

func (g *fakeGrid) FetchBlock(ctx context.Context, ref remote.BlockRef) ([]byte, []byte, error) {
	g.fetches.Add(1)
	g.mu.Lock()
	gate, delay, failID := g.gate, g.delay, g.failID
	p, ok := g.plain[ref.ID]
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			g.ctxEnded.Add(1)
			return nil, nil, ctx.Err()
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			g.ctxEnded.Add(1)
			return nil, nil, ctx.Err()
		}
	}
	if failID == nil || *failID == ref.ID {
		if g.failN.Add(-1) >= 0 {
			return nil, nil, fmt.Errorf("block %s: %w", ref.ID, errFake)
		}
		g.failN.Add(1)
	}
	if !ok {
		return nil, nil, fmt.Errorf("block %s: %w", ref.ID, remote.ErrNotFound)
	}
	return bytes.Clone(p), g.seal(ref.ID, p), nil
}

// FetchBlockInto is FetchBlock into the caller's buffers when they fit
// (IntoFetcher).
func (g *fakeGrid) FetchBlockInto(ctx context.Context, ref remote.BlockRef, plainDst, sealedDst []byte) (plain, sealed []byte, free bool, err error) {
	plain, sealed, err = g.FetchBlock(ctx, ref)
	if g.lose.Load() {
		go func() { // the losing read, still writing
			time.Sleep(time.Millisecond)
			for _, b := range [][]byte{plainDst[:cap(plainDst)], sealedDst[:cap(sealedDst)]} {
				for i := range b {
					b[i] = 0xff
				}
			}
		}()
		return plain, sealed, false, err
	}
	if err != nil {
		return nil, nil, true, err
	}
	if cap(sealedDst) >= len(sealed) {
		g.sealedInto.Add(1)
		sealed = append(sealedDst[:0], sealed...)
	}
	if cap(plainDst) >= len(plain) {
		g.plainInto.Add(1)
		plain = append(plainDst[:0], plain...)
	}
	return plain, sealed, true, nil
}

func (g *fakeGrid) OpenBlock(dst []byte, ref remote.BlockRef, sealed []byte) ([]byte, error) {
	g.opens.Add(1)
	if len(sealed) < sha256.Size {
		return nil, fmt.Errorf("block %s: short: %w", ref.ID, remote.ErrCorrupt)
	}
	n := len(sealed) - sha256.Size
	plain := append(dst, make([]byte, n)...)[len(dst):]
	g.xor(plain, sealed[:n])
	if sum := trailer(ref.ID, plain); !bytes.Equal(sum[:], sealed[n:]) {
		return nil, fmt.Errorf("block %s: authentication failed: %w", ref.ID, remote.ErrCorrupt)
	}
	return plain, nil
}

// newTestCache opens a cache over g, closed at cleanup.
func newTestCache(t testing.TB, o Options) *Cache {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// waiters returns how many readers wait on id's flight.
func (c *Cache) waiters(id remote.BlockID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl, ok := c.flights[blockKey(id)]; ok {
		return fl.waiters
	}
	return 0
}

// idle reports whether no flight runs and no read-ahead is queued.
func (c *Cache) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.flights) == 0 && len(c.queued) == 0 && (c.prefetchQ == nil || len(c.prefetchQ) == 0)
}

func mustRead(t testing.TB, c *Cache, g *fakeGrid, ref remote.BlockRef) {
	t.Helper()
	b, err := c.ReadBlock(context.Background(), ref)
	if err != nil {
		t.Fatalf("ReadBlock %s: %v", ref.ID, err)
	}
	if !bytes.Equal(b, g.want(ref.ID)) {
		t.Fatalf("ReadBlock %s: wrong bytes (%d bytes, want %d)", ref.ID, len(b), len(g.want(ref.ID)))
	}
}

// errNoFrames: the fake's sealing has no frames; ReadAt is tested against
// a real grid (frames_test.go).
var errNoFrames = errors.New("fake grid: blocks have no frames")

func (g *fakeGrid) FetchFrameIndex(ctx context.Context, ref remote.BlockRef) (*remote.Frames, error) {
	return nil, errNoFrames
}

func (g *fakeGrid) FetchFrames(ctx context.Context, ref remote.BlockRef, f *remote.Frames, first, last int) ([]byte, error) {
	return nil, errNoFrames
}

func (g *fakeGrid) OpenFrames(ref remote.BlockRef, f *remote.Frames, first, last int, sealed []byte) ([]byte, error) {
	return nil, errNoFrames
}
