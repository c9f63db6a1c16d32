package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/journal/repair"
)

// TestCheckExitErrorNamesEveryReason: check's final error names every
// reason it exits 1 for, the most serious first. Segments only snapshots
// keep below k once hid a failed repair, a key and config not stored
// again, and damaged blocks not yet uploaded.
func TestCheckExitErrorNamesEveryReason(t *testing.T) {
	staged := &fs.StagedCheck{Blocks: 3, Damaged: []fs.StagedDamage{{Block: "b1", Paths: []string{"/a.txt"}, Error: "authentication failed"}}}
	reasons := []struct {
		name string
		set  func(*fs.RepairReport)
		want string
	}{
		{"live files unrecoverable", func(r *fs.RepairReport) { r.Unrecoverable = 2 }, "2 files and 0 metadata records are unrecoverable"},
		{"segments corrupt below k", func(r *fs.RepairReport) {
			r.CorruptUnrecoverable = []string{"s3"}
			r.Problems = []repair.ShardProblem{{Segment: "s3", Node: "node-2", State: "corrupt"}, {Segment: "s3", Node: "node-4", State: "missing"}}
		}, "1 segments cannot be repaired, now or by trying again: their nodes list enough shards, but fewer than k pass their checksums (the nodes' own verify found the others corrupt, on node-2)"},
		{"staged damage", func(r *fs.RepairReport) { r.Staged = staged }, "damaged on the local disk (files: /a.txt)"},
		{"snapshot segments below k", func(r *fs.RepairReport) { r.SnapshotUnrecoverable = []string{"s1", "s2"} }, "2 segments that only snapshots keep"},
		{"segments out of reach", func(r *fs.RepairReport) {
			r.OutOfReach, r.OutOfReachNodes = []string{"s5"}, []string{"node-0", "node-2"}
		},
			"1 segments could not be repaired: fewer than k of their shards could be read, the others are on nodes that did not answer (node-0, node-2), " +
				"and trying again cannot help until they do: start the stopped nodes (meshdrive node serve on their hosts"},
		{"repair failed", func(r *fs.RepairReport) { r.RepairFailed, r.RepairErrors = 3, []string{"node-2: disk full"} }, "3 segments could not be repaired (first: node-2: disk full)"},
		{"key and config not stored", func(r *fs.RepairReport) { r.MetaMissing, r.MetaError = []string{"node-5"}, "node-5: read-only bucket" },
			"the drive key and config could not be stored again on node-5: node-5: read-only bucket"},
	}
	exit1 := func(t *testing.T, err error) string {
		t.Helper()
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 1 {
			t.Fatalf("want exit code 1, got %#v", err)
		}
		return err.Error()
	}
	for _, r := range reasons {
		t.Run(r.name, func(t *testing.T) {
			rep := &fs.RepairReport{}
			r.set(rep)
			if msg := exit1(t, checkExitError(rep)); !strings.Contains(msg, r.want) {
				t.Errorf("error %q does not name %q", msg, r.want)
			}
		})
	}
	t.Run("all at once, most serious first", func(t *testing.T) {
		rep := &fs.RepairReport{}
		for _, r := range reasons {
			r.set(rep)
		}
		msg := exit1(t, checkExitError(rep))
		last := -1
		for _, r := range reasons {
			i := strings.Index(msg, r.want)
			if i < 0 {
				t.Errorf("error %q does not name %s (%q)", msg, r.name, r.want)
				continue
			}
			if i < last {
				t.Errorf("%s comes before a more serious reason in %q", r.name, msg)
			}
			last = i
		}
	})
	t.Run("snapshot loss with each other reason", func(t *testing.T) {
		for _, r := range reasons {
			if r.name == "snapshot segments below k" {
				continue
			}
			rep := &fs.RepairReport{SnapshotUnrecoverable: []string{"s1"}}
			r.set(rep)
			msg := exit1(t, checkExitError(rep))
			if !strings.Contains(msg, r.want) || !strings.Contains(msg, "1 segments that only snapshots keep") {
				t.Errorf("with %s: error %q does not name both", r.name, msg)
			}
		}
	})
	t.Run("nothing wrong", func(t *testing.T) {
		inFlight := &fs.StagedCheck{Blocks: 1, Damaged: []fs.StagedDamage{{Block: "b2", InFlight: true}}}
		rep := &fs.RepairReport{Healthy: 4, Degraded: 1, Repaired: 2, Staged: inFlight, MetaMissing: []string{"node-1"}, MetaRestored: true}
		if err := checkExitError(rep); err != nil {
			t.Errorf("a healthy report gives %v", err)
		}
	})
}

