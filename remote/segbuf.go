package remote

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// SegmentBuf is a segment packed straight into the payloads of its shard
// objects: each object is its header's room, then its payload, so
// WriteSegmentBuf encodes parity and headers in place and ships the
// objects without a copy of the segment. A caller that would otherwise
// build the segment in a buffer of its own (the journal's uploader) holds
// the data shards once instead of twice: 24 MiB for a 16 MiB segment at
// k=4, m=2, not 40.
//
// The layout follows from the size given to NewSegmentBuf: the segment's
// byte x lies in data shard x/ShardSize. Bytes are appended in order with
// Write and ReadFull. A SegmentBuf is used by one goroutine; its buffers
// are the caller's from NewSegmentBuf until Release.
type SegmentBuf struct {
	k, m  int
	chunk int
	size  int64 // the planned size; the layout follows from it
	ss    int64 // shard payload length
	hl    int64 // shard header length
	n     int64 // bytes appended
	objs  [][]byte
	pool  *sync.Pool // where Release returns objs (nil: nowhere)
}

// NewSegmentBuf returns an empty segment with room for size bytes, laid
// out for k data and m parity shards with chunk-sized checksums (0: the
// shard format's default). Its buffers are not pooled.
func NewSegmentBuf(k, m, chunk int, size int64) (*SegmentBuf, error) {
	return newSegmentBuf(k, m, chunk, size, nil)
}

// NewSegmentBuf returns an empty segment with room for size bytes, laid
// out for this grid, its buffers from the grid's pool.
func (g *Grid) NewSegmentBuf(size int64) (*SegmentBuf, error) {
	return newSegmentBuf(g.k, g.m, g.chunk, size, &g.bufs)
}

func newSegmentBuf(k, m, chunk int, size int64, pool *sync.Pool) (*SegmentBuf, error) {
	if chunk == 0 {
		chunk = shard.DefaultChunkSize
	}
	if size <= 0 {
		return nil, errors.New("segment buffer: no data")
	}
	if k < 1 || m < 0 || k+m > shard.MaxShards {
		return nil, fmt.Errorf("segment buffer: %d+%d shards", k, m)
	}
	ss := ShardSizeFor(size, k)
	if ss > shard.MaxPayloadLen {
		return nil, fmt.Errorf("write segment: %d bytes make %d-byte shards, over the %d limit; write smaller segments", size, ss, shard.MaxPayloadLen)
	}
	b := &SegmentBuf{k: k, m: m, chunk: chunk, size: size, ss: ss, hl: shard.HeaderLen(ss, chunk), pool: pool}
	b.objs = make([][]byte, k+m)
	for i := range b.objs {
		b.objs[i] = b.getBuf(int(b.hl + ss))
	}
	return b, nil
}

// Len is the number of bytes appended so far.
func (b *SegmentBuf) Len() int64 { return b.n }

// Cap is the size the segment was laid out for.
func (b *SegmentBuf) Cap() int64 { return b.size }

// span is the payload room from the append position to the end of its
// data shard (or of the segment); empty when the segment is full.
func (b *SegmentBuf) span() []byte {
	if b.n >= b.size {
		return nil
	}
	i, off := b.n/b.ss, b.n%b.ss
	end := min(b.ss, b.size-i*b.ss)
	return b.objs[i][b.hl+off : b.hl+end]
}

func (b *SegmentBuf) room(n int64) error {
	if n > b.size-b.n {
		return fmt.Errorf("segment buffer: %d bytes do not fit in the %d left", n, b.size-b.n)
	}
	return nil
}

// Write appends p; it fails, appending nothing, when p does not fit.
func (b *SegmentBuf) Write(p []byte) (int, error) {
	if err := b.room(int64(len(p))); err != nil {
		return 0, err
	}
	for done := 0; done < len(p); {
		c := copy(b.span(), p[done:])
		b.n += int64(c)
		done += c
	}
	return len(p), nil
}

// ReadFull appends exactly n bytes read from r. On an error nothing is
// appended.
func (b *SegmentBuf) ReadFull(r io.Reader, n int64) error {
	if err := b.room(n); err != nil {
		return err
	}
	start := b.n
	for n > 0 {
		s := b.span()
		s = s[:min(int64(len(s)), n)]
		if _, err := io.ReadFull(r, s); err != nil {
			b.n = start
			return err
		}
		b.n += int64(len(s))
		n -= int64(len(s))
	}
	return nil
}

