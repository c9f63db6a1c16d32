package faulty_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/faulty"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

func newFaulty(t *testing.T, seed uint64) *faulty.Store {
	t.Helper()
	ds, err := dirstore.New(t.TempDir(), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return faulty.New(ds, faulty.Options{Name: "n1", Seed: seed})
}

// With no rules the wrapper is a conforming Store.
func TestConformance(t *testing.T) {
	remotetest.RunStoreTests(t, func(t *testing.T) remote.Store { return newFaulty(t, 1) })
}

func TestFail(t *testing.T) {
	s := newFaulty(t, 1)
	ctx := t.Context()
	obj := remotetest.Object(t, 1, 100, 0)
	boom := errors.New("boom")
	s.SetRules(faulty.Rule{Ops: faulty.OpPut, Action: faulty.Fail, Err: remote.ErrFull})
	if err := s.Put(ctx, "a", obj); !errors.Is(err, remote.ErrFull) {
		t.Fatalf("Put with a fail rule: %v, want ErrFull", err)
	}
	if _, err := s.Inner().Stat(ctx, "a"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("a failed Put reached the inner store: %v", err)
	}
	s.SetRules(faulty.Rule{Ops: faulty.OpGet | faulty.OpStat, Prefix: "shards/", Action: faulty.Fail, Err: boom})
	for _, n := range []string{"a", "shards/x"} {
		if err := s.Put(ctx, n, obj); err != nil {
			t.Fatalf("Put %s with only a get rule: %v", n, err)
		}
	}
	if err := s.Get(ctx, "a", 0, make([]byte, 10)); err != nil {
		t.Fatalf("Get outside the rule's prefix: %v", err)
	}
	if err := s.Get(ctx, "shards/x", 0, make([]byte, 10)); !errors.Is(err, boom) || !bytes.Contains([]byte(err.Error()), []byte("n1")) {
		t.Fatalf("Get inside the prefix: %v, want boom naming n1", err)
	}
	if _, err := s.Stat(ctx, "shards/x"); !errors.Is(err, boom) {
		t.Fatalf("Stat inside the prefix: %v, want boom", err)
	}
	if _, err := s.List(ctx, "", "", 10); err != nil {
		t.Fatalf("List is not matched by a prefixed rule: %v", err)
	}
	s.SetRules(faulty.Rule{Action: faulty.Fail})
	for _, err := range []error{s.Put(ctx, "b", obj), s.Delete(ctx, "a"), s.Get(ctx, "a", 0, nil)} {
		if !errors.Is(err, remote.ErrUnavailable) {
			t.Fatalf("rule on all ops: %v, want ErrUnavailable", err)
		}
	}
	if _, err := s.Info(ctx); !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("Info: %v", err)
	}
	s.Clear()
	if err := s.Get(ctx, "shards/x", 0, make([]byte, 10)); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
	st := s.Stats()
	if st.Failed != 7 {
		t.Fatalf("Stats.Failed = %d, want 7 (%+v)", st.Failed, st)
	}
}

func TestCount(t *testing.T) {
	s := newFaulty(t, 1)
	s.SetRules(faulty.Rule{Ops: faulty.OpInfo, Count: 2, Action: faulty.Fail})
	var fails int
	for range 5 {
		if _, err := s.Info(t.Context()); err != nil {
			fails++
		}
	}
	if fails != 2 {
		t.Fatalf("a rule with Count 2 failed %d calls", fails)
	}
}

