package repair

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/remote"
)

// Grid is what repair needs from the grid; *remote.Grid has it.
type Grid interface {
	K() int
	M() int
	Survey(ctx context.Context) *remote.Survey
	CheckSegment(ctx context.Context, seg *remote.SegmentInfo, o remote.CheckOptions) *remote.SegmentHealth
	RepairSegment(ctx context.Context, seg *remote.SegmentInfo, o remote.RepairOptions) (*remote.RepairResult, error)
	DeleteShards(ctx context.Context, seg remote.SegmentID, stale []remote.StaleShard) error
	DeleteObjects(ctx context.Context, node string, names []string) error
	Members() []remote.MemberInfo
	HasMember(name string) bool
}

// Journal is what repair needs from the journal; *journal.Journal has it.
type Journal interface {
	Segments(ctx context.Context) ([]journal.SegmentRow, error)
	FileSegments(ctx context.Context) (map[journal.Ino][]remote.SegmentID, error)
	UpdateSegment(ctx context.Context, info *remote.SegmentInfo, metaSeq uint64) error
	Foreground() bool
	ResolvePath(ctx context.Context, path string) (journal.Ino, error)
	ReadDir(ctx context.Context, dir journal.Ino, off uint64, max int) ([]journal.DirEntry, error)
	GetAttr(ctx context.Context, ino journal.Ino) (journal.Attr, error)
}

// Options configure New.
type Options struct {
	Grid    Grid
	Journal Journal
	// Below: the background pass repairs segments with fewer than this
	// many shards present (default k+m: any missing shard).
	Below int
	// Limit bounds the background pass's shard traffic (read plus
	// written), bytes per second; 0 means no limit.
	Limit float64
	// Interval is the time between background passes (default 10m); Kick
	// starts one sooner.
	Interval time.Duration
	Logger   *slog.Logger
}

// Repairer runs checks, repairs and drains of one drive, one at a time,
// and the background pass.
type Repairer struct {
	o   Options
	lim *rate.Limiter // nil: no limit
	log *slog.Logger

	passMu sync.Mutex    // one pass (check --repair, background, drain) at a time
	kick   chan struct{} // wakes Run
	rebal  chan struct{} // wakes Run for a rebalancing pass

	mu sync.Mutex // guards st
	st Stats
}

// Stats is the repair state status shows.
type Stats struct {
	Owed        int       `json:"owed"`        // segments below n shards at the last survey
	Running     bool      `json:"running"`     // a pass is repairing now
	Phase       string    `json:"phase"`       // what the running (or last) pass does: background, rebalance, check, drain NODE
	Done        int       `json:"done"`        // segments repaired in the running pass
	Total       int       `json:"total"`       // segments the running pass will repair
	Repaired    int64     `json:"repaired"`    // segments repaired since mount
	Moved       int64     `json:"moved"`       // shards moved off draining nodes or rebalanced since mount
	Bytes       int64     `json:"bytes"`       // shard bytes read and written by repair since mount
	LastPass    time.Time `json:"last_pass"`   // end of the last pass
	LastRepair  time.Time `json:"last_repair"` // the last segment repaired
	LastError   string    `json:"last_error,omitempty"`
	Unrecovered int       `json:"unrecoverable"` // segments with fewer than k shards at the last survey
}

// New makes a Repairer. It starts nothing: call Run for the background
// pass.
func New(o Options) *Repairer {
	if o.Below <= 0 {
		o.Below = o.Grid.K() + o.Grid.M()
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Repairer{o: o, log: o.Logger, kick: make(chan struct{}, 1), rebal: make(chan struct{}, 1)}
	if o.Limit > 0 {
		r.lim = rate.NewLimiter(rate.Limit(o.Limit), int(min(max(o.Limit, 64<<10), 1<<30)))
	}
	return r
}

// Stats returns the repair state.
func (r *Repairer) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// Kick starts a background pass soon; rebalance also moves shards to
// nodes that joined (node add).
func (r *Repairer) Kick(rebalance bool) {
	ch := r.kick
	if rebalance {
		ch = r.rebal
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run does a background pass now and every Interval (or when kicked)
// until ctx ends.
func (r *Repairer) Run(ctx context.Context) {
	rebalance := false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		case <-r.rebal:
			rebalance = true
		}
		err := r.Background(ctx, rebalance)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("repair: the background pass did not repair everything; the next pass tries again", "err", err)
		}
		rebalance = false
		t.Reset(r.o.Interval)
	}
}

