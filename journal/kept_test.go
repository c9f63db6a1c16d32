package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// keptIDs returns the ids of the uploaded blocks whose rows table staged
// keeps.
func keptIDs(t testing.TB, j *Journal) map[remote.BlockID]bool {
	t.Helper()
	rows, err := j.db.Query(`SELECT s.id FROM staged s JOIN blocks b ON b.id = s.id WHERE b.state != ?`, blockStaged)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[remote.BlockID]bool{}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		var id remote.BlockID
		copy(id[:], b)
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeSmall makes a file of data, fsyncs it and waits for its upload.
func writeSmall(t testing.TB, e *env, name string, data []byte) Ino {
	t.Helper()
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o100644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

// Small files written here are read from the journal's database after
// their upload and a reopen, with the grid out of reach and no read of
// it; without KeepSmall they are read from the grid, and with the grid
// down they cannot be.
func TestSmallBlocksKeptAfterUpload(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				if keep {
					o.KeepSmall = 1 << 20
				}
			})
			datas := make([][]byte, 3)
			inos := make([]Ino, 3)
			for i := range datas {
				datas[i] = make([]byte, 1000+i)
				fillRand(uint64(70+i), datas[i])
				inos[i] = writeSmall(t, e, fmt.Sprintf("f%d", i), datas[i])
			}
			if n := len(keptIDs(t, e.j)); keep && n != 3 || !keep && n != 0 {
				t.Fatalf("%d small blocks kept after upload", n)
			}
			e.reopen()
			e.g.down.Store(true)
			before := e.r.reads.Load()
			for i, ino := range inos {
				buf := make([]byte, 2000)
				n, err := e.j.ReadAt(bg, ino, buf, 0)
				if !keep {
					if err == nil {
						t.Fatalf("file %d read with the grid down and nothing kept", i)
					}
					continue
				}
				if err != nil {
					t.Fatalf("file %d with the grid down: %v", i, err)
				}
				if !bytes.Equal(buf[:n], datas[i]) {
					t.Fatalf("file %d: %d bytes read differ from the %d written", i, n, len(datas[i]))
				}
			}
			if got := e.r.reads.Load() - before; keep && got != 0 {
				t.Fatalf("%d reads of the grid for kept blocks", got)
			}
			e.g.down.Store(false)
			for i, ino := range inos {
				if !bytes.Equal(readAll(t, e.j, ino), datas[i]) {
					t.Fatalf("file %d differs read back with the grid up", i)
				}
				if gb := must[[]GridBlock](t)(e.j.GridBlocks(bg, ino)); len(gb) != 1 || gb[0].Kept != keep {
					t.Fatalf("file %d: grid blocks %+v, want one, kept %v", i, gb, keep)
				}
			}
			// Cache clear drops the copies: reads go to the grid again.
			if err := e.j.DropKept(bg); err != nil {
				t.Fatal(err)
			}
			if n := len(keptIDs(t, e.j)); n != 0 || e.j.keptB != 0 {
				t.Fatalf("%d kept (%d bytes) after DropKept", n, e.j.keptB)
			}
			if gb := must[[]GridBlock](t)(e.j.GridBlocks(bg, inos[0])); gb[0].Kept {
				t.Fatal("a block still kept after DropKept")
			}
			e.g.down.Store(true)
			if _, err := e.j.ReadAt(bg, inos[0], make([]byte, 10), 0); err == nil {
				t.Fatal("a small file read with the grid down after DropKept")
			}
		})
	}
}

// A sequential read prefetches the big blocks of a file from the grid but
// not its short last block, which the journal keeps.
func TestSequentialReadSkipsKeptBlocks(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.KeepSmall = 1 << 20 })
	data := make([]byte, 8*64<<10+1000)
	fillRand(95, data)
	ino := writeSmall(t, e, "f", data)
	ids := e.j.blockIDs(t, ino)
	if kept := keptIDs(t, e.j); len(kept) != 1 || !kept[ids[len(ids)-1]] {
		t.Fatalf("%d blocks kept, want the last one alone", len(kept))
	}
	e.reopen()
	e.j.OpenFile(ino)
	defer e.j.ReleaseFile(ino)
	p := make([]byte, 16<<10)
	var got []byte
	for off := int64(0); off < int64(len(data)); off += int64(len(p)) {
		n := must[int](t)(e.j.ReadAt(bg, ino, p, off))
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("sequential read differs")
	}
	e.r.pmu.Lock()
	defer e.r.pmu.Unlock()
	if len(e.r.prefetchd) == 0 || e.r.prefetchd[ids[len(ids)-1]] {
		t.Fatalf("prefetched %d blocks, the kept one among them: %v", len(e.r.prefetchd), e.r.prefetchd[ids[len(ids)-1]])
	}
}

