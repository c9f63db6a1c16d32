package journal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func (l *lookAhead) hitCount() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hits
}

func (l *lookAhead) fillCount() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fills
}

// Lookups in random order read no windows (each would cost as much as
// many lookups and serve none).
func TestLookAheadNotForRandomOrder(t *testing.T) { bubble(t, testLookAheadNotForRandomOrder) }

func testLookAheadNotForRandomOrder(t *testing.T) {
	e := newEnv(t, nil)
	const n = 2000
	for i := range n {
		must[Attr](t)(e.j.Mknod(bg, RootIno, fmt.Sprintf("f%04d", i), 0o100644, 0, 0, 0))
	}
	for _, i := range rand.New(rand.NewPCG(3, 4)).Perm(n) {
		must[Attr](t)(e.j.Lookup(bg, RootIno, fmt.Sprintf("f%04d", i)))
	}
	if f := e.j.la.fillCount(); f > 5 {
		t.Errorf("%d lookups in random order read %d windows", n, f)
	}
}

// Lookups in the order the entries were made are answered from a window
// read ahead, and every answer equals what GetAttr says; a change made
// after the window was read (chmod, unlink, rename, a write not yet
// flushed) shows in the next lookup.
func TestLookAheadNeverStale(t *testing.T) { bubble(t, testLookAheadNeverStale) }

