package repair

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/href"
	"github.com/meshdrive/meshdrive/remote"
)

// File states of a check.
const (
	Healthy       = "healthy"
	Degraded      = "degraded"
	Unrecoverable = "unrecoverable"
)

// FileReport is one file's verdict.
type FileReport struct {
	Path string `json:"path"`
	// PathHref is Path %-encoded from its bytes when it is not UTF-8
	// (href.IfNotUTF8).
	PathHref string `json:"path_href,omitempty"`
	State    string `json:"state"`
	// Shards is the fewest intact shards of any of its segments; N is k+m.
	Shards int `json:"shards"`
	N      int `json:"n"`
	// Segments names the segments below k (unrecoverable files only).
	Segments []string `json:"segments,omitempty"`
}

// Report is a check's answer.
type Report struct {
	Verify bool         `json:"verify"`
	Repair bool         `json:"repair"`
	Files  []FileReport `json:"files"` // every file with data on the grid, in path order
	// Files by state.
	Healthy       int `json:"healthy"`
	Degraded      int `json:"degraded"`
	Unrecoverable int `json:"unrecoverable"`
	// Segments checked and their states (data and metadata; a whole
	// drive's check counts every segment the journal names, those of
	// files gone from the tree that snapshots keep included).
	Segments              int `json:"segments"`
	SegmentsHealthy       int `json:"segments_healthy"`
	SegmentsDegraded      int `json:"segments_degraded"`
	SegmentsUnrecoverable int `json:"segments_unrecoverable"`
	// Metadata records whose segment is below k (their seq).
	MetaUnrecoverable []uint64 `json:"meta_unrecoverable,omitempty"`
	// MetaFull: the seq of the full metadata record a repair shipped
	// because of MetaUnrecoverable (0: none), from which the drive is
	// recovered without them.
	MetaFull     uint64 `json:"meta_full,omitempty"`
	MetaSegments int    `json:"meta_segments"`
	MetaDegraded int    `json:"meta_degraded"`
	// Data segments of a whole drive's check that no file in the tree
	// uses now: they hold what snapshots keep of deleted and overwritten
	// files (and garbage gc has not collected yet). Their states count in
	// the segment totals; SnapshotUnrecoverable names those below k (a
	// restore from a snapshot that needs them fails).
	SnapshotSegments      int      `json:"snapshot_segments"`
	SnapshotDegraded      int      `json:"snapshot_degraded"`
	SnapshotUnrecoverable []string `json:"snapshot_unrecoverable,omitempty"`
	// CorruptUnrecoverable names the segments a repair found below k:
	// their nodes list k or more shards of the right size, but fewer than
	// k pass their checksums (the nodes' own verify confirmed it, every
	// node of the segment answering). They count as unrecoverable in the states above,
	// not as failed repairs: trying again cannot help, only a corrupt
	// shard restored (Problems names them) brings the data back.
	CorruptUnrecoverable []string `json:"corrupt_unrecoverable,omitempty"`
	// OutOfReach names the segments a repair could not read: fewer than
	// k of their shards answered, and the nodes' own verify, asked after,
	// finds fewer than k intact with the others on nodes that do not
	// answer (stopped, unreachable, timing out; OutOfReachNodes names
	// them, sorted). Not counted as failed repairs: trying again cannot
	// help until those nodes answer, and then it can. Their states above
	// are those the check counted before the repair.
	OutOfReach      []string `json:"out_of_reach,omitempty"`
	OutOfReachNodes []string `json:"out_of_reach_nodes,omitempty"`
	// Repairs: segments brought back to n shards, and failures a later
	// try may get past.
	Repaired     int      `json:"repaired"`
	RepairFailed int      `json:"repair_failed"`
	RepairErrors []string `json:"repair_errors,omitempty"` // the first 10
	// RepairNoRoom counts the failed repairs (of RepairFailed) that
	// found no node to take a missing shard (remote.ErrTooFewNodes: the
	// others down, draining, full or holding a shard of it already): a
	// node started or added gets them past, not a try alone.
	RepairNoRoom int `json:"repair_no_room,omitempty"`
	// Nodes that did not answer.
	Down []string `json:"down,omitempty"`
	// Aliases: nodes that are one store under two addresses (a whole
	// drive's check with every node answering looks; see remote.Grid.Aliases).
	// Shards placed on both share a disk, so a segment there survives
	// fewer losses than its shard count says.
	Aliases []remote.Alias `json:"aliases,omitempty"`
	// MetaMissing: nodes that answered without the drive's wrapped key or
	// config (a node wiped, a bucket emptied: repair brings back its shards
	// and the next checkpoint its root record, but recover --node needs the
	// key and config too). The caller fills it for a whole drive's check;
	// MetaRestored says a repair stored them on those nodes again, and
	// MetaError why it could not.
	MetaMissing  []string `json:"meta_missing,omitempty"`
	MetaRestored bool     `json:"meta_restored,omitempty"`
	MetaError    string   `json:"meta_error,omitempty"`
	// Staged: the blocks written here and not yet uploaded, checked on
	// the local disk (the files under the path's, or all; the caller
	// fills it).
	Staged *journal.StagedCheck `json:"staged,omitempty"`
	// Problems lists the shards found wanting (before any repair, and
	// the corrupt ones of CorruptUnrecoverable), at most maxProblems.
	Problems []ShardProblem `json:"problems,omitempty"`
}

