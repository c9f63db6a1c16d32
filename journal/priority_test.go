package journal

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote/limit"
)

// newPacedEnv is a grid env whose uploads are held to 8 MiB/s of shards
// (all nodes together) by the bandwidth wrapper, with small blocks and
// segments and a metadata record every 200 ms.
// more changes the options further.
func newPacedEnv(t *testing.T, more ...func(*Options)) *gridEnv {
	lim := limit.New(limit.Rates{Up: 8 << 20})
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.BlockSize = 256 << 10
		o.SegmentSize = 1 << 20
		o.MetaInterval = 200 * time.Millisecond
		for _, f := range more {
			f(o)
		}
	})
	e.wrap = lim.Wrap
	e.reopen()
	return e
}

// A small file saved and fsync'd after a bulk copy was queued is
// grid-durable (its data and its metadata on the grid) while most of the
// copy still waits: its blocks go first (prio 0), and the metadata record
// leaves out the copy's rows instead of waiting for its blocks. Then the
// copy becomes durable too, and a rebuild from the grid has both. The grid
// is paced by the bandwidth wrapper (remote/limit); the test counts, it
// does not time.
func TestFsyncedSmallFileDurableBeforeBulk(t *testing.T) {
	e := newPacedEnv(t)
	// The first record is a full one, which never leaves anything out
	// (the grid would forget older versions of the files left out).
	e.syncGrid()

	rng := rand.New(rand.NewPCG(18, 18))
	bulk := make([]byte, 24<<20) // 36 MiB of shards: 4.5 s at 8 MiB/s
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	bulkIno := e.writeFile("bulk", bulk)
	must[struct{}](t)(struct{}{}, e.j.Flush(bg, bulkIno))
	bulkBlocks := must[FileStatus](t)(e.j.Status(bg, bulkIno)).Blocks

	small := make([]byte, 10<<10)
	for i := range small {
		small[i] = byte(rng.Uint32())
	}
	smallIno := e.writeFile("small", small)
	if err := e.j.Fsync(bg, smallIno); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.waitFor(time.Minute, "the fsync'd small file to be grid-durable", func() bool {
		st, err := e.j.Status(bg, smallIno)
		return err == nil && st.State == StateDurable
	})
	took := time.Since(start)
	bst := must[FileStatus](t)(e.j.Status(bg, bulkIno))
	t.Logf("small file grid-durable after %v; the bulk file then had %d of %d blocks waiting", took.Round(time.Millisecond), bst.PendingBlocks, bulkBlocks)
	if bst.State == StateDurable || bst.PendingBlocks*2 < bulkBlocks {
		t.Fatalf("the small file became grid-durable only when the bulk file was %v with %d of %d blocks waiting: it waited for the copy",
			bst.State, bst.PendingBlocks, bulkBlocks)
	}

	// What the grid has now is consistent: the small file, whole; the
	// bulk file not yet.
	mid, _ := e.rebuildFromGrid()
	checkDB(t, mid.o.Dir)
	a := must[Attr](t)(mid.Lookup(bg, RootIno, "small"))
	if got := readAll(t, mid, a.Ino); string(got) != string(small) {
		t.Fatalf("the grid's copy of the small file mid-copy: %d bytes", len(got))
	}
	if a, err := mid.Lookup(bg, RootIno, "bulk"); err == nil {
		// Named by a record made before its blocks were queued: an
		// older version, whole (a prefix of what was written).
		if got := readAll(t, mid, a.Ino); len(got) == len(bulk) || string(got) != string(bulk[:len(got)]) {
			t.Fatalf("the grid's copy of the bulk file mid-copy: %d bytes, not an older version of it", len(got))
		}
	}
	mid.Close()

	e.syncGrid()
	e.wantState(bulkIno, StateDurable)
	e.wantState(smallIno, StateDurable)
	// The grid alone has both files, whole.
	j2, _ := e.rebuildFromGrid()
	defer j2.Close()
	for name, want := range map[string][]byte{"bulk": bulk, "small": small} {
		a := must[Attr](t)(j2.Lookup(bg, RootIno, name))
		if got := readAll(t, j2, a.Ino); len(got) != len(want) || string(got) != string(want) {
			t.Fatalf("rebuilt %s: %d bytes, want the %d written", name, len(got), len(want))
		}
	}
}

// A file on the grid, rewritten (its new blocks queued behind a copy) and
// renamed: the grid's copy names it once, under its old name or its new
// one, never both and never neither (a window that removes a name leaves
// nothing out; leaving out the new name of a queued file while shipping
// the removal of its old one would lose it). runDeferredShape ships the
// record with the file's blocks still queued, and checkLinks fails a file
// named twice or nowhere.
func TestRenameDuringDeferredCopy(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 19))
	bulk := make([]byte, 8<<20)
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	runDeferredShape(t, bulk, func(e *gridEnv) {
		doc := e.writeFile("doc", []byte("the document, version 1\n"))
		must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, doc))
	}, func(e *gridEnv) Ino {
		doc := must[Attr](e.t)(e.j.Lookup(bg, RootIno, "doc")).Ino
		must[int](e.t)(e.j.WriteAt(bg, doc, bulk[2<<20:2<<20+300<<10], 0))
		must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, doc))
		if err := e.j.Rename(bg, RootIno, "doc", RootIno, "doc.renamed", 0); err != nil {
			e.t.Fatal(err)
		}
		return doc
	})
}

// A file on the grid replaced by a rename over it (an editor's or a
// manifest's save: write NAME.tmp, rename it over NAME) while a copy's
// blocks are queued, and NAME.tmp made again at once, before a record:
// the window's removal of NAME.tmp is not visible in the names as they
// are now, but the old file's inode is gone. The grid's copy always names
// NAME (old version or new), never loses it: the record must not ship the
// old inode's removal while it leaves out NAME's new target. One save in
// the window, and four (each NAME.tmp of the next made and removed again),
// as a program that saves often leaves them between two records.
func TestReplaceByRenameDuringDeferredCopy(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 20))
	bulk := make([]byte, 8<<20)
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	for _, saves := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d saves", saves), func(t *testing.T) {
			runDeferredShape(t, bulk, func(e *gridEnv) {
				e.writeFile("manifest", []byte("1"))
			}, func(e *gridEnv) Ino {
				var tmp Ino
				for gen := 2; gen < 2+saves; gen++ {
					if gen > 2 {
						if err := e.j.Unlink(bg, RootIno, "manifest.tmp"); err != nil {
							e.t.Fatal(err)
						}
					}
					// Big enough to queue behind the copy, not ahead of it.
					tmp = e.writeFile("manifest.tmp", bulk[gen<<20:gen<<20+300<<10])
					must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, tmp))
					if err := e.j.Rename(bg, RootIno, "manifest.tmp", RootIno, "manifest", 0); err != nil {
						e.t.Fatal(err)
					}
					applyUnlinks(e.t, e.j) // the old manifest's inode goes
					if err := e.j.it.freeOrphans(bg); err != nil {
						e.t.Fatal(err)
					}
					next := e.writeFile("manifest.tmp", []byte("next"))
					must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, next))
				}
				return tmp
			})
		})
	}
}
