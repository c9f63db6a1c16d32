package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// asNobody runs a command as uid/gid 65534. The mount must allow other
// users (stackOptions.AllowOther).
func asNobody(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func stat(t *testing.T, path string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return st
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// TestLocksPerDescription: what posixtest's FcntlFlockLocksFile means to
// check. Open-file-description locks conflict between two opens of one
// process; a classic POSIX lock held by another process conflicts too.
func TestLocksPerDescription(t *testing.T) {
	s := newStack(t, stackOptions{})
	fn := filepath.Join(s.mnt, "lock")
	f1, err := os.Create(fn)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	wr := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f1.Fd(), unix.F_OFD_SETLK, &wr); err != nil {
		t.Fatalf("OFD write lock: %v", err)
	}
	f2, err := os.OpenFile(fn, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	rd := unix.Flock_t{Type: unix.F_RDLCK}
	if err := unix.FcntlFlock(f2.Fd(), unix.F_OFD_SETLK, &rd); err != unix.EAGAIN {
		t.Errorf("second OFD lock: got %v, want EAGAIN", err)
	}
	// flock(1) in another process must not get the BSD lock we hold.
	if err := unix.Flock(int(f1.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock: %v", err)
	}
	if out, err := exec.Command("flock", "-n", fn, "true").CombinedOutput(); err == nil {
		t.Errorf("flock -n in another process got a held lock: %s", out)
	}
}

func TestNameTooLong(t *testing.T) {
	s := newStack(t, stackOptions{})
	long := strings.Repeat("n", 256)
	ok := strings.Repeat("o", 255)
	for _, op := range []struct {
		name string
		fn   func(name string) error
	}{
		{"create", func(n string) error { return os.WriteFile(filepath.Join(s.mnt, n), nil, 0o644) }},
		{"mkdir", func(n string) error { return os.Mkdir(filepath.Join(s.mnt, n+"d"[:0]), 0o755) }},
		{"symlink", func(n string) error { return os.Symlink("x", filepath.Join(s.mnt, n+""[:0])) }},
	} {
		if err := op.fn(long); !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("%s 256-byte name: got %v, want ENAMETOOLONG", op.name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.mnt, ok), []byte("x"), 0o644); err != nil {
		t.Fatalf("255-byte name: %v", err)
	}
	if err := os.Link(filepath.Join(s.mnt, ok), filepath.Join(s.mnt, long)); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("link to 256-byte name: got %v", err)
	}
	if err := os.Rename(filepath.Join(s.mnt, ok), filepath.Join(s.mnt, long)); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("rename to 256-byte name: got %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.mnt, long)); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("stat of 256-byte name: got %v", err)
	}
	names, err := os.ReadDir(s.mnt)
	if err != nil || len(names) != 1 || names[0].Name() != ok {
		t.Errorf("readdir: %v %v", names, err)
	}
}

func TestPathMax(t *testing.T) {
	s := newStack(t, stackOptions{})
	// Build a path just under PATH_MAX (4096 with its NUL).
	p := s.mnt
	comp := strings.Repeat("p", 200)
	for len(p)+1+len(comp)+1+20 < unix.PathMax-1 {
		p = filepath.Join(p, comp)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatalf("mkdir -p (%d bytes): %v", len(p), err)
	}
	last := strings.Repeat("f", unix.PathMax-1-len(p)-1)
	fn := filepath.Join(p, last)
	if len(fn) != unix.PathMax-1 {
		t.Fatalf("test bug: path is %d bytes", len(fn))
	}
	writeFile(t, fn, []byte("deep"), 0o644)
	if b, err := os.ReadFile(fn); err != nil || string(b) != "deep" {
		t.Fatalf("read %d-byte path: %q %v", len(fn), b, err)
	}
	if err := os.RemoveAll(filepath.Join(s.mnt, comp)); err != nil {
		t.Fatalf("rm -r: %v", err)
	}
}

func TestStickyDirectory(t *testing.T) {
	s := newStack(t, stackOptions{AllowOther: true})
	dir := filepath.Join(s.mnt, "tmp")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "roots"), []byte("r"), 0o666)
	if out, err := asNobody(t, "rm", "-f", filepath.Join(dir, "roots")); err == nil {
		t.Errorf("nobody removed root's file in a sticky dir: %s", out)
	}
	if out, err := asNobody(t, "mv", filepath.Join(dir, "roots"), filepath.Join(dir, "stolen")); err == nil {
		t.Errorf("nobody renamed root's file in a sticky dir: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "roots")); err != nil {
		t.Errorf("root's file is gone: %v", err)
	}
	if out, err := asNobody(t, "sh", "-c", "echo n > "+filepath.Join(dir, "mine")+" && mv "+filepath.Join(dir, "mine")+" "+filepath.Join(dir, "mine2")+" && rm "+filepath.Join(dir, "mine2")); err != nil {
		t.Errorf("nobody cannot manage its own file in a sticky dir: %v %s", err, out)
	}
	// Without the sticky bit, a world-writable dir lets anyone unlink.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if out, err := asNobody(t, "rm", "-f", filepath.Join(dir, "roots")); err != nil {
		t.Errorf("nobody could not remove a file in a non-sticky 0777 dir: %v %s", err, out)
	}
}

