package cache

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/meshdrive/meshdrive/remote"
)

// maxIndexes bounds the frame indexes kept in memory (a few hundred bytes
// each: 4 MiB blocks have 64 frames).
const maxIndexes = 4096

// indexes keeps the frame indexes of recently read blocks, so that a
// random read of a block whose index is known costs one frame read.
type indexes struct {
	mu  sync.Mutex // mu guards lru; taken alone, never with another lock
	lru *simplelru.LRU[remote.BlockID, *remote.Frames]
}

func newIndexes() *indexes {
	lru, err := simplelru.NewLRU[remote.BlockID, *remote.Frames](maxIndexes, nil)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return &indexes{lru: lru}
}

func (x *indexes) get(id remote.BlockID) (*remote.Frames, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lru.Get(id)
}

func (x *indexes) put(id remote.BlockID, f *remote.Frames) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.lru.Add(id, f)
}

// learn keeps the frame index of a whole sealed block just read and
// opened (so it is authentic).
func (x *indexes) learn(ref remote.BlockRef, sealed []byte) {
	if f, err := remote.ParseFrames(sealed, int64(len(sealed))); err == nil && f.Framed() {
		x.put(ref.ID, f)
	}
}

func (x *indexes) clear() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.lru.Purge()
}

// ReadAt copies plaintext bytes [off, off+len(p)) of ref's block into p
// (owned by the caller, written only before return) and returns how many
// there were: fewer than len(p) only at the block's end. It costs what it
// reads: the whole block when memory has it; else only the frames holding
// the range, each from memory, else from the disk tier (a ranged read of
// the cached sealed block), else from the grid (one ranged read of the
// frame). Frames read this way are kept in memory, not on disk; a block of
// the old format (one AEAD over the whole block) is read whole
// (ReadBlock). Many readers missing one frame cause one grid read (a frame
// on disk is read by each reader that wants it, in its own goroutine); ctx
// and errors behave as in ReadBlock.
func (c *Cache) ReadAt(ctx context.Context, ref remote.BlockRef, p []byte, off int64) (int, error) {
	if c.isClosed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("cache: read block %s at negative offset %d", ref.ID, off)
	}
	if b, ok := c.memGet(blockKey(ref.ID)); ok {
		c.hits.Add(1)
		n := copyAt(p, b.b, off)
		c.mem.release(b)
		return n, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f, err := c.frameIndex(ctx, ref)
	if err != nil {
		return 0, err
	}
	if !f.Framed() {
		b, h, err := c.AcquireBlock(ctx, ref)
		if err != nil {
			return 0, err
		}
		defer h.Release()
		return copyAt(p, b, off), nil
	}
	if off >= f.PlainLen() || len(p) == 0 {
		return 0, nil
	}
	n := min(int64(len(p)), f.PlainLen()-off)
	first, last := f.Span(off, n)
	src := fromMem
	for i := first; i <= last; i++ {
		b, s, err := c.frame(ctx, ref, f, i)
		if err != nil {
			return 0, err
		}
		src = max(src, s)
		po, _ := f.Plain(i)
		lo := max(off, po)
		copy(p[lo-off:n], b[lo-po:])
	}
	c.count(src)
	return int(n), nil
}

// copyAt copies b[off:] into p and returns the count.
func copyAt(p, b []byte, off int64) int {
	if off >= int64(len(b)) {
		return 0
	}
	return copy(p, b[off:])
}

// frameIndex returns where ref's frames lie: remembered, else from the
// head of the block in the disk tier, else from the grid.
func (c *Cache) frameIndex(ctx context.Context, ref remote.BlockRef) (*remote.Frames, error) {
	if f, ok := c.idx.get(ref.ID); ok {
		return f, nil
	}
	if head, ok := c.disk.readAt(ref, 0, min(ref.Length, remote.FrameHeadMax), nil); ok {
		f, err := remote.ParseFrames(head, ref.Length)
		if err == nil {
			c.idx.put(ref.ID, f)
			return f, nil
		}
		c.diskErrors.Add(1)
		c.log.Warn("cache: cached block has a damaged header (corrupt cache file); deleting it and reading from the grid",
			"block", ref.ID, "err", err)
		c.disk.remove(ref.ID)
	}
	c.indexFetches.Add(1)
	f, err := c.f.FetchFrameIndex(ctx, ref)
	if err != nil {
		c.fetchErrors.Add(1)
		return nil, fmt.Errorf("cache: read block %s: %w", ref.ID, err)
	}
	c.idx.put(ref.ID, f)
	return f, nil
}

// sealedBuf returns a pooled buffer for one sealed frame read from disk; it
// goes back to c.frameBufs once the frame is opened (the plaintext is a new
// slice).
func (c *Cache) sealedBuf() *[]byte {
	if b, ok := c.frameBufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, remote.FrameSize+64)
	return &b
}

