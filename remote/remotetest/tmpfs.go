package remotetest

import (
	"os"
	"os/exec"
	"testing"
)

// Tmpfs mounts a tmpfs of the given size (mount's syntax: "2m") on a new
// temporary directory and unmounts it when the test ends: a real disk that
// fills up. Without the right to mount it skips, except under CI (the CI
// variable set), where the skip would hide the test: there it fails.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot mount a tmpfs (%v: %s): the full-disk tests need root", err, out)
		}
		t.Skipf("cannot mount a tmpfs (%v: %s): the full-disk tests need root", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
