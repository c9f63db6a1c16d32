package remote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

func testKey(seed byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func newTestSealer(t testing.TB) *Sealer {
	t.Helper()
	s, err := NewSealer(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mixedBlock returns n bytes of one of three kinds: 0 random, 1 text, 2 zeros.
func mixedBlock(r *rand.Rand, kind, n int) []byte {
	b := make([]byte, n)
	switch kind % 3 {
	case 0:
		for i := 0; i+8 <= n; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], r.Uint64())
		}
		for i := n &^ 7; i < n; i++ {
			b[i] = byte(r.Uint32())
		}
	case 1:
		words := strings.Fields("the grid keeps every byte of every file sealed and spread over nodes that never learn a name or a plaintext byte lorem ipsum dolor sit amet")
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[r.IntN(len(words))])
			buf.WriteByte(" \n"[r.IntN(2)])
		}
		copy(b, buf.Bytes())
	}
	return b
}

func TestSealRoundTrip(t *testing.T) {
	s := newTestSealer(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 63, 64, 100, 4096, 64 << 10, 64<<10 + 1, 1 << 20, 4 << 20} {
		for kind := range 3 {
			plain := mixedBlock(r, kind, n)
			id := s.BlockID(plain)
			prefix := []byte("prefix")
			sealed := s.Seal(append([]byte(nil), prefix...), id, plain)
			if !bytes.HasPrefix(sealed, prefix) {
				t.Fatalf("n=%d kind=%d: Seal did not append to dst", n, kind)
			}
			sealed = sealed[len(prefix):]
			if sealed[0] != sealFramed {
				t.Fatalf("n=%d kind=%d: version %d, want %d", n, kind, sealed[0], sealFramed)
			}
			f, err := ParseFrames(sealed, int64(len(sealed)))
			if err != nil {
				t.Fatalf("n=%d kind=%d: ParseFrames: %v", n, kind, err)
			}
			if want := max(1, (n+FrameSize-1)/FrameSize); f.Count() != want {
				t.Fatalf("n=%d: %d frames, want %d", n, f.Count(), want)
			}
			if l, ok := FramedPlainLen(sealed); !ok || l != int64(n) {
				t.Fatalf("n=%d kind=%d: FramedPlainLen %d %v, want %d", n, kind, l, ok, n)
			}
			compressed := false
			for _, e := range f.ents {
				compressed = compressed || e&frameFlagZstd != 0
			}
			if kind == 0 && (compressed || len(sealed) != SealedSizeMax(n)) {
				t.Errorf("n=%d random: compressed=%v len=%d, want raw %d", n, compressed, len(sealed), SealedSizeMax(n))
			}
			if kind != 0 && n >= 4096 && (!compressed || len(sealed) > n/2) {
				t.Errorf("n=%d kind=%d: compressed=%v len=%d, want compressed below half", n, kind, compressed, len(sealed))
			}
			got, err := s.Open([]byte("x"), id, sealed)
			if err != nil {
				t.Fatalf("n=%d kind=%d: %v", n, kind, err)
			}
			if !bytes.Equal(got[1:], plain) || got[0] != 'x' {
				t.Fatalf("n=%d kind=%d: round trip differs", n, kind)
			}
		}
	}
}

func TestSealRejectsTampering(t *testing.T) {
	s := newTestSealer(t)
	r := rand.New(rand.NewPCG(3, 4))
	for kind := range 3 {
		plain := mixedBlock(r, kind, 10000)
		id := s.BlockID(plain)
		sealed := s.Seal(nil, id, plain)
		for i := 0; i < len(sealed); i += 1 + i/7 {
			bad := append([]byte(nil), sealed...)
			bad[i] ^= 1 << (i % 8)
			if _, err := s.Open(nil, id, bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("kind %d: flip at %d: err %v, want ErrCorrupt", kind, i, err)
			}
		}
		for _, cut := range []int{0, 1, 6, 9, 10, SealOverhead - 1, SealOverhead, len(sealed) - 1} {
			if _, err := s.Open(nil, id, sealed[:cut]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("kind %d: truncated to %d: err %v", kind, cut, err)
			}
		}
		other := id
		other[0] ^= 1
		if _, err := s.Open(nil, other, sealed); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("kind %d: wrong id accepted: %v", kind, err)
		}
		s2, _ := NewSealer(testKey(2))
		if _, err := s2.Open(nil, id, sealed); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("kind %d: wrong key accepted: %v", kind, err)
		}
	}
}

