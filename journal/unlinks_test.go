package journal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// entryRows counts the database's entries for name in the root.
func entryRows(t *testing.T, j *Journal, name string) int {
	t.Helper()
	var n int
	if err := j.db.QueryRow(`SELECT count(*) FROM entries WHERE parent = ? AND name = ?`, RootIno, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeferredUnlink: an unlink of a file nothing holds is answered from
// memory and applied later; until then every read of the namespace
// already sees it done, and any other change applies it first.
func TestDeferredUnlink(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		for _, name := range []string{"a", "b", "c", "d"} {
			must[Attr](t)(j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
		}
		data := must[Attr](t)(j.Lookup(bg, RootIno, "b"))
		j.OpenFile(data.Ino)
		must[int](t)(j.WriteAt(bg, data.Ino, bytes.Repeat([]byte("x"), 100<<10), 0))
		if err := j.Flush(bg, data.Ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(data.Ino)
		applyUnlinks(t, j) // the close's deferred flush: the file has nothing in memory now
		before := must[Attr](t)(j.GetAttr(bg, RootIno))
		time.Sleep(time.Millisecond) // the bubble's clock: the parent's mtime must move
		for _, name := range []string{"a", "b"} {
			if err := j.Unlink(bg, RootIno, name); err != nil {
				t.Fatal(err)
			}
		}
		// Deferred: the rows are still there...
		if entryRows(t, j, "a") != 1 || entryRows(t, j, "b") != 1 {
			t.Fatal("the unlinks were applied at once, not deferred")
		}
		// ...but no read sees them.
		for _, name := range []string{"a", "b"} {
			if _, err := j.Lookup(bg, RootIno, name); !errors.Is(err, ErrNotFound) {
				t.Fatalf("lookup of unlinked %q: %v", name, err)
			}
			if err := j.Unlink(bg, RootIno, name); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second unlink of %q: %v", name, err)
			}
		}
		// A create of a pending name applies the pending unlinks first.
		a2 := must[Attr](t)(j.Mknod(bg, RootIno, "a", 0o600, 0, 0, 0))
		if a2.Mode&0o777 != 0o600 || entryRows(t, j, "b") != 0 {
			t.Fatalf("create after unlink: mode %o, b's rows %d", a2.Mode, entryRows(t, j, "b"))
		}
		// The block of b is freed by the reaper, as after any unlink.
		e.reap()
		var n int
		j.db.QueryRow(`SELECT count(*) FROM blockmap WHERE ino = ?`, data.Ino).Scan(&n)
		if n != 0 {
			t.Fatalf("%d block map rows left of the unlinked file", n)
		}

		// A directory's GETATTR shows the pending unlinks' time (the
		// kernel asks after each unlink) without applying them; the
		// apply writes that same time.
		time.Sleep(time.Millisecond)
		if err := j.Unlink(bg, RootIno, "c"); err != nil {
			t.Fatal(err)
		}
		after := must[Attr](t)(j.GetAttr(bg, RootIno))
		if !after.Mtime.After(before.Mtime) || !after.Ctime.Equal(after.Mtime) || entryRows(t, j, "c") != 1 {
			t.Fatalf("GETATTR of the parent: mtime %v -> %v (ctime %v), c's rows %d", before.Mtime, after.Mtime, after.Ctime, entryRows(t, j, "c"))
		}
		time.Sleep(time.Millisecond)
		applyUnlinks(t, j)
		if applied := must[Attr](t)(j.GetAttr(bg, RootIno)); !applied.Mtime.Equal(after.Mtime) || entryRows(t, j, "c") != 0 {
			t.Fatalf("the parent's mtime was %v while the unlink was pending, %v once applied (c's rows %d)", after.Mtime, applied.Mtime, entryRows(t, j, "c"))
		}
		// A READDIR applies what is pending in the directory.
		if err := j.Unlink(bg, RootIno, "d"); err != nil {
			t.Fatal(err)
		}
		for _, de := range must[[]DirEntry](t)(j.ReadDir(bg, RootIno, 0, 100)) {
			if de.Name == "d" {
				t.Fatal("readdir lists a file unlinked")
			}
		}
		// A directory is refused at once, and its entry stays.
		must[Attr](t)(j.Mkdir(bg, RootIno, "dir", 0o755, 0, 0))
		if err := j.Unlink(bg, RootIno, "dir"); !errors.Is(err, ErrIsDir) {
			t.Fatalf("unlink of a directory: %v", err)
		}
		must[Attr](t)(j.Lookup(bg, RootIno, "dir"))
	})
}

// TestDeferredUnlinkApplied: the unlinker applies pending unlinks
// UnlinkDelay after the first, with no other change to push them.
func TestDeferredUnlinkApplied(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = 10 * time.Millisecond })
		for i := range 20 {
			must[Attr](t)(e.j.Mknod(bg, RootIno, string(rune('a'+i)), 0o644, 0, 0, 0))
		}
		applyUnlinks(t, e.j) // the creates: an unlink of a pending create is not deferred
		for i := range 20 {
			if err := e.j.Unlink(bg, RootIno, string(rune('a'+i))); err != nil {
				t.Fatal(err)
			}
		}
		if entryRows(t, e.j, "a") != 1 {
			t.Fatal("not deferred")
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		var n int
		e.j.db.QueryRow(`SELECT count(*) FROM entries WHERE parent = ?`, RootIno).Scan(&n)
		if n != 0 || e.j.unl.unlN.Load() != 0 {
			t.Fatalf("%d entries left, %d pending, after UnlinkDelay", n, e.j.unl.unlN.Load())
		}
		// The log keeps applied records up to ulogKeep bytes; a replay
		// of them changes nothing.
		if st, _ := os.Stat(filepath.Join(e.opts.Dir, unlinkLogName)); st == nil || st.Size() == 0 || st.Size() > ulogKeep {
			t.Fatalf("the unlink log after the unlinks were applied: %v", st)
		}
		if err := e.j.Close(); err != nil {
			t.Fatal(err)
		}
		e.j = nil
		e.open()
		e.j.db.QueryRow(`SELECT count(*) FROM entries WHERE parent = ?`, RootIno).Scan(&n)
		if n != 0 {
			t.Fatalf("%d entries after a reopen", n)
		}
		if st, _ := os.Stat(filepath.Join(e.opts.Dir, unlinkLogName)); st == nil || st.Size() != 0 {
			t.Fatalf("the unlink log after a reopen replayed it: %v", st)
		}
	})
}

