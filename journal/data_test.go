package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

func readAll(t testing.TB, j *Journal, ino Ino) []byte {
	t.Helper()
	a := must[Attr](t)(j.GetAttr(bg, ino))
	buf := make([]byte, a.Size+100)
	n := must[int](t)(j.ReadAt(bg, ino, buf, 0))
	if uint64(n) != a.Size {
		t.Fatalf("read %d bytes of a %d-byte file", n, a.Size)
	}
	return buf[:n]
}

// TestRandomOpsModel writes, reads, truncates, fsyncs and reopens at
// random, comparing against an in-memory model.
func TestRandomOpsModel(t *testing.T) {
	t.Parallel()
	seeds := []uint64{1}
	if *long {
		seeds = []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { bubble(t, func(t *testing.T) { randomOps(t, seed) }) })
	}
}

func randomOps(t *testing.T, seed uint64) {
	const bs = 4096
	e := newEnv(t, func(o *Options) { o.BlockSize = bs; o.SegmentSize = 64 << 10 })
	rng := rand.New(rand.NewPCG(seed, 2))
	const nfiles = 3
	var inos [nfiles]Ino
	var model [nfiles][]byte
	for i := range inos {
		inos[i] = must[Attr](t)(e.j.Mknod(bg, RootIno, string(rune('a'+i)), 0o644, 0, 0, 0)).Ino
	}
	ops := 2500
	if testing.Short() {
		ops = 800
	}
	reopens := 0
	for op := 0; op < ops; op++ {
		fi := rng.IntN(nfiles)
		ino := inos[fi]
		m := &model[fi]
		switch r := rng.IntN(100); {
		case r < 45: // write
			off := rng.Int64N(int64(len(*m)) + 3*bs)
			if rng.IntN(10) == 0 {
				off = rng.Int64N(40 * bs)
			}
			n := rng.IntN(2*bs) + 1
			p := make([]byte, n)
			switch rng.IntN(4) {
			case 0: // zeros (holes)
			case 1:
				for i := range p {
					p[i] = byte(i % 7)
				}
			default:
				for i := range p {
					p[i] = byte(rng.IntN(256))
				}
			}
			must[int](t)(e.j.WriteAt(bg, ino, p, off))
			if end := off + int64(n); end > int64(len(*m)) {
				*m = append(*m, make([]byte, end-int64(len(*m)))...)
			}
			copy((*m)[off:], p)
		case r < 75: // read
			off := rng.Int64N(int64(len(*m)) + bs)
			p := make([]byte, rng.IntN(3*bs)+1)
			n := must[int](t)(e.j.ReadAt(bg, ino, p, off))
			want := []byte{}
			if off < int64(len(*m)) {
				want = (*m)[off:min(int64(len(*m)), off+int64(len(p)))]
			}
			if !bytes.Equal(p[:n], want) {
				t.Fatalf("op %d: read %d@%d of file %d: mismatch (got %d bytes, want %d)", op, len(p), off, fi, n, len(want))
			}
		case r < 85: // truncate
			size := rng.Int64N(int64(len(*m)) + 2*bs + 1)
			if rng.IntN(2) == 0 {
				size = rng.Int64N(int64(len(*m)) + 1)
			}
			s := uint64(size)
			must[Attr](t)(e.j.SetAttr(bg, ino, SetAttr{Size: &s}))
			if size < int64(len(*m)) {
				*m = (*m)[:size]
			} else {
				*m = append(*m, make([]byte, size-int64(len(*m)))...)
			}
		case r < 97:
			if err := e.j.Fsync(bg, ino); err != nil {
				t.Fatal(err)
			}
		default:
			for i := range inos {
				e.j.Fsync(bg, inos[i])
			}
			e.reopen()
			reopens++
		}
		if a := must[Attr](t)(e.j.GetAttr(bg, ino)); a.Size != uint64(len(*m)) {
			t.Fatalf("op %d: size %d, model %d", op, a.Size, len(*m))
		}
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, e.j) // counters did not drift over the ops since the last reopen
	e.reopen()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, e.j)
	for i := range inos {
		if got := readAll(t, e.j, inos[i]); !bytes.Equal(got, model[i]) {
			t.Fatalf("file %d differs from the model after reopen and upload", i)
		}
		st := must[FileStatus](t)(e.j.Status(bg, inos[i]))
		if st.State != StateDurable {
			t.Fatalf("file %d status %+v", i, st)
		}
	}
	e.reopen()
	t.Logf("%d ops, %d reopens, %d segments", ops, reopens, e.g.calls.Load())
}

