package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// TestNodeSpaceNotes: a node whose disk has less free space than one
// shard of a segment is marked FULL in status and node list, with what to
// do; an S3 node's free space, which S3 does not report, is explained as
// normal rather than shown as "?".
func TestNodeSpaceNotes(t *testing.T) {
	requireFuse(t)
	base := t.TempDir()
	small := filepath.Join(base, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	// A real small disk: 1 MiB of tmpfs, less than a shard of a 16 MiB
	// segment over k=4 (4 MiB).
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(small, 0) })
	full := startNode(t, filepath.Join(small, "node"))
	t.Cleanup(func() { full.stop(t, syscall.SIGTERM) }) // before the tmpfs is unmounted
	addr := remotetest.StartVersitygw(t)
	env := cmdEnv("MESHDRIVE_PASSPHRASE=correct horse battery staple",
		"AWS_ACCESS_KEY_ID="+remotetest.VersitygwAccess, "AWS_SECRET_ACCESS_KEY="+remotetest.VersitygwSecret, "AWS_REGION=us-east-1")
	dir, mp := filepath.Join(base, "data"), filepath.Join(base, "Drive")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"init", "--data", dir, "--k", "4", "--m", "2", "--node", full.url(), "--node", "s3://spacebkt/n?endpoint=" + addr + "&secure=false"}
	for i := range 4 {
		args = append(args, "--node", filepath.Join(base, "node", string(rune('a'+i))))
	}
	mustRun(t, env, args...)
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, "--repair-interval", "1h", mp)

	st := mustRun(t, env, "status", "--data", dir).stdout
	nl := mustRun(t, env, "node", "list", "--data", dir).stdout
	for what, out := range map[string]string{"status": st, "node list": nl} {
		for _, want := range []string{"node-1 is full: ", "less than one shard of a segment needs (4.0 MiB)",
			"meshdrive node add URL", "meshdrive node drain node-1", "node-2: free n/a, as S3 does not report free space"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s does not say %q:\n%s", what, want, out)
			}
		}
		if strings.Contains(out, "free ?") || strings.Contains(out, "? of ?") {
			t.Errorf("%s shows free space as ?:\n%s", what, out)
		}
	}
	if !strings.Contains(nl, "up,FULL") || !strings.Contains(st, "FULL") {
		t.Errorf("the full node is not marked FULL:\n%s\n%s", st, nl)
	}
	if strings.Count(nl, "FULL") != 1 {
		t.Errorf("only node-1 is full:\n%s", nl)
	}
}
