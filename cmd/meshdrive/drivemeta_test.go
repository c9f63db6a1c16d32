package main

import (
	"testing"
	"time"
)

// TestMountRestoresDriveMeta: a node that lost everything (a disk
// replaced) got its shards back from the mount's background repair, but
// its copy of the drive key and config only from check --repair, which
// the operator had no reason to run: status said every segment had all
// its shards, and meshdrive recover could not start from that node. The
// mount now stores them again by itself, every --repair-interval.
func TestMountRestoresDriveMeta(t *testing.T) {
	d := newRepairDrive(t, 1, 3, "--repair-interval", "2s")
	wipe(t, d.nodeDirs[2])
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, r := d.check(t)
		if r.code == 0 && len(rep.MetaMissing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after wiping node-3 the mount has not stored the drive key and config on it again: missing on %v\n%s", rep.MetaMissing, r)
		}
		time.Sleep(time.Second)
	}
}
