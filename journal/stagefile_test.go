package journal

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// TestWriteDirect writes sealed buffers of lengths around the alignment
// with O_DIRECT and reads back exactly their bytes: the padding is cut
// off and never read.
func TestWriteDirect(t *testing.T) {
	dir := t.TempDir()
	var pb []byte
	for _, n := range []int{1, directAlign - 1, directAlign, directAlign + 1, 100_003} {
		b := sealBuf(&pb, n)
		for i := range n {
			b = append(b, byte(i*7+n))
		}
		if !canWriteDirect(b) {
			t.Fatalf("%d bytes: sealBuf's buffer cannot be written with O_DIRECT (cap %d)", n, cap(b))
		}
		b[:cap(b)][n:cap(b)][0] = 0xff // stale padding must not reach the file
		name := filepath.Join(dir, "f")
		_, err := writeDirect(name, b)
		if errors.Is(err, errNoDirect) {
			t.Skipf("the file system of %s refuses O_DIRECT", dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%d bytes written, read back %d, equal prefix %v", n, len(got), bytes.HasPrefix(got, b))
		}
		if _, err := writeDirect(name, b); err == nil || errors.Is(err, errNoDirect) {
			t.Fatalf("writeDirect over an existing file: %v, want an error (O_EXCL)", err)
		}
		os.Remove(name)
	}
	if canWriteDirect(pb[1:2]) {
		t.Fatal("an unaligned slice passed canWriteDirect")
	}
}

// TestWriteTempPaths stages through both paths: O_DIRECT (an aligned seal
// buffer) and the page cache (unaligned bytes, or a journal that found its
// staging directory refuses O_DIRECT), each file holding exactly the bytes.
func TestWriteTempPaths(t *testing.T) {
	e := newEnv(t, nil)
	var pb []byte
	aligned := append(sealBuf(&pb, 5000), bytes.Repeat([]byte("sealed"), 900)...)
	unaligned := append([]byte(nil), aligned[1:]...)
	for _, tc := range []struct {
		name     string
		sealed   []byte
		buffered bool
	}{
		{"direct", aligned, false},
		{"unaligned", unaligned, false},
		{"buffered", aligned, true},
	} {
		e.j.bufferedStage.Store(tc.buffered)
		name, err := e.j.fl.writeTemp(remote.BlockID{1, byte(len(tc.name))}, tc.sealed)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.sealed) {
			t.Fatalf("%s: staged %d bytes, read back %d", tc.name, len(tc.sealed), len(got))
		}
		os.Remove(name)
	}
}

