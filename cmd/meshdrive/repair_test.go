package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/journal/repair"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// repairDrive is a drive over six real node processes, mounted, with
// files written in synced batches (a segment or more each).
type repairDrive struct {
	env           []string
	base, dir, mp string
	nodes         []*nodeProc
	nodeDirs      []string
	files         map[string][]byte // path under the mount -> content
}

func newRepairDrive(t *testing.T, batches, perBatch int, mountArgs ...string) *repairDrive {
	t.Helper()
	requireFuse(t)
	d := &repairDrive{base: t.TempDir(), files: map[string][]byte{},
		env: cmdEnv("MESHDRIVE_PASSPHRASE=correct horse battery staple")}
	d.dir, d.mp = filepath.Join(d.base, "data"), filepath.Join(d.base, "Drive")
	if err := os.Mkdir(d.mp, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"init", "--data", d.dir}
	for i := range 6 {
		nd := filepath.Join(d.base, "node", fmt.Sprint(i))
		d.nodes = append(d.nodes, startNode(t, nd))
		d.nodeDirs = append(d.nodeDirs, nd)
		args = append(args, "--node", d.nodes[i].url())
	}
	mustRun(t, d.env, args...)
	cleanupMount(t, d.env, d.dir, d.mp)
	d.mount(t, mountArgs...)
	r := rand.New(rand.NewPCG(1, 2))
	for batch := range batches {
		for i := range perBatch {
			b := make([]byte, 1000+r.IntN(300_000))
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			name := fmt.Sprintf("b%d/f%d", batch, i)
			if err := os.MkdirAll(filepath.Join(d.mp, filepath.Dir(name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d.mp, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			d.files[name] = b
		}
		mustRun(t, d.env, "sync", "--data", d.dir, "--timeout", "2m")
	}
	return d
}

func (d *repairDrive) mount(t *testing.T, args ...string) {
	t.Helper()
	mustRun(t, d.env, append([]string{"mount", "--daemon", "--data", d.dir, "--repair-interval", "1h"}, append(args, d.mp)...)...)
}

func (d *repairDrive) unmount(t *testing.T) {
	t.Helper()
	mustRun(t, d.env, "unmount", "--data", d.dir, d.mp)
}

// check runs meshdrive check --json with args and returns the report
// and the exit code.
func (d *repairDrive) check(t *testing.T, args ...string) (*repair.Report, result) {
	t.Helper()
	r := runBin(t, d.env, append([]string{"check", "--data", d.dir, "--json"}, args...)...)
	var rep repair.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check %v: %v\n%s", args, err, r)
	}
	return &rep, r
}

// readAll clears the cache and compares every file with what was written.
func (d *repairDrive) readAll(t *testing.T, when string) {
	t.Helper()
	mustRun(t, d.env, "cache", "clear", "--data", d.dir)
	for name, want := range d.files {
		got, err := os.ReadFile(filepath.Join(d.mp, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read %s: %v (equal %v)", when, name, err, bytes.Equal(got, want))
		}
	}
}

// wipe deletes everything a node stores.
func wipe(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func statesOf(rep *repair.Report) map[string]int {
	m := map[string]int{}
	for _, f := range rep.Files {
		m[f.State]++
	}
	return m
}

// TestRepairWipedNode: a node loses everything; check finds every file
// degraded, check --repair and (separately) the mount's background pass,
// killed with SIGKILL half-way and run again, bring every segment back to
// 6 of 6, the files read with two other
// nodes stopped and an empty cache, and with three stopped check names
// every file unrecoverable and exits 1 without hanging.
func TestRepairWipedNode(t *testing.T) {
	d := newRepairDrive(t, 3, 5)
	rep, r := d.check(t)
	if r.code != 0 || rep.Healthy != len(d.files) || len(rep.Files) != len(d.files) || rep.SegmentsHealthy != rep.Segments || rep.MetaSegments == 0 {
		t.Fatalf("check of a fresh drive: %+v\n%s", rep, r)
	}

	if err := os.RemoveAll(d.nodeDirs[2]); err != nil { // the node's directory itself goes
		t.Fatal(err)
	}
	rep, r = d.check(t)
	if r.code != 0 || rep.Degraded != len(d.files) {
		t.Fatalf("after wiping a node: %v\n%s", statesOf(rep), r)
	}
	for _, f := range rep.Files {
		if f.State != repair.Degraded || f.Shards != 5 || f.N != 6 {
			t.Errorf("after wiping a node: %+v", f)
		}
	}
	rep, r = d.check(t, "--repair")
	if r.code != 0 || rep.Repaired != rep.Segments || rep.RepairFailed != 0 {
		t.Fatalf("check --repair: repaired %d of %d segments\n%s", rep.Repaired, rep.Segments, r)
	}
	rep, r = d.check(t, "--verify")
	if r.code != 0 || rep.Healthy != len(d.files) || rep.SegmentsHealthy != rep.Segments || len(rep.Problems) != 0 {
		t.Fatalf("check --verify after repair: %v, problems %v\n%s", statesOf(rep), rep.Problems, r)
	}

	// The background pass: wipe another node, remount (a pass runs at
	// mount, here slowed by --repair-limit), kill the mount with SIGKILL
	// once it has repaired a segment, mount again and wait for status to
	// say the new pass repaired the rest.
	d.unmount(t)
	wipe(t, d.nodeDirs[4])
	d.mount(t, "--repair-limit", "300KiB")
	st := waitStatus(t, d, "the background pass to repair a segment", func(s statusReport) bool {
		return s.Repair.Repaired >= 1
	})
	if !st.Repair.Running {
		t.Logf("the background pass finished before the kill: %+v", st.Repair)
	}
	syscall.Kill(st.PID, syscall.SIGKILL)
	waitGone(t, st.PID)
	mustRun(t, d.env, "unmount", "--data", d.dir, d.mp) // clears the dead mount
	d.mount(t)
	st = waitStatus(t, d, "the background pass after the kill", func(s statusReport) bool {
		return !s.Repair.LastPass.IsZero() && !s.Repair.Running
	})
	if st.Repair.LastError != "" || st.Repair.Owed != 0 {
		t.Fatalf("background pass after the kill: %+v", st.Repair)
	}
	rep, r = d.check(t)
	if r.code != 0 || rep.Healthy != len(d.files) || rep.SegmentsHealthy != rep.Segments {
		t.Fatalf("check after the background pass: %v\n%s", statesOf(rep), r)
	}
	txt := mustRun(t, d.env, "status", "--data", d.dir)
	if !strings.Contains(txt.stdout, "every segment has all its shards") || (st.Repair.Repaired > 0) != strings.Contains(txt.stdout, "last repair") {
		t.Errorf("status does not tell the repair:\n%s", txt.stdout)
	}

	// Two other nodes stopped, empty cache: everything reads.
	d.nodes[0].stop(t, syscall.SIGKILL)
	d.nodes[1].stop(t, syscall.SIGKILL)
	d.readAll(t, "two nodes stopped after repair")

	// Three stopped: fewer than k for every segment.
	d.nodes[3].stop(t, syscall.SIGKILL)
	t0 := time.Now()
	rep, r = d.check(t)
	if r.code != 1 || rep.Unrecoverable != len(d.files) || !strings.Contains(r.stderr, "unrecoverable") {
		t.Fatalf("check with three nodes stopped: %v\n%s", statesOf(rep), r)
	}
	for _, f := range rep.Files {
		if len(f.Segments) == 0 {
			t.Errorf("unrecoverable file names no segment: %+v", f)
		}
	}
	if len(rep.Down) != 3 {
		t.Errorf("nodes down: %v, want 3", rep.Down)
	}
	t.Logf("check with three nodes stopped took %v", time.Since(t0))
	txt = runBin(t, d.env, "check", "--data", d.dir, "b1")
	if txt.code != 1 || !strings.Contains(txt.stdout, "UNRECOVERABLE  /b1/f0") {
		t.Errorf("check b1 with three nodes stopped:\n%s", txt)
	}
	d.unmount(t)
}

// shardFiles lists the shard objects under a node dir, as names.
// TestRepairRestoresDriveMeta: a node that lost everything (a disk
// replaced, a bucket emptied) gets its shards back from check --repair,
// and its copy of the drive key and config too, so meshdrive recover
// can start from it again; a check without --repair names it.
func TestRepairRestoresDriveMeta(t *testing.T) {
	d := newRepairDrive(t, 1, 3)
	wipe(t, d.nodeDirs[2])
	rep, r := d.check(t)
	if r.code != 0 || len(rep.MetaMissing) != 1 || rep.MetaMissing[0] != "node-3" || rep.MetaRestored {
		t.Fatalf("check after wiping node-3: nodes without the key or config %v (restored %v)\n%s", rep.MetaMissing, rep.MetaRestored, r)
	}
	// A key.json that is not the key the nodes hold (read before a
	// passwd put the new one on them) is not stored over it.
	kp := filepath.Join(d.dir, keyFile)
	key, err := os.ReadFile(kp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp, append(slices.Clone(key), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, r = d.check(t, "--repair")
	if r.code == 0 || rep.MetaRestored || !strings.Contains(rep.MetaError, "is not the drive key the nodes hold") {
		t.Fatalf("check --repair with another key.json: restored %v (%s)\n%s", rep.MetaRestored, rep.MetaError, r)
	}
	if err := os.WriteFile(kp, key, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, r = d.check(t, "--repair")
	if r.code != 0 || rep.RepairFailed != 0 || !rep.MetaRestored || rep.MetaError != "" {
		t.Fatalf("check --repair after wiping node-3: restored %v (%s)\n%s", rep.MetaRestored, rep.MetaError, r)
	}
	if rep, r = d.check(t); r.code != 0 || len(rep.MetaMissing) != 0 {
		t.Fatalf("check after the repair: nodes without the key or config %v\n%s", rep.MetaMissing, r)
	}
	d.unmount(t)
	r = runBin(t, d.env, "recover", "--node", d.nodes[2].url(), "--data", filepath.Join(d.base, "recovered"))
	if r.code != 0 {
		t.Fatalf("recover from the repaired node:\n%s", r)
	}
}

func shardFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "shards"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, "shards/"+e.Name())
		}
	}
	return out
}

// TestScrubAndVerify: bytes flipped in 20 shard files on two nodes are
// found, exactly, by check --verify and by those nodes' scrubbers; reads
// never return them; repair fixes them.
func TestScrubAndVerify(t *testing.T) {
	d := newRepairDrive(t, 10, 1)
	want := map[string]bool{} // node dir index + object
	for _, ni := range []int{0, 1} {
		names := shardFiles(t, d.nodeDirs[ni])
		if len(names) < 10 {
			t.Fatalf("node %d holds %d shards, need 10", ni, len(names))
		}
		for _, name := range names[:10] {
			remotetest.FlipFile(t, filepath.Join(d.nodeDirs[ni], name))
			want[fmt.Sprintf("%d %s", ni, name)] = true
		}
	}
	d.readAll(t, "with 20 corrupt shards")

	cfg, err := loadConfig(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	nodeIdx := map[string]int{}
	for i, n := range cfg.Nodes {
		nodeIdx[n.Name] = i
	}
	rep, r := d.check(t, "--verify")
	if r.code != 0 {
		t.Fatalf("check --verify: %s", r)
	}
	got := map[string]bool{}
	for _, p := range rep.Problems {
		if p.State != "corrupt" {
			t.Errorf("problem %+v, want only corrupt shards", p)
		}
		got[fmt.Sprintf("%d %s", nodeIdx[p.Node], p.Object)] = true
	}
	if !mapsEqual(got, want) {
		t.Errorf("check --verify found %d corrupt shards %v, flipped %d %v", len(got), keys(got), len(want), keys(want))
	}
	if plain, _ := d.check(t); len(plain.Problems) != 0 {
		t.Errorf("check without --verify (sizes only) reports %v", plain.Problems)
	}

	// The scrubbers of the two nodes find the same ones and move them
	// aside; the first keeps no copy of them (--quarantine-max 0).
	for _, ni := range []int{0, 1} {
		addr := d.nodes[ni].addr
		d.nodes[ni].stop(t, syscall.SIGTERM)
		args := []string{"--listen", addr, "--scrub-rate", "1GiB"}
		if ni == 0 {
			args = append(args, "--quarantine-max", "0")
		}
		d.nodes[ni] = startNode(t, d.nodeDirs[ni], args...)
	}
	scrubbed := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ns []nodeStatus
		r := mustRun(t, d.env, "node", "list", "--data", d.dir, "--json")
		if err := json.Unmarshal([]byte(r.stdout), &ns); err != nil {
			t.Fatal(err)
		}
		done := 0
		clear(scrubbed)
		for _, n := range ns {
			if n.Scrub != nil && n.Scrub.Passes > 0 {
				done++
				for _, c := range n.Scrub.Corrupt {
					scrubbed[fmt.Sprintf("%d %s", nodeIdx[n.Name], c)] = true
				}
			}
		}
		if done == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scrubbers did not finish a pass in 60 s: %s", r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !mapsEqual(scrubbed, want) {
		t.Errorf("scrub found %v, flipped %v", keys(scrubbed), keys(want))
	}
	for _, ni := range []int{0, 1} {
		flipped := 0
		for k := range want {
			if strings.HasPrefix(k, fmt.Sprintf("%d ", ni)) {
				flipped++
			}
		}
		q, _ := os.ReadDir(filepath.Join(d.nodeDirs[ni], ".quarantine"))
		if keep := map[bool]int{true: 0, false: flipped}[ni == 0]; len(q) != keep || flipped == 0 {
			t.Errorf("node %d: %d copies in .quarantine of %d corrupt shards, want %d", ni, len(q), flipped, keep)
		}
	}
	rep, r = d.check(t, "--repair")
	if r.code != 0 || rep.RepairFailed != 0 || len(rep.Problems) != len(want) {
		t.Fatalf("check --repair: %d problems, %d repaired\n%s", len(rep.Problems), rep.Repaired, r)
	}
	rep, r = d.check(t, "--verify")
	if r.code != 0 || len(rep.Problems) != 0 || rep.Healthy != len(d.files) {
		t.Fatalf("check --verify after repair: %v\n%s", rep.Problems, r)
	}
	d.nodes[2].stop(t, syscall.SIGKILL)
	d.nodes[3].stop(t, syscall.SIGKILL)
	d.readAll(t, "after repair, two nodes stopped")
	d.unmount(t)
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// waitStatus polls status until ok says yes (60 s at most).
func waitStatus(t *testing.T, d *repairDrive, what string, ok func(statusReport) bool) statusReport {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := statusJSON(t, d.env, d.dir)
		if st.Repair != nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 60 s for %s: repair %+v", what, st.Repair)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shardLayout maps each segment to the node dirs holding its shards
// (index -> dir index), from the node dirs themselves.
func shardLayout(t *testing.T, dirs []string) map[string]map[int][]int {
	t.Helper()
	out := map[string]map[int][]int{}
	for di, dir := range dirs {
		for _, name := range shardFiles(t, dir) {
			seg, idx, ok := strings.Cut(strings.TrimPrefix(name, "shards/"), ".")
			if !ok {
				t.Fatalf("shard name %q", name)
			}
			var i int
			fmt.Sscan(idx, &i)
			if out[seg] == nil {
				out[seg] = map[int][]int{}
			}
			out[seg][i] = append(out[seg][i], di)
		}
	}
	return out
}

// TestNodeAddRefusesAlias: a node of the drive under another address (the
// host spelled otherwise, a trailing slash, file:// before a directory, a
// symlink to it, the directory a node process serves) is refused, naming
// the node it is, and the drive's nodes stay as they were; no probe object
// stays behind. Accepted, a drain of the alias deleted the node's shards
// and meta/key. A node that is down does not block an add of another: the
// add warns that it could not ask it.
func TestNodeAddRefusesAlias(t *testing.T) {
	d := newRepairDrive(t, 1, 2)
	dn := filepath.Join(d.base, "dirnode")
	if r := mustRun(t, d.env, "node", "add", "--data", d.dir, dn); !strings.Contains(r.stdout, "added node-7") {
		t.Fatalf("node add of a directory: %s", r)
	}
	link := filepath.Join(d.base, "link")
	if err := os.Symlink(dn, link); err != nil {
		t.Fatal(err)
	}
	before, err := loadConfig(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(d.nodes[0].addr, ":")
	for _, c := range []struct{ url, node, nodeURL string }{
		{"http://localhost:" + port, "node-1", d.nodes[0].url()},
		{d.nodes[0].url() + "/", "node-1", d.nodes[0].url()},
		{d.nodeDirs[0], "node-1", d.nodes[0].url()},
		{"file://" + dn, "node-7", dn},
		{dn + "/", "node-7", dn},
		{link, "node-7", dn},
	} {
		r := runBin(t, d.env, "node", "add", "--data", d.dir, c.url)
		want := c.url + " is the same node as " + c.node + " (" + c.nodeURL + "): a probe object written to it appeared there"
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("node add %s: %s\nwant %q", c.url, r, want)
		}
	}
	// A URL of no known form is a bad URL, not a node that does not answer.
	r := runBin(t, d.env, "node", "add", "--data", d.dir, "htp://host:7070")
	if r.code == 0 || !strings.Contains(r.stderr, `bad store URL "htp://host:7070"`) || strings.Contains(r.stderr, "does not answer") {
		t.Errorf("node add of a malformed URL: %s", r)
	}
	after, err := loadConfig(d.dir)
	if err != nil || !slices.Equal(after.Nodes, before.Nodes) {
		t.Errorf("the drive's nodes after the refused adds: %+v (%v), want %+v", after.Nodes, err, before.Nodes)
	}
	for _, dir := range append(slices.Clone(d.nodeDirs), dn) {
		if left, _ := filepath.Glob(filepath.Join(dir, "meta", "probe-*")); len(left) != 0 {
			t.Errorf("probe objects left on %s: %v", dir, left)
		}
	}
	if _, err := os.Stat(filepath.Join(d.nodeDirs[0], "meta", metaKey)); err != nil {
		t.Errorf("node-1 lost its meta/key: %v", err)
	}

	d.nodes[5].stop(t, syscall.SIGTERM)
	fresh := startNode(t, filepath.Join(d.base, "node", "fresh"))
	r = mustRun(t, d.env, "node", "add", "--data", d.dir, fresh.url())
	if !strings.Contains(r.stdout, "added node-8") || !strings.Contains(r.stderr, "warning: node-6 ("+d.nodes[5].url()+") did not answer") ||
		!strings.Contains(r.stderr, "meshdrive node remove node-8") {
		t.Errorf("node add with node-6 down: %s", r)
	}
}

// TestNodeAddDrain: a seventh node is added, then the first is drained
// while the mount is killed with SIGKILL in the middle; mounting again
// and draining again finishes: the drained node holds no shard, every
// segment has its 6 shards on 6 distinct nodes, and everything reads
// with two of the remaining six stopped.
func TestNodeAddDrain(t *testing.T) {
	d := newRepairDrive(t, 4, 3, "--repair-limit", "400KiB")
	n7dir := filepath.Join(d.base, "node", "6")
	n7 := startNode(t, n7dir)
	r := mustRun(t, d.env, "node", "add", "--data", d.dir, n7.url())
	if !strings.Contains(r.stdout, "added node-7") {
		t.Errorf("node add: %s", r)
	}
	r = mustRun(t, d.env, "node", "list", "--data", d.dir)
	if strings.Count(r.stdout, " up ") != 7 || !strings.Contains(r.stdout, n7.url()) {
		t.Errorf("node list after add:\n%s", r.stdout)
	}
	if r := runBin(t, d.env, "node", "add", "--data", d.dir, n7.url()); r.code == 0 || !strings.Contains(r.stderr, "already node node-7") {
		t.Errorf("adding a node twice: %s", r)
	}
	st := waitStatus(t, d, "the rebalancing pass", func(s statusReport) bool {
		return s.Repair.Phase == "rebalance" && !s.Repair.Running
	})
	if st.Repair.Moved == 0 || len(shardFiles(t, n7dir)) == 0 {
		t.Errorf("nothing rebalanced onto the new node: %+v", st.Repair)
	}

	// Drain node-1, and kill the mount once the drain has moved a segment.
	drain := exec.Command(meshdriveBin(t), "node", "drain", "--data", d.dir, d.nodes[0].url())
	drain.Env = d.env
	var drainOut bytes.Buffer
	drain.Stdout, drain.Stderr = &drainOut, &drainOut
	if err := drain.Start(); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, d, "the drain to move a segment", func(s statusReport) bool {
		return s.Repair.Phase == "drain node-1" && s.Repair.Running && s.Repair.Done >= 1
	})
	if st.Repair.Done >= st.Repair.Total {
		t.Logf("the drain was done before the kill (%d of %d)", st.Repair.Done, st.Repair.Total)
	}
	syscall.Kill(st.PID, syscall.SIGKILL)
	waitGone(t, st.PID)
	if err := drain.Wait(); err == nil {
		t.Errorf("node drain exited 0 although its mount was killed: %s", drainOut.String())
	}
	// Not a terminal: the drain's progress was plain lines (the mount
	// had sent one for the segment moved before the kill).
	if out := drainOut.String(); !strings.Contains(out, "drain: ") || !strings.Contains(out, " segments\n") {
		t.Errorf("node drain on a non-terminal showed no progress: %s", out)
	}
	mustRun(t, d.env, "unmount", "--data", d.dir, d.mp) // clears the dead mount
	cfg, err := loadConfig(d.dir)
	if err != nil || len(cfg.Nodes) != 7 || !cfg.Nodes[0].Draining {
		t.Fatalf("config after the killed drain: %+v %v", cfg, err)
	}
	// init and node add recorded each node's id, the one in its mark.
	if mark, _ := os.ReadFile(filepath.Join(n7dir, node.MarkName)); cfg.Nodes[6].ID == "" || !strings.Contains(string(mark), "id "+cfg.Nodes[6].ID+"\n") {
		t.Errorf("node add recorded id %q for node-7; its mark holds:\n%s", cfg.Nodes[6].ID, mark)
	}
	for _, n := range cfg.Nodes {
		if len(n.ID) != 32 {
			t.Errorf("node %s's id in the config: %q", n.Name, n.ID)
		}
	}
	d.mount(t, "--repair-limit", "0")
	// status says the drain is unfinished, and how to finish it.
	if st := statusJSON(t, d.env, d.dir); len(st.Nodes) == 0 || st.Nodes[0].Name != "node-1" || !st.Nodes[0].Draining {
		t.Errorf("status JSON after the killed drain does not mark node-1 draining: %+v", st.Nodes)
	}
	if txt := mustRun(t, d.env, "status", "--data", d.dir).stdout; !strings.Contains(txt, "node-1 is draining") ||
		!strings.Contains(txt, "meshdrive node drain node-1 finishes it") {
		t.Errorf("status after the killed drain does not say node-1 is draining:\n%s", txt)
	}
	r = mustRun(t, d.env, "node", "drain", "--data", d.dir, "node-1")
	if !strings.Contains(r.stdout, "drained and removed node-1") {
		t.Errorf("node drain: %s", r)
	}
	if left := shardFiles(t, d.nodeDirs[0]); len(left) != 0 {
		t.Errorf("the drained node still holds %d shards: %v", len(left), left)
	}
	cfg, err = loadConfig(d.dir)
	if err != nil || len(cfg.Nodes) != 6 || cfg.Nodes[0].Name == "node-1" {
		t.Fatalf("config after the drain: %+v %v", cfg, err)
	}
	for _, n := range cfg.Nodes {
		if n.Draining {
			t.Errorf("node %s still marked draining", n.Name)
		}
	}
	rep, r := d.check(t, "--verify")
	if r.code != 0 || rep.Healthy != len(d.files) || rep.SegmentsHealthy != rep.Segments || len(rep.Problems) != 0 {
		t.Fatalf("check --verify after the drain: %v %v\n%s", statesOf(rep), rep.Problems, r)
	}
	remaining := append(slices.Clone(d.nodeDirs[1:]), n7dir)
	layout := shardLayout(t, remaining)
	if len(layout) != rep.Segments {
		t.Errorf("%d segments on the nodes, check counted %d", len(layout), rep.Segments)
	}
	for seg, byIdx := range layout {
		seen := map[int]bool{}
		for i := range 6 {
			if len(byIdx[i]) != 1 || seen[byIdx[i][0]] {
				t.Errorf("segment %s: shard %d on node dirs %v (layout %v)", seg, i, byIdx[i], byIdx)
				continue
			}
			seen[byIdx[i][0]] = true
		}
	}
	var ns []nodeStatus
	if err := json.Unmarshal([]byte(mustRun(t, d.env, "node", "list", "--data", d.dir, "--json").stdout), &ns); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if !n.Up || n.Shards != int64(rep.Segments) || n.Name == "node-1" {
			t.Errorf("node list after the drain: %+v, want %d shards each (one per segment)", n, rep.Segments)
		}
	}
	// The grid's copy of the config names the new set: recover from the
	// new node sees it (and reads the metadata records the drain moved).
	rec := filepath.Join(d.base, "rec")
	mustRun(t, d.env, "recover", "--node", n7.url(), "--data", rec)
	if rc, err := loadConfig(rec); err != nil || !slices.Equal(nodeNames(rc), nodeNames(cfg)) {
		t.Errorf("recovered config: %v %v, want nodes %v", nodeNames(rc), err, nodeNames(cfg))
	}
	if r := runBin(t, d.env, "node", "remove", "--data", d.dir, "node-2"); r.code == 0 || !strings.Contains(r.stderr, "add a node first") {
		t.Errorf("removing a node below k+m: %s", r)
	}

	// An eighth and a ninth node join at once (each add picks the next
	// name: two at once picked the same, and one failed); the eighth
	// dies, node remove forgets both, and the background pass the
	// removal starts regenerates their shards.
	n8 := startNode(t, filepath.Join(d.base, "node", "7"))
	n9 := startNode(t, filepath.Join(d.base, "node", "8"))
	adds := make(chan result, 2)
	for _, n := range []*nodeProc{n8, n9} {
		go func() { adds <- runBin(t, d.env, "node", "add", "--data", d.dir, n.url()) }()
	}
	var added []string
	for range 2 {
		r := <-adds
		if r.code != 0 {
			t.Fatalf("two node adds at once: %s", r)
		}
		added = append(added, strings.TrimSpace(r.stdout))
	}
	cfg8, err := loadConfig(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	if names := nodeNames(cfg8); !slices.Contains(names, "node-8") || !slices.Contains(names, "node-9") {
		t.Fatalf("two node adds at once: nodes %v (%q)", names, added)
	}
	waitStatus(t, d, "the rebalancing pass onto node-8 and node-9", func(s statusReport) bool {
		return s.Repair.Phase == "rebalance" && !s.Repair.Running
	})
	n8.stop(t, syscall.SIGKILL)
	for _, n := range []*nodeProc{n8, n9} {
		r = mustRun(t, d.env, "node", "remove", "--data", d.dir, n.url())
		if !strings.Contains(r.stdout, "removed node-") {
			t.Errorf("node remove: %s", r)
		}
	}
	removed := time.Now()
	n9.stop(t, syscall.SIGTERM)
	waitStatus(t, d, "the pass after the removals", func(s statusReport) bool {
		return s.Repair.LastPass.After(removed) && !s.Repair.Running
	})
	// The pass that ended first may have surveyed between the two
	// removes; the second remove's kick runs another after it.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rep, r = d.check(t)
		if r.code == 0 && rep.Healthy == len(d.files) && rep.SegmentsHealthy == rep.Segments {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check after removing a dead node, 60 s on: %v %v\n%s", statesOf(rep), rep.Problems, r)
		}
	}

	d.nodes[2].stop(t, syscall.SIGKILL)
	n7.stop(t, syscall.SIGKILL)
	d.readAll(t, "after the drain, two of six stopped")
	d.unmount(t)
}

func nodeNames(c *Config) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// TestNodeServeRefusesOpen: a node on a non-loopback address without a
// token refuses to start, in one line that says what to do; --insecure
// starts it anyway, and a token is enough.
func TestNodeServeRefusesOpen(t *testing.T) {
	for _, c := range []struct {
		addr string
		open bool
	}{{"127.0.0.1:0", false}, {"[::1]:0", false}, {"localhost:0", false}, {"0.0.0.0:0", true}, {":0", true}, {"192.0.2.1:0", true}} {
		if got := !loopbackAddr(c.addr); got != c.open {
			t.Errorf("loopbackAddr(%q) = %v", c.addr, !got)
		}
	}
	r := runBin(t, cmdEnv(), "node", "serve", "--dir", t.TempDir(), "--listen", "0.0.0.0:0")
	if r.code != 2 || !strings.Contains(r.stderr, "without a token") || !strings.Contains(r.stderr, "--token-file") ||
		strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("open node without a token: %s", r)
	}
	// An address that does not parse is named as such, not refused for
	// want of a token.
	for _, addr := range []string{"nonsense", "127.0.0.1"} {
		r := runBin(t, cmdEnv(), "node", "serve", "--dir", t.TempDir(), "--listen", addr)
		if r.code != 2 || !strings.Contains(r.stderr, "--listen \""+addr+"\" does not parse") || !strings.Contains(r.stderr, "host:port") ||
			strings.Contains(r.stderr, "token") {
			t.Errorf("--listen %s: %s", addr, r)
		}
	}
	if r := runBin(t, cmdEnv(), "node", "serve", "--dir", t.TempDir(), "--listen", "127.0.0.1:0", "--quarantine-max", "lots"); r.code != 2 || !strings.Contains(r.stderr, "--quarantine-max \"lots\"") {
		t.Errorf("a bad --quarantine-max: %s", r)
	}
	served := t.TempDir()
	n := startNode(t, served, "--listen", "0.0.0.0:0", "--insecure")
	// A second process for the same directory is refused, naming the first.
	if r := runBin(t, cmdEnv(), "node", "serve", "--dir", served, "--listen", "127.0.0.1:0"); r.code == 0 ||
		!strings.Contains(r.stderr, "already served by another meshdrive node process (pid "+strconv.Itoa(n.cmd.Process.Pid)) {
		t.Errorf("a second node serve of one directory: %s", r)
	}
	n.stop(t, syscall.SIGTERM)
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	n = startNode(t, t.TempDir(), "--listen", "0.0.0.0:0", "--token-file", tok)
	n.stop(t, syscall.SIGTERM)
}

// TestNodeDrainInterrupted: a drain cut short by Ctrl-C says the node stays
// marked draining and that running node drain again finishes it. The mount
// is a fake control socket that never answers.
func TestNodeDrainInterrupted(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, controlSock))
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		asked <- struct{}{}
		<-r.Context().Done()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	drain := exec.Command(meshdriveBin(t), "node", "drain", "--data", dir, "node-1")
	drain.Env = cmdEnv()
	var stderr bytes.Buffer
	drain.Stderr = &stderr
	if err := drain.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-time.After(time.Minute):
		drain.Process.Kill()
		t.Fatal("node drain never asked the mount")
	}
	drain.Process.Signal(os.Interrupt)
	if err := drain.Wait(); err == nil {
		t.Errorf("an interrupted drain exited 0")
	}
	msg := stderr.String()
	for _, want := range []string{"interrupted", "node-1 stays marked draining", "meshdrive node drain --data " + dir + " node-1 again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
}