func TestSealNoncesDiffer(t *testing.T) {
	s := newTestSealer(t)
	plain := []byte("same plaintext, same id")
	id := s.BlockID(plain)
	a, b := s.Seal(nil, id, plain), s.Seal(nil, id, plain)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one block are identical: nonce not random")
	}
}

func TestBlockIDKeyed(t *testing.T) {
	s1, s2 := newTestSealer(t), func() *Sealer { s, _ := NewSealer(testKey(9)); return s }()
	p := []byte("hello")
	if s1.BlockID(p) != s1.BlockID(p) {
		t.Fatal("BlockID not deterministic")
	}
	if s1.BlockID(p) == s2.BlockID(p) {
		t.Fatal("BlockID does not depend on the key")
	}
	if s1.BlockID(p) == s1.BlockID([]byte("hellp")) {
		t.Fatal("BlockID collision on different input")
	}
	if _, err := NewSealer(make([]byte, 31)); err == nil {
		t.Fatal("31-byte master key accepted")
	}
}

func TestSealMeta(t *testing.T) {
	s := newTestSealer(t)
	plain := []byte(`{"seq":7,"checkpoint":"abc"}`)
	sealed := s.SealMeta("root", plain)
	got, err := s.OpenMeta("root", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenMeta: %q, %v", got, err)
	}
	if _, err := s.OpenMeta("root2", sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("meta opened under another name: %v", err)
	}
	// Block and meta keys are separate: a meta object never opens as a block.
	var id BlockID
	if _, err := s.Open(nil, id, sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("meta object opened as a block: %v", err)
	}
}

// forge builds a sealed block with a chosen header and body, authenticated
// with the real key, to test Open's limits beyond the AEAD.
func forge(s *Sealer, id BlockID, flags byte, plainLen uint32, body []byte) []byte {
	out := make([]byte, sealHeaderLen+nonceLen)
	out[0], out[1] = sealVersion, flags
	binary.LittleEndian.PutUint32(out[2:6], plainLen)
	ad := append(append([]byte(nil), id[:]...), out[:sealHeaderLen]...)
	return s.block.Seal(out, out[sealHeaderLen:sealHeaderLen+nonceLen], body, ad)
}

func TestOpenBoundsDecompression(t *testing.T) {
	s := newTestSealer(t)
	var id BlockID
	// A zstd bomb: 64 MiB of zeros compresses to a few KiB.
	bomb := s.enc.EncodeAll(make([]byte, 64<<20), nil)
	for _, claim := range []uint32{MaxBlockSize + 1, 1 << 20, 64 << 20} {
		_, err := s.Open(nil, id, forge(s, id, flagZstd, claim, bomb))
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bomb claiming %d bytes: err %v, want ErrCorrupt", claim, err)
		}
	}
	// Right claim but wrong content length.
	small := s.enc.EncodeAll(make([]byte, 100000), nil)
	if _, err := s.Open(nil, id, forge(s, id, flagZstd, 99999, small)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short claim: %v", err)
	}
	if _, err := s.Open(nil, id, forge(s, id, flagZstd, 100001, small)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("long claim: %v", err)
	}
	if got, err := s.Open(nil, id, forge(s, id, flagZstd, 100000, small)); err != nil || len(got) != 100000 {
		t.Fatalf("honest forged block: %d bytes, %v", len(got), err)
	}
	if _, err := s.Open(nil, id, forge(s, id, 0x80, 3, []byte("abc"))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown flag: %v", err)
	}
}

func TestCompressionSampling(t *testing.T) {
	s := newTestSealer(t)
	r := rand.New(rand.NewPCG(5, 6))
	if s.pays(mixedBlock(r, 0, 4<<20)) {
		t.Error("random 4 MiB block judged compressible")
	}
	if !s.pays(mixedBlock(r, 1, 4<<20)) || !s.pays(mixedBlock(r, 2, 4<<20)) {
		t.Error("text or zero block judged incompressible")
	}
	// Mostly random with a compressible tail: the spread sample sees it.
	b := mixedBlock(r, 0, 4<<20)
	copy(b[2<<20:], make([]byte, 2<<20))
	if !s.pays(b) {
		t.Error("half-zero block judged incompressible")
	}
}

