package metalog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

func testSealer(t testing.TB) *remote.Sealer {
	s, err := remote.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func prevSeg() *remote.SegmentInfo {
	return &remote.SegmentInfo{ID: remote.SegmentID{1, 2}, K: 2, M: 1, Size: 1000,
		ShardSize: remote.ShardSizeFor(1000, 2), ChunkSize: 64 << 10, Nodes: []string{"a", "b", ""}}
}

func TestRoundTrip(t *testing.T) {
	s := testSealer(t)
	h := Header{Seq: 9, Kind: Delta, Base: 3, Prev: 8, Created: time.Unix(100, 5).UTC(), PrevSeg: prevSeg()}
	b := NewBuilder(h)
	rows := []Row{
		{Table: 1, Vals: []any{int64(1), int64(-5), "name", []byte{0, 1}, nil}},
		{Table: 2, Delete: true, Vals: []any{int64(2), "x"}},
	}
	// Enough rows for several pages.
	big := bytes.Repeat([]byte{9}, 100<<10)
	for i := range 100 {
		rows = append(rows, Row{Table: 3, Vals: []any{int64(i), big}})
	}
	for _, r := range rows {
		if err := b.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	data := b.Seal(s)
	gh, iter, err := Open(s, 9, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*gh, h) {
		t.Fatalf("header %+v, want %+v", *gh, h)
	}
	var got []Row
	if err := iter(func(r Row) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("rows differ: got %d rows, want %d", len(got), len(rows))
	}

	// The same bytes under another seq, truncated, or with a flipped bit
	// never open.
	if _, _, err := Open(s, 10, data); !errors.Is(err, ErrCorrupt) {
		t.Errorf("record under another seq: %v", err)
	}
	if _, _, err := Open(s, 9, data[:len(data)-100]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated record: %v", err)
	}
	last := bytes.LastIndex(data, data[len(data)-1:]) // any byte in the last page
	cut := data[:last]
	if _, _, err := Open(s, 9, cut); err == nil {
		t.Error("record with its last page cut off opened")
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 1
	if _, _, err := Open(s, 9, bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped bit: %v", err)
	}
}

func TestDropLastPage(t *testing.T) {
	s := testSealer(t)
	b := NewBuilder(Header{Seq: 1, Kind: Full, Base: 1})
	big := bytes.Repeat([]byte{1}, 512<<10)
	for i := range 20 {
		b.Add(Row{Table: 1, Vals: []any{int64(i), big}})
	}
	data := b.Seal(s)
	// Find the last page's start and drop it: the page count catches it.
	off, starts := 0, []int{}
	for off < len(data) {
		starts = append(starts, off)
		n := int(data[off])<<24 | int(data[off+1])<<16 | int(data[off+2])<<8 | int(data[off+3])
		off += 4 + n
	}
	if len(starts) < 2 {
		t.Fatalf("want several pages, got %d", len(starts))
	}
	if _, _, err := Open(s, 1, data[:starts[len(starts)-1]]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("record without its last page: %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	s := testSealer(f)
	b := NewBuilder(Header{Seq: 3, Kind: Delta, Base: 1, Prev: 2, PrevSeg: prevSeg()})
	b.Add(Row{Table: 5, Vals: []any{int64(1), "a", []byte("b"), nil}})
	data := b.Seal(s)
	plain, err := s.OpenMeta(pageName(3, 0), data[4:])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add([]byte("MDL1\x00\x01\x00\x01\x01\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, p []byte) {
		ph, npages, body, err := DecodePage(p)
		if err != nil {
			return
		}
		// What decodes is what the builder writes: the page made again
		// from the decoded header and rows decodes to the same.
		b := NewBuilder(Header{Seq: ph.seq})
		if ph.h != nil {
			b.h = *ph.h
		}
		var rows []Row
		for len(body) > 0 {
			r, rest, err := DecodeRow(body)
			if err != nil {
				return
			}
			if len(rest) >= len(body) {
				t.Fatal("DecodeRow consumed nothing")
			}
			if err := b.Add(r); err != nil {
				t.Fatalf("a decoded row is refused by the builder: %v (%+v)", err, r)
			}
			rows = append(rows, r)
			body = rest
		}
		if ph.page != 0 || npages != 1 || len(b.pages) > 0 {
			return // the builder makes page 0 of 1 here
		}
		again := append([]byte(magic), 0)
		again = binary.AppendUvarint(again, ph.seq)
		again = binary.AppendUvarint(again, 0)
		again = binary.AppendUvarint(again, 1)
		again = appendHeader(again, &b.h)
		again = append(again, b.cur...)
		ph2, _, body2, err := DecodePage(again)
		if err != nil {
			t.Fatalf("the page made again does not decode: %v", err)
		}
		if !reflect.DeepEqual(ph2.h, ph.h) {
			t.Fatalf("header %+v decoded again as %+v", ph.h, ph2.h)
		}
		for i := 0; len(body2) > 0; i++ {
			r, rest, err := DecodeRow(body2)
			if err != nil || i >= len(rows) || !reflect.DeepEqual(r, rows[i]) {
				t.Fatalf("row %d decoded again as %+v, %v; want %+v", i, r, err, rows[min(i, len(rows)-1)])
			}
			body2 = rest
		}
	})
}

// plainSealer seals nothing, so that fuzzed records reach Open's page
// framing and assembly past the AEAD.
type plainSealer struct{}

func (plainSealer) SealMeta(name string, plain []byte) []byte { return append([]byte{}, plain...) }
func (plainSealer) OpenMeta(name string, sealed []byte) ([]byte, error) {
	return append([]byte{}, sealed...), nil
}

// FuzzOpen: a whole record (length-prefixed pages), as read back from the
// grid, never panics Open or its row iterator, and a record that opens
// names the seq asked for.
func FuzzOpen(f *testing.F) {
	full := NewBuilder(Header{Seq: 4, Kind: Full, Base: 4})
	full.Add(Row{Table: 1, Vals: []any{int64(1), "a", []byte("b"), nil}})
	f.Add(uint64(4), full.Seal(plainSealer{}))
	delta := NewBuilder(Header{Seq: 9, Kind: Delta, Base: 3, Prev: 8, PrevSeg: prevSeg()})
	for i := range 3 {
		delta.Add(Row{Table: 3, Vals: []any{int64(i), bytes.Repeat([]byte{9}, 1<<20-100)}})
	}
	if d := delta.Seal(plainSealer{}); len(d) < 1<<23 {
		// Several pages: keep the seed small by cutting each page's body.
		f.Add(uint64(9), d[:min(len(d), 4096)])
	}
	f.Add(uint64(1), []byte{0, 0, 0, 5, 'M', 'D', 'L', '1', 0})
	f.Add(uint64(1), []byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, seq uint64, data []byte) {
		h, iter, err := Open(plainSealer{}, seq, data)
		if err != nil {
			return
		}
		if h.Seq != seq {
			t.Fatalf("record %d opened as %d", seq, h.Seq)
		}
		iter(func(r Row) error {
			if len(r.Vals) > MaxVals {
				t.Fatalf("row with %d values", len(r.Vals))
			}
			return nil
		})
	})
}
