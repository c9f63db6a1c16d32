package fs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
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

// TestSnapshotsLinkCount: .snapshots has the link count of a folder with
// one subfolder per snapshot (2 + snapshots), as find and fts expect of a
// folder, at once after a snapshot is made; a snapshot's folder counts its
// own subfolders.
func TestSnapshotsLinkCount(t *testing.T) {
	s := newStack(t, stackOptions{})
	for _, d := range []string{"d1", "d2", "d1/sub"} {
		if err := os.Mkdir(filepath.Join(s.mnt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nlink := func(p string) uint64 {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(s.mnt, p), &st); err != nil {
			t.Fatal(err)
		}
		return uint64(st.Nlink)
	}
	count := func() uint64 {
		t.Helper()
		snaps, err := s.drive.Snapshots(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return uint64(len(snaps))
	}
	if _, err := s.drive.CreateSnapshot(context.Background(), "one"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second answered by the kernel, were it to cache
		if got, want := nlink(snapshotsName), 2+count(); got != want || want < 3 {
			t.Errorf(".snapshots with %d snapshots: nlink %d, want %d", count(), got, want)
		}
	}
	if _, err := s.drive.CreateSnapshot(context.Background(), "two"); err != nil {
		t.Fatal(err)
	}
	if got, want := nlink(snapshotsName), 2+count(); got != want {
		t.Errorf(".snapshots right after another snapshot (%d in all): nlink %d, want %d", count(), got, want)
	}
	if got := nlink(filepath.Join(snapshotsName, "two")); got != 4 {
		t.Errorf("a snapshot of a root with 2 folders: nlink %d, want 4", got)
	}
	if got := nlink(filepath.Join(snapshotsName, "two", "d1")); got != 3 {
		t.Errorf("a snapshot's folder with 1 subfolder: nlink %d, want 3", got)
	}
}