// Background is one background pass: survey the nodes, then repair the
// segments below Options.Below (fewest shards first), those with a shard
// on a draining node, and, with rebalance, those a new node should take
// a shard of; within Options.Limit, holding back while applications use
// the grid.
func (r *Repairer) Background(ctx context.Context, rebalance bool) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	segs, hs, err := r.survey(ctx)
	if err != nil {
		return err
	}
	var work []int
	for i := range segs {
		if r.needs(hs[i], r.o.Below) || rebalance {
			work = append(work, i)
		}
	}
	slices.SortStableFunc(work, func(a, b int) int { return cmp.Compare(hs[a].OK, hs[b].OK) })
	phase := "background"
	if rebalance {
		phase = "rebalance"
	}
	_, err = r.repairAll(ctx, phase, segs, hs, work, rebalance, true, nil)
	return err
}

// needs: fewer than below shards, or a shard on a draining node.
func (r *Repairer) needs(h *remote.SegmentHealth, below int) bool {
	if h.OK < below {
		return true
	}
	draining := map[string]bool{}
	for _, m := range r.o.Grid.Members() {
		draining[m.Name] = m.Draining
	}
	for _, s := range h.Shards {
		if draining[s.Node] {
			return true
		}
	}
	return false
}

// survey lists the segments and counts their shards from one listing of
// every node.
func (r *Repairer) survey(ctx context.Context) ([]journal.SegmentRow, []*remote.SegmentHealth, error) {
	segs, err := r.o.Journal.Segments(ctx)
	if err != nil {
		return nil, nil, err
	}
	sv := r.o.Grid.Survey(ctx)
	hs := make([]*remote.SegmentHealth, len(segs))
	owed, lost := 0, 0
	for i, s := range segs {
		hs[i] = sv.Segment(s.Info, r.o.Grid.HasMember)
		if !hs[i].Healthy() {
			owed++
		}
		if !hs[i].Recoverable() {
			lost++
		}
	}
	r.mu.Lock()
	r.st.Owed, r.st.Unrecovered = owed, lost
	r.mu.Unlock()
	return segs, hs, nil
}

// maxYield bounds how long one segment's repair waits for applications.
const maxYield = 5 * time.Second

// yield waits while applications use the grid, at most maxYield.
func (r *Repairer) yield(ctx context.Context) {
	if !r.o.Journal.Foreground() {
		return
	}
	deadline := time.Now().Add(maxYield)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for r.o.Journal.Foreground() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// repairOutcome is one segment's result in repairAll.
type repairOutcome struct {
	ok  bool // back to n shards (or moved as asked)
	err error
}

// repairAll repairs segs[i] for i in work, one at a time (shard traffic
// of one segment is already parallel). background: yield to applications
// and keep within the limit. It records each new node list before
// deleting what it replaced.
func (r *Repairer) repairAll(ctx context.Context, phase string, segs []journal.SegmentRow, hs []*remote.SegmentHealth, work []int,
	rebalance, background bool, progress func(done, total int)) (map[int]repairOutcome, error) {
	out := map[int]repairOutcome{}
	r.mu.Lock()
	r.st.Running, r.st.Phase, r.st.Done, r.st.Total = true, phase, 0, len(work)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.st.Running = false
		r.st.LastPass = time.Now()
		r.mu.Unlock()
	}()
	var firstErr error
	for n, i := range work {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		seg, h := segs[i], hs[i]
		if background {
			r.yield(ctx)
			if r.lim != nil {
				est := seg.Info.ShardSize * int64(seg.Info.K+len(seg.Info.Nodes)-h.OK)
				for est > 0 {
					c := min(est, int64(r.lim.Burst()))
					if err := r.lim.WaitN(ctx, int(c)); err != nil {
						return out, err
					}
					est -= c
				}
			}
		}
		err := r.one(ctx, seg, h, rebalance)
		out[i] = repairOutcome{ok: err == nil, err: err}
		r.mu.Lock()
		r.st.Done = n + 1
		if err != nil {
			r.st.LastError = err.Error()
		}
		r.mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			r.log.Debug("repair: segment not repaired", "segment", seg.Info.ID, "shards", h.OK, "err", err) // the pass's error sums them up
		}
		if progress != nil {
			progress(n+1, len(work))
		}
	}
	if firstErr != nil {
		return out, fmt.Errorf("%d of %d segments not repaired, first: %w", countFailed(out), len(work), firstErr)
	}
	return out, nil
}

