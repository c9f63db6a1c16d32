package journal

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDropMissingStaged: a staging file removed behind the journal's back
// makes Open refuse and name --drop-missing; with DropMissing the journal
// opens, the block is lost (reads fail, Status says lost, the file is
// named), everything else reads and uploads, and writing the same bytes
// again brings the block back for every file that names it.
func TestDropMissingStaged(t *testing.T) {
	e := newEnv(t, nil)
	e.g.down.Store(true) // keep the blocks staged
	dir := must[Attr](t)(e.j.Mkdir(bg, RootIno, "docs", 0o755, 0, 0))
	a := must[Attr](t)(e.j.Mknod(bg, dir.Ino, "a", 0o644, 0, 0, 0))
	b := must[Attr](t)(e.j.Mknod(bg, RootIno, "b", 0o644, 0, 0, 0))
	da, db := make([]byte, 4<<16), make([]byte, 3<<16)
	fillRand(11, da)
	fillRand(12, db)
	must[int](t)(e.j.WriteAt(bg, a.Ino, da, 0))
	must[int](t)(e.j.WriteAt(bg, b.Ino, db, 0))
	for _, ino := range []Ino{a.Ino, b.Ino} {
		if err := e.j.Fsync(bg, ino); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := e.j.fd.mapRange(bg, a.Ino, 1, 1)
	if err != nil || len(ms) != 1 || ms[0].state != blockStaged {
		t.Fatalf("block 1 of a: %+v, %v", ms, err)
	}
	gone := filepath.Join(e.opts.Dir, "staging", ms[0].id.String())
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}

	_, err = Open(bg, e.opts)
	if err == nil || !strings.Contains(err.Error(), "1 staged blocks are missing") || !strings.Contains(err.Error(), "--drop-missing") {
		t.Fatalf("Open with a staging file gone: %v", err)
	}
	e.opts.DropMissing = true
	e.open()
	j := e.j
	if _, err := j.Read(bg, a.Ino, make([]byte, 100), 1<<16); !errors.Is(err, ErrLostBlock) {
		t.Fatalf("read of the lost block: %v, want ErrLostBlock", err)
	}
	for _, c := range []struct {
		ino       Ino
		off, n    int
		want      []byte
		whichFile string
	}{{a.Ino, 0, 1 << 16, da[:1<<16], "a, block 0"}, {a.Ino, 2 << 16, 2 << 16, da[2<<16:], "a, blocks 2-3"}, {b.Ino, 0, len(db), db, "b"}} {
		got, err := j.Read(bg, c.ino, make([]byte, c.n), int64(c.off))
		if err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("%s after the drop: %v (equal %v)", c.whichFile, err, bytes.Equal(got, c.want))
		}
	}
	if st := must[FileStatus](t)(j.Status(bg, a.Ino)); st.State != StateLost || st.LostBlocks != 1 {
		t.Fatalf("status of a: %+v, want lost with 1 lost block", st)
	}
	// The lost block is nowhere: not one of the file's blocks on the
	// grid (status PATH's grid and cached counts).
	if gb := must[[]GridBlock](t)(j.GridBlocks(bg, a.Ino)); len(gb) != 0 {
		t.Fatalf("GridBlocks of a, whose blocks are staged or lost: %+v", gb)
	}
	if st := must[FileStatus](t)(j.Status(bg, b.Ino)); st.State != StateLocal || st.LostBlocks != 0 {
		t.Fatalf("status of b: %+v", st)
	}
	n, paths, err := lostFiles(bg, j.db)
	if err != nil || n != 1 || !slices.Equal(paths, []string{"/docs/a"}) {
		t.Fatalf("lostFiles: %d %q %v", n, paths, err)
	}
	// Nothing waits for the lost block: the rest uploads.
	e.g.down.Store(false)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := j.WaitDurable(ctx); err != nil {
		t.Fatalf("WaitDurable after the drop: %v (%+v)", err, j.Stats())
	}

	// The same bytes written again, in another file: both read.
	c := must[Attr](t)(j.Mknod(bg, RootIno, "copy", 0o644, 0, 0, 0))
	must[int](t)(j.WriteAt(bg, c.Ino, da[1<<16:2<<16], 0))
	if err := j.Fsync(bg, c.Ino); err != nil {
		t.Fatal(err)
	}
	for _, ino := range []Ino{a.Ino, c.Ino} {
		off := int64(1 << 16)
		if ino == c.Ino {
			off = 0
		}
		got, err := j.Read(bg, ino, make([]byte, 1<<16), off)
		if err != nil || !bytes.Equal(got, da[1<<16:2<<16]) {
			t.Fatalf("inode %d after the bytes were written again: %v", ino, err)
		}
	}
	if st := must[FileStatus](t)(j.Status(bg, a.Ino)); st.State == StateLost || st.LostBlocks != 0 {
		t.Fatalf("status of a after the bytes came back: %+v", st)
	}
	if err := j.WaitDurable(ctx); err != nil {
		t.Fatalf("WaitDurable after the bytes came back: %v", err)
	}
	e.reopen() // checks every refcount
	if got, err := e.j.Read(bg, a.Ino, make([]byte, len(da)), 0); err != nil || !bytes.Equal(got, da) {
		t.Fatalf("a after a reopen: %v", err)
	}
}