// TestUnlinkLogReplay: what the unlink log holds when the process dies
// is applied by the next Open; a torn last record is dropped, a record
// already applied does nothing.
func TestUnlinkLogReplay(t *testing.T) {
	e := newEnv(t, nil)
	var inos []Ino
	for _, name := range []string{"x", "y", "z", "keep"} {
		inos = append(inos, must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0)).Ino)
	}
	dir := must[Attr](t)(e.j.Mkdir(bg, RootIno, "dir", 0o755, 0, 0))
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	// What a killed process leaves: x and y unlinked (y twice, as when
	// a crash came between the apply's commit and the log's truncation),
	// z's record torn.
	var b []byte
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: inos[0], name: "x"})
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: inos[1], name: "y"})
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: inos[1], name: "y"})
	// An unlink that names a directory (only a corrupted kind byte
	// makes one) leaves it in place.
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: dir.Ino, name: "dir"})
	z := appendUnlink(nil, unlinkRec{parent: RootIno, ino: inos[2], name: "z"})
	b = append(b, z[:len(z)-2]...)
	path := filepath.Join(e.opts.Dir, unlinkLogName)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.open()
	for name, want := range map[string]bool{"x": false, "y": false, "z": true, "keep": true, "dir": true} {
		_, err := e.j.Lookup(bg, RootIno, name)
		if (err == nil) != want {
			t.Fatalf("after replay, lookup of %q: %v (want present: %v)", name, err, want)
		}
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("unlink log after replay: %v, %v", st, err)
	}
	// A stale record (the inode number does not match) changes nothing.
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	os.WriteFile(path, appendUnlink(nil, unlinkRec{parent: RootIno, ino: inos[3] + 100, name: "keep"}), 0o600)
	e.open()
	must[Attr](t)(e.j.Lookup(bg, RootIno, "keep"))
}

func TestUnlinkLogRoundTrip(t *testing.T) {
	recs := []unlinkRec{
		{parent: 1, ino: 2, name: "a"},
		{parent: 1 << 40, ino: 1<<63 + 5, name: "ünïcode name"},
		{parent: 7, ino: 9, name: string(bytes.Repeat([]byte("n"), maxName))},
		{parent: 3, ino: 1 << 33, name: "made", create: true, mode: sIFREG | 0o640, uid: 1<<32 - 1, gid: 7, t: 1<<63 - 1},
		{parent: 1, ino: 10, name: "z", create: true, mode: sIFREG, t: 0},
		{parent: 4, ino: 11, name: "removed dir", dir: true},
	}
	checkRoundTrip(t, recs, func(a, b unlinkRec) bool { return a == b })
}

// checkRoundTrip checks that recs, written to a log, read back as
// written (same), and that no damage to the log makes up a record.
func checkRoundTrip(t *testing.T, recs []unlinkRec, same func(a, b unlinkRec) bool) {
	t.Helper()
	var b []byte
	for _, r := range recs {
		b = appendUnlink(b, r)
	}
	got, n := decodeUnlinks(b)
	if n != len(b) || len(got) != len(recs) {
		t.Fatalf("decoded %d records of %d bytes, want %d of %d", len(got), n, len(recs), len(b))
	}
	for i := range recs {
		if !same(got[i], recs[i]) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], recs[i])
		}
	}
	checkLogDamage(t, b, func(k int, r unlinkRec) bool { return same(r, recs[k]) })
}

// checkLogDamage checks that every cut of the log b ends it at a record
// boundary, and that after any flipped byte every record decoded (the
// k-th) is one written (written).
func checkLogDamage(t *testing.T, b []byte, written func(k int, r unlinkRec) bool) {
	t.Helper()
	for cut := range len(b) {
		if _, n := decodeUnlinks(b[:cut]); n > cut {
			t.Fatalf("cut at %d: decoded %d bytes", cut, n)
		}
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		got, _ := decodeUnlinks(c)
		for k, r := range got {
			if !written(k, r) {
				t.Fatalf("flipped byte %d decoded a record never written: %+v", i, r)
			}
		}
	}
}

func FuzzUnlinkLog(f *testing.F) {
	f.Add(appendUnlink(appendUnlink(nil, unlinkRec{parent: 1, ino: 2, name: "a"}), unlinkRec{parent: 3, ino: 4, name: "bb"}))
	f.Add(appendUnlink(nil, unlinkRec{parent: 1, ino: 5, name: "c", create: true, mode: sIFREG | 0o644, uid: 1000, gid: 1000, t: 1 << 60}))
	f.Add(appendUnlink(nil, unlinkRec{parent: 1, ino: 6, name: "dir", dir: true}))
	f.Add(appendUnlink(appendUnlink(nil, unlinkRec{ino: 7, fl: &flushRec{seq: 3, size: 70000, mtime: -5, ctime: 1 << 60,
		pend: pendAttr{mode: 0o4755, hasMode: true, atime: -1, hasAtime: true, exactCtime: true},
		cuts: []cut{{idx: 0, id: [32]byte{1, 2, 3}, plainLen: 65536, inline: []byte("sealed bytes")}, {idx: 1, hole: true}}}}),
		unlinkRec{ino: 8, fl: &flushRec{seq: 4, size: 3, cuts: []cut{{idx: 0, id: [32]byte{4}, plainLen: 3, unsealed: []byte("abc")}}}}))
	f.Add(appendUnlink(appendUnlink(nil, unlinkRec{ino: 9, set: &setRec{seq: 5, has: setHasMode | setHasMtime, mode: 0o755, mtime: -7, ctime: 1 << 61}}),
		unlinkRec{parent: 9, ino: 10, name: "x"}))
	f.Add([]byte{unlinkMagic, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, n := decodeUnlinks(b)
		if n < 0 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		var again []byte
		for _, r := range recs {
			again = appendUnlink(again, r)
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("records re-encode to other bytes than they were read from")
		}
		if at := wholeRecordAfter(b, n); at != -1 {
			if at <= n || at >= len(b) {
				t.Fatalf("whole records after byte %d of %d found at %d", n, len(b), at)
			}
			if _, k := decodeUnlinks(b[at:]); k != len(b)-at {
				t.Fatalf("the records from byte %d stop at %d of %d", at, at+k, len(b))
			}
		}
	})
}

