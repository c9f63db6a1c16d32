package open_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/open"
)

// countOps is a metered.Observer that counts calls per node.
type countOps struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

func (c *countOps) ObserveNode(node, op string, bytes int, d time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[node]++
}

func (c *countOps) calls(node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[node]
}

func gridNodes(t *testing.T, n int) []open.Node {
	dir := t.TempDir()
	nodes := make([]open.Node, n)
	for i := range nodes {
		nodes[i] = open.Node{Name: fmt.Sprintf("node-%d", i+1), URL: filepath.Join(dir, fmt.Sprint(i))}
	}
	return nodes
}

func TestNewGridWrapsEveryStore(t *testing.T) {
	obs := &countOps{n: map[string]int{}}
	master := make([]byte, open.KeySize)
	g, sealer, err := open.NewGrid(t.Context(), open.GridOptions{K: 2, M: 1, Master: master, Nodes: gridNodes(t, 3),
		Strict: true, Stack: open.Stack{Metrics: obs, Limits: open.NewLimits(open.Rates{})}})
	if err != nil {
		t.Fatal(err)
	}
	if sealer == nil || g.K() != 2 || g.M() != 1 {
		t.Fatalf("grid k=%d m=%d, sealer %v", g.K(), g.M(), sealer)
	}
	if _, err := g.WriteSegment(t.Context(), []byte(strings.Repeat("segment ", 1000))); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if obs.calls(n) == 0 {
			t.Errorf("no call of %s went through the stack's metrics", n)
		}
	}
}

func TestNewGridDownNode(t *testing.T) {
	nodes := gridNodes(t, 3)
	nodes[1].URL = "127.0.0.1:1" // not a URL Store takes
	o := open.GridOptions{K: 2, M: 1, Master: make([]byte, open.KeySize), Nodes: nodes}

	o.Strict = true
	if _, _, err := open.NewGrid(t.Context(), o); err == nil || !strings.Contains(err.Error(), "node-2") {
		t.Fatalf("strict NewGrid with a bad node: %v, want an error naming node-2", err)
	}

	o.Strict = false
	members, err := open.Members(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := members[1].Store.Info(t.Context()); !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("the bad node's store: %v, want remote.ErrUnavailable", err)
	}
	if _, err := members[0].Store.Info(t.Context()); err != nil {
		t.Fatalf("a good node's store: %v", err)
	}
	if _, _, err := open.NewGrid(t.Context(), o); err != nil {
		t.Fatalf("NewGrid with one node down: %v", err)
	}
}

// TestMembersReopenDownNode: a node whose store could not be opened when
// the grid was built (its server stopped, its disk not there yet) is
// opened again by a later call once it can be, not left down until the
// grid is built again.
func TestMembersReopenDownNode(t *testing.T) {
	open.SetReopenEvery(t, 50*time.Millisecond)
	nodes := gridNodes(t, 3)
	blocker := filepath.Join(t.TempDir(), "not-yet")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	nodes[1].URL = filepath.Join(blocker, "node") // a file where its parent directory should be
	members, err := open.Members(t.Context(), open.GridOptions{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := members[1].Store.Info(t.Context()); !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("the node that could not be opened: %v, want remote.ErrUnavailable", err)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := members[1].Store.Info(t.Context())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node can be opened now, but its store still says: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := members[1].Store.List(t.Context(), "", "", 10); err != nil {
		t.Fatalf("List on the node once opened: %v", err)
	}
	// Opened late, the node still checks shards itself (check --verify
	// downloads nothing from it), as one opened at once does.
	v, ok := members[1].Store.(remote.Verifier)
	if !ok {
		t.Fatal("the node opened late lost Verify")
	}
	if err := v.Verify(t.Context(), "shards/none.0"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Verify of a shard the node does not hold: %v, want remote.ErrNotFound", err)
	}
}