// TestStageDirect: write-behind stages a new block under its own name
// before its commit, which takes the file as it lies (no rename); a
// commit whose file another flush of the same block replaced fails
// instead of recording a block without its bytes; and dropOwnStaged
// removes such a file only while no staged block row refers to it.
func TestStageDirect(t *testing.T) {
	e := newEnv(t, nil)
	r := rand.New(rand.NewPCG(3, 4))
	newCut := func() (cut, []byte) {
		t.Helper()
		data := make([]byte, 60<<10) // sealed, more than inlineMax: a file
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		c, err := e.j.fl.cutPlain(bg, 0, bytes.Clone(data), true, false)
		if err != nil {
			t.Fatal(err)
		}
		if e.j.bufferedStage.Load() {
			t.Skip("the staging directory refuses O_DIRECT: no direct staging")
		}
		if c.staged == 0 || c.tmp != "" {
			t.Fatalf("not staged under its own name: staged %d, tmp %q", c.staged, c.tmp)
		}
		return c, data
	}
	commit := func(c *cut) (*qitem, bool, error) {
		var it *qitem
		var renamed bool
		e.j.wmu.Lock()
		defer e.j.wmu.Unlock()
		err := e.j.c.txLocked(bg, func(tx *sql.Tx) error {
			var fr freed
			var err error
			it, renamed, err = e.j.fl.incRef(bg, tx, c, 1, &fr)
			return err
		})
		return it, renamed, err
	}
	rows := func(id remote.BlockID) int {
		var k int
		if err := e.j.db.QueryRow(`SELECT count(*) FROM blocks WHERE id = ?`, id[:]).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}

	// Taken as it lies.
	c, data := newCut()
	id, ino := c.id, c.staged
	it, renamed, err := commit(&c)
	if err != nil || it == nil || renamed || c.staged != 0 {
		t.Fatalf("commit of a directly staged block: item %v, renamed %v, staged %d, err %v", it, renamed, c.staged, err)
	}
	sealed, err := os.ReadFile(e.j.c.stagePath(id))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.opts.Sealer.Open(nil, id, sealed); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the staged file does not open to the block: %v", err)
	}
	// A row refers to it now: dropOwnStaged leaves it.
	c.staged = ino
	e.j.fl.dropOwnStaged(&c)
	if _, err := os.Stat(e.j.c.stagePath(id)); err != nil {
		t.Fatalf("dropOwnStaged removed a staged block's file: %v", err)
	}

	// Replaced by another flush's file, which was then dropped: the
	// commit fails and records nothing.
	c, _ = newCut()
	other := e.j.c.stagePath(c.id) + ".other.tmp"
	if err := os.WriteFile(other, []byte("another flush"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.j.wmu.Lock()
	err = os.Rename(other, e.j.c.stagePath(c.id))
	if err == nil {
		err = os.Remove(e.j.c.stagePath(c.id))
	}
	e.j.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := commit(&c); err == nil {
		t.Fatal("a commit took a staging file that is gone")
	}
	if k := rows(c.id); k != 0 {
		t.Fatalf("%d rows for a block whose staging file is gone", k)
	}

	// Not committed: dropOwnStaged removes it.
	c, _ = newCut()
	e.j.fl.dropOwnStaged(&c)
	if _, err := os.Stat(e.j.c.stagePath(c.id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an uncommitted directly staged file stayed: %v", err)
	}
}

// TestStagingFolderRemade: a staging folder removed while the drive runs
// (by hand, or by a cleaner of old files) is made again by the next close
// that stages a block when no block waits in it for upload, which then
// succeeds, and the log says so; before, every such close failed with a bare "no
// such file or directory" until a restart.
func TestStagingFolderRemade(t *testing.T) {
	logName := filepath.Join(t.TempDir(), "log")
	logf := must[*os.File](t)(os.Create(logName)) // its writes are safe for the journal's goroutines
	t.Cleanup(func() { logf.Close() })
	e := newEnv(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(logf, nil)) })
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "big", 0o644, 0, 0, 0))
	data := make([]byte, 64<<10) // incompressible, over inlineMax of the test's blocks: staged in a file
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
	if err := os.RemoveAll(e.j.stage); err != nil {
		t.Fatal(err)
	}
	if err := e.j.Fsync(bg, a.Ino); err != nil {
		t.Fatalf("fsync with the staging folder gone: %v", err)
	}
	if _, err := os.Stat(e.j.stage); err != nil {
		t.Fatalf("staging folder after the fsync: %v", err)
	}
	if log := string(must[[]byte](t)(os.ReadFile(logName))); !strings.Contains(log, "staging folder was gone") || !strings.Contains(log, "made again") {
		t.Errorf("log does not say the staging folder was made again and what to run:\n%s", log)
	}
	e.reopen()
	got := make([]byte, len(data))
	must[int](t)(e.j.ReadAt(bg, a.Ino, got, 0))
	if !bytes.Equal(got, data) {
		t.Fatal("the file read back after a reopen differs from what was written")
	}
}

// TestStagingFolderRemadeLoggedOnce: closes that race past a removed
// staging folder all go on, and the log says once that it was made
// again, not once per close that found it gone. Before, every close that
// looked before one of them had made it logged the warning too, and a
// close that looked just after failed, saying blocks had their only copy
// in a folder that was gone.
func TestStagingFolderRemadeLoggedOnce(t *testing.T) {
	const racers = 8
	rounds := 20 // each finds the race most times, not every time
	if testing.Short() {
		rounds = 8
	}
	logName := filepath.Join(t.TempDir(), "log")
	logf := must[*os.File](t)(os.Create(logName)) // its writes are safe for the journal's goroutines
	t.Cleanup(func() { logf.Close() })
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range rounds {
		e := newEnv(t, func(o *Options) {
			o.Logger = slog.New(slog.NewTextHandler(logf, nil))
			o.IdleFlush = time.Hour // only the racing fsyncs flush
		})
		var inos []Ino
		for i := range racers {
			a := must[Attr](t)(e.j.Mknod(bg, RootIno, fmt.Sprint("big", i), 0o644, 0, 0, 0))
			data := make([]byte, 64<<10) // incompressible, over inlineMax of the test's blocks: staged in a file
			for k := range data {
				data[k] = byte(rng.Uint32())
			}
			must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
			inos = append(inos, a.Ino)
		}
		if err := os.RemoveAll(e.j.stage); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, ino := range inos {
			wg.Go(func() {
				<-start
				if err := e.j.Fsync(bg, ino); err != nil {
					t.Errorf("round %d: fsync with the staging folder gone: %v", round, err)
				}
			})
		}
		close(start)
		wg.Wait()
		log := string(must[[]byte](t)(os.ReadFile(logName)))
		if n := strings.Count(log, "staging folder was gone"); n != round+1 {
			t.Fatalf("after %d rounds of %d closes racing past a removed staging folder, the log says %d times that it was made again; want once a round:\n%s",
				round+1, racers, n, log)
		}
	}
}

