package cache

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

func ghostKey(i int) key {
	var id remote.BlockID
	binary.LittleEndian.PutUint64(id[:], uint64(i)*0x9e3779b97f4a7c15)
	return key{id, int32(i % 7), 4096}
}

// TestGhostsFirstInFirstOut: the last ghostKeys keys added are
// remembered, older ones are not, and remove forgets a key once.
func TestGhostsFirstInFirstOut(t *testing.T) {
	var g ghosts
	if g.remove(ghostKey(1)) {
		t.Fatal("an empty ghost list remembers a key")
	}
	const extra = 1000
	for i := range ghostKeys + extra {
		g.add(ghostKey(i))
	}
	for i := range extra {
		if g.remove(ghostKey(i)) {
			t.Fatalf("key %d of %d added is still remembered, past the %d kept", i, ghostKeys+extra, ghostKeys)
		}
	}
	for _, i := range []int{extra, extra + 1, ghostKeys, ghostKeys + extra - 1} {
		if !g.remove(ghostKey(i)) {
			t.Fatalf("key %d, among the last %d added, is not remembered", i, ghostKeys)
		}
		if g.remove(ghostKey(i)) {
			t.Fatalf("key %d is remembered after remove", i)
		}
	}
	if len(g.n) != ghostKeys-4 || len(g.ring) != ghostKeys {
		t.Fatalf("%d fingerprints counted in a ring of %d, want %d in %d", len(g.n), len(g.ring), ghostKeys-4, ghostKeys)
	}
	g.purge()
	if g.remove(ghostKey(ghostKeys)) || g.n != nil {
		t.Fatal("purge kept keys")
	}
}

// TestMemGhostComesBackProtected: a block evicted from probation and put
// again soon after enters protected, so a scan of new blocks that passes
// through probation afterwards does not evict it.
func TestMemGhostComesBackProtected(t *testing.T) {
	var ev atomic.Uint64
	m := newMem(4*100, &ev, time.Now)
	b := make([]byte, 100)
	m.put(ghostKey(0), b)
	for i := 1; i <= 4; i++ { // evicts 0 from probation
		m.put(ghostKey(i), b)
	}
	if m.contains(ghostKey(0)) {
		t.Fatal("block 0 was not evicted by 4 newer ones in a tier of 4")
	}
	m.put(ghostKey(0), b) // a ghost: protected
	for i := 100; i < 110; i++ {
		m.put(ghostKey(i), b)
	}
	if !m.contains(ghostKey(0)) {
		t.Fatal("block 0, put again soon after its eviction, did not survive a scan of 10 new blocks")
	}
}
