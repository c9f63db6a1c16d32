package journal

import (
	"maps"
	"math/rand/v2"
	"testing"
	"time"
)

// Window shapes that re-point a name the grid has (its key is still there
// after the window, so no name looks removed) while the name's new target
// has queued blocks. A record that leaves the new target out must not
// ship the other half of the change: the grid's copy would name a file
// twice with one link, name one with no link (freed at the next open),
// or lose one. Each shape runs on a grid paced so that a copy's blocks
// stay queued, with no background record: the test ships one deferring
// record itself, then checks the grid's copy as recover would rebuild it.
func TestRepointedNameDuringDeferredCopy(t *testing.T) {
	small := func(e *gridEnv, name, data string) Ino {
		ino := e.writeFile(name, []byte(data))
		must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, ino))
		return ino
	}
	rng := rand.New(rand.NewPCG(21, 21))
	bulk := make([]byte, 8<<20)
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	// queued writes a file big enough to queue behind the copy.
	queued := func(e *gridEnv, name string) Ino {
		ino := e.writeFile(name, bulk[1<<20:1<<20+300<<10])
		must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, ino))
		return ino
	}
	for _, c := range []struct {
		name   string
		before func(e *gridEnv) // on the grid before the copy
		window func(e *gridEnv) Ino
	}{
		{"save by rename over a file held open, NAME.tmp made again", func(e *gridEnv) {
			e.j.OpenFile(small(e, "manifest", "v1")) // a reader keeps the old one: nlink 0, not freed
		}, func(e *gridEnv) Ino {
			ino := queued(e, "manifest.tmp")
			if err := e.j.Rename(bg, RootIno, "manifest.tmp", RootIno, "manifest", 0); err != nil {
				e.t.Fatal(err)
			}
			small(e, "manifest.tmp", "next")
			return ino
		}},
		{"save by rename over a file freed at once, NAME.tmp made again", func(e *gridEnv) {
			small(e, "manifest", "v1")
		}, func(e *gridEnv) Ino {
			ino := queued(e, "manifest.tmp")
			if err := e.j.Rename(bg, RootIno, "manifest.tmp", RootIno, "manifest", 0); err != nil {
				e.t.Fatal(err)
			}
			if err := e.j.it.freeOrphans(bg); err != nil { // as the reaper does
				e.t.Fatal(err)
			}
			small(e, "manifest.tmp", "next")
			return ino
		}},
		{"save with a backup: NAME renamed to NAME~, NAME written anew", func(e *gridEnv) {
			small(e, "doc", "v1")
		}, func(e *gridEnv) Ino {
			if err := e.j.Rename(bg, RootIno, "doc", RootIno, "doc~", 0); err != nil {
				e.t.Fatal(err)
			}
			return queued(e, "doc")
		}},
		{"a hard-linked file unlinked and its name made again", func(e *gridEnv) {
			ino := small(e, "doc", "v1")
			must[Attr](e.t)(e.j.Link(bg, ino, RootIno, "doc.link"))
		}, func(e *gridEnv) Ino {
			if err := e.j.Unlink(bg, RootIno, "doc"); err != nil {
				e.t.Fatal(err)
			}
			return queued(e, "doc")
		}},
		{"two names exchanged, one of them rewritten", func(e *gridEnv) {
			small(e, "a", "file a")
			small(e, "b", "file b")
		}, func(e *gridEnv) Ino {
			a := must[Attr](e.t)(e.j.Lookup(bg, RootIno, "a")).Ino
			must[int](e.t)(e.j.WriteAt(bg, a, bulk[2<<20:2<<20+300<<10], 0))
			must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, a))
			if err := e.j.Rename(bg, RootIno, "a", RootIno, "b", RenameExchange); err != nil {
				e.t.Fatal(err)
			}
			return a
		}},
	} {
		t.Run(c.name, func(t *testing.T) { runDeferredShape(t, bulk, c.before, c.window) })
	}
}

// A file on the grid rewritten in place while a copy's blocks are queued:
// the record leaves the file out (the grid keeps its older version, whole)
// and ships its old blocks' rows, garbage here. A rebuild from such a
// record must take the blocks the older version names for live: garbage
// there is collected at the recovered drive's next collection, and the
// file's data with it.
func TestRewriteInPlaceDuringDeferredCopy(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 22))
	bulk := make([]byte, 8<<20)
	for i := range bulk {
		bulk[i] = byte(rng.Uint32())
	}
	runDeferredShape(t, bulk, func(e *gridEnv) {
		ino := e.writeFile("doc", bulk[3<<20:3<<20+300<<10])
		must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, ino))
	}, func(e *gridEnv) Ino {
		doc := must[Attr](e.t)(e.j.Lookup(bg, RootIno, "doc")).Ino
		must[int](e.t)(e.j.WriteAt(bg, doc, bulk[4<<20:4<<20+300<<10], 0))
		must[struct{}](e.t)(struct{}{}, e.j.Flush(bg, doc))
		return doc
	})
}