// queryInt is the one integer q returns from j's database.
func queryInt(t *testing.T, j *Journal, q string, args ...any) int {
	t.Helper()
	var n int
	if err := j.db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeferredUnlinkRmdir: rm -rf's shape. The files of a directory are
// unlinked (deferred), then the directory is removed (deferred too): one
// transaction applies the unlinks, frees the files with their blocks
// (nothing is left for the reaper) and removes the directory. Names are
// any bytes.
func TestDeferredUnlinkRmdir(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		dir := must[Attr](t)(j.Mkdir(bg, RootIno, "dir", 0o755, 0, 0))
		names := []string{"plain", "with \"quotes\" and \\", "\xff\xfe not utf-8", "ünïcode", "data"}
		var inos []Ino
		for _, name := range names {
			inos = append(inos, must[Attr](t)(j.Mknod(bg, dir.Ino, name, 0o644, 0, 0, 0)).Ino)
		}
		data := inos[len(inos)-1]
		j.OpenFile(data)
		must[int](t)(j.WriteAt(bg, data, bytes.Repeat([]byte("y"), 200<<10), 0))
		if err := j.Flush(bg, data); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(data)
		applyUnlinks(t, j) // the close's deferred flush: the file has nothing in memory now
		for _, name := range names {
			if err := j.Unlink(bg, dir.Ino, name); err != nil {
				t.Fatal(err)
			}
		}
		if n := j.unl.unlN.Load(); n != int64(len(names)) {
			t.Fatalf("%d unlinks pending, want %d", n, len(names))
		}
		gen := j.commitGen.Load()
		if err := j.Rmdir(bg, RootIno, "dir"); err != nil {
			t.Fatal(err)
		}
		if commits := j.commitGen.Load() - gen; commits != 0 || !j.unl.rmdirPending(dir.Ino) {
			t.Fatalf("rmdir after deferred unlinks took %d commits (pending: %v), want it deferred", commits, j.unl.rmdirPending(dir.Ino))
		}
		if _, err := j.Lookup(bg, RootIno, "dir"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup of the directory a pending rmdir removes: %v", err)
		}
		applyUnlinks(t, j)
		if commits := j.commitGen.Load() - gen; commits != 1 {
			t.Fatalf("rm -rf's unlinks and rmdir applied in %d commits, want 1", commits)
		}
		if n := queryInt(t, j, `SELECT count(*) FROM entries WHERE parent = ?`, dir.Ino); n != 0 {
			t.Fatalf("%d entries left in the removed directory", n)
		}
		for _, ino := range append(inos, dir.Ino) {
			if n := queryInt(t, j, `SELECT count(*) FROM inodes WHERE ino = ?`, ino); n != 0 {
				t.Fatalf("inode %d left after rm -rf", ino)
			}
		}
		if n := queryInt(t, j, `SELECT count(*) FROM blockmap WHERE ino = ?`, data); n != 0 {
			t.Fatalf("%d block map rows left of the unlinked file", n)
		}
		if n := queryInt(t, j, `SELECT count(*) FROM blocks WHERE refcount > 0`); n != 0 {
			t.Fatalf("%d blocks still referenced", n)
		}
		if _, err := j.Lookup(bg, RootIno, "dir"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup of the removed directory: %v", err)
		}

		// An rmdir that fails leaves the unlinks pending, and they are
		// applied later as usual.
		d2 := must[Attr](t)(j.Mkdir(bg, RootIno, "d2", 0o755, 0, 0))
		must[Attr](t)(j.Mknod(bg, d2.Ino, "gone", 0o644, 0, 0, 0))
		must[Attr](t)(j.Mknod(bg, d2.Ino, "stays", 0o644, 0, 0, 0))
		if err := j.Unlink(bg, d2.Ino, "gone"); err != nil {
			t.Fatal(err)
		}
		if err := j.Rmdir(bg, RootIno, "d2"); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("rmdir of a directory with a file left: %v", err)
		}
		if _, err := j.Lookup(bg, d2.Ino, "gone"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup of a pending unlink after a failed rmdir: %v", err)
		}
		applyUnlinks(t, j)
		got := must[[]DirEntry](t)(j.ReadDir(bg, d2.Ino, 0, 10))
		if len(got) != 1 || got[0].Name != "stays" {
			t.Fatalf("d2 lists %+v, want only stays", got)
		}
	})
}

