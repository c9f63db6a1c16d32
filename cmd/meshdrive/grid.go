package main

import (
	"context"
	"log/slog"
	"time"

	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// openTimeout bounds opening one store when mounting (an S3 store checks
// its bucket when opened).
const openTimeout = 5 * time.Second

// openGrid builds the sealer and the grid of a drive from its master key,
// with no wrapper around the stores (commands other than mount). Strict
// (init, passwd): a node whose store cannot be opened is an error. Not
// strict (mount, which never waits for the grid): it stands in as a down
// node, logged, so the drive still mounts.
func openGrid(ctx context.Context, dataDir string, cfg *Config, master []byte, log *slog.Logger, strict bool) (*remoteopen.Grid, *remoteopen.Sealer, error) {
	return openGridStack(ctx, dataDir, cfg, master, log, strict, remoteopen.Stack{})
}

// openGridStack is openGrid with every store wrapped in stack.
func openGridStack(ctx context.Context, dataDir string, cfg *Config, master []byte, log *slog.Logger, strict bool, stack remoteopen.Stack) (*remoteopen.Grid, *remoteopen.Sealer, error) {
	return remoteopen.NewGrid(ctx, gridOptions(dataDir, cfg, master, log, strict, stack))
}

// gridOptions are the options of the grid cfg describes.
func gridOptions(dataDir string, cfg *Config, master []byte, log *slog.Logger, strict bool, stack remoteopen.Stack) remoteopen.GridOptions {
	nodes := make([]remoteopen.Node, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		u := nodeURL(dataDir, n.URL)
		// Only init (strict) makes a node directory given by the user
		// (a spare disk): anything else opening one that is missing
		// would make it on the file system under an unmounted disk.
		// The embedded grid's (relative: inside the data dir) is made
		// again as before.
		_, local := remoteopen.LocalPath(n.URL)
		nodes[i] = remoteopen.Node{Name: n.Name, URL: u, Zone: n.Zone, MustExist: !strict && local && u == n.URL, ID: n.ID}
	}
	return remoteopen.GridOptions{K: cfg.K, M: cfg.M, Master: master, Nodes: nodes,
		Strict: strict, Stack: stack, Timeout: openTimeout, Logger: log}
}