func TestHolesCostNothing(t *testing.T) { bubble(t, testHolesCostNothing) }

func testHolesCostNothing(t *testing.T) {
	e := newEnv(t, nil)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "sparse", 0o644, 0, 0, 0))
	// an explicitly written all-zero block, a truncate-up hole, one byte at the end
	must[int](t)(e.j.WriteAt(bg, f.Ino, make([]byte, 64<<10), 0))
	size := uint64(100 << 20)
	must[Attr](t)(e.j.SetAttr(bg, f.Ino, SetAttr{Size: &size}))
	must[int](t)(e.j.WriteAt(bg, f.Ino, []byte{1}, int64(size)))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	var rows, staged int64
	e.j.db.QueryRow(`SELECT count(*) FROM blockmap WHERE ino = ?`, f.Ino).Scan(&rows)
	e.j.db.QueryRow(`SELECT coalesce(sum(sealed_len), 0) FROM blocks`).Scan(&staged)
	if rows != 1 || staged > 200 {
		t.Fatalf("holes stored: %d map rows, %d sealed bytes", rows, staged)
	}
	a := must[Attr](t)(e.j.GetAttr(bg, f.Ino))
	if a.Size != size+1 || a.Blocks > 1 {
		t.Fatalf("attr %+v", a)
	}
	p := make([]byte, 1<<20)
	must[int](t)(e.j.ReadAt(bg, f.Ino, p, 50<<20))
	if !bytes.Equal(p, make([]byte, len(p))) {
		t.Fatal("hole reads non-zero")
	}
}

func TestOffsetsPast4GiB(t *testing.T) { bubble(t, testOffsetsPast4GiB) }

func testOffsetsPast4GiB(t *testing.T) {
	e := newEnv(t, nil)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "big", 0o644, 0, 0, 0))
	offs := []int64{4<<30 - 3, 5 << 30, 1<<40 + 12345}
	for i, off := range offs {
		must[int](t)(e.j.WriteAt(bg, f.Ino, []byte{byte(i + 1), byte(i + 2), byte(i + 3), byte(i + 4), byte(i + 5)}, off))
	}
	check := func() {
		for i, off := range offs {
			p := make([]byte, 5)
			must[int](t)(e.j.ReadAt(bg, f.Ino, p, off))
			if p[0] != byte(i+1) || p[4] != byte(i+5) {
				t.Fatalf("at %d: %v", off, p)
			}
		}
		if a := must[Attr](t)(e.j.GetAttr(bg, f.Ino)); a.Size != uint64(offs[2]+5) {
			t.Fatalf("size %d", a.Size)
		}
	}
	check()
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	check()
	e.reopen()
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	check()
	var du int64
	filepath.Walk(e.opts.Dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			du += fi.Size()
		}
		return nil
	})
	if du > 10<<20 {
		t.Fatalf("journal dir uses %d bytes", du)
	}
}

// TestDifferentialUpload: a 1 MiB edit in the middle of a large file ships
// at most 2 blocks.
func TestDifferentialUpload(t *testing.T) { bubble(t, testDifferentialUpload) }

