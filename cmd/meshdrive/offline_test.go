package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pollStatus polls status --json until cond holds (a minute at most).
func pollStatus(t *testing.T, env []string, dir, what string, cond func(statusReport) bool) statusReport {
	t.Helper()
	return waitUntil(t, what, func() statusReport { return statusJSON(t, env, dir) }, cond)
}

// TestOfflineStatusThenDrain: with every node stopped, status says since
// when the drive is offline and what waits; when the nodes come back (same
// addresses), the queue drains and the drive is durable with no command.
// The nodes come back one by one, so a segment may go out while only five
// of the six are up: stored short, it is durable once the background
// repair has written its sixth shard, 30 s (repair's "soon") after it was
// stored, plus its next look; with the one-minute wait below that drain
// took up to 58 s on a loaded machine. --repair-interval 5s makes that
// soon 5 s.
func TestOfflineStatusThenDrain(t *testing.T) {
	base, dir, nodes, env, mp := mountedCluster(t, "offline", nil, "--metadata-interval", "1s", "--repair-interval", "5s")

	before := time.Now()
	for _, n := range nodes {
		n.stop(t, syscall.SIGTERM)
	}
	want := map[string][]byte{}
	for i := range 3 {
		p := filepath.Join(mp, fmt.Sprintf("offline-%d", i))
		want[p] = randomFile(t, p, 300<<10, uint64(100+i))
	}
	s := pollStatus(t, env, dir, "status to say offline with 3 files waiting", func(s statusReport) bool {
		return !s.Online && s.OfflineSince != nil && s.Uploads.Files == 3
	})
	if s.OfflineSince.Before(before.Add(-time.Second)) || s.OfflineSince.After(time.Now()) || s.State != "local" {
		t.Fatalf("offline since %v (nodes stopped at %v), state %s", s.OfflineSince, before, s.State)
	}
	r := mustRun(t, env, "status", "--data", dir)
	if !strings.Contains(r.stdout, "OFFLINE since") || !strings.Contains(r.stdout, "3 files") || !strings.Contains(r.stdout, "by themselves when nodes come back") {
		t.Errorf("status while offline does not say since when and what waits:\n%s", r.stdout)
	}

	// The nodes come back where they were; nobody runs sync.
	for i, n := range nodes {
		nodes[i] = startNode(t, filepath.Join(base, "node", string(rune('a'+i))), "--listen", n.addr)
	}
	start := time.Now()
	s = pollStatus(t, env, dir, "the queue to drain by itself", func(s statusReport) bool { return s.Durable })
	t.Logf("nodes back: drive durable %v later with no command", time.Since(start).Round(time.Millisecond))
	if !s.Online || s.OfflineSince != nil || s.Uploads.Files != 0 {
		t.Fatalf("after the drain: %+v", s)
	}
	for p := range want {
		if st := pathJSON(t, env, dir, p); st.State != "durable" {
			t.Errorf("%s: %s after the drain", p, st.State)
		}
	}
}

