package journal

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRootCreated(t *testing.T) { bubble(t, testRootCreated) }

func testRootCreated(t *testing.T) {
	e := newEnv(t, nil)
	a := must[Attr](t)(e.j.GetAttr(bg, RootIno))
	if a.Mode != syscall.S_IFDIR|0o755 || a.Nlink != 2 || a.Uid != uint32(syscall.Getuid()) {
		t.Fatalf("root attr %+v", a)
	}
}

func TestNamespaceErrors(t *testing.T) {
	e := newEnv(t, nil)
	j := e.j
	f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 1, 2))
	d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 1, 2))
	must[Attr](t)(j.Mknod(bg, d.Ino, "inner", 0o644, 0, 1, 2))
	must[Attr](t)(j.Mkdir(bg, RootIno, "empty", 0o755, 1, 2))
	l := must[Attr](t)(j.Symlink(bg, RootIno, "l", "f", 1, 2))
	long := strings.Repeat("x", 256)
	ok255 := strings.Repeat("y", 255)
	cases := []struct {
		name string
		err  error
		fn   func() error
	}{
		{"lookup missing", ErrNotFound, func() error { _, err := j.Lookup(bg, RootIno, "nope"); return err }},
		{"lookup in file", ErrNotDir, func() error { _, err := j.Lookup(bg, f.Ino, "x"); return err }},
		{"lookup long", ErrNameTooLong, func() error { _, err := j.Lookup(bg, RootIno, long); return err }},
		{"getattr missing", ErrNotFound, func() error { _, err := j.GetAttr(bg, 9999); return err }},
		{"mknod exists", ErrExist, func() error { _, err := j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0); return err }},
		{"mknod long", ErrNameTooLong, func() error { _, err := j.Mknod(bg, RootIno, long, 0o644, 0, 0, 0); return err }},
		{"mknod 255 ok", nil, func() error { _, err := j.Mknod(bg, RootIno, ok255, 0o644, 0, 0, 0); return err }},
		{"mknod in file", ErrNotDir, func() error { _, err := j.Mknod(bg, f.Ino, "x", 0o644, 0, 0, 0); return err }},
		{"mknod no parent", ErrNotFound, func() error { _, err := j.Mknod(bg, 9999, "x", 0o644, 0, 0, 0); return err }},
		{"mknod dir type", ErrInvalid, func() error { _, err := j.Mknod(bg, RootIno, "x", syscall.S_IFDIR|0o755, 0, 0, 0); return err }},
		{"mknod slash", ErrInvalid, func() error { _, err := j.Mknod(bg, RootIno, "a/b", 0o644, 0, 0, 0); return err }},
		{"mknod dot", ErrInvalid, func() error { _, err := j.Mknod(bg, RootIno, ".", 0o644, 0, 0, 0); return err }},
		{"mknod fifo", nil, func() error { _, err := j.Mknod(bg, RootIno, "fifo", syscall.S_IFIFO|0o644, 0, 0, 0); return err }},
		{"mkdir exists", ErrExist, func() error { _, err := j.Mkdir(bg, RootIno, "d", 0o755, 0, 0); return err }},
		{"mkdir long", ErrNameTooLong, func() error { _, err := j.Mkdir(bg, RootIno, long, 0o755, 0, 0); return err }},
		{"symlink exists", ErrExist, func() error { _, err := j.Symlink(bg, RootIno, "l", "x", 0, 0); return err }},
		{"symlink empty target", ErrInvalid, func() error { _, err := j.Symlink(bg, RootIno, "l2", "", 0, 0); return err }},
		{"readlink file", ErrInvalid, func() error { _, err := j.Readlink(bg, f.Ino); return err }},
		{"readlink missing", ErrNotFound, func() error { _, err := j.Readlink(bg, 9999); return err }},
		{"link dir", ErrIsDir, func() error { _, err := j.Link(bg, d.Ino, RootIno, "d2"); return err }},
		{"link exists", ErrExist, func() error { _, err := j.Link(bg, f.Ino, RootIno, "d"); return err }},
		{"link into file", ErrNotDir, func() error { _, err := j.Link(bg, f.Ino, f.Ino, "x"); return err }},
		{"link missing", ErrNotFound, func() error { _, err := j.Link(bg, 9999, RootIno, "x"); return err }},
		{"link long", ErrNameTooLong, func() error { _, err := j.Link(bg, f.Ino, RootIno, long); return err }},
		{"unlink missing", ErrNotFound, func() error { return j.Unlink(bg, RootIno, "nope") }},
		{"unlink dir", ErrIsDir, func() error { return j.Unlink(bg, RootIno, "d") }},
		{"unlink in file", ErrNotDir, func() error { return j.Unlink(bg, f.Ino, "x") }},
		{"rmdir missing", ErrNotFound, func() error { return j.Rmdir(bg, RootIno, "nope") }},
		{"rmdir file", ErrNotDir, func() error { return j.Rmdir(bg, RootIno, "f") }},
		{"rmdir not empty", ErrNotEmpty, func() error { return j.Rmdir(bg, RootIno, "d") }},
		{"rmdir dot", ErrInvalid, func() error { return j.Rmdir(bg, RootIno, ".") }},
		{"rmdir dotdot", ErrNotEmpty, func() error { return j.Rmdir(bg, RootIno, "..") }},
		{"rename missing", ErrNotFound, func() error { return j.Rename(bg, RootIno, "nope", RootIno, "x", 0) }},
		{"rename dir over file", ErrNotDir, func() error { return j.Rename(bg, RootIno, "empty", RootIno, "f", 0) }},
		{"rename file over dir", ErrIsDir, func() error { return j.Rename(bg, RootIno, "f", RootIno, "empty", 0) }},
		{"rename over non-empty dir", ErrNotEmpty, func() error { return j.Rename(bg, RootIno, "empty", RootIno, "d", 0) }},
		{"rename into own subtree", ErrInvalid, func() error { return j.Rename(bg, RootIno, "d", d.Ino, "x", 0) }},
		{"rename noreplace", ErrExist, func() error { return j.Rename(bg, RootIno, "f", RootIno, "l", RenameNoReplace) }},
		{"rename exchange missing", ErrNotFound, func() error { return j.Rename(bg, RootIno, "f", RootIno, "zz", RenameExchange) }},
		{"rename both flags", ErrInvalid, func() error { return j.Rename(bg, RootIno, "f", RootIno, "l", RenameExchange|RenameNoReplace) }},
		{"rename long", ErrNameTooLong, func() error { return j.Rename(bg, RootIno, "f", RootIno, long, 0) }},
		{"readdir file", ErrNotDir, func() error { _, err := j.ReadDir(bg, f.Ino, 0, 10); return err }},
		{"readdir missing", ErrNotFound, func() error { _, err := j.ReadDir(bg, 9999, 0, 10); return err }},
		{"getxattr missing", ErrNoXattr, func() error { _, err := j.GetXattr(bg, f.Ino, "user.x"); return err }},
		{"getxattr no inode", ErrNotFound, func() error { _, err := j.GetXattr(bg, 9999, "user.x"); return err }},
		{"setxattr replace missing", ErrNoXattr, func() error { return j.SetXattr(bg, f.Ino, "user.x", []byte("v"), XattrReplace) }},
		{"setxattr no name", ErrInvalid, func() error { return j.SetXattr(bg, f.Ino, "", []byte("v"), 0) }},
		{"setxattr too big", ErrInvalid, func() error { return j.SetXattr(bg, f.Ino, "user.x", make([]byte, 65<<10), 0) }},
		{"removexattr missing", ErrNoXattr, func() error { return j.RemoveXattr(bg, f.Ino, "user.x") }},
		{"listxattr no inode", ErrNotFound, func() error { _, err := j.ListXattr(bg, 9999); return err }},
		{"write dir", ErrIsDir, func() error { _, err := j.WriteAt(bg, d.Ino, []byte("x"), 0); return err }},
		{"read dir", ErrIsDir, func() error { _, err := j.ReadAt(bg, d.Ino, make([]byte, 1), 0); return err }},
		{"write symlink", ErrInvalid, func() error { _, err := j.WriteAt(bg, l.Ino, []byte("x"), 0); return err }},
		{"write negative", ErrInvalid, func() error { _, err := j.WriteAt(bg, f.Ino, []byte("x"), -1); return err }},
		{"truncate dir", ErrIsDir, func() error { s := uint64(0); _, err := j.SetAttr(bg, d.Ino, SetAttr{Size: &s}); return err }},
		{"setattr missing", ErrNotFound, func() error { m := uint32(0); _, err := j.SetAttr(bg, 9999, SetAttr{Mode: &m}); return err }},
		{"resolve missing", ErrNotFound, func() error { _, err := j.ResolvePath(bg, "d/nope"); return err }},
		{"resolve through file", ErrNotDir, func() error { _, err := j.ResolvePath(bg, "f/x"); return err }},
		{"status missing", ErrNotFound, func() error { _, err := j.Status(bg, 9999); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.fn()
			if c.err == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			wantErr(t, err, c.err)
		})
	}
	if got := must[string](t)(j.Readlink(bg, l.Ino)); got != "f" {
		t.Fatalf("readlink %q", got)
	}
	if ino := must[Ino](t)(j.ResolvePath(bg, "/d//inner")); ino == 0 {
		t.Fatal("resolve returned 0")
	}
	if ino := must[Ino](t)(j.ResolvePath(bg, "")); ino != RootIno {
		t.Fatal("resolve of empty path is not the root")
	}
	if err := j.Rmdir(bg, RootIno, "empty"); err != nil {
		t.Fatal(err)
	}
	checkDB(t, e.opts.Dir)
}

