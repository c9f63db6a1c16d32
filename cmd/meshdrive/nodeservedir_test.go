package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestNodeServeRefusesUnmountedDisk: node serve given a directory that is
// missing, or the empty mount point of a disk that is not mounted, refuses
// in one line saying what to do, and makes and marks nothing there (it used
// to make the directory and serve it, and the drives' repair filled the
// file system under the disk). The first run of a new node takes --new;
// after it, the node starts without it, and so does a node directory from
// before the mark (it holds objects).
func TestNodeServeRefusesUnmountedDisk(t *testing.T) {
	base := t.TempDir()
	env := cmdEnv()

	// The disk's mount point, the disk not mounted: empty, no mark.
	mnt := filepath.Join(base, "disk1")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, env, "node", "serve", "--dir", mnt, "--listen", "127.0.0.1:0")
	assertRefusal(t, r, "", "", "node directory "+mnt+" is empty, without the mark", "mount the disk", "start it once with --new")
	if ents, err := os.ReadDir(mnt); err != nil || len(ents) != 0 {
		t.Errorf("the refused node serve left %v in the disk's mount point (%v)", ents, err)
	}

	// A directory on a disk that is not mounted: missing.
	missing := filepath.Join(base, "disk2", "meshdrive")
	r = runBin(t, env, "node", "serve", "--dir", missing, "--listen", "127.0.0.1:0")
	assertRefusal(t, r, "", "", "node directory "+missing+" does not exist", "mount the disk", "start it once with --new")
	if _, err := os.Stat(filepath.Join(base, "disk2")); !os.IsNotExist(err) {
		t.Errorf("the refused node serve made the missing directory: %v", err)
	}

	// A new node: --new makes and marks it, and it serves.
	n := startNodeArgs(t, "--dir", missing, "--new", "--listen", "127.0.0.1:0", "--log-level", "warn")
	if _, err := os.Stat(filepath.Join(missing, ".meshdrive-node")); err != nil {
		t.Fatalf("node serve --new left no mark: %v", err)
	}
	if err := n.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("node stopped with %v", err)
	}
	// Its later runs need no --new.
	n = startNodeArgs(t, "--dir", missing, "--listen", "127.0.0.1:0", "--log-level", "warn")
	if err := n.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("node stopped with %v", err)
	}

	// A node directory from before the mark: not empty, so served.
	old := filepath.Join(base, "old")
	if err := os.MkdirAll(filepath.Join(old, "seg"), 0o700); err != nil {
		t.Fatal(err)
	}
	n = startNodeArgs(t, "--dir", old, "--listen", "127.0.0.1:0", "--log-level", "warn")
	if _, err := os.Stat(filepath.Join(old, ".meshdrive-node")); err != nil {
		t.Errorf("a node directory from before the mark was not marked: %v", err)
	}
}
