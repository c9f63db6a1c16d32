package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRestoreKeepsSetIDBits: snapshot restore (copyTree) gives a copied
// file its mode, set-user-ID and set-group-ID included. It set the mode
// and then the owner, and chown(2) clears both bits of a file that is
// not a directory (root's chown too), so a restored program lost them.
func TestRestoreKeepsSetIDBits(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	for name, mode := range map[string]uint32{"suid": 0o4755, "sgid": 0o2755, "both": 0o6711} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"suid": 0o4755, "sgid": 0o2755, "both": 0o6711} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dst, name), &st); err != nil {
			t.Fatal(err)
		}
		if got := st.Mode & 0o7777; got != want {
			t.Errorf("%s restored with mode %o, want %o", name, got, want)
		}
	}
}