func TestReadOnlyAndClosed(t *testing.T) { bubble(t, testReadOnlyAndClosed) }

func testReadOnlyAndClosed(t *testing.T) {
	e := newEnv(t, nil)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	e.j.Close()
	_, err := e.j.GetAttr(bg, RootIno)
	wantErr(t, err, ErrClosed)
	e.opts.ReadOnly = true
	e.open()
	must[Attr](t)(e.j.GetAttr(bg, f.Ino))
	_, err = e.j.Mknod(bg, RootIno, "g", 0o644, 0, 0, 0)
	wantErr(t, err, ErrReadOnly)
	_, err = e.j.WriteAt(bg, f.Ino, []byte("x"), 0)
	wantErr(t, err, ErrReadOnly)
	wantErr(t, e.j.Unlink(bg, RootIno, "f"), ErrReadOnly)
}

func names(es []DirEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func TestReadDirOffsetsStable(t *testing.T) { bubble(t, testReadDirOffsetsStable) }

func testReadDirOffsetsStable(t *testing.T) {
	e := newEnv(t, nil)
	j := e.j
	for i := 0; i < 100; i++ {
		must[Attr](t)(j.Mknod(bg, RootIno, fmt.Sprintf("f%03d", i), 0o644, 0, 0, 0))
	}
	// Read in pages of 7 while removing entries already read and ones not
	// yet read, and adding new ones: every survivor from the start must be
	// seen exactly once, no removed-before-read entry seen.
	seen := map[string]int{}
	var off uint64
	removedAhead := map[string]bool{}
	for round := 0; ; round++ {
		page := must[[]DirEntry](t)(j.ReadDir(bg, RootIno, off, 7))
		if len(page) == 0 {
			break
		}
		for _, de := range page {
			seen[de.Name]++
			if de.Off <= off {
				t.Fatalf("cookie %d not after %d", de.Off, off)
			}
			off = de.Off
			if de.Mode&syscall.S_IFMT != syscall.S_IFREG {
				t.Fatalf("mode %o", de.Mode)
			}
		}
		// remove one already read, one ahead; add one
		if err := j.Unlink(bg, RootIno, page[0].Name); err != nil {
			t.Fatal(err)
		}
		ahead := fmt.Sprintf("f%03d", 99-round)
		if seen[ahead] == 0 && !removedAhead[ahead] {
			if err := j.Unlink(bg, RootIno, ahead); err == nil {
				removedAhead[ahead] = true
			}
		}
		if round < 10 {
			must[Attr](t)(j.Mknod(bg, RootIno, fmt.Sprintf("new%03d", round), 0o644, 0, 0, 0))
		}
		if round > 1000 {
			t.Fatal("listing does not end")
		}
	}
	for i := 0; i < 100; i++ {
		n := fmt.Sprintf("f%03d", i)
		if removedAhead[n] {
			if seen[n] != 0 {
				t.Fatalf("%s seen after removal", n)
			}
			continue
		}
		if seen[n] != 1 {
			t.Fatalf("%s seen %d times", n, seen[n])
		}
	}
	for n, c := range seen {
		if c != 1 {
			t.Fatalf("%s seen %d times", n, c)
		}
	}
	if seen["new000"] != 1 {
		t.Fatal("entries added during the listing are seen (they come after the cursor)")
	}
}

func TestRenameFlags(t *testing.T) { bubble(t, testRenameFlags) }

func testRenameFlags(t *testing.T) {
	e := newEnv(t, nil)
	j := e.j
	a := must[Attr](t)(j.Mknod(bg, RootIno, "a", 0o644, 0, 0, 0))
	b := must[Attr](t)(j.Mknod(bg, RootIno, "b", 0o644, 0, 0, 0))
	d1 := must[Attr](t)(j.Mkdir(bg, RootIno, "d1", 0o755, 0, 0))
	d2 := must[Attr](t)(j.Mkdir(bg, RootIno, "d2", 0o755, 0, 0))
	sub := must[Attr](t)(j.Mkdir(bg, d1.Ino, "sub", 0o755, 0, 0))

	// exchange file and file
	if err := j.Rename(bg, RootIno, "a", RootIno, "b", RenameExchange); err != nil {
		t.Fatal(err)
	}
	if got := must[Attr](t)(j.Lookup(bg, RootIno, "a")); got.Ino != b.Ino {
		t.Fatal("exchange did not swap")
	}
	// replace: b (now a's inode) over a
	if err := j.Rename(bg, RootIno, "b", RootIno, "a", 0); err != nil {
		t.Fatal(err)
	}
	if got := must[Attr](t)(j.Lookup(bg, RootIno, "a")); got.Ino != a.Ino {
		t.Fatal("replace failed")
	}
	e.reap()
	_, err := j.GetAttr(bg, b.Ino)
	wantErr(t, err, ErrNotFound) // replaced, not open: freed
	// move dir across parents: nlinks
	if err := j.Rename(bg, d1.Ino, "sub", d2.Ino, "sub", 0); err != nil {
		t.Fatal(err)
	}
	if n := must[Attr](t)(j.GetAttr(bg, d1.Ino)).Nlink; n != 2 {
		t.Fatalf("d1 nlink %d", n)
	}
	if n := must[Attr](t)(j.GetAttr(bg, d2.Ino)).Nlink; n != 3 {
		t.Fatalf("d2 nlink %d", n)
	}
	// replace an empty dir by a dir
	must[Attr](t)(j.Mkdir(bg, d1.Ino, "target", 0o755, 0, 0))
	if err := j.Rename(bg, d2.Ino, "sub", d1.Ino, "target", 0); err != nil {
		t.Fatal(err)
	}
	if n := must[Attr](t)(j.GetAttr(bg, d1.Ino)).Nlink; n != 3 {
		t.Fatalf("d1 nlink after replace %d", n)
	}
	if n := must[Attr](t)(j.GetAttr(bg, d2.Ino)).Nlink; n != 2 {
		t.Fatalf("d2 nlink after replace %d", n)
	}
	if got := must[Attr](t)(j.Lookup(bg, d1.Ino, "target")); got.Ino != sub.Ino {
		t.Fatal("dir replace")
	}
	// exchange a dir and a file across dirs
	if err := j.Rename(bg, d1.Ino, "target", RootIno, "a", RenameExchange); err != nil {
		t.Fatal(err)
	}
	if got := must[Attr](t)(j.Lookup(bg, RootIno, "a")); got.Ino != sub.Ino {
		t.Fatal("exchange dir")
	}
	if n := must[Attr](t)(j.GetAttr(bg, d1.Ino)).Nlink; n != 2 {
		t.Fatalf("d1 nlink after exchange %d", n)
	}
	if n := must[Attr](t)(j.GetAttr(bg, RootIno)).Nlink; n != 5 {
		t.Fatalf("root nlink after exchange %d", n)
	}
	// exchange a dir into its own subtree is refused
	must[Attr](t)(j.Mkdir(bg, sub.Ino, "deep", 0o755, 0, 0))
	wantErr(t, j.Rename(bg, RootIno, "a", sub.Ino, "deep", RenameExchange), ErrInvalid)
	// rename to itself is a no-op
	if err := j.Rename(bg, RootIno, "a", RootIno, "a", 0); err != nil {
		t.Fatal(err)
	}
	// hard links of one inode: rename one over the other is a no-op
	must[Attr](t)(j.Link(bg, a.Ino, RootIno, "a2"))
	if err := j.Rename(bg, d1.Ino, "target", RootIno, "a2", 0); err != nil {
		t.Fatal(err)
	}
	if err := j.Rename(bg, RootIno, "a2", d1.Ino, "target", 0); err != nil {
		t.Fatal(err)
	}
	must[Attr](t)(j.Lookup(bg, RootIno, "a2"))
	checkDB(t, e.opts.Dir)
}

func TestHardLinksAndUnlinkWhileOpen(t *testing.T) { bubble(t, testHardLinksAndUnlinkWhileOpen) }

func testHardLinksAndUnlinkWhileOpen(t *testing.T) {
	e := newEnv(t, nil)
	j := e.j
	f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	data := []byte("hello, world")
	must[int](t)(j.WriteAt(bg, f.Ino, data, 0))
	if err := j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	l := must[Attr](t)(j.Link(bg, f.Ino, RootIno, "g"))
	if l.Nlink != 2 || l.Ino != f.Ino {
		t.Fatalf("link attr %+v", l)
	}
	if err := j.Unlink(bg, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	if a := must[Attr](t)(j.GetAttr(bg, f.Ino)); a.Nlink != 1 {
		t.Fatalf("nlink %d", a.Nlink)
	}
	j.OpenFile(f.Ino)
	if err := j.Unlink(bg, RootIno, "g"); err != nil {
		t.Fatal(err)
	}
	// Unlinked but open: still readable and writable.
	buf := make([]byte, 64)
	n := must[int](t)(j.ReadAt(bg, f.Ino, buf, 0))
	if string(buf[:n]) != string(data) {
		t.Fatalf("read %q", buf[:n])
	}
	must[int](t)(j.WriteAt(bg, f.Ino, []byte("HELLO"), 0))
	if err := j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	if a := must[Attr](t)(j.GetAttr(bg, f.Ino)); a.Nlink != 0 {
		t.Fatalf("nlink %d", a.Nlink)
	}
	j.ReleaseFile(f.Ino)
	e.reap()
	_, err := j.GetAttr(bg, f.Ino)
	wantErr(t, err, ErrNotFound)
	_, err = j.Link(bg, f.Ino, RootIno, "back") // freed: nothing to link
	wantErr(t, err, ErrNotFound)
	var blocks int
	e.j.db.QueryRow(`SELECT count(*) FROM blocks WHERE refcount > 0`).Scan(&blocks)
	if blocks != 0 {
		t.Fatalf("%d blocks still referenced", blocks)
	}

	// An open unlinked file at Close is reclaimed at the next Open.
	h := must[Attr](t)(j.Mknod(bg, RootIno, "h", 0o644, 0, 0, 0))
	must[int](t)(j.WriteAt(bg, h.Ino, data, 0))
	j.Fsync(bg, h.Ino)
	j.OpenFile(h.Ino)
	j.Unlink(bg, RootIno, "h")
	e.reopen()
	_, err = e.j.GetAttr(bg, h.Ino)
	wantErr(t, err, ErrNotFound)
}

func TestXattrs(t *testing.T) { bubble(t, testXattrs) }

func testXattrs(t *testing.T) {
	e := newEnv(t, nil)
	j := e.j
	f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	if err := j.SetXattr(bg, f.Ino, "user.a", []byte("1"), XattrCreate); err != nil {
		t.Fatal(err)
	}
	wantErr(t, j.SetXattr(bg, f.Ino, "user.a", []byte("2"), XattrCreate), ErrExist)
	if err := j.SetXattr(bg, f.Ino, "user.a", []byte("3"), XattrReplace); err != nil {
		t.Fatal(err)
	}
	if err := j.SetXattr(bg, f.Ino, "user.b", nil, 0); err != nil {
		t.Fatal(err)
	}
	if v := must[[]byte](t)(j.GetXattr(bg, f.Ino, "user.a")); string(v) != "3" {
		t.Fatalf("value %q", v)
	}
	if v := must[[]byte](t)(j.GetXattr(bg, f.Ino, "user.b")); v == nil || len(v) != 0 {
		t.Fatalf("empty value %v", v)
	}
	if l := must[[]string](t)(j.ListXattr(bg, f.Ino)); !slices.Equal(l, []string{"user.a", "user.b"}) {
		t.Fatalf("list %v", l)
	}
	if err := j.RemoveXattr(bg, f.Ino, "user.a"); err != nil {
		t.Fatal(err)
	}
	if l := must[[]string](t)(j.ListXattr(bg, f.Ino)); !slices.Equal(l, []string{"user.b"}) {
		t.Fatalf("list %v", l)
	}
	// xattrs go with the inode
	if err := j.Unlink(bg, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	checkDB(t, e.opts.Dir)
}

func TestTimes(t *testing.T) { bubble(t, testTimes) }

func testTimes(t *testing.T) {
	e := newEnv(t, nil)
	j := e.j
	step := func() { time.Sleep(2 * time.Millisecond) }
	root0 := must[Attr](t)(j.GetAttr(bg, RootIno))
	step()
	f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	root1 := must[Attr](t)(j.GetAttr(bg, RootIno))
	if !root1.Mtime.After(root0.Mtime) || !root1.Ctime.After(root0.Ctime) {
		t.Fatal("create did not touch parent mtime/ctime")
	}
	step()
	mode := uint32(0o600)
	a := must[Attr](t)(j.SetAttr(bg, f.Ino, SetAttr{Mode: &mode}))
	if !a.Ctime.After(f.Ctime) || !a.Mtime.Equal(f.Mtime) || a.Mode != syscall.S_IFREG|0o600 {
		t.Fatalf("chmod: %+v vs %+v", a, f)
	}
	step()
	b := must[Attr](t)(j.Link(bg, f.Ino, RootIno, "g"))
	if !b.Ctime.After(a.Ctime) {
		t.Fatal("link did not touch ctime")
	}
	step()
	must[int](t)(j.WriteAt(bg, f.Ino, []byte("x"), 0))
	c := must[Attr](t)(j.GetAttr(bg, f.Ino))
	if !c.Mtime.After(b.Mtime) || !c.Ctime.After(b.Ctime) || c.Size != 1 {
		t.Fatalf("write: %+v", c)
	}
	step()
	root2 := must[Attr](t)(j.GetAttr(bg, RootIno))
	if err := j.Rename(bg, RootIno, "g", RootIno, "h", 0); err != nil {
		t.Fatal(err)
	}
	root3 := must[Attr](t)(j.GetAttr(bg, RootIno))
	d := must[Attr](t)(j.GetAttr(bg, f.Ino))
	if !root3.Mtime.After(root2.Mtime) || !d.Ctime.After(c.Ctime) {
		t.Fatal("rename did not touch times")
	}
	// explicit times survive a flush of dirty data
	when := time.Unix(1_000_000, 5)
	must[int](t)(j.WriteAt(bg, f.Ino, []byte("yy"), 0))
	x := must[Attr](t)(j.SetAttr(bg, f.Ino, SetAttr{Mtime: &when, Atime: &when}))
	if !x.Mtime.Equal(when) || !x.Atime.Equal(when) {
		t.Fatalf("utimes: %+v", x)
	}
	j.Fsync(bg, f.Ino)
	e.reopen()
	y := must[Attr](t)(e.j.GetAttr(bg, f.Ino))
	if !y.Mtime.Equal(when) || y.Size != 2 {
		t.Fatalf("after reopen: %+v", y)
	}
	step()
	uid, gid := uint32(7), uint32(8)
	z := must[Attr](t)(e.j.SetAttr(bg, f.Ino, SetAttr{Uid: &uid, Gid: &gid}))
	if z.Uid != 7 || z.Gid != 8 || !z.Ctime.After(y.Ctime) {
		t.Fatalf("chown: %+v", z)
	}
}

func TestStatFS(t *testing.T) { bubble(t, testStatFS) }

func testStatFS(t *testing.T) {
	e := newEnv(t, nil)
	s := must[StatFS](t)(e.j.StatFS(bg))
	if s.TotalBytes != 4<<30 || s.FreeBytes != 2<<30 || s.Files != 1 {
		t.Fatalf("statfs %+v", s)
	}
}

// TestUnlinkFreesEmptyFileAtOnce: the last unlink of a closed file with
// no data and nothing in memory drops its inode row in its own
// transaction (no reaper pass needed); an open file, a file with data, or
// a hard-linked one keeps its row until the reaper or its last release.
func TestUnlinkFreesEmptyFileAtOnce(t *testing.T) { bubble(t, testUnlinkFreesEmptyFileAtOnce) }

func testUnlinkFreesEmptyFileAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	j := e.j
	rows := func(ino Ino) int {
		t.Helper()
		var n int
		if err := j.db.QueryRowContext(bg, `SELECT count(*) FROM inodes WHERE ino = ?`, ino).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Empty, closed: gone with the unlink; so is a symlink's row.
	a := must[Attr](t)(j.Mknod(bg, RootIno, "empty", 0o644, 0, 0, 0))
	s := must[Attr](t)(j.Symlink(bg, RootIno, "link", "target", 0, 0))
	for _, name := range []string{"empty", "link"} {
		if err := j.Unlink(bg, RootIno, name); err != nil {
			t.Fatal(err)
		}
	}
	applyUnlinks(t, j)
	if rows(a.Ino) != 0 || rows(s.Ino) != 0 {
		t.Fatal("an unlinked empty file or symlink kept its inode row")
	}
	var n int
	if err := j.db.QueryRowContext(bg, `SELECT count(*) FROM symlinks WHERE ino = ?`, s.Ino).Scan(&n); err != nil || n != 0 {
		t.Fatalf("symlink row left: %d, %v", n, err)
	}
	// Open: the row stays (nlink 0) while the handle lives.
	o := must[Attr](t)(j.Mknod(bg, RootIno, "open", 0o644, 0, 0, 0))
	j.OpenFile(o.Ino)
	if err := j.Unlink(bg, RootIno, "open"); err != nil {
		t.Fatal(err)
	}
	if rows(o.Ino) != 1 {
		t.Fatal("unlink dropped the row of an open file")
	}
	if _, err := j.WriteAt(bg, o.Ino, []byte("still here"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if k, err := j.ReadAt(bg, o.Ino, buf, 0); k != 10 || string(buf) != "still here" {
		t.Fatalf("read of an open unlinked file: %q, %v", buf[:k], err)
	}
	j.ReleaseFile(o.Ino)
	e.reap()
	if rows(o.Ino) != 0 {
		t.Fatal("the released unlinked file was not freed")
	}
	// Hard-linked: one unlink leaves the other name and the row.
	h := must[Attr](t)(j.Mknod(bg, RootIno, "h1", 0o644, 0, 0, 0))
	must[Attr](t)(j.Link(bg, h.Ino, RootIno, "h2"))
	if err := j.Unlink(bg, RootIno, "h1"); err != nil {
		t.Fatal(err)
	}
	if got := must[Attr](t)(j.Lookup(bg, RootIno, "h2")); got.Nlink != 1 {
		t.Fatalf("nlink after one unlink of two: %d", got.Nlink)
	}
	// With data: the reaper frees it, blocks and all.
	d := must[Attr](t)(j.Mknod(bg, RootIno, "data", 0o644, 0, 0, 0))
	j.OpenFile(d.Ino)
	if _, err := j.WriteAt(bg, d.Ino, []byte("some bytes"), 0); err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(bg, d.Ino); err != nil {
		t.Fatal(err)
	}
	j.ReleaseFile(d.Ino)
	if err := j.Unlink(bg, RootIno, "data"); err != nil {
		t.Fatal(err)
	}
	e.reap()
	if rows(d.Ino) != 0 {
		t.Fatal("the reaper did not free the unlinked file with data")
	}
	if err := j.db.QueryRowContext(bg, `SELECT count(*) FROM blockmap WHERE ino = ?`, d.Ino).Scan(&n); err != nil || n != 0 {
		t.Fatalf("block map rows left: %d, %v", n, err)
	}
	// A directory is still refused, and keeps its entry.
	must[Attr](t)(j.Mkdir(bg, RootIno, "dir", 0o755, 0, 0))
	wantErr(t, j.Unlink(bg, RootIno, "dir"), ErrIsDir)
	must[Attr](t)(j.Lookup(bg, RootIno, "dir"))
}

// An open file with no name left (open(O_TMPFILE) makes one) may be
// linked again, linkat(2) of its descriptor; it keeps its data and is not
// freed at its release.
func TestLinkOfOpenUnlinkedFile(t *testing.T) { bubble(t, testLinkOfOpenUnlinkedFile) }

func testLinkOfOpenUnlinkedFile(t *testing.T) {
	e := newEnv(t, nil)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "tmp", 0o100600, 0, 0, 0))
	e.j.OpenFile(a.Ino)
	if err := e.j.Unlink(bg, RootIno, "tmp"); err != nil {
		t.Fatal(err)
	}
	must[int](t)(e.j.WriteAt(bg, a.Ino, []byte("data"), 0))
	l, err := e.j.Link(bg, a.Ino, RootIno, "named")
	if err != nil {
		t.Fatalf("link: %v", err)
	}
	if l.Nlink != 1 {
		t.Errorf("nlink %d", l.Nlink)
	}
	e.j.ReleaseFile(a.Ino)
	e.reap()
	e.reopen()
	got := must[Attr](t)(e.j.Lookup(bg, RootIno, "named"))
	p := make([]byte, 8)
	n, _ := e.j.ReadAt(bg, got.Ino, p, 0)
	if string(p[:n]) != "data" {
		t.Fatalf("read %q", p[:n])
	}
}
