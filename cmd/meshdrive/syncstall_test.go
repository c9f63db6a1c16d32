package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSyncSaysWhyItWaits: with too few nodes up to store a segment, sync
// used to print "0 B/s, ETA unknown" until it gave up, never why; the
// mount knew (status showed the upload error). sync now prints the
// upload's error and that it is retried.
func TestSyncSaysWhyItWaits(t *testing.T) {
	requireFuse(t)
	base := t.TempDir()
	dir, nodes, env := newCluster(t, base, "correct horse battery staple")
	mp := filepath.Join(base, "Drive")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	// Two nodes of six stopped: a segment needs k+1 = 5 of them.
	for _, n := range nodes[4:] {
		if err := n.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("node stopped with %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(mp, "f"), bytes.Repeat([]byte("waits for a node "), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, env, "sync", "--data", dir, "--timeout", "20s")
	if r.code == 0 {
		t.Fatalf("sync with too few nodes up succeeded: %s", r)
	}
	if !strings.Contains(r.stdout+r.stderr, "too few nodes up to store a segment") || !strings.Contains(r.stdout+r.stderr, "retr") {
		t.Errorf("sync does not say why it waits: %s", r)
	}
	// status shows the error on its one line, not one line a shard.
	r = mustRun(t, env, "status", "--data", dir)
	if !strings.Contains(r.stdout, "down: bring node-5, node-6 back") || !strings.Contains(r.stdout, "meshdrive node remove NAME") {
		t.Errorf("status does not say what to do about the stopped nodes: %s", r)
	}
	if !strings.Contains(r.stdout, "upload errors, last: ") {
		t.Errorf("status does not show the upload error: %s", r)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "shard ") {
			t.Errorf("status splits an error over lines: %q\n%s", line, r.stdout)
		}
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}