func FuzzOpen(f *testing.F) {
	s, err := NewSealer(testKey(1))
	if err != nil {
		f.Fatal(err)
	}
	var id BlockID
	r := rand.New(rand.NewPCG(7, 8))
	for kind := range 3 {
		f.Add(s.Seal(nil, id, mixedBlock(r, kind, 3000)))
	}
	f.Add([]byte{})
	f.Add(make([]byte, SealOverhead))
	f.Add(forge(s, id, flagZstd, MaxBlockSize, s.enc.EncodeAll(make([]byte, 1<<20), nil)))
	f.Fuzz(func(t *testing.T, sealed []byte) {
		out, err := s.Open(nil, id, sealed)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if len(out) > MaxBlockSize {
			t.Fatalf("opened %d bytes", len(out))
		}
	})
}

// TestOpenMutations feeds Open thousands of mutated and truncated sealed
// blocks (a cheap stand-in for the fuzzer in every plain test run): every
// one must fail with ErrCorrupt, none may panic.
func TestOpenMutations(t *testing.T) {
	s := newTestSealer(t)
	var id BlockID
	r := rand.New(rand.NewPCG(7, 8))
	seeds := [][]byte{s.Seal(nil, id, mixedBlock(r, 0, 3000)), s.Seal(nil, id, mixedBlock(r, 1, 3000)),
		forge(s, id, flagZstd, 1<<20, s.enc.EncodeAll(make([]byte, 1<<20), nil))}
	for i := range 5000 {
		b := append([]byte(nil), seeds[i%3]...)
		for range 1 + r.IntN(4) {
			b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
		}
		if r.IntN(4) == 0 {
			b = b[:r.IntN(len(b))]
		}
		if _, err := s.Open(nil, id, b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("mutation %d: err %v, want ErrCorrupt", i, err)
		}
	}
}

// sealV1 seals a block the way Seal did before framed blocks (version 1:
// one AEAD over the whole block), for the tests that prove such blocks
// still open.
func sealV1(s *Sealer, id BlockID, plain []byte) []byte {
	var ad [32 + sealHeaderLen]byte
	copy(ad[:32], id[:])
	return s.seal(s.block, nil, ad[:32], plain)
}

func TestOpenVersion1(t *testing.T) {
	s := newTestSealer(t)
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 100, 64 << 10, 1<<20 + 3} {
		for kind := range 3 {
			plain := mixedBlock(r, kind, n)
			id := s.BlockID(plain)
			old := sealV1(s, id, plain)
			if old[0] != sealVersion {
				t.Fatalf("sealV1 wrote version %d", old[0])
			}
			if _, ok := FramedPlainLen(old); ok {
				t.Fatalf("n=%d: FramedPlainLen reads a length from a version-1 block", n)
			}
			got, err := s.Open(nil, id, old)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("n=%d kind=%d: version-1 block does not open: %v", n, kind, err)
			}
			// Read a frame at a time, a version-1 block is one frame: all of it.
			f, err := ParseFrames(old[:min(len(old), FrameHeadMax)], int64(len(old)))
			if err != nil {
				t.Fatalf("n=%d: ParseFrames of version 1: %v", n, err)
			}
			if f.Framed() || f.Count() != 1 || f.PlainLen() != int64(n) {
				t.Fatalf("n=%d: version-1 frames: framed=%v count=%d plain=%d", n, f.Framed(), f.Count(), f.PlainLen())
			}
			if first, last := f.Span(int64(n/2), 1); first != 0 || last != 0 {
				t.Fatalf("span of version 1: %d..%d", first, last)
			}
			got, err = s.OpenFrames(nil, id, f, 0, 0, old)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("n=%d: OpenFrames of version 1: %v", n, err)
			}
			old[len(old)-1] ^= 1
			if _, err := s.Open(nil, id, old); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("tampered version-1 block: %v", err)
			}
		}
	}
}

