package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestDeferredCreate: a create of a regular file is answered from memory
// and applied later; until then every read sees the file, and anything
// that changes or lists it applies it first.
func TestDeferredCreate(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		files0 := must[StatFS](t)(j.StatFS(bg)).Files
		time.Sleep(time.Millisecond) // the bubble's clock: the parent's mtime must move
		f := must[Attr](t)(j.Mknod(bg, RootIno, "f", sIFREG|0o640, 0, 7, 8))
		if entryRows(t, j, "f") != 0 {
			t.Fatal("the create was applied at once, not deferred")
		}
		if f.Mode != sIFREG|0o640 || f.Uid != 7 || f.Gid != 8 || f.Nlink != 1 || f.Size != 0 {
			t.Fatalf("create's reply: %+v", f)
		}
		// Every read answers from memory.
		if a := must[Attr](t)(j.Lookup(bg, RootIno, "f")); a != f {
			t.Fatalf("lookup: %+v, want %+v", a, f)
		}
		if a := must[Attr](t)(j.GetAttr(bg, f.Ino)); a != f {
			t.Fatalf("getattr: %+v, want %+v", a, f)
		}
		if p := must[Attr](t)(j.GetAttr(bg, RootIno)); !p.Mtime.Equal(f.Mtime) || !p.Ctime.Equal(f.Mtime) {
			t.Fatalf("the parent's mtime %v ctime %v, want the create's %v", p.Mtime, p.Ctime, f.Mtime)
		}
		if _, err := j.GetXattr(bg, f.Ino, "user.x"); !errors.Is(err, ErrNoXattr) {
			t.Fatalf("getxattr: %v", err)
		}
		if l := must[[]string](t)(j.ListXattr(bg, f.Ino)); len(l) != 0 {
			t.Fatalf("listxattr: %v", l)
		}
		if _, err := j.Lookup(bg, f.Ino, "x"); !errors.Is(err, ErrNotDir) {
			t.Fatalf("lookup under the file: %v", err)
		}
		if _, err := j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0); !errors.Is(err, ErrExist) {
			t.Fatalf("second create of the name: %v", err)
		}
		if n := must[StatFS](t)(j.StatFS(bg)).Files; n != files0+1 {
			t.Fatalf("statfs counts %d files, want %d", n, files0+1)
		}
		// Open, write, read back, flush: the flush applies it.
		j.OpenFile(f.Ino)
		must[int](t)(j.WriteAt(bg, f.Ino, []byte("hello"), 0))
		buf := make([]byte, 10)
		if n := must[int](t)(j.ReadAt(bg, f.Ino, buf, 0)); string(buf[:n]) != "hello" {
			t.Fatalf("read back %q", buf[:n])
		}
		if entryRows(t, j, "f") != 0 {
			t.Fatal("a write applied the create")
		}
		if err := j.Flush(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(f.Ino)
		applyUnlinks(t, j) // the close's deferred flush, with the create
		var size int64
		var mode, uid uint32
		if err := j.db.QueryRow(`SELECT size, mode, uid FROM inodes WHERE ino = ?`, f.Ino).Scan(&size, &mode, &uid); err != nil || size != 5 || mode != f.Mode || uid != 7 {
			t.Fatalf("row after the flush: size %d mode %o uid %d, %v", size, mode, uid, err)
		}
		// A READDIR lists pending creates.
		g := must[Attr](t)(j.Mknod(bg, RootIno, "g", 0o644, 0, 0, 0))
		var names []string
		for _, de := range must[[]DirEntry](t)(j.ReadDir(bg, RootIno, 0, 100)) {
			names = append(names, de.Name)
		}
		if !slices.Contains(names, "g") || entryRows(t, j, "g") != 1 {
			t.Fatalf("readdir after a create: %v", names)
		}
		// An unlink of a pending create applies it, then unlinks.
		k := must[Attr](t)(j.Mknod(bg, RootIno, "k", 0o644, 0, 0, 0))
		if err := j.Unlink(bg, RootIno, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := j.Lookup(bg, RootIno, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup after unlink: %v", err)
		}
		if _, err := j.GetAttr(bg, k.Ino); !errors.Is(err, ErrNotFound) {
			t.Fatalf("getattr of the unlinked pending create: %v", err)
		}
		// A rename and a setattr of pending creates.
		must[Attr](t)(j.Mknod(bg, RootIno, "r", 0o644, 0, 0, 0))
		if err := j.Rename(bg, RootIno, "r", RootIno, "r2", 0); err != nil {
			t.Fatal(err)
		}
		s := must[Attr](t)(j.Mknod(bg, RootIno, "s", 0o644, 0, 0, 0))
		m := uint32(0o600)
		if a := must[Attr](t)(j.SetAttr(bg, s.Ino, SetAttr{Mode: &m})); a.Mode != sIFREG|0o600 {
			t.Fatalf("setattr of a pending create: mode %o", a.Mode)
		}
		// Inode numbers: a synchronous create (symlink) and deferred ones
		// never share one.
		d := must[Attr](t)(j.Symlink(bg, RootIno, "d", "target", 0, 0))
		x := must[Attr](t)(j.Mknod(bg, RootIno, "x", 0o644, 0, 0, 0))
		inos := []Ino{f.Ino, g.Ino, k.Ino, s.Ino, d.Ino, x.Ino}
		for i := 1; i < len(inos); i++ {
			if inos[i] <= inos[i-1] {
				t.Fatalf("inode numbers %v: not increasing", inos)
			}
		}
		// Close applies what is pending; all of it is there after.
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		e.j = nil
		e.open()
		for _, name := range []string{"f", "g", "r2", "s", "d", "x"} {
			must[Attr](t)(e.j.Lookup(bg, RootIno, name))
		}
		if a := must[Attr](t)(e.j.Lookup(bg, RootIno, "x")); a.Ino != x.Ino {
			t.Fatalf("x reopened as inode %d, made as %d", a.Ino, x.Ino)
		}
	})
}