func testDifferentialUpload(t *testing.T) {
	size, bs := int64(64<<20), 4<<20
	if *long {
		size = 1 << 30
	}
	e := newEnv(t, func(o *Options) { o.BlockSize = bs; o.SegmentSize = 32 << 20 })
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "big", 0o644, 0, 0, 0))
	rng := rand.New(rand.NewPCG(3, 4))
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		for i := 0; i < len(chunk); i += 8 {
			v := rng.Uint64()
			for k := 0; k < 8; k++ {
				chunk[i+k] = byte(v >> (8 * k))
			}
		}
		must[int](t)(e.j.WriteAt(bg, f.Ino, chunk, off))
	}
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	before := e.g.written.Load()
	if before < size {
		t.Fatalf("first upload shipped %d bytes of a %d-byte file", before, size)
	}
	edit := bytes.Repeat([]byte("edit"), 1<<18) // 1 MiB, straddling a block boundary
	off := size/2 - int64(len(edit))/2
	must[int](t)(e.j.WriteAt(bg, f.Ino, edit, off))
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	shipped := e.g.written.Load() - before
	// Sealed blocks are at most a little larger than plaintext (the edit
	// is compressible, the rest is not).
	if limit := int64(2*bs) + 1024; shipped > limit || shipped == 0 {
		t.Fatalf("1 MiB edit shipped %d bytes (limit %d)", shipped, limit)
	}
	t.Logf("file %d MiB, block %d MiB: first upload %d bytes, 1 MiB edit shipped %d bytes (%.2f blocks)",
		size>>20, bs>>20, before, shipped, float64(shipped)/float64(bs))
	p := make([]byte, len(edit)+10)
	must[int](t)(e.j.ReadAt(bg, f.Ino, p, off-5))
	if !bytes.Equal(p[5:5+len(edit)], edit) {
		t.Fatal("edit does not read back")
	}
}

func TestDedup(t *testing.T) { bubble(t, testDedup) }

func testDedup(t *testing.T) {
	e := newEnv(t, nil)
	data := make([]byte, 10<<20)
	fillRand(5, data)
	var inos []Ino
	for _, name := range []string{"one", "two", "three"} {
		f := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
		for off := 0; off < len(data); off += 100000 {
			must[int](t)(e.j.WriteAt(bg, f.Ino, data[off:min(off+100000, len(data))], int64(off)))
		}
		if err := e.j.Fsync(bg, f.Ino); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, f.Ino)
	}
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	shipped := e.g.written.Load()
	if shipped < int64(len(data)) || shipped > int64(len(data))+int64(len(data))/50 {
		t.Fatalf("3 copies of %d bytes shipped %d bytes", len(data), shipped)
	}
	var refs int
	e.j.db.QueryRow(`SELECT max(refcount) FROM blocks`).Scan(&refs)
	if refs != 3 {
		t.Fatalf("max refcount %d", refs)
	}
	for _, ino := range inos {
		if !bytes.Equal(readAll(t, e.j, ino), data) {
			t.Fatal("copy differs")
		}
	}
	// Dropping two copies keeps the third intact.
	e.j.Unlink(bg, RootIno, "one")
	e.j.Unlink(bg, RootIno, "two")
	if !bytes.Equal(readAll(t, e.j, inos[2]), data) {
		t.Fatal("copy differs after unlinking the others")
	}
	e.j.Unlink(bg, RootIno, "three")
	e.reap()
	var garbage int
	e.j.db.QueryRow(`SELECT count(*) FROM blocks WHERE state = ?`, blockGarbage).Scan(&garbage)
	if garbage != len(data)/(64<<10) {
		t.Fatalf("%d garbage blocks recorded", garbage)
	}
	e.reopen()
	t.Logf("3 x %d bytes shipped %d bytes", len(data), shipped)
}

