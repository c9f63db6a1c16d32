package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

func testObject(t testing.TB, n int) (*Header, []byte, []byte) {
	payload := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	h := &Header{Kind: KindSegment, K: 4, M: 2, Index: 3, ChunkSize: MinChunkSize, SegmentSize: int64(n * 4)}
	h.Segment[0] = 7
	obj, err := Encode(h, payload)
	if err != nil {
		t.Fatal(err)
	}
	return h, payload, obj
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, MinChunkSize - 1, MinChunkSize, 3*MinChunkSize + 17} {
		h, payload, obj := testObject(t, n)
		if int64(len(obj)) != HeaderLen(int64(n), MinChunkSize)+int64(n) {
			t.Fatalf("n=%d: object length %d", n, len(obj))
		}
		got, p, err := Verify(obj)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !bytes.Equal(p, payload) || got.Index != h.Index || got.Segment != h.Segment || got.SegmentSize != h.SegmentSize {
			t.Fatalf("n=%d: round trip mismatch: %+v", n, got)
		}
		hr, err := ReadHeader(bytes.NewReader(obj))
		if err != nil || hr.Len() != h.Len() {
			t.Fatalf("n=%d: ReadHeader: %v", n, err)
		}
	}
}

func TestEveryFlipDetected(t *testing.T) {
	_, _, obj := testObject(t, 2*MinChunkSize+100)
	for i := range obj {
		bad := bytes.Clone(obj)
		bad[i] ^= 0x40
		if _, _, err := Verify(bad); err == nil {
			t.Fatalf("flip at byte %d not detected", i)
		}
	}
}

func TestVerifyRange(t *testing.T) {
	h, payload, _ := testObject(t, 5*MinChunkSize+9)
	s, e := h.ChunkSpan(MinChunkSize+5, 10)
	if s != MinChunkSize || e != 2*MinChunkSize {
		t.Fatalf("span %d..%d", s, e)
	}
	if err := h.VerifyRange(s, payload[s:e]); err != nil {
		t.Fatal(err)
	}
	s, e = h.ChunkSpan(5*MinChunkSize+1, 100)
	if e != h.PayloadLen {
		t.Fatalf("tail span end %d", e)
	}
	bad := bytes.Clone(payload[s:e])
	bad[3] ^= 1
	if err := h.VerifyRange(s, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt range: %v", err)
	}
	if err := h.VerifyRange(1, payload[1:10]); err == nil {
		t.Fatal("unaligned range accepted")
	}
}

func FuzzParse(f *testing.F) {
	_, _, obj := testObject(f, 3*MinChunkSize)
	f.Add(obj[:HeaderLen(3*MinChunkSize, MinChunkSize)])
	f.Add(obj)
	f.Add([]byte("MDS1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		// A header that parses must be self-consistent.
		if int64(len(h.Sums)) != NumChunks(h.PayloadLen, int(h.ChunkSize)) || h.Len() > int64(len(b)) {
			t.Fatalf("inconsistent header %+v from %d bytes", h, len(b))
		}
		_, _, _ = Verify(b)
	})
}

// FuzzParseSummed is FuzzParse past the header checksum, which the
// fuzzer cannot forge: the input's header checksum is set right before
// parsing. A header that then parses, with a payload that verifies, is
// exactly what Encode makes of them.
func FuzzParseSummed(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new input it finds, and
	// on objects of a few chunks that stalls it for seconds.
	_, _, obj := testObject(f, 100)
	f.Add(obj)
	f.Add(obj[:HeaderLen(100, MinChunkSize)])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < FixedLen {
			return
		}
		_, n, err := ParseFixed(b)
		if err != nil || n > int64(len(b)) {
			return
		}
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint64(b[48:56], headerSum(b[:n]))
		h, err := Parse(b)
		if err != nil {
			t.Fatalf("a header with its checksum set does not parse: %v", err)
		}
		vh, payload, err := Verify(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
				t.Fatalf("Verify: %v", err)
			}
			return
		}
		again, err := Encode(&Header{Kind: h.Kind, K: h.K, M: h.M, Index: h.Index, ChunkSize: h.ChunkSize,
			Segment: h.Segment, SegmentSize: h.SegmentSize}, payload)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) || !reflect.DeepEqual(vh, h) {
			t.Fatalf("a verified object is not what Encode makes of its header and payload")
		}
	})
}
