package main

import (
	"os"
	"path/filepath"
	"strings"
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
	assertRefusal(t, r, "", "", "node directory "+missing+" does not exist", "mount the disk", "start it once with --new",
		"if its disk was replaced, start it once with --new --id ID")
	if _, err := os.Stat(filepath.Join(base, "disk2")); !os.IsNotExist(err) {
		t.Errorf("the refused node serve made the missing directory: %v", err)
	}
	// A replaced disk takes the id its drives recorded: one that is not
	// an id is refused, and nothing is made.
	r = runBin(t, env, "node", "serve", "--dir", missing, "--new", "--id", "0123-not-an-id", "--listen", "127.0.0.1:0")
	assertRefusal(t, r, "", "", `--id "0123-not-an-id"`, "32 hex digits")
	if _, err := os.Stat(filepath.Join(base, "disk2")); !os.IsNotExist(err) {
		t.Errorf("node serve with a bad --id made the directory: %v", err)
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

// TestNodeServeNewOnEveryStart: node serve --new left in a service unit
// gets none of the protection for an unmounted disk, so a start with --new
// of a directory that already is a node's (mark and objects) warns, once,
// to drop --new; a new node's first start does not.
func TestNodeServeNewOnEveryStart(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "node")
	serve := func() string {
		t.Helper()
		errf, err := os.Create(filepath.Join(base, "stderr"))
		if err != nil {
			t.Fatal(err)
		}
		defer errf.Close()
		n := startNodeStderr(t, errf, "--dir", dir, "--new", "--listen", "127.0.0.1:0", "--log-level", "warn")
		b, err := os.ReadFile(errf.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("node stopped with %v", err)
		}
		return string(b)
	}
	if out := serve(); out != "" {
		t.Errorf("the first start of a new node printed: %s", out)
	}
	// The node serves a drive: it holds the drive's objects now.
	n := startNodeArgs(t, "--dir", dir, "--listen", "127.0.0.1:0", "--log-level", "warn")
	mustRun(t, cmdEnv("MESHDRIVE_PASSPHRASE=pw"), "init", "--data", filepath.Join(base, "data"), "--k", "1", "--m", "1",
		"--node", n.url(), "--node", filepath.Join(base, "other"))
	if err := n.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("node stopped with %v", err)
	}
	out := serve()
	for _, want := range []string{"warning: --new given, but " + dir + " is already a node's directory", "meta/",
		"drop --new from the service unit"} {
		if !strings.Contains(out, want) {
			t.Errorf("node serve --new of a used node directory does not say %q: %q", want, out)
		}
	}
	if c := strings.Count(out, "warning"); c != 1 {
		t.Errorf("%d warnings, want one: %s", c, out)
	}
}
