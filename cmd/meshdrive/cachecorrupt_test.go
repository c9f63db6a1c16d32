package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorruptCacheFileUnderMount: blocks in the disk tier (here the
// staging files the uploader handed over) with one byte flipped while the
// drive was unmounted are detected when read through the mount, the files
// dropped and the blocks read from the grid: a random read of one file
// (the frame path) and a whole-file read of the other (the block path)
// both get the right bytes, and the log says what happened.
func TestCorruptCacheFileUnderMount(t *testing.T) {
	dir, mp, env, _ := newDiskDrive(t, "")
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	want := map[string][]byte{"big": make([]byte, 600_000), "big2": make([]byte, 700_000)}
	for name, b := range want {
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(mp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	mustRun(t, env, "unmount", "--data", dir, mp)

	// One byte flipped in each block of the disk tier.
	files, _ := filepath.Glob(filepath.Join(dir, "cache", "blocks", "*", "*"))
	if len(files) != 2 {
		t.Fatalf("%d blocks in the disk tier, want 2: %v", len(files), files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x20
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)

	// A random read: the frames that hold it, from the disk tier.
	f, err := os.Open(filepath.Join(mp, "big"))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	_, err = f.ReadAt(got, 300_000)
	f.Close()
	if w := want["big"][300_000 : 300_000+8192]; err != nil || !bytes.Equal(got, w) {
		t.Fatalf("random read over a damaged cache file: %v (right bytes: %v)", err, bytes.Equal(got, w))
	}
	// A whole read of the other file: its block from the disk tier.
	if b, err := os.ReadFile(filepath.Join(mp, "big2")); err != nil || !bytes.Equal(b, want["big2"]) {
		t.Fatalf("whole read over a damaged cache file: %v (right bytes: %v)", err, bytes.Equal(b, want["big2"]))
	}
	if b, err := os.ReadFile(filepath.Join(mp, "big")); err != nil || !bytes.Equal(b, want["big"]) {
		t.Fatalf("whole read after the random one: %v", err)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	log, _ := os.ReadFile(filepath.Join(dir, "meshdrive.log"))
	if n := strings.Count(string(log), "corrupt cache file"); n < 2 {
		t.Errorf("the log says %d times that a cache file was corrupt, want 2:\n%s", n, log)
	}
}