// TestOpenFramesRanged reads single frames and runs of frames the way a
// ranged reader does: the head only, then only the frames' bytes.
func TestOpenFramesRanged(t *testing.T) {
	s := newTestSealer(t)
	r := rand.New(rand.NewPCG(13, 14))
	n := 4<<20 - 1000
	for kind := range 3 {
		plain := mixedBlock(r, kind, n)
		if kind == 1 {
			copy(plain[1<<20:], mixedBlock(r, 0, 1<<20)) // mixed: some frames raw, some compressed
		}
		id := s.BlockID(plain)
		sealed := s.Seal(nil, id, plain)
		f, err := ParseFrames(sealed[:FrameHeadMax], int64(len(sealed)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range [][2]int64{{0, 4096}, {FrameSize - 1, 2}, {3*FrameSize + 5, 4096}, {int64(n) - 10, 10}, {0, int64(n)}} {
			first, last := f.Span(c[0], c[1])
			off, sn := f.Sealed(first, last)
			got, err := s.OpenFrames([]byte("x"), id, f, first, last, sealed[off:off+sn])
			if err != nil {
				t.Fatalf("kind %d frames %d..%d: %v", kind, first, last, err)
			}
			pOff, _ := f.Plain(first)
			lOff, lN := f.Plain(last)
			if !bytes.Equal(got[1:], plain[pOff:lOff+lN]) || pOff > c[0] || lOff+lN < c[0]+c[1] {
				t.Fatalf("kind %d frames %d..%d: wrong plaintext", kind, first, last)
			}
		}
		// A frame read as another frame, or of another block, fails.
		off0, n0 := f.Sealed(0, 0)
		off1, n1 := f.Sealed(1, 1)
		if n0 == n1 {
			if _, err := s.OpenFrames(nil, id, f, 1, 1, sealed[off0:off0+n0]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("frame 0 opened as frame 1: %v", err)
			}
		}
		other := id
		other[31] ^= 1
		if _, err := s.OpenFrames(nil, other, f, 1, 1, sealed[off1:off1+n1]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("frame opened under another id: %v", err)
		}
	}
}

// TestFramesTruncationDetected: a block cut to fewer frames, with its
// header rewritten to match, fails (the frame count is in every frame's
// associated data).
func TestFramesTruncationDetected(t *testing.T) {
	s := newTestSealer(t)
	r := rand.New(rand.NewPCG(15, 16))
	plain := mixedBlock(r, 0, 3*FrameSize)
	id := s.BlockID(plain)
	sealed := s.Seal(nil, id, plain)
	f, err := ParseFrames(sealed, int64(len(sealed)))
	if err != nil {
		t.Fatal(err)
	}
	// Two frames: new header and index, frames 0 and 1 as they were.
	cut := []byte{sealFramed, frameLog2, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(cut[2:], 2*FrameSize)
	cut = binary.LittleEndian.AppendUint32(cut, f.ents[0])
	cut = binary.LittleEndian.AppendUint32(cut, f.ents[1])
	o, n := f.Sealed(0, 1)
	cut = append(cut, sealed[o:o+n]...)
	if _, err := s.Open(nil, id, cut); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("block cut to two frames opened: %v", err)
	}
	// Frames swapped (with their index entries): fails.
	sw := append([]byte(nil), sealed[:f.HeadLen()]...)
	binary.LittleEndian.PutUint32(sw[6:], f.ents[1])
	binary.LittleEndian.PutUint32(sw[10:], f.ents[0])
	o0, n0 := f.Sealed(0, 0)
	o1, n1 := f.Sealed(1, 1)
	sw = append(sw, sealed[o1:o1+n1]...)
	sw = append(sw, sealed[o0:o0+n0]...)
	sw = append(sw, sealed[o1+n1:]...)
	if _, err := s.Open(nil, id, sw); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("block with frames swapped opened: %v", err)
	}
}

// FuzzFrames feeds arbitrary bytes to the framed decoder the way a ranged
// reader does: ParseFrames on the head, then OpenFrames of every frame
// range. Nothing may panic; every failure wraps ErrCorrupt.
func FuzzFrames(f *testing.F) {
	s, err := NewSealer(testKey(1))
	if err != nil {
		f.Fatal(err)
	}
	var id BlockID
	r := rand.New(rand.NewPCG(17, 18))
	for kind := range 3 {
		f.Add(s.Seal(nil, id, mixedBlock(r, kind, 2*FrameSize+100)), uint16(0), uint16(2))
	}
	f.Add(s.Seal(nil, id, nil), uint16(0), uint16(0))
	f.Add(sealV1(s, id, mixedBlock(r, 1, 3000)), uint16(0), uint16(0))
	f.Add([]byte{sealFramed, frameLog2, 0, 0, 0, 0}, uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, sealed []byte, first, last uint16) {
		fr, err := ParseFrames(sealed[:min(len(sealed), FrameHeadMax)], int64(len(sealed)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ParseFrames error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if fr.PlainLen() > MaxBlockSize || fr.Count() < 1 || fr.Count() > maxFrameCount {
			t.Fatalf("parsed %d bytes in %d frames", fr.PlainLen(), fr.Count())
		}
		a, b := int(first)%fr.Count(), int(last)%fr.Count()
		if a > b {
			a, b = b, a
		}
		off, n := fr.Sealed(a, b)
		if off < 0 || n < 0 || off+n > int64(len(sealed)) {
			t.Fatalf("frames %d..%d at [%d,+%d) outside %d bytes", a, b, off, n, len(sealed))
		}
		out, err := s.OpenFrames(nil, id, fr, a, b, sealed[off:off+n])
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenFrames error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		po, _ := fr.Plain(a)
		lo, ln := fr.Plain(b)
		if int64(len(out)) != lo+ln-po {
			t.Fatalf("opened %d bytes of frames %d..%d, want %d", len(out), a, b, lo+ln-po)
		}
	})
}

// TestOpenFramesNoCopies: opening a block of many compressed frames into
// a buffer with room fills that buffer, without a new one per frame.
func TestOpenFramesNoCopies(t *testing.T) {
	s := newTestSealer(t)
	r := rand.New(rand.NewPCG(19, 20))
	plain := mixedBlock(r, 1, 4<<20)
	id := s.BlockID(plain)
	sealed := s.Seal(nil, id, plain)
	dst := make([]byte, 0, len(plain))
	got, err := s.Open(dst, id, sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	if &got[0] != &dst[:1][0] {
		t.Fatal("Open did not fill the buffer it was given")
	}
	// TotalAlloc is the whole process's: a goroutine another test left
	// running can allocate in the window (a CI run saw 4 MiB once). The
	// least of five tries is the call's own.
	least := uint64(1<<64 - 1)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := s.Open(dst, id, sealed); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	if least > uint64(len(plain)) {
		t.Fatalf("opening a %d-byte block into a buffer with room allocated %d bytes (the least of five tries)", len(plain), least)
	}
}

// TestVerifyIn: a sealed block packed into a segment verifies where it
// lies, across shard boundaries, compressed or not; one flipped byte
// anywhere in it (header, index, nonce, body, tag), or another block's id,
// fails with ErrCorrupt; an old (version 1) block verifies too. Verify,
// on the block's own slice, agrees.
func TestVerifyIn(t *testing.T) {
	s := newTestSealer(t)
	r := rand.New(rand.NewPCG(7, 8))
	for kind := range 3 {
		plain := mixedBlock(r, kind, 300_001)
		id := s.BlockID(plain)
		sealed := s.Seal(nil, id, plain)
		v1 := sealV1(s, id, plain)
		// 5 bytes ahead of the block, a segment laid out so its three
		// data shards cut the blocks (shard size about 200 KB).
		b, err := NewSegmentBuf(3, 1, 0, int64(5+len(sealed)+len(v1)))
		if err != nil {
			t.Fatal(err)
		}
		b.Write([]byte("ahead"))
		b.Write(sealed)
		b.Write(v1)
		if err := s.VerifyIn(b, 5, int64(len(sealed)), id); err != nil {
			t.Fatalf("kind %d: a good block fails: %v", kind, err)
		}
		if err := s.VerifyIn(b, int64(5+len(sealed)), int64(len(v1)), id); err != nil {
			t.Fatalf("kind %d: a good version-1 block fails: %v", kind, err)
		}
		if err := s.VerifyIn(b, 5, int64(len(sealed)), BlockID{1}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("kind %d: another id: %v, want ErrCorrupt", kind, err)
		}
		for _, v := range [][]byte{sealed, v1} {
			if err := s.Verify(v, id); err != nil {
				t.Fatalf("kind %d: Verify of a good block (%d bytes) fails: %v", kind, len(v), err)
			}
		}
		for _, at := range []int{0, 3, 7, 200, len(sealed) / 2, len(sealed) - 1} {
			b2, _ := NewSegmentBuf(3, 1, 0, int64(5+len(sealed)))
			bad := bytes.Clone(sealed)
			bad[at] ^= 0x10
			b2.Write([]byte("ahead"))
			b2.Write(bad)
			if err := s.VerifyIn(b2, 5, int64(len(bad)), id); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("kind %d: byte %d flipped: %v, want ErrCorrupt", kind, at, err)
			}
			if err := s.Verify(bad, id); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("kind %d: Verify with byte %d flipped: %v, want ErrCorrupt", kind, at, err)
			}
		}
	}
}
