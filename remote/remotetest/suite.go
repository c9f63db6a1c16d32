package remotetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// RunStoreTests runs the conformance suite against the stores newStore
// makes. Each subtest asks for a fresh, empty store; newStore registers
// any cleanup with t.Cleanup.
func RunStoreTests(t *testing.T, newStore func(t *testing.T) remote.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s remote.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"RangedGet", testRangedGet},
		{"RangePastEnd", testRangePastEnd},
		{"NotFound", testNotFound},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"ListPaging", testListPaging},
		{"ListOrder", testListOrder},
		{"InvalidNames", testInvalidNames},
		{"CorruptUpload", testCorruptUpload},
		{"Concurrent", testConcurrent},
		{"Cancelled", testCancelled},
		{"Info", testInfo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, s remote.Store, name string, obj []byte) {
	t.Helper()
	if err := s.Put(ctxT(t), name, obj); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(obj), err)
	}
}

func mustGet(t *testing.T, s remote.Store, name string, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if err := s.Get(ctxT(t), name, off, p); err != nil {
		t.Fatalf("Get(%q, off %d, len %d): %v", name, off, n, err)
	}
	return p
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

func testRoundTrip(t *testing.T, s remote.Store) {
	obj := Object(t, 1, 3*shard.MinChunkSize+123, 0)
	mustPut(t, s, "shards/rt.0", obj)
	if got := mustGet(t, s, "shards/rt.0", 0, len(obj)); !bytes.Equal(got, obj) {
		t.Fatalf("Get returned different bytes than were Put (%d bytes)", len(obj))
	}
	oi, err := s.Stat(ctxT(t), "shards/rt.0")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if oi.Size != int64(len(obj)) || oi.Name != "shards/rt.0" {
		t.Fatalf("Stat = %+v, want name shards/rt.0 size %d", oi, len(obj))
	}
	if oi.ModTime.IsZero() || time.Since(oi.ModTime) > time.Hour || time.Until(oi.ModTime) > time.Hour {
		t.Fatalf("Stat ModTime = %v, not near now", oi.ModTime)
	}
	// A top-level name and a meta-style name.
	meta := Object(t, 2, 100, 0)
	mustPut(t, s, "root", meta)
	if got := mustGet(t, s, "root", 0, len(meta)); !bytes.Equal(got, meta) {
		t.Fatal("Get(root) returned different bytes")
	}
	// A bigger object with the default chunk size.
	big := Object(t, 3, 1<<20+shard.DefaultChunkSize/2, shard.DefaultChunkSize)
	mustPut(t, s, "a/b/c", big)
	if got := mustGet(t, s, "a/b/c", 0, len(big)); !bytes.Equal(got, big) {
		t.Fatal("Get(a/b/c) returned different bytes")
	}
}

func testRangedGet(t *testing.T, s remote.Store) {
	cs := shard.MinChunkSize
	obj := Object(t, 4, 5*cs+77, cs)
	hl := HeaderLen(t, obj)
	size := len(obj)
	mustPut(t, s, "rg", obj)
	ranges := []struct {
		name string
		off  int
		n    int
	}{
		{"first byte", 0, 1},
		{"inside header", 10, 20},
		{"whole header", 0, hl},
		{"header tail", hl - 8, 8},
		{"straddles header and payload", hl - 5, 10},
		{"first payload byte", hl, 1},
		{"first chunk exactly", hl, cs},
		{"straddles chunks 0 and 1", hl + cs - 10, 20},
		{"straddles three chunks", hl + cs - 1, cs + 2},
		{"aligned two chunks", hl + cs, 2 * cs},
		{"middle of a chunk", hl + 2*cs + 100, 50},
		{"last partial chunk", hl + 5*cs, 77},
		{"last byte", size - 1, 1},
		{"tail across last boundary", size - 100, 100},
		{"whole object", 0, size},
		{"whole payload", hl, size - hl},
	}
	for _, r := range ranges {
		got := mustGet(t, s, "rg", int64(r.off), r.n)
		if !bytes.Equal(got, obj[r.off:r.off+r.n]) {
			t.Errorf("%s: Get(off %d, len %d) returned wrong bytes", r.name, r.off, r.n)
		}
	}
}

func testRangePastEnd(t *testing.T, s remote.Store) {
	obj := Object(t, 5, 1000, 0)
	size := int64(len(obj))
	mustPut(t, s, "pe", obj)
	for _, r := range []struct{ off, n int64 }{
		{size - 1, 2}, {size, 1}, {size + 100, 10}, {0, size + 1}, {-1, 1},
	} {
		p := make([]byte, r.n)
		err := s.Get(ctxT(t), "pe", r.off, p)
		wantErr(t, fmt.Sprintf("Get(off %d, len %d) of %d bytes", r.off, r.n, size), err, remote.ErrRange)
	}
}

func testNotFound(t *testing.T, s remote.Store) {
	ctx := ctxT(t)
	wantErr(t, "Get missing", s.Get(ctx, "nope", 0, make([]byte, 10)), remote.ErrNotFound)
	_, err := s.Stat(ctx, "nope")
	wantErr(t, "Stat missing", err, remote.ErrNotFound)
	_, err = s.Stat(ctx, "shards/nope.1")
	wantErr(t, "Stat missing nested", err, remote.ErrNotFound)
	if err := s.Delete(ctx, "nope"); err != nil {
		t.Fatalf("Delete of a missing name: %v, want nil", err)
	}
	mustPut(t, s, "dir/x", Object(t, 6, 10, 0))
	_, err = s.Stat(ctx, "dir")
	wantErr(t, "Stat of a name that only prefixes objects", err, remote.ErrNotFound)
}

func testOverwrite(t *testing.T, s remote.Store) {
	a := Object(t, 7, 3000, 0)
	b := Object(t, 8, 9000, 0)
	mustPut(t, s, "ow", a)
	mustPut(t, s, "ow", b)
	if got := mustGet(t, s, "ow", 0, len(b)); !bytes.Equal(got, b) {
		t.Fatal("after overwrite Get returned the old or mixed bytes")
	}
	oi, err := s.Stat(ctxT(t), "ow")
	if err != nil || oi.Size != int64(len(b)) {
		t.Fatalf("Stat after overwrite = %+v, %v; want size %d", oi, err, len(b))
	}
	objs, err := s.List(ctxT(t), "", "", 100)
	if err != nil || len(objs) != 1 {
		t.Fatalf("List after overwrite = %v, %v; want one object", objs, err)
	}
	// A smaller object replacing a larger one: no stale tail.
	mustPut(t, s, "ow", a)
	if got := mustGet(t, s, "ow", 0, len(a)); !bytes.Equal(got, a) {
		t.Fatal("after overwrite with a smaller object Get returned wrong bytes")
	}
	wantErr(t, "Get past the new end", s.Get(ctxT(t), "ow", int64(len(a)), make([]byte, 1)), remote.ErrRange)
}

func testDelete(t *testing.T, s remote.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "shards/del.0", Object(t, 9, 100, 0))
	mustPut(t, s, "shards/keep.0", Object(t, 10, 100, 0))
	if err := s.Delete(ctx, "shards/del.0"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Stat(ctx, "shards/del.0")
	wantErr(t, "Stat after Delete", err, remote.ErrNotFound)
	wantErr(t, "Get after Delete", s.Get(ctx, "shards/del.0", 0, make([]byte, 1)), remote.ErrNotFound)
	if err := s.Delete(ctx, "shards/del.0"); err != nil {
		t.Fatalf("second Delete: %v, want nil", err)
	}
	if _, err := s.Stat(ctx, "shards/keep.0"); err != nil {
		t.Fatalf("Delete removed a neighbour: %v", err)
	}
	objs, err := s.List(ctx, "", "", 10)
	if err != nil || len(objs) != 1 || objs[0].Name != "shards/keep.0" {
		t.Fatalf("List after Delete = %v, %v; want [shards/keep.0]", objs, err)
	}
}

// listAll pages through List with the given page size and checks pages.
func listAll(t *testing.T, s remote.Store, prefix string, page int) []remote.ObjectInfo {
	t.Helper()
	var all []remote.ObjectInfo
	after := ""
	for i := 0; ; i++ {
		objs, err := s.List(ctxT(t), prefix, after, page)
		if err != nil {
			t.Fatalf("List(%q, after %q, %d): %v", prefix, after, page, err)
		}
		if len(objs) > page {
			t.Fatalf("List(limit %d) returned %d objects", page, len(objs))
		}
		if len(objs) == 0 {
			return all
		}
		for _, o := range objs {
			if o.Name <= after {
				t.Fatalf("List(after %q) returned %q, not after it", after, o.Name)
			}
			if !strings.HasPrefix(o.Name, prefix) {
				t.Fatalf("List(prefix %q) returned %q", prefix, o.Name)
			}
			after = o.Name
		}
		all = append(all, objs...)
		if i > 10000 {
			t.Fatal("List never ends")
		}
	}
}

func names(objs []remote.ObjectInfo) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

func testListPaging(t *testing.T, s remote.Store) {
	var want []string
	sizes := map[string]int{}
	for i := range 23 {
		n := fmt.Sprintf("shards/seg%02d.%d", i, i%6)
		obj := Object(t, uint64(100+i), 50+i, 0)
		mustPut(t, s, n, obj)
		want = append(want, n)
		sizes[n] = len(obj)
	}
	mustPut(t, s, "meta/root", Object(t, 200, 10, 0))
	mustPut(t, s, "key", Object(t, 201, 10, 0))
	mustPut(t, s, "shardsx", Object(t, 202, 10, 0))
	slices.Sort(want)
	for _, page := range []int{1, 7, 23, 1000} {
		got := listAll(t, s, "shards/", page)
		if !slices.Equal(names(got), want) {
			t.Fatalf("paging by %d: got %v, want %v", page, names(got), want)
		}
		for _, o := range got {
			if o.Size != int64(sizes[o.Name]) {
				t.Fatalf("List size of %s = %d, want %d", o.Name, o.Size, sizes[o.Name])
			}
		}
	}
	all := listAll(t, s, "", 5)
	if len(all) != 26 {
		t.Fatalf("List of everything: %d objects, want 26: %v", len(all), names(all))
	}
	if got := names(listAll(t, s, "shards", 100)); len(got) != 24 || got[23] != "shardsx" {
		t.Fatalf("List(prefix \"shards\") = %v, want 23 shards/... then shardsx", got)
	}
	if got := listAll(t, s, "shards/seg1", 3); len(got) != 10 {
		t.Fatalf("List(prefix shards/seg1) = %v, want 10 objects", names(got))
	}
	if got := listAll(t, s, "nothing/", 3); len(got) != 0 {
		t.Fatalf("List(prefix nothing/) = %v, want none", names(got))
	}
	objs, err := s.List(ctxT(t), "shards/", want[len(want)-1], 10)
	if err != nil || len(objs) != 0 {
		t.Fatalf("List after the last name = %v, %v; want empty", objs, err)
	}
	objs, err = s.List(ctxT(t), "shards/", "shards/seg05", 2)
	if err != nil || len(objs) != 2 || objs[0].Name != "shards/seg05.5" || objs[1].Name != "shards/seg06.0" {
		t.Fatalf("List(after shards/seg05, limit 2) = %v, %v; want [shards/seg05.5 shards/seg06.0]", names(objs), err)
	}
}

func testListOrder(t *testing.T, s remote.Store) {
	// Names whose order depends on '/' sorting after '-' and '.' and
	// before digits and letters: a store that walks directories must still
	// list in byte order of the full names.
	in := []string{"o/a/b", "o/a-b", "o/a.b", "o/a0", "o/a_b", "o/A", "o/b", "o/Z", "o/a-", "o/a/-"}
	for i, n := range in {
		mustPut(t, s, n, Object(t, uint64(300+i), 20, 0))
	}
	want := slices.Clone(in)
	slices.Sort(want)
	for _, page := range []int{1, 2, 100} {
		if got := names(listAll(t, s, "o/", page)); !slices.Equal(got, want) {
			t.Fatalf("paging by %d: got %v, want %v", page, got, want)
		}
	}
	if got := names(listAll(t, s, "o/a/", 2)); !slices.Equal(got, []string{"o/a/-", "o/a/b"}) {
		t.Fatalf("List(prefix o/a/) = %v", got)
	}
}

// BadNames are names every store must refuse with ErrInvalidName.
var BadNames = []string{
	"", "../x", "..", ".", "/abs", "a//b", "a/", ".hidden", "a/../b", "a/./b",
	"a\\b", "..\\x", "a\x00b", "a b", "a/b/c/d", "é", "a%2fb", "a?b", "a#b",
	strings.Repeat("x", remote.MaxNameLen+1),
}

func testInvalidNames(t *testing.T, s remote.Store) {
	ctx := ctxT(t)
	obj := Object(t, 11, 100, 0)
	for _, n := range BadNames {
		wantErr(t, fmt.Sprintf("Put(%q)", n), s.Put(ctx, n, obj), remote.ErrInvalidName)
		wantErr(t, fmt.Sprintf("Get(%q)", n), s.Get(ctx, n, 0, make([]byte, 1)), remote.ErrInvalidName)
		_, err := s.Stat(ctx, n)
		wantErr(t, fmt.Sprintf("Stat(%q)", n), err, remote.ErrInvalidName)
		wantErr(t, fmt.Sprintf("Delete(%q)", n), s.Delete(ctx, n), remote.ErrInvalidName)
	}
	objs, err := s.List(ctx, "", "", 100)
	if err != nil || len(objs) != 0 {
		t.Fatalf("after refused puts List = %v, %v; want empty", names(objs), err)
	}
}

func testCorruptUpload(t *testing.T, s remote.Store) {
	ctx := ctxT(t)
	good := Object(t, 12, 3*shard.MinChunkSize, 0)
	hl := HeaderLen(t, good)
	bad := map[string][]byte{
		"flipped payload byte": Flip(good, hl+shard.MinChunkSize+5),
		"flipped last byte":    Flip(good, len(good)-1),
		"flipped header byte":  Flip(good, 20),
		"flipped checksum":     Flip(good, shard.FixedLen+3),
		"truncated":            good[:len(good)-1],
		"extended":             append(slices.Clone(good), 0),
		"header only":          good[:hl],
		"garbage":              bytes.Repeat([]byte("x"), 500),
		"empty":                {},
	}
	for what, obj := range bad {
		wantErr(t, "Put of a "+what+" object", s.Put(ctx, "new", obj), remote.ErrCorrupt)
		_, err := s.Stat(ctx, "new")
		wantErr(t, "Stat after refused Put ("+what+")", err, remote.ErrNotFound)
	}
	// A refused overwrite keeps the object that was there.
	mustPut(t, s, "kept", good)
	for what, obj := range bad {
		wantErr(t, "overwrite with a "+what+" object", s.Put(ctx, "kept", obj), remote.ErrCorrupt)
	}
	if got := mustGet(t, s, "kept", 0, len(good)); !bytes.Equal(got, good) {
		t.Fatal("a refused overwrite changed the stored object")
	}
	objs, err := s.List(ctx, "", "", 100)
	if err != nil || len(objs) != 1 {
		t.Fatalf("List after refused puts = %v, %v; want only kept", names(objs), err)
	}
}

func testConcurrent(t *testing.T, s remote.Store) {
	ctx := ctxT(t)
	shared := Object(t, 13, 4*shard.MinChunkSize, 0)
	mustPut(t, s, "shared", shared)
	var g errgroup.Group
	g.SetLimit(8)
	for w := range 8 {
		g.Go(func() error {
			for i := range 4 {
				name := fmt.Sprintf("c/w%d.%d", w, i)
				obj := Object(t, uint64(1000+w*10+i), 1000+w*100+i, 0)
				if err := s.Put(ctx, name, obj); err != nil {
					return fmt.Errorf("Put %s: %w", name, err)
				}
				p := make([]byte, len(obj))
				if err := s.Get(ctx, name, 0, p); err != nil {
					return fmt.Errorf("Get %s: %w", name, err)
				}
				if !bytes.Equal(p, obj) {
					return fmt.Errorf("Get %s: wrong bytes", name)
				}
				off := (w*997 + i*131) % (len(shared) - 100)
				q := make([]byte, 100)
				if err := s.Get(ctx, "shared", int64(off), q); err != nil {
					return fmt.Errorf("Get shared: %w", err)
				}
				if !bytes.Equal(q, shared[off:off+100]) {
					return fmt.Errorf("Get shared at %d: wrong bytes", off)
				}
			}
			// Racing overwrites of one name: the result must be one whole
			// object, whichever won.
			return s.Put(ctx, "race", Object(t, uint64(w), 2000, 0))
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	oi, err := s.Stat(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, "race", 0, int(oi.Size))
	if _, _, err := shard.Verify(got); err != nil {
		t.Fatalf("racing overwrites left a mixed object: %v", err)
	}
	if n := len(listAll(t, s, "c/", 100)); n != 32 {
		t.Fatalf("List after concurrent puts: %d objects, want 32", n)
	}
	if ni, err := s.Info(ctx); err != nil || ni.Objects != 34 {
		t.Fatalf("Info after concurrent puts: %+v, %v; want 34 objects (32, shared, race)", ni, err)
	}
}

func testCancelled(t *testing.T, s remote.Store) {
	obj := Object(t, 14, 100, 0)
	mustPut(t, s, "there", obj)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	wantErr(t, "Put with a cancelled ctx", s.Put(ctx, "c1", obj), context.Canceled)
	wantErr(t, "Get with a cancelled ctx", s.Get(ctx, "there", 0, make([]byte, 10)), context.Canceled)
	_, err := s.Stat(ctx, "there")
	wantErr(t, "Stat with a cancelled ctx", err, context.Canceled)
	wantErr(t, "Delete with a cancelled ctx", s.Delete(ctx, "there"), context.Canceled)
	_, err = s.List(ctx, "", "", 10)
	wantErr(t, "List with a cancelled ctx", err, context.Canceled)
	_, err = s.Info(ctx)
	wantErr(t, "Info with a cancelled ctx", err, context.Canceled)
	if _, err := s.Stat(ctxT(t), "c1"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("a cancelled Put stored the object (Stat: %v)", err)
	}
	if _, err := s.Stat(ctxT(t), "there"); err != nil {
		t.Fatalf("a cancelled Delete removed the object (Stat: %v)", err)
	}
	// A deadline that expires mid-call ends the call promptly.
	dctx, dcancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer dcancel()
	<-dctx.Done()
	start := time.Now()
	err = s.Get(dctx, "there", 0, make([]byte, 10))
	wantErr(t, "Get past its deadline", err, context.DeadlineExceeded)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Get past its deadline took %v", d)
	}
}

func testInfo(t *testing.T, s remote.Store) {
	for i := range 3 {
		mustPut(t, s, fmt.Sprintf("info/o%d", i), Object(t, uint64(400+i), 100, 0))
	}
	ni, err := s.Info(ctxT(t))
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if ni.Objects != 3 {
		t.Fatalf("Info.Objects = %d, want 3", ni.Objects)
	}
	if ni.Capacity != -1 && (ni.Capacity <= 0 || ni.Free < 0 || ni.Free > ni.Capacity) {
		t.Fatalf("Info capacity %d free %d: want -1 or 0 <= free <= capacity > 0", ni.Capacity, ni.Free)
	}
	if ni.Version == "" {
		t.Fatal("Info.Version is empty")
	}
	if err := s.Delete(ctxT(t), "info/o1"); err != nil {
		t.Fatal(err)
	}
	if ni, err := s.Info(ctxT(t)); err != nil || ni.Objects != 2 {
		t.Fatalf("Info after a delete: %+v, %v; want 2 objects", ni, err)
	}
}