// TestCheckOutOfReachNotTriedAgain: segments whose repair could not read
// k shards because their nodes did not answer are named with those nodes
// and what to do, in the report and the final error; that error does not
// offer check --repair's next try, which cannot help while they are
// stopped, unless another repair failed for a reason a try can get past.
func TestCheckOutOfReachNotTriedAgain(t *testing.T) {
	rep := &fs.RepairReport{Repair: true, Degraded: 1, SegmentsDegraded: 1, Segments: 1,
		OutOfReach: []string{"s5"}, OutOfReachNodes: []string{"node-0", "node-2"}}
	var b strings.Builder
	printCheck(&b, rep, false)
	if want := "OUT OF REACH   1 segments not repaired: fewer than k of their shards could be read, the others on nodes that did not answer (node-0, node-2): s5"; !strings.Contains(b.String(), want) {
		t.Errorf("check's report does not say %q:\n%s", want, b.String())
	}
	err := checkExitError(rep)
	if err == nil || !strings.Contains(err.Error(), "start the stopped nodes") || strings.Contains(err.Error(), "tries them again") {
		t.Errorf("segments out of reach only: error %v; want the nodes to start, and no try again", err)
	}
	rep.RepairFailed, rep.RepairErrors = 1, []string{"node-3: timeout"}
	if err := checkExitError(rep); err == nil || !strings.Contains(err.Error(), "1 segments could not be repaired (first: node-3: timeout); check --repair tries them again") {
		t.Errorf("segments out of reach and a failed repair: error %v; want the failed one tried again", err)
	}
}

// TestCheckNoRoomNotTriedAgain: repairs that found no node to take a
// missing shard are said once per cause with their segments, and check
// says to start or add a node, not that a try alone gets past them.
func TestCheckNoRoomNotTriedAgain(t *testing.T) {
	noRoom := func(seg string) string {
		return "repair segment " + seg + ": " + fs.ErrTooFewNodes.Error() + ": every node that could take one of its 2 missing shards holds another shard of it"
	}
	rep := &fs.RepairReport{Repair: true, Degraded: 3, SegmentsDegraded: 3, Segments: 3, Down: []string{"node-2", "node-5"},
		RepairFailed: 3, RepairNoRoom: 3, RepairErrors: []string{noRoom("0bfa"), noRoom("14cb"), noRoom("51cf")}}
	var b strings.Builder
	printCheck(&b, rep, false)
	if n := strings.Count(b.String(), fs.ErrTooFewNodes.Error()); n != 1 {
		t.Errorf("the cause is said %d times; want once:\n%s", n, b.String())
	}
	if want := "3 failed: 3 segments (0bfa, 14cb, 51cf): " + fs.ErrTooFewNodes.Error(); !strings.Contains(b.String(), want) {
		t.Errorf("check's report does not say %q:\n%s", want, b.String())
	}
	err := checkExitError(rep)
	if err == nil || !strings.Contains(err.Error(), "3 segments could not be repaired: no node up (down: node-2, node-5) could take their missing shards") ||
		!strings.Contains(err.Error(), "start the stopped nodes or add one (meshdrive node add)") || strings.Contains(err.Error(), "tries them again") {
		t.Errorf("repairs that found no room only: error %v; want the nodes to start or add, and no try again", err)
	}
	rep.RepairFailed++
	rep.RepairErrors = append(rep.RepairErrors, "repair segment 9a9a: node-3: timeout")
	b.Reset()
	printCheck(&b, rep, false)
	if want := "4 failed: 3 segments (0bfa, 14cb, 51cf): " + fs.ErrTooFewNodes.Error(); !strings.Contains(b.String(), want) ||
		!strings.Contains(b.String(), "; segment 9a9a: node-3: timeout") {
		t.Errorf("check's report does not group the two causes:\n%s", b.String())
	}
	if err := checkExitError(rep); err == nil || !strings.Contains(err.Error(), "1 segments could not be repaired (first: repair segment 9a9a: node-3: timeout); check --repair tries them again") {
		t.Errorf("a failed repair beside those: error %v; want it tried again, named first", err)
	}
}
