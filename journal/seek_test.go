package journal

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestSeekWhileWriteBehindCuts: a file written sequentially with gaps of
// whole blocks has its finished blocks cut by write-behind goroutines
// while Seek runs; a block moving from the dirty set to the block map is
// data all the way, never a hole. After every write the walk of
// SEEK_DATA/SEEK_HOLE from 0 must leave every non-zero byte in data, and
// the gaps must be holes.
func TestSeekWhileWriteBehindCuts(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	bs := int64(e.opts.BlockSize)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o100644, 0, 0, 0))
	var want []byte
	chunk := bytes.Repeat([]byte{0xa5}, 16<<10)
	off := int64(0)
	for blk := range 24 {
		if blk%3 == 2 {
			off += bs // a gap of a whole block: a hole
			continue
		}
		for range bs / int64(len(chunk)) {
			must[int](t)(e.j.WriteAt(bg, a.Ino, chunk, off))
			off += int64(len(chunk))
			want = append(want, make([]byte, off-int64(len(want)))...)
			copy(want[off-int64(len(chunk)):], chunk)
			holes := seekWalk(t, e.j, a.Ino, want)
			if blk >= 2 && holes == 0 {
				t.Fatalf("no hole reported in a file of %d bytes with a gap block", len(want))
			}
		}
	}
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	if n := seekWalk(t, e.j, a.Ino, want); n != 7 { // the gap at block 23 is past the end
		t.Fatalf("after fsync: %d holes, want the 7 gap blocks", n)
	}
}

// seekWalk walks ino with Seek from 0, fails on a non-zero byte of want
// in a reported hole, and returns the holes seen before the end.
func seekWalk(t *testing.T, j *Journal, ino Ino, want []byte) (holes int) {
	t.Helper()
	size := int64(len(want))
	for off := int64(0); off < size; {
		d, err := j.Seek(bg, ino, off, false)
		if errors.Is(err, ErrNoData) {
			d = size
		} else if err != nil || d < off || d >= size {
			t.Fatalf("Seek data from %d of %d bytes: %d, %v", off, size, d, err)
		}
		if i := bytes.IndexByte(want[off:d], 0xa5); i >= 0 {
			t.Fatalf("byte %d is data but lies in the reported hole [%d, %d)", off+int64(i), off, d)
		}
		if d > off {
			holes++
		}
		if d == size {
			break
		}
		h, err := j.Seek(bg, ino, d, true)
		if err != nil || h <= d || h > size {
			t.Fatalf("Seek hole from %d of %d bytes: %d, %v", d, size, h, err)
		}
		off = h
	}
	if _, err := j.Seek(bg, ino, size, false); !errors.Is(err, ErrNoData) {
		t.Fatalf("Seek data at the end: %v, want ErrNoData", err)
	}
	return holes
}