func TestQuotaFullThenDrain(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Quota = 2 << 20; o.QuotaWait = 300 * time.Millisecond })
	e.g.down.Store(true)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	data := make([]byte, 8<<20)
	fillRand(7, data)
	var written int
	var full error
	start := time.Now()
	for written < len(data) {
		n, err := e.j.WriteAt(bg, f.Ino, data[written:written+32<<10], int64(written))
		if err != nil {
			full = err
			break
		}
		written += n
	}
	took := time.Since(start)
	atFull := written
	wantErr(t, full, ErrFull)
	if took > 30*time.Second { // 0.3 s of QuotaWait; the rest is a loaded machine's slack
		t.Fatalf("ErrFull after %v", took)
	}
	if written < 1<<20 || written > 3<<20 {
		t.Fatalf("wrote %d bytes before ErrFull with a 2 MiB quota", written)
	}
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, e.j, f.Ino); !bytes.Equal(got, data[:written]) {
		t.Fatal("data written before ErrFull is not intact")
	}
	e.g.down.Store(false)
	ctx, cancel := context.WithTimeout(bg, 60*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	// Space is back: the rest fits now.
	for written < len(data) {
		n := must[int](t)(e.j.WriteAt(bg, f.Ino, data[written:written+32<<10], int64(written)))
		written += n
	}
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, e.j)
	e.reopen()
	if got := readAll(t, e.j, f.Ino); !bytes.Equal(got, data) {
		t.Fatal("data not intact after drain")
	}
	t.Logf("quota 2 MiB, grid down: ErrFull after %d bytes, %v after the first write; %d failed segment writes while down",
		atFull, took, e.g.fails.Load())
}

// TestRetryNowEndsTheBackoff: after the grid was down long enough for the
// uploader's backoff to reach RetryMax (a minute here), RetryNow (the
// mount's health check seeing the nodes back) makes it upload at once,
// with no time passing, not when the backoff ends. The mount's test
// TestOfflineStatusThenDrain waited 54 s for it on a loaded machine.
func TestRetryNowEndsTheBackoff(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RetryMax = time.Minute })
		f, data := backedOff(t, e)
		e.g.down.Store(false)
		e.j.RetryNow()
		synctest.Wait()
		if st := e.j.Stats(); st.QueuedBlocks > 0 {
			t.Fatalf("RetryNow with the grid back: the queue still waits (%+v)", st)
		}
		if !bytes.Equal(readAll(t, e.j, f.Ino), data) {
			t.Fatal("data differs")
		}
	})
}

// TestNodesUpEndsTheBackoffAfterPartialOutage: some nodes stayed up, too
// few to store a segment (k of the k+m), long enough for the uploader's
// backoff to reach RetryMax (a minute here); when the health check sees
// enough nodes again (k+1), the queue goes at once, without waiting out
// the backoff. A rise that stays below k+1 does not wake it. (Only a
// rise from no node at all used to.)
func TestNodesUpEndsTheBackoffAfterPartialOutage(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RetryMax = time.Minute })
		k := e.g.K()
		e.j.NodesUp(k + e.g.M())
		e.j.NodesUp(k - 1)
		f, data := backedOff(t, e)
		fails := e.g.fails.Load()
		e.j.NodesUp(k) // more, still too few: no retry now
		synctest.Wait()
		if got := e.g.fails.Load(); got != fails {
			t.Fatalf("a rise to k nodes woke the uploader (%d failed uploads, then %d)", fails, got)
		}
		e.g.down.Store(false)
		e.j.NodesUp(k + 1)
		synctest.Wait()
		if st := e.j.Stats(); st.QueuedBlocks > 0 {
			t.Fatalf("k+1 nodes back after a partial outage: the queue still waits out the backoff (%+v)", st)
		}
		if !bytes.Equal(readAll(t, e.j, f.Ino), data) {
			t.Fatal("data differs")
		}
	})
}