// TestDeferredUnlinkConcurrent: unlinks defer themselves without wmu,
// while the unlinker applies the ones before them; many at once, in
// several directories, with lookups, readdirs and creates beside them.
// Every unlinked name is gone, every other stays, nothing is left over.
func TestDeferredUnlinkConcurrent(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = 200 * time.Microsecond })
	j := e.j
	const dirs, files = 4, 300
	var dinos []Ino
	for d := range dirs {
		dir := must[Attr](t)(j.Mkdir(bg, RootIno, string(rune('A'+d)), 0o755, 0, 0))
		dinos = append(dinos, dir.Ino)
		for i := range files {
			must[Attr](t)(j.Mknod(bg, dir.Ino, fmt.Sprintf("f%04d", i), 0o644, 0, 0, 0))
		}
	}
	errs := make(chan error, dirs*2)
	for _, dir := range dinos {
		go func() {
			for i := range files {
				name := fmt.Sprintf("f%04d", i)
				if i%3 == 2 {
					continue // kept
				}
				if err := j.Unlink(bg, dir, name); err != nil {
					errs <- fmt.Errorf("unlink %s: %w", name, err)
					return
				}
				if _, err := j.Lookup(bg, dir, name); !errors.Is(err, ErrNotFound) {
					errs <- fmt.Errorf("lookup of %s just unlinked: %v", name, err)
					return
				}
				if i%50 == 0 {
					if _, err := j.ReadDir(bg, dir, 0, 10); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
		go func() {
			for i := range 50 {
				if _, err := j.Mknod(bg, dir, fmt.Sprintf("new%d", i), 0o644, 0, 0, 0); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range dirs * 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	applyUnlinks(t, j)
	for _, dir := range dinos {
		ents := must[[]DirEntry](t)(j.ReadDir(bg, dir, 0, 2*files))
		if want := files/3 + 50; len(ents) != want {
			t.Fatalf("directory %d lists %d entries, want %d", dir, len(ents), want)
		}
		for _, de := range ents {
			var i int
			if _, err := fmt.Sscanf(de.Name, "f%04d", &i); err == nil && i%3 != 2 {
				t.Fatalf("%s listed after its unlink", de.Name)
			}
		}
	}
	var orphans int
	j.db.QueryRow(`SELECT count(*) FROM inodes WHERE nlink <= 0`).Scan(&orphans)
	if orphans != 0 || j.unl.unlN.Load() != 0 {
		t.Fatalf("%d inodes with no link left, %d unlinks pending", orphans, j.unl.unlN.Load())
	}
	if st, err := os.Stat(filepath.Join(e.opts.Dir, unlinkLogName)); err != nil || st.Size() > 2*ulogKeep {
		t.Fatalf("unlink log after every unlink was applied: %v, %v", st, err)
	}
}

// TestReadOnlyWarnsUnappliedLog: a read-only open cannot apply the log
// a crash left, so it says what it does not show, and leaves the log for
// the next read-write open.
func TestReadOnlyWarnsUnappliedLog(t *testing.T) {
	e := newEnv(t, nil)
	x := must[Attr](t)(e.j.Mknod(bg, RootIno, "x", 0o644, 0, 0, 0))
	keep := must[Attr](t)(e.j.Mknod(bg, RootIno, "keep", 0o644, 0, 0, 0))
	applyUnlinks(t, e.j)
	seq := must[Ino](t)(e.j.ul.inodeSeq(bg))
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	var b []byte
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: x.Ino, name: "x"})
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: keep.Ino + 100, name: "keep"}) // stale: changes nothing
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: seq + 1, name: "new", create: true, mode: sIFREG | 0o600})
	path := filepath.Join(e.opts.Dir, unlinkLogName)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e.opts.ReadOnly = true
	e.opts.Logger = slog.New(slog.NewTextHandler(&out, nil))
	e.open()
	if s := out.String(); !strings.Contains(s, "creates=1 unlinks=1") || !strings.Contains(s, "read-write") {
		t.Fatalf("read-only open of a drive with an unapplied log logged %q, want a warning with creates=1 unlinks=1", s)
	}
	must[Attr](t)(e.j.Lookup(bg, RootIno, "x")) // the database's state, as the warning says
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read-only open changed the unlink log: %v", err)
	}
	e.j.Close()
	out.Reset()
	e.opts.ReadOnly = false
	e.open()
	if _, err := e.j.Lookup(bg, RootIno, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read-write open after the read-only one: lookup of x: %v, want ErrNotFound", err)
	}
	must[Attr](t)(e.j.Lookup(bg, RootIno, "new"))
	e.j.Close()
	e.opts.ReadOnly = true
	e.open()
	if out.Len() != 0 {
		t.Fatalf("read-only open of a drive with nothing left to apply logged %q", out.String())
	}
}

