package remote

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Framed sealed blocks (version 2, what Seal writes). The AEAD unit is a
// frame of FrameSize plaintext bytes, not the block, so a reader that wants
// 4 KiB of a 4 MiB block fetches and opens one frame:
//
//	off      size     field
//	0        1        version (sealFramed = 2)
//	1        1        log2 of the frame size (15: 32 KiB; Open takes 14..24)
//	2        4        plaintext length of the block, little-endian
//	6        4·count  frame index: per frame a little-endian uint32, bit 31 set when
//	                  the frame's plaintext was zstd-compressed, bits 0-30 the
//	                  frame's sealed length (nonce + ciphertext + tag)
//	6+4·count ...     the frames in order, each: 12-byte random nonce | ciphertext | 16-byte tag
//
// count = ceil(plaintext length / frame size), and 1 for an empty block.
// Every frame but the last holds exactly one frame size of plaintext. The
// associated data of frame i is the block id, bytes [0,6) of the header, the
// frame count, i and frame i's index entry, so a frame moved to another
// block or slot, a block cut short or grown, a length or a flag changed,
// all fail to open. The index itself carries no tag: a changed entry moves
// the byte ranges a reader computes from it, and those frames then fail.
//
// A reader computes frame i's byte range from the first FrameHeadMax bytes
// (ParseFrames) and reads only that range.
const (
	sealFramed = 2
	// FrameSize is the plaintext carried by one frame of a sealed block.
	FrameSize      = 32 << 10
	frameLog2      = 15
	minFrameLog2   = 14 // Open refuses smaller frames: the index stays small
	maxFrameLog2   = 24
	frameHdrLen    = 6
	frameEntryLen  = 4
	frameOverhead  = nonceLen + tagLen
	frameFlagZstd  = 1 << 31
	frameLenMask   = 1<<31 - 1
	maxFrameCount  = MaxBlockSize >> minFrameLog2
	frameADLen     = 32 + frameHdrLen + 12
	frameMinToZstd = 64 // frames shorter than this are never compressed
)

// FrameHeadMax is the most bytes a reader needs from the start of a sealed
// block to locate all its frames (ParseFrames).
const FrameHeadMax = frameHdrLen + frameEntryLen*maxFrameCount

// MaxSealOverhead is the most that sealing adds to a block of MaxBlockSize.
const MaxSealOverhead = frameHdrLen + maxFrameCount*(frameEntryLen+frameOverhead)

// SealedSizeMax is the most bytes Seal can produce for n bytes of
// plaintext.
func SealedSizeMax(n int) int {
	return frameHdrLen + frameCount(n, frameLog2)*(frameEntryLen+frameOverhead) + n
}

func frameCount(plainLen, log2 int) int {
	if plainLen == 0 {
		return 1
	}
	return (plainLen + 1<<log2 - 1) >> log2
}

