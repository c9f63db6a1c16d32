package remote

import (
	"encoding/hex"
	"fmt"

	"github.com/meshdrive/meshdrive/remote/shard"
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

// maxSegmentSize bounds SegmentInfo.Size (segments are SegmentSize, tens
// of MiB; a metadata record's at most a few GiB).
const maxSegmentSize = 1 << 40

// Check reports whether s is consistent enough to index its shards and
// size buffers from: the coding within shard.MaxShards and one node
// entry a shard, sizes in range, k shards holding Size, a chunk size a
// shard header can have. A row read back from the journal's database or
// a record decoded from the grid passes it before use, so that a damaged
// one is an error, not a division by zero or a huge allocation.
func (s *SegmentInfo) Check() error {
	switch {
	case s.K < 1 || s.K > shard.MaxShards || s.M < 0 || s.M > shard.MaxShards-s.K:
		return fmt.Errorf("segment %s: coding k=%d m=%d out of range", s.ID, s.K, s.M)
	case len(s.Nodes) != s.K+s.M:
		return fmt.Errorf("segment %s: %d node entries for k+m=%d shards", s.ID, len(s.Nodes), s.K+s.M)
	case s.Size < 0 || s.Size > maxSegmentSize || s.ShardSize <= 0 || s.ShardSize > maxSegmentSize || s.ShardSize*int64(s.K) < s.Size:
		return fmt.Errorf("segment %s: size %d and shard size %d do not fit k=%d", s.ID, s.Size, s.ShardSize, s.K)
	case s.ChunkSize < shard.MinChunkSize || s.ChunkSize > shard.MaxChunkSize || s.ChunkSize&(s.ChunkSize-1) != 0:
		return fmt.Errorf("segment %s: chunk size %d out of range", s.ID, s.ChunkSize)
	}
	return nil
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
