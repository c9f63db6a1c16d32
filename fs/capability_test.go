package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/journal"
)

// TestNoFileCapabilities: the drive keeps no file capabilities (the mount
// answers every GETXATTR of security.capability with ENODATA itself, so
// the kernel asks nothing before a write). Setting one is refused, as on
// a file system without them, rather than stored where no read finds it;
// and listxattr does not name one that is stored (from before), which
// getxattr would then deny: rsync -X off the drive failed on such a file
// (lgetxattr: No data available, exit 23) and cp -a warned.
func TestNoFileCapabilities(t *testing.T) {
	mnt, j := mountFake(t)
	p := filepath.Join(mnt, "ping")
	if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	caps := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // cap_net_raw=p
	if err := unix.Setxattr(p, capabilityXattr, caps, 0); err != unix.EOPNOTSUPP {
		t.Errorf("setxattr %s: %v, want EOPNOTSUPP", capabilityXattr, err)
	}
	// One stored by an earlier version, beside an ordinary attribute.
	a, err := j.Lookup(context.Background(), journal.RootIno, "ping")
	if err != nil {
		t.Fatal(err)
	}
	j.SetXattr(context.Background(), a.Ino, capabilityXattr, caps, 0)
	if err := unix.Setxattr(p, "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "user.k\x00" {
		t.Errorf("listxattr: %q, want only user.k", got)
	}
	if _, err := unix.Getxattr(p, capabilityXattr, buf); err != unix.ENODATA {
		t.Errorf("getxattr %s: %v, want ENODATA", capabilityXattr, err)
	}
}
