package remote_test

// The grid against six real node servers on 127.0.0.1 (remote/node over
// dirstores in temp dirs), k=4 m=2, 32 MiB segments of sealed 4 MiB blocks:
// 64 MiB of mixed data by default, 256 MiB with -long.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/node"
)

var long = flag.Bool("long", false, "run the long variants (256 MiB through real nodes)")

const (
	gateUp int32 = iota
	gateFail
	gateHang
	gateSlowPut // PUTs wait for release; other calls answer
)

// testNode is one real node server whose listener can be stopped (every
// connection closed, the port refuses) and restarted on the same port, and
// whose answers can be switched to 500s or to hanging.
type testNode struct {
	t    testing.TB
	name string
	dir  string
	addr string
	srv  *node.Server
	mode atomic.Int32
	hang chan struct{} // closed at cleanup: releases hung handlers
	// reqs counts the requests that reached the node; seen gets each
	// one's method when there is room.
	reqs    atomic.Int64
	seen    chan string
	release chan struct{} // closed: gateSlowPut's PUTs go on

	mu sync.Mutex // guards hs
	hs *http.Server
}

func startNode(t testing.TB, name string) *testNode {
	n := &testNode{t: t, name: name, dir: t.TempDir(), addr: "127.0.0.1:0", hang: make(chan struct{}),
		seen: make(chan string, 64), release: make(chan struct{})}
	srv, err := node.NewServer(node.ServerOptions{Dir: n.dir})
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	n.start()
	t.Cleanup(func() { close(n.hang); n.stop() })
	return n
}

func (n *testNode) start() {
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatalf("restart %s on %s: %v", n.name, n.addr, err)
	}
	n.addr = ln.Addr().String()
	h := n.srv.Handler()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.reqs.Add(1)
		select {
		case n.seen <- r.Method:
		default:
		}
		switch n.mode.Load() {
		case gateFail:
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		case gateHang:
			select {
			case <-r.Context().Done():
			case <-n.hang:
			}
			return
		case gateSlowPut:
			if r.Method == http.MethodPut {
				select {
				case <-r.Context().Done():
					return
				case <-n.release:
				}
			}
		}
		h.ServeHTTP(w, r)
	})}
	n.mu.Lock()
	n.hs = hs
	n.mu.Unlock()
	go hs.Serve(ln)
}

// stop closes the listener and every connection: clients see refusals.
func (n *testNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hs != nil {
		n.hs.Close()
		n.hs = nil
	}
}

type blockSum struct {
	ref remote.BlockRef
	sum [32]byte
	n   int
}

// fillBlock writes block i of the mixed data set into p: half random,
// a quarter text with a marker, a quarter zeros.
func fillBlock(r *rand.Rand, i int, p []byte) {
	switch i % 4 {
	case 0, 2:
		for j := 0; j+8 <= len(p); j += 8 {
			binary.LittleEndian.PutUint64(p[j:], r.Uint64())
		}
	case 1:
		words := []string{"meshdrive", "segment", "shard", nodeGridMarker, "reconstruct", "tax-return.pdf", "\n", "the", "of"}
		j := 0
		for j < len(p) {
			j += copy(p[j:], words[r.IntN(len(words))])
			if j < len(p) {
				p[j] = ' '
				j++
			}
		}
	default:
		clear(p)
	}
}

const nodeGridMarker = "NODEGRID-PLAINTEXT-MARKER-4b1d"