// backedOff takes e's grid down, writes and fsyncs a file, and lets ten
// minutes pass in the bubble, so the uploader's backoff reaches its cap
// (RetryMax); it returns the file and its bytes.
func backedOff(t *testing.T, e *env) (Attr, []byte) {
	t.Helper()
	e.g.down.Store(true)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	data := bytes.Repeat([]byte("back"), 100000)
	must[int](t)(e.j.WriteAt(bg, f.Ino, data, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Minute)
	synctest.Wait()
	if fails := e.g.fails.Load(); fails < 5 {
		t.Fatalf("%d failed uploads in 10 minutes with the grid down", fails)
	}
	return f, data
}

func TestUploaderRetriesUntilGridReturns(t *testing.T) {
	bubble(t, testUploaderRetriesUntilGridReturns)
}

func testUploaderRetriesUntilGridReturns(t *testing.T) {
	e := newEnv(t, nil)
	e.g.down.Store(true)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	data := bytes.Repeat([]byte("meshdrive"), 50000)
	must[int](t)(e.j.WriteAt(bg, f.Ino, data, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 500*time.Millisecond)
	err := e.j.WaitDurable(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDurable with the grid down: %v", err)
	}
	st := e.j.Stats()
	if st.Errors < 2 || st.QueuedBlocks == 0 || st.QueuedFiles != 1 || st.LastError == "" {
		t.Fatalf("stats while down: %+v", st)
	}
	if s := must[FileStatus](t)(e.j.Status(bg, f.Ino)); s.State != StateLocal || s.PendingBlocks == 0 {
		t.Fatalf("status while down: %+v", s)
	}
	fails := e.g.fails.Load()
	e.g.down.Store(false)
	// No user action: the uploader resumes on its own, at its next retry
	// (RetryMax apart at most).
	time.Sleep(e.opts.RetryMax)
	synctest.Wait()
	if st := e.j.Stats(); st.QueuedBlocks > 0 {
		t.Fatalf("queue did not drain %v after the grid came back: %+v", e.opts.RetryMax, st)
	}
	if s := must[FileStatus](t)(e.j.Status(bg, f.Ino)); s.State != StateDurable {
		t.Fatalf("status after recovery: %+v", s)
	}
	if !bytes.Equal(readAll(t, e.j, f.Ino), data) {
		t.Fatal("data differs")
	}
	t.Logf("%d failed attempts while down, stats %+v", fails, e.j.Stats())
}

func TestDegradedRecordsRepair(t *testing.T) { bubble(t, testDegradedRecordsRepair) }

func testDegradedRecordsRepair(t *testing.T) {
	e := newEnv(t, nil)
	e.g.stored.Store(5) // k+1 of 6
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(bg, f.Ino, []byte("degraded"), 0))
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	if s := must[FileStatus](t)(e.j.Status(bg, f.Ino)); s.State != StateDegraded {
		t.Fatalf("status %+v", s)
	}
	if r := e.j.Stats().RepairOwed; r != 1 {
		t.Fatalf("repair owed %d", r)
	}
	e.reopen()
	if r := e.j.Stats().RepairOwed; r != 1 {
		t.Fatalf("repair owed after reopen %d", r)
	}
}

// storedOpenFile makes file "f" in the root of n random bytes (seed),
// waits until it is grid-durable and opens it (closed at cleanup).
func storedOpenFile(t *testing.T, e *env, seed uint64, n int64) (Attr, []byte) {
	t.Helper()
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	data := make([]byte, n)
	fillRand(seed, data)
	must[int](t)(e.j.WriteAt(bg, f.Ino, data, 0))
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	e.j.OpenFile(f.Ino)
	t.Cleanup(func() { e.j.ReleaseFile(f.Ino) })
	return f, data
}

func TestSequentialReadPrefetches(t *testing.T) { bubble(t, testSequentialReadPrefetches) }

func testSequentialReadPrefetches(t *testing.T) {
	e := newEnv(t, nil)
	f, data := storedOpenFile(t, e, 9, 2<<20)
	p := make([]byte, 16<<10)
	var got []byte
	for off := int64(0); off < int64(len(data)); off += int64(len(p)) {
		n := must[int](t)(e.j.ReadAt(bg, f.Ino, p, off))
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("sequential read differs")
	}
	nb := int64(len(data) / (64 << 10))
	if pf := e.r.prefetchs.Load(); pf < nb/2 {
		t.Fatalf("%d blocks prefetched during a sequential read of %d blocks", pf, nb)
	}
	if r := e.r.reads.Load(); r > nb+2 {
		t.Fatalf("%d block reads for %d blocks (no per-block memo?)", r, nb)
	}
}

func TestConcurrentFiles(t *testing.T) { bubble(t, testConcurrentFiles) }

func testConcurrentFiles(t *testing.T) {
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		f := must[Attr](t)(e.j.Mknod(bg, RootIno, string(rune('a'+w)), 0o644, 0, 0, 0))
		wg.Add(1)
		go func(ino Ino, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			var model []byte
			for i := 0; i < 200; i++ {
				off := rng.Int64N(300 << 10)
				p := make([]byte, rng.IntN(100<<10)+1)
				fillRand(rng.Uint64(), p)
				if _, err := e.j.WriteAt(bg, ino, p, off); err != nil {
					t.Error(err)
					return
				}
				if end := off + int64(len(p)); end > int64(len(model)) {
					model = append(model, make([]byte, end-int64(len(model)))...)
				}
				copy(model[off:], p)
				if i%20 == 0 {
					e.j.Flush(bg, ino)
				}
			}
			buf := make([]byte, len(model))
			if _, err := e.j.ReadAt(bg, ino, buf, 0); err != nil || !bytes.Equal(buf, model) {
				t.Errorf("file %d differs (%v)", ino, err)
			}
		}(f.Ino, uint64(w))
	}
	wg.Wait()
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, e.j)
	e.reopen()
}

