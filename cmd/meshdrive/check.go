package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/meshdrive/meshdrive/fs"
)

func runCheck(e *env) error {
	fl := newFlagSet(e, "check", "check [--data DIR] [--verify] [--repair] [--json] [--verbose] [PATH]", `
Check the shards of every segment under PATH (a file or folder inside the
mount, or a path relative to the drive's root; the whole drive by default,
the metadata's segments and those only snapshots keep, of deleted and
overwritten files, included). Without --verify a shard counts when its
node lists it with the right size (one listing per node); with --verify each
node reads its shards and checks every checksum itself, answering with a
verdict (the data does not travel). Each file is healthy (n of n shards),
degraded (k to n-1: how many) or unrecoverable (fewer than k: which
segments). With --repair, missing and corrupt shards are rebuilt from any k
and stored on the nodes placement picks, so every segment returns to n shards
on n distinct nodes; a segment whose listed shards fail their checksums
when read, fewer than k intact, cannot be and is reported unrecoverable,
with the nodes that hold the corrupt shards; one whose repair cannot read
k shards because the nodes that hold the others stop answering is reported
out of reach, with those nodes to start again. Nodes that do not answer
are reported, not waited for.
A whole drive's check with every node answering also looks for two nodes
that are one store under two addresses, and warns. A whole drive's check
names the nodes that lost their copy of the drive's key or config (a wiped
disk, an emptied bucket: recover cannot start from them); --repair stores
those again. The check also reads the blocks written here and not yet
uploaded (those of the files under PATH, or all; on the local disk, no
network) and authenticates each: a damaged or missing one is reported with
its files while you may still have a copy, and the check goes on; --repair
marks it lost, as the uploader does when it reaches one (and a mount with
--drop-missing, one whose staging file is gone). One that cannot be read
is reported and left as it is.
Prints the unrecoverable files, the degraded ones (the first 20 and a
count; --verbose: all), a summary with a count by state, and the nodes
that did not answer, whose shards are what a degraded file misses when a
node is down (--json: every file);
a progress bar on a terminal. Exits 1 when anything is unrecoverable, a
repair failed or a block not yet uploaded is damaged; the last line names
every such reason, the most serious first. Talks to the running mount.`)
	dataDir := dataDirFlag(e, fl)
	verify := fl.Bool("verify", false, "have each node check its shards' checksums (reads every shard on the nodes)")
	doRepair := fl.Bool("repair", false, "rebuild missing and corrupt shards")
	asJSON := fl.Bool("json", false, "print the report as JSON")
	verbose := fl.Bool("verbose", false, fmt.Sprintf("name every degraded file (without it, the first %d and a count)", checkDegradedShown))
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("check takes at most one PATH")
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	q := url.Values{}
	if len(pos) == 1 {
		q.Set("path", pos[0])
		if abs := cliAbs(pos[0]); abs != "" {
			q.Set("abs", abs)
		}
	}
	if *verify {
		q.Set("verify", "1")
	}
	if *doRepair {
		q.Set("repair", "1")
	}
	var rep *fs.RepairReport
	err = streamLines(ctx, e, dir, "/check?"+q.Encode(), func(l checkLine) { rep = l.Report })
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if *asJSON {
		if err := printJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		printCheck(e.stdout, rep, *verbose)
	}
	return checkExitError(rep)
}