// Past KeepSmall the oldest kept rows go first; the blocks they held are
// read from the grid again. A lower KeepSmall at the next open evicts
// down to it.
func TestKeptSmallBlocksEvictedOldestFirst(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.KeepSmall = 2500 })
	var inos []Ino
	var datas [][]byte
	for i := range 5 {
		d := make([]byte, 1000)
		fillRand(uint64(80+i), d)
		datas = append(datas, d)
		inos = append(inos, writeSmall(t, e, fmt.Sprintf("f%d", i), d))
	}
	kept := keptIDs(t, e.j)
	for i, ino := range inos {
		want := i >= 3 // two blocks of about 1 KiB sealed fit in 2500 bytes
		if got := kept[e.j.blockIDs(t, ino)[0]]; got != want {
			t.Fatalf("file %d kept %v, want %v (kept %d)", i, got, want, len(kept))
		}
	}
	if e.j.keptB <= 0 || e.j.keptB > 2500 {
		t.Fatalf("kept bytes %d, want within (0, 2500]", e.j.keptB)
	}
	e.opts.KeepSmall = 1100
	e.reopen()
	if kept := keptIDs(t, e.j); len(kept) != 1 || !kept[e.j.blockIDs(t, inos[4])[0]] {
		t.Fatalf("after reopening with room for one: %d kept, want the newest", len(kept))
	}
	before := e.r.reads.Load()
	for i, ino := range inos {
		if !bytes.Equal(readAll(t, e.j, ino), datas[i]) {
			t.Fatalf("file %d differs", i)
		}
	}
	if got := e.r.reads.Load() - before; got != 4 {
		t.Fatalf("%d reads of the grid, want 4 (every block but the kept one)", got)
	}
}

// A kept row that no longer opens (local disk damage) is passed over for
// the grid's copy, and is never returned as the file's bytes.
func TestKeptSmallBlockDamagedReadsGrid(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.KeepSmall = 1 << 20 })
	d := make([]byte, 1000)
	fillRand(90, d)
	ino := writeSmall(t, e, "f", d)
	id := e.j.blockIDs(t, ino)[0]
	if _, err := e.j.db.Exec(`UPDATE staged SET sealed = zeroblob(length(sealed)) WHERE id = ?`, id[:]); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	before := e.r.reads.Load()
	if !bytes.Equal(readAll(t, e.j, ino), d) {
		t.Fatal("the file differs")
	}
	if got := e.r.reads.Load() - before; got != 1 {
		t.Fatalf("%d reads of the grid, want 1", got)
	}
	// The damaged copy is dropped, in the background.
	deadline := time.Now().Add(10 * time.Second)
	for len(keptIDs(t, e.j)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the damaged kept row is still there")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.j.wmu.Lock()
	kb := e.j.keptB
	e.j.wmu.Unlock()
	if kb != 0 {
		t.Fatalf("kept bytes %d after the only kept row was dropped", kb)
	}
}

