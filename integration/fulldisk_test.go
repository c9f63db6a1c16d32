package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFullDisk fills disks: a node whose directory is an 8 MiB tmpfs (it
// takes shards until it has no room for another, then placement leaves
// it out, and the uploader places shards on the other nodes of a grid of
// 7), and a data dir (journal and cache) on a small tmpfs while no node
// is reachable (writers get ENOSPC; the drive stays mountable and
// consistent and uploads everything once the nodes are back).
func TestFullDisk(t *testing.T) {
	requireEnv(t)
	requireRoot(t)
	s := newSuite(t, "full-disk")
	var verified atomic.Int64
	var enospc atomic.Int64
	s.run(t, "node-disk-full", func(t *testing.T) { fullNode(t, &verified) })
	s.run(t, "journal-disk-full", func(t *testing.T) { fullJournal(t, &verified, &enospc) })
	s.figure("a node on an 8 MiB tmpfs filled up; the journal on a 64 MiB tmpfs filled up (ENOSPC seen by %d writers); bytes verified afterwards: %s; bytes lost: 0 unless a subtest failed",
		enospc.Load(), mib(verified.Load()))
}

func fullNode(t *testing.T, verified *atomic.Int64) {
	small := mountTmpfs(t, "8m")
	nodes := startNodes(t, 7, filepath.Join(small, "node"))
	d := newDrive(t, driveOptions{Nodes: nodeURLs(nodes), K: 4, M: 2})
	d.mount(t, nil)
	// Rounds of 8 MiB (segments of about 2 MiB shards): the small node
	// takes a few shards, until status marks it FULL. Placement follows
	// segment ids, which follow the drive's random key, so whether a
	// given round lands a shard on it is chance (6 in 7 per segment):
	// write at least 6 rounds, and on until it is full.
	const minRounds, maxRounds = 6, 24
	files := fileSet{}
	round := func(r int) {
		f := makeFiles(fmt.Sprintf("r%d/f", r), 2, 4<<20, uint64(70+r))
		f.write(t, d.mnt)
		d.sync(t, 3*time.Minute)
		for k, v := range f {
			files[k] = v
		}
	}
	r := 0
	for st := d.status(t); r < maxRounds && (r < minRounds || !st.Nodes[0].Full); st = d.status(t) {
		round(r)
		r++
	}
	st := d.status(t)
	t.Logf("small node: %d bytes free of 8 MiB after %s written; status nodes: %+v; uploads: %+v", freeBytes(t, small), mib(files.bytes()), st.Nodes, st.Uploads)
	if !st.Nodes[0].Full {
		t.Fatalf("the 8 MiB node never filled up (%d bytes free) after %s written: the test proves nothing", freeBytes(t, small), mib(files.bytes()))
	}
	// Full, and known to be: rounds written now send it no shard to be
	// refused (smaller ones, of metadata or a short segment, may fit).
	// The node logs every failed request; a full disk is status=507.
	refused := func() int { return strings.Count(fileTail(nodes[0].logPath, 1<<20), "status=507") }
	before := refused()
	for range 4 {
		round(r)
		r++
	}
	if after := refused(); after != before {
		t.Errorf("the full node refused %d shards as full after status marked it FULL (%d before)", after-before, before)
	}
	t.Logf("the small node refused %d shards as full in all", refused())
	count := shardCount(t, nodeDirs(nodes))
	for seg, n := range count {
		if n < 5 {
			t.Errorf("segment %s has %d shards, want at least k+1=5", seg, n)
		}
	}
	d.unmount(t)
	d.mount(t, nil)
	d.cacheClear(t)
	verified.Add(files.check(t, d.mnt))
	d.unmount(t)
	d.checkJournal(t)
}

func fullJournal(t *testing.T, verified, enospc *atomic.Int64) {
	data := mountTmpfs(t, "64m")
	nodes := startNodes(t, 6)
	d := newDrive(t, driveOptions{Nodes: nodeURLs(nodes), K: 4, M: 2, Data: filepath.Join(data, "drive")})
	for _, n := range nodes {
		n.kill(t) // offline: nothing drains the journal
	}
	d.mount(t, nil)
	kept := fileSet{}
	var fullErr error
	for i := range 64 {
		name := fmt.Sprintf("f-%03d", i)
		c := content{seed: uint64(900 + i), size: 4 << 20}
		if err := writeContent(d.path(name), c); err != nil {
			fullErr = err
			break
		}
		kept[name] = c
	}
	if fullErr == nil {
		t.Fatalf("wrote 256 MiB into a journal on a 64 MiB tmpfs without an error")
	}
	if !errors.Is(fullErr, syscall.ENOSPC) {
		t.Errorf("writer got %v, want ENOSPC", fullErr)
	} else {
		enospc.Add(1)
	}
	t.Logf("journal full after %d files (%s): %v", len(kept), mib(kept.bytes()), fullErr)
	if len(kept) == 0 {
		t.Errorf("not even one 4 MiB file fit before ENOSPC")
	}
	// The drive stays usable: what was written reads back, small metadata
	// operations still work or fail cleanly, and unmount is clean.
	verified.Add(kept.check(t, d.mnt))
	if err := os.Remove(d.path(fmt.Sprintf("f-%03d", len(kept)))); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove the partial file: %v", err)
	}
	d.unmount(t)
	d.checkJournal(t)
	// Mountable again, still offline; then the nodes return and it drains.
	d.mount(t, nil)
	verified.Add(kept.check(t, d.mnt))
	for _, n := range nodes {
		n.start(t)
	}
	start := time.Now()
	d.sync(t, 5*time.Minute)
	t.Logf("sync after the nodes returned took %v", time.Since(start).Round(time.Millisecond))
	d.unmount(t)
	d.mount(t, nil)
	d.cacheClear(t)
	verified.Add(kept.check(t, d.mnt))
	d.unmount(t)
	d.checkJournal(t)
}
