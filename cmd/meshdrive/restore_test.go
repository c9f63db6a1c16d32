package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreKeepsSetIDBits: snapshot restore (copyTree) gives a copied
// file its mode, set-user-ID and set-group-ID included. It set the mode
// and then the owner, and chown(2) clears both bits of a file that is
// not a directory (root's chown too), so a restored program lost them.
func TestRestoreKeepsSetIDBits(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	for name, mode := range map[string]uint32{"suid": 0o4755, "sgid": 0o2755, "both": 0o6711} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"suid": 0o4755, "sgid": 0o2755, "both": 0o6711} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dst, name), &st); err != nil {
			t.Fatal(err)
		}
		if got := st.Mode & 0o7777; got != want {
			t.Errorf("%s restored with mode %o, want %o", name, got, want)
		}
	}
}

// TestRestoreKeepsSymlinkTimesAndOwner: a restored symlink has its
// modification time (and owner), as every other restored entry does.
// copyTree returned right after making the link, leaving it the time of
// the restore.
func TestRestoreKeepsSymlinkTimesAndOwner(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	link := filepath.Join(src, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	old := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 5}, {Sec: 1_000_000_000, Nsec: 5}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, link, old, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		if err := os.Lchown(link, 12, 34); err != nil {
			t.Fatal(err)
		}
	}
	var want syscall.Stat_t
	if err := syscall.Lstat(link, &want); err != nil {
		t.Fatal(err)
	}
	if _, _, err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	var got syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(dst, "link"), &got); err != nil {
		t.Fatal(err)
	}
	if got.Mtim != want.Mtim {
		t.Errorf("restored symlink's mtime %v, want %v", got.Mtim, want.Mtim)
	}
	if got.Uid != want.Uid || got.Gid != want.Gid {
		t.Errorf("restored symlink owned by %d:%d, want %d:%d", got.Uid, got.Gid, want.Uid, want.Gid)
	}
}

// TestRestoreKeepsHardLinks: names of one file in the restored folder
// stay names of one file. copyTree copied each name as a file of its
// own: a folder of backups made with rsync --link-dest came back as
// many times its size, and a change to one name no longer showed in the
// others.
func TestRestoreKeepsHardLinks(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("shared"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "sub", "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "c"), []byte("shared"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	var a, b, c syscall.Stat_t
	for p, st := range map[string]*syscall.Stat_t{"a": &a, "sub/b": &b, "c": &c} {
		if err := syscall.Lstat(filepath.Join(dst, p), st); err != nil {
			t.Fatal(err)
		}
	}
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("a and sub/b restored as inodes %d and %d (a has %d links), want one inode with 2", a.Ino, b.Ino, a.Nlink)
	}
	if c.Ino == a.Ino || c.Nlink != 1 {
		t.Errorf("c, a file of its own, restored as inode %d with %d links", c.Ino, c.Nlink)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "sub", "b")); string(got) != "shared" {
		t.Errorf("sub/b restored as %q", got)
	}
}

