package fs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
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

// TestSnapshotInodeNumbers: the files of a snapshot have inode numbers
// below 2^63 (programs that read st_ino as a signed number saw negative
// ones), apart from the drive's and from another snapshot's, and the same
// after a remount.
func TestSnapshotInodeNumbers(t *testing.T) {
	s := newStack(t, stackOptions{})
	if err := os.Mkdir(filepath.Join(s.mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.mnt, "d", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"one", "two"} {
		if _, err := s.drive.CreateSnapshot(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{"", "d", "d/f", snapshotsName}
	for _, n := range []string{"one", "two"} {
		for _, p := range []string{"", "d", "d/f"} {
			paths = append(paths, filepath.Join(snapshotsName, n, p))
		}
	}
	inos := func() map[string]uint64 {
		t.Helper()
		m := map[string]uint64{}
		seen := map[uint64]string{}
		for _, p := range paths {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(s.mnt, p), &st); err != nil {
				t.Fatal(err)
			}
			if st.Ino >= 1<<63 {
				t.Errorf("%q: inode number %d, want below 2^63", p, st.Ino)
			}
			if q, dup := seen[st.Ino]; dup {
				t.Errorf("%q and %q share inode number %d", p, q, st.Ino)
			}
			m[p], seen[st.Ino] = st.Ino, p
		}
		return m
	}
	before := inos()
	s.remount()
	after := inos()
	for _, p := range paths {
		if before[p] != after[p] {
			t.Errorf("%q: inode number %d, after a remount %d", p, before[p], after[p])
		}
	}
}

// TestSnapshotSlots: two snapshots whose seqs are a multiple of the slot
// count apart get different numbers, each the same every time it is asked.
func TestSnapshotSlots(t *testing.T) {
	tab := newSlotTable()
	a, b, c := tab.off(7), tab.off(7+snapSlots), tab.off(snapSlots-1)
	if a == b || a == c || b == c {
		t.Fatalf("offsets %#x, %#x, %#x: want three different", a, b, c)
	}
	if tab.off(7) != a || tab.off(7+snapSlots) != b {
		t.Fatal("a snapshot's offset changed when asked again")
	}
	if tab.peek(7+snapSlots) != b || tab.peek(8) != snapBase+8<<snapInoBits {
		t.Errorf("peek: %#x for a taken seq (want %#x), %#x for a new one", tab.peek(7+snapSlots), b, tab.peek(8))
	}
	if len(tab.slot) != 3 {
		t.Errorf("peek took a slot: %d taken, want 3", len(tab.slot))
	}
	if a != snapBase+7<<snapInoBits {
		t.Errorf("seq 7: offset %#x, want %#x (its own slot)", a, uint64(snapBase+7<<snapInoBits))
	}
	for _, o := range []uint64{a, b, c} {
		if o < snapBase || o+1<<snapInoBits-1 >= 1<<63 || o+1<<snapInoBits-1 < o {
			t.Errorf("offset %#x: its numbers leave [2^62, 2^63)", o)
		}
	}
}

// TestDeletedSnapshotGoneFromKernel: a snapshot deleted by the mount
// process (meshdrive snapshot delete) is gone from .snapshots a moment
// later, its name and its tree's: the kernel keeps them for
// snapshotEntryTimeout, not the mount's longer entryTimeout, which relies
// on every change going through the kernel.
func TestDeletedSnapshotGoneFromKernel(t *testing.T) {
	s := newStack(t, stackOptions{})
	if err := os.WriteFile(filepath.Join(s.mnt, "a"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.drive.CreateSnapshot(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(s.mnt, snapshotsName, "old")
	for _, p := range []string{snap, filepath.Join(snap, "a")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.drive.DeleteSnapshots(ctx, []string{"old"}, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(snapshotEntryTimeout + snapshotEntryTimeout/2)
	for _, p := range []string{snap, filepath.Join(snap, "a")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %s of a deleted snapshot %v later: %v, want ENOENT", p[len(s.mnt):], snapshotEntryTimeout*3/2, err)
		}
	}
}
