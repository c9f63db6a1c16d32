package journal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Lookups in random order read the directory's table once and are
// answered from it, and every answer equals what GetAttr says; a change
// made after the table was read (chmod, unlink, rename, hard link, a
// write not yet flushed, a write flushed) shows in the next lookup.
func TestDirTableNeverStale(t *testing.T) { bubble(t, testDirTableNeverStale) }

func testDirTableNeverStale(t *testing.T) {
	e := newEnv(t, nil)
	d := must[Attr](t)(e.j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	const n = 1000
	inos := make([]Ino, n)
	for i := range n {
		inos[i] = must[Attr](t)(e.j.Mknod(bg, d.Ino, fmt.Sprintf("f%04d", i), 0o100644, 0, 0, 0)).Ino
	}
	applyUnlinks(t, e.j) // lookups of pending creates do not read the database
	name := func(i int) string { return fmt.Sprintf("f%04d", i) }
	check := func(i int) Attr {
		t.Helper()
		a, err := e.j.Lookup(bg, d.Ino, name(i))
		if err != nil {
			t.Fatalf("lookup %s: %v", name(i), err)
		}
		g := must[Attr](t)(e.j.GetAttr(bg, a.Ino))
		if a != g {
			t.Fatalf("lookup %s: %+v, GetAttr %+v", name(i), a, g)
		}
		return a
	}
	fromTable := func(i int) bool {
		gen, _ := e.j.ns.cacheGen()
		_, ok := e.j.la.get(d.Ino, name(i), gen)
		return ok
	}
	// warm fills the table again, if a commit dropped it: lookups in
	// random order until it is read.
	rng := rand.New(rand.NewPCG(5, 6))
	warm := func() {
		t.Helper()
		if fromTable(0) {
			return // no commit since
		}
		for _, i := range rng.Perm(n) {
			if inos[i] == 0 {
				continue // gone
			}
			if a := check(i); a.Ino != inos[i] {
				t.Fatalf("%s: ino %d, want %d", name(i), a.Ino, inos[i])
			}
			if fromTable(i) {
				return
			}
		}
		t.Fatalf("%d lookups in random order read no table", n)
	}
	warm()
	for _, i := range rng.Perm(n) {
		if !fromTable(i) {
			t.Fatalf("%s not answered from the table", name(i))
		}
		check(i)
	}

	mode := uint32(0o600)
	must[Attr](t)(e.j.SetAttr(bg, inos[2], SetAttr{Mode: &mode}))
	if a := check(2); a.Mode != 0o100600 {
		t.Fatalf("f0002 after chmod: mode %o", a.Mode)
	}
	warm()
	if err := e.j.Unlink(bg, d.Ino, name(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.Lookup(bg, d.Ino, name(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("f0003 after unlink: %v", err)
	}
	inos[3] = 0
	warm()
	if err := e.j.Rename(bg, d.Ino, name(6), d.Ino, "g", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.Lookup(bg, d.Ino, name(6)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("f0006 after rename: %v", err)
	}
	inos[6] = 0
	warm()
	if _, err := e.j.Link(bg, inos[7], d.Ino, "h"); err != nil {
		t.Fatal(err)
	}
	if a := check(7); a.Nlink != 2 {
		t.Fatalf("f0007 after link: nlink %d", a.Nlink)
	}
	warm()
	if _, err := e.j.WriteAt(bg, inos[9], []byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if a := check(9); a.Size != 3 {
		t.Fatalf("f0009 after an unflushed write: size %d", a.Size)
	}
	warm()
	if err := e.j.Flush(bg, inos[9]); err != nil {
		t.Fatal(err)
	}
	if a := check(9); a.Size != 3 || a.Blocks == 0 {
		t.Fatalf("f0009 after its flush: size %d, blocks %d", a.Size, a.Blocks)
	}
}
