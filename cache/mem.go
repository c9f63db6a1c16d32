package cache

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"

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

// Scan resistance (both tiers): a segmented LRU in the manner of 2Q. New
// entries enter a probation segment; an entry used again later moves to a
// protected segment that holds at most protectedShare of the budget, and
// whose least recently used entries drop back to probation when it is
// full. Eviction takes probation's oldest first. A one-pass read of a tree
// larger than the cache (grep -r, a backup) only churns probation, so what
// is read again and again survives it.
const (
	// protectedNum/protectedDen of a tier's budget may be protected.
	protectedNum, protectedDen = 3, 4
	// correlatedPeriod: a use of an entry counts as "again" only this
	// long after it came in (2Q's correlated reference period). The
	// reads of one pass over a file hit its block many times in a row
	// (each FUSE request, the read-ahead that brought it in); those are
	// one use.
	correlatedPeriod = 500 * time.Millisecond
	// ghostKeys bounds the keys remembered after eviction from probation
	// (2Q's A1out): one of them put again goes straight to protected.
	ghostKeys = 1 << 14
)

// memEntry is one cached plaintext and when it came in (clock
// nanoseconds).
type memEntry struct {
	p    *buf
	born int64
}

// buf is a plaintext the memory tier holds, counted: each holder (the
// tier while it keeps it, a flight until its waiters have theirs, each
// reader between get and release) has one reference. A buffer that came
// from the cache's pool of block buffers goes back to it when the last
// reference is released, unless it escaped: ReadBlock hands slices out to
// holders the count does not know, so an escaped buffer is left to the
// collector. A release missed is therefore harmless (the buffer is
// collected, not reused); a release too many is not, so every get is
// released exactly once.
type buf struct {
	b       []byte
	pooled  bool // from the block pool: goes back to it
	refs    atomic.Int32
	escaped atomic.Bool
}

// newBuf returns b as a buffer with one reference, the caller's.
func newBuf(b []byte, pooled bool) *buf {
	p := &buf{b: b, pooled: pooled}
	p.refs.Store(1)
	return p
}

// escape marks p handed out beyond the count: it is never reused. The
// caller holds a reference.
func (p *buf) escape() { p.escaped.Store(true) }

// mem is the memory tier: plaintext blocks and frames in a segmented LRU
// bounded by bytes. simplelru counts entries, so mem keeps its own byte
// totals and evicts until they fit the budget again.
//
// The slices it stores are owned by mem from put on and handed out shared:
// nobody may modify them.
type mem struct {
	budget    int64 // <= 0: the tier is disabled
	evictions *atomic.Uint64
	recycle   func([]byte)     // takes back a pooled buffer nobody holds (nil: none)
	now       func() time.Time // the clock (tests set their own)

	mu        sync.Mutex // mu guards the fields below; it is taken before disk.mu, never after
	probation *simplelru.LRU[key, memEntry]
	protected *simplelru.LRU[key, memEntry]
	ghost     ghosts
	probB     int64 // bytes in probation
	protB     int64 // bytes in protected
}

func newLRU[V any](size int) *simplelru.LRU[key, V] {
	lru, err := simplelru.NewLRU[key, V](size, nil)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return lru
}

func newMem(budget int64, evictions *atomic.Uint64, now func() time.Time) *mem {
	// The entry bound is effectively unlimited: bytes are what count.
	return &mem{budget: budget, evictions: evictions, now: now,
		probation: newLRU[memEntry](math.MaxInt), protected: newLRU[memEntry](math.MaxInt)}
}

