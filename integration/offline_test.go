package integration

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// The at-scale checks of issue 18 (pins, cache, upload order), through the
// real binary, a real mount and real node processes. They move more than
// a GiB each, so they run only with -long (scripts/test.sh long); the
// short suite has the same checks at a smaller scale (cache's
// TestWorkingSetSurvivesOnePassScan, journal's
// TestFsyncedSmallFileDurableBeforeBulk, cmd/meshdrive's
// TestBandwidthAndUploadOrder).

// pathStatus is the part of `status --json PATH` these tests read.
type pathStatus struct {
	State         string `json:"state"`
	PendingBlocks int    `json:"pending_blocks"`
	GridBlocks    int    `json:"grid_blocks"`
	CachedBlocks  int    `json:"cached_blocks"`
}

// cacheStats is the part of status --json's cache these tests read.
type cacheStats struct {
	Fetches      uint64
	FrameFetches uint64
	Misses       uint64
}

func (d *drive) pathStatus(t testing.TB, rel string) pathStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := cli(ctx, d.env, "status", "--data", d.data, "--json", d.path(rel))
	if err != nil {
		t.Fatalf("%v", err)
	}
	var ps pathStatus
	if err := json.Unmarshal([]byte(jsonPart(out)), &ps); err != nil {
		t.Fatalf("status --json %s does not parse: %v\n%s", rel, err, out)
	}
	return ps
}

func (d *drive) cacheStats(t testing.TB) cacheStats {
	t.Helper()
	out, err := d.cmd(30*time.Second, "status", "--json")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var st struct {
		Cache cacheStats `json:"cache"`
	}
	if err := json.Unmarshal([]byte(jsonPart(out)), &st); err != nil {
		t.Fatalf("status --json does not parse: %v\n%s", err, out)
	}
	return st.Cache
}

// dropPageCache makes the next reads of the mount reach the drive (root).
func dropPageCache(t testing.TB) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		t.Fatalf("drop the page cache (needs root): %v", err)
	}
}

// TestScanResistanceAtScale: a 64 MiB working set read ten times, then a
// 1 GiB tree read once through a 256 MiB cache: afterwards at least 90%
// of the working set is still cached, and re-reading it fetches at most
// 10% of its blocks from the grid.
func TestScanResistanceAtScale(t *testing.T) {
	if !*long {
		t.Skip("moves 1 GiB: runs with -long (scripts/test.sh long)")
	}
	requireEnv(t)
	nodes := startNodes(t, 6)
	d := newDrive(t, driveOptions{Nodes: nodeURLs(nodes), K: 4, M: 2})
	cacheArgs := []string{"--cache-size", "268435456", "--cache-mem", "33554432"}
	d.mount(t, nil, cacheArgs...)
	work := makeFiles("work/f", 16, 4<<20, 181)
	tree := makeFiles("tree/f", 256, 4<<20, 182)
	work.write(t, d.mnt)
	tree.write(t, d.mnt)
	d.sync(t, 20*time.Minute)
	d.unmount(t)
	d.mount(t, nil, cacheArgs...)
	d.cacheClear(t)
	for range 10 {
		dropPageCache(t)
		work.check(t, d.mnt)
	}
	before := d.pathStatus(t, "work")
	s0 := d.cacheStats(t)
	dropPageCache(t)
	tree.check(t, d.mnt)
	s1 := d.cacheStats(t)
	after := d.pathStatus(t, "work")
	// The scan must have gone through the drive's cache (not the kernel's
	// page cache), or the check below proves nothing.
	if scanned := (s1.Fetches - s0.Fetches) + (s1.FrameFetches-s0.FrameFetches)/32; scanned < 200 {
		t.Fatalf("the 1 GiB scan fetched only about %d blocks from the grid, want about 256: it did not reach the drive", scanned)
	}
	t.Logf("working set cached: %d of %d blocks before the scan, %d after", before.CachedBlocks, before.GridBlocks, after.CachedBlocks)
	if before.GridBlocks == 0 || before.CachedBlocks < before.GridBlocks*9/10 {
		t.Fatalf("the working set is not cached even before the scan: %+v", before)
	}
	if after.CachedBlocks*10 < after.GridBlocks*9 {
		t.Errorf("after a one-pass scan of 1 GiB only %d of the working set's %d blocks are cached, want 90%%", after.CachedBlocks, after.GridBlocks)
	}
	c0 := d.cacheStats(t)
	dropPageCache(t)
	work.check(t, d.mnt)
	c1 := d.cacheStats(t)
	fetched := (c1.Fetches - c0.Fetches) + (c1.FrameFetches - c0.FrameFetches)
	t.Logf("re-reading the working set: %d block and %d frame fetches from the grid, %d misses", c1.Fetches-c0.Fetches, c1.FrameFetches-c0.FrameFetches, c1.Misses-c0.Misses)
	if c1.Misses-c0.Misses > uint64(after.GridBlocks)/10 {
		t.Errorf("re-reading the working set waited on the grid %d times (%d fetches), want at most 10%% of its %d blocks", c1.Misses-c0.Misses, fetched, after.GridBlocks)
	}
	d.unmount(t)
}