// runDeferredShape makes what before makes grid-durable, queues a copy of
// bulk on a paced grid, runs window (which returns a file it left with
// queued blocks), ships one record that may leave queued files out, and
// checks the grid's copy as recover rebuilds it; then syncs and checks
// the grid's copy is the drive.
func runDeferredShape(t *testing.T, bulk []byte, before func(*gridEnv), window func(*gridEnv) Ino) {
	e := newPacedEnv(t, func(o *Options) { o.MetaInterval = time.Hour })
	before(e)
	e.syncGrid()
	kept := rootNames(t, e.j) // named before the window and after it: the grid names them throughout
	bulkIno := e.writeFile("bulk", bulk)
	must[struct{}](t)(struct{}{}, e.j.Flush(bg, bulkIno))
	left := window(e)
	applyUnlinks(t, e.j) // and creates: the database as the unlinker leaves it
	after := rootNames(t, e.j)
	maps.DeleteFunc(kept, func(name string, _ bool) bool { return !after[name] })
	if st := must[FileStatus](t)(e.j.Status(bg, left)); st.PendingBlocks == 0 {
		t.Fatalf("the window's file was uploaded before the record: the test proves nothing")
	}
	// The record leaves the queued file out, or waits for it.
	if _, err := e.j.ms.ship(bg, false, false, true); err != nil {
		t.Fatal(err)
	}
	g, _ := e.rebuildFromGrid()
	checkLinks(t, g)
	checkNamedBlocksLive(t, g)
	grid := rootNames(t, g)
	for name := range kept {
		if !grid[name] {
			t.Errorf("the grid's copy lost %q, named before the window and after it", name)
		}
	}
	g.Close()
	e.syncGrid()
	g, _ = e.rebuildFromGrid()
	checkLinks(t, g)
	if a, b := dumpTree(t, g), dumpTree(t, e.j); a != b {
		t.Fatalf("after a sync, the grid's copy differs from the drive:\n grid:\n%s\ndrive:\n%s", a, b)
	}
}

// rootNames returns the names in j's root directory.
func rootNames(t testing.TB, j *Journal) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, d := range must[[]DirEntry](t)(j.ReadDir(bg, RootIno, 0, 1000)) {
		out[d.Name] = true
	}
	return out
}

// checkNamedBlocksLive fails t when a block a file names is garbage in j
// (its collection would take the file's data).
func checkNamedBlocksLive(t testing.TB, j *Journal) {
	t.Helper()
	var n int
	if err := j.db.QueryRow(`SELECT count(*) FROM blocks b WHERE b.state = ? AND EXISTS(SELECT 1 FROM blockmap m WHERE m.block = b.id)`,
		blockGarbage).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		t.Errorf("the grid's copy has %d blocks that files name marked garbage (collected at its next collection)", n)
	}
}

// checkLinks fails t unless every name of j leads to an inode and every
// file's link count is its number of names (a file named twice with one
// link loses its data when one name is removed; a file with no name is
// lost; one with no link is freed at the next open).
func checkLinks(t testing.TB, j *Journal) {
	t.Helper()
	rows, err := j.db.Query(`SELECT e.name, coalesce(i.nlink, -1) FROM entries e LEFT JOIN inodes i ON i.ino = e.ino
		WHERE i.ino IS NULL OR i.nlink = 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var nlink int
		must[struct{}](t)(struct{}{}, rows.Scan(&name, &nlink))
		t.Errorf("the grid's copy names %q, whose inode %s", name, map[bool]string{true: "is missing", false: "has no link (freed at the next open)"}[nlink < 0])
	}
	rows.Close()
	rows, err = j.db.Query(`SELECT i.ino, i.nlink, (SELECT count(*) FROM entries e WHERE e.ino = i.ino) AS n FROM inodes i
		WHERE i.mode & ? != ? AND i.nlink > 0 AND i.nlink != n`, sIFMT, sIFDIR)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ino, nlink, names int
		must[struct{}](t)(struct{}{}, rows.Scan(&ino, &nlink, &names))
		t.Errorf("the grid's copy has file %d with %d links and %d names", ino, nlink, names)
	}
}
