package main

import (
	"os"
	"path/filepath"
	"strings"
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
