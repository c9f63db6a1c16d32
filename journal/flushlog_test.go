package journal

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// dbSize is ino's size in the database.
func dbSize(t *testing.T, j *Journal, ino Ino) int64 {
	t.Helper()
	return int64(queryInt(t, j, `SELECT size FROM inodes WHERE ino = ?`, ino))
}

// noTimers keeps the journal's timers from applying a logged close
// behind a test's back in real time: the idle flush (which would commit
// a file between its write and its close), the group commit and the
// unlink apply (either would fold the record into its transaction).
func noTimers(o *Options) {
	o.UnlinkDelay, o.IdleFlush, o.GroupCommit = time.Hour, time.Hour, time.Hour
}

// pendingFlushes counts the pending deferred flushes.
func pendingFlushes(j *Journal) int {
	n := 0
	for _, r := range j.unl.pending() {
		if r.fl != nil {
			n++
		}
	}
	return n
}

// TestDeferredFlush: the close of a small file is logged, not committed;
// until the apply every read sees the file as closed, a second close or
// idle flush logs nothing, and a write, truncate or fsync after it keeps
// the newer state; the apply commits the file and cleans its inode.
func TestDeferredFlush(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour; o.IdleFlush = time.Hour })
		j := e.j
		f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
		applyUnlinks(t, j) // the create, so that the row below exists
		j.OpenFile(f.Ino)
		data := []byte("hello, deferred world")
		must[int](t)(j.WriteAt(bg, f.Ino, data, 0))
		gen := j.commitGen.Load()
		if err := j.Flush(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		if j.commitGen.Load() != gen || pendingFlushes(j) != 1 {
			t.Fatalf("the close committed (%d commits) or logged %d records, want no commit and 1 record", j.commitGen.Load()-gen, pendingFlushes(j))
		}
		if s := dbSize(t, j, f.Ino); s != 0 {
			t.Fatalf("database size %d before the apply, want 0", s)
		}
		if a := must[Attr](t)(j.GetAttr(bg, f.Ino)); a.Size != uint64(len(data)) {
			t.Fatalf("GetAttr size %d before the apply, want %d", a.Size, len(data))
		}
		if got := readAll(t, j, f.Ino); !bytes.Equal(got, data) {
			t.Fatalf("read %q before the apply", got)
		}
		// The release's and the idle timer's flushes find it logged.
		if err := j.Flush(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		if n := pendingFlushes(j); n != 1 || j.commitGen.Load() != gen {
			t.Fatalf("a second close logged again or committed: %d records", n)
		}
		// A write after the logged close: its own close logs a second
		// record, applied after the first.
		more := []byte("HELLO")
		must[int](t)(j.WriteAt(bg, f.Ino, more, 0))
		if err := j.Flush(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		if n := pendingFlushes(j); n != 2 {
			t.Fatalf("%d records after a write and a close, want 2", n)
		}
		want := append(append([]byte{}, more...), data[len(more):]...)
		j.ReleaseFile(f.Ino)
		applyUnlinks(t, j)
		if s := dbSize(t, j, f.Ino); s != int64(len(want)) {
			t.Fatalf("database size %d after the apply, want %d", s, len(want))
		}
		j.imu.Lock()
		_, inMem := j.inodes[f.Ino]
		j.imu.Unlock()
		if inMem {
			t.Fatal("the inode is still in memory after the apply of its closes")
		}
		if got := readAll(t, j, f.Ino); !bytes.Equal(got, want) {
			t.Fatalf("read %q after the apply, want %q", got, want)
		}
		if queryInt(t, j, `SELECT count(*) FROM blocks`) != 1 || queryInt(t, j, `SELECT count(*) FROM staged`) != 1 {
			t.Fatal("the first record's block outlived the second's")
		}

		// A truncate, and an fsync, after a logged close.
		g := must[Attr](t)(j.Mknod(bg, RootIno, "g", 0o644, 0, 0, 0))
		j.OpenFile(g.Ino)
		must[int](t)(j.WriteAt(bg, g.Ino, []byte("0123456789"), 0))
		if err := j.Flush(bg, g.Ino); err != nil {
			t.Fatal(err)
		}
		four := uint64(4)
		must[Attr](t)(j.SetAttr(bg, g.Ino, SetAttr{Size: &four}))
		if got := readAll(t, j, g.Ino); string(got) != "0123" {
			t.Fatalf("read %q after a truncate of a logged file", got)
		}
		must[int](t)(j.WriteAt(bg, g.Ino, []byte("x"), 10))
		if err := j.Flush(bg, g.Ino); err != nil {
			t.Fatal(err)
		}
		if err := j.Fsync(bg, g.Ino); err != nil {
			t.Fatal(err)
		}
		if n := pendingFlushes(j); n != 0 {
			t.Fatalf("%d records pending after an fsync", n)
		}
		j.ReleaseFile(g.Ino)
		if s := dbSize(t, j, g.Ino); s != 11 {
			t.Fatalf("database size %d after the fsync, want 11", s)
		}
		e.reopen()
		if got := readAll(t, e.j, g.Ino); string(got) != "0123\x00\x00\x00\x00\x00\x00x" {
			t.Fatalf("read %q after reopen", got)
		}
		if got := readAll(t, e.j, f.Ino); !bytes.Equal(got, want) {
			t.Fatalf("read %q after reopen, want %q", got, want)
		}
	})
}