// checkExitError is check's verdict on its report: nil when all is well,
// else exit code 1 with every reason, the most serious first (data of the
// live drive lost, then blocks damaged before upload, then what only
// snapshots keep, then repairs that failed, then the key and config not
// stored again), each with what to do.
func checkExitError(rep *fs.RepairReport) error {
	var errs []error
	switch {
	case (rep.Unrecoverable > 0 || len(rep.MetaUnrecoverable) > 0) && len(rep.Down) > 0:
		errs = append(errs, fmt.Errorf("%d files and %d metadata records are unrecoverable (fewer than k shards); start the stopped nodes (%s) and check again",
			rep.Unrecoverable, len(rep.MetaUnrecoverable), strings.Join(rep.Down, ", ")))
	case rep.Unrecoverable == 0 && rep.MetaFull != 0:
		errs = append(errs, fmt.Errorf("%d metadata records are unrecoverable (fewer than k shards left with every node answering); "+
			"a full record (%d) was written, so recover works again without them; the snapshots that need them cannot be restored: "+
			"meshdrive snapshot list shows them, snapshot delete drops them", len(rep.MetaUnrecoverable), rep.MetaFull))
	case rep.Unrecoverable > 0 || len(rep.MetaUnrecoverable) > 0:
		errs = append(errs, fmt.Errorf("%d files and %d metadata records are unrecoverable: every node answers, and fewer than k shards of their data are left "+
			"(deleted or lost on the nodes): they cannot be read back from this grid; copy them in again from elsewhere, or delete them", rep.Unrecoverable, len(rep.MetaUnrecoverable)))
	}
	if len(rep.CorruptUnrecoverable) > 0 {
		errs = append(errs, corruptLossError(rep))
	}
	if rep.Staged != nil && slices.ContainsFunc(rep.Staged.Damaged, func(d fs.StagedDamage) bool { return !d.InFlight }) {
		errs = append(errs, stagedDamageError(rep.Staged))
	}
	if len(rep.SnapshotUnrecoverable) > 0 {
		errs = append(errs, snapshotLossError(rep))
	}
	if len(rep.OutOfReach) > 0 {
		errs = append(errs, outOfReachError(rep))
	}
	if n := rep.RepairNoRoom; n > 0 {
		down := ""
		if len(rep.Down) > 0 {
			down = " (down: " + strings.Join(rep.Down, ", ") + ")"
		}
		errs = append(errs, fmt.Errorf("%d segments could not be repaired: no node up%s could take their missing shards "+
			"(every other one is down, draining, full or holds a shard of the segment already); start the stopped nodes or add one "+
			"(meshdrive node add), then run check --repair again", n, down))
	}
	if n := rep.RepairFailed - rep.RepairNoRoom; n > 0 {
		first := ""
		if i := slices.IndexFunc(rep.RepairErrors, func(e string) bool { return !strings.Contains(e, fs.ErrTooFewNodes.Error()) }); i >= 0 {
			first = fmt.Sprintf(" (first: %s)", rep.RepairErrors[i])
		}
		errs = append(errs, fmt.Errorf("%d segments could not be repaired%s; check --repair tries them again", n, first))
	}
	if rep.MetaError != "" {
		errs = append(errs, fmt.Errorf("the drive key and config could not be stored again on %s: %s; check --repair tries again", strings.Join(rep.MetaMissing, ", "), rep.MetaError))
	}
	if len(errs) == 0 {
		return nil
	}
	return &exitError{code: 1, err: errors.Join(errs...)}
}

// snapshotLossError says what it means that segments only snapshots
// keep are below k shards, and what to do.
func snapshotLossError(rep *fs.RepairReport) error {
	n := len(rep.SnapshotUnrecoverable)
	if len(rep.Down) > 0 {
		return fmt.Errorf("%d segments that only snapshots keep (data of deleted or overwritten files, or garbage gc has yet to collect) have fewer than k shards; "+
			"start the stopped nodes (%s) and check again", n, strings.Join(rep.Down, ", "))
	}
	return fmt.Errorf("%d segments that only snapshots keep (data of deleted or overwritten files, or garbage gc has yet to collect) have fewer than k shards with every node answering: "+
		"the files in .snapshots that need them cannot be read or restored; the files in the drive do not need them "+
		"(meshdrive snapshot list shows the snapshots, snapshot delete drops them)", n)
}

// outOfReachError says why repair could not read segments whose nodes
// did not answer, and what to do: trying again cannot help until they
// do, and a node added cannot either (it holds none of their shards).
func outOfReachError(rep *fs.RepairReport) error {
	return fmt.Errorf("%d segments could not be repaired: fewer than k of their shards could be read, the others are on nodes that did not answer (%s), "+
		"and trying again cannot help until they do: start the stopped nodes (meshdrive node serve on their hosts; meshdrive node list shows their addresses) "+
		"or make them reachable again, then run check --repair again (a node added does not help: it holds none of their shards); "+
		"check --json names each shard's error under problems",
		len(rep.OutOfReach), strings.Join(rep.OutOfReachNodes, ", "))
}

// corruptLossError says what it means that repair found segments listed
// whole with fewer than k shards that pass their checksums, and what to
// do: trying again cannot help.
func corruptLossError(rep *fs.RepairReport) error {
	on := "check --json names them under problems"
	if nodes := corruptNodes(rep); len(nodes) > 0 {
		on = "on " + strings.Join(nodes, ", ")
	}
	return fmt.Errorf("%d segments cannot be repaired, now or by trying again: their nodes list enough shards, but fewer than k pass their checksums "+
		"(the nodes' own verify found the others corrupt, %s), so the data in them is lost (of the files named UNRECOVERABLE, and the snapshots or metadata records said); "+
		"to get it back, restore the disk of one of those nodes from a backup and run check --repair again; else copy the files in again from elsewhere, or delete them. "+
		"meshdrive check --verify finds other corrupt shards, which a check without it counts as whole",
		len(rep.CorruptUnrecoverable), on)
}

