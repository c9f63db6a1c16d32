package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// Meta object names. Every node holds one copy of each, as a KindMeta
// shard under "meta/"+name. Drives made before 2026-12 stored the key and
// config under "meta/meta/key" and "meta/meta/config" (the prefix was
// added twice); GetMeta still reads those (LegacyMetaName).
const (
	MetaKey    = "key"    // the wrapped master key (already encrypted)
	MetaConfig = "config" // the drive config, sealed with the meta key
	MetaRoot   = "root"   // the root record (SealRoot)
)

// LegacyMetaName is the name under which drives made before 2026-12 kept
// meta object name, or "" when there is none.
func LegacyMetaName(name string) string {
	switch name {
	case MetaKey, MetaConfig:
		return "meta/" + name
	}
	return ""
}

// RootRecord is the small record written to every node after each
// metadata log record: which log record is the newest. Seq only grows
// over the life of a drive; a reader takes the highest valid Seq it can
// find, so a node that serves an old record cannot roll the drive back.
// It is sealed (authenticated and encrypted) with the metadata key under
// the name "root": a node can neither read nor forge it.
type RootRecord struct {
	Seq     uint64
	Created time.Time
	// Writer is the journal (one data dir) that wrote the record. A mount
	// ships a record only while the newest root is its own or the one it
	// took up (recover): two computers writing one drive are stopped and
	// told, not left to delete each other's segments as orphans. Zero in
	// records written before 2026-12-07 (version 0).
	Writer WriterID
	// Head is the segment holding log record Seq.
	Head SegmentInfo
}

// WriterID names the journal that wrote a root record: random, made once
// per data dir.
type WriterID [16]byte

// IsZero reports whether w is the zero id (a record from before writer
// ids).
func (w WriterID) IsZero() bool { return w == WriterID{} }

func (w WriterID) String() string { return fmt.Sprintf("%x", w[:]) }

const rootMagic = "MDR1"

// Root record versions: the byte after the magic. 0 has no writer.
const (
	rootV0 = 0
	rootV1 = 1
)

// rootAD binds the sealed root record to its purpose.
const rootAD = "meshdrive root record"

// SealRoot encodes and seals r.
func (s *Sealer) SealRoot(r *RootRecord) []byte {
	b := append([]byte(rootMagic), rootV1)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Created.UnixNano()))
	b = append(b, r.Writer[:]...)
	b = AppendSegmentInfo(b, &r.Head)
	return s.SealMeta(rootAD, b)
}

// OpenRoot opens and decodes what SealRoot sealed. Every failure wraps
// ErrCorrupt: a forged, tampered or truncated record, or one of another
// drive.
func (s *Sealer) OpenRoot(sealed []byte) (*RootRecord, error) {
	b, err := s.OpenMeta(rootAD, sealed)
	if err != nil {
		return nil, fmt.Errorf("root record: %w", err)
	}
	return DecodeRoot(b)
}

// DecodeRoot decodes an opened root record. Exported for fuzzing; use
// OpenRoot.
func DecodeRoot(b []byte) (*RootRecord, error) {
	if len(b) < len(rootMagic)+1+16 || string(b[:4]) != rootMagic || (b[4] != rootV0 && b[4] != rootV1) {
		return nil, fmt.Errorf("%w: root record: bad header", ErrCorrupt)
	}
	r := &RootRecord{
		Seq:     binary.BigEndian.Uint64(b[5:]),
		Created: time.Unix(0, int64(binary.BigEndian.Uint64(b[13:]))).UTC(),
	}
	version := b[4]
	b = b[21:]
	if version == rootV1 {
		if len(b) < len(r.Writer) {
			return nil, fmt.Errorf("%w: root record: truncated writer", ErrCorrupt)
		}
		copy(r.Writer[:], b)
		b = b[len(r.Writer):]
	}
	seg, rest, err := DecodeSegmentInfo(b)
	if err != nil {
		return nil, fmt.Errorf("root record: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: root record: %d trailing bytes", ErrCorrupt, len(rest))
	}
	r.Head = *seg
	return r, nil
}