func countFailed(out map[int]repairOutcome) int {
	n := 0
	for _, o := range out {
		if !o.ok {
			n++
		}
	}
	return n
}

// one repairs one segment, records its new nodes, then deletes the
// shards they replaced.
func (r *Repairer) one(ctx context.Context, seg journal.SegmentRow, h *remote.SegmentHealth, rebalance bool) error {
	res, err := r.o.Grid.RepairSegment(ctx, seg.Info, remote.RepairOptions{Health: h, Rebalance: rebalance})
	if res == nil || !res.Changed() {
		return err
	}
	if uerr := r.o.Journal.UpdateSegment(ctx, res.Seg, seg.MetaSeq); uerr != nil {
		// Not recorded: the shards just stored are unreferenced; take
		// back those on nodes the old list does not name there.
		var extra []remote.StaleShard
		for i, n := range res.Seg.Nodes {
			if n != "" && n != seg.Info.Nodes[i] {
				extra = append(extra, remote.StaleShard{Node: n, Index: i})
			}
		}
		if derr := r.o.Grid.DeleteShards(context.WithoutCancel(ctx), seg.Info.ID, extra); derr != nil {
			r.log.Warn("repair: could not remove unrecorded shards", "segment", seg.Info.ID, "err", derr)
		}
		if errors.Is(uerr, journal.ErrSegmentGone) {
			return nil // deleted meanwhile: nothing left to repair
		}
		return fmt.Errorf("segment %s: %w", seg.Info.ID, uerr)
	}
	if derr := r.o.Grid.DeleteShards(ctx, seg.Info.ID, res.Stale); derr != nil {
		r.log.Warn("repair: could not remove replaced shards (they are garbage now)", "segment", seg.Info.ID, "err", derr)
	}
	r.mu.Lock()
	if err == nil && !h.Healthy() && r.st.Owed > 0 {
		r.st.Owed--
	}
	r.st.Repaired++
	r.st.Moved += int64(res.Moved)
	r.st.Bytes += res.Bytes
	r.st.LastRepair = time.Now()
	r.mu.Unlock()
	return err
}

// Drain moves every shard off node (the caller has marked it draining
// in the grid), within Options.Limit and yielding to applications like
// the background pass, then deletes whatever shard objects are left on
// it, once no segment names it. It fails, naming what is left, when it
// could not move them all.
func (r *Repairer) Drain(ctx context.Context, node string, progress func(done, total int)) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	segs, hs, err := r.survey(ctx)
	if err != nil {
		return err
	}
	var work []int
	for i, s := range segs {
		if slices.Contains(s.Info.Nodes, node) {
			work = append(work, i)
		}
	}
	if _, err := r.repairAll(ctx, "drain "+node, segs, hs, work, false, true, progress); err != nil {
		return fmt.Errorf("drain %s: %w", node, err)
	}
	// Leftovers: shards no segment names on node any more.
	segs, err = r.o.Journal.Segments(ctx)
	if err != nil {
		return err
	}
	named := map[string]bool{}
	for _, s := range segs {
		for i, n := range s.Info.Nodes {
			if n == node {
				named[remote.ShardName(s.Info.ID, i)] = true
			}
		}
	}
	if len(named) > 0 {
		return fmt.Errorf("drain %s: %d shards are still named on it; run the drain again", node, len(named))
	}
	sv := r.o.Grid.Survey(ctx)
	if sv.Count(node) < 0 {
		return fmt.Errorf("drain %s: every segment moved off it, but it does not answer to delete what is left: %v", node, sv.Down[node])
	}
	if err := r.o.Grid.DeleteObjects(ctx, node, sv.Names(node)); err != nil {
		return fmt.Errorf("drain %s: deleting leftover shards: %w", node, err)
	}
	return nil
}

// File states of a check.
const (
	Healthy       = "healthy"
	Degraded      = "degraded"
	Unrecoverable = "unrecoverable"
)

