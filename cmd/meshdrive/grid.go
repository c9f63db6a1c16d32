package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/limit"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// openTimeout bounds opening one store when mounting (an S3 store checks
// its bucket when opened).
const openTimeout = 5 * time.Second

// openStores makes a Store per configured node, in parallel. Strict (init,
// passwd): any failure is an error. Not strict (mount, which never waits
// for the grid): a store that cannot be opened in openTimeout stands in as
// a down node, logged, so the drive still mounts.
func openStores(ctx context.Context, dataDir string, cfg *Config, log *slog.Logger, strict bool, stack gridStack) ([]remote.Member, error) {
	members := make([]remote.Member, len(cfg.Nodes))
	errs := make([]error, len(cfg.Nodes))
	var wg sync.WaitGroup
	for i, n := range cfg.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			octx, cancel := context.WithTimeout(ctx, openTimeout)
			defer cancel()
			st, err := remoteopen.Store(octx, nodeURL(dataDir, n.URL), remoteopen.Options{Logger: log.With("node", n.Name)})
			if err != nil {
				errs[i] = fmt.Errorf("node %s (%s): %w", n.Name, redactURL(n.URL), err)
				st = remoteopen.Down(errs[i])
			}
			members[i] = remote.Member{Name: n.Name, Store: stack.wrap(n.Name, st), Zone: n.Zone}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			continue
		}
		if strict {
			return nil, err
		}
		log.Warn("node unavailable: it counts as down until the next mount", "err", err)
	}
	return members, nil
}

// gridStack is what the mount wraps every store of its grid in, composed
// here and nowhere else (node add goes through it too): innermost the
// metrics (per-node latency, errors and bytes), then the bandwidth limit
// (remote/limit), each when set. open.Store puts the retries under them;
// the grid puts its timeouts, slots and breaker over them.
type gridStack struct {
	metrics func(name string, st remote.Store) remote.Store
	limits  *limit.Limits
}

// wrap puts the store of node name inside the stack.
func (s gridStack) wrap(name string, st remote.Store) remote.Store {
	if s.metrics != nil {
		st = s.metrics(name, st)
	}
	if s.limits != nil {
		st = s.limits.Wrap(st)
	}
	return st
}

// openGrid builds the sealer and the grid of a drive from its master key,
// with no wrapper around the stores (commands other than mount).
func openGrid(ctx context.Context, dataDir string, cfg *Config, master []byte, log *slog.Logger, strict bool) (*remote.Grid, *remote.Sealer, error) {
	return openGridStack(ctx, dataDir, cfg, master, log, strict, gridStack{})
}

// openGridStack is openGrid with every store wrapped in stack.
func openGridStack(ctx context.Context, dataDir string, cfg *Config, master []byte, log *slog.Logger, strict bool, stack gridStack) (*remote.Grid, *remote.Sealer, error) {
	sealer, err := remote.NewSealer(master)
	if err != nil {
		return nil, nil, err
	}
	members, err := openStores(ctx, dataDir, cfg, log, strict, stack)
	if err != nil {
		return nil, nil, err
	}
	g, err := remote.NewGrid(remote.GridOptions{K: cfg.K, M: cfg.M, Members: members, Sealer: sealer, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("grid: %w", err)
	}
	return g, sealer, nil
}
