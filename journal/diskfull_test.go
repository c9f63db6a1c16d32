package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestDiskFullIsErrDiskFull: when the journal's disk has no room for a
// change, sqlite answers SQLITE_FULL ("database or disk is full"), made
// here with max_page_count. The change fails with ErrDiskFull, which fs
// answers as ENOSPC, not EIO: on a full disk rm and ls said
// "Input/output error", as if the drive were damaged. The journal asks
// Options.MakeRoom (the disk cache) for room, so that the next try, and
// the uploader's and the group commit's retries, find it: a drive whose
// cache had filled the disk stayed wedged, every upload's commit failing,
// until someone ran meshdrive cache clear. Nothing is lost: with room
// again the same change succeeds.
func TestDiskFullIsErrDiskFull(t *testing.T) {
	var asked atomic.Int64
	e := newEnv(t, func(o *Options) {
		o.MakeRoom = func(need int64) int64 { asked.Add(need); return 0 }
	})
	var pages int64
	if err := e.j.w.QueryRowContext(bg, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := e.j.w.ExecContext(bg, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 200)
	var err error
	made := 0
	for ; made < 100000; made++ {
		if _, err = e.j.Mkdir(bg, RootIno, fmt.Sprintf("d%06d-%s", made, long), 0o755, 0, 0); err != nil {
			break
		}
	}
	wantErr(t, err, ErrDiskFull)
	if asked.Load() < sqliteRoom {
		t.Errorf("MakeRoom asked for %d bytes after the full disk, want at least %d", asked.Load(), sqliteRoom)
	}
	if _, err := e.j.w.ExecContext(bg, fmt.Sprintf("PRAGMA max_page_count = %d", 1<<30)); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("d%06d-%s", made, long)
	must[Attr](t)(e.j.Mkdir(bg, RootIno, name, 0o755, 0, 0))
	ents := must[[]DirEntry](t)(e.j.ReadDir(bg, RootIno, 0, 1<<20))
	if len(ents) < made+1 {
		t.Fatalf("%d entries after %d mkdirs, want at least %d", len(ents), made+1, made+1)
	}
	e.reopen()
}

// TestFullDiskMakesRoom: a write whose dirty data finds the journal's disk
// full asks Options.MakeRoom for room (the drive's disk cache, which
// shares the disk, evicts clean blocks) and is tried again, rather than
// fail with ENOSPC while the disk holds blocks that are only a cache.
// The disk is a real 16 MiB tmpfs, filled to its last byte by a file
// that MakeRoom deletes, as the cache would its blocks. Nothing else
// commits while it is full: the unlinker's apply of the deferred create
// (UnlinkDelay after it) found the disk full too and had MakeRoom delete
// the file between the write's ENOSPC and its own MakeRoom, which then
// freed nothing, and the write failed (one run in a few of a loaded
// package run).
func TestFullDiskMakesRoom(t *testing.T) {
	e, ballast, asked := smallDiskEnv(t, func(o *Options) { o.UnlinkDelay, o.GroupCommit = time.Hour, time.Hour })
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "doc", 0o644, 0, 0, 0))
	fill(t, ballast)
	want := bytes.Repeat([]byte("not on the grid yet "), 1<<15) // 640 KiB
	if n, err := e.j.WriteAt(bg, f.Ino, want, 0); err != nil || n != len(want) {
		t.Fatalf("write on a full disk with a cache to evict: %d bytes, %v", n, err)
	}
	if asked.Load() == 0 {
		t.Fatal("MakeRoom was never asked")
	}
	if err := e.j.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	readBack(t, e.j, f.Ino, want)
}

// smallDiskEnv opens a journal on a real 16 MiB tmpfs (mod, when set,
// changes its options) whose MakeRoom deletes the file ballast, which
// the test fills the disk with; asked counts the bytes MakeRoom was
// asked for.
func smallDiskEnv(t *testing.T, mod func(*Options)) (e *env, ballast string, asked *atomic.Int64) {
	t.Helper()
	small := mountTmpfs(t, "16m")
	ballast = filepath.Join(small, "cache-block")
	asked = new(atomic.Int64)
	e = newEnv(t, func(o *Options) {
		o.Dir = filepath.Join(small, "journal")
		o.MakeRoom = removeBallast(ballast, asked)
		if mod != nil {
			mod(o)
		}
	})
	return e, ballast, asked
}

// removeBallast is a MakeRoom that deletes the file at path, as the disk
// cache would its blocks, and counts the bytes asked for in asked.
func removeBallast(path string, asked *atomic.Int64) func(need int64) int64 {
	return func(need int64) int64 {
		asked.Add(need)
		fi, err := os.Stat(path)
		if err != nil || os.Remove(path) != nil {
			return 0
		}
		return fi.Size()
	}
}

// readBack checks that ino reads as want.
func readBack(t *testing.T, j *Journal, ino Ino, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if n, err := j.ReadAt(bg, ino, got, 0); err != nil || n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, %v (equal %v)", n, err, bytes.Equal(got, want))
	}
}

// fill writes path until its disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			for len(buf) > 1 { // the last bytes too
				buf = buf[:len(buf)/2]
				f.Write(buf)
			}
			return
		}
	}
}

// mountTmpfs mounts a tmpfs of size on a fresh directory for the rest of
// t (root only; without root it skips, unless CI is set, which fails).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size)
	switch {
	case err == nil:
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	case os.Getenv("CI") != "":
		t.Fatalf("mount a tmpfs: %v", err)
	default:
		t.Skipf("mount a tmpfs (needs root): %v", err)
	}
	return dir
}

// TestFullDiskFillMakesRoom: a write into part of a stored block first
// copies the block's other bytes into the dirty data (fill); on a full
// disk that copy asks Options.MakeRoom for room and is tried again, as
// the write's own bytes are (TestFullDiskMakesRoom). An edit of a few
// bytes in a big file failed with ENOSPC while the disk cache held
// blocks it could give back. The block is 1 MiB, so its copy goes to a
// dirty file on disk (memDirtyMax), on a real 16 MiB tmpfs.
func TestFullDiskFillMakesRoom(t *testing.T) {
	e, ballast, asked := smallDiskEnv(t, func(o *Options) { o.BlockSize = 1 << 20 })
	f := must[Attr](t)(e.j.Mknod(bg, RootIno, "big", 0o644, 0, 0, 0))
	want := make([]byte, 1<<20)
	fillRand(7, want)
	must[int](t)(e.j.WriteAt(bg, f.Ino, want, 0))
	if err := e.j.Fsync(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	// Uploaded, so that no staging file goes once the disk is full.
	if err := e.j.WaitDurable(bg); err != nil {
		t.Fatal(err)
	}
	fill(t, ballast)
	edit := []byte("a few bytes in the middle")
	if n, err := e.j.WriteAt(bg, f.Ino, edit, 500<<10); err != nil || n != len(edit) {
		t.Fatalf("a small edit of a stored block on a full disk with a cache to evict: %d bytes, %v", n, err)
	}
	if asked.Load() == 0 {
		t.Fatal("MakeRoom was never asked")
	}
	copy(want[500<<10:], edit)
	if err := e.j.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	readBack(t, e.j, f.Ino, want)
}