func TestSetIDClearedByNonOwner(t *testing.T) {
	s := newStack(t, stackOptions{AllowOther: true})
	fn := filepath.Join(s.mnt, "suid")
	const setid = syscall.S_ISUID | syscall.S_ISGID
	reset := func() {
		writeFile(t, fn, []byte("data\n"), 0o777)
		if err := syscall.Chmod(fn, 0o6777); err != nil {
			t.Fatal(err)
		}
		if m := stat(t, fn).Mode; m&setid != setid {
			t.Fatalf("chmod 6777 gave %o", m)
		}
	}
	reset()
	// The owner (root, with CAP_FSETID) keeps the bits on write.
	f, err := os.OpenFile(fn, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("root\n"))
	f.Close()
	if m := stat(t, fn).Mode; m&setid != setid {
		t.Errorf("write by root cleared set-ID bits: %o", m)
	}
	if out, err := asNobody(t, "sh", "-c", "echo nobody >> "+fn); err != nil {
		t.Fatalf("append as nobody: %v %s", err, out)
	}
	if m := stat(t, fn).Mode; m&setid != 0 {
		t.Errorf("write by a non-owner left set-ID bits: %o", m)
	}
	if b, _ := os.ReadFile(fn); string(b) != "data\nroot\nnobody\n" {
		t.Errorf("content %q", b)
	}
	reset()
	if out, err := asNobody(t, "truncate", "-s", "2", fn); err != nil {
		t.Fatalf("truncate as nobody: %v %s", err, out)
	}
	if st := stat(t, fn); st.Mode&setid != 0 || st.Size != 2 {
		t.Errorf("truncate by a non-owner: mode %o size %d", st.Mode, st.Size)
	}
	reset()
	if out, err := asNobody(t, "sh", "-c", ": > "+fn); err != nil {
		t.Fatalf("open O_TRUNC as nobody: %v %s", err, out)
	}
	if st := stat(t, fn); st.Mode&setid != 0 || st.Size != 0 {
		t.Errorf("open O_TRUNC by a non-owner: mode %o size %d", st.Mode, st.Size)
	}
	// Root truncating keeps them, as root writing does.
	reset()
	if err := os.Truncate(fn, 1); err != nil {
		t.Fatal(err)
	}
	if m := stat(t, fn).Mode; m&setid != setid {
		t.Errorf("truncate by root cleared set-ID bits: %o", m)
	}
	// chown of a file clears them whoever does it.
	reset()
	if err := os.Chown(fn, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, fn); st.Mode&setid != 0 || st.Uid != 65534 {
		t.Errorf("chown by root: mode %o uid %d", st.Mode, st.Uid)
	}
	// Without group execute, set-group-ID stays (it marks mandatory
	// locking, not a privilege).
	writeFile(t, fn, []byte("data\n"), 0o777)
	if err := syscall.Chmod(fn, 0o6767); err != nil {
		t.Fatal(err)
	}
	if out, err := asNobody(t, "sh", "-c", "echo nobody >> "+fn); err != nil {
		t.Fatalf("append as nobody: %v %s", err, out)
	}
	if m := stat(t, fn).Mode & 07777; m != 0o2767 {
		t.Errorf("write by a non-owner to a 6767 file: mode %o, want 2767", m)
	}
}

