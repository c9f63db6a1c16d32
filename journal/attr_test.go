package journal

import (
	"bytes"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// A chmod, chown and utimensat on a file with unflushed data (what cp -a
// does after its write) wait in memory: GetAttr shows them at once, the
// database gets them in the flush's commit, and they survive reopen. On a
// clean file the same SetAttr commits at once.
func TestSetAttrWaitsForFlush(t *testing.T) { bubble(t, testSetAttrWaitsForFlush) }

func testSetAttrWaitsForFlush(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o100600, 0, 0, 0))
	applyUnlinks(t, e.j) // the deferred create: the test reads the row
	if _, err := e.j.WriteAt(bg, a.Ino, []byte("some bytes"), 0); err != nil {
		t.Fatal(err)
	}
	at, mt := time.Unix(1600000000, 5), time.Unix(1650000000, 7)
	mode, uid, gid := uint32(0o4751), uint32(1000), uint32(2000)
	before := time.Now()
	must[Attr](t)(e.j.SetAttr(bg, a.Ino, SetAttr{Mode: &mode}))
	must[Attr](t)(e.j.SetAttr(bg, a.Ino, SetAttr{Atime: &at, Mtime: &mt}))
	got := must[Attr](t)(e.j.SetAttr(bg, a.Ino, SetAttr{Uid: &uid, Gid: &gid}))

	want := func(got Attr, where string) {
		t.Helper()
		if got.Mode != 0o104751 || got.Uid != uid || got.Gid != gid || !got.Atime.Equal(at) || !got.Mtime.Equal(mt) || got.Size != 10 {
			t.Errorf("%s: mode %o uid %d gid %d atime %v mtime %v size %d", where, got.Mode, got.Uid, got.Gid, got.Atime, got.Mtime, got.Size)
		}
		if got.Ctime.Before(before) {
			t.Errorf("%s: ctime %v before the setattr at %v", where, got.Ctime, before)
		}
	}
	want(got, "SetAttr reply")
	want(must[Attr](t)(e.j.GetAttr(bg, a.Ino)), "GetAttr before flush")
	want(must[Attr](t)(e.j.Lookup(bg, RootIno, "f")), "Lookup before flush")

	row := func() (mode, uid uint32, mtime int64) {
		t.Helper()
		if err := e.j.db.QueryRow(`SELECT mode, uid, mtime FROM inodes WHERE ino = ?`, a.Ino).Scan(&mode, &uid, &mtime); err != nil {
			t.Fatal(err)
		}
		return
	}
	if m, u, _ := row(); m != 0o100600 || u != 0 {
		t.Errorf("database has mode %o uid %d before the flush: the setattr made a commit of its own", m, u)
	}
	if err := e.j.Flush(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	applyUnlinks(t, e.j) // the close's deferred flush
	if m, u, mtn := row(); m != 0o104751 || u != uid || mtn != mt.UnixNano() {
		t.Errorf("database has mode %o uid %d mtime %d after the flush", m, u, mtn)
	}
	e.reopen()
	want(must[Attr](t)(e.j.GetAttr(bg, a.Ino)), "GetAttr after reopen")

	// Clean now: a chmod commits by itself.
	mode = 0o640
	must[Attr](t)(e.j.SetAttr(bg, a.Ino, SetAttr{Mode: &mode}))
	if m, _, _ := row(); m != 0o100640 {
		t.Errorf("chmod of a clean file: database has mode %o", m)
	}
}

// A file's unlinking while it is open frees it at its last release, and
// only then.
func TestReleaseFreesUnlinkedOpenFile(t *testing.T) { bubble(t, testReleaseFreesUnlinkedOpenFile) }