// sealFrames writes the framed form of plain after dst (see above).
func (s *Sealer) sealFrames(dst []byte, id BlockID, plain []byte) []byte {
	if len(plain) > MaxBlockSize {
		panic(fmt.Sprintf("remote: Seal of %d bytes, more than MaxBlockSize (%d)", len(plain), MaxBlockSize))
	}
	count := frameCount(len(plain), frameLog2)
	start := len(dst)
	head := frameHdrLen + frameEntryLen*count
	dst = growCap(dst, SealedSizeMax(len(plain)))
	dst = dst[:start+head]
	hdr := dst[start : start+frameHdrLen]
	hdr[0] = sealFramed
	hdr[1] = frameLog2
	binary.LittleEndian.PutUint32(hdr[2:6], uint32(len(plain)))
	var ad [frameADLen]byte
	copy(ad[:32], id[:])
	copy(ad[32:32+frameHdrLen], hdr)
	binary.LittleEndian.PutUint32(ad[38:42], uint32(count))
	compress := s.pays(plain)
	for i := range count {
		p := plain[min(i*FrameSize, len(plain)):min((i+1)*FrameSize, len(plain))]
		fstart := len(dst)
		dst = dst[:fstart+nonceLen]
		if _, err := rand.Read(dst[fstart:]); err != nil {
			panic("remote: crypto/rand failed: " + err.Error()) // never returns an error on supported systems
		}
		body := len(dst)
		entry := uint32(nonceLen + len(p) + tagLen)
		src := p
		if compress && len(p) >= frameMinToZstd {
			// Compress straight into dst, then encrypt in place (GCM allows
			// exact overlap of plaintext and output).
			dst = s.enc.EncodeAll(p, dst)
			if n := len(dst) - body; n < len(p)-len(p)/32 {
				entry = uint32(nonceLen+n+tagLen) | frameFlagZstd
				src = dst[body:]
			} else {
				dst = dst[:body] // did not pay: store raw
			}
		}
		binary.LittleEndian.PutUint32(dst[start+frameHdrLen+frameEntryLen*i:], entry)
		binary.LittleEndian.PutUint32(ad[42:46], uint32(i))
		binary.LittleEndian.PutUint32(ad[46:50], entry)
		dst = s.block.Seal(dst[:body], dst[fstart:body], src, ad[:])
	}
	return dst
}

// Frames locates the frames of one sealed block: which sealed bytes hold
// which plaintext. ParseFrames builds it from the block's first bytes. A
// block of the old format (version 1, one AEAD over the whole block) is one
// frame spanning all of it.
type Frames struct {
	hdr      [frameHdrLen]byte
	plainLen int64
	log2     int
	offs     []int64  // len count+1: frame i is sealed bytes [offs[i], offs[i+1])
	ents     []uint32 // index entries; nil for version 1
}

// ParseFrames reads the header (and frame index) at the start of a sealed
// block of sealedLen bytes. head holds the block's first min(sealedLen,
// FrameHeadMax) bytes, or more. Errors wrap ErrCorrupt: the bytes are not a
// block this build sealed, or they were changed.
func ParseFrames(head []byte, sealedLen int64) (*Frames, error) {
	if len(head) < frameHdrLen || sealedLen < frameHdrLen {
		return nil, fmt.Errorf("%w: sealed block of %d bytes is shorter than its header", ErrCorrupt, sealedLen)
	}
	if int64(len(head)) > sealedLen {
		head = head[:sealedLen]
	}
	f := &Frames{plainLen: int64(binary.LittleEndian.Uint32(head[2:6]))}
	copy(f.hdr[:], head)
	if f.plainLen > MaxBlockSize {
		return nil, fmt.Errorf("%w: sealed block claims %d bytes, more than the %d limit", ErrCorrupt, f.plainLen, MaxBlockSize)
	}
	switch head[0] {
	case sealVersion:
		if sealedLen < SealOverhead {
			return nil, fmt.Errorf("%w: sealed block of %d bytes is shorter than its overhead", ErrCorrupt, sealedLen)
		}
		f.log2 = max(bits.Len64(uint64(f.plainLen)), 1)
		f.offs = []int64{0, sealedLen}
		return f, nil
	case sealFramed:
	default:
		return nil, fmt.Errorf("%w: sealed-block version %d, this build reads %d and %d", ErrCorrupt, head[0], sealVersion, sealFramed)
	}
	f.log2 = int(head[1])
	if f.log2 < minFrameLog2 || f.log2 > maxFrameLog2 {
		return nil, fmt.Errorf("%w: frame size 2^%d outside 2^%d..2^%d", ErrCorrupt, f.log2, minFrameLog2, maxFrameLog2)
	}
	count := frameCount(int(f.plainLen), f.log2)
	hl := int64(frameHdrLen + frameEntryLen*count)
	if int64(len(head)) < hl {
		return nil, fmt.Errorf("%w: frame index of %d frames needs %d bytes, have %d", ErrCorrupt, count, hl, len(head))
	}
	f.ents = make([]uint32, count)
	f.offs = make([]int64, count+1)
	f.offs[0] = hl
	fs := int64(1) << f.log2
	for i := range count {
		e := binary.LittleEndian.Uint32(head[frameHdrLen+frameEntryLen*i:])
		n := int64(e & frameLenMask)
		pn := min(fs, f.plainLen-int64(i)*fs)
		switch {
		case e&frameFlagZstd == 0 && n != pn+frameOverhead:
			return nil, fmt.Errorf("%w: frame %d is %d bytes sealed, %d plain", ErrCorrupt, i, n, pn)
		case e&frameFlagZstd != 0 && (n <= frameOverhead || n >= pn+frameOverhead):
			return nil, fmt.Errorf("%w: compressed frame %d of %d bytes is not smaller than its plaintext", ErrCorrupt, i, n)
		}
		f.ents[i] = e
		f.offs[i+1] = f.offs[i] + n
	}
	if f.offs[count] != sealedLen {
		return nil, fmt.Errorf("%w: frames end at %d, the sealed block is %d bytes", ErrCorrupt, f.offs[count], sealedLen)
	}
	return f, nil
}

