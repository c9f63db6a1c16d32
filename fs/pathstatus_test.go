package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A folder or a symlink just made is only on this machine until the
// metadata naming it reaches the grid: status PATH says local, as it does
// for a file (it said durable, so a folder made a moment before the
// laptop was lost was reported safe).
func TestStatusOfNewFolderAndSymlink(t *testing.T) {
	s := newStack(t, stackOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.drive.SyncGrid(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.mnt, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("new", filepath.Join(s.mnt, "link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new", "link"} {
		st, err := s.drive.Status(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != "local" {
			t.Errorf("status %s (%s) before its metadata is on the grid: %s, want local", p, st.Type, st.State)
		}
	}
	if err := s.drive.SyncGrid(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new", "link", ""} {
		st, err := s.drive.Status(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != "durable" {
			t.Errorf("status /%s (%s) after SyncGrid: %s, want durable", p, st.Type, st.State)
		}
	}
}
