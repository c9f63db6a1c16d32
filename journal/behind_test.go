package journal

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// blockRows counts ino's block map rows (committed blocks).
func blockRows(t *testing.T, e *env, ino Ino) int {
	t.Helper()
	var n int
	if err := e.j.db.QueryRow(`SELECT count(*) FROM blockmap WHERE ino = ?`, ino).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A sequential writer's finished blocks are committed in the background
// before any flush, and the file reads back whole after a reopen.
func TestWriteBehindCommitsFinishedBlocks(t *testing.T) {
	bubble(t, testWriteBehindCommitsFinishedBlocks)
}

func testWriteBehindCommitsFinishedBlocks(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	bs := int(e.opts.BlockSize)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "seq", 0o100644, 0, 0, 0))
	const nblocks = 12
	data := make([]byte, nblocks*bs+bs/3)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	const chunk = 16 << 10 // like the kernel's writes: several per block
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		must[int](t)(e.j.WriteAt(bg, a.Ino, data[off:end], int64(off)))
	}
	// Every block but the last one or two was moved past: once the
	// write-behind goroutines are idle they have committed them (no flush
	// has run).
	synctest.Wait()
	if n := blockRows(t, e, a.Ino); n < nblocks-1 {
		t.Fatalf("write-behind committed %d of %d finished blocks before any flush", n, nblocks-1)
	}
	got := make([]byte, len(data))
	must[int](t)(e.j.ReadAt(bg, a.Ino, got, 0))
	if !bytes.Equal(got, data) {
		t.Fatal("read before the flush differs from what was written")
	}
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	if n := blockRows(t, e, a.Ino); n != nblocks+1 {
		t.Fatalf("%d block map rows after fsync, want %d", n, nblocks+1)
	}
	e.reopen()
	clear(got)
	must[int](t)(e.j.ReadAt(bg, a.Ino, got, 0))
	if !bytes.Equal(got, data) {
		t.Fatal("file differs from what was written after a reopen")
	}
	if at := must[Attr](t)(e.j.GetAttr(bg, a.Ino)); at.Size != uint64(len(data)) {
		t.Fatalf("size %d after reopen, want %d", at.Size, len(data))
	}
}

// Writes that land in blocks the write-behind goroutines are cutting, and
// truncates under them, never lose the newer bytes: a model file and the
// journal agree after every fsync and after a reopen.
func TestWriteBehindRacesOverwrites(t *testing.T) { bubble(t, testWriteBehindRacesOverwrites) }

func testWriteBehindRacesOverwrites(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	bs := int64(e.opts.BlockSize)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "race", 0o100644, 0, 0, 0))
	r := rand.New(rand.NewPCG(7, 9))
	var model []byte
	write := func(p []byte, off int64) {
		must[int](t)(e.j.WriteAt(bg, a.Ino, p, off))
		if end := off + int64(len(p)); end > int64(len(model)) {
			model = append(model, make([]byte, end-int64(len(model)))...)
		}
		copy(model[off:], p)
	}
	check := func(when string) {
		t.Helper()
		got := make([]byte, len(model)+100)
		n := must[int](t)(e.j.ReadAt(bg, a.Ino, got, 0))
		if n != len(model) || !bytes.Equal(got[:n], model) {
			t.Fatalf("%s: journal has %d bytes that differ from the model's %d", when, n, len(model))
		}
	}
	buf := make([]byte, 48<<10)
	for round := range 6 {
		var seq int64
		for range 40 {
			for i := range buf {
				buf[i] = byte(r.Uint32())
			}
			switch r.IntN(6) {
			case 0: // back into a block the writer has moved past
				if seq > 0 {
					write(buf[:1+r.IntN(len(buf))], r.Int64N(seq))
				}
			case 1:
				if round%2 == 1 && seq > bs {
					size := r.Int64N(seq)
					if _, err := e.j.SetAttr(bg, a.Ino, SetAttr{Size: ptr(uint64(size))}); err != nil {
						t.Fatal(err)
					}
					model = model[:min(int64(len(model)), size)]
					if size > int64(len(model)) {
						model = append(model, make([]byte, size-int64(len(model)))...)
					}
					seq = size
				}
			default: // the sequential stream
				write(buf, seq)
				seq += int64(len(buf))
			}
		}
		check("before fsync")
		if err := e.j.Fsync(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
		check("after fsync")
	}
	e.reopen()
	check("after reopen")
}

func ptr[T any](v T) *T { return &v }

// A small file never creates a file in the journal: its unflushed bytes
// stay in memory and its sealed block is staged in the database, which
// keeps it across a reopen until the uploader ships it.
func TestSmallFileStagedInDatabase(t *testing.T) { bubble(t, testSmallFileStagedInDatabase) }

