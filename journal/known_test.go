package journal

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

func randomID(t testing.TB) remote.BlockID {
	var id remote.BlockID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBloom: every id added is maybe there; about 1% of others are.
func TestBloom(t *testing.T) {
	b := newBloom(20_000)
	ids := make([]remote.BlockID, 20_000)
	for i := range ids {
		ids[i] = randomID(t)
		b.add(ids[i])
	}
	for i, id := range ids {
		if !b.mayHave(id) {
			t.Fatalf("id %d was added but the filter says it is absent", i)
		}
	}
	const others = 100_000
	fp := 0
	for range others {
		if b.mayHave(randomID(t)) {
			fp++
		}
	}
	// Sized for 65,536 ids (knownMinIDs) at 10 bits each: far below 1%
	// with 20,000 in it. 3% would mean the hashes are broken.
	if fp > others*3/100 {
		t.Fatalf("%d of %d ids never added are maybe there", fp, others)
	}
}

// waitKnown waits until j's filter of known blocks is built.
func waitKnown(t testing.TB, j *Journal) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); j.known.cur.Load() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the filter of known blocks was not built within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestKnownBlocks: a small new block is sealed without a look-up; a
// block the filter knows is looked up and deduplicated; a block the
// table has and the filter does not (the filter's unsafe-looking error)
// is sealed again and still ends up with one row and every reference;
// and a reopen builds the filter from the table.
func TestKnownBlocks(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour; o.IdleFlush = time.Hour })
	j := e.j
	waitKnown(t, j)
	data := bytes.Repeat([]byte("the same small file, four times\n"), 100)
	id := j.seal.BlockID(data)
	files := 0
	write := func() Ino {
		t.Helper()
		files++
		a := must[Attr](t)(j.Mknod(bg, RootIno, fmt.Sprintf("f%d", files), 0o644, 0, 0, 0))
		j.OpenFile(a.Ino)
		must[int](t)(j.WriteAt(bg, a.Ino, data, 0))
		if err := j.Flush(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(a.Ino)
		applyUnlinks(t, j)
		return a.Ino
	}
	check := func(when string, skipped int64, refs int) {
		t.Helper()
		if got := j.known.skipped.Load(); got != skipped {
			t.Fatalf("%s: %d look-ups skipped, want %d", when, got, skipped)
		}
		if n := queryInt(t, j, `SELECT count(*) FROM blocks`); n != 1 {
			t.Fatalf("%s: %d block rows, want 1", when, n)
		}
		if r := queryInt(t, j, `SELECT refcount FROM blocks WHERE id = ?`, id[:]); r != refs {
			t.Fatalf("%s: refcount %d, want %d", when, r, refs)
		}
	}
	inos := []Ino{write()}
	check("a new block", 1, 1)
	inos = append(inos, write())
	check("the same block again", 1, 2)
	// The filter forgets the block: the next flush seals it again, and
	// the apply takes a reference to the row the table has.
	j.known.cur.Store(newBloom(0))
	inos = append(inos, write())
	check("a block the filter lost", 2, 3)
	for _, ino := range inos {
		if got := readAll(t, j, ino); !bytes.Equal(got, data) {
			t.Fatalf("inode %d reads %d bytes that differ from the %d written", ino, len(got), len(data))
		}
	}
	e.reopen() // checkDB: every refcount matches the block map
	j = e.j
	waitKnown(t, j)
	if !j.known.cur.Load().mayHave(id) {
		t.Fatal("after a reopen, the filter does not have the block in the table")
	}
	inos = append(inos, write())
	check("after a reopen", 0, 4)
}

// BenchmarkKnownBlocks: the cut of a new small block (hash, dedup check,
// seal) with the filter of known blocks and without it (the look-up),
// after 3,000 small files.
//
//	go test -run '^$' -bench KnownBlocks ./journal/
func BenchmarkKnownBlocks(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.BlockSize = 4 << 20; o.IdleFlush = time.Hour })
	j := e.j
	data := bytes.Repeat([]byte("package main // some source text\n"), 150)
	for i := range 3000 {
		smallFile(b, j, i, data)
	}
	waitKnown(b, j)
	filter := j.known.cur.Load()
	for _, on := range []bool{true, false} {
		b.Run(map[bool]string{true: "filter", false: "lookup"}[on], func(b *testing.B) {
			if on {
				j.known.cur.Store(filter)
			} else {
				j.known.cur.Store(nil)
			}
			plain := slices.Clone(data)
			for i := 0; b.Loop(); i++ {
				binary.LittleEndian.PutUint64(plain[8:], uint64(i)+1<<40) // new each time
				if _, err := j.fl.cutPlain(bg, 0, slices.Clone(plain), false, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	j.known.cur.Store(filter)
}