// FramedPlainLen is the plaintext length stated in the header of a framed
// block (version 2) whose first bytes are head, read without its frame
// index; false for an old block or too few bytes. Unverified until the
// block is opened: for sizing a buffer, not for trusting.
func FramedPlainLen(head []byte) (int64, bool) {
	if len(head) < frameHdrLen || head[0] != sealFramed {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint32(head[2:6])), true
}

// Count is the number of frames.
func (f *Frames) Count() int { return len(f.offs) - 1 }

// PlainLen is the block's plaintext length.
func (f *Frames) PlainLen() int64 { return f.plainLen }

// Framed reports whether the block can be read a frame at a time (version
// 2); an old block is one frame, the whole block.
func (f *Frames) Framed() bool { return f.ents != nil }

// HeadLen is the length of the header and frame index.
func (f *Frames) HeadLen() int64 { return f.offs[0] }

// Sealed returns the sealed byte range [off, off+n) of frames [first, last].
func (f *Frames) Sealed(first, last int) (off, n int64) {
	return f.offs[first], f.offs[last+1] - f.offs[first]
}

// Plain returns the plaintext byte range [off, off+n) of frame i.
func (f *Frames) Plain(i int) (off, n int64) {
	if f.ents == nil {
		return 0, f.plainLen
	}
	off = int64(i) << f.log2
	return off, min(int64(1)<<f.log2, f.plainLen-off)
}

// Span returns the frames holding plaintext bytes [off, off+n) (clamped to
// the block).
func (f *Frames) Span(off, n int64) (first, last int) {
	if f.ents == nil {
		return 0, 0
	}
	c := f.Count()
	first = int(min(max(off, 0)>>f.log2, int64(c-1)))
	last = int(min(max(off+n-1, 0)>>f.log2, int64(c-1)))
	return first, max(first, last)
}

