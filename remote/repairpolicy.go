package remote

import (
	"cmp"
	"time"
)

// RepairPolicy is when the drive rebuilds a segment's missing shards and
// which segments go first. The drive's repair (journal/repair) follows
// it, and meshsim simulates it, so the durability meshsim reports
// is the one this policy gives. The zero value is the default: repair as
// soon as any shard is missing.
//
// A repair reads k stored shards, rebuilds every shard missing when it
// writes, and places each rebuilt shard with the segment's Placement, the
// surviving holders marked with Hold.
type RepairPolicy struct {
	// Below: a segment is owed repair when fewer than Below of its n
	// shards are stored. 0 means n (any missing shard); a smaller value
	// saves traffic on shards lost for a short while, at the cost of
	// durability (meshsim shows how much).
	Below int
}

// Needs reports whether a segment with stored of its k+m shards is owed
// repair.
func (p RepairPolicy) Needs(stored, k, m int) bool {
	below := p.Below
	if below <= 0 || below > k+m {
		below = k + m
	}
	return stored < below
}

// RepairItem is a segment owed repair, as the order sees it.
type RepairItem struct {
	K      int       // data shards: any K rebuild the segment
	Stored int       // shards stored now
	Since  time.Time // when the segment first lacked a shard
}

// Before reports whether a is repaired before b: the most endangered
// first (fewest shards to spare, Stored-K), then the one degraded the
// longest. It is a strict weak order, for sort.Slice or a heap.
func (p RepairPolicy) Before(a, b RepairItem) bool {
	if c := cmp.Compare(a.Stored-a.K, b.Stored-b.K); c != 0 {
		return c < 0
	}
	return a.Since.Before(b.Since)
}
