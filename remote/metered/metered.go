// Package metered wraps a remote.Store and tells an Observer about every
// call: which node, which operation, how many bytes, how long, and the
// error. It is how the mount counts per-node latency and errors and the
// bytes it reads from and ships to the grid, without a line in any
// backend.
package metered

import (
	"context"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// Observer receives one call per Store operation, from many goroutines at
// once; it must be quick. bytes is the payload moved (Put: sent, Get:
// asked for), 0 for the others.
type Observer interface {
	ObserveNode(node, op string, bytes int, d time.Duration, err error)
}

// Wrap returns s with every call reported to obs under the node's name:
// Middleware on remote.Wrap, so a store that is a remote.Verifier stays
// one.
func Wrap(node string, s remote.Store, obs Observer) remote.Store {
	return remote.Wrap(s, Middleware(node, obs))
}

// Middleware reports each call it runs around to obs under node.
func Middleware(node string, obs Observer) remote.Middleware {
	return func(ctx context.Context, c remote.Call, next func(context.Context) error) error {
		t0 := time.Now()
		err := next(ctx)
		n := 0
		if c.Op == "put" || c.Op == "get" {
			n = c.Size
		}
		obs.ObserveNode(node, c.Op, n, time.Since(t0), err)
		return err
	}
}