// corruptNodes names the nodes holding a corrupt shard of a segment in
// rep.CorruptUnrecoverable, sorted.
func corruptNodes(rep *fs.RepairReport) []string {
	var nodes []string
	for _, p := range rep.Problems {
		if p.State == "corrupt" && slices.Contains(rep.CorruptUnrecoverable, p.Segment) {
			nodes = append(nodes, p.Node)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(nodes)))
}

// stagedDamageError says what to do about staged blocks that fail their
// check on the local disk (those being uploaded from a good copy aside).
func stagedDamageError(sc *fs.StagedCheck) error {
	var paths, unreadPaths []string
	lost, n, unread := 0, 0, 0
	for _, d := range sc.Damaged {
		switch {
		case d.InFlight:
			continue // its good copy is being uploaded
		case d.Unreadable:
			unread++
			unreadPaths = append(unreadPaths, d.Paths...)
			continue
		}
		n++
		paths = append(paths, showNames(pathsOf(d.Paths, d.PathsHref))...)
		if d.Lost {
			lost++
		}
	}
	var errs []error
	switch {
	case n == 0:
	case lost == n:
		errs = append(errs, fmt.Errorf("%d blocks written on this machine and not yet uploaded were damaged on the local disk and are now marked lost (files: %s): "+
			"restore those files from a copy (writing the same bytes again brings a block back), or from an older version in the mount's .snapshots folder, "+
			"or delete them; and check the local disk", n, someFiles(paths)))
	default:
		errs = append(errs, fmt.Errorf("%d blocks written on this machine and not yet uploaded are damaged on the local disk (files: %s): they can never be uploaded. "+
			"Copy those files in again from a copy while you still have it (writing the same bytes again brings a block back); "+
			"meshdrive check --repair marks the damaged blocks lost, as the uploader will when it reaches them; and check the local disk", n, someFiles(paths)))
	}
	if unread > 0 {
		errs = append(errs, fmt.Errorf("%d blocks written on this machine and not yet uploaded could not be read on the local disk (files: %s): "+
			"they stay queued; check the local disk (and that the data dir is readable), then run meshdrive check again", unread, someFiles(unreadPaths)))
	}
	return errors.Join(errs...)
}

// someFiles lists up to 10 of paths, sorted and without repeats.
func someFiles(paths []string) string {
	paths = slices.Compact(slices.Sorted(slices.Values(paths)))
	files := strings.Join(paths[:min(10, len(paths))], ", ")
	if len(paths) > 10 {
		files += fmt.Sprintf(" and %d more", len(paths)-10)
	}
	return files
}

// streamLines POSTs to a streaming control endpoint, shows its progress
// (a bar on a terminal) and hands every line to each; the last line must
// say done or carry the error.
func streamLines(ctx context.Context, e *env, dir, path string, each func(checkLine)) error {
	resp, err := newControlClient(dir).do(ctx, "POST", path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tty := isTerminal(e.stderr)
	var bar *progressbar.ProgressBar
	lines := &countLines{w: e.stderr, what: "segments"}
	phase := ""
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		var l checkLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("bad progress line: %v", err)
		}
		each(l)
		if p := l.Progress; p != nil && tty {
			if bar == nil || phase != p.Phase {
				if bar != nil {
					bar.Finish()
					fmt.Fprintln(e.stderr)
				}
				phase = p.Phase
				desc := p.Phase + " segments"
				if p.Phase == "staged" {
					desc = "check blocks not yet uploaded"
				}
				bar = countBar(e.stderr, p.Total, desc)
			}
			bar.Set(p.Done)
		} else if p != nil {
			lines.what = "segments"
			if p.Phase == "staged" {
				lines.what = "blocks not yet uploaded"
			}
			lines.report(p.Phase, p.Done, p.Total)
		}
		if l.Error != "" || l.Done {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(e.stderr)
			}
			if l.Error != "" {
				return errors.New(l.Error)
			}
			return nil
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted (%v); what was repaired so far stays repaired", context.Cause(ctx))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("the mount stopped answering: %w", err)
	}
	return errors.New("the mount ended the answer early (was it unmounted?); run the command again to finish")
}

