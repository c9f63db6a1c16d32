package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// TestCheckStaged: while the uploader retries its first segment (the grid
// is down), two files are staged: one in a staging file, one in a row of
// the database. A byte of each is flipped. CheckStaged finds both, names
// their files and marks nothing lost; with repair it marks both lost (as
// the uploader does). A byte of the first file's row is flipped too: the
// uploader holds a good copy of it, read before, so it is reported in
// flight and not marked lost, and its upload stores it.
func TestCheckStaged(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RetryMax = time.Hour })
		e.g.down.Store(true)
		rng := rand.New(rand.NewPCG(7, 7))
		write := func(name string, n int) Ino {
			f := must[Attr](t)(e.j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			must[int](t)(e.j.WriteAt(bg, f.Ino, b, 0))
			if err := e.j.Fsync(bg, f.Ino); err != nil {
				t.Fatal(err)
			}
			return f.Ino
		}
		first := write("first", 100)
		time.Sleep(time.Minute) // the first segment is packed and fails
		synctest.Wait()
		if e.g.fails.Load() == 0 {
			t.Fatal("no upload failed: the test proves nothing")
		}
		// A staging file, a row (named in Latin-1: "\xe4" is not UTF-8).
		big, small := write("big", int(e.j.bs)), write("sm\xe4ll", 1000)
		synctest.Wait()

		files, _ := filepath.Glob(filepath.Join(e.j.stage, "*"))
		if len(files) != 1 {
			t.Fatalf("%d staging files, want big's: %v", len(files), files)
		}
		b := must[[]byte](t)(os.ReadFile(files[0]))
		b[len(b)/2] ^= 1
		if err := os.WriteFile(files[0], b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ino := range []Ino{small, first} {
			var id, sealed []byte
			if err := e.j.db.QueryRow(`SELECT s.id, s.sealed FROM staged s JOIN blockmap m ON m.block = s.id WHERE m.ino = ?`, ino).Scan(&id, &sealed); err != nil {
				t.Fatal(err)
			}
			sealed[len(sealed)-3] ^= 1
			if _, err := e.j.db.Exec(`UPDATE staged SET sealed = ? WHERE id = ?`, sealed, id); err != nil {
				t.Fatal(err)
			}
		}

		var done, total int
		rep := must[*StagedCheck](t)(e.j.CheckStaged(bg, "", false, func(d, n int) { done, total = d, n }))
		if rep.Blocks != 3 || len(rep.Damaged) != 3 || done != 3 || total != 3 {
			t.Fatalf("check: %d blocks, %d damaged (%+v), progress %d of %d; want 3, 3, 3 of 3", rep.Blocks, len(rep.Damaged), rep.Damaged, done, total)
		}
		var named, hrefs []string
		for _, d := range rep.Damaged {
			named = append(named, fmt.Sprint(d.Paths, d.InFlight))
			hrefs = append(hrefs, fmt.Sprint(d.PathsHref))
			if d.Lost {
				t.Errorf("check without repair marked %s lost", d.Block)
			}
		}
		if got := strings.Join(named, " "); got != "[/first] true [/big] false [/sm\xe4ll] false" {
			t.Errorf("check named %q, want /first (in flight), /big, /sm\\xe4ll", got)
		}
		// The name that is not UTF-8 is named by its bytes too, for JSON.
		if got := strings.Join(hrefs, " "); got != "[] [] [/sm%E4ll]" {
			t.Errorf("check's paths_href: %q, want only /sm%%E4ll's", got)
		}
		for _, ino := range []Ino{big, small} {
			if st := must[FileStatus](t)(e.j.Status(bg, ino)); st.State == StateLost {
				t.Errorf("check without repair: file %d lost", ino)
			}
		}

		rep = must[*StagedCheck](t)(e.j.CheckStaged(bg, "", true, nil))
		if len(rep.Damaged) != 3 || rep.Damaged[0].Lost || !rep.Damaged[1].Lost || !rep.Damaged[2].Lost {
			t.Fatalf("check with repair: %+v", rep.Damaged)
		}
		for _, ino := range []Ino{big, small} {
			if st := must[FileStatus](t)(e.j.Status(bg, ino)); st.State != StateLost || st.LostBlocks != 1 {
				t.Errorf("after check with repair: file %d %+v, want lost", ino, st)
			}
		}
		if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
			t.Errorf("the damaged staging file is still there: %v", err)
		}
		rep = must[*StagedCheck](t)(e.j.CheckStaged(bg, "", false, nil))
		if rep.Blocks != 1 || len(rep.Damaged) != 1 || !rep.Damaged[0].InFlight {
			t.Errorf("check after repair: %d blocks, damaged %+v; want the first file's, in flight", rep.Blocks, rep.Damaged)
		}
		// The good copy in flight is stored: the first file is whole.
		e.g.down.Store(false)
		e.j.RetryNow()
		synctest.Wait()
		if st := must[FileStatus](t)(e.j.Status(bg, first)); st.State == StateLost || st.PendingBlocks != 0 {
			t.Errorf("the first file after its upload: %+v", st)
		}
	})
}

