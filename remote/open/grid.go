package open

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/limit"
	"github.com/meshdrive/meshdrive/remote/metered"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// The grid's types and names that a program opening a drive handles, so
// that it needs no package of remote but this one (and remote/node to
// serve a node).
type (
	Grid        = remote.Grid
	Sealer      = remote.Sealer
	Member      = remote.Member
	NodeInfo    = remote.NodeInfo
	NodeHealth  = remote.NodeHealth
	ScrubReport = remote.ScrubReport
	ProbeAnswer = remote.ProbeAnswer
	NoRootError = remote.NoRootError
)

// Names of the small objects every node holds under meta/.
const (
	MetaKey    = remote.MetaKey
	MetaConfig = remote.MetaConfig
	MetaRoot   = remote.MetaRoot
)

// The grid's sentinel errors a program tells apart.
var (
	ErrNotFound     = remote.ErrNotFound
	ErrUnauthorized = remote.ErrUnauthorized
	ErrNoRoot       = remote.ErrNoRoot
)

// GetMeta reads the meta object name from one store (remote.GetMetaFrom).
func GetMeta(ctx context.Context, st remote.Store, name string) ([]byte, error) {
	return remote.GetMetaFrom(ctx, st, name)
}

// NewSealer makes the sealer of the drive with this master key.
func NewSealer(master []byte) (*Sealer, error) { return remote.NewSealer(master) }

// Stack is what every store of a grid is wrapped in, composed here and
// nowhere else (a node added while mounted goes through it too):
// innermost the metrics (per-node latency, errors and bytes), then the
// bandwidth limit (remote/limit), each when set. Store puts the retries
// under them; the grid puts its timeouts, slots and breaker over them.
type Stack struct {
	Metrics metered.Observer
	Limits  *Limits
}

// Wrap puts the store of node name inside the stack.
func (s Stack) Wrap(name string, st remote.Store) remote.Store {
	if s.Metrics != nil {
		st = metered.Wrap(name, st, s.Metrics)
	}
	if s.Limits != nil {
		st = s.Limits.Wrap(st)
	}
	return st
}

// Node is one store of a grid: its name, its URL (a form Store takes;
// relative directories are the caller's to resolve) and its zone.
type Node struct {
	Name, URL, Zone string
	// MustExist: a directory node is opened, never made (Options).
	MustExist bool
	// ID is the node's id as the drive recorded it (Options).
	ID string
}

// DefaultTimeout bounds opening one store of a grid (an S3 store checks
// its bucket when opened).
const DefaultTimeout = 5 * time.Second

// GridOptions configure NewGrid.
type GridOptions struct {
	K, M   int
	Master []byte // the drive's master key
	Nodes  []Node
	// Strict: a store that cannot be opened is an error. Otherwise (a
	// mount never waits for the grid) it stands in as a down node
	// (Down), logged, and the grid opens.
	Strict bool
	Stack  Stack
	// Timeout bounds opening each store (0: DefaultTimeout).
	Timeout time.Duration
	Logger  *slog.Logger
}

// NewGrid opens every node's store (Members) and builds the sealer and
// the grid of the drive.
func NewGrid(ctx context.Context, o GridOptions) (*Grid, *Sealer, error) {
	sealer, err := remote.NewSealer(o.Master)
	if err != nil {
		return nil, nil, err
	}
	members, err := Members(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	g, err := remote.NewGrid(remote.GridOptions{K: o.K, M: o.M, Members: members, Sealer: sealer, Logger: o.Logger})
	if err != nil {
		return nil, nil, fmt.Errorf("grid: %w", err)
	}
	return g, sealer, nil
}

// Members opens every node's store, in parallel, each wrapped in the
// stack (o's K, M and Master are not used). Unless Strict, a store that
// cannot be opened stands in as a down node and is opened again by the
// calls made to it, at most every reopenEvery (reopen).
func Members(ctx context.Context, o GridOptions) ([]Member, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	members := make([]remote.Member, len(o.Nodes))
	errs := make([]error, len(o.Nodes))
	var wg sync.WaitGroup
	for i, n := range o.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			octx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			so := Options{Logger: log.With("node", n.Name), MustExist: n.MustExist, ID: n.ID}
			st, err := Store(octx, n.URL, so)
			if err != nil {
				errs[i] = fmt.Errorf("node %s (%s): %w", n.Name, redact(n.URL), err)
				st = &reopen{name: n.Name, url: n.URL, o: so, timeout: o.Timeout, log: so.Logger,
					err: errs[i], next: time.Now().Add(reopenEvery)}
			}
			members[i] = remote.Member{Name: n.Name, Store: o.Stack.Wrap(n.Name, st), Zone: n.Zone}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			continue
		}
		if o.Strict {
			return nil, err
		}
		log.Warn("node unavailable: it counts as down until it can be opened (tried again every 10 s)", "err", err)
	}
	return members, nil
}

