package repair_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
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

// TestDrainWaitsForUploadInFlight: an upload that stored a shard on a
// node before the node was marked draining, and is not recorded yet,
// is in what the drain moves; the drain does not delete that shard as a
// leftover while the journal goes on to record the segment naming it.
func TestDrainWaitsForUploadInFlight(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	sealer, err := remote.NewSealer(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	// Once armed, the first shard Put goes through and is named in
	// first; every later one waits for release.
	var (
		armed    atomic.Bool
		firstMu  sync.Mutex
		first    string
		firstOK  = make(chan struct{})
		release  = make(chan struct{})
		stores   = map[string]*dirstore.Store{}
		members  []remote.Member
		released atomic.Bool
	)
	for i := range 7 {
		name := fmt.Sprintf("node-%d", i)
		st, err := dirstore.New(filepath.Join(root, "nodes", name), dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stores[name] = st
		members = append(members, remote.Member{Name: name, Store: remote.Wrap(st, func(ctx context.Context, c remote.Call, next func(context.Context) error) error {
			if c.Op != "put" || !armed.Load() || !strings.HasPrefix(c.Name, "shards/") {
				return next(ctx)
			}
			firstMu.Lock()
			isFirst := first == ""
			if isFirst {
				first = name
			}
			firstMu.Unlock()
			if isFirst {
				err := next(ctx)
				close(firstOK)
				return err
			}
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
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
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(root, "journal"), Grid: g, Sealer: sealer, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })

	armed.Store(true)
	wrote := make(chan error, 1)
	go func() {
		a, err := j.Mknod(ctx, journal.RootIno, "f", syscall.S_IFREG|0o644, 0, 0, 0)
		if err == nil {
			_, err = j.WriteAt(ctx, a.Ino, bytes.Repeat([]byte{7}, 100_000), 0)
		}
		if err == nil {
			err = j.Flush(ctx, a.Ino)
		}
		if err == nil {
			err = j.WaitDurable(ctx)
		}
		wrote <- err
	}()
	select {
	case <-firstOK:
	case err := <-wrote:
		t.Fatalf("the write ended before any shard was stored: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no shard stored in 20 s")
	}
	firstMu.Lock()
	d := first
	firstMu.Unlock()
	if err := g.SetDraining(d, true); err != nil {
		t.Fatal(err)
	}
	drained := make(chan error, 1)
	go func() {
		drained <- repair.New(repair.Options{Grid: g, Journal: j}).Drain(ctx, d, nil)
	}()
	time.Sleep(300 * time.Millisecond) // the drain, without waiting, would be done by now
	released.Store(true)
	close(release)
	if err := <-wrote; err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	segs, err := j.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		for i, n := range s.Info.Nodes {
			if n == "" {
				continue
			}
			if n == d {
				t.Errorf("segment %s names drained %s for shard %d", s.Info.ID, d, i)
			}
			if _, err := stores[n].Stat(ctx, remote.ShardName(s.Info.ID, i)); errors.Is(err, remote.ErrNotFound) {
				t.Errorf("segment %s names %s for shard %d, which has no such object (%d of %d counted stored)",
					s.Info.ID, n, i, s.Info.Stored(), len(s.Info.Nodes))
			}
		}
	}
	if len(segs) == 0 || !slices.ContainsFunc(segs, func(s journal.SegmentRow) bool { return s.Info.Stored() > 0 }) {
		t.Error("no segment recorded")
	}
}

// TestDrainOfDownNodeSaysSo: a drain of a node that is down moves every
// segment off it (from the other shards) and then cannot delete what is
// left there: it says so with ErrDrainedNodeDown, so the command can tell
// the operator to start the node or remove it, not to run the same drain
// again, which fails the same way while the node is down.
func TestDrainOfDownNodeSaysSo(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	sealer, err := remote.NewSealer(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	var members []remote.Member
	for i := range 7 {
		name := fmt.Sprintf("node-%d", i)
		st, err := dirstore.New(filepath.Join(root, "nodes", name), dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var s remote.Store = st
		if i == 0 {
			s = remote.Wrap(st, func(ctx context.Context, c remote.Call, next func(context.Context) error) error {
				if down.Load() {
					return fmt.Errorf("%s %s: %w", name, c.Op, remote.ErrUnavailable)
				}
				return next(ctx)
			})
		}
		members = append(members, remote.Member{Name: name, Store: s})
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer, ChunkSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(root, "journal"), Grid: g, Sealer: sealer, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	for i := range 8 {
		a, err := j.Mknod(ctx, journal.RootIno, fmt.Sprintf("f%d", i), syscall.S_IFREG|0o644, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.WriteAt(ctx, a.Ino, bytes.Repeat([]byte{byte(i)}, 100_000), 0); err != nil {
			t.Fatal(err)
		}
		if err := j.Flush(ctx, a.Ino); err != nil {
			t.Fatal(err)
		}
		if err := j.WaitDurable(ctx); err != nil {
			t.Fatal(err)
		}
	}
	down.Store(true)
	if err := g.SetDraining("node-0", true); err != nil {
		t.Fatal(err)
	}
	err = repair.New(repair.Options{Grid: g, Journal: j}).Drain(ctx, "node-0", nil)
	if !errors.Is(err, repair.ErrDrainedNodeDown) {
		t.Fatalf("Drain of a down node: %v, want ErrDrainedNodeDown", err)
	}
	segs, err := j.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if slices.Contains(s.Info.Nodes, "node-0") {
			t.Errorf("segment %s still names node-0 after the drain", s.Info.ID)
		}
	}
}
