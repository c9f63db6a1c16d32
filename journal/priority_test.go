package journal

import (
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
// the removal of its old one would lose it).
func TestRenameDuringDeferredCopy(t *testing.T) {
	e := newPacedEnv(t)
	doc := []byte("the document, version 1\n")
	docIno := e.writeFile("doc", doc)
	must[struct{}](t)(struct{}{}, e.j.Flush(bg, docIno))
	e.syncGrid()

	rng := rand.New(rand.NewPCG(19, 19))
	bulk := make([]byte, 16<<20)
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	bulkIno := e.writeFile("bulk", bulk)
	must[struct{}](t)(struct{}{}, e.j.Flush(bg, bulkIno))
	v2 := bulk[: 2<<20 : 2<<20]
	must[int](t)(e.j.WriteAt(bg, docIno, v2, 0))
	must[struct{}](t)(struct{}{}, e.j.Flush(bg, docIno))
	if err := e.j.Rename(bg, RootIno, "doc", RootIno, "doc.renamed", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Fsync(bg, docIno); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		time.Sleep(500 * time.Millisecond)
		g, _ := e.rebuildFromGrid()
		checkDB(t, g.o.Dir)
		_, errOld := g.Lookup(bg, RootIno, "doc")
		_, errNew := g.Lookup(bg, RootIno, "doc.renamed")
		if (errOld == nil) == (errNew == nil) {
			t.Fatalf("the grid names the renamed file %s (old name: %v, new name: %v)",
				map[bool]string{true: "twice", false: "nowhere"}[errOld == nil], errOld, errNew)
		}
		g.Close()
	}
	e.syncGrid()
}

// A file on the grid replaced by a rename over it (an editor's or a
// manifest's save: write NAME.tmp, rename it over NAME) while a copy's
// blocks are queued, and NAME.tmp made again at once, before a record:
// the window's removal of NAME.tmp is not visible in the names as they
// are now, but the old file's inode is gone. The grid's copy always names
// NAME (old version or new), never loses it: the record must not ship the
// old inode's removal while it leaves out NAME's new target.
func TestReplaceByRenameDuringDeferredCopy(t *testing.T) {
	e := newPacedEnv(t)
	e.writeFile("manifest", []byte("1"))
	e.syncGrid()

	rng := rand.New(rand.NewPCG(20, 20))
	bulk := make([]byte, 16<<20)
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	bulkIno := e.writeFile("bulk", bulk)
	must[struct{}](t)(struct{}{}, e.j.Flush(bg, bulkIno))
	for gen := 2; gen < 6; gen++ {
		// Big enough to queue behind the copy, not ahead of it.
		tmp := e.writeFile("manifest.tmp", bulk[gen<<20:gen<<20+300<<10])
		must[struct{}](t)(struct{}{}, e.j.Flush(bg, tmp))
		if err := e.j.Rename(bg, RootIno, "manifest.tmp", RootIno, "manifest", 0); err != nil {
			t.Fatal(err)
		}
		applyUnlinks(t, e.j) // the old manifest's inode goes
		if err := e.j.it.freeOrphans(bg); err != nil {
			t.Fatal(err)
		}
		next := e.writeFile("manifest.tmp", []byte("next"))
		must[struct{}](t)(struct{}{}, e.j.Flush(bg, next))
		time.Sleep(400 * time.Millisecond) // two records' time
		g, _ := e.rebuildFromGrid()
		_, err := g.Lookup(bg, RootIno, "manifest")
		g.Close()
		if err != nil {
			t.Fatalf("generation %d: the grid's copy lost the manifest: %v", gen, err)
		}
		if err := e.j.Unlink(bg, RootIno, "manifest.tmp"); err != nil {
			t.Fatal(err)
		}
	}
	e.syncGrid()
}