// TestNodeDrainFailedMovedNothing: a drain whose every segment failed (no
// node free to take the shards) ends with its progress at the total, but
// says it failed, not that it moved the shards of those segments. The
// mount is a fake control socket.
func TestNodeDrainFailedMovedNothing(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, controlSock))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, `{"progress":{"phase":"drain node-1","done":1,"total":2}}`)
		fmt.Fprintln(w, `{"progress":{"phase":"drain node-1","done":2,"total":2}}`)
		fmt.Fprintln(w, `{"error":"drain node-1: 2 of 2 segments not repaired, first: no node to take them"}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	drain := exec.Command(meshdriveBin(t), "node", "drain", "--data", dir, "node-1")
	drain.Env = cmdEnv()
	var stdout, stderr bytes.Buffer
	drain.Stdout, drain.Stderr = &stdout, &stderr
	if err := drain.Run(); err == nil {
		t.Errorf("a failed drain exited 0")
	}
	if strings.Contains(stdout.String(), "moved the shards") {
		t.Errorf("a drain that moved nothing says %q (stderr %q)", stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "2 of 2 segments not repaired") {
		t.Errorf("stderr %q does not say why the drain failed", stderr.String())
	}
}

// TestRepairWritesFullRecord: the newest metadata record keeps 3 of its 6
// shards, every node answering. check says so and exits 1; check
// --repair writes a full record and says what stays lost; recover from
// one node then works and has the newest change.
func TestRepairWritesFullRecord(t *testing.T) {
	d := newRepairDrive(t, 1, 2)
	before := map[string]bool{}
	for i, nd := range d.nodeDirs {
		for _, s := range shardFiles(t, nd) {
			before[fmt.Sprint(i, s)] = true
		}
	}
	if err := os.Mkdir(filepath.Join(d.mp, "newest"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, d.env, "sync", "--data", d.dir, "--timeout", "1m")
	// The shards that appeared: the new record's (no data changed).
	bySeg := map[string][]string{} // segment -> shard files
	for i, nd := range d.nodeDirs {
		for _, s := range shardFiles(t, nd) {
			if !before[fmt.Sprint(i, s)] {
				seg, _, _ := strings.Cut(strings.TrimPrefix(s, "shards/"), ".")
				bySeg[seg] = append(bySeg[seg], filepath.Join(nd, s))
			}
		}
	}
	if len(bySeg) != 1 {
		t.Fatalf("new segments after a metadata change: %v, want the record's", bySeg)
	}
	for _, files := range bySeg {
		if len(files) != 6 {
			t.Fatalf("the new record's shards: %v", files)
		}
		for _, f := range files[:3] {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, r := d.check(t)
	if r.code != 1 || len(rep.MetaUnrecoverable) != 1 || rep.MetaFull != 0 {
		t.Fatalf("check with the newest record below k: %+v\n%s", rep.MetaUnrecoverable, r)
	}
	rep, r = d.check(t, "--repair")
	if r.code != 1 || rep.MetaFull <= rep.MetaUnrecoverable[0] || !strings.Contains(r.stderr, "recover works again") {
		t.Fatalf("check --repair with the newest record below k: full record %d\n%s", rep.MetaFull, r)
	}
	d.unmount(t)
	got := filepath.Join(d.base, "recovered")
	r = runBin(t, d.env, "recover", "--node", d.nodes[4].url(), "--data", got)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("from checkpoint %d ", rep.MetaFull)) {
		t.Fatalf("recover after the full record:\n%s", r)
	}
	mp := filepath.Join(d.base, "mnt2")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	cleanupMount(t, d.env, got, mp)
	mustRun(t, d.env, "mount", "--daemon", "--data", got, mp)
	if fi, err := os.Stat(filepath.Join(mp, "newest")); err != nil || !fi.IsDir() {
		t.Errorf("the recovered drive lacks the newest folder: %v", err)
	}
	mustRun(t, d.env, "unmount", "--data", got, mp)
}