// TestLostBlockFreed: a file with a lost block is deleted: the lost
// block's row goes with it (not garbage, which has nothing to collect
// and would be revived by a write of the same bytes as uploaded with no
// segment); so do the rows of a lost block dropped by a truncate.
func TestLostBlockFreed(t *testing.T) {
	e := newEnv(t, nil)
	e.g.down.Store(true)
	var inos []Ino
	var ids []string
	for i, name := range []string{"deleted", "truncated"} {
		f := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
		d := make([]byte, 2<<16)
		fillRand(uint64(20+i), d)
		must[int](t)(e.j.WriteAt(bg, f.Ino, d, 0))
		if err := e.j.Fsync(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		ms, err := e.j.fd.mapRange(bg, f.Ino, 1, 1)
		if err != nil || len(ms) != 1 {
			t.Fatal(ms, err)
		}
		inos, ids = append(inos, f.Ino), append(ids, ms[0].id.String())
	}
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	for _, id := range ids {
		if err := os.Remove(filepath.Join(e.opts.Dir, "staging", id)); err != nil {
			t.Fatal(err)
		}
	}
	e.opts.DropMissing = true
	e.open()
	if err := e.j.Unlink(bg, RootIno, "deleted"); err != nil {
		t.Fatal(err)
	}
	e.reap()
	if _, err := e.j.SetAttr(bg, inos[1], SetAttr{Size: ptr(uint64(1 << 16))}); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Fsync(bg, inos[1]); err != nil {
		t.Fatal(err)
	}
	var lost, noSeg int
	if err := e.j.db.QueryRow(`SELECT count(*) FROM blocks WHERE state = ?`, blockLost).Scan(&lost); err != nil {
		t.Fatal(err)
	}
	if err := e.j.db.QueryRow(`SELECT count(*) FROM blocks WHERE state != ? AND segment IS NULL`, blockStaged).Scan(&noSeg); err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	if lost != 0 || noSeg != 0 {
		t.Fatalf("after the files went: %d lost rows, %d rows neither staged nor in a segment", lost, noSeg)
	}
	e.reopen()
}

// TestLostBlockRewrittenInPlace: the bytes of a lost block are written
// again into its own file, at its own place (dd conv=notrunc, an editor
// that writes over the file): the block map already names that id, and
// the flush must still take the lost row over, not skip the block as
// unchanged and drop the bytes just written.
func TestLostBlockRewrittenInPlace(t *testing.T) {
	e, f, d, ms := stagedAndClosed(t, 31, 3<<16)
	if err := os.Remove(filepath.Join(e.opts.Dir, "staging", ms[0].id.String())); err != nil {
		t.Fatal(err)
	}
	e.opts.DropMissing = true
	e.open()
	if _, err := e.j.Read(bg, f.Ino, make([]byte, 1<<16), 1<<16); !errors.Is(err, ErrLostBlock) {
		t.Fatalf("read of the lost block: %v, want ErrLostBlock", err)
	}
	// The same bytes, over themselves.
	must[int](t)(e.j.WriteAt(bg, f.Ino, d[1<<16:2<<16], 1<<16))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	if got, err := e.j.Read(bg, f.Ino, make([]byte, len(d)), 0); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("the file after its lost block's bytes were written over it: %v (equal %v)", err, bytes.Equal(got, d))
	}
	if st := must[FileStatus](t)(e.j.Status(bg, f.Ino)); st.State == StateLost || st.LostBlocks != 0 {
		t.Fatalf("status after the bytes came back: %+v", st)
	}
	e.g.down.Store(false)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatalf("WaitDurable: %v", err)
	}
	e.reopen() // checks every refcount
	if got, err := e.j.Read(bg, f.Ino, make([]byte, len(d)), 0); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("the file after a reopen: %v", err)
	}
}

