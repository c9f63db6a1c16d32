package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meshdrive/meshdrive/remote/node"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// TestMountRefusesAnotherNodesDir: init records each node's id (the one
// in its directory's mark) in the drive's config. When another node's
// directory takes the place of one of them (the wrong disk mounted at its
// path), the mount counts that node down and says what happened and what
// to do, and writes nothing there; with the node's own directory back it
// opens by itself.
func TestMountRefusesAnotherNodesDir(t *testing.T) {
	longTest(t)
	dir, mp, env, nodes := newDiskDrive(t, "meshdrive")
	cfg, err := loadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, n := range cfg.Nodes {
		mark, err := os.ReadFile(filepath.Join(nodes[i], node.MarkName))
		if err != nil {
			t.Fatal(err)
		}
		if len(n.ID) != 32 || seen[n.ID] || !strings.Contains(string(mark), "id "+n.ID+"\n") {
			t.Fatalf("init recorded node %s's id as %q; its mark holds:\n%s", n.Name, n.ID, mark)
		}
		seen[n.ID] = true
	}

	// Another node's directory where the second node's was.
	other := filepath.Join(t.TempDir(), "other")
	if _, err := remoteopen.Store(t.Context(), other, remoteopen.Options{}); err != nil {
		t.Fatal(err)
	}
	away := nodes[1] + ".away"
	if err := os.Rename(nodes[1], away); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, nodes[1]); err != nil {
		t.Fatal(err)
	}
	st := mountAndWrite(t, env, dir, mp)
	if st.NodesUp != 2 || st.Nodes[1].Up || !strings.Contains(st.Nodes[1].Error, "another node's directory") ||
		!strings.Contains(st.Nodes[1].Error, cfg.Nodes[1].ID) || !strings.Contains(st.Nodes[1].Error, "mount this node's own disk") {
		t.Fatalf("status with another node's directory in the place of node-2's: %+v", st.Nodes)
	}
	if ents, _ := os.ReadDir(nodes[1]); len(ents) != 1 {
		t.Fatalf("the mount wrote into the other node's directory: %v", ents)
	}

	// The node's own disk is back: it opens within the retry period.
	if err := os.Rename(nodes[1], other); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, nodes[1]); err != nil {
		t.Fatal(err)
	}
	waitNodesUp(t, env, dir, 3)
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// TestNodeServeReplacedDisk: a node server's disk is replaced. Started
// again with --new alone, the new disk gets a new id, and the drive
// refuses it as another node, saying to empty the mark and start it with
// --id and the id it recorded; started so, the drive takes it, and check
// --repair fills it.
func TestNodeServeReplacedDisk(t *testing.T) {
	longTest(t)
	d := newRepairDrive(t, 1, 3)
	cfg, err := loadConfig(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	want := cfg.Nodes[2].ID
	addr, nd := d.nodes[2].addr, d.nodeDirs[2]
	replace := func(flags ...string) {
		t.Helper()
		if err := d.nodes[2].stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("node-3 stopped with %v", err)
		}
		d.nodes[2] = startNodeArgs(t, append([]string{"--dir", nd, "--listen", addr, "--log-level", "warn"}, flags...)...)
	}
	if err := os.RemoveAll(nd); err != nil { // the new disk's mount point: empty
		t.Fatal(err)
	}
	if err := os.Mkdir(nd, 0o700); err != nil {
		t.Fatal(err)
	}
	replace("--new")
	st := waitStatus(t, d, "the drive to refuse node-3's new disk", func(s statusReport) bool {
		return len(s.Nodes) == 6 && !s.Nodes[2].Up && strings.Contains(s.Nodes[2].Error, "another node's directory")
	})
	if e := st.Nodes[2].Error; !strings.Contains(e, "start it with --id "+want) || !strings.Contains(e, ": > DIR/"+node.MarkName) {
		t.Fatalf("the drive's refusal of a replaced disk does not say to start the node with --id %s: %s", want, e)
	}
	if err := os.Truncate(filepath.Join(nd, node.MarkName), 0); err != nil {
		t.Fatal(err)
	}
	replace("--id", want)
	waitStatus(t, d, "node-3 up again", func(s statusReport) bool { return s.NodesUp == 6 })
	if rep, r := d.check(t, "--repair"); r.code != 0 || rep.Repaired == 0 || rep.RepairFailed != 0 {
		t.Fatalf("check --repair of the replaced disk: repaired %d, failed %d\n%s", rep.Repaired, rep.RepairFailed, r)
	}
	if rep, r := d.check(t); r.code != 0 || rep.SegmentsHealthy != rep.Segments || len(rep.MetaMissing) != 0 {
		t.Fatalf("check after the repair: %d of %d segments healthy, meta missing on %v\n%s", rep.SegmentsHealthy, rep.Segments, rep.MetaMissing, r)
	}
	if mark, _ := os.ReadFile(filepath.Join(nd, node.MarkName)); !strings.Contains(string(mark), "id "+want+"\n") {
		t.Fatalf("the replaced disk's mark: %q, want id %s", mark, want)
	}
	d.unmount(t)
}
