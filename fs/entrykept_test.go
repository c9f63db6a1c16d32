package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNamesRightWhileKept: the mount's entryTimeout (a minute) relies on
// every change to the names going through the kernel, which then drops
// or replaces its entries itself. The changes that touch more than one
// name or an inode under several (hard links, a rename over another link
// of the same file, RENAME_EXCHANGE, O_TMPFILE given a name, a folder
// removed and made again), and a snapshot deleted and made again under
// its name while a folder of it is open, each read back right while the
// kernel still keeps the entries looked up before.
func TestNamesRightWhileKept(t *testing.T) {
	s := newStack(t, stackOptions{})
	p := func(n string) string { return filepath.Join(s.mnt, n) }
	write := func(n, c string) {
		t.Helper()
		if err := os.WriteFile(p(n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(n, want string) {
		t.Helper()
		b, err := os.ReadFile(p(n))
		if err != nil || string(b) != want {
			t.Errorf("read %s: %q, %v; want %q", n, b, err, want)
		}
	}
	gone := func(n string) {
		t.Helper()
		if _, err := os.Lstat(p(n)); !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("lstat %s: %v, want ENOENT", n, err)
		}
	}
	// Hard links.
	write("a", "A")
	if err := os.Link(p("a"), p("b")); err != nil {
		t.Fatal(err)
	}
	read("a", "A")
	read("b", "A")
	write("c", "C")
	read("c", "C")
	time.Sleep(1500 * time.Millisecond)
	if err := os.Remove(p("a")); err != nil {
		t.Fatal(err)
	}
	gone("a")
	read("b", "A")
	if err := os.Rename(p("b"), p("c")); err != nil {
		t.Fatal(err)
	}
	gone("b")
	read("c", "A")
	// Rename onto another link of the same inode: both stay.
	if err := os.Link(p("c"), p("d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p("c"), p("d")); err != nil {
		t.Fatal(err)
	}
	read("c", "A")
	read("d", "A")
	// Exchange.
	write("x", "X")
	write("y", "Y")
	read("x", "X")
	read("y", "Y")
	if err := unix.Renameat2(unix.AT_FDCWD, p("x"), unix.AT_FDCWD, p("y"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	read("x", "Y")
	read("y", "X")
	// O_TMPFILE, then a name.
	fd, err := unix.Open(s.mnt, unix.O_TMPFILE|unix.O_RDWR, 0o644)
	fdErr := err
	if err != nil {
		t.Logf("O_TMPFILE: %v", err)
	} else {
		unix.Write(fd, []byte("T"))
		if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, p("t"), unix.AT_SYMLINK_FOLLOW); err != nil {
			t.Errorf("linkat: %v", err)
		}
		unix.Close(fd)
		read("t", "T")
	}
	// A directory removed and made again, with the same child name.
	if err := os.MkdirAll(p("dir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("dir/sub/f", "1")
	read("dir/sub/f", "1")
	if err := os.RemoveAll(p("dir")); err != nil {
		t.Fatal(err)
	}
	gone("dir/sub/f")
	if err := os.MkdirAll(p("dir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	gone("dir/sub/f")
	write("dir/sub/f", "2")
	read("dir/sub/f", "2")
	ents, err := os.ReadDir(s.mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"c", "d", "dir", "t", "x", "y"}; !slices.Equal(names, want) && !(fdErr != nil && slices.Equal(names, slices.DeleteFunc(want, func(n string) bool { return n == "t" }))) {
		t.Errorf("the root lists %q, want %q", names, want)
	}

	// A snapshot deleted and made again under its name while a shell
	// sits in it.
	ctx := context.Background()
	write("s", "old")
	if _, err := s.drive.CreateSnapshot(ctx, "snap"); err != nil {
		t.Fatal(err)
	}
	read(".snapshots/snap/s", "old")
	cwd, err := os.Open(p(".snapshots/snap"))
	if err != nil {
		t.Fatal(err)
	}
	defer cwd.Close()
	if _, err := s.drive.DeleteSnapshots(ctx, []string{"snap"}, false); err != nil {
		t.Fatal(err)
	}
	write("s", "new")
	if _, err := s.drive.CreateSnapshot(ctx, "snap"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	read(".snapshots/snap/s", "new")
}
