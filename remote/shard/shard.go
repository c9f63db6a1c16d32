// Package shard is the on-node object format: a small versioned header, an
// xxh3 checksum per fixed-size chunk of the payload, then the payload.
//
// Every object meshdrive stores on a node (erasure-coded segment shards and
// small metadata objects alike) uses this format, so a node server, a dir
// store or a scrubber can verify any object, and any range of it, without
// keys. The format says nothing about what the payload means: payloads are
// sealed (encrypted) before they get here.
//
// Layout (all integers little-endian):
//
//	off  size  field
//	0    4     magic "MDS1"
//	4    1     format version (1)
//	5    1     kind (KindSegment, KindMeta)
//	6    1     k: data shards of the segment
//	7    1     m: parity shards of the segment
//	8    1     index of this shard in the segment (0..k+m-1)
//	9    3     reserved, zero
//	12   4     chunk size in bytes (power of two, 4 KiB .. 16 MiB)
//	16   16    segment id
//	32   8     segment size: bytes of segment data before padding
//	40   8     payload length
//	48   8     xxh3 of bytes [0,48) followed by the checksum table
//	56   8·c   checksum table: xxh3 of each payload chunk, c = ceil(payload/chunk)
//	...        payload
//
// The header length follows from the payload length and chunk size alone
// (HeaderLen), so a reader that knows a shard's size can fetch any payload
// range with one ranged read, without reading the header first.
package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/zeebo/xxh3"
)

// Magic starts every object.
const Magic = "MDS1"

// Version is the format version written by this package.
const Version = 1

// FixedLen is the length of the header before the checksum table.
const FixedLen = 56

// DefaultChunkSize is the checksum granularity used unless told otherwise.
const DefaultChunkSize = 64 << 10

// Limits that keep a decoder of hostile bytes bounded.
const (
	MinChunkSize  = 4 << 10
	MaxChunkSize  = 16 << 20
	MaxPayloadLen = 1 << 30
	MaxShards     = 255
)

// Kind says what an object holds.
type Kind uint8

const (
	// KindSegment is one shard of an erasure-coded segment.
	KindSegment Kind = 0
	// KindMeta is a small standalone object (root record, wrapped key):
	// k=1, m=0, index 0.
	KindMeta Kind = 1
)

// Errors. Both mean the bytes cannot be trusted; ErrFormat says the header
// itself is unreadable, ErrCorrupt that a checksum did not match.
var (
	ErrFormat  = errors.New("shard: bad header")
	ErrCorrupt = errors.New("shard: checksum mismatch")
)

// Header describes one object. Sums has one entry per payload chunk.
type Header struct {
	Kind        Kind
	K, M        uint8
	Index       uint8
	ChunkSize   uint32
	Segment     [16]byte
	SegmentSize int64
	PayloadLen  int64
	Sums        []uint64
}

// NumChunks is the number of checksum chunks for a payload length.
func NumChunks(payloadLen int64, chunkSize int) int64 {
	if payloadLen <= 0 {
		return 0
	}
	return (payloadLen + int64(chunkSize) - 1) / int64(chunkSize)
}

// HeaderLen is the header length, checksum table included, of an object
// with this payload length and chunk size.
func HeaderLen(payloadLen int64, chunkSize int) int64 {
	return FixedLen + 8*NumChunks(payloadLen, chunkSize)
}

// Len is the header length of h.
func (h *Header) Len() int64 { return HeaderLen(h.PayloadLen, int(h.ChunkSize)) }

// ObjectLen is the length of the whole object h describes.
func (h *Header) ObjectLen() int64 { return h.Len() + h.PayloadLen }

// Encode returns the object for payload: h's fixed fields, checksums
// computed here (h.Sums and h.PayloadLen are filled in), then a copy of
// payload. A zero h.ChunkSize means DefaultChunkSize.
func Encode(h *Header, payload []byte) ([]byte, error) {
	out := make([]byte, 0, HeaderLen(int64(len(payload)), chunkOr(h.ChunkSize))+int64(len(payload)))
	out, err := AppendHeader(out, h, payload)
	if err != nil {
		return nil, err
	}
	return append(out, payload...), nil
}