// TestLostGarbageRowFromOlderBuild: a build before lost blocks were
// deleted when freed made them garbage with no segment (a deleted file's
// lost block). Such a row, left in the database of a drive used by that
// build, must not be revived by a write of the same bytes as uploaded
// with nowhere to read it from: the write takes it over as a new block.
func TestLostGarbageRowFromOlderBuild(t *testing.T) {
	e := newEnv(t, nil)
	d := make([]byte, 1<<16)
	fillRand(41, d)
	id := e.j.seal.BlockID(d)
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	// What the older build left: garbage, no reference, no segment,
	// marked freed by a record.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.opts.Dir, "journal.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO blocks(id, plain_len, sealed_len, refcount, state, prio, seq, born, freed) VALUES(?, ?, 0, 0, ?, 0, 1, 1, 2)`,
		id[:], len(d), blockGarbage)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(bg, f.Ino, d, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatalf("WaitDurable: %v (%+v)", err, e.j.Stats())
	}
	var state int
	var seg []byte
	var freed sql.NullInt64
	if err := e.j.db.QueryRow(`SELECT state, segment, freed FROM blocks WHERE id = ?`, id[:]).Scan(&state, &seg, &freed); err != nil {
		t.Fatal(err)
	}
	if state != blockUploaded || seg == nil || freed.Valid {
		t.Fatalf("the block after a write of its bytes: state %d, segment %x, freed %v; want uploaded, in a segment, not freed", state, seg, freed)
	}
	if got, err := e.j.Read(bg, f.Ino, make([]byte, len(d)), 0); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("read: %v (equal %v)", err, bytes.Equal(got, d))
	}
	e.reopen()
}

// TestDropMissingFilePutBack: the refusal says to put the staging files
// back if there is a copy of them. One put back after a mount with
// --drop-missing (its block lost by then) is not a stale file to delete:
// the next Open takes it, and the block is staged and read again.
func TestDropMissingFilePutBack(t *testing.T) {
	e, f, d, ms := stagedAndClosed(t, 51, 2<<16)
	name := filepath.Join(e.opts.Dir, "staging", ms[0].id.String())
	copyOf, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	e.opts.DropMissing = true
	e.open()
	if _, err := e.j.Read(bg, f.Ino, make([]byte, 1<<16), 1<<16); !errors.Is(err, ErrLostBlock) {
		t.Fatalf("read of the lost block: %v, want ErrLostBlock", err)
	}
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	if err := os.WriteFile(name, copyOf, 0o600); err != nil {
		t.Fatal(err)
	}
	e.opts.DropMissing = false
	e.open()
	if got, err := e.j.Read(bg, f.Ino, make([]byte, len(d)), 0); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("the file once its staging file is back: %v (equal %v)", err, bytes.Equal(got, d))
	}
	if st := must[FileStatus](t)(e.j.Status(bg, f.Ino)); st.State != StateLocal || st.LostBlocks != 0 {
		t.Fatalf("status once the staging file is back: %+v", st)
	}
	e.g.down.Store(false)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatalf("WaitDurable: %v (%+v)", err, e.j.Stats())
	}
	e.reopen()
	if got, err := e.j.Read(bg, f.Ino, make([]byte, len(d)), 0); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("the file after a reopen: %v", err)
	}
}

