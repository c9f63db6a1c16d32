package fs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestSnapshotVisibleAtOnce: a script that looks for a snapshot, makes it
// when it is missing and then reads it (test -d .snapshots/X || meshdrive
// snapshot create --name X; ls .snapshots/X) finds it. The miss must not
// leave the kernel a negative entry that hides the new snapshot for the
// entry timeout: snapshots are made by the mount process, not through the
// kernel, which therefore never replaces that entry itself.
func TestSnapshotVisibleAtOnce(t *testing.T) {
	s := newStack(t, stackOptions{})
	if err := os.WriteFile(filepath.Join(s.mnt, "a"), []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(s.mnt, snapshotsName, "before-upgrade")
	if _, err := os.Stat(snap); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of a snapshot not yet made: %v, want ENOENT", err)
	}
	if _, err := s.drive.CreateSnapshot(context.Background(), "before-upgrade"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(snap, "a"))
	if err != nil || string(b) != "before" {
		t.Fatalf("reading the snapshot right after it was made: %q, %v", b, err)
	}
}
