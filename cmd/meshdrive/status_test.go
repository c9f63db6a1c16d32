package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/cache"
	"github.com/meshdrive/meshdrive/fs"
)

// TestOfflineLine: the offline sentence of status reads right for none,
// one and many files and metadata changes.
func TestOfflineLine(t *testing.T) {
	since := time.Date(2025, 3, 1, 12, 0, 0, 0, time.Local)
	now := since.Add(90 * time.Second)
	const by = "; they go up by themselves when nodes come back"
	for _, c := range []struct {
		files, bytes, rows int64
		want               string
	}{
		{0, 0, 0, ": nothing waits for the nodes"},
		{1, 8, 0, ": 1 file (8 B) to upload waits for the nodes; it goes up by itself when nodes come back"},
		{3, 3 << 20, 0, ": 3 files (3.0 MiB) to upload wait for the nodes" + by},
		{0, 0, 1, ": 1 metadata change waits for the nodes; it goes up by itself when nodes come back"},
		{0, 0, 1926, ": 1926 metadata changes wait for the nodes" + by},
		{1, 8, 1, ": 1 file (8 B) to upload and 1 metadata change wait for the nodes" + by},
		{1, 8, 1926, ": 1 file (8 B) to upload and 1926 metadata changes wait for the nodes" + by},
	} {
		r := &statusReport{OfflineSince: &since}
		r.Uploads.Files, r.Uploads.Bytes, r.Metadata.PendingRows = c.files, c.bytes, c.rows
		want := "OFFLINE since 2025-03-01 12:00:00 (1m30s)" + c.want
		if got := offlineLine(r, now); got != want {
			t.Errorf("files %d rows %d:\n got %q\nwant %q", c.files, c.rows, got, want)
		}
	}
}

// TestBandwidthLine: the flags' limits are named as what applies outside
// the schedule's windows only when it has no "otherwise" rule (which
// applies there instead).
func TestBandwidthLine(t *testing.T) {
	for _, c := range []struct {
		sched, want, not string
	}{
		{"08:00-18:00 up 1MiB/s, otherwise unlimited", "(schedule: 08:00-18:00 up 1MiB/s, otherwise unlimited)\n", "outside it"},
		{"08:00-18:00 up 1MiB/s", "(schedule: 08:00-18:00 up 1MiB/s; outside it up 2MiB/s, down unlimited)\n", ""},
	} {
		r := &statusReport{}
		r.Bandwidth = bandwidthStatus{Up: 1 << 20, BaseUp: 2 << 20, Schedule: c.sched}
		var b strings.Builder
		printBandwidth(&b, r)
		if !strings.Contains(b.String(), c.want) || c.not != "" && strings.Contains(b.String(), c.not) {
			t.Errorf("schedule %q:\n%s\nwant it to say %q", c.sched, b.String(), c.want)
		}
	}
}

// TestRepairLine: the repair paragraph counts the segments that owe repair
// now (the journal's count), not only at the repairer's last survey: a
// segment uploaded with a node down made status say "1 segments owe
// repair" under uploads and "every segment has all its shards" under
// repair.
func TestRepairLine(t *testing.T) {
	for _, c := range []struct {
		st   fs.RepairStats
		owed int64
		want string
	}{
		{fs.RepairStats{LastPass: time.Now()}, 1, "repair: 1 segment owes repair\n"},
		{fs.RepairStats{LastPass: time.Now(), Owed: 3}, 1, "repair: 3 segments owe repair\n"},
		{fs.RepairStats{LastPass: time.Now()}, 0, "repair: every segment has all its shards\n"},
		{fs.RepairStats{}, 0, "repair: no pass yet\n"},
		{fs.RepairStats{}, 2, "repair: 2 segments owe repair\n"},
	} {
		var b strings.Builder
		printRepair(&b, &c.st, c.owed)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("repairer owes %d, journal %d:\n%s\nwant %q", c.st.Owed, c.owed, b.String(), c.want)
		}
	}
}

