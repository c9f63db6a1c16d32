package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// status, pin and check of a path under MOUNTPOINT/.snapshots say it is a
// snapshot's, not "no such file or directory" for a file that is there.
func TestRelPathRefusesSnapshots(t *testing.T) {
	mp := t.TempDir()
	c := &controlServer{o: controlOptions{mountpoint: mp}}
	for _, p := range []string{filepath.Join(mp, ".snapshots"), filepath.Join(mp, ".snapshots", "2026-12-07T01:00", "docs", "a.txt")} {
		_, err := c.relPath("", p)
		if err == nil || !strings.Contains(err.Error(), "read-only history") {
			t.Errorf("relPath(%s): %v, want it to say the path is a snapshot's", p, err)
		}
	}
	if rel, err := c.relPath("", filepath.Join(mp, "docs", ".snapshots")); err != nil || rel != "docs/.snapshots" {
		t.Errorf("a folder named .snapshots below the root: %q, %v", rel, err)
	}
}
