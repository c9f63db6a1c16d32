package journal

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"slices"
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
