package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/reedsolomon"
	"golang.org/x/sync/errgroup"

	"github.com/meshdrive/meshdrive/remote/shard"
)

// Member is one node of the grid.
type Member struct {
	Name  string // unique; recorded in SegmentInfo.Nodes
	Store Store
	// Zone labels a failure domain (rack, site). Shards of one segment go
	// to distinct zones when there are enough; "" means a zone of its own.
	Zone string
	// Weight biases placement (e.g. free space); 0 means 1.
	Weight float64
}

// GridOptions configure NewGrid. Zero values mean the defaults.
type GridOptions struct {
	K, M    int // data and parity shards per segment
	Members []Member
	Sealer  *Sealer
	// HedgeAfter: when a healthy read is slower than this (plus the time
	// the range takes to transfer at the throughput healthy reads have
	// shown so far, at most 10x HedgeAfter more), a reconstruct read starts
	// in parallel and the first to finish wins (default 250ms).
	HedgeAfter time.Duration
	// NodeConcurrency bounds parallel calls per node (default 4).
	NodeConcurrency int
	// ChunkSize is the shard checksum chunk (default shard.DefaultChunkSize).
	ChunkSize int
	// CallTimeout bounds each store call (default 10s). A Put is allowed
	// one more second per putAllowance bytes it carries, so shards can
	// cross a slow uplink; a call about one object or none (stat, delete,
	// info) is bounded by at most smallCallTimeout, so a node that stopped
	// answering holds it up seconds, not the time a shard's transfer may
	// take.
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// Grid places, writes and reads erasure-coded segments over a set of
// Stores. It is safe for concurrent use.
type Grid struct {
	k, m    int
	mem     atomic.Pointer[membership] // replaced whole by AddMember, RemoveMember
	memMu   sync.Mutex                 // serializes membership changes
	sealer  *Sealer
	hedge   time.Duration
	chunk   int
	timeout time.Duration
	log     *slog.Logger

	encMu sync.Mutex // guards encs
	encs  map[[2]int]reedsolomon.Encoder

	bufs sync.Pool // of *[]byte: shard object buffers of SegmentBufs

	conc int // NodeConcurrency

	stats gridStats
	rate  atomic.Uint64 // float64 bits: EWMA of healthy Get throughput, bytes/s
}

type member struct {
	Member
	zoneKey string
	weight  float64
	// st is Member.Store with the grid's stack around it (newMember):
	// the breaker, NodeConcurrency slots and CallTimeout.
	st Store
	// downUntil (unix nanoseconds): the node failed as unavailable or timed
	// out recently; reads try it last and writes prefer others until then.
	downUntil atomic.Int64
	// live: what the last health check saw (liveness.go).
	live *liveness
	// draining: the node takes no new shard; repair moves its shards off.
	draining atomic.Bool
	// space: its free space as far as the grid knows (space.go).
	space space
	// unanswered: the last Health look found it down (DownNodes).
	unanswered atomic.Bool
}

// downFor is how long a node that failed as unavailable is tried last.
const downFor = 3 * time.Second

func (m *member) isDown() bool {
	if down, _ := m.live.unresponsive(); down {
		return true
	}
	return time.Now().UnixNano() < m.downUntil.Load()
}

// Stats counts what the grid's reads did, for tests and status output.
type Stats struct {
	HealthyReads  int64 // reads served by the systematic shard(s) alone
	FallbackReads int64 // reads that went to the reconstruct path
	Hedged        int64 // fallbacks started because the healthy read was slow
	Reconstructs  int64 // Reed-Solomon reconstructions run
	ShardsSkipped int64 // shard reads that failed or did not verify
}

type gridStats struct {
	healthy, fallback, hedged, reconstructs, skipped atomic.Int64
}

// Stats returns the grid's counters since NewGrid.
func (g *Grid) Stats() Stats {
	return Stats{
		HealthyReads:  g.stats.healthy.Load(),
		FallbackReads: g.stats.fallback.Load(),
		Hedged:        g.stats.hedged.Load(),
		Reconstructs:  g.stats.reconstructs.Load(),
		ShardsSkipped: g.stats.skipped.Load(),
	}
}

// NewGrid checks o and builds a grid. It does not contact the nodes.
func NewGrid(o GridOptions) (*Grid, error) {
	if o.K < 1 || o.M < 0 || o.K+o.M > shard.MaxShards {
		return nil, fmt.Errorf("grid: k=%d m=%d: need k >= 1, m >= 0, k+m <= %d", o.K, o.M, shard.MaxShards)
	}
	if len(o.Members) < o.K+o.M {
		return nil, fmt.Errorf("grid: %d nodes for k=%d m=%d: need at least %d; add nodes or lower m", len(o.Members), o.K, o.M, o.K+o.M)
	}
	if o.Sealer == nil {
		return nil, errors.New("grid: no Sealer")
	}
	if o.HedgeAfter <= 0 {
		o.HedgeAfter = 250 * time.Millisecond
	}
	if o.NodeConcurrency <= 0 {
		o.NodeConcurrency = 4
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = shard.DefaultChunkSize
	}
	if cs := o.ChunkSize; cs < shard.MinChunkSize || cs > shard.MaxChunkSize || cs&(cs-1) != 0 {
		return nil, fmt.Errorf("grid: chunk size %d: need a power of two in [%d, %d]", cs, shard.MinChunkSize, shard.MaxChunkSize)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Grid{
		k: o.K, m: o.M, sealer: o.Sealer, hedge: o.HedgeAfter, chunk: o.ChunkSize,
		timeout: o.CallTimeout, log: o.Logger,
		encs: make(map[[2]int]reedsolomon.Encoder), conc: o.NodeConcurrency,
	}
	ms := &membership{byName: make(map[string]*member, len(o.Members))}
	for _, mb := range o.Members {
		m, err := g.newMember(mb)
		if err != nil {
			return nil, err
		}
		if _, dup := ms.byName[mb.Name]; dup {
			return nil, fmt.Errorf("grid: two members named %q", mb.Name)
		}
		ms.all = append(ms.all, m)
		ms.byName[mb.Name] = m
	}
	g.mem.Store(ms)
	if _, err := g.encoder(o.K, o.M); err != nil {
		return nil, err
	}
	return g, nil
}

// defaultRate is the throughput assumed before any read was measured.
const defaultRate = 100e6

// observe folds one healthy Get of n bytes that took d into the
// throughput estimate. Small reads say more about latency than bandwidth
// and are left out.
func (g *Grid) observe(n int64, d time.Duration) {
	if n < 256<<10 || d <= 0 {
		return
	}
	sample := float64(n) / d.Seconds()
	old := math.Float64frombits(g.rate.Load())
	if old == 0 {
		old = sample
	}
	g.rate.Store(math.Float64bits(0.8*old + 0.2*sample)) // racy updates only lose a sample
}

// hedgeDelay is how long a healthy read of n bytes may take before the
// fallback starts beside it.
func (g *Grid) hedgeDelay(n int64) time.Duration {
	rate := math.Float64frombits(g.rate.Load())
	if rate <= 0 {
		rate = defaultRate
	}
	extra := time.Duration(float64(n) / rate * float64(time.Second))
	return g.hedge + min(extra, 10*g.hedge)
}

// K is the number of data shards per segment written by this grid.
func (g *Grid) K() int { return g.k }

// M is the number of parity shards per segment written by this grid.
func (g *Grid) M() int { return g.m }

// Sealer returns the sealer the grid opens blocks with.
func (g *Grid) Sealer() *Sealer { return g.sealer }

// encoder returns the shared Reed-Solomon encoder for (k, m), built once.
// Encoders are safe for concurrent use.
func (g *Grid) encoder(k, m int) (reedsolomon.Encoder, error) {
	g.encMu.Lock()
	defer g.encMu.Unlock()
	if e, ok := g.encs[[2]int{k, m}]; ok {
		return e, nil
	}
	if m == 0 {
		return nil, nil // k=1..n, no parity: nothing to code (meta objects)
	}
	e, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, fmt.Errorf("grid: reed-solomon k=%d m=%d: %w", k, m, err)
	}
	g.encs[[2]int{k, m}] = e
	return e, nil
}

// ErrNodeRemoved: a call to a node that left the grid (node remove or
// drain) after the caller chose it; the reads and repairs that meet it go
// to other shards.
var ErrNodeRemoved = errors.New("the node was removed from the grid meanwhile")

// putAllowance: a Put's timeout grows by a second per this many bytes
// (2 Mbit/s), on top of CallTimeout.
const putAllowance = 256 << 10

// smallCallTimeout bounds a call about one object or none (stat,
// delete, info) when CallTimeout is longer: a node that answers at all
// answers these in well under a second, even on a busy disk. (A List
// page stats up to a thousand objects and a Verify reads a whole shard:
// they get CallTimeout.)
const smallCallTimeout = 5 * time.Second

// call runs fn against member m's store, with the grid's stack around
// each of its calls (see newMember), and names the node in an error.
func (g *Grid) call(ctx context.Context, m *member, fn func(ctx context.Context, s Store) error) error {
	if m == nil {
		// Looked up in a view taken after the node was removed.
		return ErrNodeRemoved
	}
	if err := fn(ctx, m.st); err != nil {
		return fmt.Errorf("node %s: %w", m.Name, err)
	}
	return nil
}

// slots is the Middleware that allows n calls at a time.
func slots(n int) Middleware {
	sem := make(chan struct{}, n)
	return func(ctx context.Context, c Call, next func(context.Context) error) error {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-sem }()
		return next(ctx)
	}
}

