package fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pruneMinor is the FUSE protocol minor version of FUSE_NOTIFY_PRUNE.
const pruneMinor = 45

// The drive asks the kernel to forget the files it keeps cached when
// memory is short: go-fuse then drops their inodes. Files in use (open)
// and directories stay; the forgotten ones are looked up again, with
// their contents, by their next use.
func TestPruneInodesForgetsCachedFiles(t *testing.T) {
	s := newStack(t, stackOptions{})
	if minor := s.srv.KernelSettings().Minor; minor < pruneMinor {
		t.Skipf("the kernel speaks FUSE 7.%d; FUSE_NOTIFY_PRUNE needs 7.%d", minor, pruneMinor)
	}
	dir := filepath.Join(s.mnt, "d")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	const files = 300
	content := func(i int) []byte { return []byte(fmt.Sprintf("file %d\n", i)) }
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), content(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	open, err := os.OpenFile(filepath.Join(dir, "open"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.Write([]byte("before ")); err != nil {
		t.Fatal(err)
	}
	d := s.drive.mounts[0].root.EmbeddedInode().GetChild("d")
	if d == nil {
		t.Fatal("go-fuse has no inode for d")
	}
	if n := len(d.Children()); n != files+2 {
		t.Fatalf("d has %d children in go-fuse before the prune; want %d", n, files+2)
	}

	if got := s.drive.pruneInodes(1 << 30); got < files*inodeBytes {
		t.Fatalf("pruneInodes asked for %d bytes; want the %d files' at least", got, files)
	}
	if again := s.drive.pruneInodes(1 << 30); again != 0 {
		t.Fatalf("a second prune at once asked for %d bytes; want none within pruneEvery", again)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(d.Children()) > 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	kids := d.Children()
	if len(kids) != 2 || kids["open"] == nil || kids["sub"] == nil {
		t.Fatalf("after the prune go-fuse keeps %d children of d (the open file among them: %v, the directory: %v); want those two only",
			len(kids), kids["open"] != nil, kids["sub"] != nil)
	}

	// The open file works on, and every forgotten one is found again.
	if _, err := open.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "open")); err != nil || string(got) != "before after" {
		t.Fatalf("the open file reads %q, %v", got, err)
	}
	for i := range files {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil || !bytes.Equal(got, content(i)) {
			t.Fatalf("file %d after the prune: %q, %v", i, got, err)
		}
	}
	if n := len(d.Children()); n != files+2 {
		t.Fatalf("d has %d children in go-fuse after reading every file again; want %d", n, files+2)
	}
}