// fillRand fills p with pseudo-random bytes from seed.
func fillRand(seed uint64, p []byte) {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	rand.NewChaCha8(s).Read(p)
}

// TestDiskErrorKeepsConsistent: a failing staging area makes Fsync fail
// with the cause wrapped; nothing is committed, the data stays dirty, and
// once the disk works again the same Fsync succeeds.
func TestDiskErrorKeepsConsistent(t *testing.T) { bubble(t, testDiskErrorKeepsConsistent) }

func testDiskErrorKeepsConsistent(t *testing.T) {
	e := newEnv(t, nil)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	data := make([]byte, 200<<10)
	fillRand(11, data)
	must[int](t)(e.j.WriteAt(bg, f.Ino, data, 0))
	stage := filepath.Join(e.opts.Dir, "staging")
	if err := os.Rename(stage, stage+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stage, nil, 0o600); err != nil { // staging is now a file: every create fails
		t.Fatal(err)
	}
	err := e.j.Fsync(bg, f.Ino)
	if err == nil || !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("fsync with a broken staging area: %v", err)
	}
	var rows int
	e.j.db.QueryRow(`SELECT count(*) FROM blockmap`).Scan(&rows)
	if rows != 0 {
		t.Fatalf("%d block map rows committed by a failed flush", rows)
	}
	if !bytes.Equal(readAll(t, e.j, f.Ino), data) {
		t.Fatal("dirty data lost by a failed flush")
	}
	os.Remove(stage)
	if err := os.Rename(stage+".away", stage); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if !bytes.Equal(readAll(t, e.j, f.Ino), data) {
		t.Fatal("data differs after recovery from the disk error")
	}
}

// checkAccounting: with nothing dirty and the queue drained, the quota
// counters are back to zero (no drift).
func checkAccounting(t *testing.T, j *Journal) {
	t.Helper()
	j.qmu.Lock()
	d, st, q := j.dirtyB, j.stagedB, len(j.queue)
	j.qmu.Unlock()
	if d != 0 || st != 0 || q != 0 {
		t.Fatalf("after drain: dirty %d bytes, staged %d bytes, %d queued", d, st, q)
	}
}

// The first flush of a file made in this mount skips looking for old
// blocks (inode.mapEmpty); every later flush and every write-behind commit
// must look again. The database check at reopen fails on a refcount that
// a skipped lookup left wrong, and the used space is compared with the
// blocks the file keeps.
func TestFirstFlushOfNewFile(t *testing.T) { bubble(t, testFirstFlushOfNewFile) }