// blockBuf returns a pooled buffer for a whole sealed block read from
// disk; it goes back to c.blockBufs once the block is opened and its frame
// index parsed (both copy what they keep).
func (c *Cache) blockBuf() *[]byte {
	if b, ok := c.blockBufs.Get().(*[]byte); ok {
		return b
	}
	return new([]byte) // sized by the first read, then kept
}

// diskBlock reads the whole sealed block of ref from the disk tier into a
// pooled buffer (one pread of the kept-open file, no new 4 MiB slice per
// block), opens it into a pooled plaintext buffer and keeps that in
// memory; the caller gets a reference. ok false with a nil error is a
// miss; a non-nil error means the file did not open (damaged).
func (c *Cache) diskBlock(ref remote.BlockRef) (p *buf, ok bool, err error) {
	buf := c.blockBuf()
	defer c.blockBufs.Put(buf)
	sealed, ok := c.disk.read(ref, *buf)
	if !ok {
		return nil, false, nil
	}
	if cap(sealed) > cap(*buf) {
		*buf = sealed[:0] // a bigger block: keep its buffer
	}
	// The plaintext's length: in a framed block's header; about the sealed
	// length less the overhead for an old block sealed whole.
	n := max(int64(len(sealed))-remote.SealOverhead, 0)
	if l, ok := remote.FramedPlainLen(sealed); ok {
		n = l
	}
	dst := c.plainBuf(n)
	plain, err := c.f.OpenBlock(dst, ref, sealed)
	if err != nil {
		if dst != nil {
			c.recycle(dst)
		}
		return nil, false, err
	}
	p = newBuf(plain, true)
	c.mem.put(blockKey(ref.ID), p)
	c.idx.learn(ref, sealed)
	return p, true, nil
}

// frame returns frame i of ref's block (read-only, shared like ReadBlock's
// slices) and where it came from: memory, else one flight per frame.
func (c *Cache) frame(ctx context.Context, ref remote.BlockRef, f *remote.Frames, i int) ([]byte, source, error) {
	k := frameKey(ref.ID, f, i)
	if b, ok := c.memBytes(k); ok {
		return b, fromMem, nil
	}
	// From the disk tier in the reader's own goroutine: a local pread
	// is cheaper than a flight's goroutine hand-offs, and two readers
	// reading one frame from disk at once only cost a pread more.
	if b, ok := c.diskFrame(ref, f, i); ok {
		return b, fromDisk, nil
	}
	p, src, err := c.load(ctx, k, func(ctx context.Context) (*buf, source, error) {
		return c.fillFrame(ctx, ref, f, i)
	})
	if err != nil {
		return nil, 0, err
	}
	b := p.b // a frame's own slice, or an escaped block's: never reused
	c.mem.release(p)
	return b, src, nil
}

// diskFrame reads and opens frame i from the disk tier and keeps it in
// memory. A frame that fails to open deletes the block's cache file.
func (c *Cache) diskFrame(ref remote.BlockRef, f *remote.Frames, i int) ([]byte, bool) {
	so, sn := f.Sealed(i, i)
	buf := c.sealedBuf()
	defer c.frameBufs.Put(buf)
	sealed, ok := c.disk.readAt(ref, so, sn, *buf)
	if !ok {
		return nil, false
	}
	plain, err := c.f.OpenFrames(ref, f, i, i, sealed)
	if int64(cap(sealed)) > int64(cap(*buf)) {
		*buf = sealed[:0] // a bigger frame: keep its buffer
	}
	if err != nil {
		c.diskErrors.Add(1)
		c.log.Warn("cache: cached frame failed to open (corrupt cache file); deleting the block and reading from the grid",
			"block", ref.ID, "frame", i, "err", err)
		c.disk.remove(ref.ID)
		return nil, false
	}
	p := newBuf(plain, false)
	c.mem.put(frameKey(ref.ID, f, i), p)
	c.mem.release(p)
	return plain, true
}

// fillFrame loads frame i: memory (the frame, or the whole block a flight
// just brought in), disk tier, grid. It keeps what it loads in memory.
func (c *Cache) fillFrame(ctx context.Context, ref remote.BlockRef, f *remote.Frames, i int) (*buf, source, error) {
	k := frameKey(ref.ID, f, i)
	if p, ok := c.memGet(k); ok {
		return p, fromMem, nil
	}
	po, pn := f.Plain(i)
	if b, ok := c.memBytes(blockKey(ref.ID)); ok && int64(len(b)) >= po+pn {
		return newBuf(b[po:po+pn:po+pn], false), fromMem, nil
	}
	if b, ok := c.diskFrame(ref, f, i); ok { // written to disk meanwhile
		return newBuf(b, false), fromDisk, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	c.frameFetches.Add(1)
	plain, err := c.f.FetchFrames(ctx, ref, f, i, i)
	if err != nil {
		c.fetchErrors.Add(1)
		return nil, 0, fmt.Errorf("cache: fetch frame %d of block %s: %w", i, ref.ID, err)
	}
	p := newBuf(plain, false)
	c.mem.put(k, p)
	return p, fromGrid, nil
}
