package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// proxies is an in-process toxiproxy with one TCP proxy on 127.0.0.1 in
// front of each node.
type proxies struct {
	server *toxiproxy.ApiServer
	list   []*toxiproxy.Proxy
}

func startProxies(t *testing.T, nodes []*node) *proxies {
	t.Helper()
	// The toxics log through zerolog's global logger; keep it quiet.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := &proxies{server: srv}
	for _, n := range nodes {
		px := toxiproxy.NewProxy(srv, n.name, "127.0.0.1:0", n.addr)
		if err := px.Start(); err != nil {
			t.Fatalf("start proxy for %s: %v", n.name, err)
		}
		t.Cleanup(px.Stop)
		p.list = append(p.list, px)
	}
	return p
}

func (p *proxies) urls() []string {
	urls := make([]string, len(p.list))
	for i, px := range p.list {
		urls[i] = "http://" + px.Listen
	}
	return urls
}

// add puts a toxic on proxy i, on both streams unless stream is given.
func (p *proxies) add(t testing.TB, i int, typ, attrs string, streams ...string) {
	t.Helper()
	if len(streams) == 0 {
		streams = []string{"downstream", "upstream"}
	}
	for _, s := range streams {
		js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, typ+"_"+s, typ, s, attrs)
		if _, err := p.list[i].Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			t.Fatalf("add toxic %s to proxy %d: %v", js, i, err)
		}
	}
}

// clear removes every toxic.
func (p *proxies) clear() {
	for _, px := range p.list {
		px.Toxics.ResetToxics(context.Background())
	}
}

// TestNetworkFaults puts a TCP proxy in front of every node and makes the
// network bad: 10 s of latency, a 32 KB/s cap, connection resets and a
// blackhole, each on one node, and latency with jitter on all. Reads and
// writes stay correct, and a block read costs the hedging threshold, not
// the slowest node.
func TestNetworkFaults(t *testing.T) {
	requireEnv(t)
	s := newSuite(t, "network-faults")
	nodes := startNodes(t, 6)
	px := startProxies(t, nodes)
	d := newDrive(t, driveOptions{Nodes: px.urls(), K: 4, M: 2})
	d.mount(t, nil)
	base := makeFiles("base/f", 6, 4<<20, 51)
	base.write(t, d.mnt)
	d.sync(t, 3*time.Minute)
	all := fileSet{}
	for k, v := range base {
		all[k] = v
	}
	var faults, verified atomic.Int64
	// Put the one-node faults on nodes holding data shards of the files:
	// a healthy read fetches only those, so the faults are on its path.
	dn := dataShardNodes(t, nodes, 4)
	if len(dn) < 4 {
		t.Fatalf("only %d nodes hold data shards, want 4 (k=4)", len(dn))
	}
	t.Logf("one-node faults go to %s, %s, %s, %s", nodes[dn[0]].name, nodes[dn[1]].name, nodes[dn[2]].name, nodes[dn[3]].name)

	cases := []struct {
		name  string
		apply func(t *testing.T)
		bound time.Duration // slowest 1 MiB read
	}{
		{"latency-10s-one-node", func(t *testing.T) { px.add(t, dn[0], "latency", `{"latency":10000}`) }, 2 * time.Second},
		{"bandwidth-32KBps-one-node", func(t *testing.T) { px.add(t, dn[1], "bandwidth", `{"rate":32}`) }, 2 * time.Second},
		{"reset-peer-one-node", func(t *testing.T) { px.add(t, dn[2], "reset_peer", `{"timeout":0}`) }, 2 * time.Second},
		{"blackhole-one-node", func(t *testing.T) { px.add(t, dn[3], "timeout", `{"timeout":0}`) }, 2 * time.Second},
		{"latency-50ms-jitter-all-nodes", func(t *testing.T) {
			for i := range px.list {
				px.add(t, i, "latency", `{"latency":50,"jitter":25}`, "downstream")
			}
		}, 5 * time.Second},
	}
	for ci, c := range cases {
		s.run(t, c.name, func(t *testing.T) {
			defer px.clear()
			c.apply(t)
			faults.Add(1)
			w := newWorkload(d, base)
			w.pass()
			w.report(t, "reads under "+c.name, c.bound)
			verified.Add(w.bytesRead)
			fresh := makeFiles(fmt.Sprintf("new/%d", ci), 2, 2<<20, uint64(60+ci))
			for _, name := range fresh.names() {
				if err := mkdirWrite(d.path(name), fresh[name]); err != nil {
					t.Fatalf("write under %s: %v", c.name, err)
				}
			}
			start := time.Now()
			d.sync(t, 3*time.Minute)
			t.Logf("sync under %s took %v", c.name, time.Since(start).Round(time.Millisecond))
			for k, v := range fresh {
				all[k] = v
			}
		})
	}

	s.run(t, "reread-all-after-faults", func(t *testing.T) {
		px.clear()
		d.unmount(t)
		d.mount(t, nil)
		d.cacheClear(t)
		verified.Add(all.check(t, d.mnt))
		d.unmount(t)
		d.checkJournal(t)
	})
	s.figure("network faults injected: %d (latency 10 s, 32 KB/s, reset_peer, blackhole, 50±25 ms on all); bytes read and verified: %s; bytes lost: 0 unless a subtest failed",
		faults.Load(), mib(verified.Load()))
}