// TestStagingFolderGoneErr: with the staging folder gone while blocks
// wait in it for upload, an fsync that stages a block, a partial write
// into a staged block and a read of it fail with an error that names the
// folder and says what to do, and still matches fs.ErrNotExist but
// carries no errno (fs answers EIO and logs it, not a silent ENOENT for
// a file that exists). Before, the write and the read said "staged block
// ...: file does not exist", naming no folder, and the fsync's error did
// not match fs.ErrNotExist. A staging folder that is a link to nothing
// (its disk not mounted) cannot be made again: the close's write said a
// bare "no such file or directory" (ENOENT), and the log that the folder
// was made again.
func TestStagingFolderGoneErr(t *testing.T) {
	check := func(t *testing.T, what string, err error, stage string) {
		t.Helper()
		var en syscall.Errno
		switch {
		case err == nil:
			t.Fatalf("%s with the staging folder gone: no error", what)
		case !strings.Contains(err.Error(), "staging folder "+stage+" is gone") || !strings.Contains(err.Error(), "put ") ||
			!strings.Contains(err.Error(), "--drop-missing"):
			t.Errorf("%s: %v; want the folder named and what to do", what, err)
		case !errors.Is(err, fs.ErrNotExist):
			t.Errorf("%s: %v does not match fs.ErrNotExist", what, err)
		case errors.As(err, &en):
			t.Errorf("%s: %v carries errno %v, which fs would answer as it is, unlogged", what, err, en)
		}
	}
	t.Run("blocks waiting", func(t *testing.T) {
		e := newEnv(t, nil)
		e.g.down.Store(true) // a's block stays staged
		a := must[Attr](t)(e.j.Mknod(bg, RootIno, "a", 0o644, 0, 0, 0))
		data := make([]byte, 64<<10) // over inlineMax: a staging file
		fillRand(1, data)
		must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
		if err := e.j.Fsync(bg, a.Ino); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(e.j.stage); err != nil {
			t.Fatal(err)
		}
		b := must[Attr](t)(e.j.Mknod(bg, RootIno, "b", 0o644, 0, 0, 0))
		fillRand(2, data)
		must[int](t)(e.j.WriteAt(bg, b.Ino, data, 0))
		check(t, "fsync", e.j.Fsync(bg, b.Ino), e.j.stage)
		_, err := e.j.WriteAt(bg, a.Ino, []byte("an edit"), 100) // reads the rest of the block first
		check(t, "partial write", err, e.j.stage)
		_, err = e.j.ReadAt(bg, a.Ino, make([]byte, 10), 0)
		check(t, "read", err, e.j.stage)
		if err := os.Mkdir(e.j.stage, 0o700); err != nil { // empty: a reopen would ask for --drop-missing
			t.Fatal(err)
		}
	})
	t.Run("link to nothing", func(t *testing.T) {
		var logged logRecords
		e := newEnv(t, func(o *Options) { o.Logger = slog.New(&logged) })
		if err := os.Remove(e.j.stage); err != nil { // empty: nothing staged yet
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(t.TempDir(), "unmounted", "staging"), e.j.stage); err != nil {
			t.Fatal(err)
		}
		a := must[Attr](t)(e.j.Mknod(bg, RootIno, "a", 0o644, 0, 0, 0))
		data := make([]byte, 64<<10)
		fillRand(3, data)
		must[int](t)(e.j.WriteAt(bg, a.Ino, data, 0))
		check(t, "fsync", e.j.Fsync(bg, a.Ino), e.j.stage)
		if made := logged.find("journal: the staging folder was gone"); len(made) != 0 {
			t.Errorf("logged %q for a link to nothing, which was not made again", made[0].Message)
		}
		if err := os.Remove(e.j.stage); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(e.j.stage, 0o700); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sync of the folder", func(t *testing.T) {
		// The apply renames staging files in, then syncs the folder: gone
		// in between, the sync's error names it too.
		e := newEnv(t, nil)
		if err := os.RemoveAll(e.j.stage); err != nil {
			t.Fatal(err)
		}
		check(t, "the staging folder's sync", e.j.fl.syncStagingIf(true), e.j.stage)
		if err := os.Mkdir(e.j.stage, 0o700); err != nil {
			t.Fatal(err)
		}
	})
}
