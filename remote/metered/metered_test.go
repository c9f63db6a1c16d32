package metered_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/metered"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// calls records what the wrapper reports.
type calls struct {
	mu    sync.Mutex // guards the fields below
	ops   map[string]int
	bytes map[string]int
	errs  map[string]int
}

func (c *calls) ObserveNode(node, op string, n int, d time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if node != "n1" || d < 0 {
		panic("wrong node or a negative duration")
	}
	c.ops[op]++
	c.bytes[op] += n
	if err != nil {
		c.errs[op]++
	}
}

func newCalls() *calls {
	return &calls{ops: map[string]int{}, bytes: map[string]int{}, errs: map[string]int{}}
}

func dirStore(t *testing.T) remote.Store {
	s, err := dirstore.New(t.TempDir(), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStore: a metered directory store is still a Store.
func TestStore(t *testing.T) {
	remotetest.RunStoreTests(t, func(t *testing.T) remote.Store { return metered.Wrap("n1", dirStore(t), newCalls()) })
}

// TestReports: each call is reported once, with its bytes and its error;
// a Verifier stays one.
func TestReports(t *testing.T) {
	ctx := context.Background()
	c := newCalls()
	s := metered.Wrap("n1", dirStore(t), c)
	obj := remotetest.Object(t, 1, 5000, 0)
	if err := s.Put(ctx, "a", obj); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if err := s.Get(ctx, "a", 10, p); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, "missing", 0, p); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("get of a missing object: %v", err)
	}
	if _, err := s.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if c.ops["put"] != 1 || c.bytes["put"] != len(obj) || c.ops["get"] != 2 || c.bytes["get"] != 200 || c.errs["get"] != 1 || c.ops["info"] != 1 {
		t.Errorf("reported %v, bytes %v, errors %v", c.ops, c.bytes, c.errs)
	}
	v, ok := s.(remote.Verifier)
	if !ok {
		t.Fatal("a metered directory store is no longer a Verifier")
	}
	if err := v.Verify(ctx, "a"); err != nil && !errors.Is(err, remote.ErrCorrupt) {
		t.Fatalf("verify: %v", err)
	}
	if c.ops["verify"] != 1 {
		t.Errorf("verify reported %d times", c.ops["verify"])
	}
}