// AppendHeader computes the checksums of payload into h and appends the
// encoded header to dst. The payload itself is not appended.
func AppendHeader(dst []byte, h *Header, payload []byte) ([]byte, error) {
	if h.ChunkSize == 0 {
		h.ChunkSize = DefaultChunkSize
	}
	h.PayloadLen = int64(len(payload))
	if err := h.check(); err != nil {
		return nil, err
	}
	cs := int(h.ChunkSize)
	n := NumChunks(h.PayloadLen, cs)
	h.Sums = h.Sums[:0]
	for i := int64(0); i < n; i++ {
		end := min((i+1)*int64(cs), h.PayloadLen)
		h.Sums = append(h.Sums, xxh3.Hash(payload[i*int64(cs):end]))
	}
	start := len(dst)
	var fixed [FixedLen]byte
	copy(fixed[0:4], Magic)
	fixed[4] = Version
	fixed[5] = byte(h.Kind)
	fixed[6], fixed[7], fixed[8] = h.K, h.M, h.Index
	binary.LittleEndian.PutUint32(fixed[12:16], h.ChunkSize)
	copy(fixed[16:32], h.Segment[:])
	binary.LittleEndian.PutUint64(fixed[32:40], uint64(h.SegmentSize))
	binary.LittleEndian.PutUint64(fixed[40:48], uint64(h.PayloadLen))
	dst = append(dst, fixed[:]...)
	for _, s := range h.Sums {
		dst = binary.LittleEndian.AppendUint64(dst, s)
	}
	hsum := headerSum(dst[start:])
	binary.LittleEndian.PutUint64(dst[start+48:start+56], hsum)
	return dst, nil
}

func chunkOr(cs uint32) int {
	if cs == 0 {
		return DefaultChunkSize
	}
	return int(cs)
}

// headerSum hashes the fixed fields and the checksum table of an encoded
// header (b starts at the magic and covers the whole table).
func headerSum(b []byte) uint64 {
	hs := xxh3.New()
	hs.Write(b[:48])
	hs.Write(b[FixedLen:])
	return hs.Sum64()
}

func (h *Header) check() error {
	cs := h.ChunkSize
	switch {
	case cs < MinChunkSize || cs > MaxChunkSize || cs&(cs-1) != 0:
		return fmt.Errorf("%w: chunk size %d", ErrFormat, cs)
	case h.PayloadLen < 0 || h.PayloadLen > MaxPayloadLen:
		return fmt.Errorf("%w: payload length %d", ErrFormat, h.PayloadLen)
	case h.K == 0 || int(h.K)+int(h.M) > MaxShards:
		return fmt.Errorf("%w: k=%d m=%d", ErrFormat, h.K, h.M)
	case h.Index >= h.K+h.M:
		return fmt.Errorf("%w: index %d of %d shards", ErrFormat, h.Index, h.K+h.M)
	case h.Kind != KindSegment && h.Kind != KindMeta:
		return fmt.Errorf("%w: kind %d", ErrFormat, h.Kind)
	case h.SegmentSize < 0:
		return fmt.Errorf("%w: segment size %d", ErrFormat, h.SegmentSize)
	}
	return nil
}

// ParseFixed decodes the fixed part of a header (b holds at least FixedLen
// bytes) and returns the header with Sums unset and the full header length,
// so the caller knows how much more to read. It does not check the header
// checksum; Parse does.
func ParseFixed(b []byte) (*Header, int64, error) {
	if len(b) < FixedLen {
		return nil, 0, fmt.Errorf("%w: %d bytes, need %d", ErrFormat, len(b), FixedLen)
	}
	if string(b[0:4]) != Magic {
		return nil, 0, fmt.Errorf("%w: not a meshdrive shard (magic %q)", ErrFormat, b[0:4])
	}
	if b[4] != Version {
		return nil, 0, fmt.Errorf("%w: format version %d, this build reads %d", ErrFormat, b[4], Version)
	}
	if b[9] != 0 || b[10] != 0 || b[11] != 0 {
		return nil, 0, fmt.Errorf("%w: reserved bytes set", ErrFormat)
	}
	h := &Header{
		Kind:        Kind(b[5]),
		K:           b[6],
		M:           b[7],
		Index:       b[8],
		ChunkSize:   binary.LittleEndian.Uint32(b[12:16]),
		SegmentSize: int64(binary.LittleEndian.Uint64(b[32:40])),
		PayloadLen:  int64(binary.LittleEndian.Uint64(b[40:48])),
	}
	copy(h.Segment[:], b[16:32])
	if err := h.check(); err != nil {
		return nil, 0, err
	}
	return h, h.Len(), nil
}

