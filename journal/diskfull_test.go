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
// that MakeRoom deletes, as the cache would its blocks.
func TestFullDiskMakesRoom(t *testing.T) {
	small := mountTmpfs(t, "16m")
	ballast := filepath.Join(small, "cache-block")
	var asked atomic.Int64
	e := newEnv(t, func(o *Options) {
		o.Dir = filepath.Join(small, "journal")
		o.MakeRoom = func(need int64) int64 {
			asked.Add(need)
			fi, err := os.Stat(ballast)
			if err != nil || os.Remove(ballast) != nil {
				return 0
			}
			return fi.Size()
		}
	})
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
	got := make([]byte, len(want))
	if n, err := e.j.ReadAt(bg, f.Ino, got, 0); err != nil || n != len(want) || !bytes.Equal(got, want) {
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
