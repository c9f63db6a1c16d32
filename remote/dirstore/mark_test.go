package dirstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshdrive/meshdrive/remote/dirstore"
)

// TestMark: a new store's directory carries the mark, and so does one
// from before marks once opened; with MustExist an empty directory
// without it (a disk's mount point, the disk not mounted) is refused, and
// opens once the mark is put there by hand.
func TestMark(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	if _, err := dirstore.New(fresh, dirstore.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fresh, dirstore.MarkName)); err != nil {
		t.Fatalf("a new store's mark: %v", err)
	}
	old := filepath.Join(base, "old")
	if err := os.MkdirAll(filepath.Join(old, "meta"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "meta", "key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dirstore.New(old, dirstore.Options{MustExist: true}); err != nil {
		t.Fatalf("a store from before marks: %v", err)
	}
	if _, err := os.Stat(filepath.Join(old, dirstore.MarkName)); err != nil {
		t.Fatalf("a store from before marks, once opened: %v", err)
	}
	mp := filepath.Join(base, "mnt")
	if err := os.Mkdir(mp, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := dirstore.New(mp, dirstore.Options{MustExist: true})
	if !errors.Is(err, dirstore.ErrNoDir) || !strings.Contains(err.Error(), "mount the disk") || !strings.Contains(err.Error(), "touch "+filepath.Join(mp, dirstore.MarkName)) {
		t.Fatalf("an empty directory without the mark: %v", err)
	}
	if ents, _ := os.ReadDir(mp); len(ents) != 0 {
		t.Fatalf("the refused open wrote into the directory: %v", ents)
	}
	if err := os.WriteFile(filepath.Join(mp, dirstore.MarkName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := dirstore.New(mp, dirstore.Options{MustExist: true})
	if err != nil {
		t.Fatalf("the directory with the mark put there: %v", err)
	}
	if objs, err := s.List(t.Context(), "", "", 10); err != nil || len(objs) != 0 {
		t.Fatalf("the mark is listed as an object: %v %v", objs, err)
	}
}