// TestDeferredRmdir: an rmdir of a directory whose entries are all
// pending unlinks is a record too, applied after them, nested ones in
// the log's order; until then the name is gone and the parent's link
// count shows it. An rmdir that cannot be deferred answers as before.
func TestDeferredRmdir(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		root0 := must[Attr](t)(j.GetAttr(bg, RootIno))
		d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
		sub := must[Attr](t)(j.Mkdir(bg, d.Ino, "sub", 0o755, 0, 0))
		must[Attr](t)(j.Mknod(bg, sub.Ino, "x", 0o644, 0, 0, 0))
		must[Attr](t)(j.Mknod(bg, d.Ino, "a", 0o644, 0, 0, 0))
		fa := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
		applyUnlinks(t, j)

		if err := j.Rmdir(bg, RootIno, "f"); !errors.Is(err, ErrNotDir) {
			t.Fatalf("rmdir of a file: %v", err)
		}
		if err := j.Unlink(bg, sub.Ino, "x"); err != nil {
			t.Fatal(err)
		}
		gen := j.commitGen.Load()
		if err := j.Rmdir(bg, d.Ino, "sub"); err != nil {
			t.Fatal(err)
		}
		// d still has a, which no unlink is pending for: not empty,
		// answered without applying anything.
		if err := j.Rmdir(bg, RootIno, "d"); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("rmdir of a directory with a file in it: %v", err)
		}
		if c := j.commitGen.Load() - gen; c != 0 || j.unl.unlN.Load() != 2 {
			t.Fatalf("after a deferred rmdir and a refused one: %d commits, %d pending; want 0 and 2", c, j.unl.unlN.Load())
		}
		if _, err := j.Lookup(bg, d.Ino, "sub"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup of a pending rmdir's name: %v", err)
		}
		if g := must[Attr](t)(j.GetAttr(bg, d.Ino)); g.Nlink != 2 {
			t.Fatalf("d with its subdirectory's rmdir pending: nlink %d, want 2", g.Nlink)
		}
		if err := j.Unlink(bg, d.Ino, "a"); err != nil {
			t.Fatal(err)
		}
		if err := j.Rmdir(bg, RootIno, "d"); err != nil {
			t.Fatal(err)
		}
		if c := j.commitGen.Load() - gen; c != 0 || j.unl.unlN.Load() != 4 {
			t.Fatalf("rm -rf of d: %d commits, %d pending; want 0 and 4", c, j.unl.unlN.Load())
		}
		if g := must[Attr](t)(j.GetAttr(bg, RootIno)); g.Nlink != root0.Nlink {
			t.Fatalf("root with d's rmdir pending: nlink %d, want %d", g.Nlink, root0.Nlink)
		}
		// A create in a directory a pending rmdir removes (only the API
		// can: the kernel refuses one in a removed directory) applies
		// the rmdir first and finds no directory.
		if _, err := j.Mknod(bg, d.Ino, "late", 0o644, 0, 0, 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("create in a removed directory: %v", err)
		}
		if j.unl.unlN.Load() != 0 {
			t.Fatalf("%d pending after a create applied them", j.unl.unlN.Load())
		}
		for _, ino := range []Ino{d.Ino, sub.Ino} {
			if n := queryInt(t, j, `SELECT count(*) FROM inodes WHERE ino = ?`, ino); n != 0 {
				t.Fatalf("directory inode %d left after its rmdir was applied", ino)
			}
		}
		if n := queryInt(t, j, `SELECT count(*) FROM entries WHERE ino IN (?, ?) OR parent IN (?, ?)`, d.Ino, sub.Ino, d.Ino, sub.Ino); n != 0 {
			t.Fatalf("%d entries of the removed directories left", n)
		}
		if g := must[Attr](t)(j.GetAttr(bg, RootIno)); g.Nlink != root0.Nlink {
			t.Fatalf("root after the apply: nlink %d, want %d", g.Nlink, root0.Nlink)
		}

		// Replay: what a kill -9 leaves. e's unlink and rmdir, then an
		// rmdir whose directory is not empty and one of a file (both
		// dropped; they stay), then a torn rmdir.
		e2 := must[Attr](t)(j.Mkdir(bg, RootIno, "e", 0o755, 0, 0))
		y := must[Attr](t)(j.Mknod(bg, e2.Ino, "y", 0o644, 0, 0, 0))
		full := must[Attr](t)(j.Mkdir(bg, RootIno, "full", 0o755, 0, 0))
		must[Attr](t)(j.Mknod(bg, full.Ino, "z", 0o644, 0, 0, 0))
		torn := must[Attr](t)(j.Mkdir(bg, RootIno, "torn", 0o755, 0, 0))
		if err := e.j.Close(); err != nil {
			t.Fatal(err)
		}
		e.j = nil
		var b []byte
		b = appendUnlink(b, unlinkRec{parent: e2.Ino, ino: y.Ino, name: "y"})
		b = appendUnlink(b, unlinkRec{parent: RootIno, ino: e2.Ino, name: "e", dir: true})
		b = appendUnlink(b, unlinkRec{parent: RootIno, ino: full.Ino, name: "full", dir: true})
		b = appendUnlink(b, unlinkRec{parent: RootIno, ino: fa.Ino, name: "f", dir: true}) // a file: dropped
		tr := appendUnlink(nil, unlinkRec{parent: RootIno, ino: torn.Ino, name: "torn", dir: true})
		b = append(b, tr[:len(tr)-1]...)
		if err := os.WriteFile(filepath.Join(e.opts.Dir, unlinkLogName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		e.open()
		for name, want := range map[string]bool{"e": false, "full": true, "torn": true, "f": true} {
			if _, err := e.j.Lookup(bg, RootIno, name); (err == nil) != want {
				t.Fatalf("after replay, lookup of %q: %v (want present: %v)", name, err, want)
			}
		}
		must[Attr](t)(e.j.Lookup(bg, full.Ino, "z"))
		if g := must[Attr](t)(e.j.GetAttr(bg, RootIno)); g.Nlink != root0.Nlink+2 {
			t.Fatalf("root after replay: nlink %d, want %d", g.Nlink, root0.Nlink+2)
		}
		if err := e.j.Close(); err != nil {
			t.Fatal(err)
		}
		e.j = nil
		checkDB(t, e.opts.Dir)
	})
}

// Between the commit that applies a pending rmdir and the moment the
// record is forgotten, the parent's row already lacks the directory and
// the record still counts it: GetAttr and Lookup must take it away once,
// not twice (rmSeq).
func TestRmdirCountedOnceDuringApply(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
		j := e.j
		d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
		must[Attr](t)(j.Mkdir(bg, d.Ino, "sub", 0o755, 0, 0))
		applyUnlinks(t, j)
		if err := j.Rmdir(bg, d.Ino, "sub"); err != nil {
			t.Fatal(err)
		}
		if j.unl.pendingNlink(d.Ino) != -1 {
			t.Fatal("the rmdir was not deferred")
		}
		type got struct {
			getattr, lookup uint32
		}
		res := make(chan got, 1)
		j.appliedHook = func() {
			j.appliedHook = nil
			go func() {
				var g got
				a, err := j.GetAttr(bg, d.Ino)
				if err != nil {
					t.Error(err)
				}
				g.getattr = a.Nlink
				if a, err = j.Lookup(bg, RootIno, "d"); err != nil {
					t.Error(err)
				}
				g.lookup = a.Nlink
				res <- g
			}()
			time.Sleep(10 * time.Millisecond) // the reads run in the window
		}
		applyUnlinks(t, j)
		if g := <-res; g.getattr != 2 || g.lookup != 2 {
			t.Errorf("d's link count read between the apply's commit and its end: GetAttr %d, Lookup %d; want 2", g.getattr, g.lookup)
		}
		if g := must[Attr](t)(j.GetAttr(bg, d.Ino)); g.Nlink != 2 {
			t.Errorf("after the apply: nlink %d, want 2", g.Nlink)
		}
	})
}

// damagedLog is an unlink log whose first record (the unlink of x, inode
// ino) is damaged, with a create of "new" after it.
func damagedLog(ino Ino) []byte {
	b := appendUnlink(nil, unlinkRec{parent: RootIno, ino: ino, name: "x"})
	b[len(b)-6] ^= 0x40 // x's name: its checksum fails
	return appendUnlink(b, unlinkRec{parent: RootIno, ino: ino + 1, name: "new", create: true, mode: sIFREG | 0o644, t: 1})
}

