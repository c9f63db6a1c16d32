package journal

import (
	"bytes"
	"testing"
)

// GridBlocks lists a file's blocks only once they are on the grid, in file
// order, with their plaintext lengths.
func TestGridBlocks(t *testing.T) { bubble(t, testGridBlocks) }

func testGridBlocks(t *testing.T) {
	e := newEnv(t, nil)
	j := e.j
	f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	bs := int(e.opts.BlockSize)
	data := append(bytes.Repeat([]byte("a"), bs), bytes.Repeat([]byte("b"), bs/2)...)
	if _, err := j.WriteAt(bg, f.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if gb, err := j.GridBlocks(bg, f.Ino); err != nil || len(gb) != 0 {
		t.Fatalf("dirty file: GridBlocks = %v, %v; want none", gb, err)
	}
	if err := j.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	if err := j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	gb, err := j.GridBlocks(bg, f.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if len(gb) != 2 || gb[0].Len != int64(bs) || gb[1].Len != int64(bs/2) || gb[0].ID == gb[1].ID {
		t.Fatalf("durable file: GridBlocks = %+v; want 2 distinct blocks of %d and %d bytes", gb, bs, bs/2)
	}
	if st, err := j.Status(bg, f.Ino); err != nil || st.Blocks-st.PendingBlocks != len(gb) {
		t.Errorf("Status %+v (%v) disagrees with %d grid blocks", st, err, len(gb))
	}
	if _, err := j.GridBlocks(bg, f.Ino+1000); err != nil {
		t.Errorf("unknown inode: %v", err)
	}
}
