package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// owedMetric reads meshdrive_repair_owed_segments from the mount's
// /metrics, with the metrics token.
func owedMetric(t *testing.T, d *repairDrive, web string) int {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(d.dir, "metrics.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("GET", strings.TrimSuffix(web, "/")+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v\n%s", resp.StatusCode, err, b)
	}
	m := regexp.MustCompile(`(?m)^meshdrive_repair_owed_segments (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("/metrics has no meshdrive_repair_owed_segments:\n%s", b)
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return int(f)
}

// TestStatusTellsNodeLoss: status, its JSON and the metrics say segments
// owe repair as soon as the mount's health check sees a node go down or
// come back with an empty disk, and that every segment is whole once
// the node is back, without waiting for the next background pass
// (--repair-interval, an hour here). Before, they kept saying "every
// segment has all its shards" and durable, with meshdrive_repair_owed_segments
// at 0, while check found every file degraded.
func TestStatusTellsNodeLoss(t *testing.T) {
	d := newRepairDrive(t, 1, 3)
	st := waitStatus(t, d, "the pass at mount", func(s statusReport) bool {
		return !s.Repair.LastPass.IsZero() && !s.Repair.Running && s.State == "durable"
	})
	if st.Web == "" {
		t.Fatalf("status names no web address: %+v", st)
	}
	if n := owedMetric(t, d, st.Web); n != 0 {
		t.Fatalf("owed %d segments on a whole grid", n)
	}
	rep, _ := d.check(t)
	segs := rep.Segments

	// A node stopped: every segment has a shard on it (6 nodes, k+m=6).
	addr := d.nodes[3].addr
	d.nodes[3].stop(t, syscall.SIGKILL)
	st = waitStatus(t, d, "status to count the segments short of a shard", func(s statusReport) bool {
		return s.Repair.Owed == segs
	})
	if st.State != "degraded" || st.Durable {
		t.Errorf("with a node down and every segment short: state %q, durable %v", st.State, st.Durable)
	}
	txt := mustRun(t, d.env, "status", "--data", d.dir).stdout
	if !strings.Contains(txt, "segments owe repair") || strings.Contains(txt, "every segment has all its shards") {
		t.Errorf("status with a node down:\n%s", txt)
	}
	// The node's own count of what it holds is of objects (the drive's
	// key, config and root record beside its shards), and says so: node
	// list, which counts shards by a listing, shows fewer.
	if !strings.Contains(txt, " objects  http://") || strings.Contains(txt, " shards  http://") {
		t.Errorf("status labels the nodes' object counts as shards:\n%s", txt)
	}
	if n := owedMetric(t, d, st.Web); n != segs {
		t.Errorf("meshdrive_repair_owed_segments %d with a node down, want %d", n, segs)
	}

	// Back on its address with its shards: whole again.
	d.nodes[3] = startNode(t, d.nodeDirs[3], "--listen", addr)
	waitStatus(t, d, "status to see the node back", func(s statusReport) bool {
		return s.Repair.Owed == 0 && s.State == "durable"
	})

	// Its disk replaced by an empty one, the node restarted at once on
	// the same address (the mount may never see it down).
	d.nodes[3].stop(t, syscall.SIGTERM)
	wipe(t, d.nodeDirs[3])
	d.nodes[3] = startNode(t, d.nodeDirs[3], "--listen", addr)
	waitStatus(t, d, "status to count the shards the empty disk lacks", func(s statusReport) bool {
		return s.Repair.Owed == segs
	})
	rep, r := d.check(t)
	if rep.SegmentsDegraded != segs {
		t.Errorf("check after the disk was replaced: %d of %d segments degraded\n%s", rep.SegmentsDegraded, segs, r)
	}
}
