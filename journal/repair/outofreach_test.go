package repair_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/meshdrive/meshdrive/journal/repair"
	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/node"
)

// httpNode is a real node server on 127.0.0.1 in front of one of the
// drive's stores, which can be stopped (the port refuses, every
// connection is closed) and started again on the same port.
type httpNode struct {
	t    *testing.T
	srv  *node.Server
	addr string

	mu sync.Mutex // guards hs
	hs *http.Server
}

// serveNode serves st on 127.0.0.1 and returns the node and a client of it.
func serveNode(t *testing.T, st remote.Store) (*httpNode, remote.Store) {
	t.Helper()
	srv, err := node.NewServer(node.ServerOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	n := &httpNode{t: t, srv: srv, addr: "127.0.0.1:0"}
	n.start()
	t.Cleanup(n.stop)
	c, err := node.NewClient("http://"+n.addr, node.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

func (n *httpNode) start() {
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatalf("listen on %s: %v", n.addr, err)
	}
	n.addr = ln.Addr().String()
	hs := &http.Server{Handler: n.srv.Handler()}
	n.mu.Lock()
	n.hs = hs
	n.mu.Unlock()
	go hs.Serve(ln)
}

func (n *httpNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hs != nil {
		n.hs.Close()
		n.hs = nil
	}
}

// TestCheckRepairOutOfReach: a segment misses a shard, and two of the
// nodes that list the others are stopped after the check's survey, so
// the repair reads three shards (k-1). check --repair names the segment
// out of reach and the two stopped nodes, and counts no failed repair
// (trying again cannot help while they are stopped) and nothing lost.
// With the nodes started again, the same check repairs it.
func TestCheckRepairOutOfReach(t *testing.T) {
	ctx := t.Context()
	var nodes []*httpNode // nodes[i] serves node-i
	d := newDriveFull(t, nil, func(st remote.Store) remote.Store {
		n, c := serveNode(t, st)
		nodes = append(nodes, n)
		return c
	}, nil)
	d.write(t, "f", bytes.Repeat([]byte("out of reach "), 10000))
	seg := d.onlySegment(t)
	if err := os.Remove(d.shardPath(seg, 5)); err != nil {
		t.Fatal(err)
	}
	stopped := slices.Sorted(slices.Values([]string{seg.Nodes[0], seg.Nodes[1]}))
	nodeOf := func(name string) *httpNode {
		for i, n := range nodes {
			if name == fmt.Sprintf("node-%d", i) {
				return n
			}
		}
		t.Fatalf("no node server for %s", name)
		return nil
	}
	r := repair.New(repair.Options{Grid: d.g, Journal: d.j})
	rep, err := r.Check(ctx, repair.CheckRequest{Repair: true}, func(p repair.Progress) {
		if p.Phase == "check" {
			for _, name := range stopped {
				nodeOf(name).stop()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.OutOfReach, []string{seg.ID.String()}) || !slices.Equal(rep.OutOfReachNodes, stopped) {
		t.Errorf("repair with %v stopped after the survey: out of reach %v on nodes %v, want [%s] on %v",
			stopped, rep.OutOfReach, rep.OutOfReachNodes, seg.ID, stopped)
	}
	if rep.RepairFailed != 0 || len(rep.RepairErrors) != 0 || rep.Repaired != 0 || len(rep.CorruptUnrecoverable) != 0 || rep.Unrecoverable != 0 {
		t.Errorf("repair with %v stopped: %d failed %v, %d repaired, corrupt below k %v, %d files unrecoverable; want none: the segment waits for its nodes",
			stopped, rep.RepairFailed, rep.RepairErrors, rep.Repaired, rep.CorruptUnrecoverable, rep.Unrecoverable)
	}
	unreachable := 0
	for _, p := range rep.Problems {
		if p.State == "unreachable" && slices.Contains(stopped, p.Node) && p.Error != "" {
			unreachable++
		}
	}
	if unreachable != 2 {
		t.Errorf("problems %+v: want the shards on %v unreachable, with their errors", rep.Problems, stopped)
	}

	for _, name := range stopped {
		nodeOf(name).start()
	}
	rep, err = r.Check(ctx, repair.CheckRequest{Repair: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 1 || rep.RepairFailed != 0 || len(rep.OutOfReach) != 0 || len(rep.OutOfReachNodes) != 0 {
		t.Errorf("repair with the nodes started again: %d repaired, %d failed, out of reach %v on %v; want it repaired",
			rep.Repaired, rep.RepairFailed, rep.OutOfReach, rep.OutOfReachNodes)
	}
}
