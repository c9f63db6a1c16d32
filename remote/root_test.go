package remote

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote/shard"
)

func rootSealer(t testing.TB, b byte) *Sealer {
	s, err := NewSealer(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleRoot() *RootRecord {
	return &RootRecord{Seq: 42, Created: time.Unix(1700000000, 123).UTC(), Writer: WriterID{7, 8, 9}, Head: SegmentInfo{
		ID: SegmentID{9}, K: 4, M: 2, Size: 12345, ShardSize: ShardSizeFor(12345, 4), ChunkSize: 64 << 10,
		Nodes: []string{"n1", "n2", "", "n4", "n5", "n6"}}}
}

func TestRootRecord(t *testing.T) {
	s := rootSealer(t, 1)
	r := sampleRoot()
	sealed := s.SealRoot(r)
	got, err := s.OpenRoot(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("got %+v, want %+v", got, r)
	}
	// Another drive's key, a flipped bit, a truncation: ErrCorrupt.
	if _, err := rootSealer(t, 2).OpenRoot(sealed); !errors.Is(err, ErrCorrupt) {
		t.Errorf("other key: %v", err)
	}
	bad := append([]byte(nil), sealed...)
	bad[len(bad)-3] ^= 0x10
	if _, err := s.OpenRoot(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped bit: %v", err)
	}
	if _, err := s.OpenRoot(sealed[:10]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated: %v", err)
	}
}

// TestRootRecordVersion0: a record from before writer ids (version 0:
// no writer after the time) decodes, with the zero writer.
func TestRootRecordVersion0(t *testing.T) {
	r := sampleRoot()
	b := append([]byte(rootMagic), rootV0)
	b = appendU64(b, r.Seq)
	b = appendU64(b, uint64(r.Created.UnixNano()))
	b = AppendSegmentInfo(b, &r.Head)
	got, err := DecodeRoot(b)
	if err != nil {
		t.Fatal(err)
	}
	r.Writer = WriterID{}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("got %+v, want %+v", got, r)
	}
	if !got.Writer.IsZero() {
		t.Error("a version 0 record has a writer")
	}
	b[4] = 2
	if _, err := DecodeRoot(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version 2: %v, want ErrCorrupt", err)
	}
}

func TestDecodeSegmentInfoRefusesBadFields(t *testing.T) {
	good := AppendSegmentInfo(nil, &sampleRoot().Head)
	if _, rest, err := DecodeSegmentInfo(good); err != nil || len(rest) != 0 {
		t.Fatalf("good info: %v, %d left", err, len(rest))
	}
	for _, s := range []*SegmentInfo{
		{K: 0, M: 1, ChunkSize: 64 << 10, Nodes: []string{""}},
		{K: 2, M: 1, Size: 100, ShardSize: 5, ChunkSize: 64 << 10, Nodes: []string{"", "", ""}},
		{K: 2, M: 1, Size: 100, ShardSize: ShardSizeFor(100, 2), ChunkSize: 1000, Nodes: []string{"", "", ""}},
		{K: 2, M: 1, Size: 100, ShardSize: ShardSizeFor(100, 2), ChunkSize: 64 << 10, Nodes: []string{""}},
		// k and m that wrap when added as unsigned (a review found
		// these accepted).
		{K: -1, M: 1, ShardSize: 64, ChunkSize: 64 << 10},
		{K: -2, M: 3, ShardSize: 64, ChunkSize: 64 << 10, Nodes: []string{""}},
		{K: math.MinInt64, M: math.MinInt64, ShardSize: 64, ChunkSize: 64 << 10},
	} {
		if _, _, err := DecodeSegmentInfo(AppendSegmentInfo(nil, s)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%+v decoded: %v", s, err)
		}
		if s.Check() == nil {
			t.Errorf("%+v passes Check", s)
		}
	}
	h := sampleRoot().Head
	if err := h.Check(); err != nil {
		t.Errorf("a good segment fails Check: %v", err)
	}
	for _, bad := range []func(*SegmentInfo){
		func(s *SegmentInfo) { s.ChunkSize = 0 },
		func(s *SegmentInfo) { s.Size = -1 },
		func(s *SegmentInfo) { s.ShardSize = 0 },
		func(s *SegmentInfo) { s.Size = s.ShardSize*int64(s.K) + 1 },
		func(s *SegmentInfo) { s.M = 250 },
	} {
		s := sampleRoot().Head
		bad(&s)
		if s.Check() == nil {
			t.Errorf("%+v passes Check", s)
		}
	}
}

func FuzzDecodeRoot(f *testing.F) {
	s := rootSealer(f, 1)
	plain, err := s.OpenMeta(rootAD, s.SealRoot(sampleRoot()))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add([]byte("MDR1\x00"))
	f.Add([]byte("MDR1\x01"))
	v0 := append([]byte(rootMagic), rootV0)
	v0 = appendU64(v0, 1)
	v0 = appendU64(v0, 2)
	f.Add(AppendSegmentInfo(v0, &sampleRoot().Head))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRoot(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if err := r.Head.Check(); err != nil {
			t.Fatalf("decoded a head a reader cannot use: %v", err)
		}
		// What decodes re-encodes to a record that decodes the same
		// (not always the same bytes: a uvarint may come padded).
		again := append([]byte(rootMagic), b[4])
		again = appendU64(again, r.Seq)
		again = appendU64(again, uint64(r.Created.UnixNano()))
		if b[4] == rootV1 {
			again = append(again, r.Writer[:]...)
		}
		again = AppendSegmentInfo(again, &r.Head)
		if len(again) > len(b) {
			t.Fatalf("re-encoding is longer than the input")
		}
		r2, err := DecodeRoot(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoded record decodes to\n%+v\nnot\n%+v", r2, r)
		}
	})
}

