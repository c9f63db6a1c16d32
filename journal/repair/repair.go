package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

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
	Aliases(ctx context.Context) ([]remote.Alias, error)
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
	Stats() journal.UploadStats
	WaitSegmentWrites(ctx context.Context, max time.Duration) error
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
	// Soon is how often Run looks whether segments owe repair (the
	// uploader stored them short: a node was down or restarting), and
	// the first wait after a pass before it repairs them (default 30s).
	Soon   time.Duration
	Logger *slog.Logger
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
	notice chan struct{} // wakes Run to survey again (Observe saw the nodes change)

	mu   sync.Mutex // guards st and seen
	st   Stats
	seen map[string]nodeSeen // by node name, what Observe saw last
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
	if o.Soon <= 0 {
		o.Soon = 30 * time.Second
	}
	o.Soon = min(o.Soon, o.Interval)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Repairer{o: o, log: o.Logger, kick: make(chan struct{}, 1), rebal: make(chan struct{}, 1), notice: make(chan struct{}, 1)}
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
// until ctx ends. Between passes it looks every Options.Soon whether
// segments owe repair (the uploader stores a segment short while a node
// is down or restarting): a pass then runs Soon after the last one, and
// the wait doubles, up to Interval, while passes leave work owed (a node
// still down); a segment stored short since resets it to Soon. When
// Observe sees the nodes change, it surveys them again at once (see
// Observe), repairing nothing.
func (r *Repairer) Run(ctx context.Context) {
	rebalance := false
	t := time.NewTimer(0)
	defer t.Stop()
	watch := time.NewTicker(r.o.Soon)
	defer watch.Stop()
	wait := r.o.Soon // from the last pass to a soon one
	var owed int64   // segments owed, as last seen
	var last time.Time
	for {
		soon := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		case <-r.rebal:
			rebalance = true
		case <-r.notice:
			r.recount(ctx)
			continue
		case now := <-watch.C:
			n := r.o.Journal.Stats().RepairOwed
			if n > owed {
				wait = r.o.Soon // stored short since: try soon again
			}
			owed = n
			if n == 0 || now.Sub(last) < wait {
				continue
			}
			soon = true
		}
		err := r.Background(ctx, rebalance)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("repair: the background pass did not repair everything; the next pass tries again", "err", err)
		}
		rebalance = false
		owed, last = r.o.Journal.Stats().RepairOwed, time.Now()
		switch {
		case owed == 0:
			wait = r.o.Soon
		case soon:
			wait = min(2*wait, r.o.Interval)
		}
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
	sortByPolicy(work, hs)
	phase := "background"
	if rebalance {
		phase = "rebalance"
	}
	_, err = r.repairAll(ctx, phase, segs, hs, work, rebalance, true, nil)
	return err
}

// needs: owed repair by remote.RepairPolicy (fewer than below shards),
// or a shard on a draining node.
func (r *Repairer) needs(h *remote.SegmentHealth, below int) bool {
	if (remote.RepairPolicy{Below: below}).Needs(h.OK, h.Seg.K, h.Seg.M) {
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
		}
		bytes, err := r.one(ctx, seg, h, rebalance)
		if background && r.lim != nil {
			// Pay for the traffic after the fact: a segment that needed
			// nothing (most of a rebalancing pass) costs nothing, and the
			// average stays within the limit.
			for bytes > 0 {
				c := min(bytes, int64(r.lim.Burst()))
				if werr := r.lim.WaitN(ctx, int(c)); werr != nil {
					return out, werr
				}
				bytes -= c
			}
		}
		out[i] = repairOutcome{ok: err == nil, err: err}
		r.mu.Lock()
		r.st.Done = n + 1
		if err != nil && ctx.Err() == nil {
			// A pass cut short (Ctrl-C, unmount) failed no segment.
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
func (r *Repairer) one(ctx context.Context, seg journal.SegmentRow, h *remote.SegmentHealth, rebalance bool) (int64, error) {
	res, err := r.o.Grid.RepairSegment(ctx, seg.Info, remote.RepairOptions{Health: h, Rebalance: rebalance})
	if res == nil {
		return 0, err
	}
	if !res.Changed() {
		return res.Bytes, err
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
			return res.Bytes, nil // deleted meanwhile: nothing left to repair
		}
		return res.Bytes, fmt.Errorf("segment %s: %w", seg.Info.ID, uerr)
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
	return res.Bytes, err
}

// ErrDrainedNodeDown: a drain moved every segment off its node, but the
// node does not answer, so what is left on it cannot be deleted. Nothing
// on it is needed any more: the node can be removed.
var ErrDrainedNodeDown = errors.New("every segment moved off it, but it does not answer to delete what is left")

// drainWaitWrites bounds Drain's wait for the segment writes in flight.
const drainWaitWrites = 2 * time.Minute

// Drain moves every shard off node (the caller has marked it draining
// in the grid), within Options.Limit and yielding to applications like
// the background pass, then deletes whatever shard objects are left on
// it, once no segment names it. It fails, naming what is left, when it
// could not move them all.
func (r *Repairer) Drain(ctx context.Context, node string, progress func(done, total int)) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	// An upload that placed a shard on node before it was marked
	// draining, not recorded yet, would be in no segment the survey
	// sees, and its shard among the leftovers deleted below.
	if err := r.o.Journal.WaitSegmentWrites(ctx, drainWaitWrites); err != nil {
		return fmt.Errorf("drain %s: %w", node, err)
	}
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
		return fmt.Errorf("drain %s: %w: %v", node, ErrDrainedNodeDown, sv.Down[node])
	}
	if err := r.o.Grid.DeleteObjects(ctx, node, sv.Names(node)); err != nil {
		return fmt.Errorf("drain %s: deleting leftover shards: %w", node, err)
	}
	return nil
}

// sortByPolicy orders the segments hs[work[i]] as remote.RepairPolicy
// says: the most endangered (fewest shards to spare) first. The drive
// does not record since when a segment is degraded, so ties keep the
// survey's order.
func sortByPolicy(work []int, hs []*remote.SegmentHealth) {
	var p remote.RepairPolicy
	item := func(i int) remote.RepairItem {
		return remote.RepairItem{K: hs[i].Seg.K, Stored: hs[i].OK}
	}
	slices.SortStableFunc(work, func(a, b int) int {
		switch {
		case p.Before(item(a), item(b)):
			return -1
		case p.Before(item(b), item(a)):
			return 1
		}
		return 0
	})
}
