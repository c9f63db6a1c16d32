package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestFrozenNode: a node process stopped with SIGSTOP keeps its
// connections open and never answers. Once the mount's health check
// has seen it, a write syncs (its segments stored on the other five
// nodes), check reports the node as not answering and the files as
// degraded, every file reads; after SIGCONT the node is up again.
// Before, each sync and check waited out call timeouts on the node
// (35 s and 50 s; this test took 90 s), and check asked the frozen node
// for its listing; the hang guard here is sync's --timeout.
func TestFrozenNode(t *testing.T) {
	d := newRepairDrive(t, 1, 3)
	frozen := d.nodes[2]
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { frozen.cmd.Process.Signal(syscall.SIGCONT) })
	var name string
	waitStatus(t, d, "status to show the frozen node down", func(s statusReport) bool {
		for _, n := range s.Nodes {
			if n.URL == frozen.url() && !n.Up {
				name = n.Name
				return true
			}
		}
		return false
	})
	b := []byte("written while a node is frozen\n")
	if err := os.WriteFile(filepath.Join(d.mp, "frozen.txt"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	d.files["frozen.txt"] = b
	mustRun(t, d.env, "sync", "--data", d.dir, "--timeout", "60s")
	rep, r := d.check(t)
	if !slices.Equal(rep.Down, []string{name}) || rep.Unrecoverable != 0 || rep.Degraded == 0 {
		t.Fatalf("check with %s frozen: down %v, %d degraded, %d unrecoverable\n%s", name, rep.Down, rep.Degraded, rep.Unrecoverable, r)
	}
	// The check asked the frozen node nothing: the health view said it
	// does not answer.
	skipped := 0
	for _, p := range rep.Problems {
		if p.Node == name && strings.Contains(p.Error, "did not answer the last health check") {
			skipped++
		}
	}
	if skipped == 0 {
		t.Errorf("check names no shard on %s skipped as unresponsive: %+v", name, rep.Problems)
	}
	d.readAll(t, "with a node frozen")

	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, "status to show the node up again", func(s statusReport) bool {
		for _, n := range s.Nodes {
			if n.Name == name {
				return n.Up
			}
		}
		return false
	})
}
