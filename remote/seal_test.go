package remote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
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
			compressed := sealed[1]&flagZstd != 0
			if kind == 0 && (compressed || len(sealed) != n+SealOverhead) {
				t.Errorf("n=%d random: compressed=%v len=%d, want raw %d", n, compressed, len(sealed), n+SealOverhead)
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
		for _, cut := range []int{0, 1, SealOverhead - 1, SealOverhead, len(sealed) - 1} {
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
