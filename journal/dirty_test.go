package journal

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dirtyFile against a plain byte slice: random writes across the
// in-memory prefix, in-memory blocks and the dirty file, truncates,
// punches of whole blocks and resets; every read must match the model,
// and the budget must come back to zero. Blocks lent to a sealer (lend)
// meanwhile must keep the bytes they had when lent until given back.
func TestDirtyFileModel(t *testing.T) { bubble(t, testDirtyFileModel) }

func testDirtyFileModel(t *testing.T) {
	sawBlocks, sawFile, sawLent := false, false, false
	// Writes take their bytes from a pool of nonzero random bytes at a
	// random offset: filling each one byte by byte made this test most of
	// the journal's time under -race.
	pool := make([]byte, 1<<20)
	pr := rand.New(rand.NewPCG(7, 7))
	for i := range pool {
		pool[i] = byte(pr.Uint32()) | 1
	}
	// -short (the race pass of scripts/test.sh) runs 6 seeds, the plain
	// pass all 20.
	seeds := uint64(20)
	if testing.Short() {
		seeds = 6
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		const bs = 8 << 10
		mb := &memBlocks{}
		d := &dirtyFile{path: filepath.Join(t.TempDir(), "dirty"), bs: bs, mb: mb}
		var model []byte
		type loan struct {
			idx        int64
			buf, bytes []byte // the lent buffer, and its bytes when lent
		}
		var loans []loan
		check := func(step int, op string) {
			t.Helper()
			for _, l := range loans {
				if !bytes.Equal(l.buf, l.bytes) {
					t.Fatalf("seed %d step %d (%s): lent block %d changed", seed, step, op, l.idx)
				}
			}
			n := len(model) + r.IntN(3*bs)
			got := bytes.Repeat([]byte{0xee}, n) // readFull must overwrite every byte
			if err := d.readFull(got, 0); err != nil {
				t.Fatalf("seed %d step %d (%s): read: %v", seed, step, op, err)
			}
			want := make([]byte, n)
			copy(want, model)
			if !bytes.Equal(got, want) {
				i := 0
				for got[i] == want[i] {
					i++
				}
				t.Fatalf("seed %d step %d (%s): differs from the model at offset %d (block %d)", seed, step, op, i, i/bs)
			}
		}
		for step := range 300 {
			var op string
			switch k := r.IntN(10); {
			case k < 6:
				off := r.Int64N(60 * bs)
				if r.IntN(3) == 0 {
					off -= off % bs // block-aligned, as a sequential writer's
				}
				n := 1 + r.IntN(3*bs)
				at := r.IntN(len(pool) - n)
				p := pool[at : at+n : at+n]
				op = "write"
				if _, err := d.WriteAt(p, off); err != nil {
					t.Fatal(err)
				}
				if end := off + int64(len(p)); end > int64(len(model)) {
					model = append(model, make([]byte, end-int64(len(model)))...)
				}
				copy(model[off:], p)
			case k < 8:
				size := r.Int64N(int64(len(model)) + 1)
				op = "truncate"
				if err := d.Truncate(size); err != nil {
					t.Fatal(err)
				}
				model = model[:size]
			case k < 9:
				idx := r.Int64N(61)
				op = "punch"
				if err := d.punch(idx*bs, bs); err != nil {
					t.Fatal(err)
				}
				if lo := idx * bs; lo < int64(len(model)) {
					clear(model[lo:min(lo+bs, int64(len(model)))])
				}
			default:
				switch r.IntN(4) {
				case 0:
					op = "reset"
					if err := d.reset(); err != nil {
						t.Fatal(err)
					}
					model = model[:0]
				case 1, 2:
					op = "lend"
					for idx := range d.blocks {
						lo := idx * bs
						l := min(bs, max(int64(len(model))-lo, 0))
						if b := d.lend(idx, int(l)); b != nil {
							want := make([]byte, l)
							if lo < int64(len(model)) {
								copy(want, model[lo:])
							}
							if !bytes.Equal(b, want) {
								t.Fatalf("seed %d step %d: lent block %d does not match the model", seed, step, idx)
							}
							loans = append(loans, loan{idx, b, want})
							sawLent = true
						}
						break
					}
				default:
					if len(loans) > 0 {
						op = "give back"
						i := r.IntN(len(loans))
						d.giveBack(loans[i].idx, loans[i].buf[:0])
						loans = slices.Delete(loans, i, i+1)
					}
				}
			}
			check(step, op)
			sawBlocks = sawBlocks || len(d.blocks) > 0
			sawFile = sawFile || d.f != nil
		}
		d.remove()
		for _, l := range loans {
			d.giveBack(l.idx, l.buf[:0])
		}
		if n := mb.n.Load(); n != 0 {
			t.Fatalf("seed %d: %d in-memory blocks still counted after remove", seed, n)
		}
	}
	if !sawBlocks || !sawFile || !sawLent {
		t.Fatalf("the model run used in-memory blocks %v, a dirty file %v and lent blocks %v: want all", sawBlocks, sawFile, sawLent)
	}
}

// TestDirtyFolderGone: the dirty folder removed while files are being
// written (by hand, by a cleaner of old files) is made again at the next
// write that needs a dirty file, and no byte is lost: a file spilled
// before keeps its bytes through its open descriptor. The folder a link
// to nothing (its disk not mounted) is not hidden by a folder made under
// it: the write fails with an error that names the folder and says what
// to do.
func TestDirtyFolderGone(t *testing.T) {
	// Blocks larger than memDirtyMax: a write past it spills.
	e := newEnv(t, func(o *Options) { o.BlockSize = 1 << 20 })
	dirty := filepath.Join(e.opts.Dir, "dirty")
	data := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i%251)
		}
		return b
	}
	open := func(name string) Ino {
		a := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
		e.j.OpenFile(a.Ino)
		t.Cleanup(func() { e.j.ReleaseFile(a.Ino) })
		return a.Ino
	}
	spilled, small := open("spilled"), open("small")
	spilledData, smallData := data(2*memDirtyMax, 1), data(3*memDirtyMax, 2)
	must[int](t)(e.j.WriteAt(bg, spilled, spilledData, 0))
	must[int](t)(e.j.WriteAt(bg, small, smallData[:memDirtyMax/2], 0))
	if err := os.RemoveAll(dirty); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.WriteAt(bg, small, smallData[memDirtyMax/2:], memDirtyMax/2); err != nil {
		t.Fatalf("write with the dirty folder gone: %v", err)
	}
	if _, err := os.Stat(dirty); err != nil {
		t.Errorf("the dirty folder was not made again: %v", err)
	}
	for _, f := range []struct {
		ino  Ino
		want []byte
	}{{spilled, spilledData}, {small, smallData}} {
		if err := e.j.Flush(bg, f.ino); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(f.want))
		must[int](t)(e.j.ReadAt(bg, f.ino, got, 0))
		if !bytes.Equal(got, f.want) {
			t.Errorf("inode %d reads other bytes than written", f.ino)
		}
	}

	if err := os.RemoveAll(dirty); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(e.dir, "not-mounted", "dirty"), dirty); err != nil {
		t.Fatal(err)
	}
	linked := open("linked")
	_, err := e.j.WriteAt(bg, linked, data(2*memDirtyMax, 3), 0)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "dirty folder "+dirty) ||
		!strings.Contains(err.Error(), "put it back") {
		t.Errorf("write with the dirty folder a link to nothing: %v; want the folder named and what to do", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "not-mounted")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a folder was made under the link: %v", err)
	}
}