// heldEnv is a journal whose uploader holds its first segment (the grid
// is down, retries an hour apart): blocks staged after it stay staged
// and unread. It returns a function that reads the journal's log.
func heldEnv(t *testing.T) (*env, func() string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "log")
	f := must[*os.File](t)(os.Create(name)) // its writes are safe for the journal's goroutines
	t.Cleanup(func() { f.Close() })
	e := newEnv(t, func(o *Options) {
		o.RetryMax = time.Hour
		o.Logger = slog.New(slog.NewTextHandler(f, nil))
	})
	e.g.down.Store(true)
	writeRand(t, e, "first", 100, 1)
	time.Sleep(time.Minute) // the first segment is packed and fails
	synctest.Wait()
	if e.g.fails.Load() == 0 {
		t.Fatal("no upload failed: the test proves nothing")
	}
	return e, func() string { return string(must[[]byte](t)(os.ReadFile(name))) }
}

// writeRand writes n random bytes (from seed) to a new file name in the
// root and fsyncs it.
func writeRand(t *testing.T, e *env, name string, n int, seed uint64) (Ino, []byte) {
	t.Helper()
	return writeRandIn(t, e, RootIno, name, n, seed)
}

// writeRandIn is writeRand in folder dir.
func writeRandIn(t *testing.T, e *env, dir Ino, name string, n int, seed uint64) (Ino, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	f := must[Attr](t)(e.j.Mknod(bg, dir, name, 0o644, 0, 0, 0))
	must[int](t)(e.j.WriteAt(bg, f.Ino, b, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	return f.Ino, b
}

// flipStaged flips a byte in the middle of the staging file of block 0
// of ino and returns the file's path.
func flipStaged(t *testing.T, e *env, ino Ino) string {
	t.Helper()
	ms := must[[]mapped](t)(e.j.fd.mapRange(bg, ino, 0, 0))
	if len(ms) != 1 || ms[0].state != blockStaged {
		t.Fatalf("block 0 of inode %d: %+v, want one staged", ino, ms)
	}
	name := filepath.Join(e.j.stage, ms[0].id.String())
	b := must[[]byte](t)(os.ReadFile(name))
	b[len(b)/2] ^= 1
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestLoseDamagedNotDurable: a damaged staged block is marked lost, and
// the WAL fsync that would make that durable fails (a trigger stands for
// the disk refusing it). The block is lost all the same: it leaves the
// queue, the file reads as lost, and the log says so, not that the block
// "stays queued"; its damaged staging file stays until the lost state is
// durable, and the next Open removes it.
func TestLoseDamagedNotDurable(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e, log := heldEnv(t)
		big, _ := writeRand(t, e, "big", int(e.j.bs), 2)
		synctest.Wait()
		name := flipStaged(t, e, big)
		if _, err := e.j.db.Exec(`CREATE TRIGGER fail_sync BEFORE INSERT ON meta WHEN NEW.key = 'sync'
			BEGIN SELECT RAISE(ABORT, 'test: the disk refuses the fsync'); END`); err != nil {
			t.Fatal(err)
		}
		rep := must[*StagedCheck](t)(e.j.CheckStaged(bg, "", true, nil))
		if len(rep.Damaged) != 1 || !rep.Damaged[0].Lost {
			t.Fatalf("check with repair: %+v, want big's block marked lost", rep.Damaged)
		}
		if st := must[FileStatus](t)(e.j.Status(bg, big)); st.State != StateLost || st.LostBlocks != 1 || st.PendingBlocks != 0 {
			t.Errorf("the file after its block was marked lost: %+v", st)
		}
		e.j.qmu.Lock()
		queued := len(e.j.queue)
		e.j.qmu.Unlock()
		if queued != 1 { // the first file's block, in flight
			t.Errorf("%d blocks queued, want 1: the lost one left in the queue", queued)
		}
		s := log()
		if strings.Contains(s, "stays queued") || !strings.Contains(s, "marked lost, but the journal could not make that durable") ||
			!strings.Contains(s, "the disk refuses the fsync") {
			t.Errorf("the log does not say what happened:\n%s", s)
		}
		if last := e.j.Stats().LastError; !strings.Contains(last, "is lost") || !strings.Contains(last, "could not make that durable") {
			t.Errorf("the uploader's last error: %q", last)
		}
		if _, err := os.Stat(name); err != nil {
			t.Errorf("the damaged staging file went before the lost state was durable: %v", err)
		}

		if _, err := e.j.db.Exec(`DROP TRIGGER fail_sync`); err != nil {
			t.Fatal(err)
		}
		e.g.down.Store(false)
		e.j.RetryNow()
		synctest.Wait()
		e.reopen()
		if st := must[FileStatus](t)(e.j.Status(bg, big)); st.State != StateLost {
			t.Errorf("the file after a reopen: %+v, want lost", st)
		}
		if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the damaged staging file after a reopen: %v, want removed", err)
		}
	})
}

