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

// Wrap returns s with every call reported to obs under the node's name.
// A store that is a remote.Verifier stays one.
func Wrap(node string, s remote.Store, obs Observer) remote.Store {
	m := &store{s: s, node: node, obs: obs}
	if _, ok := s.(remote.Verifier); ok {
		return verifyingStore{m}
	}
	return m
}

type store struct {
	s    remote.Store
	node string
	obs  Observer
}

func (m *store) done(op string, n int, t0 time.Time, err error) error {
	m.obs.ObserveNode(m.node, op, n, time.Since(t0), err)
	return err
}

func (m *store) Put(ctx context.Context, name string, data []byte) error {
	t0 := time.Now()
	return m.done("put", len(data), t0, m.s.Put(ctx, name, data))
}

func (m *store) Get(ctx context.Context, name string, off int64, p []byte) error {
	t0 := time.Now()
	return m.done("get", len(p), t0, m.s.Get(ctx, name, off, p))
}

func (m *store) Stat(ctx context.Context, name string) (remote.ObjectInfo, error) {
	t0 := time.Now()
	oi, err := m.s.Stat(ctx, name)
	return oi, m.done("stat", 0, t0, err)
}

func (m *store) Delete(ctx context.Context, name string) error {
	t0 := time.Now()
	return m.done("delete", 0, t0, m.s.Delete(ctx, name))
}

func (m *store) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	t0 := time.Now()
	l, err := m.s.List(ctx, prefix, after, limit)
	return l, m.done("list", 0, t0, err)
}

func (m *store) Info(ctx context.Context) (remote.NodeInfo, error) {
	t0 := time.Now()
	i, err := m.s.Info(ctx)
	return i, m.done("info", 0, t0, err)
}

// verifyingStore keeps a wrapped store's remote.Verifier.
type verifyingStore struct{ *store }

func (m verifyingStore) Verify(ctx context.Context, name string) error {
	t0 := time.Now()
	return m.done("verify", 0, t0, m.s.(remote.Verifier).Verify(ctx, name))
}