// Parse decodes a whole header, checksum table included, from the start of
// b and checks the header checksum. b may hold more (the payload).
func Parse(b []byte) (*Header, error) {
	h, n, err := ParseFixed(b)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < n {
		return nil, fmt.Errorf("%w: header is %d bytes, have %d", ErrFormat, n, len(b))
	}
	if got, want := headerSum(b[:n]), binary.LittleEndian.Uint64(b[48:56]); got != want {
		return nil, fmt.Errorf("%w: header checksum", ErrCorrupt)
	}
	c := NumChunks(h.PayloadLen, int(h.ChunkSize))
	h.Sums = make([]uint64, c)
	for i := range h.Sums {
		h.Sums[i] = binary.LittleEndian.Uint64(b[FixedLen+8*i:])
	}
	return h, nil
}

// ReadHeader reads and checks the header at the start of r.
func ReadHeader(r io.ReaderAt) (*Header, error) {
	var fixed [FixedLen]byte
	if _, err := r.ReadAt(fixed[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: object shorter than a header", ErrFormat)
		}
		return nil, err
	}
	_, n, err := ParseFixed(fixed[:])
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: object shorter than its header", ErrFormat)
		}
		return nil, err
	}
	return Parse(b)
}

// ChunkSpan returns the chunk-aligned payload span [start, end) that covers
// payload bytes [off, off+n), clipped to the payload.
func (h *Header) ChunkSpan(off, n int64) (start, end int64) {
	cs := int64(h.ChunkSize)
	start = off / cs * cs
	end = min((off+n+cs-1)/cs*cs, h.PayloadLen)
	return start, end
}

// VerifyRange checks payload bytes p that start at the chunk-aligned payload
// offset off. p must end on a chunk boundary or at the end of the payload.
func (h *Header) VerifyRange(off int64, p []byte) error {
	cs := int64(h.ChunkSize)
	if off < 0 || off%cs != 0 || off+int64(len(p)) > h.PayloadLen {
		return fmt.Errorf("shard: verify range [%d,+%d) not chunk-aligned within payload of %d", off, len(p), h.PayloadLen)
	}
	end := off + int64(len(p))
	if end != h.PayloadLen && end%cs != 0 {
		return fmt.Errorf("shard: verify range [%d,+%d) does not end on a chunk boundary", off, len(p))
	}
	for c := off / cs; c*cs < end; c++ {
		lo := c*cs - off
		hi := min(lo+cs, int64(len(p)))
		if xxh3.Hash(p[lo:hi]) != h.Sums[c] {
			return fmt.Errorf("%w: chunk %d of shard %d", ErrCorrupt, c, h.Index)
		}
	}
	return nil
}

// Verify parses a whole object and checks every checksum. It returns the
// header and the payload (a sub-slice of obj).
func Verify(obj []byte) (*Header, []byte, error) {
	h, err := Parse(obj)
	if err != nil {
		return nil, nil, err
	}
	hl := h.Len()
	if int64(len(obj)) != hl+h.PayloadLen {
		return nil, nil, fmt.Errorf("%w: object is %d bytes, header says %d", ErrCorrupt, len(obj), hl+h.PayloadLen)
	}
	payload := obj[hl:]
	if err := h.VerifyRange(0, payload); err != nil {
		return nil, nil, err
	}
	return h, payload, nil
}