// TestWritesAskNoCapability: the drive clears set-ID bits itself
// (killpriv.go), so the kernel does not ask for security.capability
// before every write, a round trip per request. go-fuse answers that
// question without calling the file system (IgnoreSecurityLabels), so
// the test counts the requests in its debug log.
func TestWritesAskNoCapability(t *testing.T) {
	requireFUSE(t)
	var getxattrs, writes atomic.Int64
	log := slog.New(countingHandler(func(msg string) {
		switch {
		case strings.Contains(msg, "GETXATTR") && strings.Contains(msg, "security.capability"):
			getxattrs.Add(1)
		case strings.Contains(msg, "WRITE"):
			writes.Add(1)
		}
	}))
	mnt := t.TempDir()
	srv, err := Mount(mnt, newFakeJournal(), MountOptions{Debug: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	unmountOnCleanup(t, srv, mnt)
	f, err := os.Create(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 64 {
		if _, err := f.WriteAt([]byte("x"), int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if writes.Load() < 64 {
		t.Fatalf("the debug log showed %d WRITE requests for 64 writes: the count below means nothing", writes.Load())
	}
	if n := getxattrs.Load(); n > 1 {
		t.Errorf("64 writes asked for security.capability %d times; want at most once", n)
	}
}

// countingHandler is a slog handler that passes each record's message
// to f.
type countingHandler func(msg string)

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	h(r.Message)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func tsTime(ts syscall.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

func TestTimesChangeAsPOSIXSays(t *testing.T) {
	s := newStack(t, stackOptions{})
	dir := filepath.Join(s.mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fn := filepath.Join(dir, "f")
	writeFile(t, fn, []byte("hello"), 0o644)
	old := time.Unix(1_000_000_000, 123456789)
	back := func(p string) {
		t.Helper()
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-2 * time.Second)
	fresh := func(what string, ts syscall.Timespec) {
		t.Helper()
		if tsTime(ts).Before(start) {
			t.Errorf("%s: %v did not move to now", what, tsTime(ts))
		}
	}
	same := func(what string, ts syscall.Timespec) {
		t.Helper()
		if !tsTime(ts).Equal(old) {
			t.Errorf("%s: changed to %v, want %v", what, tsTime(ts), old)
		}
	}

	back(fn)
	st := stat(t, fn)
	same("mtime after utimes", st.Mtim)
	same("atime after utimes", st.Atim)
	fresh("ctime after utimes", st.Ctim)

	// Reading changes neither mtime nor ctime.
	os.ReadFile(fn)
	st = stat(t, fn)
	same("mtime after read", st.Mtim)

	// A write changes mtime and ctime.
	f, err := os.OpenFile(fn, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("J"), 0)
	f.Close()
	st = stat(t, fn)
	fresh("mtime after write", st.Mtim)
	fresh("ctime after write", st.Ctim)

	// chmod changes ctime only.
	back(fn)
	if err := os.Chmod(fn, 0o600); err != nil {
		t.Fatal(err)
	}
	st = stat(t, fn)
	same("mtime after chmod", st.Mtim)

	// truncate changes both.
	back(fn)
	os.Truncate(fn, 1)
	st = stat(t, fn)
	fresh("mtime after truncate", st.Mtim)

	// Creating and removing names changes the directory's mtime.
	back(dir)
	writeFile(t, filepath.Join(dir, "g"), nil, 0o644)
	fresh("dir mtime after create", stat(t, dir).Mtim)
	back(dir)
	os.Remove(filepath.Join(dir, "g"))
	fresh("dir mtime after unlink", stat(t, dir).Mtim)

	// A link changes the file's ctime, not its mtime.
	back(fn)
	if err := os.Link(fn, filepath.Join(s.mnt, "l")); err != nil {
		t.Fatal(err)
	}
	st = stat(t, fn)
	same("mtime after link", st.Mtim)
	if st.Nlink != 2 {
		t.Errorf("nlink %d after link", st.Nlink)
	}

	// UTIME_OMIT leaves a time alone, UTIME_NOW sets it to now.
	back(fn)
	ts := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_OMIT}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, fn, ts, 0); err != nil {
		t.Fatal(err)
	}
	st = stat(t, fn)
	fresh("atime after UTIME_NOW", st.Atim)
	same("mtime after UTIME_OMIT", st.Mtim)
}

func TestRenameFlags(t *testing.T) {
	s := newStack(t, stackOptions{})
	a, b := filepath.Join(s.mnt, "a"), filepath.Join(s.mnt, "b")
	writeFile(t, a, []byte("A"), 0o644)
	writeFile(t, b, []byte("B"), 0o644)
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE); err != unix.EEXIST {
		t.Errorf("RENAME_NOREPLACE onto a file: %v, want EEXIST", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("RENAME_EXCHANGE: %v", err)
	}
	if x, _ := os.ReadFile(a); string(x) != "B" {
		t.Errorf("after exchange a=%q", x)
	}
	if x, _ := os.ReadFile(b); string(x) != "A" {
		t.Errorf("after exchange b=%q", x)
	}
	// Exchange a file and a directory.
	d := filepath.Join(s.mnt, "d")
	os.Mkdir(d, 0o755)
	writeFile(t, filepath.Join(d, "inside"), nil, 0o644)
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, d, unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("RENAME_EXCHANGE file<->dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a, "inside")); err != nil {
		t.Errorf("after file<->dir exchange: %v", err)
	}
	if x, _ := os.ReadFile(d); string(x) != "B" {
		t.Errorf("after file<->dir exchange d=%q", x)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, b, unix.AT_FDCWD, filepath.Join(s.mnt, "none"), unix.RENAME_EXCHANGE); err != unix.ENOENT {
		t.Errorf("RENAME_EXCHANGE with a missing target: %v, want ENOENT", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, b, unix.AT_FDCWD, filepath.Join(s.mnt, "c"), unix.RENAME_NOREPLACE); err != nil {
		t.Errorf("RENAME_NOREPLACE to a free name: %v", err)
	}
	// Over an existing target, across directories; a non-empty dir refuses.
	writeFile(t, filepath.Join(s.mnt, "x"), []byte("X"), 0o644)
	if err := os.Rename(filepath.Join(s.mnt, "x"), filepath.Join(a, "inside")); err != nil {
		t.Errorf("rename over a file across dirs: %v", err)
	}
	os.Mkdir(filepath.Join(s.mnt, "e"), 0o755)
	if err := os.Rename(filepath.Join(s.mnt, "e"), a); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		t.Errorf("rename dir over a non-empty dir: %v", err)
	}
}

func TestXattrFlags(t *testing.T) {
	s := newStack(t, stackOptions{})
	fn := filepath.Join(s.mnt, "x")
	writeFile(t, fn, []byte("content"), 0o644)
	if err := unix.Setxattr(fn, "user.a", []byte("1"), unix.XATTR_REPLACE); err != unix.ENODATA {
		t.Errorf("XATTR_REPLACE of a missing attr: %v, want ENODATA", err)
	}
	if err := unix.Setxattr(fn, "user.a", []byte("1"), unix.XATTR_CREATE); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(fn, "user.a", []byte("2"), unix.XATTR_CREATE); err != unix.EEXIST {
		t.Errorf("XATTR_CREATE of an existing attr: %v, want EEXIST", err)
	}
	if err := unix.Setxattr(fn, "user.a", []byte("22"), unix.XATTR_REPLACE); err != nil {
		t.Errorf("XATTR_REPLACE: %v", err)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(fn, "user.a", buf); err != nil || string(buf[:n]) != "22" {
		t.Errorf("getxattr: %q %v", buf[:n], err)
	}
	if _, err := unix.Getxattr(fn, "user.a", buf[:1]); err != unix.ERANGE {
		t.Errorf("getxattr into a short buffer: %v, want ERANGE", err)
	}
	n, err := unix.Getxattr(fn, StatusXattr, buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "local (") && string(buf[:n]) != "durable" && string(buf[:n]) != "degraded" {
		t.Errorf("%s: %q %v", StatusXattr, buf[:n], err)
	}
	if err := unix.Setxattr(fn, StatusXattr, []byte("durable"), 0); err != unix.EPERM {
		t.Errorf("setting %s: %v, want EPERM", StatusXattr, err)
	}
	n, err = unix.Listxattr(fn, buf)
	if err != nil || string(buf[:n]) != "user.a\x00" {
		t.Errorf("listxattr: %q %v", buf[:n], err)
	}
	if err := unix.Removexattr(fn, "user.a"); err != nil {
		t.Error(err)
	}
	if err := unix.Removexattr(fn, "user.a"); err != unix.ENODATA {
		t.Errorf("removexattr of a missing attr: %v", err)
	}
	// The status of a file once it is on the grid.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.drive.SyncGrid(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Getxattr(fn, StatusXattr, buf); err != nil || string(buf[:n]) != "durable" {
		t.Errorf("%s after SyncGrid: %q %v", StatusXattr, buf[:n], err)
	}
}

func TestFileOver4GiB(t *testing.T) {
	s := newStack(t, stackOptions{})
	fn := filepath.Join(s.mnt, "big")
	f, err := os.Create(fn)
	if err != nil {
		t.Fatal(err)
	}
	const off = 5 << 30
	tail := []byte("the end of a five gigabyte file")
	if _, err := f.WriteAt(tail, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s.remount()
	st := stat(t, fn)
	if st.Size != off+int64(len(tail)) {
		t.Errorf("size %d", st.Size)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("a sparse file uses %d bytes", st.Blocks*512)
	}
	f, err = os.Open(fn)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(tail))
	if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, tail) {
		t.Errorf("read at 5 GiB: %q %v", got, err)
	}
	hole := make([]byte, 64<<10)
	if _, err := f.ReadAt(hole, 3<<30); err != nil || !bytes.Equal(hole, make([]byte, len(hole))) {
		t.Errorf("hole does not read as zeros: %v", err)
	}
}

func TestStatfsIsGridCapacity(t *testing.T) {
	s := newStack(t, stackOptions{})
	var st unix.Statfs_t
	if err := unix.Statfs(s.mnt, &st); err != nil {
		t.Fatal(err)
	}
	total, free := s.grid.Capacity(context.Background())
	wantTotal := uint64(total) / (gridK + gridM) * gridK
	wantFree := uint64(free) / (gridK + gridM) * gridK
	gotTotal := st.Blocks * uint64(st.Frsize)
	gotFree := st.Bavail * uint64(st.Frsize)
	if diff := int64(gotTotal) - int64(wantTotal); diff < -int64(st.Frsize) || diff > int64(st.Frsize) {
		t.Errorf("total %d, want capacity x k/n = %d", gotTotal, wantTotal)
	}
	// Free space moves as other processes write; allow 1%.
	if d := float64(gotFree) - float64(wantFree); d > 0.01*float64(wantFree) || d < -0.01*float64(wantFree) {
		t.Errorf("free %d, want about %d", gotFree, wantFree)
	}
	if st.Namelen != 255 {
		t.Errorf("namelen %d", st.Namelen)
	}
}

// TestStatfsCountsOneDiskOnce: the stack's nodes are directories on one
// disk, as the embedded default grid's are. df of the drive shows that
// disk's space once, times k/n (what data can use), not once per node:
// six nodes on a disk with 50 GiB free offer about 33 GiB, not 200.
func TestStatfsCountsOneDiskOnce(t *testing.T) {
	s := newStack(t, stackOptions{})
	var drive, disk unix.Statfs_t
	if err := unix.Statfs(s.mnt, &drive); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(filepath.Join(s.base, "nodes"), &disk); err != nil {
		t.Fatal(err)
	}
	wantTotal := disk.Blocks * uint64(disk.Bsize) / (gridK + gridM) * gridK
	wantFree := disk.Bavail * uint64(disk.Bsize) / (gridK + gridM) * gridK
	gotTotal := drive.Blocks * uint64(drive.Frsize)
	gotFree := drive.Bavail * uint64(drive.Frsize)
	if d := float64(gotTotal) - float64(wantTotal); d > 0.01*float64(wantTotal) || d < -0.01*float64(wantTotal) {
		t.Errorf("df total %d, want the nodes' one disk x k/n = %d", gotTotal, wantTotal)
	}
	// Free space moves as other processes write; allow 1%.
	if d := float64(gotFree) - float64(wantFree); d > 0.01*float64(wantFree) || d < -0.01*float64(wantFree) {
		t.Errorf("df free %d, want the nodes' one disk's free x k/n = %d", gotFree, wantFree)
	}
}

func TestSharedWritableMmap(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		// A page fault blocks its thread without releasing its P; the
		// daemon needs another P to answer it.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	s := newStack(t, stackOptions{})
	fn := filepath.Join(s.mnt, "mapped")
	const size = 256 << 10
	writeFile(t, fn, make([]byte, size), 0o644)
	f, err := os.OpenFile(fn, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Closed and unmapped by cleanups too, before the unmount (cleanups
	// run last first): a file or mapping a t.Fatal left would fail it.
	t.Cleanup(func() { f.Close() }) // a second Close does nothing
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	mapped := true
	t.Cleanup(func() {
		if mapped {
			unix.Munmap(m)
		}
	})
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*31 + i>>9)
	}
	copy(m, want)
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	mapped = false
	if err := unix.Munmap(m); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read() after msync differs: %v", err)
	}
	f.Close()
	s.remount()
	if got, err := os.ReadFile(fn); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after remount the mapped writes are lost: %v", err)
	}
}

func TestRemountKeepsInodesAndTimes(t *testing.T) {
	s := newStack(t, stackOptions{})
	paths := []string{"f", "d", "d/g", "d/sym", "d/fifo"}
	writeFile(t, filepath.Join(s.mnt, "f"), []byte("f"), 0o640)
	os.Mkdir(filepath.Join(s.mnt, "d"), 0o750)
	writeFile(t, filepath.Join(s.mnt, "d/g"), []byte("g"), 0o600)
	os.Symlink("../f", filepath.Join(s.mnt, "d/sym"))
	if err := unix.Mkfifo(filepath.Join(s.mnt, "d/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1_234_567_890, 987654321)
	os.Chtimes(filepath.Join(s.mnt, "f"), when, when)
	before := map[string]syscall.Stat_t{}
	for _, p := range paths {
		before[p] = stat(t, filepath.Join(s.mnt, p))
	}
	s.remount()
	for _, p := range paths {
		a, b := before[p], stat(t, filepath.Join(s.mnt, p))
		if a.Ino != b.Ino || a.Mode != b.Mode || a.Mtim != b.Mtim || a.Ctim != b.Ctim || a.Nlink != b.Nlink || a.Size != b.Size {
			t.Errorf("%s changed over remount:\n before ino %d mode %o mtime %v ctime %v nlink %d size %d\n after  ino %d mode %o mtime %v ctime %v nlink %d size %d",
				p, a.Ino, a.Mode, tsTime(a.Mtim), tsTime(a.Ctim), a.Nlink, a.Size, b.Ino, b.Mode, tsTime(b.Mtim), tsTime(b.Ctim), b.Nlink, b.Size)
		}
	}
	if got := stat(t, filepath.Join(s.mnt, "f")).Mtim; !tsTime(got).Equal(when) {
		t.Errorf("mtime %v, want %v", tsTime(got), when)
	}
}

func TestSpecialFilesAndHardLinks(t *testing.T) {
	s := newStack(t, stackOptions{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unix.Mknod(filepath.Join(s.mnt, "fifo"), unix.S_IFIFO|0o644, 0))
	must(unix.Mknod(filepath.Join(s.mnt, "sock"), unix.S_IFSOCK|0o644, 0))
	must(unix.Mknod(filepath.Join(s.mnt, "chr"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(s.mnt, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	writeFile(t, filepath.Join(s.mnt, "a"), []byte("one"), 0o644)
	must(os.Link(filepath.Join(s.mnt, "a"), filepath.Join(s.mnt, "b")))
	check := func() {
		t.Helper()
		for name, want := range map[string]uint32{"fifo": unix.S_IFIFO, "sock": unix.S_IFSOCK, "chr": unix.S_IFCHR, "blk": unix.S_IFBLK} {
			if st := stat(t, filepath.Join(s.mnt, name)); st.Mode&unix.S_IFMT != want {
				t.Errorf("%s: mode %o", name, st.Mode)
			}
		}
		if st := stat(t, filepath.Join(s.mnt, "chr")); st.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("chr rdev %x", st.Rdev)
		}
		a, b := stat(t, filepath.Join(s.mnt, "a")), stat(t, filepath.Join(s.mnt, "b"))
		if a.Ino != b.Ino || a.Nlink != 2 || b.Nlink != 2 {
			t.Errorf("hard links: ino %d/%d nlink %d/%d", a.Ino, b.Ino, a.Nlink, b.Nlink)
		}
	}
	check()
	f, err := os.OpenFile(filepath.Join(s.mnt, "b"), os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	f.Write([]byte(" two"))
	must(f.Close())
	if got, _ := os.ReadFile(filepath.Join(s.mnt, "a")); string(got) != "one two" {
		t.Errorf("write through one link, read through the other: %q", got)
	}
	s.remount()
	check()
	must(os.Remove(filepath.Join(s.mnt, "a")))
	if st := stat(t, filepath.Join(s.mnt, "b")); st.Nlink != 1 {
		t.Errorf("nlink after unlink %d", st.Nlink)
	}
}

// TestReaddirWhileChanging: a listing taken while entries are added and
// removed returns every entry that survives exactly once.
func TestReaddirWhileChanging(t *testing.T) {
	s := newStack(t, stackOptions{})
	dir := filepath.Join(s.mnt, "d")
	os.Mkdir(dir, 0o755)
	const n = 600
	for i := 0; i < n; i++ {
		writeFile(t, filepath.Join(dir, name(i)), nil, 0o644)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	seen := map[string]int{}
	buf := make([]byte, 2048) // a few dozen entries per getdents
	read := func() int {
		k, err := unix.ReadDirent(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		_, _, names = unix.ParseDirent(buf[:k], -1, names)
		for _, nm := range names {
			seen[nm]++
		}
		return k
	}
	read()
	read()
	removed := map[string]bool{}
	for i := 0; i < n; i += 3 {
		os.Remove(filepath.Join(dir, name(i)))
		removed[name(i)] = true
	}
	for i := n; i < n+200; i++ {
		writeFile(t, filepath.Join(dir, name(i)), nil, 0o644)
	}
	for read() > 0 {
	}
	for nm, c := range seen {
		if c > 1 {
			t.Errorf("%s listed %d times", nm, c)
		}
	}
	for i := 0; i < n; i++ {
		if !removed[name(i)] && seen[name(i)] != 1 {
			t.Errorf("surviving entry %s listed %d times", name(i), seen[name(i)])
		}
	}
}

func name(i int) string { return "entry-" + strings.Repeat("x", i%7) + "-" + itoa(i) }

func itoa(i int) string {
	return strings.TrimLeft(string([]byte{byte('0' + i/1000%10), byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)}), "")
}

// TestOpenRacingUnlink: a file created and removed in a loop while
// another goroutine opens it by name and writes. An open either fails
// (ENOENT) or gives a handle that writes: the kernel's LOOKUP can find the
// inode just before the unlink frees it, and the OPEN that follows used
// to succeed on the freed inode, its pwrite then failing with ENOENT
// (about one open in twelve here).
func TestOpenRacingUnlink(t *testing.T) {
	s := newStack(t, stackOptions{})
	p := filepath.Join(s.mnt, "f")
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				f.Close()
			}
			os.Remove(p)
		}
	}()
	defer func() { stop.Store(true); <-done }()
	opens, failed := 0, 0
	var first error
	start := time.Now()
	for time.Since(start) < 15*time.Second && !(opens >= 500 && time.Since(start) > 3*time.Second) {
		fd, err := unix.Open(p, unix.O_RDWR, 0)
		if err != nil {
			if err != unix.ENOENT {
				t.Fatalf("open: %v", err)
			}
			continue
		}
		opens++
		if _, err := unix.Pwrite(fd, []byte("x"), 0); err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
		unix.Close(fd)
	}
	if failed > 0 {
		t.Errorf("%d of %d opens gave a handle that could not write (first: %v)", failed, opens, first)
	}
	if opens < 20 {
		t.Errorf("only %d opens succeeded in %v: the race was not exercised", opens, time.Since(start).Round(time.Millisecond))
	}
}

// TestTmpfileLinkat: open(O_TMPFILE) then linkat(2) of its descriptor,
// how programs make a file appear whole under its name. The file keeps
// what was written, across a remount; with O_EXCL the kernel refuses the
// link.
func TestTmpfileLinkat(t *testing.T) {
	s := newStack(t, stackOptions{})
	// A descriptor left open at the end would hang the test's exit on its
	// own mount: each is closed on every path.
	tmpfile := func(flags int) (fd int, close func()) {
		fd, err := unix.Open(s.mnt, unix.O_TMPFILE|unix.O_RDWR|flags, 0o640)
		if err != nil {
			t.Fatalf("open O_TMPFILE (flags %#x): %v", flags, err)
		}
		var once sync.Once
		close = func() { once.Do(func() { unix.Close(fd) }) }
		t.Cleanup(close)
		return fd, close
	}
	fd, closeFd := tmpfile(0)
	want := bytes.Repeat([]byte("tmpfile "), 40000) // several blocks
	if _, err := unix.Write(fd, want); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(s.mnt, "made")
	if err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW); err != nil {
		t.Fatalf("linkat of the O_TMPFILE descriptor: %v", err)
	}
	closeFd()
	if st := stat(t, name); st.Nlink != 1 || st.Mode&0o777 != 0o640 || st.Size != int64(len(want)) {
		t.Errorf("linked file: nlink %d mode %o size %d", st.Nlink, st.Mode, st.Size)
	}

	fd, closeFd = tmpfile(unix.O_EXCL)
	err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, filepath.Join(s.mnt, "excl"), unix.AT_SYMLINK_FOLLOW)
	closeFd()
	if err == nil {
		t.Error("linkat of an O_TMPFILE|O_EXCL descriptor succeeded")
	}

	s.remount()
	got, err := os.ReadFile(name)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after a remount: %d bytes (want %d), %v", len(got), len(want), err)
	}
	if _, err := os.Lstat(filepath.Join(s.mnt, "excl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("excl: %v, want it absent", err)
	}
}
