package remote

import (
	"encoding/hex"
	"fmt"
)

// BlockID names a block: a keyed hash of its plaintext (the key is the
// drive's own), so identical blocks of one drive share an id and a node
// learns nothing from it.
type BlockID [32]byte

func (id BlockID) String() string { return hex.EncodeToString(id[:]) }

// SegmentID names a segment. It is random, not derived from content.
type SegmentID [16]byte

func (id SegmentID) String() string { return hex.EncodeToString(id[:]) }

// ParseSegmentID parses the hex form written by String.
func ParseSegmentID(s string) (SegmentID, error) {
	var id SegmentID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("bad segment id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// ShardName is the object name of shard i of a segment on a node.
func ShardName(seg SegmentID, i int) string { return fmt.Sprintf("shards/%s.%d", seg, i) }

// SegmentInfo is what a reader needs to find a segment's bytes: its coding,
// sizes and where each shard lives. The journal stores it.
type SegmentInfo struct {
	ID SegmentID
	K  int
	M  int
	// Size is the segment's data length (the packed sealed blocks).
	Size int64
	// ShardSize is the payload length of every shard.
	ShardSize int64
	// ChunkSize is the shards' checksum chunk size.
	ChunkSize int
	// Nodes[i] is the name of the node holding shard i, or "" when that
	// shard is missing and repair owes it.
	Nodes []string
}

// Stored counts the shards that are on a node.
func (s *SegmentInfo) Stored() int {
	n := 0
	for _, name := range s.Nodes {
		if name != "" {
			n++
		}
	}
	return n
}

// BlockRef locates one sealed block inside a segment.
type BlockRef struct {
	ID     BlockID
	Seg    *SegmentInfo
	Offset int64 // of the sealed block in the segment's data
	Length int64 // of the sealed block
}