// stagedAndClosed writes n random bytes (from seed) to a new file f with
// the grid down, fsyncs it and closes the journal, and returns the env,
// the file, its bytes and the map row of its block 1, still staged.
func stagedAndClosed(t *testing.T, seed uint64, n int) (*env, Attr, []byte, []mapped) {
	t.Helper()
	e := newEnv(t, nil)
	e.g.down.Store(true) // keep the blocks staged
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	d := make([]byte, n)
	fillRand(seed, d)
	must[int](t)(e.j.WriteAt(bg, f.Ino, d, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	ms, err := e.j.fd.mapRange(bg, f.Ino, 1, 1)
	if err != nil || len(ms) != 1 || ms[0].state != blockStaged {
		t.Fatalf("block 1: %+v, %v", ms, err)
	}
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	return e, f, d, ms
}

// TestFlippedStagingByteNotShipped: a staging file with one byte flipped
// (same length) after the block was sealed is not uploaded as if it were
// good: the uploader's check fails, the block is lost (reads fail, Status
// says lost, the uploader's last error names it), the queue drains, and
// the same bytes written again bring the block back, uploaded whole.
func TestFlippedStagingByteNotShipped(t *testing.T) {
	e, f, d, ms := stagedAndClosed(t, 61, 3<<16)
	name := filepath.Join(e.opts.Dir, "staging", ms[0].id.String())
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x04
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.g.down.Store(false)
	e.open()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatalf("WaitDurable with a damaged staging file: %v (%+v)", err, e.j.Stats())
	}
	if st := must[FileStatus](t)(e.j.Status(bg, f.Ino)); st.State != StateLost || st.LostBlocks != 1 {
		t.Fatalf("status of the file: %+v, want lost with 1 lost block", st)
	}
	if _, err := e.j.Read(bg, f.Ino, make([]byte, 100), 1<<16); !errors.Is(err, ErrLostBlock) {
		t.Fatalf("read of the damaged block: %v, want ErrLostBlock", err)
	}
	if s := e.j.Stats(); !strings.Contains(s.LastError, ms[0].id.String()) || !strings.Contains(s.LastError, "damaged") {
		t.Fatalf("the uploader's last error does not name the damaged block: %q", s.LastError)
	}
	if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the damaged staging file is still there: %v", err)
	}
	if got, err := e.j.Read(bg, f.Ino, make([]byte, 1<<16), 2<<16); err != nil || !bytes.Equal(got, d[2<<16:]) {
		t.Fatalf("the file's good block: %v", err)
	}

	c := must[Attr](t)(e.j.Mknod(bg, RootIno, "copy", 0o644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(bg, c.Ino, d[1<<16:2<<16], 0))
	if err := e.j.Fsync(bg, c.Ino); err != nil {
		t.Fatal(err)
	}
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	e.reopen() // checks every refcount
	if st := must[FileStatus](t)(e.j.Status(bg, f.Ino)); st.State == StateLost || st.State == StateLocal {
		t.Fatalf("status of the file after the bytes came back and were uploaded: %+v", st)
	}
	if got, err := e.j.Read(bg, f.Ino, make([]byte, len(d)), 0); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("the file after the bytes came back: %v", err)
	}
}

