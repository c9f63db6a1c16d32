package journal

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// dbAttr reads ino's row straight from the database: what is committed,
// with no overlay of what is pending.
func dbAttr(t *testing.T, j *Journal, ino Ino) Attr {
	t.Helper()
	a, err := scanAttr(j.db.QueryRow(`SELECT `+attrCols+` FROM inodes i WHERE i.ino = ?`, ino))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDeferredDirSetAttr: cp -a's shape. A directory is filled (deferred
// creates), then its times, owner and mode are set: no commit of its
// own, every read shows the change at once, and the apply stores it
// after the creates, whose own change of the directory's times it
// overrides. A create in the directory while a change is pending is not
// deferred behind it: the directory's times are the create's.
func TestDeferredDirSetAttr(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	dir := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	must[Attr](t)(j.Mknod(bg, dir.Ino, "f", 0o644, 0, 0, 0))
	if !j.unl.createPending(dir.Ino, "f") {
		t.Fatal("the create in the directory was not deferred")
	}
	mode, uid, gid := uint32(0o2711), uint32(7), uint32(8)
	atime, mtime := time.Unix(1500000000, 5), time.Unix(1600000000, 7)
	gen := j.commitGen.Load()
	got := must[Attr](t)(j.SetAttr(bg, dir.Ino, SetAttr{Mode: &mode, Uid: &uid, Gid: &gid, Atime: &atime, Mtime: &mtime}))
	if g := j.commitGen.Load(); g != gen {
		t.Fatalf("the directory's SetAttr committed (%d commits): it should only be logged", g-gen)
	}
	check := func(what string, a Attr) {
		t.Helper()
		if a.Mode != sIFDIR|mode || a.Uid != uid || a.Gid != gid || !a.Atime.Equal(atime) || !a.Mtime.Equal(mtime) {
			t.Fatalf("%s: mode %o uid %d gid %d atime %v mtime %v; want %o %d %d %v %v",
				what, a.Mode, a.Uid, a.Gid, a.Atime, a.Mtime, sIFDIR|mode, uid, gid, atime, mtime)
		}
		if a.Ctime.Before(mtime) || a.Ctime.Before(a.Atime) {
			t.Fatalf("%s: ctime %v is not the time of the change", what, a.Ctime)
		}
	}
	check("the reply", got)
	check("GetAttr while pending", must[Attr](t)(j.GetAttr(bg, dir.Ino)))
	check("Lookup while pending", must[Attr](t)(j.Lookup(bg, RootIno, "d")))
	if dbNlink(t, j, dir.Ino) != -1 { // else the mkdir is pending too
		if a := dbAttr(t, j, dir.Ino); a.Mode == sIFDIR|mode {
			t.Fatal("the database has the change before its apply")
		}
	}
	applyUnlinks(t, j)
	check("the row after the apply", dbAttr(t, j, dir.Ino))
	check("GetAttr after the apply", must[Attr](t)(j.GetAttr(bg, dir.Ino)))
	if _, err := j.Lookup(bg, dir.Ino, "f"); err != nil {
		t.Fatalf("the create before the change: %v", err)
	}

	// A change pending, then a create in the directory.
	mtime2 := time.Unix(1650000000, 0)
	must[Attr](t)(j.SetAttr(bg, dir.Ino, SetAttr{Mtime: &mtime2}))
	if a := must[Attr](t)(j.GetAttr(bg, dir.Ino)); !a.Mtime.Equal(mtime2) || a.Mode != sIFDIR|mode {
		t.Fatalf("second change while pending: mtime %v mode %o", a.Mtime, a.Mode)
	}
	before := time.Now()
	must[Attr](t)(j.Mknod(bg, dir.Ino, "g", 0o644, 0, 0, 0))
	if j.unl.createPending(dir.Ino, "g") {
		t.Fatal("a create in a directory with a pending change was deferred behind it")
	}
	if a := dbAttr(t, j, dir.Ino); a.Mtime.Before(before) {
		t.Fatalf("after the create the directory's mtime is %v, from before it", a.Mtime)
	}
	if a := must[Attr](t)(j.GetAttr(bg, dir.Ino)); a.Mtime.Before(before) || a.Mode != sIFDIR|mode {
		t.Fatalf("after the create GetAttr shows mtime %v mode %o", a.Mtime, a.Mode)
	}
	// An unlink too.
	must[Attr](t)(j.SetAttr(bg, dir.Ino, SetAttr{Mtime: &mtime2}))
	before = time.Now()
	if err := j.Unlink(bg, dir.Ino, "g"); err != nil {
		t.Fatal(err)
	}
	if j.unl.unlinkPending(dir.Ino, "g") {
		t.Fatal("an unlink in a directory with a pending change was deferred behind it")
	}
	if a := must[Attr](t)(j.GetAttr(bg, dir.Ino)); a.Mtime.Before(before) {
		t.Fatalf("after the unlink GetAttr shows mtime %v, from before it", a.Mtime)
	}
	// A file's SetAttr is not deferred this way.
	f := must[Attr](t)(j.Lookup(bg, dir.Ino, "f"))
	fm := uint32(0o600)
	must[Attr](t)(j.SetAttr(bg, f.Ino, SetAttr{Mode: &fm}))
	if a := dbAttr(t, j, f.Ino); a.Mode != sIFREG|fm {
		t.Fatalf("a file's chmod is not committed: mode %o", a.Mode)
	}
}

// TestDirSetAttrLogReplay: a directory's change logged before a crash is
// applied by the next Open; one applied before the crash, still in the
// log, is not applied again over a later change.
func TestDirSetAttrLogReplay(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	dir := must[Attr](t)(e.j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	m1 := uint32(0o700)
	must[Attr](t)(e.j.SetAttr(bg, dir.Ino, SetAttr{Mode: &m1}))
	path := filepath.Join(e.opts.Dir, unlinkLogName)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, n := decodeUnlinks(old)
	if n != len(old) || len(recs) != 2 || !recs[0].create || recs[1].set == nil || recs[1].ino != dir.Ino {
		t.Fatalf("the log holds %d records in %d of %d bytes, want the directory's mkdir and change", len(recs), n, len(old))
	}
	if err := e.j.Close(); err != nil { // applies it
		t.Fatal(err)
	}
	e.j = nil
	e.open()
	m2 := uint32(0o751)
	must[Attr](t)(e.j.SetAttr(bg, dir.Ino, SetAttr{Mode: &m2}))
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	// As a crash may leave it: the applied first change, then one never
	// applied, numbered past every applied one.
	mtime := time.Unix(1234567890, 42)
	late := setRec{seq: recs[1].set.seq + 2, has: setHasMtime, mtime: mtime.UnixNano(), ctime: mtime.UnixNano() + 1}
	b := appendUnlink(old, unlinkRec{ino: dir.Ino, set: &late})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.open()
	a := must[Attr](t)(e.j.GetAttr(bg, dir.Ino))
	if a.Mode != sIFDIR|m2 {
		t.Fatalf("after the replay the mode is %o, want %o: an applied change was applied again", a.Mode, sIFDIR|m2)
	}
	if !a.Mtime.Equal(mtime) {
		t.Fatalf("after the replay the mtime is %v, want %v from the unapplied change", a.Mtime, mtime)
	}
	if a := dbAttr(t, e.j, dir.Ino); !a.Mtime.Equal(mtime) {
		t.Fatalf("the replayed change is not in the database: mtime %v", a.Mtime)
	}
}

// TestDirSetAttrRecordRoundTrip: 's' records read back as written,
// between other records; a cut or flipped byte never makes one up.
func TestDirSetAttrRecordRoundTrip(t *testing.T) {
	recs := []unlinkRec{
		{ino: 5, set: &setRec{seq: 1, has: setHasAll, mode: 0o7777, uid: 1<<32 - 1, gid: 3, atime: -1, mtime: 1 << 62, ctime: -(1 << 62)}},
		{parent: 1, ino: 2, name: "a"},
		{ino: 1 << 40, set: &setRec{seq: 1 << 50, has: setHasMtime, mtime: 99, ctime: 100}},
		{ino: 6, set: &setRec{seq: 3}},
	}
	checkRoundTrip(t, recs, func(x, y unlinkRec) bool {
		if (x.set == nil) != (y.set == nil) {
			return false
		}
		if x.set != nil {
			return x.ino == y.ino && *x.set == *y.set
		}
		return x == y
	})
	// What no build writes: an unknown bit, a mode past 07777, no
	// sequence number, bytes after the payload.
	for _, p := range [][]byte{
		appendSetPayload(nil, 5, &setRec{seq: 1, has: 1 << 6}),
		appendSetPayload(nil, 5, &setRec{seq: 1, mode: 0o10000}),
		appendSetPayload(nil, 5, &setRec{}),
		append(appendSetPayload(nil, 5, &setRec{seq: 1}), 0),
	} {
		if _, _, ok := decodeSetPayload(p); ok {
			t.Fatalf("payload %x decoded", p)
		}
	}
}

// TestDirSetAttrConcurrentApply: directories' changes read back while
// the unlinker applies them every millisecond and creates and closes
// elsewhere fold them into other commits: a read after a SetAttr
// returned never shows an older time, before the apply, during it or
// after it.
func TestDirSetAttrConcurrentApply(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Millisecond })
	j := e.j
	const dirs, rounds = 3, 300
	var inos [dirs]Ino
	for i := range inos {
		inos[i] = must[Attr](t)(j.Mkdir(bg, RootIno, fmt.Sprintf("d%d", i), 0o755, 0, 0)).Ino
	}
	other := must[Attr](t)(j.Mkdir(bg, RootIno, "other", 0o755, 0, 0))
	errs := make(chan error, dirs+1)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // creates and closes beside them
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f, err := j.Mknod(bg, other.Ino, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0)
			if err != nil {
				errs <- err
				return
			}
			j.OpenFile(f.Ino)
			_, err = j.WriteAt(bg, f.Ino, []byte("x"), 0)
			if err == nil {
				err = j.Flush(bg, f.Ino)
			}
			j.ReleaseFile(f.Ino)
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	base := time.Unix(1600000000, 0)
	var wg sync.WaitGroup
	for d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= rounds; i++ {
				m := base.Add(time.Duration(i) * time.Second)
				mode := uint32(0o700 + i%2*0o55)
				if _, err := j.SetAttr(bg, inos[d], SetAttr{Mtime: &m, Mode: &mode}); err != nil {
					errs <- err
					return
				}
				for range 3 {
					a, err := j.GetAttr(bg, inos[d])
					if err == nil && (!a.Mtime.Equal(m) || a.Mode != sIFDIR|mode) {
						err = fmt.Errorf("dir %d round %d: mtime %v mode %o after setting %v %o", d, i, a.Mtime, a.Mode, m, mode)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-stopped
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	applyUnlinks(t, j)
	for d := range dirs {
		if a := dbAttr(t, j, inos[d]); !a.Mtime.Equal(base.Add(rounds * time.Second)) {
			t.Fatalf("dir %d: the database's mtime %v, want the last one set", d, a.Mtime)
		}
	}
}

// TestDirSetAttrBetweenCommitAndForget: after the transaction that
// applied a create in a directory and then the directory's change has
// committed, and before the applied records are forgotten, GetAttr
// shows the change's mtime, not the create's pending time.
func TestDirSetAttrBetweenCommitAndForget(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	dir := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	must[Attr](t)(j.Mknod(bg, dir.Ino, "f", 0o644, 0, 0, 0))
	mtime := time.Unix(1600000000, 0)
	must[Attr](t)(j.SetAttr(bg, dir.Ino, SetAttr{Mtime: &mtime}))
	// txApplyingLocked, stopped before dropApplied.
	j.wmu.Lock()
	recs := j.unl.pending()
	j.unl.unlApplying = true
	var fr freed
	j.imu.Lock()
	err := j.c.txLocked(bg, func(tx *sql.Tx) error {
		_, err := j.ul.applyTx(bg, tx, recs, &fr)
		return err
	})
	j.imu.Unlock()
	j.unl.unlApplying = false
	a, gerr := j.GetAttr(bg, dir.Ino)
	j.ul.dropApplied(len(recs))
	j.wmu.Unlock()
	if err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if !a.Mtime.Equal(mtime) {
		t.Fatalf("between the commit and the forgetting, GetAttr shows mtime %v, want %v", a.Mtime, mtime)
	}
	if a := must[Attr](t)(j.GetAttr(bg, dir.Ino)); !a.Mtime.Equal(mtime) {
		t.Fatalf("after: mtime %v, want %v", a.Mtime, mtime)
	}
}

// TestMkdirLeavesClosesPending: a mkdir's transaction applies the
// pending creates and directory changes (it must: their inode numbers
// and parents' times come first) but leaves the pending closes to the
// unlinker, off the mkdir's path; the file reads the same all along.
func TestMkdirLeavesClosesPending(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	f := writeClosed(t, j, "f", []byte("data"))
	mtime := time.Unix(1600000000, 0)
	must[Attr](t)(j.SetAttr(bg, RootIno, SetAttr{Mtime: &mtime}))
	if n := j.unl.unlN.Load(); n != 3 {
		t.Fatalf("%d records pending, want the create, the close and the root's change", n)
	}
	d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
	if n := j.unl.unlN.Load(); n != 1 || j.unl.pending()[0].fl == nil {
		t.Fatalf("after the mkdir %d records pending, want the close alone", n)
	}
	if a := dbAttr(t, j, f.Ino); a.Size != 0 {
		t.Fatalf("the file's row after the mkdir: size %d, want 0 (its close pending)", a.Size)
	}
	if a := dbAttr(t, j, RootIno); a.Nlink != 3 || a.Mtime.Equal(mtime) {
		t.Fatalf("the root's row after the mkdir: nlink %d, mtime %v (the change applied, then the mkdir's time)", a.Nlink, a.Mtime)
	}
	if a := must[Attr](t)(j.GetAttr(bg, f.Ino)); a.Size != 4 {
		t.Fatalf("the file's size while its close is pending: %d", a.Size)
	}
	if got := readAll(t, j, f.Ino); string(got) != "data" {
		t.Fatalf("the file reads %q while its close is pending", got)
	}
	applyUnlinks(t, j)
	if a := dbAttr(t, j, f.Ino); a.Size != 4 {
		t.Fatalf("the file's row after the apply: size %d", a.Size)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	e.open()
	if got := readAll(t, e.j, f.Ino); string(got) != "data" {
		t.Fatalf("after reopen the file reads %q", got)
	}
	if _, err := e.j.Lookup(bg, RootIno, "d"); err != nil || d.Ino == 0 {
		t.Fatal(err)
	}
}

// TestGetAttrReadsAgainAfterCommit: a GetAttr that read a row from before
// a commit, and finds what memory held over that row gone when it lays
// memory over it (the commit took it), reads once more (flushedSince).
// The commit runs in that window through a test hook: a file's flush
// (cleanLocked) and the apply of a directory's pending change
// (dropSetsLocked). Without the retry the read shows the old size, and
// the old mode.
func TestGetAttrReadsAgainAfterCommit(t *testing.T) {
	t.Run("flush", func(t *testing.T) {
		j := newEnv(t, nil).j
		f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
		applyUnlinks(t, j)
		j.OpenFile(f.Ino)
		defer j.ReleaseFile(f.Ino)
		must[int](t)(j.WriteAt(bg, f.Ino, []byte("abc"), 0))
		j.attrReadHook = func(ino Ino) {
			j.attrReadHook = nil
			if err := j.Fsync(bg, ino); err != nil { // a flush that commits at once
				t.Error(err)
			}
		}
		if a := must[Attr](t)(j.GetAttr(bg, f.Ino)); a.Size != 3 {
			t.Errorf("size %d read across the flush's commit, want 3", a.Size)
		}
		if j.attrReadHook != nil {
			t.Fatal("the hook did not run")
		}
	})
	t.Run("directory", func(t *testing.T) {
		j := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour }).j
		d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
		applyUnlinks(t, j) // the mkdir: GetAttr reads the row
		mode := uint32(0o700)
		must[Attr](t)(j.SetAttr(bg, d.Ino, SetAttr{Mode: &mode}))
		if !j.unl.dirSetPending(d.Ino) {
			t.Fatal("the change was not deferred")
		}
		j.attrReadHook = func(Ino) {
			j.attrReadHook = nil
			applyUnlinks(t, j)
		}
		if a := must[Attr](t)(j.GetAttr(bg, d.Ino)); a.Mode != sIFDIR|mode {
			t.Errorf("mode %o read across the change's apply, want %o", a.Mode, sIFDIR|mode)
		}
		if j.attrReadHook != nil {
			t.Fatal("the hook did not run")
		}
	})
}

// FuzzSetPayload: an 's' record's payload, read without the log's
// framing and checksum (see FuzzFlushPayload): what decodes re-encodes
// to the same bytes.
func FuzzSetPayload(f *testing.F) {
	f.Add(appendSetPayload(nil, 9, &setRec{seq: 5, has: setHasMode | setHasMtime, mode: 0o755, mtime: -7, ctime: 1 << 61}))
	f.Add(appendSetPayload(nil, 1, &setRec{seq: 1, has: setHasAll, mode: 0o7777, uid: 1 << 31, gid: 7, atime: -1 << 62}))
	f.Fuzz(func(t *testing.T, p []byte) {
		ino, r, ok := decodeSetPayload(p)
		if !ok {
			return
		}
		if ino == 0 || r.seq == 0 || r.mode > 0o7777 {
			t.Fatalf("decoded inode %d, seq %d, mode %o", ino, r.seq, r.mode)
		}
		if again := appendSetPayload(nil, ino, r); !bytes.Equal(again, p) {
			t.Fatalf("payload re-encodes to other bytes:\n%x\n%x", again, p)
		}
	})
}

// TestDirSetAttrAfterBatch: the unlinker applies a batch of the pending
// records at a time. A directory change logged after the batch stays
// pending: reads still show it, a create in the directory still takes
// the synchronous way (which applies it first), and the next apply
// stores it.
func TestDirSetAttrAfterBatch(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	a := must[Attr](t)(j.Mkdir(bg, RootIno, "a", 0o755, 0, 0))
	b := must[Attr](t)(j.Mkdir(bg, RootIno, "b", 0o755, 0, 0))
	applyUnlinks(t, j)
	ma, mb := time.Unix(1500000000, 0), time.Unix(1600000000, 0)
	must[Attr](t)(j.SetAttr(bg, a.Ino, SetAttr{Mtime: &ma}))
	must[Attr](t)(j.SetAttr(bg, b.Ino, SetAttr{Mtime: &mb}))
	if n := len(j.unl.pending()); n != 2 {
		t.Fatalf("%d records pending, want the two changes", n)
	}
	j.wmu.Lock()
	err := txApplyingRecsLocked(j.ul, bg, j.unl.pending()[:1], nil) // a batch of one
	j.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := dbAttr(t, j, a.Ino).Mtime; !got.Equal(ma) {
		t.Fatalf("the batch stored mtime %v for a, want %v", got, ma)
	}
	if got := must[Attr](t)(j.GetAttr(bg, b.Ino)).Mtime; !got.Equal(mb) {
		t.Fatalf("b's change, after the batch, reads as mtime %v, want %v", got, mb)
	}
	if !j.unl.dirSetPending(b.Ino) {
		t.Fatal("b's change is not pending after a batch that did not apply it")
	}
	applyUnlinks(t, j)
	if got := dbAttr(t, j, b.Ino).Mtime; !got.Equal(mb) {
		t.Fatalf("the next apply stored mtime %v for b, want %v", got, mb)
	}
	if j.unl.dirSetPending(b.Ino) || j.unl.dirSetPending(a.Ino) {
		t.Fatal("a change is still pending after every record was applied")
	}
}
