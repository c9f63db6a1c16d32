package remote

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// flakyStore fails its first fails calls with err, then passes them on.
type flakyStore struct {
	*MemStore
	fails int
	err   error
	calls int
}

func (f *flakyStore) Put(ctx context.Context, name string, data []byte) error {
	f.calls++
	if f.calls <= f.fails {
		return f.err
	}
	return f.MemStore.Put(ctx, name, data)
}

func TestWithRetry(t *testing.T) {
	fast := Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}
	down := errors.New("node unavailable-ish")
	for _, tc := range []struct {
		name      string
		fails     int
		err       error
		retries   int
		wantCalls int
		wantErr   error
	}{
		{"recovers", 2, ErrUnavailable, 3, 3, nil},
		{"gives up", 10, ErrUnavailable, 2, 3, ErrUnavailable},
		{"no retries", 10, ErrUnavailable, 0, 1, ErrUnavailable},
		{"full is not retried", 10, ErrFull, 3, 1, ErrFull},
		{"permanent is not retried", 10, Permanent(ErrUnavailable), 3, 1, ErrUnavailable},
		{"other errors are not retried", 10, down, 3, 1, down},
	} {
		f := &flakyStore{MemStore: NewMemStore(), fails: tc.fails, err: tc.err}
		s := WithRetry(f, RetryOptions{Retries: tc.retries, Backoff: fast})
		err := s.Put(t.Context(), "x", []byte("data"))
		if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: Put = %v, want %v", tc.name, err, tc.wantErr)
		}
		if f.calls != tc.wantCalls {
			t.Errorf("%s: %d calls, want %d", tc.name, f.calls, tc.wantCalls)
		}
		if tc.name == "gives up" && !strings.Contains(err.Error(), "after 3 attempts") {
			t.Errorf("%s: %q does not say how many attempts", tc.name, err)
		}
	}

	// A ctx that ends during the wait ends the call with both causes.
	f := &flakyStore{MemStore: NewMemStore(), fails: 100, err: ErrUnavailable}
	s := WithRetry(f, RetryOptions{Retries: 100, Backoff: Backoff{Min: time.Hour, Max: time.Hour}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := s.Put(ctx, "x", nil)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || f.calls != 1 {
		t.Fatalf("Put with a ctx ending during the backoff: %v after %d calls", err, f.calls)
	}

	// Verify is kept only where the store has it.
	if _, ok := s.(Verifier); ok {
		t.Error("a retrying MemStore claims to verify")
	}
	if Base(s) != Store(f) {
		t.Errorf("Base = %T, want the flaky store", Base(s))
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for attempt, want := range []time.Duration{10, 20, 40, 80, 80, 80} {
		want *= time.Millisecond
		for range 50 {
			if d := b.Delay(attempt); d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := b.Delay(1000); d < 40*time.Millisecond || d > 80*time.Millisecond {
		t.Fatalf("Delay(1000) = %v, want the cap", d)
	}
}
