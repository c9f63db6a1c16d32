package repair_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/repair"
	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
)

// TestDrainWaitsForCompactionInFlight: a compaction whose new segment
// placed a shard on a node before the node was marked draining, not
// recorded yet: the drain must not delete that shard as a leftover.
func TestDrainWaitsForCompactionInFlight(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	sealer, err := remote.NewSealer(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var (
		armed    atomic.Bool
		mu       sync.Mutex
		first    string
		segName  string
		firstOK  = make(chan struct{})
		release  = make(chan struct{})
		released atomic.Bool
		stores   = map[string]*dirstore.Store{}
		members  []remote.Member
	)
	for i := range 7 {
		name := fmt.Sprintf("node-%d", i)
		st, err := dirstore.New(filepath.Join(root, "nodes", name), dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stores[name] = st
		members = append(members, remote.Member{Name: name, Store: remote.Wrap(st, func(ctx context.Context, c remote.Call, next func(context.Context) error) error {
			if c.Op != "put" || !armed.Load() || !strings.HasPrefix(c.Name, "shards/") || c.Size < 40<<10 {
				return next(ctx)
			}
			seg, _, _ := strings.Cut(strings.TrimPrefix(c.Name, "shards/"), ".")
			mu.Lock()
			isFirst := first == ""
			if isFirst {
				first, segName = name, seg
			}
			mine := seg == segName
			mu.Unlock()
			if isFirst {
				err := next(ctx)
				close(firstOK)
				return err
			}
			if mine {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return next(ctx)
		})})
	}
	defer func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}()
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer, ChunkSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(root, "journal"), Grid: g, Meta: g, Sealer: sealer,
		BlockSize: 64 << 10, MetaInterval: time.Hour, Retention: &journal.Retention{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	write := func(name string, n int) {
		a, err := j.Mknod(ctx, journal.RootIno, name, syscall.S_IFREG|0o644, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		rand.Read(b)
		if _, err := j.WriteAt(ctx, a.Ino, b, 0); err != nil {
			t.Fatal(err)
		}
		if err := j.Flush(ctx, a.Ino); err != nil {
			t.Fatal(err)
		}
	}
	write("keep", 300<<10)
	write("drop", 1<<20)
	if err := j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Unlink(ctx, journal.RootIno, "drop"); err != nil {
		t.Fatal(err)
	}
	if err := j.SyncGrid(ctx); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	gcDone := make(chan error, 1)
	go func() {
		st, err := j.CollectGarbage(ctx, journal.GCOptions{})
		t.Logf("gc: %+v", st)
		gcDone <- err
	}()
	select {
	case <-firstOK:
	case err := <-gcDone:
		t.Fatalf("gc ended before a compaction shard was stored: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no compaction shard in 20 s")
	}
	mu.Lock()
	d := first
	mu.Unlock()
	if err := g.SetDraining(d, true); err != nil {
		t.Fatal(err)
	}
	drained := make(chan error, 1)
	go func() { drained <- repair.New(repair.Options{Grid: g, Journal: j}).Drain(ctx, d, nil) }()
	time.Sleep(500 * time.Millisecond)
	released.Store(true)
	close(release)
	if err := <-gcDone; err != nil {
		t.Fatalf("gc: %v", err)
	}
	derr := <-drained
	t.Logf("drain: %v", derr)
	segs, err := j.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		for i, n := range s.Info.Nodes {
			if n == "" {
				continue
			}
			if _, err := stores[n].Stat(ctx, remote.ShardName(s.Info.ID, i)); errors.Is(err, remote.ErrNotFound) {
				t.Errorf("segment %s names %s for shard %d (drained: %s), which has no such object (%d of %d counted stored)",
					s.Info.ID, n, i, d, s.Info.Stored(), len(s.Info.Nodes))
			}
		}
	}
}