// Bytes returns a contiguous copy of the bytes appended.
func (b *SegmentBuf) Bytes() []byte {
	out := make([]byte, 0, b.n)
	for i := int64(0); i*b.ss < b.n; i++ {
		out = append(out, b.objs[i][b.hl:b.hl+min(b.ss, b.n-i*b.ss)]...)
	}
	return out
}

// Release gives the buffers back; b must not be used afterwards.
func (b *SegmentBuf) Release() {
	for _, o := range b.objs {
		b.putBuf(o)
	}
	b.objs = nil
}

// seal pads the data shards with zeros after the segment's end, encodes
// parity into the parity payloads and writes every object's header, all in
// place: then each objs[i] is shard i's whole object. It may run again on
// the same bytes (a retried write): the result is the same.
func (b *SegmentBuf) seal(g *Grid, id SegmentID) error {
	payloads := make([][]byte, len(b.objs))
	for i, o := range b.objs {
		payloads[i] = o[b.hl:]
	}
	for i := range b.k {
		clear(payloads[i][max(min(b.n-int64(i)*b.ss, b.ss), 0):])
	}
	if b.m > 0 {
		enc, err := g.encoder(b.k, b.m)
		if err != nil {
			return err
		}
		if err := enc.Encode(payloads); err != nil {
			return fmt.Errorf("write segment: encode: %w", err)
		}
	}
	for i := range b.objs {
		h := shard.Header{Kind: shard.KindSegment, K: uint8(b.k), M: uint8(b.m), Index: uint8(i),
			ChunkSize: uint32(b.chunk), Segment: id, SegmentSize: b.n}
		hdr, err := shard.AppendHeader(b.objs[i][:0], &h, payloads[i])
		if err != nil {
			return fmt.Errorf("write segment: shard header: %w", err)
		}
		if int64(len(hdr)) != b.hl || &hdr[0] != &b.objs[i][0] {
			return fmt.Errorf("write segment: shard header is %d bytes, expected %d", len(hdr), b.hl)
		}
	}
	return nil
}

// poolMin is the least capacity of a pooled shard buffer: smaller ones
// cost little to allocate and would crowd the pool.
const poolMin = 1 << 20

// getBuf returns a buffer of exactly n bytes, from the pool when it has
// one that fits. One more than half as large again stays in the pool: a
// smaller segment (the urgent blocks', a metadata record's) does not keep
// a full segment's shards alive, nor take them from a full segment packed
// at the same time, and pooled buffers that no full segment uses go at the
// next collections.
func (b *SegmentBuf) getBuf(n int) []byte {
	if b.pool != nil && n >= poolMin/2 {
		if p, ok := b.pool.Get().(*[]byte); ok {
			if cap(*p) >= n && cap(*p) <= n+n/2 {
				return (*p)[:n]
			}
			if cap(*p) > n+n/2 {
				b.pool.Put(p)
			}
		}
	}
	return make([]byte, n)
}

func (b *SegmentBuf) putBuf(o []byte) {
	if b.pool != nil && cap(o) >= poolMin {
		o = o[:0]
		b.pool.Put(&o)
	}
}

// view returns the appended bytes [off, off+n): a slice of the shard
// payload that holds them, or, when they cross into the next data shard,
// a copy in scratch's array (grown when too small). The caller has
// checked the range.
func (b *SegmentBuf) view(off, n int64, scratch []byte) []byte {
	i, o := off/b.ss, off%b.ss
	if o+n <= b.ss {
		return b.objs[i][b.hl+o : b.hl+o+n]
	}
	out := scratch[:0]
	for n > 0 {
		i, o = off/b.ss, off%b.ss
		c := min(n, b.ss-o)
		out = append(out, b.objs[i][b.hl+o:b.hl+o+c]...)
		off, n = off+c, n-c
	}
	return out
}

// Truncate drops the bytes appended after the first n (a block the
// caller took back); n beyond Len changes nothing.
func (b *SegmentBuf) Truncate(n int64) {
	if n >= 0 && n < b.n {
		b.n = n
	}
}