// TestFlushLogReplayOnce: a logged close applied before a crash stays in
// the log (it is emptied only past ulogKeep); the next Open must not
// apply it again over what was committed after it.
func TestFlushLogReplayOnce(t *testing.T) {
	e := newEnv(t, noTimers)
	j := e.j
	f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	j.OpenFile(f.Ino)
	must[int](t)(j.WriteAt(bg, f.Ino, []byte("old content"), 0))
	if err := j.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	applyUnlinks(t, j)
	must[int](t)(j.WriteAt(bg, f.Ino, []byte("NEW"), 0))
	if err := j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	j.ReleaseFile(f.Ino)
	path := filepath.Join(e.opts.Dir, unlinkLogName)
	log, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, n := decodeUnlinks(log)
	if n != len(log) || len(recs) != 2 || recs[1].fl == nil {
		t.Fatalf("the log holds %d records in %d of %d bytes, want the create and the close", len(recs), n, len(log))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	if err := os.WriteFile(path, log, 0o600); err != nil { // as a crash left it
		t.Fatal(err)
	}
	e.open()
	if got := readAll(t, e.j, f.Ino); string(got) != "NEW content" {
		t.Fatalf("after reopen the file reads %q, want %q: an applied close was replayed", got, "NEW content")
	}
	// A close logged after the reopen must be numbered past the applied
	// ones, or a crash before its apply would skip it.
	j = e.j
	j.OpenFile(f.Ino)
	must[int](t)(j.WriteAt(bg, f.Ino, []byte("third"), 0))
	if err := j.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	j.ReleaseFile(f.Ino)
	log2, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	rec, _ := decodeUnlinks(log2)
	if len(rec) != 1 || rec[0].fl == nil || rec[0].fl.seq <= recs[1].fl.seq {
		t.Fatalf("the log after reopen: %d records, want one close numbered past %d", len(rec), recs[1].fl.seq)
	}
	e.open()
	if got := readAll(t, e.j, f.Ino); string(got) != "thirdontent" {
		t.Fatalf("after the second reopen the file reads %q", got)
	}
}

// TestFlushRecRoundTrip: flush records read back as written, between
// other records; a cut or flipped byte never makes one up.
func TestFlushRecRoundTrip(t *testing.T) {
	recs := []unlinkRec{
		{ino: 7, fl: &flushRec{seq: 1, size: 70000, mtime: -5, ctime: 1<<63 - 1,
			pend: pendAttr{mode: 0o4755, uid: 1<<32 - 1, gid: 3, atime: -1 << 62, hasMode: true, hasUid: true, hasGid: true, hasAtime: true, exactCtime: true},
			cuts: []cut{{idx: 0, id: [32]byte{1, 2, 3}, plainLen: 65536, inline: []byte("sealed bytes")}, {idx: 1, hole: true}}}},
		{parent: 1, ino: 2, name: "a"},
		{ino: 1 << 40, fl: &flushRec{seq: 1 << 50, cuts: []cut{}}},
		{ino: 9, fl: &flushRec{seq: 7, size: 5, cuts: []cut{{idx: 0, id: [32]byte{9}, plainLen: 5, unsealed: []byte("plain")}}}},
	}
	same := func(a, b unlinkRec) bool {
		if a.fl == nil || b.fl == nil {
			return a.fl == nil && b.fl == nil && a == b
		}
		x, y := a.fl, b.fl
		if a.ino != b.ino || x.seq != y.seq || x.size != y.size || x.mtime != y.mtime || x.ctime != y.ctime || x.pend != y.pend || len(x.cuts) != len(y.cuts) {
			return false
		}
		for i, c := range x.cuts {
			d := y.cuts[i]
			if c.idx != d.idx || c.hole != d.hole || c.id != d.id || c.plainLen != d.plainLen || !bytes.Equal(c.inline, d.inline) ||
				!bytes.Equal(c.unsealed, d.unsealed) || (c.unsealed == nil) != (d.unsealed == nil) {
				return false
			}
		}
		return true
	}
	checkRoundTrip(t, recs, same)
}

// TestDeferredFlushBounded: past ulogGrow bytes of log a close
// commits itself (and applies what is pending) rather than grow it.
func TestDeferredFlushBounded(t *testing.T) {
	e := newEnv(t, noTimers)
	j := e.j
	f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	j.OpenFile(f.Ino)
	defer j.ReleaseFile(f.Ino)
	j.unl.umu.Lock()
	j.unl.ulogSize = ulogGrow + 1
	j.unl.umu.Unlock()
	must[int](t)(j.WriteAt(bg, f.Ino, []byte("data"), 0))
	if err := j.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	if n := pendingFlushes(j); n != 0 || j.unl.unlN.Load() != 0 {
		t.Fatalf("%d flush records (%d records) pending past the log's bound", n, j.unl.unlN.Load())
	}
	if s := dbSize(t, j, f.Ino); s != 4 {
		t.Fatalf("database size %d after a close past the bound, want 4", s)
	}
}

// TestDeferredFlushBlocks: a file's block count is the same before and
// after the apply of its close (a stat must not change with no change to
// the file): zeros use none, data its bytes.
func TestDeferredFlushBlocks(t *testing.T) {
	e := newEnv(t, noTimers)
	j := e.j
	data := make([]byte, 1500)
	fillRand(3, data)
	files := map[string][]byte{"zeros": make([]byte, 3), "data": data}
	before := map[Ino]uint64{}
	for name, b := range files {
		f := writeClosed(t, j, name, b)
		before[f.Ino] = must[Attr](t)(j.GetAttr(bg, f.Ino)).Blocks
	}
	if pendingFlushes(j) != 2 {
		t.Fatalf("%d closes logged, want 2", pendingFlushes(j))
	}
	applyUnlinks(t, j)
	for ino, b := range before {
		if a := must[Attr](t)(j.GetAttr(bg, ino)); a.Blocks != b {
			t.Errorf("inode %d: %d blocks before the apply of its close, %d after", ino, b, a.Blocks)
		}
	}
}

// TestSetAttrAfterLoggedClose: a chmod or utimensat after a logged close
// is committed at once, as after any close (a crash must not keep the
// data and lose the mode), and GetAttr shows it.
func TestSetAttrAfterLoggedClose(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour; o.IdleFlush = time.Hour })
		j := e.j
		f := must[Attr](t)(j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
		j.OpenFile(f.Ino)
		must[int](t)(j.WriteAt(bg, f.Ino, []byte("#!/bin/sh\n"), 0))
		if err := j.Flush(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		j.ReleaseFile(f.Ino)
		if pendingFlushes(j) != 1 {
			t.Fatal("the close was not logged")
		}
		mode := uint32(0o755)
		mt := time.Unix(1600000000, 0)
		a := must[Attr](t)(j.SetAttr(bg, f.Ino, SetAttr{Mode: &mode, Mtime: &mt}))
		if a.Mode&0o7777 != 0o755 || !a.Mtime.Equal(mt) || a.Size != 10 {
			t.Fatalf("SetAttr after a logged close answered %+v", a)
		}
		var m uint32
		var mtime, size int64
		if err := j.db.QueryRow(`SELECT mode, mtime, size FROM inodes WHERE ino = ?`, f.Ino).Scan(&m, &mtime, &size); err != nil {
			t.Fatal(err)
		}
		if m&0o7777 != 0o755 || mtime != mt.UnixNano() || size != 10 {
			t.Fatalf("database after the chmod: mode %o mtime %d size %d; want 755, %d, 10", m&0o7777, mtime, size, mt.UnixNano())
		}
		if got := readAll(t, j, f.Ino); string(got) != "#!/bin/sh\n" {
			t.Fatalf("read %q", got)
		}
	})
}