// FileReport is one file's verdict.
type FileReport struct {
	Path  string `json:"path"`
	State string `json:"state"`
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
	// Segments checked and their states (data and metadata).
	Segments              int `json:"segments"`
	SegmentsHealthy       int `json:"segments_healthy"`
	SegmentsDegraded      int `json:"segments_degraded"`
	SegmentsUnrecoverable int `json:"segments_unrecoverable"`
	// Metadata records whose segment is below k (their seq).
	MetaUnrecoverable []uint64 `json:"meta_unrecoverable,omitempty"`
	MetaSegments      int      `json:"meta_segments"`
	MetaDegraded      int      `json:"meta_degraded"`
	// Repairs: segments brought back to n shards, and failures.
	Repaired     int      `json:"repaired"`
	RepairFailed int      `json:"repair_failed"`
	RepairErrors []string `json:"repair_errors,omitempty"` // the first 10
	// Nodes that did not answer.
	Down []string `json:"down,omitempty"`
	// Problems lists the shards found wanting (before any repair), at
	// most maxProblems.
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
	// drive, the metadata's.
	want := map[remote.SegmentID]bool{}
	for _, f := range files {
		for _, id := range fileSegs[f.ino] {
			want[id] = true
		}
	}
	var segs []journal.SegmentRow
	for _, s := range all {
		if want[s.Info.ID] || (req.Path == "" && s.MetaSeq != 0) {
			segs = append(segs, s)
		}
	}
	rep := &Report{Verify: req.Verify, Repair: req.Repair, Segments: len(segs)}
	sv := r.o.Grid.Survey(ctx)
	for name := range sv.Down {
		rep.Down = append(rep.Down, name)
	}
	slices.Sort(rep.Down)
	hs := make([]*remote.SegmentHealth, len(segs))
	for i, s := range segs {
		hs[i] = sv.Segment(s.Info, r.o.Grid.HasMember)
	}
	if req.Verify {
		down := map[string]bool{}
		for _, n := range rep.Down {
			down[n] = true
		}
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
	for _, h := range hs {
		for _, sc := range h.Shards {
			if sc.State != remote.ShardOK && len(rep.Problems) < maxProblems {
				p := ShardProblem{Segment: h.Seg.ID.String(), Index: sc.Index, Node: sc.Node,
					Object: remote.ShardName(h.Seg.ID, sc.Index), State: sc.State.String()}
				if sc.Err != nil {
					p.Error = sc.Err.Error()
				}
				rep.Problems = append(rep.Problems, p)
			}
		}
	}
	if req.Repair {
		var work []int
		for i, h := range hs {
			if r.needs(h, len(h.Shards)) {
				work = append(work, i)
			}
		}
		slices.SortStableFunc(work, func(a, b int) int { return cmp.Compare(hs[a].OK, hs[b].OK) })
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
			default:
				rep.RepairFailed++
				if len(rep.RepairErrors) < 10 && o.err != nil {
					rep.RepairErrors = append(rep.RepairErrors, o.err.Error())
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
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
		if s.MetaSeq != 0 {
			rep.MetaSegments++
			if !h.Recoverable() {
				rep.MetaUnrecoverable = append(rep.MetaUnrecoverable, s.MetaSeq)
			} else if !h.Healthy() {
				rep.MetaDegraded++
			}
		}
	}
	n := r.o.Grid.K() + r.o.Grid.M()
	for _, f := range files {
		ids := fileSegs[f.ino]
		if len(ids) == 0 {
			continue // no data on the grid (empty, inline or not uploaded yet)
		}
		fr := FileReport{Path: f.path, Shards: n, N: n}
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
	visited := 0
	var walk func(dir journal.Ino, p string) error
	walk = func(dir journal.Ino, p string) error {
		var off uint64
		for {
			ents, err := j.ReadDir(ctx, dir, off, 1024)
			if err != nil {
				return err
			}
			if len(ents) == 0 {
				return nil
			}
			for _, d := range ents {
				off = d.Off
				if visited++; visited > maxWalk {
					return errors.New("more than 10 million entries; check a folder at a time")
				}
				child := path.Join(p, d.Name)
				switch d.Mode & syscall.S_IFMT {
				case syscall.S_IFDIR:
					if err := walk(d.Ino, child); err != nil {
						return err
					}
				case syscall.S_IFREG:
					out = append(out, fileIno{child, d.Ino})
				}
			}
		}
	}
	if err := walk(ino, "/"+rel); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b fileIno) int { return cmp.Compare(a.path, b.path) })
	return out, nil
}
