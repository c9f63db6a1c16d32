// Package metalog is the byte format of the drive's metadata on the grid:
// log records, each a full checkpoint of the journal's tables or a delta
// (the rows that changed since the previous record), cut into sealed
// pages and packed into one segment.
//
// A record is self-describing and knows nothing of SQL: a row is a table
// number, a put or a delete, and a list of values (NULL, integer, text or
// blob); the journal maps tables to its schema. Every page is sealed with
// the drive's metadata key under the name "mlog/<seq>/<page>", so a page
// cannot be moved to another record or position, and a record cannot be
// cut short or spliced (every page names the page count).
//
// Decode never panics and never allocates more than the input justifies:
// it is fuzzed (FuzzDecodePage).
package metalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// ErrCorrupt is wrapped by every decoding failure.
var ErrCorrupt = errors.New("metadata log record is corrupt")

// Kinds of records.
const (
	Delta = 0 // rows changed since record Prev
	Full  = 1 // every row: a base that needs no other record
)

// Header is what a record says about itself (in its first page).
type Header struct {
	Seq  uint64
	Kind int
	// Base is the seq of the full record this one builds on (Seq itself
	// for a full record); Prev the record this delta follows (0 for a
	// full record).
	Base, Prev uint64
	Created    time.Time
	// PrevSeg locates record Prev; nil for a full record.
	PrevSeg *remote.SegmentInfo
}

// Value kinds in a row.
const (
	kNull  = 0
	kInt   = 1
	kText  = 2
	kBlob  = 3
	maxVal = 1 << 20 // longest text or blob value
	// MaxVals is the most values a row may carry.
	MaxVals = 32
)

// Row is one row put (Vals: every column) or deleted (Vals: the key
// columns). A value is nil, int64, string or []byte.
type Row struct {
	Table  uint8
	Delete bool
	Vals   []any
}

// PageSize is the plaintext size at which a page is cut.
const PageSize = 4 << 20

const magic = "MDL1"

// Sealer is what records need of *remote.Sealer.
type Sealer interface {
	SealMeta(name string, plain []byte) []byte
	OpenMeta(name string, sealed []byte) ([]byte, error)
}

func pageName(seq uint64, page int) string { return fmt.Sprintf("mlog/%d/%d", seq, page) }

// Builder accumulates the rows of one record.
type Builder struct {
	h     Header
	pages [][]byte
	cur   []byte
	rows  int
}

// NewBuilder starts a record with header h.
func NewBuilder(h Header) *Builder {
	return &Builder{h: h}
}

// Rows counts the rows added.
func (b *Builder) Rows() int { return b.rows }

// Add appends one row. Values must be nil, int64, string or []byte.
func (b *Builder) Add(r Row) error {
	if len(r.Vals) > MaxVals || r.Table > 127 {
		return fmt.Errorf("metalog: row of table %d with %d values", r.Table, len(r.Vals))
	}
	if len(b.cur) >= PageSize {
		b.pages = append(b.pages, b.cur)
		b.cur = nil
	}
	tag := r.Table << 1
	if r.Delete {
		tag |= 1
	}
	b.cur = append(b.cur, tag, byte(len(r.Vals)))
	for _, v := range r.Vals {
		switch v := v.(type) {
		case nil:
			b.cur = append(b.cur, kNull)
		case int64:
			b.cur = append(b.cur, kInt)
			b.cur = binary.AppendVarint(b.cur, v)
		case string:
			if len(v) > maxVal {
				return fmt.Errorf("metalog: text value of %d bytes", len(v))
			}
			b.cur = append(b.cur, kText)
			b.cur = binary.AppendUvarint(b.cur, uint64(len(v)))
			b.cur = append(b.cur, v...)
		case []byte:
			if len(v) > maxVal {
				return fmt.Errorf("metalog: blob value of %d bytes", len(v))
			}
			b.cur = append(b.cur, kBlob)
			b.cur = binary.AppendUvarint(b.cur, uint64(len(v)))
			b.cur = append(b.cur, v...)
		default:
			return fmt.Errorf("metalog: value of type %T", v)
		}
	}
	b.rows++
	return nil
}

// Seal returns the record as segment data: for each page, its sealed
// length (4 bytes, big-endian) and the sealed page.
func (b *Builder) Seal(s Sealer) []byte {
	pages := append(b.pages, b.cur)
	var out []byte
	for i, body := range pages {
		p := append([]byte(magic), 0)
		p = binary.AppendUvarint(p, b.h.Seq)
		p = binary.AppendUvarint(p, uint64(i))
		p = binary.AppendUvarint(p, uint64(len(pages)))
		if i == 0 {
			p = appendHeader(p, &b.h)
		}
		p = append(p, body...)
		sealed := s.SealMeta(pageName(b.h.Seq, i), p)
		out = binary.BigEndian.AppendUint32(out, uint32(len(sealed)))
		out = append(out, sealed...)
	}
	return out
}

func appendHeader(p []byte, h *Header) []byte {
	p = append(p, byte(h.Kind))
	p = binary.AppendUvarint(p, h.Base)
	p = binary.AppendUvarint(p, h.Prev)
	p = binary.AppendVarint(p, h.Created.UnixNano())
	if h.PrevSeg == nil {
		return append(p, 0)
	}
	p = append(p, 1)
	return remote.AppendSegmentInfo(p, h.PrevSeg)
}

