package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestGCKills kills the mount with SIGKILL at random moments of garbage
// collections (20 times), with files written and deleted between: nothing
// live is ever lost, and a last gc finishes the job.
func TestGCKills(t *testing.T) {
	longTest(t)
	requireFuse(t)
	base := t.TempDir()
	dir, _, env := newCluster(t, base, "kill the collector")
	setConfig(t, dir, "retention", "last=0") // deleted files are not kept by snapshots
	mp := filepath.Join(base, "Drive")
	os.Mkdir(mp, 0o755)
	cleanupMount(t, env, dir, mp)
	rng := mrand.New(mrand.NewPCG(3, 4))
	live := map[string][]byte{}
	next := 0
	verify := func(what string) {
		t.Helper()
		for name, data := range live {
			got, err := os.ReadFile(filepath.Join(mp, name))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: %s: %v (%d bytes, want %d)", what, name, err, len(got), len(data))
			}
		}
	}
	for k := range 20 {
		mustRun(t, env, "mount", "--daemon", "--data", dir, "--gc-interval", "0", "--metadata-interval", "500ms", mp)
		pid, _ := lockHolder(dir)
		if pid <= 0 {
			t.Fatal("no mount process holds the lock") // kill(0) would kill the test's own process group
		}
		for range 3 {
			data := make([]byte, 64<<10+rng.IntN(3<<20))
			rand.Read(data)
			name := fmt.Sprintf("f%04d", next)
			next++
			if err := os.WriteFile(filepath.Join(mp, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			live[name] = data
		}
		for name := range live {
			if rng.IntN(3) == 0 {
				if err := os.Remove(filepath.Join(mp, name)); err != nil {
					t.Fatal(err)
				}
				delete(live, name)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		gc := exec.CommandContext(ctx, meshdriveBin(t), "gc", "--data", dir, "--grace", "1ns")
		gc.Env = env
		if err := gc.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		syscall.Kill(pid, syscall.SIGKILL)
		waitGone(t, pid)
		gc.Wait()
		cancel()
		mustRun(t, env, "unmount", "--data", dir, mp)
		if k%5 == 4 {
			// Read everything back from the grid: no cache, fresh mount.
			os.RemoveAll(filepath.Join(dir, cacheDir))
			mustRun(t, env, "mount", "--daemon", "--data", dir, "--gc-interval", "0", mp)
			verify(fmt.Sprintf("after kill %d", k))
			mustRun(t, env, "unmount", "--data", dir, mp)
		}
	}
	mustRun(t, env, "mount", "--daemon", "--data", dir, "--gc-interval", "0", mp)
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	r := mustRun(t, env, "gc", "--data", dir, "--grace", "1ns")
	t.Logf("final gc: %s", r.stdout)
	mustRun(t, env, "unmount", "--data", dir, mp)
	os.RemoveAll(filepath.Join(dir, cacheDir))
	mustRun(t, env, "mount", "--daemon", "--data", dir, "--gc-interval", "0", mp)
	verify("after the final gc")
	var left int64
	for _, d := range live {
		left += int64(len(d))
	}
	after := nodeDirBytes(t, filepath.Join(base, "node"))
	// A segment at least half live (the default threshold) is left as it
	// is, so the bound is twice the live bytes times n/k, plus headers and
	// metadata; the 60 files written weigh more than three times that.
	if limit := left*6/4*2 + 4<<20; after > limit {
		t.Errorf("after the final gc the node dirs hold %d bytes for %d live bytes (want at most %d)", after, left, limit)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// TestGCUnderLoad runs collections while fio writes and verifies a file
// on the mount: no error, nothing lost.
func TestGCUnderLoad(t *testing.T) {
	longTest(t)
	requireFuse(t)
	fio, err := exec.LookPath("fio")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("fio is required under CI: %v", err)
		}
		t.Skip("fio not installed")
	}
	base := t.TempDir()
	dir, _, env := newCluster(t, base, "busy")
	mp := filepath.Join(base, "Drive")
	os.Mkdir(mp, 0o755)
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, "--gc-interval", "0", "--metadata-interval", "300ms", mp)
	// Garbage to collect meanwhile.
	for i := range 8 {
		data := make([]byte, 2<<20)
		rand.Read(data)
		p := filepath.Join(mp, fmt.Sprintf("junk%d", i))
		os.WriteFile(p, data, 0o644)
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	for i := range 8 {
		os.Remove(filepath.Join(mp, fmt.Sprintf("junk%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fio, "--name=gcload", "--directory="+mp, "--size=32m", "--bs=64k",
		"--rw=randrw", "--verify=crc32c", "--verify_state_save=0", "--do_verify=1", "--verify_fatal=1", "--loops=2", "--ioengine=psync", "--fsync=64")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	runs := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				log, _ := os.ReadFile(filepath.Join(dir, logFile))
				t.Fatalf("fio failed while gc ran %d times: %v\n%s\nthe mount's log:\n%s", runs, err, out.String(), log)
			}
			if runs == 0 {
				t.Fatalf("fio finished before any gc ran")
			}
			t.Logf("fio verified while gc ran %d times", runs)
			mustRun(t, env, "unmount", "--data", dir, mp)
			return
		default:
		}
		mustRun(t, env, "gc", "--data", dir, "--grace", "1ns")
		runs++
	}
}