// TestFoldedCloseFreesBlockAnotherBringsBack: a logged close that drops a
// file's staged block X is applied at the start of another file's fsync,
// whose data is X again (deduplicated, then staged anew because the
// apply freed it). X's staging file must survive the next durable commit.
func TestFoldedCloseFreesBlockAnotherBringsBack(t *testing.T) {
	e := newEnv(t, noTimers)
	e.g.down.Store(true) // nothing leaves the staging directory
	j := e.j
	x := make([]byte, 40<<10) // sealed past the inline bound: a staging file
	fillRand(11, x)
	a := must[Attr](t)(j.Mknod(bg, RootIno, "a", 0o644, 0, 0, 0))
	j.OpenFile(a.Ino)
	must[int](t)(j.WriteAt(bg, a.Ino, x, 0))
	if err := j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	// a's block becomes small and compressible: its close is logged.
	must[int](t)(j.WriteAt(bg, a.Ino, make([]byte, len(x)-1), 1))
	if err := j.Flush(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	j.ReleaseFile(a.Ino)
	if pendingFlushes(j) != 1 {
		t.Fatal("a's close was not logged")
	}
	b := must[Attr](t)(j.Mknod(bg, RootIno, "b", 0o644, 0, 0, 0))
	j.OpenFile(b.Ino)
	must[int](t)(j.WriteAt(bg, b.Ino, x, 0))
	if err := j.Fsync(bg, b.Ino); err != nil {
		t.Fatal(err)
	}
	j.ReleaseFile(b.Ino)
	if err := j.c.barrier(bg); err != nil { // a durable commit: what waited for one goes
		t.Fatal(err)
	}
	must[Attr](t)(j.Mknod(bg, RootIno, "c", 0o644, 0, 0, 0))
	if err := j.Fsync(bg, RootIno); err != nil {
		t.Fatal(err)
	}
	e.reopen() // checkDB, and Open refuses a staged block without its file
	if got := readAll(t, e.j, b.Ino); !bytes.Equal(got, x) {
		t.Fatal("b does not read back")
	}
}

// TestLoggedCloseSealedByApply: a logged close leaves its small block
// unsealed; its record holds the plain bytes, and the apply seals them,
// whether the unlinker sealed them ahead (sealAhead) or not (incRef).
// Either way the staged row opens to the file's bytes under the block's
// id, and a record whose plain bytes do not match its length is not
// read back.
func TestLoggedCloseSealedByApply(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour; o.IdleFlush = time.Hour })
	j := e.j
	for i, ahead := range []bool{false, true} {
		name := fmt.Sprintf("f%d", i)
		data := []byte(strings.Repeat(name+" plain bytes ", 10))
		f := writeClosed(t, j, name, data)
		var rec *flushRec
		for _, r := range j.unl.pending() {
			if r.fl != nil && r.ino == f.Ino {
				rec = r.fl
			}
		}
		if rec == nil || len(rec.cuts) != 1 || !bytes.Equal(rec.cuts[0].unsealed, data) || rec.cuts[0].inline != nil {
			t.Fatalf("%s: the logged close does not hold its block unsealed: %+v", name, rec)
		}
		log, err := os.ReadFile(filepath.Join(e.opts.Dir, unlinkLogName))
		if err != nil || !bytes.Contains(log, data) {
			t.Fatalf("%s: the log does not hold the plain bytes (%v)", name, err)
		}
		if ahead {
			j.ul.sealAhead()
			if rec.sealed.Load() == nil {
				t.Fatalf("%s: sealAhead sealed nothing", name)
			}
		}
		bid := rec.cuts[0].id
		applyUnlinks(t, j)
		var sealed []byte
		if err := j.db.QueryRow(`SELECT sealed FROM staged WHERE id = ?`, bid[:]).Scan(&sealed); err != nil {
			t.Fatalf("%s: no staged row after the apply: %v", name, err)
		}
		if n := queryInt(t, j, `SELECT count(*) FROM blockmap WHERE ino = ? AND block = ?`, f.Ino, bid[:]); n != 1 {
			t.Fatalf("%s: the file's block map does not name the block", name)
		}
		plain, err := j.seal.Open(nil, bid, sealed)
		if err != nil || !bytes.Equal(plain, data) {
			t.Fatalf("%s: the staged row opens to %q (%v), want the file's bytes", name, plain, err)
		}
		if got := readAll(t, j, f.Ino); !bytes.Equal(got, data) {
			t.Fatalf("%s: reads %q", name, got)
		}
	}
	bad := appendFlushPayload(nil, 5, &flushRec{seq: 1, size: 4, cuts: []cut{{id: [32]byte{1}, plainLen: 4, unsealed: []byte("abc")}}})
	if _, _, ok := decodeFlushPayload(bad); ok {
		t.Fatal("a plain block shorter than its length decoded")
	}
}