func appendU64(b []byte, v uint64) []byte {
	return append(b, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// TestLegacyMetaNames: drives made before 2026-12 kept their key under
// meta/meta/key; it is still found, the new name wins when both exist,
// and DeleteLegacyMeta removes only the old copy.
func TestLegacyMetaNames(t *testing.T) {
	ctx := t.Context()
	s := NewMemStore()
	obj := func(b string) []byte {
		o, err := shard.Encode(&shard.Header{Kind: shard.KindMeta, K: 1, SegmentSize: int64(len(b)), ChunkSize: shard.DefaultChunkSize}, []byte(b))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if err := s.Put(ctx, "meta/meta/key", obj("old")); err != nil {
		t.Fatal(err)
	}
	if got, err := GetMetaFrom(ctx, s, MetaKey); err != nil || string(got) != "old" {
		t.Fatalf("legacy key: %q, %v", got, err)
	}
	var members []Member
	for i := range 3 {
		st := s
		if i > 0 {
			st = NewMemStore()
		}
		members = append(members, Member{Name: fmt.Sprint("n", i), Store: st})
	}
	g, err := NewGrid(GridOptions{K: 2, M: 1, Members: members, Sealer: rootSealer(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := g.GetMeta(ctx, MetaKey); err != nil || string(got) != "old" {
		t.Fatalf("grid, legacy key: %q, %v", got, err)
	}
	if _, err := g.PutMeta(ctx, MetaKey, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, err := g.GetMeta(ctx, MetaKey); err != nil || string(got) != "new" {
		t.Fatalf("grid, both names: %q, %v", got, err)
	}
	g.DeleteLegacyMeta(ctx, MetaKey)
	if _, err := s.Stat(ctx, "meta/meta/key"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("legacy copy after DeleteLegacyMeta: %v", err)
	}
	if got, err := GetMetaFrom(ctx, s, MetaKey); err != nil || string(got) != "new" {
		t.Fatalf("new key after DeleteLegacyMeta: %q, %v", got, err)
	}
}