func testSmallFileStagedInDatabase(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	e.g.down.Store(true) // keep it staged
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "small", 0o100644, 0, 0, 0))
	data := make([]byte, 20<<10) // < BlockSize/2 of the test journal
	fillRand(3, data)
	must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
	countFiles := func(sub string) int {
		ents, err := os.ReadDir(filepath.Join(e.opts.Dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	if n := countFiles("dirty"); n != 0 {
		t.Fatalf("%d dirty files for %d unflushed bytes, want none", n, len(data))
	}
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	if n := countFiles("staging"); n != 0 {
		t.Fatalf("%d staging files for one small block, want none", n)
	}
	var rows int
	if err := e.j.db.QueryRow(`SELECT count(*) FROM staged`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d rows in staged (%v), want 1", rows, err)
	}
	e.reopen() // checkDB: the row belongs to a staged block
	if !bytes.Equal(readAll(t, e.j, a.Ino), data) {
		t.Fatal("small file differs after reopen, read from its staged row")
	}
	e.g.down.Store(false)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.j.db.QueryRow(`SELECT count(*) FROM staged`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows in staged after upload (%v), want 0", rows, err)
	}
	e.reopen()
	if !bytes.Equal(readAll(t, e.j, a.Ino), data) {
		t.Fatal("small file differs after upload, read from the grid")
	}
}

// Bytes cut by a truncate never come back: not from the spare capacity of
// the in-memory dirty buffer, not after a write past them.
func TestTruncatedDirtyBytesStayZero(t *testing.T) { bubble(t, testTruncatedDirtyBytesStayZero) }

func testTruncatedDirtyBytesStayZero(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour; o.BlockSize = 1 << 20 })
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "t", 0o100644, 0, 0, 0))
	e.j.OpenFile(a.Ino) // as through the mount: the inode (and its buffer) stays in memory
	defer e.j.ReleaseFile(a.Ino)
	must[int](t)(e.j.WriteAt(bg, a.Ino, bytes.Repeat([]byte{'A'}, 100<<10), 0))
	if _, err := e.j.SetAttr(bg, a.Ino, SetAttr{Size: ptr(uint64(10))}); err != nil {
		t.Fatal(err)
	}
	must[int](t)(e.j.WriteAt(bg, a.Ino, []byte{'B'}, 50000))
	want := make([]byte, 50001)
	copy(want, bytes.Repeat([]byte{'A'}, 10))
	want[50000] = 'B'
	for _, when := range []string{"before the flush", "after the flush", "after a reopen"} {
		if got := readAll(t, e.j, a.Ino); !bytes.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: %d bytes, first difference at offset %d", when, len(got), i)
		}
		switch when {
		case "before the flush":
			if err := e.j.Fsync(bg, a.Ino); err != nil {
				t.Fatal(err)
			}
		case "after the flush":
			e.reopen()
		}
	}
}

// syncMark reads the value barrier writes (meta key "sync").
func syncMark(t *testing.T, e *env) string {
	t.Helper()
	var v string
	if err := e.j.db.QueryRow(`SELECT coalesce((SELECT value FROM meta WHERE key = 'sync'), '')`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Rewriting staged blocks in place frees their staging files from an
// ordinary (not fsync'd) write-behind commit: the files may go only after
// a durable commit, or a power cut would bring back the old block map
// with its staging files gone (and Open would refuse the journal).
func TestFreedStagingFilesOnlyAfterDurableCommit(t *testing.T) {
	bubble(t, testFreedStagingFilesOnlyAfterDurableCommit)
}

func testFreedStagingFilesOnlyAfterDurableCommit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	e.g.down.Store(true) // keep the blocks staged
	bs := int(e.opts.BlockSize)
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "r", 0o100644, 0, 0, 0))
	data := make([]byte, 6*bs)
	fillRand(5, data)
	must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(e.opts.Dir, "staging")
	before, err := os.ReadDir(staging)
	if err != nil || len(before) != 6 {
		t.Fatalf("%d staging files after the first fsync (%v), want 6", len(before), err)
	}
	mark := syncMark(t, e)
	fillRand(6, data)
	const chunk = 16 << 10
	for off := 0; off < len(data); off += chunk {
		must[int](t)(e.j.WriteAt(bg, a.Ino, data[off:off+chunk], int64(off)))
	}
	// Write-behind replaces blocks 0-4 (the writer moved past them) in
	// ordinary commits: an old staging file may go only once a barrier
	// ran (no fsync or flush has been called since the mark), and the
	// group commit runs one an interval after them.
	gone := func() int {
		n := 0
		for _, de := range before {
			if _, err := os.Stat(filepath.Join(staging, de.Name())); os.IsNotExist(err) {
				n++
			}
		}
		if n > 0 && syncMark(t, e) == mark {
			t.Fatalf("%d staging files of replaced blocks removed with no durable commit since", n)
		}
		return n
	}
	synctest.Wait()
	gone()
	time.Sleep(e.j.o.GroupCommit)
	synctest.Wait()
	if gone() == 0 {
		t.Fatal("write-behind replaced no staged block")
	}
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if !bytes.Equal(readAll(t, e.j, a.Ino), data) {
		t.Fatal("file differs after the rewrite and a reopen")
	}
}

