package remotetest

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// Object returns a valid shard-format object whose payload is payloadLen
// pseudo-random bytes derived from seed, with the given checksum chunk
// size (0 = shard.MinChunkSize, so small objects span several chunks).
// The result is newly allocated and owned by the caller.
func Object(t testing.TB, seed uint64, payloadLen, chunkSize int) []byte {
	t.Helper()
	if chunkSize == 0 {
		chunkSize = shard.MinChunkSize
	}
	payload := make([]byte, payloadLen)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	h := &shard.Header{
		Kind:        shard.KindSegment,
		K:           4,
		M:           2,
		Index:       uint8(seed % 6),
		ChunkSize:   uint32(chunkSize),
		SegmentSize: int64(payloadLen) * 4,
	}
	h.Segment[0] = byte(seed)
	h.Segment[1] = byte(seed >> 8)
	obj, err := shard.Encode(h, payload)
	if err != nil {
		t.Fatalf("remotetest: encoding a test object: %v", err)
	}
	return obj
}

// HeaderLen is the header length of obj (a valid object).
func HeaderLen(t testing.TB, obj []byte) int {
	t.Helper()
	h, err := shard.Parse(obj)
	if err != nil {
		t.Fatalf("remotetest: parsing a test object: %v", err)
	}
	return int(h.Len())
}

// Flip returns a copy of obj with the byte at i inverted.
func Flip(obj []byte, i int) []byte {
	c := append([]byte(nil), obj...)
	c[i] ^= 0xff
	return c
}

// FlipFile flips a byte in the payload of the shard object stored in the
// file at p, past its header: the file keeps its size, so a listing still
// counts the shard, and only a checksum finds it corrupt.
func FlipFile(t testing.TB, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1-len(b)/3] ^= 0x5a
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