// Bandwidth limits of a grid's stores (remote/limit).
type (
	Limits   = limit.Limits
	Rates    = limit.Rates
	Schedule = limit.Schedule
)

// NewLimits makes limits at rates r; Stack.Limits applies them.
func NewLimits(r Rates) *Limits { return limit.New(r) }

// ParseSchedule parses a bandwidth schedule (limit.ParseSchedule).
func ParseSchedule(text string) (*Schedule, error) { return limit.ParseSchedule(text) }

// FollowSchedule keeps l at the rates src's schedule gives until ctx ends
// (limit.Follow).
func FollowSchedule(ctx context.Context, l *Limits, src func() (*Schedule, Rates), every time.Duration) {
	limit.Follow(ctx, l, src, time.Now, every)
}

// RateString writes bytes per second as a person reads it (0: unlimited).
func RateString(bps float64) string { return limit.RateString(bps) }

// ParseSize parses "4096", "10M", "4GiB", "1.5G" (limit.ParseSize).
func ParseSize(s string) (float64, error) { return limit.ParseSize(s) }

// reopenEvery is how often a store that could not be opened is tried
// again (a variable for tests).
var reopenEvery = 10 * time.Second

// reopen stands in for a node whose store could not be opened when the
// grid was built (an S3 server stopped or a bucket check timed out at
// mount time): calls fail with remote.ErrUnavailable, as Down's, and at
// most every reopenEvery one of them (the health check's, say) tries to
// open the store again, without waiting for it; once one opened, every
// call goes to it. Without this the node stayed down until the next
// mount though the server came back.
type reopen struct {
	name, url string
	o         Options
	timeout   time.Duration
	log       *slog.Logger

	mu      sync.Mutex // guards the fields below
	st      remote.Store
	err     error     // why the last try failed
	next    time.Time // no try before
	opening bool      // a try is running
}

func (r *reopen) store(ctx context.Context) (remote.Store, error) {
	r.mu.Lock()
	if r.st != nil {
		defer r.mu.Unlock()
		return r.st, nil
	}
	if r.opening || time.Now().Before(r.next) {
		defer r.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", remote.ErrUnavailable, r.err)
	}
	r.opening = true
	r.mu.Unlock()

	octx, cancel := context.WithTimeout(ctx, r.timeout)
	st, err := Store(octx, r.url, r.o)
	cancel()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.opening = false
	if err != nil {
		r.err = fmt.Errorf("node %s (%s): %w", r.name, redact(r.url), err)
		r.next = time.Now().Add(reopenEvery)
		return nil, fmt.Errorf("%w: %v", remote.ErrUnavailable, r.err)
	}
	r.st = st
	r.log.Info("node opened: it was unavailable when the drive was opened")
	return st, nil
}

func (r *reopen) Put(ctx context.Context, name string, data []byte) error {
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	return st.Put(ctx, name, data)
}

func (r *reopen) Get(ctx context.Context, name string, off int64, p []byte) error {
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	return st.Get(ctx, name, off, p)
}

func (r *reopen) Stat(ctx context.Context, name string) (remote.ObjectInfo, error) {
	st, err := r.store(ctx)
	if err != nil {
		return remote.ObjectInfo{}, err
	}
	return st.Stat(ctx, name)
}

func (r *reopen) Delete(ctx context.Context, name string) error {
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	return st.Delete(ctx, name)
}

func (r *reopen) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	st, err := r.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.List(ctx, prefix, after, limit)
}

func (r *reopen) Info(ctx context.Context) (remote.NodeInfo, error) {
	st, err := r.store(ctx)
	if err != nil {
		return remote.NodeInfo{}, err
	}
	return st.Info(ctx)
}

// Verify lets the opened store check a shard itself when it can (a node,
// a directory), so check --verify need not download it; else the shard is
// read and checked here.
func (r *reopen) Verify(ctx context.Context, name string) error {
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	return verify(ctx, st, name)
}

// verify has st check shard name itself when it can (remote.Verifier),
// and else reads the shard and checks it here.
func verify(ctx context.Context, st remote.Store, name string) error {
	if v, ok := st.(remote.Verifier); ok {
		return v.Verify(ctx, name)
	}
	oi, err := st.Stat(ctx, name)
	if err != nil {
		return err
	}
	obj := make([]byte, oi.Size)
	if err := st.Get(ctx, name, 0, obj); err != nil {
		return err
	}
	if _, _, err := shard.Verify(obj); err != nil {
		return fmt.Errorf("%w: %w", remote.ErrCorrupt, err)
	}
	return nil
}
