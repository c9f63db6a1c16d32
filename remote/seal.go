package remote

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// MaxBlockSize bounds a block's plaintext. Seal panics beyond it (a caller
// bug) and Open rejects any sealed block that claims more, so a hostile
// sealed block cannot make a reader allocate more than this.
const MaxBlockSize = 16 << 20

// Sealed layout version 1: what SealMeta writes, and what Seal wrote for
// blocks before framed blocks (seal_frames.go); Open still reads such blocks:
//
//	off  size  field
//	0    1     version (sealVersion)
//	1    1     flags (flagZstd: the plaintext was zstd-compressed before sealing)
//	2    4     plaintext length, little-endian (before compression)
//	6    12    AES-GCM nonce (random)
//	18   ...   ciphertext, then the 16-byte GCM tag
//
// The associated data is the block id (or the meta object's name) followed by
// bytes [0,6), so neither the flags nor the length can be changed unseen.
const (
	sealVersion   = 1
	flagZstd      = 1 << 0
	sealHeaderLen = 6
	nonceLen      = 12
	tagLen        = 16
	// SealOverhead is what version 1 adds to an incompressible object
	// (SealMeta); a framed block adds SealedSizeMax(n)-n.
	SealOverhead = sealHeaderLen + nonceLen + tagLen
	// MaxSealedSize bounds a sealed block's length.
	MaxSealedSize = MaxBlockSize + MaxSealOverhead
)

// Compression policy. A block is compressed only when a sample of it
// compresses to at most compressKeep of its size; the sample is the whole
// block when it is small, else sampleParts slices of sampleLen/sampleParts
// bytes spread over the block (start, middle, end), so an incompressible
// 4 MiB block pays the compressor for 64 KiB only. See docs/BENCHMARKS.md.
const (
	sampleLen    = 64 << 10
	sampleParts  = 4
	compressKeep = 0.90
)

// Sealer turns block plaintext into sealed bytes and back. Keys are derived
// from the drive's 32-byte master key with HKDF-SHA256, one per purpose:
// the block-id hash key, the block AEAD key and the metadata AEAD key.
//
// A Sealer is safe for concurrent use. It keeps no reference to the slices
// passed to its methods after they return.
type Sealer struct {
	ids   sync.Pool // of *blake3.Hasher keyed with the id key, reset after use
	idKey []byte
	block cipher.AEAD
	meta  cipher.AEAD
	enc   *zstd.Encoder // EncodeAll only: safe for concurrent use
	dec   *zstd.Decoder // DecodeAll only: safe for concurrent use
	tmp   sync.Pool     // of *[]byte: decompression scratch in Open
}

// NewSealer derives the drive's keys from master (32 bytes).
func NewSealer(master []byte) (*Sealer, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("sealer: master key is %d bytes, want 32 (is the key file damaged?)", len(master))
	}
	derive := func(info string) ([]byte, error) {
		return hkdf.Key(sha256.New, master, nil, info, 32)
	}
	idKey, err := derive("meshdrive v1 block id")
	if err != nil {
		return nil, fmt.Errorf("sealer: derive id key: %w", err)
	}
	bk, err := derive("meshdrive v1 block seal")
	if err != nil {
		return nil, fmt.Errorf("sealer: derive block key: %w", err)
	}
	mk, err := derive("meshdrive v1 meta seal")
	if err != nil {
		return nil, fmt.Errorf("sealer: derive meta key: %w", err)
	}
	s := &Sealer{idKey: idKey}
	if s.block, err = newGCM(bk); err != nil {
		return nil, err
	}
	if s.meta, err = newGCM(mk); err != nil {
		return nil, err
	}
	if _, err := blake3.NewKeyed(idKey); err != nil {
		return nil, fmt.Errorf("sealer: id hash: %w", err)
	}
	s.ids.New = func() any {
		h, _ := blake3.NewKeyed(s.idKey) // key length checked above
		return h
	}
	// Blocks are compressed a frame (FrameSize) at a time, so a 1 MiB
	// window loses nothing there and keeps the encoder's history at about
	// 1 MiB instead of 8 (only whole metadata records, Seal, are longer).
	s.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("sealer: zstd encoder: %w", err)
	}
	s.dec, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxBlockSize),
		zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, fmt.Errorf("sealer: zstd decoder: %w", err)
	}
	return s, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealer: aes: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("sealer: gcm: %w", err)
	}
	return g, nil
}

