package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/journal/repair"
)

// TestCheckNodeDownSummary: with one of six real nodes stopped, every
// file is degraded. check's text names the first checkDegradedShown of
// them and counts the rest, gives the count by state, and names the
// stopped node as the cause and what to do; --verbose and --json name
// every file.
func TestCheckNodeDownSummary(t *testing.T) {
	const files = checkDegradedShown + 5
	d := newRepairDrive(t, 1, files)
	d.nodes[2].stop(t, syscall.SIGKILL)

	r := runBin(t, d.env, "check", "--data", d.dir)
	if r.code != 0 {
		t.Fatalf("check with a node stopped: %s", r)
	}
	if n := strings.Count(r.stdout, "degraded       /"); n != checkDegradedShown {
		t.Errorf("check names %d degraded files, want %d:\n%s", n, checkDegradedShown, r.stdout)
	}
	for _, want := range []string{
		"degraded       ... and 5 more (check --verbose or --json names every file)",
		fmt.Sprintf("checked %d files: 0 healthy, %d degraded, 0 unrecoverable", files, files),
		"nodes that did not answer: node-3",
		"bring node-3 back",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check with a node stopped does not say %q:\n%s", want, r.stdout)
		}
	}

	r = runBin(t, d.env, "check", "--data", d.dir, "--verbose")
	if n := strings.Count(r.stdout, "degraded       /"); r.code != 0 || n != files || strings.Contains(r.stdout, "more (check --verbose") {
		t.Errorf("check --verbose names %d degraded files, want %d:\n%s", n, files, r)
	}

	rep, r := d.check(t)
	if r.code != 0 || len(rep.Files) != files || rep.Degraded != files || len(rep.Down) != 1 || rep.Down[0] != "node-3" {
		t.Errorf("check --json with a node stopped: %d files, %d degraded, down %v\n%s", len(rep.Files), rep.Degraded, rep.Down, r)
	}
	d.unmount(t)
}

// TestPrintCheckUnrecoverableAlwaysNamed: the files below k are named
// however many degraded ones come before them in path order, and the
// degraded ones are cut at checkDegradedShown.
func TestPrintCheckUnrecoverableAlwaysNamed(t *testing.T) {
	rep := &fs.RepairReport{Down: []string{"node-2", "node-5"}}
	for i := range 3 * checkDegradedShown {
		rep.Files = append(rep.Files, repair.FileReport{Path: fmt.Sprintf("/a/f%03d", i), State: fs.FileDegraded, Shards: 5, N: 6})
		rep.Degraded++
	}
	rep.Files = append(rep.Files, repair.FileReport{Path: "/z/lost", State: fs.FileUnrecoverable, Shards: 3, N: 6, Segments: []string{"s1"}})
	rep.Unrecoverable++
	var b strings.Builder
	printCheck(&b, rep, false)
	out := b.String()
	if !strings.Contains(out, "UNRECOVERABLE  /z/lost: 3 of 6 shards, segments s1") {
		t.Errorf("the file below k is not named:\n%s", out)
	}
	if n := strings.Count(out, "degraded       /a/"); n != checkDegradedShown || !strings.Contains(out, fmt.Sprintf("... and %d more", 2*checkDegradedShown)) {
		t.Errorf("%d degraded files named, want %d and a count of the rest:\n%s", n, checkDegradedShown, out)
	}
	if !strings.Contains(out, "bring node-2, node-5 back") {
		t.Errorf("the nodes down are not named as the cause:\n%s", out)
	}
}