// TestLoseDamagedNamesItsFiles: two staged blocks of two files are found
// damaged; the log line of each names the files that use that block, not
// every file with a lost block in the drive, and says how its check
// failed.
func TestLoseDamagedNamesItsFiles(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e, log := heldEnv(t)
		a, _ := writeRand(t, e, "a", int(e.j.bs), 3)
		b, _ := writeRand(t, e, "b", int(e.j.bs), 4)
		synctest.Wait()
		flipStaged(t, e, a)
		flipStaged(t, e, b)
		rep := must[*StagedCheck](t)(e.j.CheckStaged(bg, "", true, nil))
		if len(rep.Damaged) != 2 || !rep.Damaged[0].Lost || !rep.Damaged[1].Lost {
			t.Fatalf("check with repair: %+v, want both blocks marked lost", rep.Damaged)
		}
		var lines []string
		for l := range strings.Lines(log()) {
			if strings.Contains(l, "is now lost") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 2 || !strings.Contains(lines[0], `files=1 some=/a `) || !strings.Contains(lines[1], `files=1 some=/b `) {
			t.Errorf("the log lines of the lost blocks do not name their own files:\n%s", strings.Join(lines, ""))
		}
		for _, l := range lines {
			if !strings.Contains(l, "authentication failed") {
				t.Errorf("the log line of a lost block does not say how its check failed:\n%s", l)
			}
		}
		if last := e.j.Stats().LastError; strings.Contains(last, "%!") || !strings.Contains(last, "authentication failed") {
			t.Errorf("the uploader's last error: %q", last)
		}
	})
}

