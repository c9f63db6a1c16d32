package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMountDoesNotMakeMissingNodeDir: a drive whose nodes are directories
// given at init (spare disks) is mounted while one of them is missing, as
// when its disk is not mounted. The mount counts that node as down, says
// why, and does not make the directory (repair would otherwise fill it on
// the file system under the disk); once the directory is back, the node
// opens by itself.
func TestMountDoesNotMakeMissingNodeDir(t *testing.T) {
	longTest(t)
	dir, mp, env, nodes := newDiskDrive(t, "meshdrive")
	// The second disk is not mounted: its node directory is gone.
	away := nodes[1] + ".away"
	if err := os.Rename(nodes[1], away); err != nil {
		t.Fatal(err)
	}
	st := mountAndWrite(t, env, dir, mp)
	if st.NodesUp != 2 || len(st.Nodes) != 3 || st.Nodes[1].Up || !strings.Contains(st.Nodes[1].Error, "does not exist") ||
		!strings.Contains(st.Nodes[1].Error, "mount the disk") {
		t.Fatalf("status with a node's directory missing: %+v", st.Nodes)
	}
	if _, err := os.Stat(nodes[1]); !os.IsNotExist(err) {
		t.Fatalf("the mount made the missing node directory: %v", err)
	}
	// The disk is mounted again: the node opens within the retry period.
	if err := os.Rename(away, nodes[1]); err != nil {
		t.Fatal(err)
	}
	waitNodesUp(t, env, dir, 3)
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// mountAndWrite mounts the drive (unmounted at cleanup), writes a file f
// there and returns the mount's status.
func mountAndWrite(t *testing.T, env []string, dir, mp string) statusReport {
	t.Helper()
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	return statusJSON(t, env, dir)
}

// waitNodesUp waits, a minute at most, for the mount's status to count n
// nodes up (a node that could not be opened is tried again every 10 s).
func waitNodesUp(t *testing.T, env []string, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for st := statusJSON(t, env, dir); st.NodesUp != n; st = statusJSON(t, env, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not open once its directory was back: %+v", st.Nodes)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// newDiskDrive makes a drive (k=2, m=1) whose three nodes are directories
// given to init, as on spare disks (disk1/SUB, ...; SUB may be empty),
// and returns its data dir, an empty mountpoint, the environment and the
// node directories. The test needs FUSE.
func newDiskDrive(t *testing.T, sub string) (dir, mp string, env, nodes []string) {
	t.Helper()
	requireFuse(t)
	base := t.TempDir()
	dir, mp = filepath.Join(base, "data"), filepath.Join(base, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	env = cmdEnv("MESHDRIVE_PASSPHRASE=correct horse battery staple")
	args := []string{"init", "--data", dir, "--k", "2", "--m", "1"}
	for i := range 3 {
		n := filepath.Join(base, "disk"+string(rune('1'+i)), sub)
		nodes = append(nodes, n)
		args = append(args, "--node", n)
	}
	mustRun(t, env, args...)
	return dir, mp, env, nodes
}

// TestMountKeepsOffUnmountedNodeDisk: a node directory's disk goes away
// while the drive is mounted (the directory is then its empty mount
// point). The mount stores nothing there: status counts the node down and
// says to mount the disk again, and a file written meanwhile waits in the
// journal; once the disk is back the file becomes grid-durable.
func TestMountKeepsOffUnmountedNodeDisk(t *testing.T) {
	dir, mp, env, nodes := newDiskDrive(t, "")
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	// The second disk goes; its mount point is left, empty.
	away := nodes[1] + ".away"
	if err := os.Rename(nodes[1], away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(nodes[1], 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "f"), bytes.Repeat([]byte("while the disk is away "), 50000), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	st := statusJSON(t, env, dir)
	for ; st.Nodes[1].Up || st.Uploads.Errors == 0; st = statusJSON(t, env, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("no upload was refused by the node whose disk went away: %+v %+v", st.Nodes, st.Uploads)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(st.Nodes[1].Error, "mount it again") {
		t.Errorf("status of the node whose disk went away: %+v", st.Nodes[1])
	}
	if ents, err := os.ReadDir(nodes[1]); err != nil || len(ents) != 0 {
		t.Fatalf("the mount wrote %v into the disk's empty mount point (%v)", ents, err)
	}
	// The disk is back: the file goes up.
	if err := os.Remove(nodes[1]); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, nodes[1]); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	mustRun(t, env, "unmount", "--data", dir, mp)
}
