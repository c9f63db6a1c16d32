package journal

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestNameSets: in a directory made during the mount, lookups of names
// that are not there are answered without a query, and every name that
// is there is found, whichever way it came: a deferred create pending or
// applied, a synchronous mkdir or symlink, a hard link, a rename into it
// (which drops the sets), a create after an unlink of the name.
func TestNameSets(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	hits := func() int64 {
		j.names.mu.Lock()
		defer j.names.mu.Unlock()
		return j.names.hits
	}
	d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	other := must[Attr](t)(j.Mkdir(bg, RootIno, "other", 0o755, 0, 0))
	applyUnlinks(t, j) // the mkdirs: a directory's set starts at its apply
	// found checks every name in want is found in dir, and a few that
	// are not there are not.
	found := func(dir Ino, want ...string) {
		t.Helper()
		for _, n := range want {
			if _, err := j.Lookup(bg, dir, n); err != nil {
				t.Fatalf("lookup of %q in %d: %v", n, dir, err)
			}
		}
		for i := range 3 {
			if _, err := j.Lookup(bg, dir, fmt.Sprintf("absent-%d", i)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("lookup of a name not there: %v", err)
			}
		}
	}
	h0 := hits()
	var names []string
	for i := range 100 {
		n := fmt.Sprintf("f%03d", i)
		if _, err := j.Lookup(bg, d.Ino, n); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup before the create: %v", err)
		}
		must[Attr](t)(j.Mknod(bg, d.Ino, n, sIFREG|0o644, 0, 0, 0))
		names = append(names, n)
		if i%10 == 9 {
			applyUnlinks(t, j) // applied in batches, like the unlinker
		}
	}
	if h := hits() - h0; h < 100 {
		t.Fatalf("%d of 100 lookups of new names answered without a query", h)
	}
	found(d.Ino, names...)
	// A setattr or setxattr keeps the sets (and their rows are read
	// again: the caches drop what they changed).
	f0 := must[Attr](t)(j.Lookup(bg, d.Ino, "f000"))
	mode := uint32(0o600)
	must[Attr](t)(j.SetAttr(bg, d.Ino, SetAttr{Mode: &mode}))
	if err := j.SetXattr(bg, f0.Ino, "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	h := hits()
	found(d.Ino)
	if hits() == h {
		t.Error("a setattr or setxattr dropped the sets")
	}
	if a := must[Attr](t)(j.GetAttr(bg, d.Ino)); a.Mode&0o7777 != mode {
		t.Errorf("mode after the setattr: %o", a.Mode)
	}
	if a := must[Attr](t)(j.Lookup(bg, d.Ino, "f000")); !a.Ctime.After(f0.Ctime) {
		t.Errorf("ctime after the setxattr: %v, before %v", a.Ctime, f0.Ctime)
	}
	sub := must[Attr](t)(j.Mkdir(bg, d.Ino, "sub", 0o755, 0, 0))
	must[Attr](t)(j.Symlink(bg, d.Ino, "ln", "f000", 0, 0))
	must[Attr](t)(j.Mknod(bg, sub.Ino, "inner", sIFREG|0o644, 0, 0, 0))
	applyUnlinks(t, j)
	names = append(names, "sub", "ln")
	found(d.Ino, names...)
	found(sub.Ino, "inner")

	// A hard link or a rename into a directory with a set: found.
	x := must[Attr](t)(j.Mknod(bg, other.Ino, "x", sIFREG|0o644, 0, 0, 0))
	must[Attr](t)(j.Mknod(bg, other.Ino, "y", sIFREG|0o644, 0, 0, 0))
	applyUnlinks(t, j)
	for _, how := range []string{"link", "rename"} {
		to := must[Attr](t)(j.Mkdir(bg, RootIno, "to-"+how, 0o755, 0, 0))
		applyUnlinks(t, j) // the mkdir
		h := hits()
		found(to.Ino)
		if hits() == h {
			t.Fatalf("before the %s: the new directory has no set", how)
		}
		if how == "link" {
			must[Attr](t)(j.Link(bg, x.Ino, to.Ino, "new"))
		} else if err := j.Rename(bg, other.Ino, "y", to.Ino, "new", 0); err != nil {
			t.Fatal(err)
		}
		found(to.Ino, "new")
	}
	d = must[Attr](t)(j.Mkdir(bg, RootIno, "d2", 0o755, 0, 0)) // d's set went with them
	sub = must[Attr](t)(j.Mkdir(bg, d.Ino, "sub", 0o755, 0, 0))
	must[Attr](t)(j.Mknod(bg, sub.Ino, "inner", sIFREG|0o644, 0, 0, 0))
	must[Attr](t)(j.Mknod(bg, d.Ino, "f001", sIFREG|0o644, 0, 0, 0))
	applyUnlinks(t, j)
	names = []string{"sub", "f001"}
	found(d.Ino, names...)

	// Unlinked, then made again: found; the unlinked one is not.
	if err := j.Unlink(bg, d.Ino, "f001"); err != nil {
		t.Fatal(err)
	}
	applyUnlinks(t, j)
	if _, err := j.Lookup(bg, d.Ino, "f001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of the unlinked name: %v", err)
	}
	must[Attr](t)(j.Mknod(bg, d.Ino, "f001", sIFREG|0o644, 0, 0, 0))
	applyUnlinks(t, j)
	found(d.Ino, names...)

	// A directory removed: its set goes.
	if err := j.Unlink(bg, sub.Ino, "inner"); err != nil {
		t.Fatal(err)
	}
	if err := j.Rmdir(bg, d.Ino, "sub"); err != nil {
		t.Fatal(err)
	}
	applyUnlinks(t, j) // the rmdir was deferred
	j.names.mu.Lock()
	_, kept := j.names.dirs[sub.Ino]
	j.names.mu.Unlock()
	if kept {
		t.Error("the removed directory's set is kept")
	}
}

// TestNameSetsRenameIntoPendingMkdir: a rename into a directory whose
// mkdir is pending folds the mkdir into its own transaction, then adds its
// entry there without saying so: the commit must not leave the new
// directory a set that lacks the name (the lookup said ENOENT, and the web
// app's recursive delete found the folder not empty).
func TestNameSetsRenameIntoPendingMkdir(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	f := must[Attr](t)(j.Mknod(bg, RootIno, "notes", 0o644, 0, 0, 0))
	applyUnlinks(t, j)
	sub := must[Attr](t)(j.Mkdir(bg, RootIno, "sub", 0o755, 0, 0))
	if err := j.Rename(bg, RootIno, "notes", sub.Ino, "notes.txt", 0); err != nil {
		t.Fatal(err)
	}
	if a, err := j.Lookup(bg, sub.Ino, "notes.txt"); err != nil || a.Ino != f.Ino {
		t.Fatalf("lookup of the renamed file in the new directory: %+v, %v", a, err)
	}
	if err := j.Unlink(bg, sub.Ino, "notes.txt"); err != nil {
		t.Fatal(err)
	}
	if err := j.Rmdir(bg, RootIno, "sub"); err != nil {
		t.Fatal(err)
	}
}