func testReleaseFreesUnlinkedOpenFile(t *testing.T) {
	e := newEnv(t, nil)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o100600, 0, 0, 0))
	e.j.OpenFile(a.Ino)
	e.j.OpenFile(a.Ino)
	if err := e.j.Unlink(bg, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	exists := func() bool {
		var n int
		if err := e.j.db.QueryRow(`SELECT count(*) FROM inodes WHERE ino = ?`, a.Ino).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	e.j.ReleaseFile(a.Ino)
	if !exists() {
		t.Fatal("freed while still open")
	}
	if _, err := e.j.GetXattr(bg, a.Ino, "user.x"); err != ErrNoXattr {
		t.Errorf("GetXattr of an open unlinked file: %v, want ErrNoXattr", err)
	}
	e.j.ReleaseFile(a.Ino)
	e.reap()
	if exists() {
		t.Fatal("not freed after the last release")
	}
	if _, err := e.j.GetXattr(bg, a.Ino, "user.x"); err != ErrNotFound {
		t.Errorf("GetXattr of a freed inode: %v, want ErrNotFound", err)
	}
}

// A reclaim that finds the file opened since its unlink (open(2) racing
// unlink(2)) leaves it to the last release, which frees it.
func TestReclaimOfReopenedFileAtRelease(t *testing.T) { bubble(t, testReclaimOfReopenedFileAtRelease) }

func testReclaimOfReopenedFileAtRelease(t *testing.T) {
	e := newEnv(t, nil)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o100600, 0, 0, 0))
	e.j.OpenFile(a.Ino)
	if err := e.j.Unlink(bg, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	// As if the open had come after the unlink's own check.
	e.j.imu.Lock()
	e.j.inodes[a.Ino].unlinked = false
	e.j.imu.Unlock()
	if err := e.j.it.reclaim(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	e.j.ReleaseFile(a.Ino)
	e.reap()
	var n int
	if err := e.j.db.QueryRow(`SELECT count(*) FROM inodes WHERE ino = ?`, a.Ino).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("an unlinked file opened during its reclaim was not freed at its last release")
	}
}

// The kernel's write-back cache owns the times of a file it wrote and
// sends its ctime (SetAttr.Ctime), whose coarse clock may read earlier
// than the journal's own at create or write: it is stored as given, on a
// file with unflushed data (kept until the flush) and on a clean one
// (committed at once), and survives reopen.
func TestSetAttrKeepsKernelCtime(t *testing.T) { bubble(t, testSetAttrKeepsKernelCtime) }

func testSetAttrKeepsKernelCtime(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	dirty := must[Attr](t)(e.j.Mknod(bg, RootIno, "dirty", 0o100600, 0, 0, 0))
	clean := must[Attr](t)(e.j.Mknod(bg, RootIno, "clean", 0o100600, 0, 0, 0))
	if _, err := e.j.WriteAt(bg, dirty.Ino, []byte("written"), 0); err != nil {
		t.Fatal(err)
	}
	// Earlier than the create and the write, as a coarse clock reads.
	ct := dirty.Ctime.Add(-3 * time.Millisecond)
	mt := ct
	for _, a := range []Attr{dirty, clean} {
		got := must[Attr](t)(e.j.SetAttr(bg, a.Ino, SetAttr{Mtime: &mt, Ctime: &ct}))
		if !got.Ctime.Equal(ct) {
			t.Errorf("inode %d: SetAttr reply has ctime %v, want the kernel's %v", a.Ino, got.Ctime, ct)
		}
	}
	if err := e.j.Flush(bg, dirty.Ino); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	for _, a := range []Attr{dirty, clean} {
		if got := must[Attr](t)(e.j.GetAttr(bg, a.Ino)); !got.Ctime.Equal(ct) || !got.Mtime.Equal(mt) {
			t.Errorf("inode %d after reopen: ctime %v mtime %v, want %v for both", a.Ino, got.Ctime, got.Mtime, ct)
		}
	}
	// Without a Ctime, ctime moves to now again.
	mode := uint32(0o640)
	if got := must[Attr](t)(e.j.SetAttr(bg, clean.Ino, SetAttr{Mode: &mode})); !got.Ctime.After(ct) {
		t.Errorf("chmod without Ctime: ctime %v, want later than %v", got.Ctime, ct)
	}
}

// When freeing a deleted file fails (here a trigger refuses it, as a full
// disk would), the unlink still succeeds, and the reaper frees the file
// once freeing works again, without waiting for the next Open.
func TestFailedReclaimIsRetried(t *testing.T) { bubble(t, testFailedReclaimIsRetried) }