func testFirstFlushOfNewFile(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	bs := int(e.j.bs)
	rnd := rand.New(rand.NewPCG(7, 7))
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	blocks := func(ino Ino) uint64 { return must[Attr](t)(e.j.GetAttr(bg, ino)).Blocks }

	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o100600, 0, 0, 0))
	e.j.OpenFile(a.Ino)
	first := fill(2*bs + 100)
	must[int](t)(e.j.WriteAt(bg, a.Ino, first, 0))
	if err := e.j.Flush(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	if got, want := blocks(a.Ino), uint64(len(first)+511)/512; got != want {
		t.Errorf("after the first flush: %d blocks of 512 bytes, want %d", got, want)
	}
	// Rewrite the start and cut the file to half a block: the second
	// flush replaces block 0 and drops blocks 1 and 2.
	second := fill(bs / 2)
	must[int](t)(e.j.WriteAt(bg, a.Ino, second, 0))
	size := uint64(len(second))
	must[Attr](t)(e.j.SetAttr(bg, a.Ino, SetAttr{Size: &size}))
	if err := e.j.Flush(bg, a.Ino); err != nil {
		t.Fatal(err)
	}
	e.j.ReleaseFile(a.Ino)

	// Blocks committed by write-behind before the first flush.
	b := must[Attr](t)(e.j.Mknod(bg, RootIno, "g", 0o100600, 0, 0, 0))
	e.j.OpenFile(b.Ino)
	big := fill(6 * bs)
	for off := 0; off < len(big); off += 64 << 10 {
		must[int](t)(e.j.WriteAt(bg, b.Ino, big[off:off+64<<10], int64(off)))
	}
	must[int](t)(e.j.WriteAt(bg, b.Ino, second, int64(bs))) // change a block write-behind may have committed
	copy(big[bs:], second)
	if err := e.j.Flush(bg, b.Ino); err != nil {
		t.Fatal(err)
	}
	e.j.ReleaseFile(b.Ino)

	e.reopen() // checkDB: refcounts equal block map rows
	if got := readAll(t, e.j, a.Ino); !bytes.Equal(got, second) {
		t.Errorf("f: %d bytes read back, want the %d of the second write", len(got), len(second))
	}
	if got, want := blocks(a.Ino), (size+511)/512; got != want {
		t.Errorf("f: %d blocks of 512 bytes, want %d", got, want)
	}
	if got := readAll(t, e.j, b.Ino); !bytes.Equal(got, big) {
		t.Error("g: read back differs from what was written")
	}
	if got, want := blocks(b.Ino), uint64(len(big))/512; got != want {
		t.Errorf("g: %d blocks of 512 bytes, want %d", got, want)
	}
}

// A sequential read that lies in one stored block answers with a slice
// of the block's plaintext (no copy into the caller's buffer); reads that
// straddle blocks, dirty blocks, a random read and the zero tail past a
// block's stored bytes fill the buffer. A write after a shared read
// changes neither the slice handed out nor what the next read returns.
func TestSequentialReadSharesBlock(t *testing.T) { bubble(t, testSequentialReadSharesBlock) }