// TestUnlinkLogDamagedMidway: a damaged record with whole records after
// it is not a torn tail (a crash tears only the last append). When one of
// those is not in journal.db yet, Open refuses, saying where and what to
// do, and leaves the log as it was: the create after the damage is a
// file the drive answered for, held in no other place.
func TestUnlinkLogDamagedMidway(t *testing.T) {
	e := newEnv(t, nil)
	x := must[Attr](t)(e.j.Mknod(bg, RootIno, "x", 0o644, 0, 0, 0))
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	b := damagedLog(x.Ino)
	path := filepath.Join(e.opts.Dir, unlinkLogName)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Open(bg, e.opts)
	if err == nil {
		j.Close()
		t.Fatalf("Open applied a damaged unlink log (lookup of the create after the damage lost it)")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "mv ") {
		t.Fatalf("Open's error does not name the log and what to do: %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
		t.Fatalf("Open changed the damaged unlink log (%d bytes, was %d)", len(got), len(b))
	}
	// Moved aside, as the error says, the drive opens without it.
	if err := os.Rename(path, path+".damaged"); err != nil {
		t.Fatal(err)
	}
	e.open()
	must[Attr](t)(e.j.Lookup(bg, RootIno, "x"))
	// Records after the damage that journal.db shows already (the log
	// keeps applied records until it is emptied) lose nothing: the open
	// goes on.
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	b = appendUnlink(nil, unlinkRec{parent: RootIno, ino: x.Ino, name: "x"})
	b[len(b)-6] ^= 0x40
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: x.Ino, name: "x", create: true, mode: sIFREG | 0o644, t: 1})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.open()
	must[Attr](t)(e.j.Lookup(bg, RootIno, "x"))
}

// TestUnlinkLogDamagedAfterRestart: a log damaged mid-way in an earlier
// boot of the machine (a power cut, which may damage appends nobody
// fsync'd) is applied up to the damage and the records after it are
// dropped, with a copy of the log kept; the Open goes on.
func TestUnlinkLogDamagedAfterRestart(t *testing.T) {
	e := newEnv(t, nil)
	x := must[Attr](t)(e.j.Mknod(bg, RootIno, "x", 0o644, 0, 0, 0))
	y := must[Attr](t)(e.j.Mknod(bg, RootIno, "y", 0o644, 0, 0, 0))
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	b := appendUnlink(nil, unlinkRec{parent: RootIno, ino: x.Ino, name: "x"})
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: y.Ino, name: "y"})
	b[len(b)-6] ^= 0x40 // y's record: its checksum fails
	b = appendUnlink(b, unlinkRec{parent: RootIno, ino: y.Ino + 1, name: "new", create: true, mode: sIFREG | 0o644, t: 1})
	path := filepath.Join(e.opts.Dir, unlinkLogName)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.opts.Dir, bootName), []byte("an earlier boot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.open()
	for name, want := range map[string]error{"x": ErrNotFound, "y": nil, "new": ErrNotFound} {
		if _, err := e.j.Lookup(bg, RootIno, name); !errors.Is(err, want) {
			t.Errorf("lookup of %s after the open: %v, want %v", name, err, want)
		}
	}
	copies, _ := filepath.Glob(path + ".damaged-*")
	if len(copies) != 1 {
		t.Fatalf("copies of the damaged log: %v", copies)
	}
	if got, _ := os.ReadFile(copies[0]); !bytes.Equal(got, b) {
		t.Fatalf("the copy of the damaged log differs from it")
	}
	now, _ := bootID()
	if got, _ := os.ReadFile(filepath.Join(e.opts.Dir, bootName)); strings.TrimSpace(string(got)) != now {
		t.Fatalf("the boot the log is written in: %q, want %q", got, now)
	}
}