// OpenFrames opens frames [first, last] of block id, whose sealed bytes
// (Sealed(first, last)) are sealed, and appends their plaintext to dst.
// Failures wrap ErrCorrupt.
func (s *Sealer) OpenFrames(dst []byte, id BlockID, f *Frames, first, last int, sealed []byte) ([]byte, error) {
	if first < 0 || last < first || last >= f.Count() {
		return nil, fmt.Errorf("open block %s: frames [%d,%d] of %d", id, first, last, f.Count())
	}
	off, n := f.Sealed(first, last)
	if int64(len(sealed)) != n {
		return nil, fmt.Errorf("open block %s: %w: frames [%d,%d] are %d bytes, got %d", id, ErrCorrupt, first, last, n, len(sealed))
	}
	if f.ents == nil {
		return s.openV1(dst, id, sealed)
	}
	var ad [frameADLen]byte
	copy(ad[:32], id[:])
	copy(ad[32:32+frameHdrLen], f.hdr[:])
	binary.LittleEndian.PutUint32(ad[38:42], uint32(f.Count()))
	_, pn := f.Plain(first)
	dst = growCap(dst, int(min(f.plainLen, int64(last-first+1)*pn)))
	for i := first; i <= last; i++ {
		b := sealed[f.offs[i]-off : f.offs[i+1]-off]
		_, plainN := f.Plain(i)
		binary.LittleEndian.PutUint32(ad[42:46], uint32(i))
		binary.LittleEndian.PutUint32(ad[46:50], f.ents[i])
		var err error
		dst, err = s.openBody(s.block, dst, b[:nonceLen], b[nonceLen:], ad[:], f.ents[i]&frameFlagZstd != 0, int(plainN))
		if err != nil {
			return nil, fmt.Errorf("open block %s frame %d: %w", id, i, err)
		}
	}
	return dst, nil
}

// VerifyIn authenticates the sealed block of n bytes at offset off of
// segment b as block id, frame by frame, without decompressing anything:
// the cheapest proof that the bytes are the ones Seal wrote for id (one
// AES-GCM pass). The uploader runs it on every staged block it packs, so
// a block the local disk damaged is never shipped as if it were good.
// Failures wrap ErrCorrupt.
func (s *Sealer) VerifyIn(b *SegmentBuf, off, n int64, id BlockID) error {
	if off < 0 || n < 0 || off+n > b.Len() {
		return fmt.Errorf("verify block %s: bytes [%d,%d) are outside the segment's %d", id, off, off+n, b.Len())
	}
	return s.verify(id, n, func(o, l int64, tmp []byte) []byte { return b.view(off+o, l, tmp) })
}

// Verify is VerifyIn for a sealed block in one slice: a flush checks a
// staged copy with it before it takes a reference to it.
func (s *Sealer) Verify(sealed []byte, id BlockID) error {
	return s.verify(id, int64(len(sealed)), func(o, l int64, _ []byte) []byte { return sealed[o : o+l] })
}

// verify authenticates the sealed block of n bytes that view reads
// (bytes [o, o+l), contiguous, in tmp when it must copy) as block id.
func (s *Sealer) verify(id BlockID, n int64, view func(o, l int64, tmp []byte) []byte) error {
	tmp := s.scratch(int(min(n, FrameHeadMax)))
	defer func() { s.putScratch(tmp) }()
	head := view(0, min(n, FrameHeadMax), tmp)
	f, err := ParseFrames(head, n)
	if err != nil {
		return fmt.Errorf("verify block %s: %w", id, err)
	}
	if f.ents == nil { // version 1: one AEAD over the whole block
		_, err := s.openV1(nil, id, view(0, n, nil))
		return err
	}
	var ad [frameADLen]byte
	copy(ad[:32], id[:])
	copy(ad[32:32+frameHdrLen], f.hdr[:])
	binary.LittleEndian.PutUint32(ad[38:42], uint32(f.Count()))
	for i := range f.Count() {
		fo, fn := f.Sealed(i, i)
		if cap(tmp) < int(2*fn) {
			s.putScratch(tmp)
			tmp = s.scratch(int(2 * fn))
		}
		// The frame where it lies (or copied into tmp's first half when
		// it crosses into the next shard), opened into tmp's second half.
		fr := view(fo, fn, tmp[:fn:fn])
		binary.LittleEndian.PutUint32(ad[42:46], uint32(i))
		binary.LittleEndian.PutUint32(ad[46:50], f.ents[i])
		if _, err := s.block.Open(tmp[fn:fn], fr[:nonceLen], fr[nonceLen:], ad[:]); err != nil {
			return fmt.Errorf("verify block %s frame %d: %w: authentication failed (changed after sealing)", id, i, ErrCorrupt)
		}
	}
	return nil
}
