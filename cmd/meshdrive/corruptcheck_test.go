package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// TestCheckRepairCorruptBelowKAdvice: every segment of the files misses
// one shard, and two of the five its nodes list fail their checksums
// (flipped bytes, sizes kept): only three (k-1) are readable. A check
// without --verify counts the files degraded; check --repair cannot
// rebuild them and says so as of lost data: it names the files
// UNRECOVERABLE and the segments, counts them unrecoverable and not as
// failed repairs, names the nodes that hold the corrupt shards and says
// to restore one from a backup, and that check --verify finds more;
// never that check --repair tries them again, which cannot help.
func TestCheckRepairCorruptBelowKAdvice(t *testing.T) {
	d := newRepairDrive(t, 1, 3)
	segs := fileSegments(t, d.dir)
	if len(segs) == 0 {
		t.Fatal("no segment holds the files' data")
	}
	layout := shardLayout(t, d.nodeDirs)
	corruptOn := map[string]bool{} // node names
	for _, seg := range segs {
		for i, ds := range layout[seg] {
			if len(ds) != 1 {
				t.Fatalf("segment %s: shard %d on node dirs %v", seg, i, ds)
			}
			p := filepath.Join(d.nodeDirs[ds[0]], "shards", fmt.Sprintf("%s.%d", seg, i))
			switch i {
			case 5:
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			case 0, 1:
				remotetest.FlipFile(t, p)
				corruptOn[fmt.Sprintf("node-%d", ds[0]+1)] = true
			}
		}
	}
	rep, r := d.check(t)
	if r.code != 0 || rep.Degraded != len(d.files) {
		t.Fatalf("check without --verify: files %v, want all %d degraded (it counts listed shards)\n%s", statesOf(rep), len(d.files), r)
	}

	rep, r = d.check(t, "--repair")
	slices.Sort(segs)
	got := slices.Sorted(slices.Values(rep.CorruptUnrecoverable))
	if r.code != 1 || !slices.Equal(got, segs) || rep.RepairFailed != 0 || rep.Repaired != 0 ||
		rep.SegmentsUnrecoverable != len(segs) || rep.Unrecoverable != len(d.files) {
		t.Fatalf("check --repair with 3 of 6 shards readable: code %d, corrupt below k %v (want %v), %d failed and %d repaired (want 0), "+
			"%d segments unrecoverable, files %v\n%s", r.code, got, segs, rep.RepairFailed, rep.Repaired, rep.SegmentsUnrecoverable, statesOf(rep), r)
	}
	for _, f := range rep.Files {
		if f.Shards != 3 || len(f.Segments) == 0 {
			t.Errorf("file %s: %d of %d shards, segments %v; want 3 and its segment named", f.Path, f.Shards, f.N, f.Segments)
		}
	}
	nodes := slices.Sorted(func(yield func(string) bool) {
		for n := range corruptOn {
			if !yield(n) {
				return
			}
		}
	})
	for _, want := range []string{
		fmt.Sprintf("%d segments cannot be repaired, now or by trying again", len(segs)),
		"fewer than k pass their checksums (the nodes' own verify found the others corrupt, on " + strings.Join(nodes, ", ") + ")",
		"restore the disk of one of those nodes from a backup and run check --repair again",
		"meshdrive check --verify finds other corrupt shards",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("check --repair's error does not say %q:\n%s", want, r)
		}
	}
	if strings.Contains(r.stderr, "tries them again") || strings.Contains(r.stderr, "could not be repaired") {
		t.Errorf("check --repair offers to try again what no try can rebuild:\n%s", r)
	}
	txt := runBin(t, d.env, "check", "--data", d.dir, "--repair")
	if txt.code != 1 || !strings.Contains(txt.stdout, "UNRECOVERABLE  /b0/f0: 3 of 6 shards") ||
		!strings.Contains(txt.stdout, fmt.Sprintf("UNRECOVERABLE  %d segments listed whole, but fewer than k of their shards pass their checksums", len(segs))) {
		t.Errorf("check --repair's report does not name the lost files and segments:\n%s", txt)
	}
	d.unmount(t)
}
