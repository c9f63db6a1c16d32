package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// The blocks of many small files shipped in one segment are all recorded
// at their own place in it (the commit places them in two statements for
// the whole segment), their staged rows go, and each file reads back
// from the grid after a reopen.
func TestSegmentOfSmallFilesCommitted(t *testing.T) { bubble(t, testSegmentOfSmallFilesCommitted) }

func testSegmentOfSmallFilesCommitted(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleFlush = time.Hour })
	e.g.down.Store(true) // stage them all first: one segment for all
	const files = 40
	var inos []Ino
	var datas [][]byte
	for i := range files {
		a := must[Attr](t)(e.j.Mknod(bg, RootIno, fmt.Sprintf("f%d", i), 0o100644, 0, 0, 0))
		data := make([]byte, 1000+97*i)
		fillRand(uint64(100+i), data)
		must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
		if err := e.j.Flush(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, a.Ino)
		datas = append(datas, data)
	}
	applyUnlinks(t, e.j) // the closes' deferred flushes
	var staged int
	if err := e.j.db.QueryRow(`SELECT count(*) FROM staged`).Scan(&staged); err != nil || staged != files {
		t.Fatalf("%d rows in staged (%v), want %d", staged, err, files)
	}
	e.g.down.Store(false)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.j.db.QueryRow(`SELECT count(*) FROM staged`).Scan(&staged); err != nil || staged != 0 {
		t.Fatalf("%d rows in staged after upload (%v), want 0", staged, err)
	}
	var blocks, uploaded, places int
	if err := e.j.db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE state = ? AND segment IS NOT NULL AND seg_len = sealed_len),
		count(DISTINCT hex(segment) || ':' || seg_off) FROM blocks`, blockUploaded).Scan(&blocks, &uploaded, &places); err != nil {
		t.Fatal(err)
	}
	if blocks != files || uploaded != files || places != files {
		t.Fatalf("%d blocks, %d recorded as uploaded with their sealed length, at %d distinct places; want %d of each",
			blocks, uploaded, places, files)
	}
	e.reopen()
	for i, ino := range inos {
		if !bytes.Equal(readAll(t, e.j, ino), datas[i]) {
			t.Fatalf("file %d differs after upload, read from the grid", i)
		}
	}
}

// The segment's commit finds each block by its key, not by a scan of
// every staged block per block placed (quadratic: a copied source tree
// stages thousands).
func TestPlaceBlocksPlan(t *testing.T) {
	e := newEnv(t, nil)
	rows, err := e.j.db.Query(`EXPLAIN QUERY PLAN `+placeBlocksSQL, blockUploaded, []byte{1}, "[]", blockStaged)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if len(plan) != 2 || !strings.HasPrefix(plan[0], "SCAN r") || plan[1] != "SEARCH blocks USING PRIMARY KEY (id=?)" {
		t.Fatalf("plan of the segment's block update: %q; want the array scanned, each block searched by its key", plan)
	}
}

// The staging file of each uploaded block that has one goes to
// Options.Uploaded (the drive's disk cache adopts it) once its segment is
// committed, holding exactly the block's sealed bytes; blocks staged in
// the database have no file and are not handed over.
func TestUploadedStagingFilesHandedOver(t *testing.T) { bubble(t, testUploadedStagingFilesHandedOver) }

func testUploadedStagingFilesHandedOver(t *testing.T) {
	kept := t.TempDir()
	var mu sync.Mutex
	got := map[remote.BlockID]int64{}
	e := newEnv(t, func(o *Options) {
		o.Uploaded = func(id remote.BlockID, path string, size int64) {
			mu.Lock()
			defer mu.Unlock()
			if st, err := os.Stat(path); err != nil || st.Size() != size {
				t.Errorf("handed %s of %d bytes: %v", path, size, err)
			}
			if err := os.Rename(path, filepath.Join(kept, id.String())); err != nil {
				t.Error(err)
			}
			got[id] = size
		}
	})
	big := make([]byte, 4*e.opts.BlockSize)
	fillRand(41, big)
	small := make([]byte, 1000)
	fillRand(42, small)
	for name, data := range map[string][]byte{"big": big, "small": small} {
		a := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o100644, 0, 0, 0))
		must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
		if err := e.j.Fsync(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("%d staging files handed over, want the big file's 4 blocks", len(got))
	}
	for i := range 4 {
		chunk := big[i*int(e.opts.BlockSize) : (i+1)*int(e.opts.BlockSize)]
		id := e.opts.Sealer.BlockID(chunk)
		if _, ok := got[id]; !ok {
			t.Fatalf("block %d of the big file not handed over", i)
		}
		sealed, err := os.ReadFile(filepath.Join(kept, id.String()))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := e.opts.Sealer.Open(nil, id, sealed)
		if err != nil || !bytes.Equal(plain, chunk) {
			t.Fatalf("handed file of block %d does not open to its bytes: %v", i, err)
		}
	}
	left, err := os.ReadDir(e.j.stage)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range left {
		t.Errorf("staging file %s left after its upload", f.Name())
	}
}

// TestDamagedStagingFileNotShipped: a staging file cut short or grown on
// the local disk (while nothing runs) is not uploaded as the block: the
// block is lost (not retried forever), the uploader says what is wrong and
// what to do, the other blocks ship, and deleting the file that holds it
// frees the block.
func TestDamagedStagingFileNotShipped(t *testing.T) {
	for _, damage := range []string{"cut", "grown"} {
		t.Run(damage, func(t *testing.T) {
			e := newEnv(t, nil)
			e.g.down.Store(true) // keep the blocks staged
			f := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
			data := make([]byte, 4<<16)
			fillRand(3, data)
			must[int](t)(e.j.WriteAt(bg, f.Ino, data, 0))
			if err := e.j.Fsync(bg, f.Ino); err != nil {
				t.Fatal(err)
			}
			if err := e.j.Close(); err != nil {
				t.Fatal(err)
			}
			e.j = nil
			stage, _ := filepath.Glob(filepath.Join(e.opts.Dir, "staging", "*"))
			if len(stage) != 4 {
				t.Fatalf("%d staging files, want 4", len(stage))
			}
			switch damage {
			case "cut":
				if err := os.Truncate(stage[0], 100); err != nil {
					t.Fatal(err)
				}
			case "grown":
				st, _ := os.Stat(stage[0])
				if err := os.Truncate(stage[0], st.Size()+5000); err != nil {
					t.Fatal(err)
				}
			}
			e.g.down.Store(false)
			e.open()
			deadline := time.Now().Add(10 * time.Second)
			for e.j.Stats().QueuedBlocks > 0 || e.j.Stats().LastError == "" {
				if time.Now().After(deadline) {
					t.Fatalf("stats: %+v", e.j.Stats())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if st := must[FileStatus](t)(e.j.Status(bg, f.Ino)); st.State != StateLost || st.LostBlocks != 1 || st.PendingBlocks != 0 {
				t.Fatalf("a file with a damaged staging file is %+v, want lost", st)
			}
			if _, err := os.Stat(stage[0]); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the damaged staging file: %v, want removed", err)
			}
			if msg := e.j.Stats().LastError; !strings.Contains(msg, stage[0]) || !strings.Contains(msg, "restore that file") {
				t.Fatalf("the uploader's error does not say what is wrong and what to do: %s", msg)
			}
			// The remedy the error names: the block is freed, the
			// queue drains.
			if err := e.j.Unlink(bg, RootIno, "f"); err != nil {
				t.Fatal(err)
			}
			e.reap()
			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			if err := e.j.WaitDurable(ctx); err != nil {
				t.Fatalf("after the file was deleted: %v (%+v)", err, e.j.Stats())
			}
		})
	}
}

// TestMissingStagingFileWhileOpen: a staged block's staging file is
// removed (outside meshdrive) while the journal is open, before the
// uploader reaches it. The uploader marks the block lost, as a mount
// with --drop-missing would, rather than keep it queued for ever: the
// wait for durability returns, the file says lost, Lost names it, the
// uploader's last error says what happened to which file, and the other
// file ships.
func TestMissingStagingFileWhileOpen(t *testing.T) {
	logName := filepath.Join(t.TempDir(), "log")
	logf := must[*os.File](t)(os.Create(logName)) // its writes are safe for the journal's goroutines
	t.Cleanup(func() { logf.Close() })
	e := newEnv(t, func(o *Options) {
		// Nothing ships until WaitDurable asks for it.
		o.IdleFlush, o.SegmentSize = time.Hour, 64<<20
		o.Logger = slog.New(slog.NewTextHandler(logf, nil))
	})
	gone := must[Attr](t)(e.j.Mknod(bg, RootIno, "gone", 0o644, 0, 0, 0))
	kept := must[Attr](t)(e.j.Mknod(bg, RootIno, "kept", 0o644, 0, 0, 0))
	data := make([]byte, 2<<16)
	fillRand(5, data)
	must[int](t)(e.j.WriteAt(bg, gone.Ino, data, 0))
	fillRand(6, data)
	must[int](t)(e.j.WriteAt(bg, kept.Ino, data, 0))
	for _, ino := range []Ino{gone.Ino, kept.Ino} {
		if err := e.j.Fsync(bg, ino); err != nil {
			t.Fatal(err)
		}
	}
	id := must[[]mapped](t)(e.j.fd.mapRange(bg, gone.Ino, 0, 0))[0].id
	if err := os.Remove(e.j.c.stagePath(id)); err != nil {
		t.Fatalf("the staging file of gone's first block: %v", err)
	}
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatalf("the wait for durability with a staging file gone: %v (%+v)", err, e.j.Stats())
	}
	if st := must[FileStatus](t)(e.j.Status(bg, gone.Ino)); st.State != StateLost || st.LostBlocks != 1 {
		t.Errorf("the file whose staging file is gone is %+v, want lost, 1 block", st)
	}
	if st := must[FileStatus](t)(e.j.Status(bg, kept.Ino)); st.State == StateLost || st.PendingBlocks != 0 || st.LostBlocks != 0 {
		t.Errorf("the other file is %+v, want uploaded", st)
	}
	if l := must[LostReport](t)(e.j.Lost(bg)); l.Blocks != 1 || l.Files != 1 || !slices.Equal(l.Paths, []string{"/gone"}) {
		t.Errorf("Lost: %+v, want 1 block of /gone", l)
	}
	if msg := e.j.Stats().LastError; !strings.Contains(msg, "removed outside meshdrive") || !strings.Contains(msg, "/gone") ||
		!strings.Contains(msg, "restore them from a copy") {
		t.Errorf("the uploader's last error does not say what happened to which file and what to do: %s", msg)
	}
	if log := string(must[[]byte](t)(os.ReadFile(logName))); !strings.Contains(log, "removed outside meshdrive") || !strings.Contains(log, "/gone") {
		t.Errorf("the log does not say the staging file was removed, nor name the file:\n%s", log)
	}
	// Writing the same bytes again brings the block back.
	fillRand(5, data)
	must[int](t)(e.j.WriteAt(bg, gone.Ino, data, 0))
	if err := e.j.Fsync(bg, gone.Ino); err != nil {
		t.Fatal(err)
	}
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if l := must[LostReport](t)(e.j.Lost(bg)); l.Blocks != 0 {
		t.Errorf("Lost after the same bytes were written again: %+v", l)
	}
}

// TestStagingFolderGoneWhileOpen: the whole staging folder disappears
// while the journal is open (a disk not mounted, a folder moved by
// mistake), not one staging file. That may be undone, so the uploader
// marks no block lost: the blocks stay queued, its last error and the
// log (once, however many passes find it gone) say the folder is gone
// and what to do, and once the folder is back the blocks upload.
func TestStagingFolderGoneWhileOpen(t *testing.T) { bubble(t, testStagingFolderGoneWhileOpen) }

// durableOnceBack lets two hours of the bubble's time pass with the
// staging folder back and checks that the wait for durability (durable)
// has ended, without an error.
func durableOnceBack(t *testing.T, e *env, durable chan error) {
	t.Helper()
	time.Sleep(2 * time.Hour)
	synctest.Wait()
	select {
	case err := <-durable:
		if err != nil {
			t.Fatalf("the wait for durability once the folder is back: %v", err)
		}
	default:
		t.Fatalf("the wait for durability goes on with the folder back: %+v", e.j.Stats())
	}
}

// stageTwoMoveAway fsyncs two files of random bytes, "a" and "b" (seeds
// seed and seed+1), whose blocks wait in staging/ for upload, then moves
// the folder away to stage+".away". It returns their inodes and the
// folder's path.
func stageTwoMoveAway(t *testing.T, e *env, seed uint64) ([]Ino, string) {
	t.Helper()
	var inos []Ino
	data := make([]byte, 2<<16)
	for i, name := range []string{"a", "b"} {
		a := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
		fillRand(seed+uint64(i), data)
		must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
		if err := e.j.Fsync(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, a.Ino)
	}
	stage := filepath.Join(e.opts.Dir, "staging")
	if err := os.Rename(stage, stage+".away"); err != nil {
		t.Fatal(err)
	}
	return inos, stage
}

func testStagingFolderGoneWhileOpen(t *testing.T) {
	logName := filepath.Join(t.TempDir(), "log")
	logf := must[*os.File](t)(os.Create(logName))
	t.Cleanup(func() { logf.Close() })
	e := newEnv(t, func(o *Options) {
		// Nothing ships until WaitDurable asks for it; then a pass an hour.
		o.IdleFlush, o.SegmentSize = time.Hour, 64<<20
		o.Logger = slog.New(slog.NewTextHandler(logf, nil))
	})
	inos, stage := stageTwoMoveAway(t, e, 10)
	durable := make(chan error, 1)
	go func() { durable <- e.j.WaitDurable(bg) }()
	time.Sleep(3 * time.Hour) // three passes of the uploader
	synctest.Wait()
	st := e.j.Stats()
	if !strings.Contains(st.LastError, "the staging folder "+stage+" is gone") || !strings.Contains(st.LastError, "Put the folder back") ||
		st.Errors < 3 {
		t.Fatalf("after three passes with the staging folder gone, the uploader's errors (%d) and last: %s", st.Errors, st.LastError)
	}
	for _, ino := range inos {
		if s := must[FileStatus](t)(e.j.Status(bg, ino)); s.State == StateLost || s.LostBlocks != 0 || s.PendingBlocks == 0 {
			t.Errorf("inode %d with the staging folder gone is %+v, want pending and nothing lost", ino, s)
		}
	}
	if l := must[LostReport](t)(e.j.Lost(bg)); l.Blocks != 0 {
		t.Errorf("Lost with the staging folder gone: %+v, want nothing", l)
	}
	if log := string(must[[]byte](t)(os.ReadFile(logName))); strings.Count(log, "is gone") != 1 {
		t.Errorf("the log says the folder is gone %d times, want once:\n%s", strings.Count(log, "is gone"), log)
	}
	select {
	case err := <-durable:
		t.Fatalf("the wait for durability returned with the staging folder gone: %v", err)
	default:
	}

	if err := os.Rename(stage+".away", stage); err != nil {
		t.Fatal(err)
	}
	durableOnceBack(t, e, durable)
	for _, ino := range inos {
		if s := must[FileStatus](t)(e.j.Status(bg, ino)); s.State == StateLost || s.PendingBlocks != 0 {
			t.Errorf("inode %d once the folder is back is %+v, want uploaded", ino, s)
		}
	}
	if log := string(must[[]byte](t)(os.ReadFile(logName))); !strings.Contains(log, "the staging folder is back") {
		t.Errorf("the log does not say the folder is back:\n%s", log)
	}
}

// TestStagingFolderMovedNotRemade: a close that stages a block while the
// staging folder is moved away (by mistake, or its disk not mounted)
// must not make an empty one in its place while blocks wait for upload
// in the old one: the uploader would then find the folder there and each
// queued block's file missing, and mark them all lost, and the folder
// could not be moved back over the new one. The close fails and says
// what to do; once the folder is back, it succeeds and everything
// uploads.
func TestStagingFolderMovedNotRemade(t *testing.T) { bubble(t, testStagingFolderMovedNotRemade) }

func testStagingFolderMovedNotRemade(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		// Nothing ships until WaitDurable asks for it; then a pass an hour.
		o.IdleFlush, o.SegmentSize = time.Hour, 64<<20
	})
	inos, stage := stageTwoMoveAway(t, e, 20)
	c := must[Attr](t)(e.j.Mknod(bg, RootIno, "c", 0o644, 0, 0, 0))
	cdata := make([]byte, 2<<16)
	fillRand(30, cdata)
	must[int](t)(e.j.WriteAt(bg, c.Ino, cdata, 0))
	err := e.j.Fsync(bg, c.Ino)
	if err == nil || !strings.Contains(err.Error(), "staging folder") {
		t.Errorf("fsync with the staging folder moved away while blocks wait in it: %v, want an error that names the folder", err)
	}
	durable := make(chan error, 1)
	go func() { durable <- e.j.WaitDurable(bg) }()
	time.Sleep(3 * time.Hour) // three passes of the uploader
	synctest.Wait()
	for _, ino := range inos {
		if s := must[FileStatus](t)(e.j.Status(bg, ino)); s.State == StateLost || s.LostBlocks != 0 {
			t.Errorf("inode %d after a close with the staging folder away is %+v, want nothing lost", ino, s)
		}
	}
	if err := os.Rename(stage+".away", stage); err != nil {
		t.Fatalf("move the staging folder back: %v", err)
	}
	if err := e.j.Fsync(bg, c.Ino); err != nil {
		t.Fatalf("fsync once the staging folder is back: %v", err)
	}
	select {
	case <-durable: // it may have failed on c's close, which failed
	default:
	}
	go func() { durable <- e.j.WaitDurable(bg) }()
	durableOnceBack(t, e, durable)
	got := make([]byte, len(cdata))
	must[int](t)(e.j.ReadAt(bg, c.Ino, got, 0))
	if !bytes.Equal(got, cdata) {
		t.Fatal("c read back differs from what was written")
	}
}