// Garbage collection deletes the kept rows of the blocks it deletes (the
// rows refer to them), and Open those of blocks no longer live.
func TestKeptSmallBlocksCollected(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.MetaInterval = time.Hour
		o.Retention = &Retention{}
		o.KeepSmall = 1 << 20
	})
	for i := range 20 {
		e.writeFile(fmt.Sprintf("small-%d", i), randBytes(10_000+i))
	}
	keepData := randBytes(9_000)
	keepIno := e.writeFile("kept", keepData)
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := len(keptIDs(t, e.j)); n != 21 {
		t.Fatalf("%d small blocks kept after upload, want 21", n)
	}
	for i := range 20 {
		if err := e.j.Unlink(bg, RootIno, fmt.Sprintf("small-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.syncGrid()
	if _, err := e.j.CollectGarbage(bg, GCOptions{OrphanGrace: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if n := len(keptIDs(t, e.j)); n != 1 {
		t.Fatalf("%d small blocks kept after the others were deleted and collected, want 1", n)
	}
	e.wantContent(keepIno, keepData)
	var garbage int
	if err := e.j.db.QueryRow(`SELECT count(*) FROM staged s JOIN blocks b ON b.id = s.id WHERE b.state = ?`,
		blockGarbage).Scan(&garbage); err != nil || garbage != 0 {
		t.Fatalf("%d kept rows of garbage blocks after reopen (%v)", garbage, err)
	}
	if _, err := e.j.Lookup(bg, RootIno, "small-0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("small-0 after unlink: %v", err)
	}
}

// A snapshot of small files written here is read from the drive's kept
// rows, as the drive reads them, not fetched back from the grid: its
// journal asks the drive's (Options.Kept). A big block, which has no
// kept row, still comes from the grid.
func TestSnapshotReadsKeptBlocks(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) {
		o.MetaInterval = time.Hour
		o.KeepSmall = 1 << 20
	})
	small := make([][]byte, 3)
	inos := make([]Ino, 3)
	for i := range small {
		small[i] = randBytes(2000 + i)
		inos[i] = e.writeFile(fmt.Sprintf("small-%d", i), small[i])
	}
	big := randBytes(1 << 20) // one whole block: staged as a file, no kept row
	bigIno := e.writeFile("big", big)
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := len(keptIDs(t, e.j)); n != len(small) {
		t.Fatalf("%d small blocks kept after upload; want %d", n, len(small))
	}
	e.syncGrid()
	snap, err := e.j.CreateSnapshot(bg, "s")
	if err != nil {
		t.Fatal(err)
	}
	sj, err := e.j.SnapshotJournal(bg, snap.Seq)
	if err != nil {
		t.Fatal(err)
	}
	before, kept := e.reader.reads.Load(), ReadStatsOf(e.j).Kept
	for i, ino := range inos {
		if got := readAll(t, sj, ino); !bytes.Equal(got, small[i]) {
			t.Fatalf("snapshot's small-%d: %d bytes differ from the %d written", i, len(got), len(small[i]))
		}
	}
	if got := e.reader.reads.Load() - before; got != 0 {
		t.Fatalf("%d reads of the grid for the snapshot's small files, which the drive keeps", got)
	}
	// Counted in the drive's journal, whose counts status reports.
	if got := ReadStatsOf(e.j).Kept - kept; got != uint64(len(small)) {
		t.Fatalf("the drive's journal counts %d reads of its kept rows for the snapshot's %d small files", got, len(small))
	}
	if got := readAll(t, sj, bigIno); !bytes.Equal(got, big) {
		t.Fatal("snapshot's big file differs from what was written")
	}
	if e.reader.reads.Load() == before {
		t.Fatal("the snapshot's big file was read without the grid: the reads counted are not the snapshot's")
	}
}

// ReadStatsOf counts the block reads the journal serves from its own
// copies, which a cache in front of the grid never sees: blocks still
// staged before their upload (a small one from its row, a whole one from
// its file), and a small block's kept row after it. A read of the grid
// counts in neither.
func TestReadStatsCountLocalReads(t *testing.T) {
	e := newGridEnv(t, 6, 4, 2, func(o *Options) { o.KeepSmall = 1 << 20 })
	for _, n := range e.nodes {
		n.SetDown(true) // the blocks stay staged
	}
	small, big := randBytes(2000), randBytes(1<<20)
	smallIno, bigIno := e.writeFile("small", small), e.writeFile("big", big)
	for _, ino := range []Ino{smallIno, bigIno} {
		if err := e.j.Fsync(bg, ino); err != nil {
			t.Fatal(err)
		}
		if st := e.wantState(ino, StateLocal); st.PendingBlocks != 1 {
			t.Fatalf("inode %d: %d blocks pending, want its one block staged", ino, st.PendingBlocks)
		}
	}
	if got := ReadStatsOf(e.j); got != (ReadStats{}) {
		t.Fatalf("read stats %+v before any read", got)
	}
	e.wantContent(smallIno, small)
	e.wantContent(bigIno, big)
	if got := ReadStatsOf(e.j); got != (ReadStats{Staged: 2}) {
		t.Fatalf("read stats %+v after reading two staged blocks; want 2 staged reads", got)
	}

	for _, n := range e.nodes {
		n.SetDown(false)
	}
	if err := e.waitDurable(time.Minute); err != nil {
		t.Fatal(err)
	}
	e.reopen() // the counts are since Open; no block is in memory
	before := e.reader.reads.Load()
	e.wantContent(smallIno, small)
	if got := ReadStatsOf(e.j); got != (ReadStats{Kept: 1}) {
		t.Fatalf("read stats %+v after reading a kept small block; want 1 kept read", got)
	}
	if got := e.reader.reads.Load() - before; got != 0 {
		t.Fatalf("%d reads of the grid for a kept small block", got)
	}
	e.wantContent(bigIno, big)
	if e.reader.reads.Load() == before {
		t.Fatal("the uploaded whole block was read without the grid")
	}
	if got := ReadStatsOf(e.j); got != (ReadStats{Kept: 1}) {
		t.Fatalf("read stats %+v after a read of the grid; want it unchanged, 1 kept read", got)
	}
}
