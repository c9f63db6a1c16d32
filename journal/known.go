package journal

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/meshdrive/meshdrive/remote"
)

// Known blocks. The flush of a small file looks its block up before it
// seals it (cutPlain): a block the journal has is only referenced again.
// The look-up is a query, about 30 µs here, for a block that is almost
// always new (cp -a makes 11,000 of them). So the journal keeps a Bloom
// filter of the block ids in table blocks, and a small block the filter
// has never seen is sealed without the query.
//
// The filter is a hint, and both of its errors are safe. One that says
// "maybe" of a new block costs the query, as before. One that says "no"
// of a block the table has (a row inserted while the filter was being
// built, say) costs a seal that was not needed: incRef inserts the row
// with ON CONFLICT DO NOTHING, and takes a reference to the row there
// instead, as it does for a block another flush added since the look-up.
// Only blocks small enough for table staged skip the query: a big one
// is staged in a file of its own under the block's name (stageDirect),
// which must not replace the file of a block already staged.
//
// Built from table blocks in the background after Open (until then,
// every block is looked up), and again when it holds twice the ids it
// was sized for; incRef adds each row it inserts. Ids of rows deleted
// since stay in it ("maybe": a query).

const (
	knownBitsPer = 10 // bits per id: about 1% of new blocks are looked up
	knownHashes  = 7
	knownMinIDs  = 1 << 16
)

// bloom is a fixed-size Bloom filter of block ids, safe for concurrent
// use. Block ids are keyed hashes, so their bytes serve as the hashes.
type bloom struct {
	bits  []atomic.Uint64
	mask  uint64 // len(bits)*64 - 1 (a power of two)
	ids   int    // sized for
	added atomic.Int64
}

func newBloom(ids int) *bloom {
	ids = max(ids, knownMinIDs)
	n := uint64(1)
	for n < uint64(ids*knownBitsPer) {
		n <<= 1
	}
	return &bloom{bits: make([]atomic.Uint64, n/64), mask: n - 1, ids: ids}
}

func (b *bloom) add(id remote.BlockID) {
	h1, h2 := binary.LittleEndian.Uint64(id[:8]), binary.LittleEndian.Uint64(id[8:16])|1
	for i := range uint64(knownHashes) {
		bit := (h1 + i*h2) & b.mask
		b.bits[bit/64].Or(1 << (bit % 64))
	}
	b.added.Add(1)
}

func (b *bloom) mayHave(id remote.BlockID) bool {
	h1, h2 := binary.LittleEndian.Uint64(id[:8]), binary.LittleEndian.Uint64(id[8:16])|1
	for i := range uint64(knownHashes) {
		bit := (h1 + i*h2) & b.mask
		if b.bits[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// knownBlocks is the filter and its builds, a part of shared.
type knownBlocks struct {
	cur atomic.Pointer[bloom] // nil until the first build is done
	// build builds a filter from table blocks (nil: never; a read-only
	// journal). Set by Open.
	build func(*knownBlocks)
	mu    sync.Mutex // guards next and building
	// next is the filter being built: ids added meanwhile go to it too.
	next     *bloom
	building bool
	wg       sync.WaitGroup // the building goroutine; Close waits
	// skipped counts look-ups the filter spared (tests, benchmarks).
	skipped atomic.Int64
}

// absent reports whether the filter is sure id is not in table blocks.
func (k *knownBlocks) absent(id remote.BlockID) bool {
	b := k.cur.Load()
	return b != nil && !b.mayHave(id)
}

// add notes a row of id inserted into table blocks.
func (k *knownBlocks) add(id remote.BlockID) {
	if b := k.cur.Load(); b != nil {
		b.add(id)
		if b.added.Load() > int64(2*b.ids) {
			k.buildSoon()
		}
	}
	k.mu.Lock()
	if k.next != nil {
		k.next.add(id)
	}
	k.mu.Unlock()
}

// buildSoon starts a build of the filter unless one runs.
func (k *knownBlocks) buildSoon() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.building || k.build == nil {
		return
	}
	k.building = true
	k.wg.Add(1)
	build := k.build
	go func() {
		defer k.wg.Done()
		build(k)
	}()
}

// begin makes next a filter sized for ids, which add fills from here on.
func (k *knownBlocks) begin(ids int) *bloom {
	b := newBloom(ids)
	k.mu.Lock()
	k.next = b
	k.mu.Unlock()
	return b
}

// end ends a build: b (nil: it failed) becomes the filter.
func (k *knownBlocks) end(b *bloom) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b != nil {
		k.cur.Store(b)
	}
	k.next = nil
	k.building = false
}

// buildKnown builds the filter of known blocks from table blocks, on a
// pool connection, until ctx ends.
func (j *flusher) buildKnown(ctx context.Context, k *knownBlocks) {
	var b *bloom
	defer func() { k.end(b) }()
	var n int
	if err := j.qrow(ctx, `SELECT count(*) FROM blocks`).Scan(&n); err != nil {
		j.log.Debug("journal: count blocks for the filter of known blocks", "err", err)
		return
	}
	next := k.begin(n + n/4)
	rows, err := j.db.QueryContext(ctx, `SELECT id FROM blocks`)
	if err != nil {
		j.log.Debug("journal: read blocks for the filter of known blocks", "err", err)
		return
	}
	defer rows.Close()
	var raw []byte
	for rows.Next() {
		if err := rows.Scan(&raw); err != nil {
			return
		}
		var id remote.BlockID
		if len(raw) == len(id) {
			copy(id[:], raw)
			next.add(id)
		}
	}
	if rows.Err() != nil {
		return
	}
	b = next
}