// ShardProblem is one shard that is not intact where its segment says.
type ShardProblem struct {
	Segment string `json:"segment"`
	Index   int    `json:"index"`
	Node    string `json:"node"`
	Object  string `json:"object"` // its name on the node
	State   string `json:"state"`  // missing, corrupt, unreachable
	Error   string `json:"error,omitempty"`
}

// aliasWait bounds the look for aliases (a probe per node).
const aliasWait = 20 * time.Second

// maxProblems bounds Report.Problems.
const maxProblems = 10000

// CheckRequest says what to check.
type CheckRequest struct {
	// Path is a file or folder relative to the drive's root; "" is the
	// whole drive, metadata included.
	Path   string
	Verify bool
	Repair bool
}

// Progress is reported while a check runs.
type Progress struct {
	Phase string `json:"phase"` // "check" or "repair"
	Done  int    `json:"done"`
	Total int    `json:"total"`
}

// checkConcurrency bounds the segments verified at once.
const checkConcurrency = 4

// Check counts the intact shards of every segment under req.Path (with
// Verify, each node verifies its own shards' checksums; else a listing
// of each node says which shards are there), repairs the ones that lack
// any when asked, and reports each file's state.
func (r *Repairer) Check(ctx context.Context, req CheckRequest, progress func(Progress)) (*Report, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	files, err := r.files(ctx, req.Path)
	if err != nil {
		return nil, err
	}
	fileSegs, err := r.o.Journal.FileSegments(ctx)
	if err != nil {
		return nil, err
	}
	if req.Repair {
		r.passMu.Lock()
		defer r.passMu.Unlock()
	}
	all, err := r.o.Journal.Segments(ctx)
	if err != nil {
		return nil, err
	}
	// The segments in scope: those of the files, and with the whole
	// drive every one the journal names: the metadata's, and those only
	// snapshots keep (deleted and overwritten files), which a restore
	// reads and the background pass repairs too.
	want := map[remote.SegmentID]bool{}
	for _, f := range files {
		for _, id := range fileSegs[f.ino] {
			want[id] = true
		}
	}
	var segs []journal.SegmentRow
	for _, s := range all {
		if want[s.Info.ID] || req.Path == "" {
			segs = append(segs, s)
		}
	}
	rep := &Report{Verify: req.Verify, Repair: req.Repair, Segments: len(segs)}
	sv := r.o.Grid.Survey(ctx)
	down := map[string]bool{}
	for name := range sv.Down {
		rep.Down = append(rep.Down, name)
		down[name] = true
	}
	slices.Sort(rep.Down)
	if req.Path == "" && len(rep.Down) == 0 {
		// A probe object on each node, looked for on the others: init and
		// node add refuse an alias, but a grid set up before they did, or
		// a directory moved behind a symlink since, may hold one.
		actx, cancel := context.WithTimeout(ctx, aliasWait)
		al, err := r.o.Grid.Aliases(actx)
		cancel()
		rep.Aliases = al
		if err != nil && ctx.Err() == nil {
			r.log.Info("check: could not tell whether two nodes are one store", "err", err)
		}
	}
	hs := make([]*remote.SegmentHealth, len(segs))
	for i, s := range segs {
		hs[i] = sv.Segment(s.Info, r.o.Grid.HasMember)
	}
	if req.Verify {
		var eg errgroup.Group
		eg.SetLimit(checkConcurrency)
		var mu sync.Mutex // guards done
		done := 0
		for i, s := range segs {
			eg.Go(func() error {
				hs[i] = r.o.Grid.CheckSegment(ctx, s.Info, remote.CheckOptions{Verify: true, Down: down})
				mu.Lock()
				done++
				progress(Progress{Phase: "check", Done: done, Total: len(segs)})
				mu.Unlock()
				return nil
			})
		}
		_ = eg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	} else {
		progress(Progress{Phase: "check", Done: len(segs), Total: len(segs)})
	}
	if segs, hs, err = r.stillNamed(ctx, segs, hs); err != nil {
		return nil, err
	}
	rep.Segments = len(segs)
	for _, h := range hs {
		rep.addProblems(h, nil)
	}
	if req.Repair {
		var work []int
		for i, h := range hs {
			if r.needs(h, len(h.Shards)) {
				work = append(work, i)
			}
		}
		sortByPolicy(work, hs)
		outs, _ := r.repairAll(ctx, "check", segs, hs, work, false, false, func(d, t int) {
			progress(Progress{Phase: "repair", Done: d, Total: t})
		})
		for _, i := range work {
			o := outs[i]
			switch {
			case o.ok:
				rep.Repaired++
				n := len(hs[i].Shards)
				hs[i] = &remote.SegmentHealth{Seg: hs[i].Seg, Shards: hs[i].Shards, OK: n}
			case !hs[i].Recoverable():
				// Below k shards: no repair can rebuild it, and the report
				// names it as unrecoverable (the files, metadata or
				// snapshots that need it), with what to do; counted as a
				// failed repair too, check said twice that it is lost and
				// that check --repair would try it again.
			default:
				v := r.belowK(ctx, hs[i], o.err, down)
				if v != nil {
					rep.addProblems(v, hs[i])
				}
				if nodes := unreachableNodes(v); len(nodes) > 0 {
					// Fewer than k intact among the nodes that answer:
					// the others' nodes must answer before a try can
					// read it, so it is named with them, not tried again.
					rep.OutOfReach = append(rep.OutOfReach, v.Seg.ID.String())
					rep.OutOfReachNodes = append(rep.OutOfReachNodes, nodes...)
					continue
				}
				if v != nil {
					// Listed whole, but fewer than k shards intact, every
					// node answering: lost like the one above, its
					// corrupt shards named.
					hs[i] = v
					rep.CorruptUnrecoverable = append(rep.CorruptUnrecoverable, v.Seg.ID.String())
					continue
				}
				rep.RepairFailed++
				if errors.Is(o.err, remote.ErrTooFewNodes) {
					rep.RepairNoRoom++
				}
				if len(rep.RepairErrors) < 10 && o.err != nil {
					rep.RepairErrors = append(rep.RepairErrors, o.err.Error())
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rep.OutOfReachNodes = slices.Compact(slices.Sorted(slices.Values(rep.OutOfReachNodes)))
	}
	byID := map[remote.SegmentID]*remote.SegmentHealth{}
	for i, s := range segs {
		h := hs[i]
		byID[s.Info.ID] = h
		switch {
		case h.Healthy():
			rep.SegmentsHealthy++
		case h.Recoverable():
			rep.SegmentsDegraded++
		default:
			rep.SegmentsUnrecoverable++
		}
		switch {
		case s.MetaSeq != 0:
			rep.MetaSegments++
			if !h.Recoverable() {
				rep.MetaUnrecoverable = append(rep.MetaUnrecoverable, s.MetaSeq)
			} else if !h.Healthy() {
				rep.MetaDegraded++
			}
		case !want[s.Info.ID]:
			rep.SnapshotSegments++
			if !h.Recoverable() {
				rep.SnapshotUnrecoverable = append(rep.SnapshotUnrecoverable, s.Info.ID.String())
			} else if !h.Healthy() {
				rep.SnapshotDegraded++
			}
		}
	}
	n := r.o.Grid.K() + r.o.Grid.M()
	for _, f := range files {
		ids := fileSegs[f.ino]
		if len(ids) == 0 {
			continue // no data on the grid (empty, inline or not uploaded yet)
		}
		fr := FileReport{Path: f.path, PathHref: href.IfNotUTF8(f.path), Shards: n, N: n}
		for _, id := range ids {
			h := byID[id]
			if h == nil {
				continue
			}
			fr.Shards = min(fr.Shards, h.OK)
			if !h.Recoverable() {
				fr.Segments = append(fr.Segments, id.String())
			}
			fr.N = len(h.Shards)
		}
		switch {
		case len(fr.Segments) > 0:
			fr.State = Unrecoverable
			rep.Unrecoverable++
		case fr.Shards < fr.N:
			fr.State = Degraded
			rep.Degraded++
		default:
			fr.State = Healthy
			rep.Healthy++
		}
		rep.Files = append(rep.Files, fr)
	}
	return rep, nil
}

// belowK tells why the repair of segment h (listed with k or more
// shards) failed, when too few of its shards read back: it returns the
// nodes' own verify of it when that finds fewer than k intact, else nil
// (a read that timed out or a node that came back: a later try may do
// better). With no shard of that verify out of reach, the segment is
// lost to corruption; with some, its nodes must answer first
// (unreachableNodes).
func (r *Repairer) belowK(ctx context.Context, h *remote.SegmentHealth, err error, down map[string]bool) *remote.SegmentHealth {
	if !errors.Is(err, remote.ErrTooFewShards) || ctx.Err() != nil {
		return nil
	}
	v := r.o.Grid.CheckSegment(ctx, h.Seg, remote.CheckOptions{Verify: true, Down: down})
	if v.Recoverable() || ctx.Err() != nil {
		return nil
	}
	return v
}

// unreachableNodes names the nodes of h's shards that did not answer
// (nil h: none).
func unreachableNodes(h *remote.SegmentHealth) []string {
	if h == nil {
		return nil
	}
	var out []string
	for _, sc := range h.Shards {
		if sc.State == remote.ShardUnreachable {
			out = append(out, sc.Node)
		}
	}
	return out
}

// addProblems adds the shards of h that are not intact to rep.Problems,
// but those already wanting in before (nil: none), up to maxProblems.
func (rep *Report) addProblems(h, before *remote.SegmentHealth) {
	for _, sc := range h.Shards {
		if sc.State == remote.ShardOK || len(rep.Problems) >= maxProblems ||
			(before != nil && before.Shards[sc.Index].State != remote.ShardOK) {
			continue
		}
		p := ShardProblem{Segment: h.Seg.ID.String(), Index: sc.Index, Node: sc.Node,
			Object: remote.ShardName(h.Seg.ID, sc.Index), State: sc.State.String()}
		if sc.Err != nil {
			p.Error = sc.Err.Error()
		}
		rep.Problems = append(rep.Problems, p)
	}
}

// stillNamed leaves out of segs (and hs) the segments below k shards
// that the journal no longer names: gc dropped them while the check
// looked (their rows go first, then their shards), so they are not the
// drive's to lose. Without such a segment it asks the journal nothing.
func (r *Repairer) stillNamed(ctx context.Context, segs []journal.SegmentRow, hs []*remote.SegmentHealth) ([]journal.SegmentRow, []*remote.SegmentHealth, error) {
	if !slices.ContainsFunc(hs, func(h *remote.SegmentHealth) bool { return !h.Recoverable() }) {
		return segs, hs, nil
	}
	now, err := r.o.Journal.Segments(ctx)
	if err != nil {
		return nil, nil, err
	}
	named := make(map[remote.SegmentID]bool, len(now))
	for _, s := range now {
		named[s.Info.ID] = true
	}
	var keptSegs []journal.SegmentRow
	var keptHs []*remote.SegmentHealth
	for i, s := range segs {
		if hs[i].Recoverable() || named[s.Info.ID] {
			keptSegs = append(keptSegs, s)
			keptHs = append(keptHs, hs[i])
		}
	}
	return keptSegs, keptHs, nil
}

type fileIno struct {
	path string
	ino  journal.Ino
}

// maxWalk bounds the entries a check visits.
const maxWalk = 10_000_000

// files lists the regular files under rel ("" the root), with paths.
func (r *Repairer) files(ctx context.Context, rel string) ([]fileIno, error) {
	j := r.o.Journal
	ino := journal.RootIno
	if rel != "" {
		var err error
		if ino, err = j.ResolvePath(ctx, rel); err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
	}
	a, err := j.GetAttr(ctx, ino)
	if err != nil {
		return nil, err
	}
	if a.Mode&syscall.S_IFMT == syscall.S_IFREG {
		return []fileIno{{"/" + rel, ino}}, nil
	}
	if a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, nil
	}
	var out []fileIno
	err = journal.WalkFiles(ctx, j, ino, "/"+rel, maxWalk, func(p string, e journal.DirEntry) error {
		out = append(out, fileIno{p, e.Ino})
		return nil
	})
	if errors.Is(err, journal.ErrTooManyEntries) {
		return nil, errors.New("more than 10 million entries; check a folder at a time")
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b fileIno) int { return cmp.Compare(a.path, b.path) })
	return out, nil
}