// callTimeout is the Middleware that bounds each call by d, a Put by one
// more second per putAllowance bytes it carries, and a stat, delete or
// info by at most smallCallTimeout.
func callTimeout(d time.Duration) Middleware {
	return func(ctx context.Context, c Call, next func(context.Context) error) error {
		t := d
		switch c.Op {
		case "put":
			t += time.Duration(c.Size/putAllowance) * time.Second
		case "stat", "delete", "info":
			t = min(t, smallCallTimeout)
		}
		cctx, cancel := context.WithTimeout(ctx, t)
		defer cancel()
		return next(cctx)
	}
}

// breaker is the Middleware that marks m down for downFor when a call
// fails as unavailable or times out (while the caller still waits), and
// up again when one succeeds.
func (m *member) breaker() Middleware {
	return func(ctx context.Context, c Call, next func(context.Context) error) error {
		err := next(ctx)
		if err != nil {
			if ctx.Err() == nil && (errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)) {
				m.downUntil.Store(time.Now().Add(downFor).UnixNano())
			}
			return err
		}
		if m.downUntil.Load() != 0 {
			m.downUntil.Store(0)
		}
		return nil
	}
}

// NodeHealth is one member's answer to Health.
type NodeHealth struct {
	Name, Zone string
	Up         bool
	Draining   bool
	Latency    time.Duration
	Info       NodeInfo
	Err        string
}