// TestUnlinkLogBootNotRecorded: when this boot cannot be recorded as the
// log's (the boot file cannot be replaced), the boot file of an earlier
// boot must not stay: the next Open would take a log damaged in this
// boot (outside meshdrive: a kill -9 damages nothing) for a power cut's,
// and drop the records after the damage instead of refusing.
func TestUnlinkLogBootNotRecorded(t *testing.T) {
	if now, err := bootID(); err != nil || now == "" {
		t.Skip("this machine tells no boot id")
	}
	e := newEnv(t, nil)
	x := must[Attr](t)(e.j.Mknod(bg, RootIno, "x", 0o644, 0, 0, 0))
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	boot := filepath.Join(e.opts.Dir, bootName)
	if err := os.WriteFile(boot, []byte("an earlier boot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(boot+".tmp", 0o700); err != nil { // the new boot file cannot be written
		t.Fatal(err)
	}
	e.open() // records this boot, or fails to
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	if err := os.WriteFile(filepath.Join(e.opts.Dir, unlinkLogName), damagedLog(x.Ino), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Open(bg, e.opts)
	if err == nil {
		j.Close()
		t.Fatalf("Open took a log damaged in this boot for a power cut's and dropped the create after the damage")
	}
}

// TestUnlinkLogDamagedTwice: a log damaged at its start and torn at its
// end is looked through once, not once per record (a 32 MiB log of small
// records would take hours), and is a torn log: no whole records reach
// its end.
func TestUnlinkLogDamagedTwice(t *testing.T) {
	var b []byte
	for i := range 200000 {
		b = appendUnlink(b, unlinkRec{parent: RootIno, ino: Ino(i + 2), name: "n"})
	}
	b[0] ^= 0xff
	b = b[:len(b)-1]
	recs, n := decodeUnlinks(b)
	if len(recs) != 0 || n != 0 {
		t.Fatalf("decoded %d records, %d bytes, of a log damaged at its first byte", len(recs), n)
	}
	if at := wholeRecordAfter(b, n); at != -1 {
		t.Fatalf("whole records to the end from byte %d of a torn log", at)
	}
}

// TestUnlinkLogNeverQuiet: the unlink log is emptied when an apply finds
// nothing new pending, which a stream of records that never goes quiet
// may never let happen (here an unlink lands in every apply's window,
// between its commit and its end, as another directory's rm or a close
// may). Past ulogGrow bytes or ulogGrowRecs records the log takes no
// record until an apply has emptied it.
func TestUnlinkLogNeverQuiet(t *testing.T) {
	for _, bound := range []string{"bytes", "records"} {
		t.Run(bound, func(t *testing.T) {
			e := newEnv(t, noTimers)
			j := e.j
			const files = 400
			name := func(i int) string { return fmt.Sprintf("%0200d", i) } // records of about 220 bytes
			d := must[Attr](t)(j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
			for i := range files {
				must[Attr](t)(j.Mknod(bg, d.Ino, name(i), 0o644, 0, 0, 0))
			}
			applyUnlinks(t, j)
			// As if the log held that many applied records already (a
			// million unlinks' worth of bytes; 65000 records): the
			// stream below passes the bound.
			j.unl.umu.Lock()
			if bound == "bytes" {
				j.unl.ulogSize = ulogGrow - 32<<10
			} else {
				j.unl.ulogRecs = ulogGrowRecs - 150
			}
			j.unl.umu.Unlock()
			path := filepath.Join(e.opts.Dir, unlinkLogName)
			size := func() int64 { return must[os.FileInfo](t)(os.Stat(path)).Size() }
			last := size()
			next := 0
			var late []string // unlinks the log did not take in the window
			j.appliedHook = func() {
				if next == files {
					return
				}
				switch ok, err := j.ul.deferUnlink(bg, d.Ino, name(next)); {
				case err != nil:
					t.Error(err)
				case !ok:
					late = append(late, name(next))
				}
				next++
			}
			if err := j.Unlink(bg, d.Ino, name(0)); err != nil { // the first, deferred
				t.Fatal(err)
			}
			next = 1
			var most int64
			mostRecs := 0
			emptied := false
			for round := 0; next < files || j.unl.unlN.Load() > 0 || len(late) > 0; round++ {
				if round > 2*files {
					t.Fatalf("%d applies for %d unlinks: the stream stalled at %d", round, files, next)
				}
				applyUnlinks(t, j) // the unlinker's
				for _, n := range late {
					if err := j.Unlink(bg, d.Ino, n); err != nil {
						t.Fatal(err)
					}
				}
				late = nil
				j.unl.umu.Lock()
				most, mostRecs = max(most, j.unl.ulogSize), max(mostRecs, j.unl.ulogRecs)
				j.unl.umu.Unlock()
				// Emptied while the stream runs: it goes quiet at its end.
				now := size()
				emptied = emptied || now < last && next < files
				last = now
			}
			j.appliedHook = nil
			if most > ulogGrow+1<<10 || mostRecs > ulogGrowRecs || !emptied {
				t.Errorf("the unlink log grew to %d bytes, %d records (bounds %d, %d), emptied: %v", most, mostRecs, ulogGrow, ulogGrowRecs, emptied)
			}
			if n := len(must[[]DirEntry](t)(j.ReadDir(bg, d.Ino, 0, 2*files))); n != 0 {
				t.Errorf("%d entries left", n)
			}
			e.reopen()
			if n := len(must[[]DirEntry](t)(e.j.ReadDir(bg, d.Ino, 0, 2*files))); n != 0 {
				t.Errorf("%d entries after a reopen", n)
			}
		})
	}
}

// TestUnlinkLogDamagedMidwayUnderMkdir: the create after the damage is in
// a directory a deferred mkdir made, before the damage or in the damaged
// record itself. Neither is in journal.db yet, so Open refuses as for any
// create after the damage (TestUnlinkLogDamagedMidway); counted alone,
// the records after the damage made a create whose parent journal.db
// lacks, which "does not fit the database": Open dropped the file and
// emptied the log.
func TestUnlinkLogDamagedMidwayUnderMkdir(t *testing.T) {
	for _, damaged := range []string{"a record between", "the mkdir"} {
		t.Run(damaged, func(t *testing.T) {
			e := newEnv(t, nil)
			x := must[Attr](t)(e.j.Mknod(bg, RootIno, "x", 0o644, 0, 0, 0))
			if err := e.j.Close(); err != nil {
				t.Fatal(err)
			}
			e.j = nil
			d := unlinkRec{parent: RootIno, ino: x.Ino + 1, name: "d", create: true, mode: sIFDIR | 0o755, t: 1}
			b := appendUnlink(nil, d)
			if damaged == "the mkdir" {
				b[len(b)-6] ^= 0x40 // d's name: its checksum fails
			} else {
				b = appendUnlink(b, unlinkRec{parent: RootIno, ino: x.Ino, name: "x"})
				b[len(b)-6] ^= 0x40 // x's name
			}
			b = appendUnlink(b, unlinkRec{parent: d.ino, ino: d.ino + 1, name: "f", create: true, mode: sIFREG | 0o644, t: 1})
			path := filepath.Join(e.opts.Dir, unlinkLogName)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			j, err := Open(bg, e.opts)
			if err == nil {
				_, lerr := j.Lookup(bg, d.ino, "f")
				j.Close()
				t.Fatalf("Open applied a damaged unlink log whose create after the damage is in a directory a deferred mkdir made (lookup of the create: %v)", lerr)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
				t.Fatalf("Open changed the damaged unlink log (%d bytes, was %d)", len(got), len(b))
			}
		})
	}
}

// TestApplyLeavesInodesFree: an apply of creates and closes holds no
// imu, which every write, release and GetAttr takes (a cp -a waited on
// it while a hundred closes were applied); an apply with an unlink holds
// it from its look at the open inodes to its commit.
func TestApplyLeavesInodesFree(t *testing.T) {
	e := newEnv(t, noTimers)
	j := e.j
	held := func() (held bool) {
		t.Helper()
		j.applyingHook = func(int) {
			if held = !j.imu.TryLock(); !held {
				j.imu.Unlock()
			}
		}
		defer func() { j.applyingHook = nil }()
		applyUnlinks(t, j)
		return held
	}
	writeClosed(t, j, "f", []byte("data"))
	if pendingFlushes(j) != 1 {
		t.Fatal("the close was not logged")
	}
	if held() {
		t.Fatal("the apply of a create and a close held imu")
	}
	if err := j.Unlink(bg, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	if j.unl.unlN.Load() != 1 {
		t.Fatal("the unlink was not deferred")
	}
	if !held() {
		t.Fatal("the apply of an unlink did not hold imu")
	}
}

// TestUnlinkerBatches: the unlinker applies the pending records
// unlinkerBatch at a time, each in a transaction of its own, so that a
// create waits for wmu no longer than one batch takes; all are applied.
func TestUnlinkerBatches(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.UnlinkDelay = 300 * time.Millisecond
		o.IdleFlush, o.GroupCommit = time.Hour, time.Hour
	})
	j := e.j
	var mu sync.Mutex
	var sizes []int
	j.wmu.Lock()
	j.applyingHook = func(n int) { // wmu held: no race with the test
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}
	j.wmu.Unlock()
	const files = 2*unlinkerBatch + 10
	for i := range files {
		must[Attr](t)(j.Mknod(bg, RootIno, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0))
	}
	deadline := time.Now().Add(10 * time.Second)
	for j.unl.unlN.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records still pending after 10 s", j.unl.unlN.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		if n > unlinkerBatch {
			t.Fatalf("one apply took %d records, more than %d (applies: %v)", n, unlinkerBatch, sizes)
		}
		total += n
	}
	if total != files {
		t.Fatalf("the applies took %d records, want %d (applies: %v)", total, files, sizes)
	}
	for i := range files {
		must[Attr](t)(j.Lookup(bg, RootIno, fmt.Sprintf("f%d", i)))
	}
}

