package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	_ "modernc.org/sqlite" // the journal's database, read by the test
)

// snapshotOnlySegments reads the drive's journal (read-only, beside the
// running mount) for the data segments no file in the tree uses: those
// snapshots keep.
func snapshotOnlySegments(t *testing.T, dir string) []string {
	t.Helper()
	return journalSegments(t, dir, "NOT IN")
}

// fileSegments reads the drive's journal (read-only, beside the running
// mount) for the data segments files in the tree use.
func fileSegments(t *testing.T, dir string) []string {
	t.Helper()
	return journalSegments(t, dir, "IN")
}

// journalSegments lists the segments whose id is (op "IN") or is not
// ("NOT IN") among those of the files in the tree.
func journalSegments(t *testing.T, dir, op string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "journal", "journal.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT lower(hex(id)) FROM segments WHERE id ` + op + `
		(SELECT b.segment FROM blockmap m JOIN blocks b ON b.id = m.block WHERE b.segment IS NOT NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// shardIndexes counts, for each segment id, the distinct shard indexes
// stored over the node directories.
func shardIndexes(t *testing.T, dirs []string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, d := range dirs {
		for _, name := range shardFiles(t, d) {
			id, idx, ok := strings.Cut(filepath.Base(name), ".")
			if !ok {
				continue
			}
			if out[id] == nil {
				out[id] = map[string]bool{}
			}
			out[id][idx] = true
		}
	}
	return out
}

// snapshotKeepsB1 takes a snapshot, deletes the folder b1 from the drive
// and syncs: the segments of b1's files are then kept by the snapshot
// alone. It returns them.
func snapshotKeepsB1(t *testing.T, d *repairDrive) []string {
	t.Helper()
	mustRun(t, d.env, "snapshot", "create", "--data", d.dir, "--name", "before")
	if err := os.RemoveAll(filepath.Join(d.mp, "b1")); err != nil {
		t.Fatal(err)
	}
	for name := range d.files {
		if strings.HasPrefix(name, "b1/") {
			delete(d.files, name)
		}
	}
	mustRun(t, d.env, "sync", "--data", d.dir)
	only := snapshotOnlySegments(t, d.dir)
	if len(only) == 0 {
		t.Fatal("no segment is kept by the snapshot alone: the test deletes nothing that a snapshot keeps")
	}
	return only
}

// TestCheckCoversSnapshotSegments: the segments that only a snapshot
// keeps (a folder deleted after the snapshot) are part of a whole drive's
// check: with a node wiped, check says they miss shards, check --repair
// brings them back to 6 of 6 like the others, and with three of their
// shards gone check exits 1 saying the snapshot's copy cannot be
// restored, while the files in the tree stay healthy. Before, check
// counted only the tree's files and the metadata: it said everything
// was healthy and --repair left those segments short.
func TestCheckCoversSnapshotSegments(t *testing.T) {
	d := newRepairDrive(t, 2, 3)
	only := snapshotKeepsB1(t, d)

	wipe(t, d.nodeDirs[2])
	rep, r := d.check(t)
	if r.code != 0 || rep.SnapshotSegments != len(only) || rep.SnapshotDegraded != len(only) || rep.SegmentsHealthy != 0 {
		t.Fatalf("check with a node wiped: %d segments only in snapshots (want %d), %d of them degraded, %d segments healthy (want 0)\n%s",
			rep.SnapshotSegments, len(only), rep.SnapshotDegraded, rep.SegmentsHealthy, r)
	}
	txt := runBin(t, d.env, "check", "--data", d.dir)
	if !strings.Contains(txt.stdout, "only in snapshots") || !strings.Contains(txt.stdout, "segments only snapshots keep (of deleted or overwritten files, or garbage gc has yet to collect), missing shards") {
		t.Errorf("check does not tell the snapshots' segments:\n%s", txt)
	}

	rep, r = d.check(t, "--repair")
	if r.code != 0 || rep.RepairFailed != 0 || rep.Repaired != rep.Segments {
		t.Fatalf("check --repair: repaired %d of %d segments\n%s", rep.Repaired, rep.Segments, r)
	}
	have := shardIndexes(t, d.nodeDirs)
	for _, id := range only {
		if n := len(have[id]); n != 6 {
			t.Errorf("segment %s, kept by the snapshot, has %d of 6 shards after check --repair", id, n)
		}
	}

	// Three shards of each gone: the snapshot's copy of b1 is lost, the
	// tree is not.
	for _, id := range only {
		removed := 0
		for _, dir := range d.nodeDirs {
			for _, name := range shardFiles(t, dir) {
				if strings.HasPrefix(filepath.Base(name), id+".") && removed < 3 {
					if err := os.Remove(filepath.Join(dir, name)); err != nil {
						t.Fatal(err)
					}
					removed++
				}
			}
		}
	}
	rep, r = d.check(t)
	if r.code != 1 || len(rep.SnapshotUnrecoverable) != len(only) || rep.Unrecoverable != 0 || rep.Healthy != len(d.files) {
		t.Fatalf("check with the snapshot's segments below k: code %d, %d of %d named unrecoverable, files %v\n%s",
			r.code, len(rep.SnapshotUnrecoverable), len(only), statesOf(rep), r)
	}
	if !strings.Contains(r.stderr, "only snapshots keep") || !strings.Contains(r.stderr, "the files in the drive do not need them") {
		t.Errorf("check's error does not say what was lost:\n%s", r)
	}
	// check --repair cannot rebuild them: it says they are lost, once,
	// and does not offer to try them again.
	rep, r = d.check(t, "--repair")
	if r.code != 1 || len(rep.SnapshotUnrecoverable) != len(only) || rep.RepairFailed != 0 {
		t.Fatalf("check --repair with the snapshot's segments below k: code %d, %d of %d named unrecoverable, %d failed repairs (want 0: nothing to try again)\n%s",
			r.code, len(rep.SnapshotUnrecoverable), len(only), rep.RepairFailed, r)
	}
	if !strings.Contains(r.stderr, "only snapshots keep") || strings.Contains(r.stderr, "could not be repaired") {
		t.Errorf("check --repair's error should name the lost segments once, as only snapshots keep them:\n%s", r)
	}
	d.readAll(t, "after losing the snapshot's segments")
}

// TestCheckRepairNodesDownAdvice: with three of six nodes stopped (k=4),
// the tree's files and the segments only a snapshot keeps are below k
// shards, not lost: check --repair exits 1 and says, for both, to start
// the stopped nodes, counts no failed repair (there is nothing it could
// do), does not call them deleted or lost on the nodes, and does not
// try to write a full metadata record (for want of nodes it failed, and
// its error was shown as "the drive key and config could not be stored
// again on : write a full metadata record: ...").
func TestCheckRepairNodesDownAdvice(t *testing.T) {
	d := newRepairDrive(t, 2, 2)
	only := snapshotKeepsB1(t, d)
	for _, i := range []int{3, 4, 5} {
		d.nodes[i].stop(t, syscall.SIGKILL)
	}
	rep, r := d.check(t, "--repair")
	if r.code != 1 || len(rep.Down) != 3 || rep.RepairFailed != 0 || len(rep.SnapshotUnrecoverable) != len(only) || rep.Unrecoverable != len(d.files) {
		t.Fatalf("check --repair with three nodes stopped: code %d, down %v, %d failed repairs, %d of %d snapshot segments unrecoverable, %d of %d files unrecoverable\n%s",
			r.code, rep.Down, rep.RepairFailed, len(rep.SnapshotUnrecoverable), len(only), rep.Unrecoverable, len(d.files), r)
	}
	if n := strings.Count(r.stderr, "start the stopped nodes ("); n != 2 || strings.Contains(r.stderr, "every node answers") ||
		strings.Contains(r.stderr, "could not be repaired") || strings.Contains(r.stderr, "could not be stored again") {
		t.Errorf("check --repair with three nodes stopped should say twice (files, snapshots) to start them (says it %d times), and nothing else:\n%s", n, r)
	}
}