// TestLoggedCloseStagedInFile: the close of a file whose block seals too
// big for the database is logged like a small file's (no commit, no
// staging file on the close's path), and so is the close of a file whose
// block is in the database already. The apply stages the first in a
// staging file, sealed ahead or not, and leaves no temporary file; it
// adds a reference to the second. A kill -9 before the apply loses
// neither.
func TestLoggedCloseStagedInFile(t *testing.T) {
	e := newEnv(t, noTimers)
	j := e.j
	random := func(seed uint64) []byte {
		b := make([]byte, 60<<10) // seals to more than half the 64 KiB block
		fillRand(seed, b)
		return b
	}
	closeLogged := func(name string, data []byte) (Ino, *flushRec) {
		t.Helper()
		gen := j.commitGen.Load()
		f := writeClosed(t, j, name, data)
		if j.commitGen.Load() != gen {
			t.Fatalf("%s: the close committed", name)
		}
		for _, r := range j.unl.pending() {
			if r.fl != nil && r.ino == f.Ino {
				if len(r.fl.cuts) != 1 {
					t.Fatalf("%s: the record holds %d cuts", name, len(r.fl.cuts))
				}
				return f.Ino, r.fl
			}
		}
		t.Fatalf("%s: the close was not logged", name)
		return 0, nil
	}
	// stagedInFile checks that block id is staged in its file, which
	// opens to data, and not in table staged, with no temporary file.
	stagedInFile := func(name string, id [32]byte, data []byte) {
		t.Helper()
		sealed, err := os.ReadFile(j.c.stagePath(id))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if plain, err := j.seal.Open(nil, id, sealed); err != nil || !bytes.Equal(plain, data) {
			t.Fatalf("%s: the staging file does not open to the file's bytes (%v)", name, err)
		}
		if n := queryInt(t, j, `SELECT count(*) FROM staged WHERE id = ?`, id[:]); n != 0 {
			t.Fatalf("%s: the block is in table staged too", name)
		}
		if tmp, _ := filepath.Glob(j.c.stagePath(id) + ".*.tmp"); len(tmp) != 0 {
			t.Fatalf("%s: temporary staging files left: %v", name, tmp)
		}
	}

	for i, ahead := range []bool{false, true} {
		name := fmt.Sprintf("big%d", i)
		data := random(uint64(11 + i))
		ino, rec := closeLogged(name, data)
		id := rec.cuts[0].id
		if !bytes.Equal(rec.cuts[0].unsealed, data) {
			t.Fatalf("%s: the record does not hold the block's plain bytes", name)
		}
		if _, err := os.Stat(j.c.stagePath(id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a staging file before the apply: %v", name, err)
		}
		if ahead {
			j.ul.sealAhead()
			if p := rec.sealed.Load(); p == nil || (*p)[0].big == nil || (*p)[0].inline != nil {
				t.Fatalf("%s: sealAhead did not keep the sealed block for a file", name)
			}
		}
		applyUnlinks(t, j)
		stagedInFile(name, id, data)
		if got := readAll(t, j, ino); !bytes.Equal(got, data) {
			t.Fatalf("%s: reads other bytes after the apply", name)
		}
	}
	blocks := queryInt(t, j, `SELECT count(*) FROM blocks`)
	dup, rec := closeLogged("dup", random(11))
	if rec.cuts[0].plain == nil {
		t.Fatal("the close of a copy did not find its block in the database")
	}
	bid := rec.cuts[0].id
	applyUnlinks(t, j)
	if n, ref := queryInt(t, j, `SELECT count(*) FROM blocks`), queryInt(t, j, `SELECT refcount FROM blocks WHERE id = ?`, bid[:]); n != blocks || ref != 2 {
		t.Fatalf("after the apply of a copy's close: %d blocks (want %d), refcount %d (want 2)", n, blocks, ref)
	}
	if got := readAll(t, j, dup); !bytes.Equal(got, random(11)) {
		t.Fatal("the copy reads other bytes")
	}

	// The same bytes as a lost block: the close that brings it back
	// commits at once, so that the files that name it read again.
	if _, err := j.db.Exec(`UPDATE blocks SET state = ? WHERE id = ?`, blockLost, bid[:]); err != nil {
		t.Fatal(err)
	}
	writeClosed(t, j, "revive", random(11))
	if st := queryInt(t, j, `SELECT state FROM blocks WHERE id = ?`, bid[:]); st == blockLost {
		t.Fatal("the close of a lost block's bytes did not bring it back at once")
	}
	if got := readAll(t, j, dup); !bytes.Equal(got, random(11)) {
		t.Fatal("a file that names the lost block reads other bytes after it was brought back")
	}

	// Closes logged, then a kill -9: Open applies them.
	big, rec := closeLogged("big-killed", random(13))
	id := rec.cuts[0].id
	dup2, _ := closeLogged("dup-killed", random(12))
	e.killAndReopen()
	j = e.j
	stagedInFile("big-killed", id, random(13))
	for ino, want := range map[Ino][]byte{big: random(13), dup2: random(12), dup: random(11)} {
		if got := readAll(t, j, ino); !bytes.Equal(got, want) {
			t.Fatalf("inode %d reads other bytes after a kill -9 and Open", ino)
		}
	}
}

// FuzzFlushPayload: an 'f' record's payload, read without the log's
// framing and checksum in front of it (which the fuzzer cannot get past
// in FuzzUnlinkLog): what decodes re-encodes to the same bytes, and its
// cuts' bytes lie within the payload.
func FuzzFlushPayload(f *testing.F) {
	f.Add(appendFlushPayload(nil, 7, &flushRec{seq: 3, size: 70000, mtime: -5, ctime: 1 << 60,
		pend: pendAttr{mode: 0o4755, hasMode: true, atime: -1, hasAtime: true, exactCtime: true},
		cuts: []cut{{idx: 0, id: [32]byte{1, 2, 3}, plainLen: 65536, inline: []byte("sealed bytes")}, {idx: 1, hole: true}}}))
	f.Add(appendFlushPayload(nil, 8, &flushRec{seq: 4, size: 3, cuts: []cut{{idx: 0, id: [32]byte{4}, plainLen: 3, unsealed: []byte("abc")}}}))
	f.Add(appendFlushPayload(nil, 1, &flushRec{seq: 1}))
	f.Fuzz(func(t *testing.T, p []byte) {
		ino, r, ok := decodeFlushPayload(p)
		if !ok {
			return
		}
		if ino == 0 || r.seq == 0 || r.size < 0 {
			t.Fatalf("decoded inode %d, seq %d, size %d", ino, r.seq, r.size)
		}
		for _, c := range r.cuts {
			if c.idx < 0 || !c.hole && (c.plainLen <= 0 || len(c.inline)+len(c.unsealed) == 0) {
				t.Fatalf("decoded cut %+v", c)
			}
		}
		if again := appendFlushPayload(nil, ino, r); !bytes.Equal(again, p) {
			t.Fatalf("payload re-encodes to other bytes:\n%x\n%x", again, p)
		}
	})
}

// TestCleanWhileCreatePending: the unlinker's apply of a create and the
// close after it hands the closed inode to be cleaned when its
// transaction commits, and forgets the create a moment later. A
// cleanApplied from another goroutine in between (settle, WaitDurable)
// found the inode clean while the create was still in memory: GetAttr
// and reads answered from the create, an empty file (CI saw go build
// read an empty go.mod written just before). The hook runs the clean in
// that window.
func TestCleanWhileCreatePending(t *testing.T) {
	j := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour }).j
	f := must[Attr](t)(j.Mknod(bg, RootIno, "go.mod", 0o644, 0, 0, 0))
	j.OpenFile(f.Ino)
	must[int](t)(j.WriteAt(bg, f.Ino, []byte("module x\n"), 0))
	if err := j.Flush(bg, f.Ino); err != nil { // logged, with the create pending
		t.Fatal(err)
	}
	j.ReleaseFile(f.Ino)
	if _, ok := j.unl.createdAttr(f.Ino); !ok {
		t.Fatal("the create was not deferred")
	}
	check := func(when string) {
		t.Helper()
		a, err := j.GetAttr(bg, f.Ino)
		if err != nil || a.Size != 9 {
			t.Errorf("%s: size %d, %v; want 9", when, a.Size, err)
		}
		j.OpenFile(f.Ino)
		defer j.ReleaseFile(f.Ino)
		b, err := j.Read(bg, f.Ino, make([]byte, 64), 0)
		if err != nil || string(b) != "module x\n" {
			t.Errorf("%s: read %q, %v", when, b, err)
		}
	}
	ran := false
	j.appliedHook = func() {
		j.appliedHook = nil
		ran = true
		j.ul.cleanApplied() // another goroutine's, in the window
		check("between the apply's commit and its end")
	}
	applyUnlinks(t, j)
	if !ran {
		t.Fatal("the hook did not run")
	}
	check("after the apply")
}

