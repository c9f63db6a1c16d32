package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// treeStats counts the regular files under root and their bytes.
func treeStats(t *testing.T, root string) (files int, bytes int64) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files++
			bytes += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, bytes
}

func statusJSON(t *testing.T, env []string, dir string) statusReport {
	t.Helper()
	r := mustRun(t, env, "status", "--data", dir, "--json")
	var s statusReport
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status --json does not parse: %v\n%s", err, r.stdout)
	}
	return s
}

func pathJSON(t *testing.T, env []string, dir, path string) pathReport {
	t.Helper()
	r := mustRun(t, env, "status", "--data", dir, "--json", path)
	var s pathReport
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status --json %s does not parse: %v\n%s", path, err, r.stdout)
	}
	return s
}

// TestEndToEnd runs the binary as a user would: six nodes, init, mount,
// copy a source tree in, sync, unmount, remount with an empty cache and two
// nodes stopped, and compare every byte.
func TestEndToEnd(t *testing.T) {
	longTest(t)
	requireFuse(t)
	base := t.TempDir()
	var nodes []*nodeProc
	initArgs := []string{"init", "--data", filepath.Join(base, "data")}
	for i := range 6 {
		n := startNode(t, filepath.Join(base, "node", string(rune('a'+i))))
		nodes = append(nodes, n)
		initArgs = append(initArgs, "--node", n.url())
	}
	dir := filepath.Join(base, "data")
	mp := filepath.Join(base, "Drive")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	env := cmdEnv("MESHDRIVE_PASSPHRASE=correct horse battery staple")
	r := mustRun(t, env, initArgs...)
	if !strings.Contains(r.stdout, "k=4 m=2 over 6 nodes") {
		t.Errorf("init output: %s", r.stdout)
	}
	var cfg Config
	if b, err := os.ReadFile(filepath.Join(dir, configFile)); err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("config.json: %v", err)
	}
	if cfg.K != 4 || cfg.M != 2 || len(cfg.Nodes) != 6 {
		t.Fatalf("config: %+v", cfg)
	}

	cleanupMount(t, env, dir, mp)
	r = mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	if !mounted(mp) {
		t.Fatalf("mount --daemon exited 0 but nothing is mounted at %s: %s", mp, r)
	}

	goroot := runtime.GOROOT()
	srcs := []string{filepath.Join(goroot, "src", "fmt"), filepath.Join(goroot, "src", "strings")}
	var wantFiles int
	var wantBytes int64
	for _, s := range srcs {
		f, b := treeStats(t, s)
		wantFiles += f
		wantBytes += b
		if out, err := exec.Command("cp", "-r", s, mp+"/").CombinedOutput(); err != nil {
			t.Fatalf("cp -r %s: %v\n%s", s, err, out)
		}
	}
	t.Logf("copied %d files, %d bytes", wantFiles, wantBytes)

	r = mustRun(t, env, "sync", "--data", dir, "--timeout", "5m")
	if !strings.Contains(r.stdout, "grid-durable") {
		t.Errorf("sync output: %s", r.stdout)
	}
	st := statusJSON(t, env, dir)
	if st.State != "durable" || !st.Durable {
		t.Errorf("after sync: state %q durable %v", st.State, st.Durable)
	}
	if st.NodesUp != 6 || st.NodesTotal != 6 || len(st.Nodes) != 6 {
		t.Errorf("nodes up %d of %d (%d listed), want 6 of 6", st.NodesUp, st.NodesTotal, len(st.Nodes))
	}
	if st.Uploads.Files != 0 || st.Uploads.Bytes != 0 || st.Uploads.InFlightBytes != 0 {
		t.Errorf("upload queue after sync: %+v", st.Uploads)
	}
	if st.Uploads.DoneBytes != wantBytes {
		t.Errorf("done_bytes %d, copied %d bytes", st.Uploads.DoneBytes, wantBytes)
	}
	if st.Mountpoint != mp || st.DataDir != dir || st.DriveID != cfg.DriveID || st.K != 4 || st.M != 2 {
		t.Errorf("status drive fields: %+v", st)
	}
	for _, n := range st.Nodes {
		if !n.Up || n.Shards < 2 || strings.Contains(n.URL, "@") {
			t.Errorf("node %+v", n)
		}
	}
	for _, s := range srcs {
		name := filepath.Base(s)
		f, b := treeStats(t, s)
		for _, arg := range []string{filepath.Join(mp, name), name} {
			p := pathJSON(t, env, dir, arg)
			if p.Type != "dir" || p.Files != f || p.Size != b || p.State != "durable" || p.PendingBytes != 0 {
				t.Errorf("status %s: %+v, want %d files %d bytes durable", arg, p, f, b)
			}
		}
	}
	p := pathJSON(t, env, dir, filepath.Join(mp, "fmt", "print.go"))
	if fi, err := os.Stat(filepath.Join(srcs[0], "print.go")); err != nil || p.Type != "file" || p.Size != fi.Size() || p.State != "durable" || p.Blocks < 1 {
		t.Errorf("status print.go: %+v", p)
	}
	mustRun(t, env, "cache", "clear", "--data", dir)

	mustRun(t, env, "unmount", "--data", dir, mp)
	if mounted(mp) || !lockFree(t, dir) {
		t.Fatalf("after unmount: mounted %v, lock free %v", mounted(mp), lockFree(t, dir))
	}
	if r := runBin(t, env, "status", "--data", dir); r.code == 0 || !strings.Contains(r.stderr, "is not mounted") {
		t.Errorf("status while unmounted: %s", r)
	}

	// Remount with an empty cache and two nodes stopped hard.
	if err := os.RemoveAll(filepath.Join(dir, cacheDir)); err != nil {
		t.Fatal(err)
	}
	nodes[1].stop(t, syscall.SIGKILL)
	nodes[4].stop(t, syscall.SIGKILL)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	// The journal's copies of the small files' blocks too.
	mustRun(t, env, "cache", "clear", "--data", dir)
	for _, s := range srcs {
		if out, err := exec.Command("diff", "-r", s, filepath.Join(mp, filepath.Base(s))).CombinedOutput(); err != nil {
			t.Errorf("diff -r %s: %v\n%s", s, err, out)
		}
	}
	st = statusJSON(t, env, dir)
	if st.NodesUp != 4 {
		t.Errorf("nodes up %d, want 4", st.NodesUp)
	}
	for i, n := range st.Nodes {
		down := i == 1 || i == 4
		if n.Up == down || (down && n.Error == "") {
			t.Errorf("node %d: %+v (stopped: %v)", i, n, down)
		}
	}
	var cs struct{ Fetches uint64 }
	if json.Unmarshal(st.Cache, &cs) != nil || cs.Fetches == 0 {
		t.Errorf("cache stats after reading everything with an empty cache: %s", st.Cache)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)

	// With no node at all the drive still mounts, from its journal.
	for _, n := range nodes {
		n.stop(t, syscall.SIGTERM)
	}
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	ents, err := os.ReadDir(filepath.Join(mp, "fmt"))
	if err != nil || len(ents) == 0 {
		t.Errorf("offline: listing fmt: %v (%d entries)", err, len(ents))
	}
	st = statusJSON(t, env, dir)
	if st.Online || st.NodesUp != 0 {
		t.Errorf("offline status: online %v nodes up %d", st.Online, st.NodesUp)
	}
	// The health watcher's first round may end after the listing and
	// the status above: give it time before unmounting.
	var log []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		log, _ = os.ReadFile(filepath.Join(dir, logFile))
		if strings.Contains(string(log), "offline: no node reachable") || time.Now().After(deadline) {
			break
		}
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	if !strings.Contains(string(log), "offline: no node reachable") {
		t.Errorf("the log does not say the drive is offline within 10 s of mounting:\n%s", log)
	}
	if mounted(mp) || !lockFree(t, dir) {
		t.Errorf("at the end: mounted %v, lock free %v", mounted(mp), lockFree(t, dir))
	}
}
