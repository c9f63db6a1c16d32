package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// countedNode is a real node server on 127.0.0.1 over dir that counts
// the Puts that reach it.
type countedNode struct {
	name string
	dir  string
	puts atomic.Int64
}

func startCountedNode(t *testing.T, name, dir string) (*countedNode, remote.Member) {
	t.Helper()
	srv, err := node.NewServer(node.ServerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &countedNode{name: name, dir: dir}
	h := srv.Handler()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			n.puts.Add(1)
		}
		h.ServeHTTP(w, r)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	c, err := node.NewClient("http://"+ln.Addr().String(), node.ClientOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return n, remote.Member{Name: name, Store: c}
}

// fullGrid is a k=2 m=2 grid over real node servers, the first nfull of
// them on a 1 MiB disk (tmpfs), less than a shard of a 4 MiB segment
// needs.
func fullGrid(t *testing.T, nodes, nfull int) (*remote.Grid, []*countedNode) {
	return tmpfsGrid(t, nodes, nfull, "1m")
}

// tmpfsGrid is a k=2 m=2 grid over real node servers, the first ntmpfs of
// them on a tmpfs of size.
func tmpfsGrid(t *testing.T, nodes, ntmpfs int, size string) (*remote.Grid, []*countedNode) {
	var members []remote.Member
	var ns []*countedNode
	for i := range nodes {
		dir := t.TempDir()
		if i < ntmpfs {
			dir = remotetest.Tmpfs(t, size)
		}
		n, m := startCountedNode(t, fmt.Sprintf("node-%d", i), dir)
		ns = append(ns, n)
		members = append(members, m)
	}
	sealer, err := remote.NewSealer(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 2, M: 2, Members: members, Sealer: sealer, CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return g, ns
}

func segmentData(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]byte, 4<<20)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// TestFullNodeLeftOut: a node whose disk is full (it reports less free
// space than a shard needs) is left out of placement once the grid has
// heard from it, so no shard is sent to it to be refused; every segment
// is still stored whole on the others.
func TestFullNodeLeftOut(t *testing.T) {
	g, ns := fullGrid(t, 5, 1)
	ctx := t.Context()
	for _, h := range g.Health(ctx) {
		if !h.Up {
			t.Fatalf("%s is down: %s", h.Name, h.Err)
		}
	}
	for s := range 8 {
		info, err := g.WriteSegment(ctx, segmentData(uint64(s)))
		if err != nil {
			t.Fatal(err)
		}
		if info.Stored() != 4 {
			t.Fatalf("segment %d stored on %d nodes, want 4: %v", s, info.Stored(), info.Nodes)
		}
		for _, name := range info.Nodes {
			if name == ns[0].name {
				t.Fatalf("segment %d has a shard on the full node: %v", s, info.Nodes)
			}
		}
	}
	if n := ns[0].puts.Load(); n != 0 {
		t.Errorf("the full node was sent %d shards", n)
	}
}

// TestFullNodeLearnedFromPut: a grid that never asked a node's free space
// learns it from the first Put the node refuses as full, and sends it no
// other shard.
func TestFullNodeLearnedFromPut(t *testing.T) {
	g, ns := fullGrid(t, 5, 1)
	ctx := t.Context()
	s := 0
	for ; ns[0].puts.Load() == 0; s++ {
		if s == 64 {
			t.Fatal("64 segments placed no shard on node-0")
		}
		if _, err := g.WriteSegment(ctx, segmentData(uint64(s))); err != nil {
			t.Fatal(err)
		}
	}
	for range 8 {
		info, err := g.WriteSegment(ctx, segmentData(uint64(s)))
		s++
		if err != nil {
			t.Fatal(err)
		}
		if info.Stored() != 4 {
			t.Fatalf("segment stored on %d nodes, want 4: %v", info.Stored(), info.Nodes)
		}
	}
	if n := ns[0].puts.Load(); n != 1 {
		t.Errorf("the full node was sent %d shards, want only the first one it refused", n)
	}
}

// TestTooFewNodesWithRoom: when too few nodes have room for a segment,
// the write fails without sending shards to the full ones, and the error
// names them and says what to do.
func TestTooFewNodesWithRoom(t *testing.T) {
	g, ns := fullGrid(t, 4, 2)
	ctx := t.Context()
	g.Health(ctx)
	_, err := g.WriteSegment(ctx, segmentData(1))
	if !errors.Is(err, remote.ErrTooFewNodes) {
		t.Fatalf("write with two of four nodes full: %v, want ErrTooFewNodes", err)
	}
	for _, want := range []string{"node-0 (", "node-1 (", "have no room for a shard of 2.0 MiB", "meshdrive node add", "meshdrive gc"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	for _, n := range ns[:2] {
		if p := n.puts.Load(); p != 0 {
			t.Errorf("full %s was sent %d shards", n.name, p)
		}
	}

	// Disks that get room take shards again once the grid hears of it.
	for _, n := range ns[:2] {
		if out, err := exec.Command("mount", "-o", "remount,size=64m", n.dir).CombinedOutput(); err != nil {
			t.Fatalf("grow %s's tmpfs: %v: %s", n.name, err, out)
		}
	}
	g.Health(ctx)
	info, err := g.WriteSegment(ctx, segmentData(2))
	if err != nil {
		t.Fatalf("write after the full disks grew: %v", err)
	}
	if info.Stored() != 4 {
		t.Fatalf("segment stored on %d nodes, want 4: %v", info.Stored(), info.Nodes)
	}
}

// TestUnsizedDiskNotFull: a node on a file system that does not tell its
// size (statfs reports 0 blocks: a tmpfs without a size, a FUSE file
// system without statfs) has room as far as anyone knows, not none: it
// still takes shards after Health.
func TestUnsizedDiskNotFull(t *testing.T) {
	g, ns := tmpfsGrid(t, 4, 1, "0") // no limit: statfs says 0 of 0 blocks
	ctx := t.Context()
	for _, h := range g.Health(ctx) {
		if !h.Up {
			t.Fatalf("%s is down: %s", h.Name, h.Err)
		}
		if h.Name == ns[0].name && (h.Info.Capacity != -1 || h.Info.Free != -1) {
			t.Errorf("a node on a file system of unknown size reports capacity %d, free %d; want -1, -1", h.Info.Capacity, h.Info.Free)
		}
	}
	info, err := g.WriteSegment(ctx, segmentData(1))
	if err != nil {
		t.Fatal(err)
	}
	if info.Stored() != 4 || ns[0].puts.Load() != 1 {
		t.Fatalf("segment stored on %v; node-0, on a file system of unknown size, was sent %d shards", info.Nodes, ns[0].puts.Load())
	}
}