// TestCreatedOverlayAcrossApply: a GetAttr or Lookup that finds a file's
// create pending, and whose overlay of the inode comes after the apply
// that commits the create and its close and cleans the inode, reads the
// committed row, not the create's empty file (CI: go build read an empty
// go.mod).
func TestCreatedOverlayAcrossApply(t *testing.T) {
	for _, op := range []string{"getattr", "lookup"} {
		t.Run(op, func(t *testing.T) {
			j := newEnv(t, func(o *Options) { o.UnlinkDelay = time.Hour }).j
			f := must[Attr](t)(j.Mknod(bg, RootIno, "go.mod", 0o644, 0, 0, 0))
			j.OpenFile(f.Ino)
			must[int](t)(j.WriteAt(bg, f.Ino, []byte("module x\n"), 0))
			if err := j.Flush(bg, f.Ino); err != nil {
				t.Fatal(err)
			}
			j.ReleaseFile(f.Ino)
			if _, ok := j.unl.createdAttr(f.Ino); !ok {
				t.Fatal("the create was not deferred")
			}
			ran := false
			j.createdHook = func() {
				j.createdHook = nil
				ran = true
				applyUnlinks(t, j) // commits the create and the close, cleans the inode
			}
			var a Attr
			var err error
			if op == "getattr" {
				a, err = j.GetAttr(bg, f.Ino)
			} else {
				a, err = j.Lookup(bg, RootIno, "go.mod")
			}
			if !ran {
				t.Fatal("the hook did not run")
			}
			if err != nil || a.Size != 9 {
				t.Errorf("%s across the apply: size %d, %v; want 9", op, a.Size, err)
			}
		})
	}
}

