package fs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestChownToSameIDs: chown(path, -1, -1) changes no owner, but like any
// chown it moves ctime and, on a file that is not a directory, clears
// set-user-ID, and set-group-ID when the group may execute (what ext4
// does, and pjdfstest's chown tests check). The kernel sends it as a
// SETATTR that names no attribute at all.
func TestChownToSameIDs(t *testing.T) {
	s := newStack(t, stackOptions{})
	dir := filepath.Join(s.mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path       string
		mode, want uint32
	}{
		{filepath.Join(dir, "setid"), 0o6755, 0o755},
		{filepath.Join(dir, "setgid-no-exec"), 0o6745, 0o2745},
		{filepath.Join(dir, "plain"), 0o644, 0o644},
		{dir, 0o2775, 0o2775},
	} {
		if c.path != dir {
			writeFile(t, c.path, []byte("x"), 0o644)
		}
		if err := syscall.Chmod(c.path, c.mode); err != nil {
			t.Fatal(err)
		}
		before := stat(t, c.path)
		if err := os.Chown(c.path, -1, -1); err != nil {
			t.Fatal(err)
		}
		after := stat(t, c.path)
		if got := after.Mode & 0o7777; got != c.want {
			t.Errorf("%s: chown -1 -1 of mode %o left %o, want %o", filepath.Base(c.path), c.mode, got, c.want)
		}
		if !tsTime(after.Ctim).After(tsTime(before.Ctim)) {
			t.Errorf("%s: chown -1 -1 left ctime at %v", filepath.Base(c.path), tsTime(after.Ctim))
		}
	}
}