// maxNodeName bounds a node name in an encoded SegmentInfo.
const maxNodeName = 4096

// AppendSegmentInfo appends the binary form of s (what DecodeSegmentInfo
// reads) to dst.
func AppendSegmentInfo(dst []byte, s *SegmentInfo) []byte {
	dst = append(dst, s.ID[:]...)
	dst = binary.AppendUvarint(dst, uint64(s.K))
	dst = binary.AppendUvarint(dst, uint64(s.M))
	dst = binary.AppendUvarint(dst, uint64(s.Size))
	dst = binary.AppendUvarint(dst, uint64(s.ShardSize))
	dst = binary.AppendUvarint(dst, uint64(s.ChunkSize))
	dst = binary.AppendUvarint(dst, uint64(len(s.Nodes)))
	for _, n := range s.Nodes {
		dst = binary.AppendUvarint(dst, uint64(len(n)))
		dst = append(dst, n...)
	}
	return dst
}

// DecodeSegmentInfo reads one SegmentInfo from the front of b and returns
// the rest. It checks that the coding and sizes are ones WriteSegment
// makes, so a reader never sizes a buffer from a bad field. Errors wrap
// ErrCorrupt.
func DecodeSegmentInfo(b []byte) (*SegmentInfo, []byte, error) {
	bad := func(what string) (*SegmentInfo, []byte, error) {
		return nil, nil, fmt.Errorf("%w: segment info: %s", ErrCorrupt, what)
	}
	if len(b) < 16 {
		return bad("truncated id")
	}
	s := &SegmentInfo{}
	copy(s.ID[:], b)
	b = b[16:]
	var v [6]uint64
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return bad("truncated field")
		}
		v[i], b = x, b[n:]
	}
	if v[0] < 1 || v[0] > shard.MaxShards || v[1] > shard.MaxShards || v[0]+v[1] > shard.MaxShards {
		return bad(fmt.Sprintf("k=%d m=%d", v[0], v[1]))
	}
	s.K, s.M = int(v[0]), int(v[1])
	if v[2] > 1<<40 {
		return bad("size out of range")
	}
	s.Size = int64(v[2])
	if int64(v[3]) != ShardSizeFor(s.Size, s.K) {
		return bad("shard size does not match the segment size")
	}
	s.ShardSize = int64(v[3])
	if v[4] < shard.MinChunkSize || v[4] > shard.MaxChunkSize || v[4]&(v[4]-1) != 0 {
		return bad("chunk size")
	}
	s.ChunkSize = int(v[4])
	if v[5] != uint64(s.K+s.M) {
		return bad("node count is not k+m")
	}
	s.Nodes = make([]string, s.K+s.M)
	for i := range s.Nodes {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > maxNodeName || uint64(len(b)-n) < l {
			return bad("truncated node name")
		}
		s.Nodes[i] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	if err := s.Check(); err != nil {
		return bad(err.Error())
	}
	return s, b, nil
}

// ErrNoRoot: no node holds a root record: the drive has never shipped its
// metadata (or the nodes are not this drive's).
var ErrNoRoot = errors.New("no root record on any node")

// NoRootError: no node that answered holds a root record (or none
// answered), and some could not be read, so whether the drive ever
// shipped its metadata is not known: its root record may be only on
// those. (With every node answering, and none holding one, the error is
// ErrNoRoot.)
type NoRootError struct {
	Answered int      // nodes that answered with no root record
	Unread   []string // the nodes that could not be read
	Err      error    // why, each named by its node
}

func (e *NoRootError) Error() string {
	return fmt.Sprintf("no root record on the %d nodes that answered, and %d could not be read: %v", e.Answered, len(e.Unread), e.Err)
}

func (e *NoRootError) Unwrap() error { return e.Err }