// TestLoggedCloseRolledBackLeavesNoFile: a logged close whose block
// seals too big for the database, applied in a transaction that then
// fails after the rename of its staging file: the file, which no row
// names, goes with the rollback, sealed ahead or not; the next apply
// stages the block again, and the file reads back, also after a kill -9.
func TestLoggedCloseRolledBackLeavesNoFile(t *testing.T) {
	e := newEnv(t, noTimers)
	j := e.j
	boom := errors.New("boom")
	for i, ahead := range []bool{false, true} {
		name := fmt.Sprintf("big%d", i)
		data := make([]byte, 60<<10) // seals to more than half the 64 KiB block
		fillRand(uint64(31+i), data)
		gen := j.commitGen.Load()
		f := writeClosed(t, j, name, data)
		if j.commitGen.Load() != gen {
			t.Fatalf("%s: the close committed", name)
		}
		id := j.seal.BlockID(data)
		if ahead {
			j.ul.sealAhead()
		}
		j.wmu.Lock()
		err := j.ul.txApplyingLocked(bg, func(*sql.Tx) error { return boom })
		j.wmu.Unlock()
		if !errors.Is(err, boom) {
			t.Fatalf("%s: the failed apply returned %v", name, err)
		}
		if n := queryInt(t, j, `SELECT count(*) FROM blocks WHERE id = ?`, id[:]); n != 0 {
			t.Fatalf("%s: the block's row survived the rollback", name)
		}
		if _, err := os.Stat(j.c.stagePath(id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a staging file no row names after the rollback (%v)", name, err)
		}
		if tmp, _ := filepath.Glob(j.c.stagePath(id) + ".*.tmp"); len(tmp) != 0 {
			t.Fatalf("%s: temporary staging files left: %v", name, tmp)
		}
		applyUnlinks(t, j)
		if _, err := os.Stat(j.c.stagePath(id)); err != nil {
			t.Fatalf("%s: no staging file after the apply that committed: %v", name, err)
		}
		if got := readAll(t, j, f.Ino); !bytes.Equal(got, data) {
			t.Fatalf("%s: reads other bytes after the apply", name)
		}
	}
	e.killAndReopen()
	for i := range 2 {
		data := make([]byte, 60<<10)
		fillRand(uint64(31+i), data)
		a := must[Attr](t)(e.j.Lookup(bg, RootIno, fmt.Sprintf("big%d", i)))
		if got := readAll(t, e.j, a.Ino); !bytes.Equal(got, data) {
			t.Fatalf("big%d: reads other bytes after a kill -9", i)
		}
	}
}

// TestLoggedCopyOfFreedBlock: the close of a copy is logged with its
// block found in the database (cut.plain); the original is unlinked
// before the apply, which frees the block in the same transaction: the
// copy's apply stages it again, and its staging file is not removed
// with the freed block's.
func TestLoggedCopyOfFreedBlock(t *testing.T) {
	e := newEnv(t, noTimers)
	j := e.j
	data := make([]byte, 60<<10) // seals to more than half the 64 KiB block
	fillRand(77, data)
	writeClosed(t, j, "orig", data)
	applyUnlinks(t, j)
	id := j.seal.BlockID(data)
	cp := writeClosed(t, j, "copy", data)
	found := false
	for _, r := range j.unl.pending() {
		if r.fl != nil && r.ino == cp.Ino {
			found = r.fl.cuts[0].plain != nil
		}
	}
	if !found {
		t.Fatal("the copy's close was not logged with its block found")
	}
	if err := j.Unlink(bg, RootIno, "orig"); err != nil {
		t.Fatal(err)
	}
	if recs := j.unl.pending(); len(recs) < 2 || recs[len(recs)-2].fl == nil || recs[len(recs)-1].fl != nil || recs[len(recs)-1].create {
		t.Fatalf("the unlink was not deferred behind the close: %d records pending", len(recs))
	}
	applyUnlinks(t, j)
	if err := j.c.barrier(bg); err != nil { // the freed block's file goes after a durable commit
		t.Fatal(err)
	}
	if _, err := os.Stat(j.c.stagePath(id)); err != nil {
		t.Fatalf("the copy's block has no staging file: %v", err)
	}
	if ref := queryInt(t, j, `SELECT refcount FROM blocks WHERE id = ?`, id[:]); ref != 1 {
		t.Fatalf("the block's refcount is %d, want 1", ref)
	}
	if got := readAll(t, j, cp.Ino); !bytes.Equal(got, data) {
		t.Fatal("the copy reads other bytes")
	}
	e.killAndReopen()
	if got := readAll(t, e.j, cp.Ino); !bytes.Equal(got, data) {
		t.Fatal("the copy reads other bytes after a kill -9")
	}
}

// TestLoggedBigCloseKilledDuringApply: a kill -9 while a logged close's
// block, too big for the database, is applied: between the rename of its
// staging file and the commit (the file is there, no row names it), and
// between the commit and the apply's forgetting of the record. Either
// way the reopened journal reads the file's bytes, its block staged in
// its file, with no staging file left over.
func TestLoggedBigCloseKilledDuringApply(t *testing.T) {
	for _, when := range []string{"before the commit", "after the commit"} {
		t.Run(strings.ReplaceAll(when, " ", "_"), func(t *testing.T) {
			e := newEnv(t, noTimers)
			j := e.j
			data := make([]byte, 60<<10) // seals to more than half the 64 KiB block
			fillRand(91, data)
			f := writeClosed(t, j, "big", data)
			id := j.seal.BlockID(data)
			killed := filepath.Join(t.TempDir(), "journal")
			snap := func() {
				if err := os.CopyFS(killed, os.DirFS(e.opts.Dir)); err != nil {
					t.Error(err)
				}
				os.Remove(filepath.Join(killed, "journal.db-shm"))
			}
			j.wmu.Lock()
			if when == "before the commit" {
				j.applyingHook = func(int) {
					if _, err := os.Stat(j.c.stagePath(id)); err != nil {
						t.Errorf("no staging file renamed before the commit: %v", err)
					}
					snap()
				}
			} else {
				j.appliedHook = snap
			}
			j.wmu.Unlock()
			applyUnlinks(t, j)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			e.j = nil
			e.opts.Dir = killed
			e.open()
			j = e.j
			if got := readAll(t, j, f.Ino); !bytes.Equal(got, data) {
				t.Fatal("reads other bytes after the kill -9")
			}
			applyUnlinks(t, j)
			if n := queryInt(t, j, `SELECT refcount FROM blocks WHERE id = ?`, id[:]); n != 1 {
				t.Fatalf("the block's refcount is %d, want 1", n)
			}
			if _, err := os.Stat(j.c.stagePath(id)); err != nil {
				t.Fatalf("the block's staging file: %v", err)
			}
			if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(j.c.stagePath(id)), "*.tmp")); len(tmp) != 0 {
				t.Fatalf("temporary staging files left: %v", tmp)
			}
			if got := readAll(t, j, f.Ino); !bytes.Equal(got, data) {
				t.Fatal("reads other bytes after the replay's apply")
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			e.j = nil
			checkDB(t, killed)
		})
	}
}