func testSequentialReadSharesBlock(t *testing.T) {
	e := newEnv(t, nil)
	bs := int64(e.opts.BlockSize)
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	data := make([]byte, 4*bs)
	fillRand(11, data)
	q := bs / 4
	clear(data[2*bs-q : 2*bs]) // block 1 is stored without its zero tail
	must[int](t)(e.j.WriteAt(bg, f.Ino, data, 0))
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	e.j.OpenFile(f.Ino)
	defer e.j.ReleaseFile(f.Ino)
	read := func(off, n int64) (b []byte, shared bool) {
		t.Helper()
		p := make([]byte, n)
		b, err := e.j.Read(bg, f.Ino, p, off)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data[off:off+int64(len(b))]) || int64(len(b)) != min(n, int64(len(data))-off) {
			t.Fatalf("read of %d at %d: %d bytes, not what was written", n, off, len(b))
		}
		return b, len(b) > 0 && &b[0] != &p[0]
	}
	for _, c := range []struct {
		off, n int64
		shared bool
	}{
		{0, q, true},         // sequential from the start, in block 0
		{q, q, true},         // goes on in block 0
		{2 * q, bs, false},   // straddles blocks 0 and 1
		{bs + 2*q, q, true},  // goes on in block 1
		{bs + 3*q, q, false}, // block 1's zero tail, which is not stored
		{3 * bs, q, false},   // random: only its frames
		{3*bs + q, q, true},  // sequential again
	} {
		if _, shared := read(c.off, c.n); shared != c.shared {
			t.Fatalf("read of %d at %d: shared %v, want %v", c.n, c.off, shared, c.shared)
		}
	}
	b, shared := read(3*bs+2*q, q)
	if !shared {
		t.Fatal("sequential read within block 3 was copied")
	}
	kept := bytes.Clone(b)
	patch := bytes.Repeat([]byte{0xee}, int(q))
	must[int](t)(e.j.WriteAt(bg, f.Ino, patch, 3*bs+2*q))
	copy(data[3*bs+2*q:], patch)
	if !bytes.Equal(b, kept) {
		t.Fatal("a write changed the slice a read had handed out")
	}
	if _, shared := read(3*bs+2*q, q); shared {
		t.Fatal("a read of a dirty block shared a stored block's plaintext")
	}
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	read(3*bs, q)
	if b, _ := read(3*bs+q, 2*q); !bytes.Equal(b[q:], patch) {
		t.Fatal("a read after the write's flush returns the old bytes")
	}
}

// acquireReader is a testReader that counts its blocks' references
// (cache.Cache's AcquireBlock, as the journal sees it).
type acquireReader struct {
	*testReader
	acquires atomic.Int64
	held     atomic.Int64 // references not yet released
}

type countedHold struct{ r *acquireReader }

func (h countedHold) Retain() { h.r.held.Add(1) }
func (h countedHold) Release() {
	if h.r.held.Add(-1) < 0 {
		panic("a block reference released twice")
	}
}

func (r *acquireReader) AcquireBlock(ctx context.Context, ref remote.BlockRef) ([]byte, BlockHold, error) {
	b, err := r.ReadBlock(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	r.acquires.Add(1)
	r.held.Add(1)
	return b, countedHold{r}, nil
}

// TestSharedReadsAcquireOncePerBlock: a sequential reader in small
// requests acquires each block once (the memo keeps it, each shared reply
// takes a reference of its own), and every reference but the memo's is
// released.
func TestSharedReadsAcquireOncePerBlock(t *testing.T) {
	var ar *acquireReader
	e := newEnv(t, func(o *Options) {
		ar = &acquireReader{testReader: o.Blocks.(*testReader)}
		o.Blocks = ar
	})
	bs := int64(e.opts.BlockSize)
	f, data := storedOpenFile(t, e, 12, 4*bs)
	q := bs / 8
	shared := 0
	for off := int64(0); off < int64(len(data)); off += q {
		b, release, err := e.j.ReadShared(bg, f.Ino, make([]byte, q), off)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data[off:off+q]) {
			t.Fatalf("read at %d: not what was written", off)
		}
		if release != nil {
			shared++
			release()
		}
	}
	if shared == 0 {
		t.Fatal("no read was shared: the test reads nothing it means to")
	}
	if got := ar.acquires.Load(); got != 4 {
		t.Errorf("%d blocks acquired for a sequential read of 4 blocks in %d requests, want 4", got, len(data)/int(q))
	}
	if got := ar.held.Load(); got != 1 {
		t.Errorf("%d references held after the reads, want 1 (the memo's)", got)
	}
}
