package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff is capped exponential backoff with full jitter: the wait before
// retry n (from 0) is drawn from [d/2, d], d = min(Max, Min·2^n).
type Backoff struct {
	Min, Max time.Duration
}

// Delay is the wait before retry attempt (0 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi := max(b.Min, time.Nanosecond), max(b.Max, b.Min)
	d := hi
	if attempt < 30 {
		d = min(hi, lo<<attempt)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Sleep waits d, or until ctx ends; it reports whether the full wait
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// RetryOptions configure WithRetry.
type RetryOptions struct {
	// Retries is how many times a call that failed with ErrUnavailable is
	// tried again (0: never).
	Retries int
	Backoff Backoff
	// Logger receives each retry at debug level. Nil discards.
	Logger *slog.Logger
}

// DefaultRetry is what a node client gets (see open.Store): three more
// attempts, 50 ms to 2 s apart.
var DefaultRetry = RetryOptions{Retries: 3, Backoff: Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}}

// WithRetry wraps s so that a call failing with ErrUnavailable (the node
// did not answer, answered 5xx, cut its answer short) is tried again,
// with backoff, within the caller's ctx. Other errors return at once.
func WithRetry(s Store, o RetryOptions) Store {
	return Wrap(s, Retry(o, fmt.Sprint(s)))
}

// Retry is WithRetry's Middleware; what names the store in its debug log.
func Retry(o RetryOptions, what string) Middleware {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, c Call, next func(context.Context) error) error {
		for attempt := 0; ; attempt++ {
			err := next(ctx)
			if err == nil || !errors.Is(err, ErrUnavailable) || IsPermanent(err) || ctx.Err() != nil {
				return err
			}
			if attempt >= o.Retries {
				return fmt.Errorf("%w (gave up after %d attempts)", err, attempt+1)
			}
			d := o.Backoff.Delay(attempt)
			log.Debug("store: retrying", "store", what, "op", c.Op, "name", c.Name, "attempt", attempt+1, "in", d, "err", err)
			if !Sleep(ctx, d) {
				return fmt.Errorf("%w (while waiting to retry: %w)", err, ctx.Err())
			}
		}
	}
}
