package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nodeDirBytes sums the files under the node directories.
func nodeDirBytes(t *testing.T, root string) int64 {
	t.Helper()
	var sum int64
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			sum += fi.Size()
		}
		return nil
	})
	return sum
}

// TestGarbageCollection: 256 MiB in files of mixed sizes, synced; 90% of
// them deleted and the snapshots that held them expired (a retention that
// keeps none); gc brings the node dirs down to at most twice what is left
// times n/k (no segment under half live is kept) plus the metadata; what is left reads byte-exact with the cache
// cleared and 2 nodes stopped, and a recover from scratch still works.
func TestGarbageCollection(t *testing.T) {
	longTest(t)
	requireFuse(t)
	base := t.TempDir()
	dir, nodes, env := newCluster(t, base, "collect me")
	setConfig(t, dir, "retention", "last=0") // no snapshot is kept but the newest checkpoint
	mp := filepath.Join(base, "Drive")
	os.Mkdir(mp, 0o755)
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, "--gc-interval", "0", mp)

	rng := mrand.New(mrand.NewPCG(1, 2))
	files := map[string][]byte{}
	var total int64
	for i := 0; total < 256<<20; i++ {
		data := make([]byte, 4<<10+rng.IntN(4<<20))
		rand.Read(data)
		name := fmt.Sprintf("f%03d", i)
		if err := os.WriteFile(filepath.Join(mp, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = data
		total += int64(len(data))
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "5m")
	full := nodeDirBytes(t, filepath.Join(base, "node"))
	var left int64
	kept := map[string][]byte{}
	for name, data := range files {
		if rng.IntN(10) == 0 {
			kept[name] = data
			left += int64(len(data))
			continue
		}
		if err := os.Remove(filepath.Join(mp, name)); err != nil {
			t.Fatal(err)
		}
	}
	r := mustRun(t, env, "gc", "--data", dir, "--dry-run")
	if !strings.Contains(r.stdout, "would free") || nodeDirBytes(t, filepath.Join(base, "node")) < full {
		t.Errorf("gc --dry-run: %s", r)
	}
	r = mustRun(t, env, "gc", "--data", dir, "--grace", "1ns")
	after := nodeDirBytes(t, filepath.Join(base, "node"))
	st := statusJSON(t, env, dir)
	t.Logf("%d files, %d bytes; kept %d files, %d bytes; node dirs %d -> %d bytes; %s", len(files), total, len(kept), left, full, after, r.stdout)
	// gc keeps a segment that is at least half live (the default
	// threshold, 0.5): what is left is at most twice the live bytes,
	// times n/k, plus the metadata (a few records). (1.2 x was too
	// tight: a CI run kept 1.94 x.)
	limit := left*6/4*2 + 4<<20
	if after > limit {
		t.Errorf("after gc the node dirs hold %d bytes, want at most %d (2 x %d x 6/4 + metadata)", after, limit, left)
	}
	if st.GC.Last == nil || st.GC.Last.FreedBytes == 0 {
		t.Errorf("status after gc: %+v", st.GC)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)

	// What is left reads byte-exact from the grid, with the cache gone
	// and two nodes stopped.
	os.RemoveAll(filepath.Join(dir, cacheDir))
	nodes[0].stop(t, syscall.SIGKILL)
	nodes[3].stop(t, syscall.SIGKILL)
	mustRun(t, env, "mount", "--daemon", "--data", dir, "--gc-interval", "0", mp)
	check := func(what string) {
		t.Helper()
		ents, err := os.ReadDir(mp)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != len(kept) {
			t.Errorf("%s: %d files, want %d", what, len(ents), len(kept))
		}
		for name, data := range kept {
			got, err := os.ReadFile(filepath.Join(mp, name))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: %s: %v (%d bytes, want %d)", what, name, err, len(got), len(data))
			}
		}
	}
	check("after gc, 2 nodes down")
	mustRun(t, env, "unmount", "--data", dir, mp)

	// A recover from scratch still works (from a node that is up).
	dir2 := filepath.Join(base, "data2")
	mustRun(t, env, "recover", "--node", nodes[1].url(), "--data", dir2)
	cleanupMount(t, env, dir2, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir2, "--gc-interval", "0", mp)
	check("recovered after gc")
	mustRun(t, env, "unmount", "--data", dir2, mp)
}

// setConfig sets one field of DATA/config.json.
func setConfig(t *testing.T, dir, key string, value any) {
	t.Helper()
	p := filepath.Join(dir, configFile)
	var cfg map[string]any
	b, err := os.ReadFile(p)
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg[key] = value
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
