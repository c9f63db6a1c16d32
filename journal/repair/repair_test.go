package repair_test

import (
	"bytes"
	"context"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/repair"
	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/faulty"
)

// drive is a journal over a real grid of six dir stores, k=4 m=2.
type drive struct {
	j      *journal.Journal
	g      *remote.Grid
	nodes  string
	faults []*faulty.Store // one per node, no rules: each can be taken down
}

func newDrive(t *testing.T) *drive { return newDriveWith(t, nil) }

// newDriveWith is newDrive with the members extra returns (given the
// directory that holds the nodes' directories) after the six.
func newDriveWith(t *testing.T, extra func(nodes string) []remote.Member) *drive {
	t.Helper()
	return newDriveFull(t, extra, nil, nil)
}

// newDriveFull is newDriveWith with each of the six stores wrapped by
// wrap (around the faulty one, when set) and the journal's options
// changed by opts (when set; the grid is in them).
func newDriveFull(t *testing.T, extra func(nodes string) []remote.Member, wrap func(remote.Store) remote.Store, opts func(*journal.Options)) *drive {
	t.Helper()
	root := t.TempDir()
	sealer, err := remote.NewSealer(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var members []remote.Member
	var faults []*faulty.Store
	for i := range 6 {
		name := fmt.Sprintf("node-%d", i)
		st, err := dirstore.New(filepath.Join(root, "nodes", name), dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		f := faulty.New(st, faulty.Options{Name: name})
		faults = append(faults, f)
		var s remote.Store = f
		if wrap != nil {
			s = wrap(f)
		}
		members = append(members, remote.Member{Name: name, Store: s})
	}
	if extra != nil {
		members = append(members, extra(filepath.Join(root, "nodes"))...)
	}
	g, err := remote.NewGrid(remote.GridOptions{K: 4, M: 2, Members: members, Sealer: sealer, ChunkSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	o := journal.Options{Dir: filepath.Join(root, "journal"), Grid: g, Sealer: sealer, BlockSize: 64 << 10}
	if opts != nil {
		opts(&o)
	}
	j, err := journal.Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return &drive{j: j, g: g, nodes: filepath.Join(root, "nodes"), faults: faults}
}

// write makes a file and waits until it is on the grid.
func (d *drive) write(t *testing.T, name string, data []byte) {
	t.Helper()
	ctx := t.Context()
	a, err := d.j.Mknod(ctx, journal.RootIno, name, syscall.S_IFREG|0o644, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.j.WriteAt(ctx, a.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.j.Flush(ctx, a.Ino); err != nil {
		t.Fatal(err)
	}
	if err := d.j.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
}

// onlySegment returns the drive's one segment, which must hold data (a
// write's, before any metadata reached the grid).
func (d *drive) onlySegment(t *testing.T) *remote.SegmentInfo {
	t.Helper()
	segs, err := d.j.Segments(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].MetaSeq != 0 {
		t.Fatalf("segments after one write: %d, want one of data", len(segs))
	}
	return segs[0].Info
}

// shardPath is the file of seg's shard i on its node's disk.
func (d *drive) shardPath(seg *remote.SegmentInfo, i int) string {
	return filepath.Join(d.nodes, seg.Nodes[i], filepath.FromSlash(remote.ShardName(seg.ID, i)))
}

// TestRunRepairsSoon: a segment stored short while a node is down is
// repaired by the background loop soon after the node comes back, not an
// Interval later; the passes that fail while it is down back off.
func TestRunRepairsSoon(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	d := newDrive(t)
	r := repair.New(repair.Options{Grid: d.g, Journal: d.j, Interval: time.Hour, Soon: 20 * time.Millisecond})
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the first pass", func() bool { return !r.Stats().LastPass.IsZero() })

	d.faults[2].SetDown(true)
	d.write(t, "f", bytes.Repeat([]byte{7}, 100_000))
	if n := d.j.Stats().RepairOwed; n == 0 {
		t.Fatal("no segment stored short with a node down")
	}
	// With the node down a pass cannot repair (every other node holds a
	// shard): passes run and fail, and back off.
	waitFor(t, "a pass that fails while the node is down", func() bool { return r.Stats().LastError != "" })
	d.faults[2].SetDown(false)
	waitFor(t, "the repair once the node is back", func() bool { return d.j.Stats().RepairOwed == 0 })
	if st := r.Stats(); st.Repaired == 0 {
		t.Errorf("owed 0 but nothing repaired: %+v", st)
	}
}

// waitFor polls cond every 10 ms, for 20 s at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20 s for %s", what)
		}
	}
}

// TestCheckRepairRecords: a lost node makes every file degraded; a check
// with repair rebuilds the shards, records the new node lists in the
// journal (a fresh read of the segments agrees) and leaves every file
// healthy; the background pass finds nothing more to do.
func TestCheckRepairRecords(t *testing.T) {
	ctx := context.Background()
	d := newDrive(t)
	for i := range 3 {
		d.write(t, fmt.Sprintf("f%d", i), bytes.Repeat([]byte{byte(i + 1)}, 100_000+i))
	}
	r := repair.New(repair.Options{Grid: d.g, Journal: d.j})
	rep, err := r.Check(ctx, repair.CheckRequest{}, nil)
	if err != nil || rep.Healthy != 3 {
		t.Fatalf("fresh: %+v %v", rep, err)
	}
	if err := os.RemoveAll(filepath.Join(d.nodes, "node-3")); err != nil {
		t.Fatal(err)
	}
	rep, err = r.Check(ctx, repair.CheckRequest{Path: "f1"}, nil)
	if err != nil || rep.Degraded != 1 || len(rep.Files) != 1 || rep.Files[0].Shards != 5 || rep.Files[0].Path != "/f1" {
		t.Fatalf("after losing a node, f1: %+v %v", rep, err)
	}
	rep, err = r.Check(ctx, repair.CheckRequest{Verify: true, Repair: true}, nil)
	if err != nil || rep.Repaired != rep.Segments || rep.RepairFailed != 0 || len(rep.Problems) != rep.Segments {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	segs, err := d.j.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if h := d.g.CheckSegment(ctx, s.Info, remote.CheckOptions{Verify: true}); !h.Healthy() {
			t.Errorf("segment %s as recorded: %d of 6 intact", s.Info.ID, h.OK)
		}
	}
	if err := r.Background(ctx, false); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Owed != 0 || st.Repaired != int64(len(segs)) {
		t.Errorf("after the background pass: %+v", st)
	}
}

// TestCheckFindsAliases: a node that is another node's directory behind a
// symlink (one store under two names) is reported by a whole drive's
// check, once, against the first of the two; a check of one path does
// not look.
func TestCheckFindsAliases(t *testing.T) {
	ctx := t.Context()
	d := newDriveWith(t, func(nodes string) []remote.Member {
		dir := filepath.Join(nodes, "node-6")
		if err := os.Symlink(filepath.Join(nodes, "node-2"), dir); err != nil {
			t.Fatal(err)
		}
		st, err := dirstore.New(dir, dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return []remote.Member{{Name: "node-6", Store: st}}
	})
	d.write(t, "f", bytes.Repeat([]byte{9}, 100_000))
	r := repair.New(repair.Options{Grid: d.g, Journal: d.j})
	rep, err := r.Check(ctx, repair.CheckRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []remote.Alias{{Node: "node-6", SameAs: "node-2"}}; fmt.Sprint(rep.Aliases) != fmt.Sprint(want) {
		t.Errorf("aliases %v, want %v", rep.Aliases, want)
	}
	rep, err = r.Check(ctx, repair.CheckRequest{Path: "f"}, nil)
	if err != nil || len(rep.Aliases) != 0 {
		t.Errorf("check of one file: aliases %v, err %v", rep.Aliases, err)
	}
	err = filepath.WalkDir(filepath.Join(d.nodes, "node-2"), func(p string, e iofs.DirEntry, err error) error {
		if err == nil && strings.Contains(e.Name(), "probe-") {
			t.Errorf("probe object %s left on the node", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCancelledRepairLeavesNoError: a repair cut short (node drain or
// check --repair interrupted with Ctrl-C) is not a failure of the
// segment it was on: the repairer's last error, which status prints,
// stays empty rather than claiming the segment has no usable shards.
func TestCancelledRepairLeavesNoError(t *testing.T) {
	d := newDrive(t)
	d.write(t, "f", bytes.Repeat([]byte{9}, 100_000))
	if err := os.RemoveAll(filepath.Join(d.nodes, "node-3")); err != nil {
		t.Fatal(err)
	}
	for _, f := range d.faults {
		f.SetRules(faulty.Rule{Ops: faulty.OpGet, Prefix: "shards/", Action: faulty.Hang})
	}
	r := repair.New(repair.Options{Grid: d.g, Journal: d.j})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := r.Check(ctx, repair.CheckRequest{Repair: true}, nil); err == nil {
		t.Fatal("a check --repair whose reads hang until cancelled succeeded")
	}
	if st := r.Stats(); st.LastError != "" {
		t.Errorf("after a cancelled repair, last error %q; want none", st.LastError)
	}
}

// TestCheckPathNotUTF8: a file whose name is not UTF-8 (Latin-1 "\xe9")
// is named in a check's report by path_href too, its bytes %-encoded:
// check --json and the web app's report showed it with U+FFFD only.
func TestCheckPathNotUTF8(t *testing.T) {
	d := newDrive(t)
	d.write(t, "caf\xe9", bytes.Repeat([]byte{9}, 1000))
	d.write(t, "café", bytes.Repeat([]byte{8}, 1000))
	rep, err := repair.New(repair.Options{Grid: d.g, Journal: d.j}).Check(t.Context(), repair.CheckRequest{}, nil)
	if err != nil || len(rep.Files) != 2 {
		t.Fatalf("check: %+v %v", rep, err)
	}
	for _, f := range rep.Files {
		want := map[string]string{"/caf\xe9": "/caf%E9", "/café": ""}[f.Path]
		if f.PathHref != want {
			t.Errorf("file %q: path_href %q, want %q", f.Path, f.PathHref, want)
		}
	}
}

// TestObserveRecounts: Observe of a node gone down, back, or back with
// an empty disk has Run survey again without a pass, so Stats().Owed
// follows the grid between passes (an hour apart here); the first look
// is only a baseline.
func TestObserveRecounts(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	d := newDrive(t)
	d.write(t, "f", bytes.Repeat([]byte{5}, 100_000))
	segs, err := d.j.Segments(ctx)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %d, %v", len(segs), err)
	}
	r := repair.New(repair.Options{Grid: d.g, Journal: d.j, Interval: time.Hour})
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the first pass", func() bool { return !r.Stats().LastPass.IsZero() })
	passes := r.Stats().LastPass
	r.Observe(d.g.Health(ctx))

	d.faults[1].SetDown(true)
	r.Observe(d.g.Health(ctx))
	waitFor(t, "the count with a node down", func() bool { return r.Stats().Owed == len(segs) })
	d.faults[1].SetDown(false)
	r.Observe(d.g.Health(ctx))
	waitFor(t, "the count with the node back", func() bool { return r.Stats().Owed == 0 })

	// The node's shards gone while it stays up (its scrubber moved them
	// aside, say): it holds fewer objects.
	st := d.faults[4].Inner()
	objs, err := st.List(ctx, "shards/", "", 1000)
	if err != nil || len(objs) == 0 {
		t.Fatalf("node-4 lists %d shards, %v", len(objs), err)
	}
	for _, o := range objs {
		if err := st.Delete(ctx, o.Name); err != nil {
			t.Fatal(err)
		}
	}
	r.Observe(d.g.Health(ctx))
	waitFor(t, "the count with a node emptied", func() bool { return r.Stats().Owed == len(segs) })
	if st := r.Stats(); !st.LastPass.Equal(passes) || st.Repaired != 0 {
		t.Errorf("Observe ran a repair: %+v", st)
	}
}

// inGC marks the context of the collection the listing hook runs.
type inGC struct{}

// listHook is a node store whose first listing, once armed, runs fn
// first; every other listing (but fn's own) waits until fn is done. A
// check's survey then sees the nodes as they are after fn, all of them.
type listHook struct {
	remote.Store
	armed *atomic.Bool
	done  chan struct{}
	fn    func(ctx context.Context)
}

func (h *listHook) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	if ctx.Value(inGC{}) == nil {
		if h.armed.CompareAndSwap(true, false) {
			h.fn(context.WithValue(ctx, inGC{}, true))
			close(h.done)
		}
		select {
		case <-h.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.Store.List(ctx, prefix, after, limit)
}

// TestCheckSkipsSegmentGCDropped: a whole drive's check takes every
// segment the journal names, garbage not collected yet included; gc
// dropping one between the check's list of segments and its survey of
// the nodes (its rows go first, then its shards) does not make the check
// call that segment unrecoverable: it is no longer the drive's.
func TestCheckSkipsSegmentGCDropped(t *testing.T) {
	ctx := t.Context()
	var armed atomic.Bool
	done := make(chan struct{})
	var j *journal.Journal
	var gc *journal.GCStats
	var gcErr error
	collect := func(ctx context.Context) { gc, gcErr = j.CollectGarbage(ctx, journal.GCOptions{}) }
	// Only the newest checkpoint is kept, and none is shipped: the
	// deleted file's blocks are garbage no snapshot keeps.
	d := newDriveFull(t, nil, func(s remote.Store) remote.Store {
		return &listHook{Store: s, armed: &armed, done: done, fn: collect}
	}, func(o *journal.Options) {
		o.Meta, o.MetaInterval, o.Retention = o.Grid.(*remote.Grid), time.Hour, &journal.Retention{}
	})
	j = d.j
	d.write(t, "gone", bytes.Repeat([]byte{1}, 100_000))
	d.write(t, "kept", bytes.Repeat([]byte{2}, 100_000))
	if err := j.Unlink(ctx, journal.RootIno, "gone"); err != nil {
		t.Fatal(err)
	}
	segs, err := j.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}

	armed.Store(true)
	r := repair.New(repair.Options{Grid: d.g, Journal: j})
	rep, err := r.Check(ctx, repair.CheckRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gcErr != nil || gc == nil || gc.DeadSegments != 1 {
		t.Fatalf("the collection during the check: %+v %v; want one segment dropped", gc, gcErr)
	}
	// The dropped segment is left out, or, when its shards were still on
	// the nodes as they were listed (a loaded machine: they go after its
	// rows), counted whole; never unrecoverable.
	if rep.SegmentsUnrecoverable != 0 || len(rep.SnapshotUnrecoverable) != 0 || rep.Segments < len(segs)-1 || rep.Segments > len(segs) || rep.Healthy != 1 {
		t.Errorf("check while gc dropped a segment: %d of %d segments unrecoverable (%v), %d files healthy; want none, %d or %d segments, 1 file",
			rep.SegmentsUnrecoverable, rep.Segments, rep.SnapshotUnrecoverable, rep.Healthy, len(segs)-1, len(segs))
	}
}

// TestCheckRepairNoRoomCounted: with two of six nodes down (k=4 m=2),
// every segment has its k shards to read but no node to take its two
// missing ones: the failed repairs are counted as finding no room, which a
// node started or added gets past; once the nodes are back, nothing is
// left to repair.
func TestCheckRepairNoRoomCounted(t *testing.T) {
	ctx := t.Context()
	d := newDrive(t)
	d.write(t, "f", bytes.Repeat([]byte{7}, 100_000))
	d.faults[1].SetDown(true)
	d.faults[4].SetDown(true)
	r := repair.New(repair.Options{Grid: d.g, Journal: d.j})
	rep, err := r.Check(ctx, repair.CheckRequest{Repair: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepairFailed == 0 || rep.RepairNoRoom != rep.RepairFailed || len(rep.OutOfReach) != 0 {
		t.Fatalf("two of six nodes down: %d failed repairs, %d finding no room (want all, and some), out of reach %v; errors %v",
			rep.RepairFailed, rep.RepairNoRoom, rep.OutOfReach, rep.RepairErrors)
	}
	d.faults[1].SetDown(false)
	d.faults[4].SetDown(false)
	rep, err = r.Check(ctx, repair.CheckRequest{Repair: true}, nil)
	if err != nil || rep.RepairFailed != 0 || rep.RepairNoRoom != 0 || rep.Healthy != 1 {
		t.Fatalf("the nodes back: %d failed, %d no room, %d healthy files (%v)", rep.RepairFailed, rep.RepairNoRoom, rep.Healthy, err)
	}
}
