package journal

import (
	"bytes"
	"testing"
)

// TestMapMemo: one-block reads remember the block map row, and no read
// after a commit that changed the file sees the row from before it.
func TestMapMemo(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, nil)
		j := e.j
		bs := int(e.opts.BlockSize)
		a := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
		j.OpenFile(a.Ino)
		defer j.ReleaseFile(a.Ino)
		write := func(fill byte, off int) {
			t.Helper()
			must[int](t)(j.WriteAt(bg, a.Ino, bytes.Repeat([]byte{fill}, bs), int64(off)))
			if err := j.Flush(bg, a.Ino); err != nil {
				t.Fatal(err)
			}
		}
		read := func(off int) byte {
			t.Helper()
			p := make([]byte, 4096)
			if n, err := j.ReadAt(bg, a.Ino, p, int64(off)); err != nil || n != len(p) {
				t.Fatalf("read at %d: %d, %v", off, n, err)
			}
			if !bytes.Equal(p, bytes.Repeat(p[:1], len(p))) {
				t.Fatalf("read at %d: mixed bytes", off)
			}
			return p[0]
		}
		write('a', 0)
		write('b', 2*bs) // block 1 is a hole
		for range 3 {
			if read(100) != 'a' || read(2*bs+100) != 'b' || read(bs+100) != 0 {
				t.Fatal("wrong bytes before any change")
			}
		}
		n := j.it.getInode(a.Ino)
		memo := len(n.memo)
		j.it.putInode(n)
		if memo == 0 {
			t.Fatal("one-block reads remembered no block map row")
		}
		// Each change is a commit; the next read must see it.
		write('c', 0)
		write('d', bs)
		if got := read(100); got != 'c' {
			t.Fatalf("read after an overwrite: %q, want 'c'", got)
		}
		if got := read(bs + 100); got != 'd' {
			t.Fatalf("read of a filled hole: %q, want 'd'", got)
		}
		size := uint64(bs / 2)
		must[Attr](t)(j.SetAttr(bg, a.Ino, SetAttr{Size: &size}))
		size = uint64(3 * bs)
		must[Attr](t)(j.SetAttr(bg, a.Ino, SetAttr{Size: &size}))
		if got := read(2*bs + 100); got != 0 {
			t.Fatalf("read after truncate and extend: %q, want zeros", got)
		}
	})
}