// TestSealAheadRacesFold: the unlinker seals the pending closes ahead
// (sealAhead) while other transactions apply them first (the fold in
// txLocked): every file reads back, each block staged once, with no
// staging file left that no row names. Run with -race.
func TestSealAheadRacesFold(t *testing.T) {
	e := newEnv(t, noTimers)
	j := e.j
	const files = 40
	datas := make([][]byte, files)
	inos := make([]Ino, files)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the unlinker's seal ahead, as often as it can
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				j.ul.sealAhead()
			}
		}
	}()
	go func() { // transactions that fold the pending closes
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := j.SetXattr(bg, RootIno, "user.n", []byte(fmt.Sprint(i)), 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range files {
		size := 1 << 10
		if i%2 == 0 {
			size = 60 << 10 // seals too big for the database
		}
		datas[i] = make([]byte, size)
		fillRand(uint64(200+i%7), datas[i]) // some copies among them
		inos[i] = writeClosed(t, j, fmt.Sprintf("f%d", i), datas[i]).Ino
	}
	close(stop)
	wg.Wait()
	applyUnlinks(t, j)
	for i, ino := range inos {
		if got := readAll(t, j, ino); !bytes.Equal(got, datas[i]) {
			t.Fatalf("f%d reads other bytes", i)
		}
	}
	ents, err := os.ReadDir(filepath.Dir(j.c.stagePath(remote.BlockID{})))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), ".tmp") {
			t.Fatalf("temporary staging file left: %s", de.Name())
		}
	}
	if staged := queryInt(t, j, `SELECT count(*) FROM blocks WHERE state = ? AND id NOT IN (SELECT id FROM staged)`, blockStaged); staged != len(ents) {
		t.Fatalf("%d blocks staged in files, %d files in the staging folder", staged, len(ents))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	checkDB(t, e.opts.Dir)
}

