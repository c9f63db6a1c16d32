package journal

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A flush of many blocks stages them several at a time; repeated blocks
// in one flush are stored once, holes not at all, and no temporary file
// survives.
func TestFlushManyBlocksParallel(t *testing.T) { bubble(t, testFlushManyBlocksParallel) }

func testFlushManyBlocksParallel(t *testing.T) {
	e := newEnv(t, nil)
	bs := int(e.opts.BlockSize)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "many", 0o100644, 0, 0, 0))
	// Blocks: 0-4 one pattern, 5 a hole, 6-10 another pattern, 11-15 unique.
	const nblocks = 16
	data := make([]byte, nblocks*bs)
	for i := range nblocks {
		blk := data[i*bs : (i+1)*bs]
		switch {
		case i < 5:
			copy(blk, bytes.Repeat([]byte("first pattern "), bs/14+1))
		case i == 5:
		case i < 11:
			copy(blk, bytes.Repeat([]byte("second pattern "), bs/15+1))
		default:
			for k := range blk {
				blk[k] = byte(i*31 + k*7 + k>>9)
			}
		}
	}
	must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	var blocks int
	if err := e.j.db.QueryRow(`SELECT count(*) FROM blocks`).Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	if want := 2 + 5; blocks != want {
		t.Errorf("%d distinct blocks stored, want %d", blocks, want)
	}
	var mapped int
	if err := e.j.db.QueryRow(`SELECT count(*) FROM blockmap WHERE ino = ?`, a.Ino).Scan(&mapped); err != nil {
		t.Fatal(err)
	}
	if want := nblocks - 1; mapped != want {
		t.Errorf("%d block map rows, want %d (one hole)", mapped, want)
	}
	ents, err := os.ReadDir(filepath.Join(e.opts.Dir, "staging"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), ".tmp") {
			t.Errorf("temporary staging file %s left behind", de.Name())
		}
	}
	e.reopen()
	got := make([]byte, len(data))
	must[int](t)(e.j.ReadAt(bg, a.Ino, got, 0))
	if !bytes.Equal(got, data) {
		t.Fatal("the file read back differs from what was written")
	}
}

// A block sealed by one flush but added by another before the first
// commits (both found it absent) gets a reference, not a second row: the
// insert that incRef tries first for a freshly sealed block gives way to
// the reference update.
func TestIncRefSealedBlockAddedMeanwhile(t *testing.T) {
	bubble(t, testIncRefSealedBlockAddedMeanwhile)
}

func testIncRefSealedBlockAddedMeanwhile(t *testing.T) {
	e := newEnv(t, nil)
	data := bytes.Repeat([]byte("sealed twice "), 300)
	c, err := e.j.fl.cutPlain(bg, 0, bytes.Clone(data), false, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.inline == nil && c.tmp == "" {
		t.Fatal("the block was not sealed: the test needs it absent")
	}
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "one", 0o100644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
	if err := e.j.Flush(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	rollback := errors.New("roll back")
	e.j.wmu.Lock()
	err = e.j.c.txLocked(bg, func(tx *sql.Tx) error {
		var fr freed
		it, renamed, err := e.j.fl.incRef(bg, tx, &c, 1, &fr)
		if err != nil {
			return err
		}
		if it != nil || renamed {
			t.Errorf("incRef of a block present: item %v, renamed %v", it, renamed)
		}
		var refs, staged int
		if err := tx.QueryRow(`SELECT refcount FROM blocks WHERE id = ?`, c.id[:]).Scan(&refs); err != nil {
			return err
		}
		if err := tx.QueryRow(`SELECT count(*) FROM staged WHERE id = ?`, c.id[:]).Scan(&staged); err != nil {
			return err
		}
		if refs != 2 || staged != 1 {
			t.Errorf("refcount %d, staged rows %d; want 2 and 1", refs, staged)
		}
		return rollback
	})
	e.j.wmu.Unlock()
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, e.j, a.Ino), data) {
		t.Fatal("file differs")
	}
}

// TestDedupSmallBlocks: copies of a small block (kept in the database,
// not in a staging file) end as one row with a reference per file and
// one staged copy, and the block lives until its last file goes.
func TestDedupSmallBlocks(t *testing.T) { bubble(t, testDedupSmallBlocks) }

func testDedupSmallBlocks(t *testing.T) {
	e := newEnv(t, nil)
	data := make([]byte, 5000)
	fillRand(9, data)
	var inos []Ino
	for _, name := range []string{"one", "two", "three"} {
		f := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
		must[int](t)(e.j.WriteAt(bg, f.Ino, data, 0))
		if err := e.j.Flush(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, f.Ino)
	}
	applyUnlinks(t, e.j) // the closes' deferred flushes
	var blocks, refs, staged int
	e.j.db.QueryRow(`SELECT count(*), coalesce(max(refcount), 0) FROM blocks`).Scan(&blocks, &refs)
	e.j.db.QueryRow(`SELECT count(*) FROM staged`).Scan(&staged)
	if blocks != 1 || refs != 3 || staged > 1 {
		t.Fatalf("3 copies of a small block: %d block rows, refcount %d, %d staged", blocks, refs, staged)
	}
	for _, ino := range inos {
		if !bytes.Equal(readAll(t, e.j, ino), data) {
			t.Fatal("copy differs")
		}
	}
	for _, name := range []string{"one", "two"} {
		if err := e.j.Unlink(bg, RootIno, name); err != nil {
			t.Fatal(err)
		}
	}
	e.reap()
	e.j.db.QueryRow(`SELECT count(*), coalesce(max(refcount), 0) FROM blocks`).Scan(&blocks, &refs)
	if blocks != 1 || refs != 1 || !bytes.Equal(readAll(t, e.j, inos[2]), data) {
		t.Fatalf("after two unlinks: %d block rows, refcount %d", blocks, refs)
	}
}

// TestStagedBytesFreedAndStagedAgain: a flush that swaps a file's two
// staged blocks drops the first (its last reference goes) and stages it
// again in the same transaction. The staged bytes the quota and the
// uploader count stay those of the queue, not the dropped copy's on top.
func TestStagedBytesFreedAndStagedAgain(t *testing.T) {
	e := newEnv(t, nil)
	e.g.down.Store(true) // keep the blocks staged
	bs := int(e.j.bs)
	d := make([]byte, 2*bs)
	fillRand(81, d)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(bg, f.Ino, d, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	swapped := append(slices.Clone(d[bs:]), d[:bs]...)
	must[int](t)(e.j.WriteAt(bg, f.Ino, swapped, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	checkStagedB(t, e.j)
	if got := readAll(t, e.j, f.Ino); !bytes.Equal(got, swapped) {
		t.Fatal("the file does not read back swapped")
	}
}

// checkStagedB checks that the staged bytes the journal counts are the
// queue's.
func checkStagedB(t *testing.T, j *Journal) {
	t.Helper()
	j.qmu.Lock()
	defer j.qmu.Unlock()
	var sum int64
	for _, it := range j.queue {
		sum += it.sealedLen
	}
	if j.stagedB != sum {
		t.Errorf("the journal counts %d staged bytes; its queue of %d blocks holds %d", j.stagedB, len(j.queue), sum)
	}
}