// Open checks and opens every page of record seq (segment data as Seal
// made it) and returns its header and a function that calls fn for each
// row in order. The pages are opened up front, so a record that fails
// here was not partly applied.
func Open(s Sealer, seq uint64, data []byte) (*Header, func(fn func(Row) error) error, error) {
	var bodies [][]byte
	var h *Header
	npages := -1
	for i := 0; len(data) > 0; i++ {
		if len(data) < 4 {
			return nil, nil, fmt.Errorf("%w: record %d: truncated page length", ErrCorrupt, seq)
		}
		n := binary.BigEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-4) {
			return nil, nil, fmt.Errorf("%w: record %d: page %d runs past the record", ErrCorrupt, seq, i)
		}
		plain, err := s.OpenMeta(pageName(seq, i), data[4:4+n])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: record %d page %d: %w", ErrCorrupt, seq, i, err)
		}
		data = data[4+n:]
		ph, total, body, err := DecodePage(plain)
		if err != nil {
			return nil, nil, fmt.Errorf("record %d page %d: %w", seq, i, err)
		}
		if ph.seq != seq || ph.page != uint64(i) || (npages >= 0 && total != npages) {
			return nil, nil, fmt.Errorf("%w: record %d page %d: names record %d page %d of %d", ErrCorrupt, seq, i, ph.seq, ph.page, total)
		}
		npages = total
		if i == 0 {
			h = ph.h
		}
		bodies = append(bodies, body)
		if len(bodies) > npages {
			return nil, nil, fmt.Errorf("%w: record %d: more pages than the %d it names", ErrCorrupt, seq, npages)
		}
	}
	if h == nil || len(bodies) != npages {
		return nil, nil, fmt.Errorf("%w: record %d: %d of %d pages", ErrCorrupt, seq, len(bodies), npages)
	}
	iter := func(fn func(Row) error) error {
		for i, body := range bodies {
			for len(body) > 0 {
				r, rest, err := DecodeRow(body)
				if err != nil {
					return fmt.Errorf("record %d page %d: %w", seq, i, err)
				}
				body = rest
				if err := fn(r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return h, iter, nil
}

type pageHead struct {
	seq, page uint64
	h         *Header // page 0 only
}

// DecodePage decodes an opened page: its position, its record header
// (page 0) and the rows' bytes. Exported for fuzzing.
func DecodePage(p []byte) (ph pageHead, npages int, body []byte, err error) {
	bad := func(what string) (pageHead, int, []byte, error) {
		return pageHead{}, 0, nil, fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	if len(p) < 5 || string(p[:4]) != magic || p[4] != 0 {
		return bad("bad page header")
	}
	p = p[5:]
	var v [3]uint64
	for i := range v {
		x, n := binary.Uvarint(p)
		if n <= 0 {
			return bad("truncated page header")
		}
		v[i], p = x, p[n:]
	}
	if v[2] == 0 || v[2] > 1<<16 || v[1] >= v[2] {
		return bad("page number out of range")
	}
	ph.seq, ph.page = v[0], v[1]
	if ph.page == 0 {
		h := &Header{Seq: ph.seq}
		if len(p) < 1 || p[0] > Full {
			return bad("record kind")
		}
		h.Kind = int(p[0])
		p = p[1:]
		var n int
		if h.Base, n = binary.Uvarint(p); n <= 0 {
			return bad("truncated base")
		}
		p = p[n:]
		if h.Prev, n = binary.Uvarint(p); n <= 0 {
			return bad("truncated prev")
		}
		p = p[n:]
		t, n := binary.Varint(p)
		if n <= 0 {
			return bad("truncated time")
		}
		h.Created = time.Unix(0, t).UTC()
		p = p[n:]
		if len(p) < 1 {
			return bad("truncated prev segment")
		}
		has := p[0]
		p = p[1:]
		switch {
		case has == 1:
			seg, rest, err := remote.DecodeSegmentInfo(p)
			if err != nil {
				return pageHead{}, 0, nil, fmt.Errorf("%w: prev segment: %w", ErrCorrupt, err)
			}
			h.PrevSeg, p = seg, rest
		case has != 0:
			return bad("prev segment flag")
		}
		switch {
		case h.Kind == Full && (h.Base != h.Seq || h.Prev != 0 || h.PrevSeg != nil):
			return bad("full record with a predecessor")
		case h.Kind == Delta && (h.Prev == 0 || h.PrevSeg == nil || h.Prev >= h.Seq || h.Base > h.Prev):
			return bad("delta without a valid predecessor")
		}
		ph.h = h
	}
	return ph, int(v[2]), p, nil
}

// DecodeRow decodes one row from the front of b and returns the rest.
func DecodeRow(b []byte) (Row, []byte, error) {
	bad := func(what string) (Row, []byte, error) {
		return Row{}, nil, fmt.Errorf("%w: row: %s", ErrCorrupt, what)
	}
	if len(b) < 2 {
		return bad("truncated")
	}
	r := Row{Table: b[0] >> 1, Delete: b[0]&1 == 1}
	nv := int(b[1])
	if nv > MaxVals {
		return bad("too many values")
	}
	b = b[2:]
	r.Vals = make([]any, 0, nv)
	for range nv {
		if len(b) < 1 {
			return bad("truncated value")
		}
		k := b[0]
		b = b[1:]
		switch k {
		case kNull:
			r.Vals = append(r.Vals, nil)
		case kInt:
			x, n := binary.Varint(b)
			if n <= 0 {
				return bad("truncated integer")
			}
			r.Vals = append(r.Vals, x)
			b = b[n:]
		case kText, kBlob:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > maxVal || l > uint64(len(b)-n) {
				return bad("truncated text or blob")
			}
			v := b[n : n+int(l)]
			if k == kText {
				r.Vals = append(r.Vals, string(v))
			} else {
				r.Vals = append(r.Vals, append([]byte{}, v...))
			}
			b = b[n+int(l):]
		default:
			return bad("unknown value kind")
		}
	}
	return r, b, nil
}
