package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// liveness is what the last health check (Grid.Health) saw of one node.
// A node that did not answer one (it was stopped with SIGSTOP, its host
// hangs: the connection opens but nothing comes back) is unresponsive
// until a health check sees it answer again. Meanwhile the grid sends it
// no call: placement leaves it out, reads go to the other shards, and a
// call that reaches it anyway (a listing, a meta object, a delete) fails
// at once with ErrUnavailable. Calls in flight when it was found
// unresponsive are ended, so a write waiting on it places its shard
// elsewhere. A node that answers, however slowly it moves data, is never
// marked: its Puts and Gets run their full course.
type liveness struct {
	mu sync.Mutex // guards the fields below
	// gone is canceled (cause: the health check's error) when the node
	// was found unresponsive; a new one is made when it answers again.
	gone   context.Context
	cancel context.CancelCauseFunc
	down   bool
}

func newLiveness() *liveness {
	l := &liveness{}
	l.gone, l.cancel = context.WithCancelCause(context.Background())
	return l
}

// unresponsive reports whether the last health check found the node
// unresponsive, and why.
func (l *liveness) unresponsive() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down {
		return false, nil
	}
	return true, context.Cause(l.gone)
}

// context returns the context that is canceled when the node is found
// unresponsive.
func (l *liveness) context() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gone
}

// mark records a health check's answer: err nil, the node answered.
func (l *liveness) mark(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil && !l.down:
		l.down = true
		l.cancel(err)
	case err == nil && l.down:
		l.down = false
		l.gone, l.cancel = context.WithCancelCause(context.Background())
	}
}

// ErrUnresponsive is wrapped (with ErrUnavailable) by the error of a call
// to a node the last health check found unresponsive.
var ErrUnresponsive = errors.New("the node did not answer the last health check; the grid skips it until one sees it answer")

// unresponsiveError says why a call to an unresponsive node was skipped
// or ended.
func unresponsiveError(cause error) error {
	return fmt.Errorf("%w: %w (%v); check that the node runs and is not stopped (kill -CONT, or restart it)", ErrUnavailable, ErrUnresponsive, cause)
}

// gate is the Middleware that fails a call to an unresponsive member at
// once, and ends a call in flight when its member is found unresponsive.
func (m *member) gate() Middleware {
	return func(ctx context.Context, c Call, next func(context.Context) error) error {
		if down, cause := m.live.unresponsive(); down {
			return unresponsiveError(cause)
		}
		cctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		stop := context.AfterFunc(m.live.context(), func() { cancel(ErrUnresponsive) })
		defer stop()
		err := next(cctx)
		if err != nil && ctx.Err() == nil && errors.Is(context.Cause(cctx), ErrUnresponsive) {
			_, cause := m.live.unresponsive()
			if cause == nil {
				cause = err
			}
			return unresponsiveError(cause)
		}
		return err
	}
}

// unresponsiveCause tells whether a health check's error means the node
// did not answer (it timed out or could not be reached), rather than
// answered with an error.
func unresponsiveCause(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && (errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded))
}