// A sequential writer that would start a new in-memory block while the
// journal's budget of them is spent and its write-behind runs waits for
// a block to be given back, instead of putting the block in the dirty
// file (a write now, a read back when it is cut); once its write-behind
// has nothing left to do, it goes on to the dirty file as before.
func TestWriterWaitsForWriteBehindMemory(t *testing.T) {
	bubble(t, testWriterWaitsForWriteBehindMemory)
}

func testWriterWaitsForWriteBehindMemory(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	bs := int64(e.opts.BlockSize)
	first := (memDirtyMax + bs - 1) / bs // the first block that may be in memory
	block := bytes.Repeat([]byte{7}, int(bs))
	// File a takes the whole budget: whole blocks written out of order,
	// so no write-behind gives them back before a's flush.
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "a", 0o100644, 0, 0, 0))
	fillBudget := func(from int64) {
		t.Helper()
		for i := from; e.j.memBlocks.n.Load() < maxMemBlocks; i += 2 {
			must[int](t)(e.j.WriteAt(bg, a.Ino, block, (first+i)*bs))
		}
	}
	fillBudget(0)
	// File b has a dirty file and, as far as its writer can tell, a
	// write-behind goroutine at work.
	b := must[Attr](t)(e.j.Mknod(bg, RootIno, "b", 0o100644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(bg, b.Ino, []byte("head"), 0))
	nb := e.j.it.getInode(b.Ino)
	defer e.j.it.putInode(nb)
	idle := make(chan struct{})
	nb.mu.Lock()
	nb.behindN, nb.behindIdle = 1, idle
	nb.mu.Unlock()
	stopPretending := func() {
		nb.mu.Lock()
		if nb.behindIdle == idle {
			nb.behindN, nb.behindIdle = 0, nil
			close(idle)
		}
		nb.mu.Unlock()
	}
	defer stopPretending() // a failed test must not leave the writer waiting

	write := func(idx int64) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := e.j.WriteAt(bg, b.Ino, block, idx*bs)
			done <- err
		}()
		synctest.Wait()
		return done
	}
	inMemory := func(idx int64) (mem, base bool) {
		nb.mu.Lock()
		defer nb.mu.Unlock()
		return nb.f.blocks[idx] != nil, nb.f.inBase[idx]
	}

	// waiting reports whether the write of done has not returned.
	waiting := func(done <-chan error) bool {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return false
		default:
			return true
		}
	}

	done := write(first)
	if !waiting(done) {
		t.Fatal("the write went on with no in-memory block free and write-behind running")
	}
	if err := e.j.Fsync(bg, a.Ino); err != nil { // gives a's blocks back
		t.Fatal(err)
	}
	synctest.Wait()
	if waiting(done) {
		t.Fatal("the write still waits after blocks were given back")
	}
	if mem, base := inMemory(first); !mem || base {
		t.Fatalf("block after the wait: in memory %v, in the dirty file %v; want memory", mem, base)
	}

	fillBudget(1)
	done = write(first + 1)
	if !waiting(done) {
		t.Fatal("the write went on with no in-memory block free and write-behind running")
	}
	stopPretending() // write-behind ran out of work without giving a block back
	synctest.Wait()
	if waiting(done) {
		t.Fatal("the write still waits after write-behind went idle")
	}
	if mem, base := inMemory(first + 1); mem || !base {
		t.Fatalf("block written once write-behind was idle: in memory %v, in the dirty file %v; want the dirty file", mem, base)
	}
	got := make([]byte, 2*bs)
	must[int](t)(e.j.ReadAt(bg, b.Ino, got, first*bs))
	if !bytes.Equal(got, append(slices.Clone(block), block...)) {
		t.Fatal("b reads back other bytes than were written")
	}
}

// TestSizeLimit: a size past MaxFileSize is refused and changes nothing
// (at 2^63-1 a block's end overflowed: the flush's cut of the block map
// dropped every block, and shrinking back read zeros).
func TestSizeLimit(t *testing.T) { bubble(t, testSizeLimit) }

func testSizeLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.BlockSize = 1 << 20 })
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "big", 0o100644, 0, 0, 0))
	data := bytes.Repeat([]byte("0123456789"), 30000)
	must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	for _, size := range []uint64{1<<63 - 1, MaxFileSize + 1} {
		_, err := e.j.SetAttr(bg, a.Ino, SetAttr{Size: ptr(size)})
		wantErr(t, err, ErrTooBig)
	}
	_, err := e.j.WriteAt(bg, a.Ino, []byte("x"), MaxFileSize)
	wantErr(t, err, ErrTooBig)
	// The largest size works, and shrinking back keeps the data.
	if _, err := e.j.SetAttr(bg, a.Ino, SetAttr{Size: ptr(uint64(MaxFileSize))}); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.SetAttr(bg, a.Ino, SetAttr{Size: ptr(uint64(len(data)))}); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if got := readAll(t, e.j, a.Ino); !bytes.Equal(got, data) {
		t.Fatalf("after growing to MaxFileSize and back: %d bytes, equal %v", len(got), bytes.Equal(got, data))
	}
}