// TestCacheLine: the cache line of status counts the blocks read from the
// journal's local copies of files written here (which never reach the
// cache) as served here: a folder of small files written here and read
// back said "1% of 171 block reads ... were served here". A daemon that
// does not send them gets the line it had.
func TestCacheLine(t *testing.T) {
	for _, c := range []struct {
		name  string
		stats any
		want  string
	}{
		{"small files written here", fs.CacheStats{Stats: cache.Stats{Hits: 1, DiskHits: 1, Misses: 1}, KeptReads: 160, StagedReads: 8},
			"  99% of 171 block reads since mount were served here (1 from memory, 1 from disk, 168 from the journal's local copies of files written here); 1 went to the grid\n"},
		{"only the journal's", fs.CacheStats{StagedReads: 3},
			"  100% of 3 block reads since mount were served here (0 from memory, 0 from disk, 3 from the journal's local copies of files written here); 0 went to the grid\n"},
		{"none from the journal", fs.CacheStats{Stats: cache.Stats{Hits: 1, DiskHits: 1, Misses: 2}},
			"  50% of 4 block reads since mount were served here (1 from memory, 1 from disk); 2 went to the grid\n"},
		{"an older daemon", cache.Stats{Hits: 1, DiskHits: 1, Misses: 169},
			"  1% of 171 block reads since mount were served here (1 from memory, 1 from disk); 169 went to the grid\n"},
		{"no read", fs.CacheStats{}, "  no block read since mount\n"},
	} {
		raw, err := json.Marshal(c.stats)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		printCacheStats(&b, raw)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%s (%s):\n%s\nwant %q", c.name, raw, b.String(), c.want)
		}
	}
}

