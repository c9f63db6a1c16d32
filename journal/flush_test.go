package journal

import (
	"bytes"
	"os"
	"path/filepath"
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
