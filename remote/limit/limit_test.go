package limit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// nullStore takes every Put and answers every Get with zeros.
type nullStore struct {
	remote.Store
	put, got atomic.Int64
}

func (n *nullStore) Put(_ context.Context, _ string, data []byte) error {
	n.put.Add(int64(len(data)))
	return nil
}

func (n *nullStore) Get(_ context.Context, _ string, _ int64, p []byte) error {
	clear(p)
	n.got.Add(int64(len(p)))
	return nil
}

// An upload limit of 2 MiB/s holds within 10% over 30 s, with four
// stores sharing it and writers that never pause; downloads have their
// own limit. (synctest: 30 s of the bubble's clock, no real waiting.)
func TestLimitHoldsOver30s(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const up, down = 2 << 20, 1 << 20
		l := New(Rates{Up: up, Down: down})
		var stores []*nullStore
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for i := range 4 {
			ns := &nullStore{}
			stores = append(stores, ns)
			s := l.Wrap(ns)
			for _, op := range []func([]byte) error{
				func(b []byte) error { return s.Put(ctx, "x", b) },
				func(b []byte) error { return s.Get(ctx, "x", 0, b[:64<<10+i]) },
			} {
				wg.Go(func() {
					buf := make([]byte, 256<<10+i*1000)
					// Near the deadline a wait that would pass it fails at
					// once (taking nothing): then sleep until the end.
					for op(buf) == nil {
					}
					<-ctx.Done()
				})
			}
		}
		wg.Wait()
		var put, got int64
		for _, ns := range stores {
			put += ns.put.Load()
			got += ns.got.Load()
		}
		for _, c := range []struct {
			what       string
			n, rate, d int64
		}{{"upload", put, up, 30}, {"download", got, down, 30}} {
			want := c.rate * c.d
			if c.n < want*9/10 || c.n > want*11/10 {
				t.Errorf("%s: %d bytes in %d s at a limit of %d/s: off by more than 10%% from %d", c.what, c.n, c.d, c.rate, want)
			}
			t.Logf("%s: %.3f MiB/s over %d s (limit %.3f)", c.what, float64(c.n)/float64(c.d)/(1<<20), c.d, float64(c.rate)/(1<<20))
		}
	})
}

// Set applies at once to a Put already waiting.
func TestSetIsLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Rates{Up: 1000})
		ns := &nullStore{}
		s := l.Wrap(ns)
		s.Put(t.Context(), "x", make([]byte, 1000)) // drains the first burst
		done := make(chan time.Time)
		start := time.Now()
		go func() {
			s.Put(t.Context(), "x", make([]byte, 100_000)) // 100 s at 1000/s
			done <- time.Now()
		}()
		time.Sleep(time.Second)
		l.Set(Rates{}) // unlimited
		if took := (<-done).Sub(start); took > 2*time.Second {
			t.Fatalf("a Put waiting at 1000 B/s took %v after the limit was lifted", took)
		}
		if got := l.Current(); got != (Rates{}) {
			t.Fatalf("Current = %+v after Set(unlimited)", got)
		}
	})
}

// Follow switches at the schedule's time, on an injected clock.
func TestFollowSwitchesAtItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble's clock starts at midnight UTC; read it in UTC.
		now := func() time.Time { return time.Now().UTC() }
		start := now()
		sched, err := ParseSchedule("00:10-00:20 1MiB/s, otherwise up 8MiB/s down 4MiB/s")
		if err != nil {
			t.Fatal(err)
		}
		l := New(Rates{})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go Follow(ctx, l, func() (*Schedule, Rates) { return sched, Rates{} }, now, 10*time.Second)
		check := func(at time.Duration, want Rates) {
			t.Helper()
			time.Sleep(time.Until(start.Add(at)))
			synctest.Wait()
			if got := l.Current(); got != want {
				t.Errorf("at %v after %s: rates %+v, want %+v", at, start.Format("15:04"), got, want)
			}
		}
		check(5*time.Minute, Rates{Up: 8 << 20, Down: 4 << 20})
		check(10*time.Minute+11*time.Second, Rates{Up: 1 << 20})
		check(19*time.Minute+55*time.Second, Rates{Up: 1 << 20})
		check(20*time.Minute+11*time.Second, Rates{Up: 8 << 20, Down: 4 << 20})
	})
}

// A small Put that comes while large ones wait takes its turn among them:
// it waits behind a step of each, not behind all their bytes (at
// 512 KiB/s, six 1 MiB shards of a bulk segment held a 4 KiB metadata
// shard 12 s).
func TestSmallPutTakesTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Rates{Up: 512 << 10})
		s := l.Wrap(&nullStore{})
		ctx := t.Context()
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() { s.Put(ctx, "bulk", make([]byte, 1<<20)) })
		}
		time.Sleep(10 * time.Millisecond)
		start := time.Now()
		if err := s.Put(ctx, "small", make([]byte, 4<<10)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("a 4 KiB Put behind six 1 MiB ones at 512 KiB/s took %v, want at most 2s", took)
		}
		wg.Wait()
	})
}