// unlinkerStep is one pass of the unlinker's loop: a batch of at most
// unlinkerBatch pending records applied in its own transaction.
func unlinkerStep(t *testing.T, j *Journal) {
	t.Helper()
	j.ul.sealAhead()
	j.wmu.Lock()
	recs := j.unl.pending()
	recs = recs[:min(len(recs), unlinkerBatch)]
	err := txApplyingRecsLocked(j.ul, bg, recs, nil)
	j.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	j.ul.cleanApplied()
}

// TestUnlinkerBatchKeepsLaterDirSets: a batch that applies one
// directory's pending SetAttr leaves another's, logged after the batch,
// pending: GetAttr still shows it, and a create in that directory is
// not deferred behind it (the apply would lay the change's times over
// the create's).
func TestUnlinkerBatchKeepsLaterDirSets(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.UnlinkDelay = time.Hour // the test runs the unlinker's passes
		o.IdleFlush, o.GroupCommit = time.Hour, time.Hour
	})
	j := e.j
	d0 := must[Attr](t)(j.Mkdir(bg, RootIno, "d0", 0o755, 0, 0))
	d1 := must[Attr](t)(j.Mkdir(bg, RootIno, "d1", 0o755, 0, 0))
	applyUnlinks(t, j)
	mode := uint32(0o711)
	old := time.Unix(1600000000, 0)
	must[Attr](t)(j.SetAttr(bg, d0.Ino, SetAttr{Mode: &mode}))
	for i := range unlinkerBatch + 6 {
		must[Attr](t)(j.Mknod(bg, RootIno, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0))
	}
	must[Attr](t)(j.SetAttr(bg, d1.Ino, SetAttr{Mode: &mode, Mtime: &old}))
	if n := j.unl.unlN.Load(); n != unlinkerBatch+8 {
		t.Fatalf("%d records pending, want %d (all deferred)", n, unlinkerBatch+8)
	}
	unlinkerStep(t, j)
	if j.unl.unlN.Load() == 0 {
		t.Fatal("the first pass applied everything")
	}
	if a := must[Attr](t)(j.GetAttr(bg, d1.Ino)); a.Mode != sIFDIR|mode || !a.Mtime.Equal(old) {
		t.Errorf("d1 between the passes: mode %o mtime %v, want %o %v (its change is still pending)", a.Mode, a.Mtime, sIFDIR|mode, old)
	}
	before := time.Now()
	must[Attr](t)(j.Mknod(bg, d1.Ino, "late", 0o644, 0, 0, 0))
	for j.unl.unlN.Load() > 0 {
		unlinkerStep(t, j)
	}
	for _, d := range []Attr{d0, d1} {
		if a := dbAttr(t, j, d.Ino); a.Mode != sIFDIR|mode {
			t.Fatalf("directory %d's row after the passes: mode %o, want %o", d.Ino, a.Mode, sIFDIR|mode)
		}
	}
	if a := dbAttr(t, j, d1.Ino); a.Mtime.Before(before) {
		t.Fatalf("d1's mtime %v after a create in it at %v: the change logged before the create was applied over it", a.Mtime, before)
	}
	must[Attr](t)(j.Lookup(bg, d1.Ino, "late"))
}

// TestUnlinkSkipsTheInodeLock: a deferred unlink, and the GETATTR and
// LOOKUP that come with it, do not wait for imu, which the unlinker's
// apply of unlinks holds through its transaction: under a run of unlinks
// about one in a hundred waited for it, 7 ms each, a third of the run.
func TestUnlinkSkipsTheInodeLock(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour })
	j := e.j
	for _, name := range []string{"a", "b"} {
		must[Attr](t)(j.Mknod(bg, RootIno, name, sIFREG|0o644, 0, 0, 0))
	}
	applyUnlinks(t, j)
	err := whileLocked(t, &j.imu, "a getattr, lookup or deferred unlink", func() error { // as the unlinker's apply of unlinks holds it
		if _, err := j.GetAttr(bg, RootIno); err != nil {
			return err
		}
		if _, err := j.Lookup(bg, RootIno, "b"); err != nil {
			return err
		}
		return j.Unlink(bg, RootIno, "a")
	})
	if err != nil {
		t.Fatal(err)
	}
	if entryRows(t, j, "a") != 1 {
		t.Fatal("the unlink was applied at once, not deferred")
	}
	applyUnlinks(t, j)
	if entryRows(t, j, "a") != 0 || entryRows(t, j, "b") != 1 {
		t.Fatalf("after the apply: %d rows named a, %d named b; want 0 and 1", entryRows(t, j, "a"), entryRows(t, j, "b"))
	}
}
