package remote

import (
	"context"
	"fmt"
)

// Call describes one store call to a Middleware.
type Call struct {
	Op   string // put, get, stat, delete, list, info, verify
	Name string // the object (the prefix for list; "" for info)
	Size int    // bytes the call carries: a Put's data, a Get's range
}

// Middleware runs around one store call: next makes the call (with the
// ctx it is given) and may be run again, or not at all.
type Middleware func(ctx context.Context, c Call, next func(context.Context) error) error

// Wrap returns s with mw around every call. Stores are stacked by
// wrapping in turn, outermost last: retries, timeouts, concurrency
// slots, the down-node breaker and bandwidth limits are each one
// Middleware, composed where the grid is built (open.Store for the node
// client's retries, the grid's members for the rest). The result keeps
// s's Verify, if it has one, and Unwrap gives s back (see Base).
func Wrap(s Store, mw Middleware) Store {
	w := &wrapped{s: s, mw: mw}
	if v, ok := s.(Verifier); ok {
		return &wrappedVerifier{wrapped: w, v: v}
	}
	return w
}

type wrapped struct {
	s  Store
	mw Middleware
}

// Unwrap returns the wrapped store.
func (w *wrapped) Unwrap() Store { return w.s }

func (w *wrapped) String() string {
	if s, ok := w.s.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", w.s)
}

func (w *wrapped) Put(ctx context.Context, name string, data []byte) error {
	return w.mw(ctx, Call{"put", name, len(data)}, func(ctx context.Context) error { return w.s.Put(ctx, name, data) })
}

func (w *wrapped) Get(ctx context.Context, name string, off int64, p []byte) error {
	return w.mw(ctx, Call{"get", name, len(p)}, func(ctx context.Context) error { return w.s.Get(ctx, name, off, p) })
}

func (w *wrapped) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	var oi ObjectInfo
	err := w.mw(ctx, Call{"stat", name, 0}, func(ctx context.Context) (err error) { oi, err = w.s.Stat(ctx, name); return err })
	return oi, err
}

func (w *wrapped) Delete(ctx context.Context, name string) error {
	return w.mw(ctx, Call{"delete", name, 0}, func(ctx context.Context) error { return w.s.Delete(ctx, name) })
}

func (w *wrapped) List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := w.mw(ctx, Call{"list", prefix, 0}, func(ctx context.Context) (err error) { out, err = w.s.List(ctx, prefix, after, limit); return err })
	return out, err
}

func (w *wrapped) Info(ctx context.Context) (NodeInfo, error) {
	var ni NodeInfo
	err := w.mw(ctx, Call{"info", "", 0}, func(ctx context.Context) (err error) { ni, err = w.s.Info(ctx); return err })
	return ni, err
}

type wrappedVerifier struct {
	*wrapped
	v Verifier
}

func (w *wrappedVerifier) Verify(ctx context.Context, name string) error {
	return w.mw(ctx, Call{"verify", name, 0}, func(ctx context.Context) error { return w.v.Verify(ctx, name) })
}

// Base peels the wrappers (Wrap's, and any other store with an
// Unwrap() Store method) off s and returns the store underneath.
func Base(s Store) Store {
	for {
		u, ok := s.(interface{ Unwrap() Store })
		if !ok {
			return s
		}
		s = u.Unwrap()
	}
}