// healthTimeout bounds each node's Info call in Health and Capacity.
const healthTimeout = 3 * time.Second

// Health asks every member for its Info in parallel, each bounded by a
// short timeout, and reports who answered and how fast. It never blocks
// longer than that timeout (or ctx). Placement learns each answer's free
// space: a node without room for a shard is left out. A node that does
// not answer (it times out or cannot be reached) is unresponsive until a
// later Health sees it answer: the grid's calls skip it meanwhile (see
// liveness), so a stopped node costs one health timeout, not a call
// timeout per shard. DownNodes names who did not answer.
func (g *Grid) Health(ctx context.Context) []NodeHealth {
	members := g.view().all
	out := make([]NodeHealth, len(members))
	var wg sync.WaitGroup
	parent := ctx
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, cancel := context.WithTimeout(parent, min(healthTimeout, g.timeout))
			defer cancel()
			t0 := time.Now()
			info, err := m.Store.Info(hctx)
			h := NodeHealth{Name: m.Name, Zone: m.Zone, Latency: time.Since(t0), Info: info, Up: err == nil, Draining: m.draining.Load()}
			if err != nil {
				h.Err = err.Error()
				if unresponsiveCause(ctx, err) {
					m.live.mark(err)
				}
			} else {
				m.live.mark(nil)
				m.space.learn(info.Free, time.Now())
			}
			if parent.Err() == nil || err == nil { // not a look its caller cut short
				m.unanswered.Store(err != nil)
			}
			out[i] = h
		}()
	}
	wg.Wait()
	return out
}

// DownNodes names the members the last Health look found not answering
// (none before the first look): the grid's current view of which nodes
// are down, for reports that must not claim shards on them (a mount
// looks every few seconds).
func (g *Grid) DownNodes() []string {
	var out []string
	for _, m := range g.view().all {
		if m.unanswered.Load() {
			out = append(out, m.Name)
		}
	}
	return out
}

// Capacity sums the capacity and free bytes of the nodes that answer.
// Nodes that cannot tell (they report -1, e.g. S3) are left out; when no
// node can tell, both results are -1. Nodes that share a file system
// (the same Info.Volume: the embedded grid's directories on one disk)
// count its space once, since each byte one of them stores is gone for
// the others too.
func (g *Grid) Capacity(ctx context.Context) (total, free int64) {
	known := false
	volumes := map[string]bool{}
	for _, h := range g.Health(ctx) {
		if !h.Up || h.Info.Capacity < 0 || h.Info.Free < 0 {
			continue
		}
		known = true
		if v := h.Info.Volume; v != "" {
			if volumes[v] {
				continue
			}
			volumes[v] = true
		}
		total += h.Info.Capacity
		free += h.Info.Free
	}
	if !known {
		return -1, -1
	}
	return total, free
}

// DeleteSegment deletes every stored shard of seg, in parallel. Shards
// already gone are not an error; other failures are joined into the
// result (the shards left behind are garbage a later sweep may remove).
func (g *Grid) DeleteSegment(ctx context.Context, seg *SegmentInfo) error {
	byName := g.view().byName
	var eg errgroup.Group
	var mu sync.Mutex
	var errs []error
	for i, name := range seg.Nodes {
		if name == "" {
			continue
		}
		m := byName[name]
		if m == nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("shard %d is on node %q, which is not in the grid", i, name))
			mu.Unlock()
			continue
		}
		eg.Go(func() error {
			err := g.call(ctx, m, func(ctx context.Context, s Store) error {
				return s.Delete(ctx, ShardName(seg.ID, i))
			})
			if err != nil && !errors.Is(err, ErrNotFound) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = eg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("delete segment %s: %w", seg.ID, errors.Join(errs...))
	}
	return nil
}