// TestSmallFileBeforeBulkAtScale: a 1 GiB copy runs over nodes paced to
// 8 MiB/s each (toxiproxy); 5 s in, a 10 KiB file is saved and fsync'd:
// it is grid-durable within 10 s, while the copy is not.
func TestSmallFileBeforeBulkAtScale(t *testing.T) {
	if !*long {
		t.Skip("moves 1 GiB: runs with -long (scripts/test.sh long)")
	}
	requireEnv(t)
	nodes := startNodes(t, 6)
	px := startProxies(t, nodes)
	d := newDrive(t, driveOptions{Nodes: px.urls(), K: 4, M: 2})
	d.mount(t, nil)
	for i := range nodes {
		px.add(t, i, "bandwidth", `{"rate":8192}`, "upstream") // KB/s, towards the node
	}
	big := makeFiles("bulk/copy", 1, 1<<30, 183)
	copied := make(chan error, 1)
	go func() {
		name := big.names()[0]
		if err := mkdirAll(d.path(name)); err != nil {
			copied <- err
			return
		}
		copied <- writeContent(d.path(name), big[name])
	}()
	time.Sleep(5 * time.Second)
	small := makeFiles("doc", 1, 10<<10, 184)
	name := small.names()[0]
	saved := time.Now()
	if err := writeContent(d.path(name), small[name]); err != nil { // fsyncs
		t.Fatal(err)
	}
	var durableAfter time.Duration
	for {
		st := d.pathStatus(t, name)
		if st.State == "durable" {
			durableAfter = time.Since(saved)
			break
		}
		t.Logf("%v after the fsync: the small file is %s (%d blocks pending)", time.Since(saved).Round(100*time.Millisecond), st.State, st.PendingBlocks)
		if time.Since(saved) > 10*time.Second {
			t.Fatalf("the fsync'd 10 KiB file is not grid-durable 10 s after its fsync, during a 1 GiB copy")
		}
		time.Sleep(200 * time.Millisecond)
	}
	bulk := d.pathStatus(t, "bulk")
	t.Logf("the small file was grid-durable %v after its fsync; the copy then: %s", durableAfter.Round(time.Millisecond), bulk.State)
	if bulk.State == "durable" {
		t.Errorf("the 1 GiB copy was already grid-durable: the test proves nothing about order")
	}
	px.clear()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	d.sync(t, 20*time.Minute)
	big.check(t, d.mnt)
	small.check(t, d.mnt)
	d.unmount(t)
}

// TestUploadLimitAtScale: with --upload-limit 2MiB, what the mount ships
// to the nodes during a minute-long upload averages within 10% of 2 MiB/s.
// (The whole upload is the window: shipped bytes are counted per segment,
// 24 MiB of shards at a time (a 16 MiB segment), too coarse for a 30 s window.)
func TestUploadLimitAtScale(t *testing.T) {
	if !*long {
		t.Skip("takes a minute of paced upload: runs with -long (scripts/test.sh long)")
	}
	requireEnv(t)
	nodes := startNodes(t, 6)
	d := newDrive(t, driveOptions{Nodes: nodeURLs(nodes), K: 4, M: 2})
	d.mount(t, nil, "--upload-limit", "2MiB")
	files := makeFiles("paced/f", 20, 4<<20, 186) // 80 MiB: 120 MiB of shards
	s0, t0 := d.status(t).Uploads.ShippedBytes, time.Now()
	files.write(t, d.mnt)
	d.sync(t, 5*time.Minute)
	s1, t1 := d.status(t).Uploads.ShippedBytes, time.Now()
	rate := float64(s1-s0) / t1.Sub(t0).Seconds()
	t.Logf("shipped %d bytes in %v: %.2f MiB/s under a 2 MiB/s limit", s1-s0, t1.Sub(t0).Round(time.Millisecond), rate/(1<<20))
	if t1.Sub(t0) < 30*time.Second {
		t.Fatalf("the upload took %v: too short to measure a rate over 30 s", t1.Sub(t0))
	}
	if rate < 0.9*(2<<20) || rate > 1.1*(2<<20) {
		t.Errorf("the upload ran at %.2f MiB/s under --upload-limit 2MiB, want within 10%%", rate/(1<<20))
	}
	d.unmount(t)
}