func TestNodeGrid(t *testing.T) {
	if testing.Short() {
		t.Skip("real node servers: skipped in -short mode")
	}
	total := int64(64 << 20)
	if *long {
		total = 256 << 20
	}
	const segSize, blockSize = 32 << 20, 4 << 20
	t0 := time.Now()

	nodes := make([]*testNode, 6)
	members := make([]remote.Member, 6)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("node-%d", i))
		c, err := node.NewClient("http://"+nodes[i].addr, node.ClientOptions{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		members[i] = remote.Member{Name: nodes[i].name, Store: c}
	}
	key := bytes.Repeat([]byte{7}, 32)
	sealer, err := remote.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer, CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Write: seal blocks into 32 MiB segments. Block lengths vary a little
	// so blocks straddle shard boundaries at many offsets.
	r := rand.New(rand.NewPCG(1, 2))
	var blocks []blockSum
	var pending []int // blocks of the current segment
	seg := make([]byte, 0, segSize)
	plain := make([]byte, blockSize)
	flush := func() {
		if len(seg) == 0 {
			return
		}
		info, err := g.WriteSegment(ctx, seg)
		if err != nil {
			t.Fatal(err)
		}
		if info.Stored() != 6 {
			t.Fatalf("segment stored on %d nodes", info.Stored())
		}
		for _, b := range pending {
			blocks[b].ref.Seg = info
		}
		pending, seg = pending[:0], seg[:0]
	}
	for i, written := 0, int64(0); written < total; i++ {
		p := plain[:blockSize-r.IntN(4096)]
		fillBlock(r, i, p)
		if len(seg)+len(p)+remote.SealOverhead > segSize {
			flush()
		}
		id := sealer.BlockID(p)
		off := len(seg)
		seg = sealer.Seal(seg, id, p)
		blocks = append(blocks, blockSum{ref: remote.BlockRef{ID: id, Offset: int64(off), Length: int64(len(seg) - off)}, sum: sha256.Sum256(p), n: len(p)})
		pending = append(pending, len(blocks)-1)
		written += int64(len(p))
	}
	flush()
	t.Logf("wrote %d MiB in %d blocks in %v", total>>20, len(blocks), time.Since(t0).Round(time.Millisecond))

	// readAll reads every block back and compares it with what was written.
	readAll := func(what string) {
		t.Helper()
		var eg errgroup.Group
		eg.SetLimit(4)
		for i, b := range blocks {
			eg.Go(func() error {
				got, _, err := g.FetchBlock(ctx, b.ref)
				if err != nil {
					return fmt.Errorf("%s: block %d: %w", what, i, err)
				}
				if len(got) != b.n || sha256.Sum256(got) != b.sum {
					return fmt.Errorf("%s: block %d: read back differs", what, i)
				}
				return nil
			})
		}
		if err := eg.Wait(); err != nil {
			t.Fatal(err)
		}
	}

	// No plaintext, marker or name on any node's disk.
	for _, n := range nodes {
		filepath.WalkDir(n.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, needle := range []string{nodeGridMarker, "tax-return.pdf", "reconstruct"} {
				if bytes.Contains(b, []byte(needle)) || strings.Contains(path, needle) {
					t.Fatalf("%s holds %q", path, needle)
				}
			}
			return nil
		})
	}

	// (a) all up.
	t1 := time.Now()
	readAll("all up")
	// With every node up the only fallbacks are hedges (a GET slower than
	// HedgeAfter on this shared machine); nothing failed or was skipped.
	if st := g.Stats(); st.FallbackReads != st.Hedged || st.ShardsSkipped != 0 {
		t.Fatalf("all nodes up but fallbacks that were not hedges: %+v", st)
	}
	t.Logf("(a) all up: %v", time.Since(t1).Round(time.Millisecond))

	// (b) every pair stopped.
	t1 = time.Now()
	for a := range 6 {
		for b := a + 1; b < 6; b++ {
			nodes[a].stop()
			nodes[b].stop()
			readAll(fmt.Sprintf("%s and %s stopped", nodes[a].name, nodes[b].name))
			nodes[a].start()
			nodes[b].start()
		}
	}
	t.Logf("(b) 15 pairs stopped: %v, stats %+v", time.Since(t1).Round(time.Millisecond), g.Stats())

	// (d) one node answering 500s, one hanging.
	t1 = time.Now()
	// The nodes holding data shards 0 and 1 of the first segment.
	failing, hanging := nodes[nodeIndex(blocks[0].ref.Seg.Nodes[0])], nodes[nodeIndex(blocks[0].ref.Seg.Nodes[1])]
	failing.mode.Store(gateFail)
	hanging.mode.Store(gateHang)
	st0 := g.Stats()
	readAll("one failing, one hanging")
	failing.mode.Store(gateUp)
	hanging.mode.Store(gateUp)
	if st := g.Stats(); st.Reconstructs-st0.Reconstructs < 2 {
		t.Fatalf("a failing and a hanging node but only %d reconstructions", st.Reconstructs-st0.Reconstructs)
	}
	t.Logf("(d) 500s and a hang: %v", time.Since(t1).Round(time.Millisecond))

	// (c) random bytes flipped in shard files on disk: two shards of
	// every segment, several bytes each (headers included).
	t1 = time.Now()
	flipped := 0
	segs := map[remote.SegmentID]*remote.SegmentInfo{}
	for _, b := range blocks {
		segs[b.ref.Seg.ID] = b.ref.Seg
	}
	for _, s := range segs {
		for _, i := range r.Perm(6)[:2] {
			path := filepath.Join(nodes[nodeIndex(s.Nodes[i])].dir, filepath.FromSlash(remote.ShardName(s.ID, i)))
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			for range 20 {
				off := r.Int64N(fi.Size())
				var c [1]byte
				f.ReadAt(c[:], off)
				c[0] ^= byte(1 + r.IntN(255))
				if _, err := f.WriteAt(c[:], off); err != nil {
					t.Fatal(err)
				}
				flipped++
			}
			f.Close()
		}
	}
	before := g.Stats().ShardsSkipped + g.Stats().FallbackReads
	readAll("flipped bytes")
	if g.Stats().ShardsSkipped+g.Stats().FallbackReads == before {
		t.Fatal("flipped bytes never sent a read to the fallback")
	}
	t.Logf("(c) %d bytes flipped in %d shard files: %v", flipped, 2*len(segs), time.Since(t1).Round(time.Millisecond))

	// Three stopped: ErrTooFewShards naming the segment, fast.
	b := blocks[len(blocks)/2]
	home := b.ref.Seg.Nodes[int(b.ref.Offset/b.ref.Seg.ShardSize)]
	stopped := map[int]bool{nodeIndex(home): true}
	for len(stopped) < 3 {
		stopped[r.IntN(6)] = true
	}
	for i := range stopped {
		nodes[i].stop()
	}
	t1 = time.Now()
	_, _, err = g.FetchBlock(ctx, b.ref)
	d := time.Since(t1)
	var tf *remote.TooFewShardsError
	if !errors.Is(err, remote.ErrTooFewShards) || !errors.As(err, &tf) || tf.Segment != b.ref.Seg.ID {
		t.Fatalf("3 nodes stopped: err %v, want a TooFewShardsError for segment %s", err, b.ref.Seg.ID)
	}
	if d > 5*time.Second {
		t.Fatalf("3 nodes stopped: failing took %v, want < 5s", d)
	}
	t.Logf("3 stopped: ErrTooFewShards in %v: %v", d.Round(time.Millisecond), err)
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

func nodeIndex(name string) int {
	var i int
	fmt.Sscanf(name, "node-%d", &i)
	return i
}