func testFailedReclaimIsRetried(t *testing.T) {
	e := newEnv(t, nil)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o100600, 0, 0, 0))
	if _, err := e.j.WriteAt(bg, a.Ino, bytes.Repeat([]byte("data"), 1000), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Flush(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	onWriter := func(q string) {
		t.Helper()
		e.j.wmu.Lock()
		defer e.j.wmu.Unlock()
		if _, err := e.j.w.ExecContext(bg, q); err != nil {
			t.Fatal(err)
		}
	}
	onWriter(`CREATE TEMP TRIGGER refuse_free BEFORE DELETE ON main.inodes BEGIN SELECT RAISE(ABORT, 'injected: cannot free'); END`)
	if err := e.j.Unlink(bg, RootIno, "f"); err != nil {
		t.Fatalf("Unlink: %v; the name is gone, only freeing its space failed", err)
	}
	if _, err := e.j.Lookup(bg, RootIno, "f"); err != ErrNotFound {
		t.Fatalf("Lookup after Unlink: %v, want ErrNotFound", err)
	}
	rows := func() (inodes, maps int) {
		t.Helper()
		if err := e.j.db.QueryRow(`SELECT (SELECT count(*) FROM inodes WHERE ino = ?1), (SELECT count(*) FROM blockmap WHERE ino = ?1)`, a.Ino).Scan(&inodes, &maps); err != nil {
			t.Fatal(err)
		}
		return
	}
	time.Sleep(3 * e.opts.RetryMax) // a few refused retries
	synctest.Wait()
	if i, m := rows(); i != 1 || m == 0 {
		t.Fatalf("freed while freeing was refused: %d inode rows, %d block map rows", i, m)
	}
	onWriter(`DROP TRIGGER temp.refuse_free`)
	// The reaper retries RetryMax apart: its next pass frees the file.
	time.Sleep(e.opts.RetryMax)
	synctest.Wait()
	if i, m := rows(); i != 0 || m != 0 {
		t.Fatalf("not freed %v after freeing works again: %d inode rows, %d block map rows", e.opts.RetryMax, i, m)
	}
	e.reopen() // checkDB: refcounts match the block map
}

// An open of an inode found by a lookup before its last name went away
// (the kernel's LOOKUP, someone's unlink, then the OPEN) fails with
// ErrNotFound once the inode is freed, and counts no handle; before that
// it succeeds and keeps the file's data until its release.
func TestOpenExistingAfterFree(t *testing.T) { bubble(t, testOpenExistingAfterFree) }

func testOpenExistingAfterFree(t *testing.T) {
	e := newEnv(t, nil)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o100600, 0, 0, 0))
	b := must[Attr](t)(e.j.Mknod(bg, RootIno, "g", 0o100600, 0, 0, 0))
	for _, x := range []Attr{a, b} {
		e.j.OpenFile(x.Ino)
		must[int](t)(e.j.WriteAt(bg, x.Ino, []byte("kept"), 0))
		e.j.ReleaseFile(x.Ino)
	}
	e.reopen() // nothing of either in memory

	// g: unlinked, not yet freed; the open keeps it.
	if err := e.j.Unlink(bg, RootIno, "g"); err != nil {
		t.Fatal(err)
	}
	if err := e.j.OpenExisting(bg, b.Ino); err != nil {
		t.Fatalf("open of an unlinked file not yet freed: %v", err)
	}
	e.reap()
	p := make([]byte, 4)
	if n, err := e.j.ReadAt(bg, b.Ino, p, 0); err != nil || string(p[:n]) != "kept" {
		t.Fatalf("read of the open unlinked file: %q, %v", p[:n], err)
	}
	if _, err := e.j.WriteAt(bg, b.Ino, []byte("more"), 4); err != nil {
		t.Fatalf("write to the open unlinked file: %v", err)
	}
	e.j.ReleaseFile(b.Ino)

	// f: unlinked and freed before the open.
	if err := e.j.Unlink(bg, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	e.reap()
	if err := e.j.OpenExisting(bg, a.Ino); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a freed inode: %v, want ErrNotFound", err)
	}
	if e.j.it.isOpen(a.Ino) {
		t.Error("a failed open left a handle counted")
	}
	e.j.imu.Lock()
	_, inMem := e.j.inodes[a.Ino]
	e.j.imu.Unlock()
	if inMem {
		t.Error("a failed open left the inode in memory")
	}
	// A second open while another is counted but not yet checked (two
	// processes opening the name they both looked up): no proof the row
	// is there.
	e.j.imu.Lock()
	other := e.j.it.openLocked(a.Ino)
	e.j.imu.Unlock()
	if err := e.j.OpenExisting(bg, a.Ino); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a freed inode beside another open in flight: %v, want ErrNotFound", err)
	}
	e.j.imu.Lock()
	other.open--
	e.j.it.maybeForgetLocked(other)
	e.j.imu.Unlock()
	e.reap()
	for _, x := range []Attr{a, b} {
		var n int
		if err := e.j.db.QueryRow(`SELECT count(*) FROM inodes WHERE ino = ?`, x.Ino).Scan(&n); err != nil || n != 0 {
			t.Errorf("inode %d: %d rows after the last release, %v", x.Ino, n, err)
		}
	}
}