// TestDedupOntoDamagedStaged: a staged block's copy on the local disk is
// damaged (a flipped byte in its staging file or its database row, or
// the file gone) before the uploader reads it, and a file is closed with
// the same bytes: the close finds the copy damaged, seals the block again
// from its own bytes and takes the row over, instead of adding a
// reference to a copy that the uploader would then mark lost. Both files
// upload whole. The same holds for a file whose unchanged block is
// written over with the same bytes; and a close whose commit fails
// leaves the new copy in place of the damaged one.
func TestDedupOntoDamagedStaged(t *testing.T) {
	for _, kind := range []string{"file", "row", "gone", "in place", "commit fails"} {
		t.Run(kind, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e, log := heldEnv(t)
				n := int(e.j.bs) // sealed to a staging file
				if kind == "row" {
					n = 1000 // sealed to a row of table staged
				}
				a, d := writeRand(t, e, "a", n, 5)
				synctest.Wait()
				ms := must[[]mapped](t)(e.j.fd.mapRange(bg, a, 0, 0))
				id := ms[0].id
				switch kind {
				case "row":
					var sealed []byte
					if err := e.j.db.QueryRow(`SELECT sealed FROM staged WHERE id = ?`, id[:]).Scan(&sealed); err != nil {
						t.Fatal(err)
					}
					sealed[len(sealed)/2] ^= 1
					if _, err := e.j.db.Exec(`UPDATE staged SET sealed = ? WHERE id = ?`, sealed, id[:]); err != nil {
						t.Fatal(err)
					}
				case "gone":
					if err := os.Remove(filepath.Join(e.j.stage, id.String())); err != nil {
						t.Fatal(err)
					}
				default:
					flipStaged(t, e, a)
				}
				// The close of identical bytes: another file's, or a's own.
				b := a
				if kind != "in place" {
					b = must[Attr](t)(e.j.Mknod(bg, RootIno, "b", 0o644, 0, 0, 0)).Ino
				}
				e.j.OpenFile(b)
				must[int](t)(e.j.WriteAt(bg, b, d, 0))
				if kind == "commit fails" {
					// The new copy replaced the damaged one before the
					// commit: it stays, so a crash now finds a good copy.
					if _, err := e.j.db.Exec(`CREATE TRIGGER fail_map BEFORE INSERT ON blockmap
						BEGIN SELECT RAISE(ABORT, 'test: the commit fails'); END`); err != nil {
						t.Fatal(err)
					}
					if err := e.j.Flush(bg, b); err == nil || !strings.Contains(err.Error(), "the commit fails") {
						t.Fatalf("flush with a failing commit: %v", err)
					}
					if rep := must[*StagedCheck](t)(e.j.CheckStaged(bg, "", false, nil)); len(rep.Damaged) != 0 {
						t.Errorf("after a failed commit, the staged copy is damaged: %+v", rep.Damaged)
					}
					if _, err := e.j.db.Exec(`DROP TRIGGER fail_map`); err != nil {
						t.Fatal(err)
					}
				}
				if err := e.j.Flush(bg, b); err != nil {
					t.Fatal(err)
				}
				e.j.ReleaseFile(b)
				if !strings.Contains(log(), "the same bytes, written again, replace it") {
					t.Errorf("the close did not say it found the staged copy damaged:\n%s", log())
				}
				checkStagedB(t, e.j)
				rep := must[*StagedCheck](t)(e.j.CheckStaged(bg, "", false, nil))
				if len(rep.Damaged) != 0 {
					t.Errorf("after the close, the staged copy is still damaged: %+v", rep.Damaged)
				}

				e.g.down.Store(false)
				e.j.RetryNow()
				synctest.Wait()
				if err := e.j.WaitDurable(bg); err != nil {
					t.Fatal(err)
				}
				e.reopen() // checks every refcount, and one copy per staged block
				for _, ino := range []Ino{a, b} {
					if st := must[FileStatus](t)(e.j.Status(bg, ino)); st.State == StateLost || st.PendingBlocks != 0 {
						t.Errorf("file %d after the upload: %+v", ino, st)
					}
					if got := readAll(t, e.j, ino); !bytes.Equal(got, d) {
						t.Errorf("file %d does not read back", ino)
					}
				}
			})
		})
	}
}

