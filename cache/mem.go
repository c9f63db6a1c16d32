package cache

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/meshdrive/meshdrive/remote"
)

// key names what mem holds: a whole block (off == wholeBlock) or the
// plaintext bytes [off, off+n) of one frame of it. Frames are named by
// their bytes, not their index, so copies of one block sealed with other
// frame sizes never answer for each other.
type key struct {
	id     remote.BlockID
	off, n int32
}

// wholeBlock is the off of a key that names the whole block.
const wholeBlock = -1

func blockKey(id remote.BlockID) key { return key{id, wholeBlock, 0} }

// frameKey names frame i of f, a frame index of block id.
func frameKey(id remote.BlockID, f *remote.Frames, i int) key {
	off, n := f.Plain(i)
	return key{id, int32(off), int32(n)}
}

// mem is the memory tier: plaintext blocks and frames in an LRU bounded by
// bytes.
// simplelru counts entries, so mem keeps its own byte total and evicts the
// oldest entries until the total fits the budget again.
//
// The slices it stores are owned by mem from put on and handed out shared:
// nobody may modify them.
type mem struct {
	budget    int64 // <= 0: the tier is disabled
	evictions *atomic.Uint64

	mu    sync.Mutex // mu guards the fields below; it is taken before disk.mu, never after
	lru   *simplelru.LRU[key, []byte]
	bytes int64
}

func newMem(budget int64, evictions *atomic.Uint64) *mem {
	// The entry bound is effectively unlimited: bytes are what count.
	lru, err := simplelru.NewLRU[key, []byte](math.MaxInt, nil)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return &mem{budget: budget, evictions: evictions, lru: lru}
}

// get returns the block and marks it recently used.
func (m *mem) get(id key) ([]byte, bool) {
	if m.budget <= 0 {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Get(id)
}

func (m *mem) contains(id key) bool {
	if m.budget <= 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Contains(id)
}

// put stores b under id (b is owned by mem from now on) and evicts the
// least recently used blocks until the tier fits its budget. A block larger
// than the whole budget is not kept.
func (m *mem) put(id key, b []byte) {
	size := int64(len(b))
	if m.budget <= 0 || size > m.budget {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.lru.Get(id); ok {
		// Same id, same content (ids are content hashes): keep the old slice,
		// which readers may already hold, and just mark it used.
		return
	}
	m.lru.Add(id, b)
	m.bytes += size
	for m.bytes > m.budget {
		_, v, ok := m.lru.RemoveOldest()
		if !ok {
			break
		}
		m.bytes -= int64(len(v))
		m.evictions.Add(1)
	}
}

// remove drops id if present.
func (m *mem) remove(id key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.lru.Peek(id); ok {
		m.lru.Remove(id)
		m.bytes -= int64(len(v))
	}
}

// clear drops every block for which keep returns false. keep is called with
// m.mu held and must not call back into mem.
func (m *mem) clear(keep func(remote.BlockID) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range m.lru.Keys() {
		if keep(id.id) {
			continue
		}
		if v, ok := m.lru.Peek(id); ok {
			m.lru.Remove(id)
			m.bytes -= int64(len(v))
		}
	}
}

func (m *mem) stats() (bytes, blocks int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes, int64(m.lru.Len())
}