// TestLoggedClosesKeepLittleQuota: a logged close keeps charged only
// what it holds on disk (its record and the dirty file's bytes), not a
// whole block per dirty block: many small files closed while their
// apply is held back (noTimers here; wmu held by a long segment commit
// in a mount) fit a quota of a few blocks. A write or a truncate of a
// logged file charges its blocks whole again, and once everything is
// applied and shipped the counters are back to zero.
func TestLoggedClosesKeepLittleQuota(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		noTimers(o)
		o.Quota = 8 * 64 << 10 // eight blocks
		o.QuotaWait = 200 * time.Millisecond
	})
	j := e.j
	data := func(i int) []byte { return fmt.Appendf(nil, "small file %d\n", i) }
	var inos []Ino
	for i := range 64 { // eight times the quota, charged whole
		f := writeClosed(t, j, fmt.Sprintf("f%d", i), data(i))
		inos = append(inos, f.Ino)
	}
	if n := pendingFlushes(j); n != 64 {
		t.Fatalf("%d closes pending, want 64 logged", n)
	}
	j.qmu.Lock()
	d := j.dirtyB
	j.qmu.Unlock()
	if d > 64*1024 { // whole blocks would be 64 * 64 KiB
		t.Fatalf("64 logged closes of %d bytes keep %d bytes of quota", len(data(0)), d)
	}
	// A write after a logged close charges the block whole; the next
	// close gives it back again.
	j.OpenFile(inos[0])
	must[int](t)(j.WriteAt(bg, inos[0], []byte("more\n"), int64(len(data(0)))))
	j.qmu.Lock()
	d2 := j.dirtyB
	j.qmu.Unlock()
	if d2 < d+j.bs-100 {
		t.Fatalf("a write after a logged close: quota %d bytes, was %d: the block is not charged whole", d2, d)
	}
	if err := j.Flush(bg, inos[0]); err != nil {
		t.Fatal(err)
	}
	j.ReleaseFile(inos[0])
	three := uint64(3)
	must[Attr](t)(j.SetAttr(bg, inos[1], SetAttr{Size: &three}))
	applyUnlinks(t, j)
	ctx, cancel := context.WithTimeout(bg, 60*time.Second)
	defer cancel()
	if err := j.Fsync(ctx, inos[1]); err != nil {
		t.Fatal(err)
	}
	if err := j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, j)
	for i, ino := range inos {
		want := data(i)
		switch i {
		case 0:
			want = append(want, "more\n"...)
		case 1:
			want = want[:3]
		}
		if got := readAll(t, j, ino); !bytes.Equal(got, want) {
			t.Fatalf("f%d reads %q, want %q", i, got, want)
		}
	}
}
