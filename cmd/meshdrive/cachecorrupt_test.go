package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorruptCacheFileUnderMount: a block in the disk tier (here the
// staging file the uploader handed over) with one byte flipped while the
// drive was unmounted is detected when read through the mount, the file
// dropped and the block read from the grid: a random read (the frame
// path) and a whole-file read (the block path) both get the right bytes,
// and the log says what happened.
func TestCorruptCacheFileUnderMount(t *testing.T) {
	dir, mp, env, _ := newDiskDrive(t, "")
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	want := make([]byte, 600_000)
	rand.Read(want)
	if err := os.WriteFile(filepath.Join(mp, "big"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	mustRun(t, env, "unmount", "--data", dir, mp)

	flip := func() string {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, "cache", "blocks", "*", "*"))
		if len(files) != 1 {
			t.Fatalf("%d blocks in the disk tier, want 1: %v", len(files), files)
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x20
		if err := os.WriteFile(files[0], b, 0o600); err != nil {
			t.Fatal(err)
		}
		return files[0]
	}

	// A random read: the frames that hold it, from the disk tier.
	flip()
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	f, err := os.Open(filepath.Join(mp, "big"))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	_, err = f.ReadAt(got, 300_000)
	f.Close()
	if err != nil || !bytes.Equal(got, want[300_000:300_000+8192]) {
		t.Fatalf("random read over a damaged cache file: %v (right bytes: %v)", err, bytes.Equal(got, want[300_000:300_000+8192]))
	}
	// A whole read brings the block into the disk tier again.
	if b, err := os.ReadFile(filepath.Join(mp, "big")); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("whole read after the random one: %v", err)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)

	// A whole read: the block from the disk tier.
	flip()
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	if b, err := os.ReadFile(filepath.Join(mp, "big")); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("whole read over a damaged cache file: %v (right bytes: %v)", err, bytes.Equal(b, want))
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	log, _ := os.ReadFile(filepath.Join(dir, "meshdrive.log"))
	if n := strings.Count(string(log), "corrupt cache file"); n < 2 {
		t.Errorf("the log says %d times that a cache file was corrupt, want 2:\n%s", n, log)
	}
}