func TestDelayAndHang(t *testing.T) {
	s := newFaulty(t, 1)
	s.SetRules(faulty.Rule{Ops: faulty.OpInfo, Action: faulty.Delay, Delay: 100 * time.Millisecond})
	start := time.Now()
	if _, err := s.Info(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("delayed Info took %v, want >= 100ms", d)
	}
	// A delay ends early with the ctx.
	s.SetRules(faulty.Rule{Action: faulty.Delay, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Info(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an hour's delay under a 50ms deadline: %v", err)
	}
	s.SetRules(faulty.Rule{Ops: faulty.OpList, Action: faulty.Hang})
	ctx2, cancel2 := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := s.List(ctx2, "", "", 1); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a hung List returned before its ctx ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel2()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("hung List: %v, want Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hung List did not return after cancel")
	}
}

func TestCorrupt(t *testing.T) {
	s := newFaulty(t, 7)
	ctx := t.Context()
	obj := remotetest.Object(t, 2, 10000, 0)
	if err := s.Put(ctx, "o", obj); err != nil {
		t.Fatal(err)
	}
	s.SetRules(faulty.Rule{Ops: faulty.OpGet, Action: faulty.Corrupt, Bytes: 3})
	p := make([]byte, len(obj))
	if err := s.Get(ctx, "o", 0, p); err != nil {
		t.Fatal(err)
	}
	diff := 0
	for i := range p {
		if p[i] != obj[i] {
			diff++
		}
	}
	if diff < 1 || diff > 3 {
		t.Fatalf("a corrupt Get differs in %d bytes, want 1..3", diff)
	}
	// Put corruption: the inner dirstore verifies and refuses it, and the
	// caller's buffer is untouched.
	s.SetRules(faulty.Rule{Ops: faulty.OpPut, Action: faulty.Corrupt})
	keep := bytes.Clone(obj)
	if err := s.Put(ctx, "o2", obj); !errors.Is(err, remote.ErrCorrupt) {
		t.Fatalf("corrupted Put into a verifying store: %v, want ErrCorrupt", err)
	}
	if !bytes.Equal(obj, keep) {
		t.Fatal("a corrupt Put modified the caller's data")
	}
	if s.Stats().Corrupts != 2 {
		t.Fatalf("Stats.Corrupts = %d, want 2", s.Stats().Corrupts)
	}
}

func TestDown(t *testing.T) {
	s := newFaulty(t, 1)
	ctx := t.Context()
	obj := remotetest.Object(t, 3, 100, 0)
	if err := s.Put(ctx, "o", obj); err != nil {
		t.Fatal(err)
	}
	s.SetDown(true)
	if !s.IsDown() {
		t.Fatal("IsDown after SetDown(true)")
	}
	errs := []error{s.Put(ctx, "p", obj), s.Get(ctx, "o", 0, make([]byte, 1)), s.Delete(ctx, "o")}
	_, err := s.Stat(ctx, "o")
	errs = append(errs, err)
	_, err = s.List(ctx, "", "", 1)
	errs = append(errs, err)
	_, err = s.Info(ctx)
	errs = append(errs, err)
	for i, err := range errs {
		if !errors.Is(err, remote.ErrUnavailable) {
			t.Fatalf("call %d on a down store: %v, want ErrUnavailable", i, err)
		}
	}
	s.SetDown(false)
	if _, err := s.Stat(ctx, "o"); err != nil {
		t.Fatalf("after coming back up the object is gone: %v", err)
	}
	if st := s.Stats(); st.Down != 6 {
		t.Fatalf("Stats.Down = %d, want 6", st.Down)
	}
}

// outcomes returns which of n Info calls failed under a 30% rule.
func outcomes(t *testing.T, seed uint64, n int) []bool {
	s := newFaulty(t, seed)
	s.SetRules(faulty.Rule{Ops: faulty.OpInfo, Prob: 0.3, Action: faulty.Fail})
	out := make([]bool, n)
	for i := range out {
		_, err := s.Info(t.Context())
		out[i] = err != nil
	}
	return out
}

func TestProbabilityAndSeed(t *testing.T) {
	a, b, c := outcomes(t, 42, 1000), outcomes(t, 42, 1000), outcomes(t, 43, 1000)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("the same seed gave different choices")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatal("different seeds gave the same 1000 choices")
	}
	hits := 0
	for _, x := range a {
		if x {
			hits++
		}
	}
	if hits < 230 || hits > 370 {
		t.Fatalf("a 30%% rule hit %d of 1000 calls", hits)
	}
}

func TestConcurrentRuleChanges(t *testing.T) {
	s := newFaulty(t, 1)
	ctx := t.Context()
	obj := remotetest.Object(t, 4, 1000, 0)
	if err := s.Put(ctx, "o", obj); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 4 {
			case 0:
				s.SetRules(faulty.Rule{Prob: 0.5, Action: faulty.Fail})
			case 1:
				s.AddRule(faulty.Rule{Ops: faulty.OpGet, Prob: 0.5, Action: faulty.Corrupt})
			case 2:
				s.SetDown(i%8 == 2)
			case 3:
				s.Clear()
			}
		}
	}()
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			p := make([]byte, 100)
			for range 200 {
				_ = s.Get(ctx, "o", int64(w), p)
				_, _ = s.Stat(ctx, "o")
			}
		}()
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	if st := s.Stats(); st.Calls != 1+4*200*2 {
		t.Fatalf("Stats.Calls = %d, want %d", st.Calls, 1+4*200*2)
	}
}

func TestOpString(t *testing.T) {
	if got := (faulty.OpPut | faulty.OpGet).String(); got != "put|get" {
		t.Fatalf("String = %q", got)
	}
	if faulty.OpAll.String() != "all" || faulty.Op(0).String() != "none" {
		t.Fatal("OpAll or 0 String")
	}
}
