package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailedInitTakesBackItsKey: an init that fails while it stores the
// drive key (one node cannot take it) deletes the copies the others took,
// so that init again, with that node fixed, succeeds. The copies stayed,
// and the second init said the nodes already held a drive.
func TestFailedInitTakesBackItsKey(t *testing.T) {
	env := cmdEnv("MESHDRIVE_PASSPHRASE=correct horse battery staple")
	a, b := startNode(t, t.TempDir()), startNode(t, t.TempDir())
	// A folder given as a node, where meta/key is a folder: the key's
	// put fails there, and there only.
	odd := t.TempDir()
	if err := os.MkdirAll(filepath.Join(odd, "meta", "key"), 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"--node", a.url(), "--node", b.url(), "--node", odd, "--k", "2", "--m", "1"}
	r := runBin(t, env, append([]string{"init", "--data", filepath.Join(t.TempDir(), "data")}, args...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "nodes stored the drive key") {
		t.Fatalf("init with a node that cannot take the key: %s", r)
	}
	if err := os.Remove(filepath.Join(odd, "meta", "key")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, append([]string{"init", "--data", filepath.Join(t.TempDir(), "data")}, args...)...)
}
