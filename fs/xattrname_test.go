package fs

import (
	"context"
	"syscall"
	"testing"
)

// TestXattrNames: names ext4 refuses are refused the same way (a name
// outside the four namespaces, a namespace with nothing after it), not
// stored; the others are stored.
func TestXattrNames(t *testing.T) {
	j := newFakeJournal()
	n := &node{fsys: &fileSystem{j: j, log: testLogger()}}
	for name, want := range map[string]syscall.Errno{
		"foo.bar": syscall.EOPNOTSUPP, "user": syscall.EOPNOTSUPP, "": syscall.EOPNOTSUPP,
		"user.": syscall.EINVAL, "trusted.": syscall.EINVAL,
	} {
		if got := n.Setxattr(context.Background(), name, []byte("v"), 0); got != want {
			t.Errorf("setxattr %q: %v, want %v", name, got, want)
		}
	}
	// The others reach the journal (this bare node names no inode it
	// has: ENOENT).
	for _, name := range []string{"user.x", "trusted.x", "security.selinux"} {
		if got := n.Setxattr(context.Background(), name, []byte("v"), 0); got != syscall.ENOENT {
			t.Errorf("setxattr %q: %v, want the journal's ENOENT", name, got)
		}
	}
}
