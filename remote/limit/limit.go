package limit

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/meshdrive/meshdrive/remote"
)

// Burst is the most bytes a limiter lets through at once.
const Burst = 1 << 20

// Rates are bytes per second; 0 is unlimited.
type Rates struct {
	Up   float64 `json:"up"`
	Down float64 `json:"down"`
}

// Limits are an upload and a download rate shared by the stores wrapped
// with them. Safe for concurrent use.
type Limits struct {
	up, down *rate.Limiter

	mu  sync.Mutex // guards cur
	cur Rates
}

// New returns limits at r.
func New(r Rates) *Limits {
	l := &Limits{up: rate.NewLimiter(rate.Inf, Burst), down: rate.NewLimiter(rate.Inf, Burst)}
	l.Set(r)
	return l
}

func limitOf(bps float64) rate.Limit {
	if bps <= 0 || math.IsInf(bps, 1) || math.IsNaN(bps) {
		return rate.Inf
	}
	return rate.Limit(bps)
}

// Set changes the rates in force, at once for calls already waiting.
func (l *Limits) Set(r Rates) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r == l.cur {
		return
	}
	l.cur = r
	l.up.SetLimit(limitOf(r.Up))
	l.down.SetLimit(limitOf(r.Down))
}

// Current returns the rates in force.
func (l *Limits) Current() Rates {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// step is the most bytes one call takes from a limiter at a time. Calls
// waiting at once take turns a step at a time, so a small call (an fsync'd
// file's segment, a metadata record's shard) waits behind a step of each
// call ahead of it, not behind the whole of a bulk segment's shards (at
// 512 KiB/s, six 1 MiB shards held it 12 s).
const step = 64 << 10

// wait takes n bytes from lim, a step at a time.
func wait(ctx context.Context, lim *rate.Limiter, n int) error {
	for n > 0 {
		c := min(n, step)
		if err := lim.WaitN(ctx, c); err != nil {
			return err
		}
		n -= c
	}
	return ctx.Err()
}

// Wrap returns s with its Puts and Gets held to l's rates (a Middleware
// on remote.Wrap: a store that verifies keeps its Verify).
func (l *Limits) Wrap(s remote.Store) remote.Store { return remote.Wrap(s, l.Middleware()) }

// Middleware holds Puts to the upload rate and Gets to the download rate.
func (l *Limits) Middleware() remote.Middleware {
	return func(ctx context.Context, c remote.Call, next func(context.Context) error) error {
		var lim *rate.Limiter
		switch c.Op {
		case "put":
			lim = l.up
		case "get":
			lim = l.down
		}
		if lim != nil {
			if err := wait(ctx, lim, c.Size); err != nil {
				return err
			}
		}
		return next(ctx)
	}
}

// Follow keeps l at the rates src says are in force (src returns the
// schedule and the base rates outside it; it may re-read a config): at
// once, then every interval, until ctx ends. now is the clock.
func Follow(ctx context.Context, l *Limits, src func() (*Schedule, Rates), now func() time.Time, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sched, base := src()
		l.Set(sched.At(now(), base))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