// BlockID returns the keyed BLAKE3 hash of plain (chosen over HMAC-SHA256
// by benchmark, see docs/BENCHMARKS.md).
func (s *Sealer) BlockID(plain []byte) BlockID {
	h := s.ids.Get().(*blake3.Hasher)
	_, _ = h.Write(plain)
	var id BlockID
	h.Sum(id[:0])
	h.Reset()
	s.ids.Put(h)
	return id
}

// Seal appends the sealed form of plain to dst and returns it: a framed
// block (seal_frames.go), each FrameSize of plaintext its own AEAD unit. id
// is bound as associated data: Open with any other id fails. Frames are
// compressed when the block's sample shows it pays and the frame shrinks by
// 1/32 (see the compression policy above). Seal panics if len(plain) >
// MaxBlockSize.
func (s *Sealer) Seal(dst []byte, id BlockID, plain []byte) []byte {
	return s.sealFrames(dst, id, plain)
}

// SealMeta seals a metadata object (root record, key file) under the meta
// key with its name as associated data; it appends nothing, the result is
// newly allocated.
func (s *Sealer) SealMeta(name string, plain []byte) []byte {
	ad := make([]byte, len(name), len(name)+sealHeaderLen)
	copy(ad, name)
	return s.seal(s.meta, nil, ad, plain)
}

// Open appends the plaintext of the whole sealed block to dst and returns
// it; it reads framed blocks and blocks of version 1. Any failure
// (truncated, tampered, wrong id, unknown version) is an error wrapping
// ErrCorrupt; dst's contents past its original length are then undefined.
func (s *Sealer) Open(dst []byte, id BlockID, sealed []byte) ([]byte, error) {
	if len(sealed) > 0 && sealed[0] == sealFramed {
		f, err := ParseFrames(sealed, int64(len(sealed)))
		if err != nil {
			return nil, fmt.Errorf("open block %s: %w", id, err)
		}
		return s.OpenFrames(dst, id, f, 0, f.Count()-1, sealed[f.HeadLen():])
	}
	return s.openV1(dst, id, sealed)
}

// openV1 opens a block of version 1.
func (s *Sealer) openV1(dst []byte, id BlockID, sealed []byte) ([]byte, error) {
	var ad [32 + sealHeaderLen]byte
	copy(ad[:32], id[:])
	out, err := s.open(s.block, dst, ad[:32], sealed)
	if err != nil {
		return nil, fmt.Errorf("open block %s: %w", id, err)
	}
	return out, nil
}

// OpenMeta opens what SealMeta sealed under the same name. Failures wrap
// ErrCorrupt.
func (s *Sealer) OpenMeta(name string, sealed []byte) ([]byte, error) {
	ad := make([]byte, len(name), len(name)+sealHeaderLen)
	copy(ad, name)
	out, err := s.open(s.meta, nil, ad, sealed)
	if err != nil {
		return nil, fmt.Errorf("open meta object %q: %w", name, err)
	}
	return out, nil
}

// seal writes header, nonce and ciphertext after dst. ad holds the caller's
// binding and has room for the header to be appended.
func (s *Sealer) seal(aead cipher.AEAD, dst, ad, plain []byte) []byte {
	if len(plain) > MaxBlockSize {
		panic(fmt.Sprintf("remote: Seal of %d bytes, more than MaxBlockSize (%d)", len(plain), MaxBlockSize))
	}
	start := len(dst)
	dst = growCap(dst, SealOverhead+len(plain))
	dst = dst[:start+sealHeaderLen+nonceLen]
	hdr := dst[start : start+sealHeaderLen]
	nonce := dst[start+sealHeaderLen : start+sealHeaderLen+nonceLen]
	hdr[0] = sealVersion
	hdr[1] = 0
	binary.LittleEndian.PutUint32(hdr[2:6], uint32(len(plain)))
	if _, err := rand.Read(nonce); err != nil {
		panic("remote: crypto/rand failed: " + err.Error()) // never returns an error on supported systems
	}
	body := len(dst)
	if s.pays(plain) {
		// Compress straight into dst, then encrypt in place (GCM allows
		// exact overlap of plaintext and output).
		dst = s.enc.EncodeAll(plain, dst)
		if n := len(dst) - body; n < len(plain)-len(plain)/32 {
			hdr = dst[start : start+sealHeaderLen] // dst may have moved
			hdr[1] = flagZstd
			ad = append(ad, hdr...)
			nonce = dst[start+sealHeaderLen : body]
			return aead.Seal(dst[:body], nonce, dst[body:], ad)
		}
		dst = dst[:body] // did not pay after all: store raw
		hdr = dst[start : start+sealHeaderLen]
		nonce = dst[start+sealHeaderLen : body]
	}
	ad = append(ad, hdr...)
	return aead.Seal(dst, nonce, plain, ad)
}

