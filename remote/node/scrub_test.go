package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// TestScrub: the scrubber of a node finds the one object whose bytes
// were flipped on disk, moves it aside (Get then says not found) and
// reports it in /v1/info; the intact objects stay.
func TestScrub(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	ds, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		obj, err := shard.Encode(&shard.Header{Kind: shard.KindSegment, K: 1, ChunkSize: 4 << 10}, bytes.Repeat([]byte{byte(i)}, 20_000))
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Put(ctx, fmt.Sprintf("shards/s%d.0", i), obj); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "shards", "s3.0")
	b, _ := os.ReadFile(p)
	b[len(b)-100] ^= 1
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	url, _ := startServer(t, node.ServerOptions{Dir: dir, ScrubRate: 1 << 30})
	c := newClient(t, url, node.ClientOptions{})
	var info remote.NodeInfo
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if info, err = c.Info(ctx); err != nil {
			t.Fatal(err)
		}
		if info.Scrub == nil {
			t.Fatal("info has no scrub report on a scrubbing node")
		}
		if info.Scrub.CorruptSeen > 0 || time.Now().After(deadline) {
			break
		}
	}
	if info.Scrub.CorruptSeen != 1 || len(info.Scrub.Corrupt) != 1 || info.Scrub.Corrupt[0] != "shards/s3.0" {
		t.Fatalf("scrub report: %+v", info.Scrub)
	}
	if err := c.Get(ctx, "shards/s3.0", 0, make([]byte, 10)); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("get of the scrubbed object: %v, want not found", err)
	}
	q, _ := os.ReadDir(filepath.Join(dir, dirstore.QuarantineDir))
	if len(q) != 1 {
		t.Errorf("%d objects in quarantine, want 1", len(q))
	}
	for _, i := range []int{0, 1, 2, 4} {
		if err := c.Verify(ctx, fmt.Sprintf("shards/s%d.0", i)); err != nil {
			t.Errorf("intact object %d: %v", i, err)
		}
	}
}