func testLookAheadNeverStale(t *testing.T) {
	e := newEnv(t, nil)
	d := must[Attr](t)(e.j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	const n = 3*lookAheadN + 7
	inos := make([]Ino, n)
	for i := range n {
		inos[i] = must[Attr](t)(e.j.Mknod(bg, d.Ino, fmt.Sprintf("f%04d", i), 0o100644, 0, 0, 0)).Ino
	}
	applyUnlinks(t, e.j) // lookups of pending creates do not read the database
	check := func(i int) Attr {
		t.Helper()
		a, err := e.j.Lookup(bg, d.Ino, fmt.Sprintf("f%04d", i))
		if err != nil {
			t.Fatalf("lookup f%04d: %v", i, err)
		}
		g := must[Attr](t)(e.j.GetAttr(bg, a.Ino))
		if a != g {
			t.Fatalf("lookup f%04d: %+v, GetAttr %+v", i, a, g)
		}
		return a
	}
	for i := range n {
		if a := check(i); a.Ino != inos[i] {
			t.Fatalf("f%04d: ino %d, want %d", i, a.Ino, inos[i])
		}
	}
	if h := e.j.la.hitCount(); h < n-10 {
		t.Fatalf("%d of %d lookups in order came from a window, want nearly all", h, n)
	}

	// Changes behind a freshly read window.
	check(0)
	check(1) // the window now holds f0002...
	mode := uint32(0o600)
	must[Attr](t)(e.j.SetAttr(bg, inos[2], SetAttr{Mode: &mode}))
	if a := check(2); a.Mode != 0o100600 {
		t.Fatalf("f0002 after chmod: mode %o", a.Mode)
	}
	if err := e.j.Unlink(bg, d.Ino, "f0003"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.Lookup(bg, d.Ino, "f0003"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("f0003 after unlink: %v", err)
	}
	check(4)
	check(5)
	if err := e.j.Rename(bg, d.Ino, "f0006", d.Ino, "g", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.Lookup(bg, d.Ino, "f0006"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("f0006 after rename: %v", err)
	}
	check(7)
	check(8)
	if _, err := e.j.WriteAt(bg, inos[9], []byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if a := check(9); a.Size != 3 {
		t.Fatalf("f0009 after an unflushed write: size %d", a.Size)
	}
}

// Lookups racing renames and chmods (for go test -race): every lookup
// finds the file under one of its two names.
func TestLookAheadConcurrent(t *testing.T) { bubble(t, testLookAheadConcurrent) }

func testLookAheadConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	const n = 2 * lookAheadN
	for i := range n {
		must[Attr](t)(e.j.Mknod(bg, RootIno, fmt.Sprintf("f%04d", i), 0o100644, 0, 0, 0))
	}
	var wg, rw sync.WaitGroup
	stop := make(chan struct{})
	rw.Add(1)
	go func() {
		defer rw.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			i := k % n
			from, to := fmt.Sprintf("f%04d", i), fmt.Sprintf("r%04d", i)
			if err := e.j.Rename(bg, RootIno, from, RootIno, to, 0); err != nil {
				t.Error(err)
				return
			}
			if err := e.j.Rename(bg, RootIno, to, RootIno, from, 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pass := 0; pass < 5; pass++ {
				for i := range n {
					_, err := e.j.Lookup(bg, RootIno, fmt.Sprintf("f%04d", i))
					if errors.Is(err, ErrNotFound) {
						_, err = e.j.Lookup(bg, RootIno, fmt.Sprintf("r%04d", i))
						if errors.Is(err, ErrNotFound) {
							// Renamed back between the two lookups.
							_, err = e.j.Lookup(bg, RootIno, fmt.Sprintf("f%04d", i))
						}
					}
					if err != nil {
						t.Errorf("f%04d: %v", i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rw.Wait()
}

// A missing name is ENOENT in a directory, also once the directory is
// gone, and ENOTDIR under a file, however often it is asked.
func TestLookupMissingName(t *testing.T) { bubble(t, testLookupMissingName) }

func testLookupMissingName(t *testing.T) {
	e := newEnv(t, nil)
	d := must[Attr](t)(e.j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o100644, 0, 0, 0))
	for range 2 {
		if _, err := e.j.Lookup(bg, d.Ino, "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing name in a directory: %v", err)
		}
		if _, err := e.j.Lookup(bg, f.Ino, "x"); !errors.Is(err, ErrNotDir) {
			t.Fatalf("name under a file: %v", err)
		}
	}
	if err := e.j.Rmdir(bg, RootIno, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.Lookup(bg, d.Ino, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("name in a removed directory: %v", err)
	}
}

// The attributes a create caches (the new inode, and its parent as its
// UPDATE returned it) equal the rows, and every commit after makes
// GetAttr read again.
func TestAttrCacheNeverStale(t *testing.T) { bubble(t, testAttrCacheNeverStale) }

func testAttrCacheNeverStale(t *testing.T) {
	e := newEnv(t, nil)
	row := func(ino Ino) Attr {
		t.Helper()
		a, err := scanAttr(e.j.db.QueryRow(`SELECT `+attrCols+` FROM inodes i WHERE i.ino = ?`, ino))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	same := func(ino Ino, where string) {
		t.Helper()
		if g, r := must[Attr](t)(e.j.GetAttr(bg, ino)), row(ino); g != r {
			t.Fatalf("%s: GetAttr %+v, row %+v", where, g, r)
		}
	}
	d := must[Attr](t)(e.j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	applyUnlinks(t, e.j) // the deferred mkdir, for row()
	same(RootIno, "root after mkdir")
	same(d.Ino, "d after mkdir")
	f := must[Attr](t)(e.j.Mknod(bg, d.Ino, "f", 0o100644, 0, 0, 0))
	applyUnlinks(t, e.j) // the deferred create, for row()
	same(d.Ino, "d after create")
	same(f.Ino, "f after create")
	// A flush commits f's row only: d stays cached, f is read again.
	if _, err := e.j.WriteAt(bg, f.Ino, []byte("12345"), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	applyUnlinks(t, e.j) // the close's deferred flush
	same(f.Ino, "f after flush")
	same(d.Ino, "d after flush of f")
	if a := must[Attr](t)(e.j.GetAttr(bg, f.Ino)); a.Size != 5 {
		t.Fatalf("f after flush: size %d", a.Size)
	}
	mode := uint32(0o700)
	must[Attr](t)(e.j.SetAttr(bg, d.Ino, SetAttr{Mode: &mode}))
	if a := must[Attr](t)(e.j.GetAttr(bg, d.Ino)); a.Mode != 0o40700 {
		t.Fatalf("d after chmod, pending: mode %o", a.Mode)
	}
	applyUnlinks(t, e.j) // the deferred chmod (dirattr.go), for row()
	same(d.Ino, "d after chmod")
	sub := must[Attr](t)(e.j.Mkdir(bg, d.Ino, "sub", 0o755, 0, 0))
	applyUnlinks(t, e.j) // the deferred mkdir, for row()
	same(d.Ino, "d after mkdir in it")
	if a := must[Attr](t)(e.j.GetAttr(bg, d.Ino)); a.Nlink != 3 || a.Mode != 0o40700 {
		t.Fatalf("d: nlink %d mode %o", a.Nlink, a.Mode)
	}
	must[Attr](t)(e.j.Link(bg, f.Ino, sub.Ino, "f2"))
	same(f.Ino, "f after link")
	if err := e.j.Unlink(bg, d.Ino, "f"); err != nil {
		t.Fatal(err)
	}
	same(f.Ino, "f after unlink")
	same(d.Ino, "d after unlink")
}

// A scan that unlinks each entry after looking it up (rm -rf, rm *) keeps
// its window across the unlinks: few windows are read, yet no answer is
// stale. A hard link of an unlinked file in the same window shows its
// new link count, and a removed directory's parent its new one.
func TestLookAheadAcrossUnlinks(t *testing.T) { bubble(t, testLookAheadAcrossUnlinks) }

func testLookAheadAcrossUnlinks(t *testing.T) {
	e := newEnv(t, nil)
	d := must[Attr](t)(e.j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	const n = 4 * lookAheadN
	for i := range n {
		if i == 10 {
			must[Attr](t)(e.j.Mkdir(bg, d.Ino, fmt.Sprintf("f%04d", i), 0o755, 0, 0))
			continue
		}
		must[Attr](t)(e.j.Mknod(bg, d.Ino, fmt.Sprintf("f%04d", i), 0o100644, 0, 0, 0))
	}
	// f0020 is a hard link of f0005, later in the same window.
	a5 := must[Attr](t)(e.j.Lookup(bg, d.Ino, "f0005"))
	if err := e.j.Unlink(bg, d.Ino, "f0020"); err != nil {
		t.Fatal(err)
	}
	must[Attr](t)(e.j.Link(bg, a5.Ino, d.Ino, "f0020"))
	fills := e.j.la.fillCount()
	for i := range n {
		name := fmt.Sprintf("f%04d", i)
		a, err := e.j.Lookup(bg, d.Ino, name)
		if err != nil {
			t.Fatalf("lookup %s: %v", name, err)
		}
		if g := must[Attr](t)(e.j.GetAttr(bg, a.Ino)); a != g {
			t.Fatalf("lookup %s: %+v, GetAttr %+v", name, a, g)
		}
		if i == 20 && a.Nlink != 1 {
			t.Fatalf("f0020, a link of the unlinked f0005: nlink %d, want 1", a.Nlink)
		}
		if i == 10 {
			err = e.j.Rmdir(bg, d.Ino, name)
		} else {
			err = e.j.Unlink(bg, d.Ino, name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.j.Lookup(bg, d.Ino, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup of %s after its unlink: %v", name, err)
		}
		if i == 10 {
			p, _ := e.j.Lookup(bg, RootIno, "d")
			if g := must[Attr](t)(e.j.GetAttr(bg, d.Ino)); p != g || g.Nlink != 2 {
				t.Fatalf("d after rmdir of its subdirectory: lookup %+v, GetAttr %+v, want nlink 2", p, g)
			}
		}
	}
	if f := e.j.la.fillCount() - fills; f > n/lookAheadN+8 {
		t.Errorf("a scan that unlinks as it goes read %d windows for %d entries", f, n)
	}
}

// TestNestedApplyDropsItsRows: a transaction scoped to one inode (an
// fsync's flush) that first applies pending unlinks in a transaction of
// their own must not let that one pass for its scope: the cached row of
// the unlinked file's directory goes.
func TestNestedApplyDropsItsRows(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
		g := must[Attr](t)(j.Mknod(bg, d.Ino, "g", 0o644, 0, 0, 0))
		must[Attr](t)(j.Mknod(bg, d.Ino, "x", 0o644, 0, 0, 0))
		applyUnlinks(t, j)
		must[Attr](t)(j.GetAttr(bg, d.Ino)) // cached
		time.Sleep(time.Millisecond)        // the bubble's clock: the unlink moves d's mtime
		if err := j.Unlink(bg, d.Ino, "x"); err != nil {
			t.Fatal(err)
		}
		if j.unl.unlN.Load() != 1 {
			t.Fatal("the unlink was not deferred")
		}
		j.OpenFile(g.Ino)
		must[int](t)(j.WriteAt(bg, g.Ino, []byte("data"), 0))
		if err := j.Fsync(bg, g.Ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(g.Ino)
		want := must[Attr](t)(scanAttr(j.db.QueryRow(getattrQ, d.Ino)))
		if got := must[Attr](t)(j.GetAttr(bg, d.Ino)); got != want {
			t.Fatalf("d after the unlink applied before an fsync: GetAttr %+v, database %+v", got, want)
		}
	})
}