// pays reports whether compressing plain is likely to save enough.
func (s *Sealer) pays(plain []byte) bool {
	if len(plain) < 64 {
		return false
	}
	if len(plain) <= sampleLen {
		return true // small: the trial is the real thing, Seal keeps it only if smaller
	}
	// Compress each part on its own: no copy of the sample, and each part
	// must show redundancy within itself.
	part := sampleLen / sampleParts
	step := (len(plain) - part) / (sampleParts - 1)
	out := s.scratch(part + part/8)
	total := 0
	for i := 0; i < sampleParts; i++ {
		out = s.enc.EncodeAll(plain[i*step:i*step+part], out[:0])
		total += len(out)
	}
	s.putScratch(out)
	return float64(total) <= compressKeep*float64(sampleLen)
}

// open checks and decrypts sealed, appending the plaintext to dst. Errors
// wrap ErrCorrupt.
func (s *Sealer) open(aead cipher.AEAD, dst, ad, sealed []byte) ([]byte, error) {
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("%w: sealed block of %d bytes is shorter than its overhead", ErrCorrupt, len(sealed))
	}
	hdr := sealed[:sealHeaderLen]
	if hdr[0] != sealVersion {
		return nil, fmt.Errorf("%w: sealed-block version %d, this build reads %d", ErrCorrupt, hdr[0], sealVersion)
	}
	flags := hdr[1]
	if flags&^flagZstd != 0 {
		return nil, fmt.Errorf("%w: unknown sealed-block flags %#x", ErrCorrupt, flags)
	}
	plainLen := int(binary.LittleEndian.Uint32(hdr[2:6]))
	if plainLen > MaxBlockSize {
		return nil, fmt.Errorf("%w: sealed block claims %d bytes, more than the %d limit", ErrCorrupt, plainLen, MaxBlockSize)
	}
	ctLen := len(sealed) - SealOverhead
	if flags&flagZstd == 0 && ctLen != plainLen {
		return nil, fmt.Errorf("%w: sealed block length %d does not match its plaintext length %d", ErrCorrupt, ctLen, plainLen)
	}
	if flags&flagZstd != 0 && ctLen >= plainLen {
		return nil, fmt.Errorf("%w: compressed block is not smaller than its plaintext", ErrCorrupt)
	}
	nonce := sealed[sealHeaderLen : sealHeaderLen+nonceLen]
	ct := sealed[sealHeaderLen+nonceLen:]
	ad = append(ad, hdr...)
	return s.openBody(aead, dst, nonce, ct, ad, flags&flagZstd != 0, plainLen)
}

// openBody authenticates and decrypts ct (ciphertext and tag) and, when
// compressed, decompresses it, appending exactly plainLen bytes to dst.
// Errors wrap ErrCorrupt.
func (s *Sealer) openBody(aead cipher.AEAD, dst, nonce, ct, ad []byte, compressed bool, plainLen int) ([]byte, error) {
	if !compressed {
		out, err := aead.Open(growCap(dst, plainLen), nonce, ct, ad)
		if err != nil {
			return nil, fmt.Errorf("%w: authentication failed (tampered, truncated or wrong key)", ErrCorrupt)
		}
		return out, nil
	}
	tmp := s.scratch(len(ct))
	z, err := aead.Open(tmp[:0], nonce, ct, ad)
	if err != nil {
		s.putScratch(tmp)
		return nil, fmt.Errorf("%w: authentication failed (tampered, truncated or wrong key)", ErrCorrupt)
	}
	start := len(dst)
	d := growCap(dst, plainLen)
	// The decoder may not write past start+plainLen (cap limit), so out is
	// d's array; d keeps its whole capacity for the frames after this one.
	out, err := s.dec.DecodeAll(z, d[:start:start+plainLen])
	s.putScratch(tmp)
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
	}
	if len(out)-start != plainLen {
		return nil, fmt.Errorf("%w: decompressed %d bytes, header says %d", ErrCorrupt, len(out)-start, plainLen)
	}
	return d[:start+plainLen], nil
}

// growCap returns b with room for n more bytes (same contents).
func growCap(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// scratch returns a pooled buffer of at least n bytes; give it back with
// putScratch once nothing refers to it.
func (s *Sealer) scratch(n int) []byte {
	if p, ok := s.tmp.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n, max(n, sampleLen+sampleLen/8))
}

func (s *Sealer) putScratch(b []byte) {
	b = b[:0]
	s.tmp.Put(&b)
}