// TestCreateLogReplay: Open applies the creates a kill -9 left in the log,
// in order with the unlinks, and drops those already applied and those
// that do not fit the database.
func TestCreateLogReplay(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	keep := must[Attr](t)(e.j.Mknod(bg, RootIno, "keep", 0o644, 0, 0, 0))
	file := must[Attr](t)(e.j.Mknod(bg, RootIno, "file", 0o644, 0, 0, 0))
	applyUnlinks(t, e.j)
	var seq int64
	if err := e.j.db.QueryRow(`SELECT seq FROM sqlite_sequence WHERE name = 'inodes'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	at := time.Unix(1700000000, 123).UnixNano()
	mk := func(parent Ino, name string, ino int64) unlinkRec {
		return unlinkRec{parent: parent, ino: Ino(ino), name: name, create: true, mode: sIFREG | 0o600, uid: 5, gid: 6, t: at}
	}
	var b []byte
	b = appendUnlink(b, mk(RootIno, "old", seq))                                 // applied before the crash: its number is taken
	b = appendUnlink(b, mk(RootIno, "new", seq+1))                               // replayed
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: keep.Ino, name: "keep"}) // then keep's name is free...
	b = appendUnlink(b, mk(RootIno, "keep", seq+2))                              // ...and made again
	b = appendUnlink(b, mk(file.Ino, "under", seq+3))                            // its parent is no directory: dropped
	b = appendUnlink(b, mk(RootIno, "file", seq+4))                              // its name is taken: dropped
	torn := appendUnlink(nil, mk(RootIno, "torn", seq+5))
	b = append(b, torn[:len(torn)-1]...)
	path := filepath.Join(e.opts.Dir, unlinkLogName)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.opts.UnlinkDelay = -1 // deferral off now: the log is replayed all the same
	e.open()
	j := e.j
	for name, want := range map[string]Ino{"new": Ino(seq + 1), "keep": Ino(seq + 2), "file": file.Ino} {
		a, err := j.Lookup(bg, RootIno, name)
		if err != nil || a.Ino != want {
			t.Fatalf("after replay, %q is inode %d (%v), want %d", name, a.Ino, err, want)
		}
	}
	if a := must[Attr](t)(j.Lookup(bg, RootIno, "new")); a.Mode != sIFREG|0o600 || a.Uid != 5 || a.Gid != 6 || a.Mtime.UnixNano() != at {
		t.Fatalf("replayed create: %+v", a)
	}
	for _, name := range []string{"old", "torn"} {
		if _, err := j.Lookup(bg, RootIno, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after replay, lookup of %q: %v", name, err)
		}
	}
	if _, err := j.Lookup(bg, file.Ino, "under"); !errors.Is(err, ErrNotDir) {
		t.Fatalf("after replay, lookup under a file: %v", err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("log after replay: %v, %v", st, err)
	}
	// The next inode number is past every replayed one.
	if a := must[Attr](t)(j.Mknod(bg, RootIno, "next", 0o644, 0, 0, 0)); a.Ino <= Ino(seq+2) {
		t.Fatalf("a create after the replay took inode %d, at most a replayed one (%d)", a.Ino, seq+2)
	}
	applyUnlinks(t, j)
	var n int
	j.db.QueryRow(`SELECT count(*) FROM inodes WHERE nlink = 1 AND ino NOT IN (SELECT ino FROM entries)`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d inodes without an entry after the replay", n)
	}
}

// TestDeferredCreatesBatch: many pending creates, between pending
// unlinks, are applied in one transaction, several to a statement, each
// with its own inode number, name and attributes.
func TestDeferredCreatesBatch(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		old := must[Attr](t)(j.Mknod(bg, RootIno, "old", 0o644, 0, 0, 0))
		applyUnlinks(t, j)
		made := map[string]Attr{}
		for i := range 2*createRows + 5 {
			if i == createRows+3 {
				if err := j.Unlink(bg, RootIno, "old"); err != nil { // a pending unlink between the creates
					t.Fatal(err)
				}
			}
			name := fmt.Sprintf("n%03d", i)
			made[name] = must[Attr](t)(j.Mknod(bg, RootIno, name, sIFREG|uint32(0o600+i%8), 0, uint32(i), uint32(2*i)))
		}
		if entryRows(t, j, "n000") != 0 || entryRows(t, j, "old") != 1 {
			t.Fatal("not deferred")
		}
		applyUnlinks(t, j)
		for name, want := range made {
			a, err := scanAttr(j.db.QueryRow(`SELECT `+attrCols+` FROM entries e JOIN inodes i ON i.ino = e.ino WHERE e.parent = ? AND e.name = ?`, RootIno, name))
			if err != nil || a != want {
				t.Fatalf("%s: row %+v (%v), made %+v", name, a, err, want)
			}
		}
		if _, err := j.GetAttr(bg, old.Ino); !errors.Is(err, ErrNotFound) || entryRows(t, j, "old") != 0 {
			t.Fatalf("the unlink between the creates: %v, %d rows", err, entryRows(t, j, "old"))
		}
	})
}

// TestFoldedCreateKeepsParentRow: a flush that commits its file's pending
// create leaves the parent's row in the attribute cache, as the commit
// left it (the kernel asks for the directory's attributes before the next
// create in it); a transaction that changes the parent after the folded
// creates leaves nothing stale there.
func TestFoldedCreateKeepsParentRow(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
		dbRow := func() Attr {
			t.Helper()
			return must[Attr](t)(scanAttr(j.db.QueryRow(getattrQ, d.Ino)))
		}
		for i := range 3 {
			time.Sleep(time.Millisecond) // the bubble's clock: the parent's mtime must move
			f := must[Attr](t)(j.Mknod(bg, d.Ino, fmt.Sprintf("f%d", i), sIFREG|0o644, 0, 0, 0))
			j.OpenFile(f.Ino)
			must[int](t)(j.WriteAt(bg, f.Ino, []byte("data"), 0))
			// fsync: a flush that commits (a close's is deferred).
			if err := j.Fsync(bg, f.Ino); err != nil {
				t.Fatal(err)
			}
			j.ReleaseFile(f.Ino)
			want := dbRow()
			if !want.Mtime.Equal(f.Mtime) {
				t.Fatalf("file %d: the parent's mtime in the database %v, want the create's %v", i, want.Mtime, f.Mtime)
			}
			if _, ok := j.ac.get(d.Ino, j.commitGen.Load()); !ok {
				t.Fatalf("file %d: the flush that applied the create left no row of the parent in the attribute cache", i)
			}
			if got := must[Attr](t)(j.GetAttr(bg, d.Ino)); got != want {
				t.Fatalf("file %d: getattr of the parent %+v, want the database's %+v", i, got, want)
			}
		}
		// A create pending, then a symlink in the same directory (a
		// create that is not deferred): its transaction folds the create
		// and changes the parent again.
		time.Sleep(time.Millisecond)
		must[Attr](t)(j.Mknod(bg, d.Ino, "g", sIFREG|0o644, 0, 0, 0))
		time.Sleep(time.Millisecond)
		sl := must[Attr](t)(j.Symlink(bg, d.Ino, "sub", "target", 0, 0))
		want := dbRow()
		if !want.Mtime.Equal(sl.Mtime) {
			t.Fatalf("the parent's mtime after a symlink in it: %v, want the symlink's %v", want.Mtime, sl.Mtime)
		}
		if got := must[Attr](t)(j.GetAttr(bg, d.Ino)); got != want {
			t.Fatalf("after a symlink: getattr of the parent %+v, want the database's %+v", got, want)
		}
		// A create pending, then a chmod of the directory, deferred
		// behind it (dirattr.go); the fsync of a file folds both, the
		// chmod after the create, into a commit that says it changes
		// the file's row alone: the parent's row as the create left it
		// must not reach the attribute cache.
		time.Sleep(time.Millisecond)
		must[Attr](t)(j.Mknod(bg, d.Ino, "h", sIFREG|0o644, 0, 0, 0))
		time.Sleep(time.Millisecond)
		mode := uint32(0o700)
		must[Attr](t)(j.SetAttr(bg, d.Ino, SetAttr{Mode: &mode}))
		pending := must[Attr](t)(j.GetAttr(bg, d.Ino))
		time.Sleep(time.Millisecond)
		f0 := must[Attr](t)(j.Lookup(bg, d.Ino, "f0"))
		j.OpenFile(f0.Ino)
		must[int](t)(j.WriteAt(bg, f0.Ino, []byte("more"), 4))
		if err := j.Fsync(bg, f0.Ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(f0.Ino)
		want = dbRow()
		if want.Mode&0o7777 != 0o700 {
			t.Fatalf("the parent's mode after a chmod: %o", want.Mode)
		}
		if pending != want {
			t.Fatalf("while pending: getattr of the parent %+v, then the database's %+v", pending, want)
		}
		if got := must[Attr](t)(j.GetAttr(bg, d.Ino)); got != want {
			t.Fatalf("after a chmod: getattr of the parent %+v, want the database's %+v", got, want)
		}
	})
}

// dbNlink is directory ino's link count in the database (-1: no row).
func dbNlink(t *testing.T, j *Journal, ino Ino) int {
	t.Helper()
	return queryInt(t, j, `SELECT coalesce((SELECT nlink FROM inodes WHERE ino = ?), -1)`, ino)
}

// TestDeferredMkdir: a mkdir is answered from memory and applied later,
// as a create is: the new directory, what is made in it meanwhile and its
// parent's link count and times read as after the apply, before it and
// after it; a READDIR of it lists what is pending in it; an rmdir of it
// takes it away for good; a kill -9 loses none of it.
func TestDeferredMkdir(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		root0 := must[Attr](t)(j.GetAttr(bg, RootIno))
		time.Sleep(time.Millisecond) // the bubble's clock: times must move
		d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o750, 7, 8))
		if entryRows(t, j, "d") != 0 {
			t.Fatal("the mkdir was applied at once, not deferred")
		}
		if d.Mode != sIFDIR|0o750 || d.Nlink != 2 || d.Uid != 7 || d.Gid != 8 {
			t.Fatalf("mkdir's reply: %+v", d)
		}
		if a := must[Attr](t)(j.GetAttr(bg, RootIno)); a.Nlink != root0.Nlink+1 || !a.Mtime.Equal(d.Mtime) {
			t.Fatalf("the parent with a pending mkdir: nlink %d mtime %v, want %d and %v", a.Nlink, a.Mtime, root0.Nlink+1, d.Mtime)
		}
		if a := must[Attr](t)(j.Lookup(bg, RootIno, "d")); a != d {
			t.Fatalf("lookup: %+v, want %+v", a, d)
		}
		if des := must[[]DirEntry](t)(j.ReadDir(bg, d.Ino, 0, 100)); len(des) != 0 {
			t.Fatalf("readdir of the new directory: %v", des)
		}
		// Made in it while it is pending: a directory and a file.
		time.Sleep(time.Millisecond)
		sub := must[Attr](t)(j.Mkdir(bg, d.Ino, "sub", 0o755, 0, 0))
		f := must[Attr](t)(j.Mknod(bg, d.Ino, "f", 0o644, 0, 0, 0))
		if a := must[Attr](t)(j.GetAttr(bg, d.Ino)); a.Nlink != 3 || !a.Mtime.Equal(f.Mtime) {
			t.Fatalf("the pending directory with a pending subdirectory and file: nlink %d mtime %v, want 3 and %v", a.Nlink, a.Mtime, f.Mtime)
		}
		if a := must[Attr](t)(j.Lookup(bg, d.Ino, "sub")); a != sub {
			t.Fatalf("lookup in the pending directory: %+v, want %+v", a, sub)
		}
		if _, err := j.Mkdir(bg, d.Ino, "sub", 0o755, 0, 0); !errors.Is(err, ErrExist) {
			t.Fatalf("second mkdir of the name: %v", err)
		}
		if dbNlink(t, j, d.Ino) != -1 {
			t.Fatal("a mkdir or create in the pending directory applied it")
		}
		// An rmdir of an empty pending directory.
		gone := must[Attr](t)(j.Mkdir(bg, RootIno, "gone", 0o755, 0, 0))
		if err := j.Rmdir(bg, RootIno, "gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := j.Lookup(bg, RootIno, "gone"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup after rmdir: %v", err)
		}
		// A READDIR of the pending directory lists what is in it.
		var names []string
		for _, de := range must[[]DirEntry](t)(j.ReadDir(bg, d.Ino, 0, 100)) {
			names = append(names, de.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"f", "sub"}) {
			t.Fatalf("readdir of the directory: %v", names)
		}
		applyUnlinks(t, j)
		if n := dbNlink(t, j, d.Ino); n != 3 {
			t.Fatalf("the directory's row: nlink %d, want 3", n)
		}
		if n := dbNlink(t, j, sub.Ino); n != 2 {
			t.Fatalf("the subdirectory's row: nlink %d, want 2", n)
		}
		if n := dbNlink(t, j, RootIno); n != int(root0.Nlink)+1 {
			t.Fatalf("the root's row: nlink %d, want %d", n, root0.Nlink+1)
		}
		if n := dbNlink(t, j, gone.Ino); n != -1 || entryRows(t, j, "gone") != 0 {
			t.Fatalf("the removed directory came back: nlink %d, %d entries", n, entryRows(t, j, "gone"))
		}
		for _, a := range []Attr{must[Attr](t)(j.GetAttr(bg, RootIno)), must[Attr](t)(j.Lookup(bg, RootIno, "d"))} {
			if want := uint32(dbNlink(t, j, a.Ino)); a.Nlink != want {
				t.Fatalf("inode %d after the apply: nlink %d, the row says %d", a.Ino, a.Nlink, want)
			}
		}
		// A kill -9 with a mkdir, a mkdir in it and a create in that
		// pending: Open replays them, in order.
		m := must[Attr](t)(j.Mkdir(bg, RootIno, "m", 0o755, 0, 0))
		mm := must[Attr](t)(j.Mkdir(bg, m.Ino, "mm", 0o700, 0, 0))
		mf := must[Attr](t)(j.Mknod(bg, mm.Ino, "mf", 0o600, 0, 0, 0))
		e.killAndReopen()
		j = e.j
		for _, c := range []struct {
			parent Ino
			name   string
			want   Attr
			nlink  uint32
		}{{RootIno, "m", m, 3}, {m.Ino, "mm", mm, 2}, {mm.Ino, "mf", mf, 1}} {
			a, err := j.Lookup(bg, c.parent, c.name)
			if err != nil || a.Ino != c.want.Ino || a.Mode != c.want.Mode || a.Nlink != c.nlink {
				t.Fatalf("after the replay, %q: %+v (%v), want inode %d mode %o nlink %d", c.name, a, err, c.want.Ino, c.want.Mode, c.nlink)
			}
		}
	})
}

// TestFailedSyncCreateKeepsInodeNumbers: a synchronous create (a symlink)
// that fails (its name is taken) rolls back the pending creates it folded,
// which stay pending with their inode numbers: the next deferred create
// must not take one of them again. It took sqlite_sequence's next number,
// a pending directory's, and every transaction after it failed on the
// fold's UNIQUE constraint (the drive could change nothing).
func TestFailedSyncCreateKeepsInodeNumbers(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	if _, err := j.Symlink(bg, RootIno, "d", "target", 0, 0); !errors.Is(err, ErrExist) {
		t.Fatalf("symlink over a pending directory's name: %v, want ErrExist", err)
	}
	f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	if f.Ino == d.Ino {
		t.Fatalf("the create after the failed symlink took the pending mkdir's inode %d", d.Ino)
	}
	applyUnlinks(t, j)
	for _, c := range []struct {
		name string
		want Attr
	}{{"d", d}, {"f", f}} {
		if a, err := j.Lookup(bg, RootIno, c.name); err != nil || a.Ino != c.want.Ino || a.Mode != c.want.Mode {
			t.Fatalf("lookup of %q after the apply: %+v, %v; want inode %d mode %o", c.name, a, err, c.want.Ino, c.want.Mode)
		}
	}
}

// TestDeferredCreatesSkipTheWriteLock: a deferred create, mkdir and
// change of a directory's times do not wait for wmu, which the
// unlinker's apply holds for a batch of records: under cp -a, about one
// create in fifty waited for it, 5 ms each, a fifth of the copy. What
// they logged meanwhile is applied as if they had waited.
func TestDeferredCreatesSkipTheWriteLock(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	applyUnlinks(t, j)
	mt := time.Unix(1_000_000_000, 0)
	var f, sub Attr
	err := whileLocked(t, &j.wmu, "a deferred create, mkdir or directory change", func() error { // as the unlinker's apply holds it
		var err error
		if f, err = j.Mknod(bg, d.Ino, "f", sIFREG|0o640, 0, 0, 0); err != nil {
			return err
		}
		if sub, err = j.Mkdir(bg, d.Ino, "sub", 0o700, 0, 0); err != nil {
			return err
		}
		_, err = j.SetAttr(bg, d.Ino, SetAttr{Atime: &mt, Mtime: &mt})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	applyUnlinks(t, j)
	if n := dbNlink(t, j, d.Ino); n != 3 {
		t.Fatalf("the directory's row: nlink %d, want 3", n)
	}
	for name, want := range map[string]Attr{"f": f, "sub": sub} {
		if a, err := j.Lookup(bg, d.Ino, name); err != nil || a.Ino != want.Ino || a.Mode != want.Mode {
			t.Fatalf("after the apply, %q: %+v (%v), want inode %d mode %o", name, a, err, want.Ino, want.Mode)
		}
	}
	if a := must[Attr](t)(j.GetAttr(bg, d.Ino)); !a.Mtime.Equal(mt) || !a.Atime.Equal(mt) {
		t.Fatalf("the directory's times after the apply: mtime %v atime %v, want %v (the change came after the creates)", a.Mtime, a.Atime, mt)
	}
}