// TestBandwidthAndUploadOrder: the limits in force show in status, the
// config's schedule applies (and an edit of it applies while mounted);
// with uploads held to 4 MiB/s of shards, a 10 KiB file saved and fsync'd
// just after a 24 MiB copy is grid-durable while the copy still waits.
// (Writes here are not much faster than that, so the copy is small; the
// journal's TestFsyncedSmallFileDurableBeforeBulk shows the order with a
// longer queue.)
func TestBandwidthAndUploadOrder(t *testing.T) {
	// A window around now (local time) at 1 MiB/s up, 2 MiB/s down.
	now := time.Now()
	from, to := now.Add(-time.Hour), now.Add(time.Hour)
	if from.Day() != now.Day() || to.Day() != now.Day() {
		from, to = now.Add(-time.Minute), now.Add(time.Minute) // near midnight: windows may wrap, but keep it short
	}
	sched := fmt.Sprintf("%s-%s up 1MiB/s down 2MiB/s, otherwise unlimited", from.Format("15:04"), to.Format("15:04"))
	_, dir, _, env, mp := mountedCluster(t, "bandwidth", func(dir string) { setConfig(t, dir, "bandwidth_schedule", sched) },
		"--upload-limit", "4MiB", "--download-limit", "16MiB", "--metadata-interval", "2s")

	s := statusJSON(t, env, dir)
	if s.Bandwidth.Up != 1<<20 || s.Bandwidth.Down != 2<<20 || s.Bandwidth.BaseUp != 4<<20 || s.Bandwidth.Schedule == "" {
		t.Fatalf("status bandwidth under the schedule: %+v", s.Bandwidth)
	}
	r := mustRun(t, env, "status", "--data", dir)
	if !strings.Contains(r.stdout, "bandwidth: up 1MiB/s, down 2MiB/s in force (schedule:") {
		t.Errorf("status does not show the limits in force:\n%s", r.stdout)
	}
	// Dropping the schedule from the config applies while mounted: the
	// flags' limits come into force.
	setConfig(t, dir, "bandwidth_schedule", "")
	pollStatus(t, env, dir, "the flags' limits after the schedule was removed", func(s statusReport) bool {
		return s.Bandwidth.Up == 4<<20 && s.Bandwidth.Down == 16<<20 && s.Bandwidth.Schedule == ""
	})

	// The first metadata record is a full one: let it go before the copy.
	mustRun(t, env, "sync", "--data", dir, "--timeout", "1m")
	big := filepath.Join(mp, "big")
	copied := make(chan error, 1)
	go func() {
		f, err := os.Create(big)
		if err == nil {
			buf := make([]byte, 1<<20)
			for i := range 24 {
				for j := range buf {
					buf[j] = byte(i*31 + j*7 + j>>9)
				}
				if _, err = f.Write(buf); err != nil {
					break
				}
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		copied <- err
	}()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	// 24 MiB is 36 MiB of shards: 9 s at 4 MiB/s. Save a small file
	// right after the copy (its last blocks are queued at its close,
	// whatever went up while it was written).
	small := filepath.Join(mp, "saved")
	f, err := os.Create(small)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 10<<10)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	saved := time.Now()
	for {
		p := pathJSON(t, env, dir, small)
		if p.State == "durable" {
			break
		}
		if time.Since(saved) > 20*time.Second {
			t.Fatalf("the fsync'd small file is not grid-durable 20 s after it was saved: %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(saved)
	b := pathJSON(t, env, dir, big)
	t.Logf("small file grid-durable %v after its fsync; the 24 MiB copy then had %d of %d blocks waiting", took.Round(time.Millisecond), b.PendingBlocks, b.Blocks)
	if b.State == "durable" || b.PendingBlocks == 0 {
		t.Fatalf("the small file became durable only once the copy had %d of %d blocks waiting (%s)", b.PendingBlocks, b.Blocks, b.State)
	}
}

// A schedule edited wrong while mounted: status says so and the previous
// limits stay; a mount with it is refused, saying where to fix it.
func TestBadScheduleKeptOutAndRefused(t *testing.T) {
	_, dir, _, env, mp := mountedCluster(t, "badschedule", nil, "--upload-limit", "3MiB")
	setConfig(t, dir, "bandwidth_schedule", "8-18 fast")
	s := pollStatus(t, env, dir, "status to report the wrong schedule", func(s statusReport) bool { return s.Bandwidth.Error != "" })
	if s.Bandwidth.Up != 3<<20 || !strings.Contains(s.Bandwidth.Error, "example:") {
		t.Errorf("with a wrong schedule: %+v", s.Bandwidth)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	r := runBin(t, env, "mount", "--daemon", "--data", dir, mp)
	assertRefusal(t, r, dir, mp, "bandwidth schedule, rule 1", "config.json", "fix bandwidth_schedule there")
}