// TestCheckStagedPathAndMissing: the staged check of a path checks the
// blocks of the files at or under it only; a staged block whose staging
// file is gone is reported as damaged, the check goes on with the rest,
// and with repair it is marked lost, as a mount with --drop-missing does;
// one that cannot be read is reported and left staged.
func TestCheckStagedPathAndMissing(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e, _ := heldEnv(t)
		d := must[Attr](t)(e.j.Mkdir(bg, RootIno, "d", 0o755, 0, 0))
		x, _ := writeRandIn(t, e, d.Ino, "x", int(e.j.bs), 6)
		y, _ := writeRand(t, e, "y", int(e.j.bs), 7)
		writeRand(t, e, "z", 1000, 8)
		synctest.Wait()
		ms := must[[]mapped](t)(e.j.fd.mapRange(bg, x, 0, 0))
		if err := os.Remove(filepath.Join(e.j.stage, ms[0].id.String())); err != nil {
			t.Fatal(err)
		}
		flipStaged(t, e, y)

		named := func(rep *StagedCheck) string {
			var s []string
			for _, d := range rep.Damaged {
				s = append(s, fmt.Sprint(d.Paths, d.Lost, d.Unreadable))
			}
			return fmt.Sprint(rep.Blocks, s)
		}
		for _, c := range []struct{ path, want string }{
			{"", "4 [[/d/x] false false [/y] false false]"},
			{"d", "1 [[/d/x] false false]"},
			{"d/x", "1 [[/d/x] false false]"},
			{"y", "1 [[/y] false false]"},
			{"z", "1 []"},
		} {
			rep, err := e.j.CheckStaged(bg, c.path, false, nil)
			if err != nil {
				t.Fatalf("check of %q: %v", c.path, err)
			}
			if got := named(rep); got != c.want {
				t.Errorf("check of %q: %s, want %s", c.path, got, c.want)
			}
		}
		rep := must[*StagedCheck](t)(e.j.CheckStaged(bg, "", false, nil))
		if msg := rep.Damaged[0].Error; !strings.Contains(msg, "missing") {
			t.Errorf("the missing block's error: %q", msg)
		}

		rep = must[*StagedCheck](t)(e.j.CheckStaged(bg, "d", true, nil))
		if got := named(rep); got != "1 [[/d/x] true false]" {
			t.Errorf("check --repair of d: %s", got)
		}
		if st := must[FileStatus](t)(e.j.Status(bg, x)); st.State != StateLost {
			t.Errorf("d/x after check --repair of d: %+v, want lost", st)
		}
		if st := must[FileStatus](t)(e.j.Status(bg, y)); st.State == StateLost {
			t.Errorf("y after check --repair of d: %+v, want not lost", st)
		}

		// A staging file that cannot be read (a symlink loop stands for a
		// failing disk): reported, the check goes on, and it is not
		// marked lost: the uploader tries it again.
		w, _ := writeRand(t, e, "w", int(e.j.bs), 9)
		synctest.Wait()
		ms = must[[]mapped](t)(e.j.fd.mapRange(bg, w, 0, 0))
		name := filepath.Join(e.j.stage, ms[0].id.String())
		if err := os.Rename(name, name+".aside"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, name); err != nil {
			t.Fatal(err)
		}
		rep = must[*StagedCheck](t)(e.j.CheckStaged(bg, "", true, nil))
		if got := named(rep); got != "4 [[/y] true false [/w] false true]" {
			t.Errorf("check --repair with an unreadable staging file: %s", got)
		}
		if st := must[FileStatus](t)(e.j.Status(bg, w)); st.State == StateLost {
			t.Errorf("w after check --repair: %+v, want not lost", st)
		}
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name+".aside", name); err != nil {
			t.Fatal(err)
		}
		e.reopen() // no missing staging file stops the mount now
		if st := must[FileStatus](t)(e.j.Status(bg, x)); st.State != StateLost {
			t.Errorf("d/x after a reopen: %+v, want lost", st)
		}
	})
}

// TestCheckStagedDuringPack: the uploader has read and checked a's block
// and is still packing the segment (it waits on b's staging file, a FIFO
// here). a's staging file is damaged now: check --repair reports a in
// flight and does not mark it lost, and a's upload stores the good copy.
func TestCheckStagedDuringPack(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RetryMax = time.Hour; o.IdleFlush = time.Hour })
	e.g.down.Store(true)
	a, d := writeRand(t, e, "a", int(e.j.bs), 10)
	b, _ := writeRand(t, e, "b", int(e.j.bs), 11)
	ms := must[[]mapped](t)(e.j.fd.mapRange(bg, b, 0, 0))
	fifo := filepath.Join(e.j.stage, ms[0].id.String())
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	release := func() { // pack's open of the FIFO returns; it finds b empty
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	}
	t.Cleanup(release) // before the journal's Close
	e.j.qmu.Lock()
	e.j.force = true // pack now
	e.j.qmu.Unlock()
	e.j.up.poke()
	ida := must[[]mapped](t)(e.j.fd.mapRange(bg, a, 0, 0))[0].id
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		e.j.qmu.Lock()
		_, ok := e.j.inflight[ida]
		e.j.qmu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's block is not in flight while the uploader packs the rest of its segment")
		}
	}
	flipStaged(t, e, a)
	rep := must[*StagedCheck](t)(e.j.CheckStaged(bg, "a", true, nil))
	if len(rep.Damaged) != 1 || !rep.Damaged[0].InFlight || rep.Damaged[0].Lost {
		t.Fatalf("check --repair during the pack: %+v, want a in flight, not lost", rep.Damaged)
	}
	release()
	e.g.down.Store(false)
	e.j.RetryNow()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := e.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if st := must[FileStatus](t)(e.j.Status(bg, a)); st.State == StateLost || st.PendingBlocks != 0 {
		t.Errorf("a after its upload: %+v", st)
	}
	if got := readAll(t, e.j, a); !bytes.Equal(got, d) {
		t.Error("a does not read back")
	}
}