// checkDegradedShown bounds the degraded files check names without
// --verbose: with a node down every file of a big drive is degraded, and
// a line each would bury the ones below k.
const checkDegradedShown = 20

// printCheck prints a check's report: every unrecoverable file, the
// degraded ones (the first checkDegradedShown unless verbose), the counts,
// and what the nodes that did not answer have to do with it.
func printCheck(w io.Writer, r *fs.RepairReport, verbose bool) {
	for _, f := range r.Files {
		if f.State == fs.FileUnrecoverable {
			fmt.Fprintf(w, "UNRECOVERABLE  %s: %d of %d shards, segments %s\n", showName(pathOf(f.Path, f.PathHref)), f.Shards, f.N, strings.Join(f.Segments, ", "))
		}
	}
	shown := 0
	for _, f := range r.Files {
		if f.State != fs.FileDegraded {
			continue
		}
		if !verbose && shown == checkDegradedShown {
			fmt.Fprintf(w, "degraded       ... and %d more (check --verbose or --json names every file)\n", r.Degraded-shown)
			break
		}
		shown++
		fmt.Fprintf(w, "degraded       %s: %d of %d shards\n", showName(pathOf(f.Path, f.PathHref)), f.Shards, f.N)
	}
	what := "checked"
	if r.Verify {
		what = "verified"
	}
	snaps := ""
	if r.SnapshotSegments > 0 {
		snaps = fmt.Sprintf(", %d only in snapshots", r.SnapshotSegments)
	}
	fmt.Fprintf(w, "%s %d files: %d healthy, %d degraded, %d unrecoverable; %d segments (%d of metadata%s): %d healthy, %d degraded, %d unrecoverable\n",
		what, len(r.Files), r.Healthy, r.Degraded, r.Unrecoverable, r.Segments, r.MetaSegments, snaps,
		r.SegmentsHealthy, r.SegmentsDegraded, r.SegmentsUnrecoverable)
	if r.SnapshotDegraded > 0 {
		fmt.Fprintf(w, "segments only snapshots keep (of deleted or overwritten files, or garbage gc has yet to collect), missing shards: %d", r.SnapshotDegraded)
		if !r.Repair {
			fmt.Fprint(w, " (check --repair rebuilds them)")
		}
		fmt.Fprintln(w)
	}
	if n := len(r.SnapshotUnrecoverable); n > 0 {
		fmt.Fprintf(w, "UNRECOVERABLE  %d segments only snapshots keep (of deleted or overwritten files, or garbage gc has yet to collect): %s\n", n, strings.Join(r.SnapshotUnrecoverable[:min(10, n)], ", "))
	}
	if len(r.MetaUnrecoverable) > 0 {
		fmt.Fprintf(w, "metadata records below k shards: %v (the drive's history before the newest full record may not be recoverable)\n", r.MetaUnrecoverable)
		if r.MetaFull != 0 {
			fmt.Fprintf(w, "wrote a full metadata record (%d): recover starts from it and needs none of those; snapshots older than it that need them cannot be restored\n", r.MetaFull)
		}
	}
	if sc := r.Staged; sc != nil {
		for _, d := range sc.Damaged {
			what, fails := "DAMAGED       ", "fails its check"
			switch {
			case d.Lost:
				what = "LOST          "
			case d.InFlight:
				what = "DAMAGED (a good copy read before is uploading now; a restart before it is stored loses the block)"
			case d.Unreadable:
				what, fails = "UNREADABLE    ", "cannot be read"
			}
			fmt.Fprintf(w, "%s %s: not yet uploaded, and its block %s %s on the local disk (%s)\n", what, strings.Join(showNames(pathsOf(d.Paths, d.PathsHref)), ", "), d.Block, fails, d.Error)
		}
		fmt.Fprintf(w, "checked %d blocks not yet uploaded on the local disk: %d damaged\n", sc.Blocks, len(sc.Damaged))
	}
	if r.Repair {
		fmt.Fprintf(w, "repaired %d segments", r.Repaired)
		if r.RepairFailed > 0 {
			fmt.Fprintf(w, ", %d failed: %s", r.RepairFailed, strings.Join(groupRepairErrors(r.RepairErrors), "; "))
		}
		fmt.Fprintln(w)
		if n := len(r.OutOfReach); n > 0 {
			fmt.Fprintf(w, "OUT OF REACH   %d segments not repaired: fewer than k of their shards could be read, the others on nodes that did not answer (%s): %s\n",
				n, strings.Join(r.OutOfReachNodes, ", "), strings.Join(r.OutOfReach[:min(10, n)], ", "))
		}
		if n := len(r.CorruptUnrecoverable); n > 0 {
			fmt.Fprintf(w, "UNRECOVERABLE  %d segments listed whole, but fewer than k of their shards pass their checksums (corrupt on %s): %s\n",
				n, strings.Join(corruptNodes(r), ", "), strings.Join(r.CorruptUnrecoverable[:min(10, n)], ", "))
		}
	}
	if len(r.Down) > 0 {
		fmt.Fprintf(w, "nodes that did not answer: %s\n", strings.Join(r.Down, ", "))
		if r.Degraded+r.Unrecoverable > 0 || r.SegmentsDegraded+r.SegmentsUnrecoverable > 0 {
			fmt.Fprintf(w, "  their shards are not counted, which is why files show fewer than n; check again once they answer. %s\n", bringBack(r.Down))
		}
	}
	if len(r.MetaMissing) > 0 {
		if r.MetaRestored {
			fmt.Fprintf(w, "stored the drive key and config again on nodes that had lost them: %s\n", strings.Join(r.MetaMissing, ", "))
		} else {
			fmt.Fprintf(w, "nodes without the drive key or config (meshdrive recover cannot start from them; check --repair stores them again): %s\n", strings.Join(r.MetaMissing, ", "))
		}
	}
	for _, a := range r.Aliases {
		fmt.Fprintf(w, "WARNING: node %s is the same store as node %s (a probe object written to one appeared on the other): "+
			"shards placed on both share one disk, so segments survive fewer node losses than their shard counts say; "+
			"move its shards off with meshdrive node drain %s\n", a.Node, a.SameAs, a.Node)
	}
}