// TestDamagedCheckOfAnOldStaging: the uploader's check fails on what it
// read of a block that was freed and staged anew since (the same bytes
// written again, a new good staging file): the new row is not marked
// lost, its file stays, and it stays queued.
func TestDamagedCheckOfAnOldStaging(t *testing.T) {
	e := newEnv(t, nil)
	e.g.down.Store(true) // keep the blocks staged
	d := make([]byte, 1<<16)
	fillRand(71, d)
	write := func(name string) Ino {
		f := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
		must[int](t)(e.j.WriteAt(bg, f.Ino, d, 0))
		if err := e.j.Fsync(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		return f.Ino
	}
	write("old")
	ms := must[[]mapped](t)(e.j.fd.mapRange(bg, must[Attr](t)(e.j.Lookup(bg, RootIno, "old")).Ino, 0, 0))
	e.j.qmu.Lock()
	old, ok := e.j.queue[ms[0].id]
	e.j.qmu.Unlock()
	if !ok {
		t.Fatal("the block is not queued")
	}
	if err := e.j.Unlink(bg, RootIno, "old"); err != nil {
		t.Fatal(err)
	}
	e.reap()
	f := write("new")
	loseDamaged(e.j.up, old, errors.New("test: the old file failed its check"))
	if st := must[FileStatus](t)(e.j.Status(bg, f)); st.State != StateLocal || st.LostBlocks != 0 {
		t.Fatalf("the new file after a failed check of the old staging: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(e.opts.Dir, "staging", ms[0].id.String())); err != nil {
		t.Fatalf("the new staging file: %v", err)
	}
	e.j.qmu.Lock()
	_, ok = e.j.queue[ms[0].id]
	e.j.qmu.Unlock()
	if !ok {
		t.Fatal("the new block left the queue")
	}
	e.g.down.Store(false)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if got := readAll(t, e.j, f); !bytes.Equal(got, d) {
		t.Fatal("the new file does not read back")
	}
}

// TestLostPathNotUTF8: a lost file whose name is not UTF-8 (Latin-1
// "\xe9") is named in the report's paths_href by its bytes: status
// --json and the web app's summary showed it with U+FFFD only, which
// names another file or none.
func TestLostPathNotUTF8(t *testing.T) {
	e, _, _, ms := stagedAndClosed(t, 13, 2<<16)
	if err := os.Remove(filepath.Join(e.opts.Dir, "staging", ms[0].id.String())); err != nil {
		t.Fatal(err)
	}
	e.opts.DropMissing = true
	e.open()
	dir := must[Attr](t)(e.j.Mkdir(bg, RootIno, "d\xe9j\xe0", 0o755, 0, 0))
	if err := e.j.Rename(bg, RootIno, "f", dir.Ino, "caf\xe9", 0); err != nil {
		t.Fatal(err)
	}
	r := must[LostReport](t)(e.j.Lost(bg))
	if !slices.Equal(r.Paths, []string{"/d\xe9j\xe0/caf\xe9"}) || !slices.Equal(r.PathsHref, []string{"/d%E9j%E0/caf%E9"}) {
		t.Fatalf("Lost: paths %q, paths_href %q; want the path and /d%%E9j%%E0/caf%%E9", r.Paths, r.PathsHref)
	}
}

// TestDamagedStagedRowLength: a small block's row in table staged grows
// (the database damaged) while nothing runs: the uploader does not keep
// it queued for ever because it no longer fits the segment laid out for
// it; the block is lost, the queue drains, and the error says why.
func TestDamagedStagedRowLength(t *testing.T) {
	e, f, _, ms := stagedAndClosed(t, 83, 1<<16+1000) // block 1: 1000 bytes, a row
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.opts.Dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE staged SET sealed = sealed || zeroblob(1 << 21) WHERE id = ?`, ms[0].id[:])
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("grow the staged row: %d rows, %v", n, err)
	}
	db.Close()
	e.g.down.Store(false)
	e.open()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatalf("WaitDurable with a grown staged row: %v (%+v)", err, e.j.Stats())
	}
	if st := must[FileStatus](t)(e.j.Status(bg, f.Ino)); st.State != StateLost || st.LostBlocks != 1 {
		t.Fatalf("status of the file: %+v, want lost with 1 lost block", st)
	}
	if s := e.j.Stats().LastError; !strings.Contains(s, "journal.db says") {
		t.Fatalf("the uploader's last error: %q", s)
	}
	e.reopen()
}