// TestStatusPathCached: status PATH says whether a file's uploaded blocks
// are in the local cache. After sync, a remount (so the kernel's page cache
// holds nothing) and cache clear: not cached. Reading the small file makes
// the folder partly cached; reading the big one makes both fully cached;
// cache clear makes them not cached again.
func TestStatusPathCached(t *testing.T) {
	requireFuse(t)
	env := cmdEnv("MESHDRIVE_PASSPHRASE=cached")
	dir, mp := newDefaultDrive(t, env)
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)

	big := make([]byte, defaultBlockSize+defaultBlockSize/4) // two blocks
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	small := []byte("a small file, one block\n")
	if err := os.Mkdir(filepath.Join(mp, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"big": big, "small": small} {
		if err := os.WriteFile(filepath.Join(mp, "docs", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	mustRun(t, env, "unmount", "--data", dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	mustRun(t, env, "cache", "clear", "--data", dir)

	check := func(when, path, cached string, blocks, files int, bytes int64) {
		t.Helper()
		p := pathJSON(t, env, dir, path)
		if p.State != "durable" || p.GridBlocks != p.Blocks {
			t.Errorf("%s: status %s: state %q, %d of %d blocks on the grid; want durable, all", when, path, p.State, p.GridBlocks, p.Blocks)
		}
		if p.Cached != cached || p.CachedBlocks != blocks || p.CachedFiles != files || p.CachedBytes != bytes {
			t.Errorf("%s: status %s: cached %q, %d blocks, %d files, %d bytes; want %q, %d, %d, %d (%+v)",
				when, path, p.Cached, p.CachedBlocks, p.CachedFiles, p.CachedBytes, cached, blocks, files, bytes, p)
		}
	}
	bigPath, smallPath := filepath.Join(mp, "docs", "big"), filepath.Join(mp, "docs", "small")
	allBytes := int64(len(big) + len(small))
	check("after cache clear", bigPath, "not", 0, 0, 0)
	check("after cache clear", "docs", "not", 0, 0, 0)
	if p := pathJSON(t, env, dir, "docs"); p.GridBlocks != 3 || p.GridBytes != allBytes || p.Files != 2 {
		t.Errorf("status docs: %d blocks, %d bytes on the grid in %d files; want 3, %d, 2", p.GridBlocks, p.GridBytes, p.Files, allBytes)
	}
	r := mustRun(t, env, "status", "--data", dir, bigPath)
	if !strings.Contains(r.stdout, "cached: not (0 of 2 uploaded blocks in the local cache") {
		t.Errorf("status %s does not say it is not cached:\n%s", bigPath, r.stdout)
	}

	if b, err := os.ReadFile(smallPath); err != nil || !bytes.Equal(b, small) {
		t.Fatalf("read small: %q %v", b, err)
	}
	check("after reading small", smallPath, "fully", 1, 1, int64(len(small)))
	check("after reading small", bigPath, "not", 0, 0, 0)
	check("after reading small", "docs", "partly", 1, 1, int64(len(small)))

	if b, err := os.ReadFile(bigPath); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("read big: %d bytes, %v", len(b), err)
	}
	check("after reading both", bigPath, "fully", 2, 1, int64(len(big)))
	check("after reading both", "docs", "fully", 3, 2, allBytes)
	r = mustRun(t, env, "status", "--data", dir, "docs")
	if !strings.Contains(r.stdout, "cached: fully (3 of 3 uploaded blocks in the local cache") || !strings.Contains(r.stdout, "2 of 2 files fully") {
		t.Errorf("status docs does not say it is fully cached:\n%s", r.stdout)
	}

	mustRun(t, env, "cache", "clear", "--data", dir)
	check("after the second cache clear", "docs", "not", 0, 0, 0)

	// A file written and not yet uploaded needs no cache.
	if err := os.WriteFile(filepath.Join(mp, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p := pathJSON(t, env, dir, "empty"); p.Cached != "fully" || p.GridBlocks != 0 || p.Blocks != 0 {
		t.Errorf("status of an empty file: %+v", p)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// TestReadOnlyNewDrive: a drive that has never been mounted read-write
// mounts read-only as an empty folder, right after init and on a data dir
// that holds no drive yet (the embedded default is made first). Writes are
// refused; a later read-write mount and read-only mount work.
func TestReadOnlyNewDrive(t *testing.T) {
	requireFuse(t)
	env := cmdEnv("MESHDRIVE_PASSPHRASE=ro")
	expectEmptyReadOnly := func(mp string) {
		t.Helper()
		if !mounted(mp) {
			t.Fatalf("mount --read-only exited 0 but nothing is mounted at %s", mp)
		}
		ents, err := os.ReadDir(mp)
		if err != nil || len(ents) != 0 {
			t.Errorf("new drive mounted read-only lists %v (%v); want an empty folder", ents, err)
		}
		if err := os.WriteFile(filepath.Join(mp, "x"), []byte("x"), 0o644); err == nil {
			t.Error("wrote to a --read-only mount")
		}
	}

	// A read-only mount of a data dir with no drive makes none and refuses
	// (TestRefusals/read-only_with_no_drive).
	t.Run("after init", func(t *testing.T) {
		dir, mp := newDefaultDrive(t, env)
		cleanupMount(t, env, dir, mp)
		mustRun(t, env, "mount", "--daemon", "--read-only", "--data", dir, mp)
		expectEmptyReadOnly(mp)
		if st := statusJSON(t, env, dir); !st.ReadOnly || st.State != "durable" {
			t.Errorf("status of the read-only mount: read_only %v, state %q", st.ReadOnly, st.State)
		}
		mustRun(t, env, "unmount", "--data", dir, mp)
		mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
		if err := os.WriteFile(filepath.Join(mp, "note"), []byte("read-write later"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, env, "unmount", "--data", dir, mp)
		mustRun(t, env, "mount", "--daemon", "--read-only", "--data", dir, mp)
		if b, err := os.ReadFile(filepath.Join(mp, "note")); err != nil || string(b) != "read-write later" {
			t.Errorf("read-only mount after a read-write one: %q %v", b, err)
		}
		// gc cannot run here, and running it again would not help.
		if r := runBin(t, env, "gc", "--data", dir); r.code == 0 || !strings.Contains(r.stderr, "read-write mount") || strings.Contains(r.stderr, "run it again") {
			t.Errorf("gc on a read-only mount: %s", r)
		}
		// Everything that needs a writable journal is refused up front,
		// saying why and how to get a read-write mount.
		for _, args := range [][]string{{"check"}, {"check", "--repair"}, {"snapshot", "create", "--name", "x"}, {"snapshot", "delete", "x"}, {"gc"}} {
			r := runBin(t, env, append(args, "--data", dir)...)
			assertRefusal(t, r, "", "", "mounted read-only", "needs a read-write mount", "meshdrive unmount "+mp, "without --read-only")
		}
		mustRun(t, env, "unmount", "--data", dir, mp)
	})
}

// The local line of status PATH reads like the cached one for a file with
// nothing on the grid yet, not "0 of 0 uploaded blocks ..., 0 B of 0 B".
func TestPinnedLineNothingUploaded(t *testing.T) {
	for _, c := range []struct {
		r    pathReport
		want string
	}{
		{pathReport{Type: "file", Blocks: 1, Local: "fully"}, "not pinned; local: fully (nothing uploaded yet: every block is in the local journal)\n"},
		{pathReport{Type: "file", Local: "fully"}, "not pinned; local: fully (no data)\n"},
		{pathReport{Type: "file", Blocks: 2, GridBlocks: 2, LocalBlocks: 1, Local: "partly"}, "local: partly (1 of 2 uploaded blocks on this machine's disk"},
	} {
		var b strings.Builder
		printPinned(&b, &c.r)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%+v:\n%s\nwant %q", c.r, b.String(), c.want)
		}
	}
}

// One file, one pinned file, one segment: status says so in the singular.
func TestStatusSingular(t *testing.T) {
	r := &statusReport{}
	r.Uploads.Files, r.Uploads.Bytes, r.Uploads.RepairOwed = 1, 8, 1
	r.Pins = &fs.PinStats{Files: 1}
	var b strings.Builder
	printStatus(&b, r)
	for _, want := range []string{"uploads: 1 file, 8 B queued", ", 1 segment owes repair", "pins: 1 file, "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status does not say %q:\n%s", want, b.String())
		}
	}
	var p strings.Builder
	printPinReports(&p, []pinReport{{Path: "/a", Pinned: true, Stats: fs.PinStats{Files: 1}}}, false)
	if !strings.Contains(p.String(), "pins: 1 file, ") {
		t.Errorf("pin says:\n%s", p.String())
	}
}

// A mount whose drive another computer has written since (a recover on a
// new laptop, then the old one mounted again) ships nothing more: its
// status must not say that its changes wait in the journal to go up.
func TestStatusTakenOver(t *testing.T) {
	for _, c := range []struct {
		state, want string
	}{
		{"local", "NOT durable, and nothing written here will be: another computer has written this drive since"},
		{"durable", "durable: everything written is on the grid; but another computer has written this drive since, and nothing written here from now on reaches the grid"},
	} {
		r := &statusReport{State: c.state}
		r.Metadata.TakenOver = true
		r.Metadata.LastError = "another computer has written this drive since this data dir last did"
		var b strings.Builder
		printStatus(&b, r)
		if !strings.Contains(b.String(), c.want) || strings.Contains(b.String(), "data waits in the local journal") {
			t.Errorf("state %s, taken over:\n%s\nwant %q and no word of data waiting to go up", c.state, b.String(), c.want)
		}
	}
}

// TestStatusPathNodeDown: status PATH of a file on six real nodes says
// durable while they all answer; with the node that holds one of its
// shards stopped, it says degraded, 5 of 6 shards reachable, and names
// the node and what to do, as soon as the mount's health check has seen
// it down (it read the shard count the journal stored at upload, and
// said durable); so does the file's status xattr.
func TestStatusPathNodeDown(t *testing.T) {
	d := newRepairDrive(t, 1, 2)
	f := filepath.Join(d.mp, "b0", "f0")
	if p := pathJSON(t, d.env, d.dir, f); p.State != "durable" || len(p.Down) != 0 {
		t.Fatalf("status PATH with every node up: %+v", p)
	}
	if b, err := unix.Getxattr(f, fs.StatusXattr, make([]byte, 256)); err != nil || b != len("durable") {
		t.Fatalf("the status xattr with every node up: %d bytes, %v; want durable", b, err)
	}
	d.nodes[2].stop(t, syscall.SIGKILL)
	p := waitUntil(t, "status PATH to see node-3 down", func() pathReport { return pathJSON(t, d.env, d.dir, f) },
		func(p pathReport) bool { return p.State != "durable" })
	if p.State != "degraded" || !slices.Equal(p.Down, []string{"node-3"}) || p.ShardsUp != 5 || p.N != 6 || p.K != 4 {
		t.Errorf("status PATH with node-3 down: state %s, down %v, %d of %d shards up (k=%d); want degraded, node-3, 5 of 6, k=4",
			p.State, p.Down, p.ShardsUp, p.N, p.K)
	}
	out := mustRun(t, d.env, "status", "--data", d.dir, f).stdout
	for _, want := range []string{": degraded", "5 of 6 shards reachable", "node-3, which holds the rest, is down", "bring node-3 back"} {
		if !strings.Contains(out, want) {
			t.Errorf("status PATH with node-3 down does not say %q:\n%s", want, out)
		}
	}
	if p := pathJSON(t, d.env, d.dir, filepath.Join(d.mp, "b0")); p.State != "degraded" || !slices.Equal(p.Down, []string{"node-3"}) {
		t.Errorf("status of the folder with node-3 down: state %s, down %v", p.State, p.Down)
	}
	buf := make([]byte, 256)
	if n, err := unix.Getxattr(f, fs.StatusXattr, buf); err != nil || string(buf[:n]) != "degraded" {
		t.Errorf("the status xattr with node-3 down: %q, %v; want degraded", buf[:max(n, 0)], err)
	}
	d.unmount(t)
}