// printRepair is status's repair paragraph. owed is the journal's count
// of segments below n shards now; the repairer's is of its last survey,
// which does not see a segment uploaded since with a node down.
func printRepair(w io.Writer, rp *fs.RepairStats, owed int64) {
	owed = max(owed, int64(rp.Owed))
	fmt.Fprintf(w, "\nrepair: ")
	switch {
	case owed > 0:
		fmt.Fprint(w, plural(owed, "segment owes repair", "segments owe repair"))
		if rp.Unrecovered > 0 {
			fmt.Fprintf(w, ", %d below k shards (start the stopped nodes)", rp.Unrecovered)
		}
	case rp.LastPass.IsZero() && !rp.Running:
		fmt.Fprintf(w, "no pass yet")
	default:
		fmt.Fprintf(w, "every segment has all its shards")
	}
	if rp.Running {
		fmt.Fprintf(w, "; repairing now, %d of %d", rp.Done, rp.Total)
	}
	fmt.Fprintf(w, "\n  %d segments repaired, %d shards moved, %s of shards since mount", rp.Repaired, rp.Moved, humanBytes(rp.Bytes))
	if !rp.LastRepair.IsZero() {
		fmt.Fprintf(w, "; last repair %s", rp.LastRepair.Local().Format(time.DateTime))
	}
	fmt.Fprintln(w)
	if rp.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", joinLines(rp.LastError))
	}
}

// repairSegPrefix starts a repair's error: "repair segment ID: cause".
var repairSegPrefix = regexp.MustCompile(`^repair segment ([0-9a-f]+): `)

// groupRepairErrors says each cause of the failed repairs once, with the
// segments it stopped: ten segments that found no node to take their
// shards were ten copies of a long line.
func groupRepairErrors(errs []string) []string {
	var causes []string // in the order first met
	segs := map[string][]string{}
	for _, e := range errs {
		cause, seg := e, ""
		if m := repairSegPrefix.FindStringSubmatch(e); m != nil {
			cause, seg = e[len(m[0]):], m[1]
		}
		if !slices.Contains(causes, cause) {
			causes = append(causes, cause)
		}
		if seg != "" {
			segs[cause] = append(segs[cause], seg)
		}
	}
	out := make([]string, len(causes))
	for i, c := range causes {
		switch ids := segs[c]; len(ids) {
		case 0:
			out[i] = c
		case 1:
			out[i] = "segment " + ids[0] + ": " + c
		default:
			out[i] = fmt.Sprintf("%d segments (%s): %s", len(ids), strings.Join(ids, ", "), c)
		}
	}
	return out
}