// TestRestoreKeepsHoles: a restored sparse file keeps its holes. copyTree
// wrote every zero it read, so restoring a folder with a 10 GiB
// `truncate -s 10G` file out of a snapshot filled 10 GiB of the disk.
func TestRestoreKeepsHoles(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	const size = 64 << 20
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("middle"), size/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	copy(want[size/2:], "middle")
	if len(got) != size || !bytes.Equal(got, want) {
		t.Fatalf("restored sparse file differs (%d bytes, want %d)", len(got), size)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dst, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 1<<20 {
		t.Errorf("restored sparse file of %d bytes takes %d bytes of disk, want its one written page", size, used)
	}
}

// TestRestoreSpecialFiles: fifos (and, for root, device nodes) come back
// from a snapshot, and what cannot (a socket) is named, not dropped in
// silence. copyTree skipped all of them and said "N files" as if the
// folder had come back whole.
func TestRestoreSpecialFiles(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	root := os.Getuid() == 0
	if root {
		if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("unix", filepath.Join(src, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, skipped, err := copyTree(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dst, "fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o640 {
		t.Errorf("fifo restored as mode %o (%v), want a fifo with mode 640", st.Mode, err)
	}
	if root {
		if err := unix.Lstat(filepath.Join(dst, "null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("device restored as mode %o rdev %x (%v), want character device 1,3", st.Mode, st.Rdev, err)
		}
	}
	if len(skipped) != 1 || skipped[0] != "sock" {
		t.Errorf("skipped %q, want the socket named", skipped)
	}
}

// TestSnapshotRestoreSparseAndSpecial is the same through a real mount:
// a folder with a sparse file, a fifo and a socket, restored out of a
// snapshot to local disk, comes back with its hole, its fifo, and a line
// naming the socket by its path on the drive.
func TestSnapshotRestoreSparseAndSpecial(t *testing.T) {
	base, dir, _, env, mp := mountedCluster(t, "pw", nil)
	work := filepath.Join(mp, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 32 << 20
	if err := os.WriteFile(filepath.Join(work, "sparse"), []byte("head"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(work, "sparse"), size); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(work, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(work, "sock"), unix.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "snapshot", "create", "--data", dir, "--name", "s1")
	// --to is a path on this machine: outside the drive, a folder that
	// does not exist is refused (it reads too easily as the drive's
	// /restored), and nothing is made.
	out := filepath.Join(base, "restored")
	r := runBin(t, env, "snapshot", "restore", "--data", dir, "s1", "/work", "--to", out)
	if r.code != 2 {
		t.Errorf("restore to a missing folder outside the drive: %s", r)
	}
	for _, want := range []string{"--to " + out + " is not in the drive (mounted at " + mp + ")", "path on this machine, not relative to the drive",
		"give --to " + filepath.Join(mp, out), "mkdir " + out, "nothing was changed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal does not say %q: %s", want, r.stderr)
		}
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("the refused restore made %s: %v", out, err)
	}
	// An existing folder gets the copy inside it, and restore says where.
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, env, "snapshot", "restore", "--data", dir, "s1", "work", "--to", out)
	if want := "to " + filepath.Join(out, "work") + ", on this machine, outside the drive"; !strings.Contains(r.stdout, want) {
		t.Errorf("restore does not say %q:\n%s", want, r.stdout)
	}
	out = filepath.Join(out, "work")
	// Into the drive: a new path under the mountpoint.
	r = mustRun(t, env, "snapshot", "restore", "--data", dir, "s1", "work/sparse", "--to", filepath.Join(mp, "back"))
	if want := "to " + filepath.Join(mp, "back") + ", in the drive"; !strings.Contains(r.stdout, want) {
		t.Errorf("restore into the drive does not say %q:\n%s", want, r.stdout)
	}
	if fi, err := os.Stat(filepath.Join(mp, "back")); err != nil || fi.Size() != size {
		t.Errorf("restored into the drive: %v", err)
	}
	r = mustRun(t, env, "snapshot", "restore", "--data", dir, "s1", "work", "--to", filepath.Join(mp, "back2"))
	if !strings.Contains(r.stdout, `"work/sock"`) {
		t.Errorf("restore does not name the socket it left out:\n%s", r.stdout)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(out, "sparse"), &st); err != nil || st.Size != size || st.Blocks*512 > 1<<20 {
		t.Errorf("restored sparse file: size %d, %d bytes of disk (%v); want %d bytes in one page", st.Size, st.Blocks*512, err, size)
	}
	want := make([]byte, size)
	copy(want, "head")
	if got, err := os.ReadFile(filepath.Join(out, "sparse")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("restored sparse file (%d bytes, %v) is not \"head\" and %d zeros", len(got), err, size-4)
	}
	if err := unix.Lstat(filepath.Join(out, "fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("restored fifo: mode %o, %v", st.Mode, err)
	}
}

// readBytes is the bytes this process has read with read(2) and its
// kind so far (rchar of /proc/self/io).
func readBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no rchar in /proc/self/io:\n%s", b)
	return 0
}

// TestRestoreReadsOnlyData: copyTree reads a sparse file's data regions
// (SEEK_DATA/SEEK_HOLE), not its holes. It read every zero to find the
// pages to skip: restoring a snapshot with a 10 GiB sparse file read
// 10 GiB through the drive and took 84 s.
func TestRestoreReadsOnlyData(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	const size = 1 << 30
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{4096, size / 3, size - 3} {
		if _, err := f.WriteAt([]byte("mid"), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	o, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
	f.Close()
	if err != nil || o == size {
		t.Skipf("the temporary directory's file system reports no holes (%d, %v)", o, err)
	}
	before := readBytes(t)
	if _, _, err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	read := readBytes(t) - before
	if read > 16<<20 {
		t.Errorf("restoring a %d-byte file with 9 bytes of data read %d bytes", int64(size), read)
	}
	if out, err := exec.Command("cmp", filepath.Join(src, "sparse"), filepath.Join(dst, "sparse")).CombinedOutput(); err != nil {
		t.Fatalf("restored file differs: %v: %s", err, out)
	}
}