// get returns the block with a reference for the caller (release it) and
// marks it used. promoted reports that this use moved it to the protected
// segment (the disk tier hears of it).
func (m *mem) get(id key) (p *buf, ok, promoted bool) {
	if m.budget <= 0 {
		return nil, false, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.useLocked(id)
}

// useLocked marks id used (promoting it when the use is a repeated one).
// The caller gets a reference.
func (m *mem) useLocked(id key) (p *buf, ok, promoted bool) {
	if e, ok := m.protected.Get(id); ok {
		e.p.refs.Add(1)
		return e.p, true, false
	}
	e, ok := m.probation.Peek(id)
	if !ok {
		return nil, false, false
	}
	if m.now().UnixNano()-e.born < int64(correlatedPeriod) {
		m.probation.Get(id) // most recent in probation
		e.p.refs.Add(1)
		return e.p, true, false
	}
	m.probation.Remove(id)
	m.probB -= int64(len(e.p.b))
	m.protectLocked(id, e)
	e.p.refs.Add(1)
	return e.p, true, true
}

// release drops one reference to p; the last one sends a pooled buffer
// that did not escape back to the pool.
func (m *mem) release(p *buf) {
	if p.refs.Add(-1) == 0 && p.pooled && !p.escaped.Load() && m.recycle != nil {
		m.recycle(p.b)
	}
}

// protectLocked adds e to protected and drops protected's oldest back to
// probation while it holds more than its share.
func (m *mem) protectLocked(id key, e memEntry) {
	m.protected.Add(id, e)
	m.protB += int64(len(e.p.b))
	limit := m.budget * protectedNum / protectedDen
	for m.protB > limit && m.protected.Len() > 1 {
		k, old, _ := m.protected.RemoveOldest()
		m.protB -= int64(len(old.p.b))
		old.born = m.now().UnixNano() // a fresh probation entry
		m.probation.Add(k, old)
		m.probB += int64(len(old.p.b))
	}
}

func (m *mem) contains(id key) bool {
	if m.budget <= 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.protected.Contains(id) || m.probation.Contains(id)
}

// put stores p under id (the tier takes a reference of its own; the
// caller keeps its) and evicts until the tier fits its budget:
// probation's oldest first. A block larger than the whole budget is not
// kept. An id evicted from probation not long ago comes back protected.
func (m *mem) put(id key, p *buf) {
	size := int64(len(p.b))
	if m.budget <= 0 || size > m.budget {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok, _ := m.useLocked(id); ok {
		// Same id, same content (ids are content hashes): keep the old
		// buffer, which readers may already hold, and just mark it used.
		m.release(old)
		return
	}
	p.refs.Add(1)
	e := memEntry{p: p, born: m.now().UnixNano()}
	if m.ghost.remove(id) {
		m.protectLocked(id, e)
	} else {
		m.probation.Add(id, e)
		m.probB += size
	}
	m.evictLocked(m.probB + m.protB - m.budget)
}

// evictLocked evicts until n bytes are gone or the tier is empty:
// probation's oldest first, then protected's. It returns the bytes
// evicted. m.mu held.
func (m *mem) evictLocked(n int64) int64 {
	var freed int64
	for freed < n {
		if k, v, ok := m.probation.RemoveOldest(); ok {
			m.probB -= int64(len(v.p.b))
			freed += int64(len(v.p.b))
			m.ghost.add(k)
			m.release(v.p)
		} else if _, v, ok := m.protected.RemoveOldest(); ok {
			m.protB -= int64(len(v.p.b))
			freed += int64(len(v.p.b))
			m.release(v.p)
		} else {
			break
		}
		m.evictions.Add(1)
	}
	return freed
}

// shed evicts at least n bytes, or all the tier holds, and returns the
// bytes evicted. The budget stays: later reads fill the tier again.
func (m *mem) shed(n int64) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.evictLocked(n)
}

// remove drops id if present.
func (m *mem) remove(id key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.probation.Peek(id); ok {
		m.probation.Remove(id)
		m.probB -= int64(len(v.p.b))
		m.release(v.p)
	}
	if v, ok := m.protected.Peek(id); ok {
		m.protected.Remove(id)
		m.protB -= int64(len(v.p.b))
		m.release(v.p)
	}
}

// clear drops every block for which keep returns false. keep is called with
// m.mu held and must not call back into mem.
func (m *mem) clear(keep func(remote.BlockID) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ghost.purge()
	for _, seg := range []struct {
		lru   *simplelru.LRU[key, memEntry]
		bytes *int64
	}{{m.probation, &m.probB}, {m.protected, &m.protB}} {
		for _, id := range seg.lru.Keys() {
			if keep(id.id) {
				continue
			}
			if v, ok := seg.lru.Peek(id); ok {
				seg.lru.Remove(id)
				*seg.bytes -= int64(len(v.p.b))
				m.release(v.p)
			}
		}
	}
}

func (m *mem) stats() (bytes, blocks int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.probB + m.protB, int64(m.probation.Len() + m.protected.Len())
}

// ghosts is 2Q's A1out: the keys last evicted from probation, at most
// ghostKeys of them, first in first out. It keeps a 64-bit fingerprint of
// each key, not the key: an LRU of 16,384 keys was 5 MB of live heap (an
// entry of 96 bytes and a map slot of 48 per key), this is about 0.5 MB.
// Two keys with one fingerprint only make a block protected that would
// have been on probation.
type ghosts struct {
	ring []uint64          // fingerprints in the order added; allocated on first use
	next int               // the slot the next add overwrites
	n    map[uint64]uint32 // how many live slots hold each fingerprint
}

func fingerprint(k key) uint64 {
	return binary.LittleEndian.Uint64(k.id[:8]) ^ uint64(uint32(k.off))<<32 ^ uint64(uint32(k.n))
}

func (g *ghosts) add(k key) {
	if g.ring == nil {
		g.ring = make([]uint64, 0, ghostKeys)
		g.n = make(map[uint64]uint32)
	}
	fp := fingerprint(k)
	if len(g.ring) < cap(g.ring) {
		g.ring = append(g.ring, fp)
	} else {
		g.forget(g.ring[g.next])
		g.ring[g.next] = fp
		g.next = (g.next + 1) % len(g.ring)
	}
	g.n[fp]++
}

// forget drops one slot's count of fp.
func (g *ghosts) forget(fp uint64) {
	switch c := g.n[fp]; c {
	case 0:
	case 1:
		delete(g.n, fp)
	default:
		g.n[fp] = c - 1
	}
}

// remove forgets k and reports whether it was remembered. Its slots stay
// in the ring until overwritten; forget then drops nothing, or a later add
// of k a little early (a ghost is a hint, not a promise).
func (g *ghosts) remove(k key) bool {
	fp := fingerprint(k)
	if g.n[fp] == 0 {
		return false
	}
	delete(g.n, fp)
	return true
}

func (g *ghosts) purge() { *g = ghosts{} }
