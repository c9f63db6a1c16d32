package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/remotetest"
	"github.com/meshdrive/meshdrive/remote/shard"
)

func newStore(t *testing.T, dir string, o dirstore.Options) *dirstore.Store {
	t.Helper()
	s, err := dirstore.New(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCorruptOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, dirstore.Options{})
	ctx := t.Context()
	cs := shard.MinChunkSize
	obj := remotetest.Object(t, 1, 3*cs+10, cs)
	hl := remotetest.HeaderLen(t, obj)
	if err := s.Put(ctx, "shards/x.0", obj); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shards", "x.0")
	// Warm the header cache, then damage the payload in place.
	if err := s.Get(ctx, "shards/x.0", 0, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	bad := remotetest.Flip(obj, hl+cs+1)
	writeKeepTimes(t, path, bad)
	p := make([]byte, 20)
	if err := s.Get(ctx, "shards/x.0", int64(hl+cs-10), p); !errors.Is(err, remote.ErrCorrupt) {
		t.Fatalf("Get over a flipped byte: %v, want ErrCorrupt", err)
	}
	if !bytes.Equal(p, make([]byte, 20)) {
		t.Fatal("Get left bytes in p after a checksum failure")
	}
	// Aligned read into p directly: p must be cleared on failure too.
	q := make([]byte, cs)
	if err := s.Get(ctx, "shards/x.0", int64(hl+cs), q); !errors.Is(err, remote.ErrCorrupt) || !bytes.Equal(q, make([]byte, cs)) {
		t.Fatalf("aligned Get over a flipped byte: %v (p cleared: %v)", err, bytes.Equal(q, make([]byte, cs)))
	}
	if err := s.Get(ctx, "shards/x.0", int64(hl+2*cs), q); err != nil || !bytes.Equal(q, obj[hl+2*cs:hl+3*cs]) {
		t.Fatalf("Get of an intact chunk: %v", err)
	}
	// Header damage: even a range inside the header is refused.
	writeKeepTimes(t, path, remotetest.Flip(obj, 17))
	if err := s.Get(ctx, "shards/x.0", 0, make([]byte, 4)); !errors.Is(err, remote.ErrCorrupt) {
		t.Fatalf("Get inside a damaged header: %v, want ErrCorrupt", err)
	}
	// A truncated file.
	if err := os.WriteFile(path, obj[:len(obj)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, "shards/x.0", 0, make([]byte, 4)); !errors.Is(err, remote.ErrCorrupt) {
		t.Fatalf("Get of a truncated file: %v, want ErrCorrupt", err)
	}
	// Garbage shorter than a header.
	if err := os.WriteFile(path, []byte("MDS1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, "shards/x.0", 0, make([]byte, 4)); !errors.Is(err, remote.ErrCorrupt) {
		t.Fatalf("Get of a 4-byte file: %v, want ErrCorrupt", err)
	}
}

// writeKeepTimes rewrites a file in place, then gives it a new mtime (a
// real disk error would not, but the cache key also holds the size and
// inode; an in-place flip keeps both, so the mtime is what tells).
func writeKeepTimes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

// TestFullDisk fills a real (tmpfs) disk: a Put that does not fit fails
// with ErrFull naming the object and leaves nothing behind, and an
// overwrite that does not fit keeps the old object.
func TestFullDisk(t *testing.T) {
	dir := remotetest.Tmpfs(t, "1m")
	s := newStore(t, dir, dirstore.Options{})
	ctx := t.Context()
	obj := remotetest.Object(t, 2, 600<<10, 0)
	if err := s.Put(ctx, "shards/a.0", obj); err != nil {
		t.Fatal(err)
	}
	err := s.Put(ctx, "shards/b.0", remotetest.Object(t, 5, 600<<10, 0))
	if !errors.Is(err, remote.ErrFull) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "shards/b.0") {
		t.Fatalf("Put on a full disk: %v, want ErrFull wrapping ENOSPC and naming the object", err)
	}
	if err := s.Put(ctx, "shards/a.0", remotetest.Object(t, 3, 600<<10, 0)); !errors.Is(err, remote.ErrFull) {
		t.Fatalf("overwrite on a full disk: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "shards"))
	if len(ents) != 1 || ents[0].Name() != "a.0" {
		t.Fatalf("after full-disk puts the directory holds %v, want only a.0", ents)
	}
	p := make([]byte, len(obj))
	if err := s.Get(ctx, "shards/a.0", 0, p); err != nil || !bytes.Equal(p, obj) {
		t.Fatalf("the old object after a failed overwrite: %v", err)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, dirstore.Options{})
	ctx := t.Context()
	for _, n := range []string{"a", "b/c", "b/d/e"} {
		if err := s.Put(ctx, n, remotetest.Object(t, 4, 10, 0)); err != nil {
			t.Fatal(err)
		}
	}
	stale := filepath.Join(dir, "b", ".put-123")
	fresh := filepath.Join(dir, "b", ".put-456")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	// A stray file no Put could have made is neither counted nor listed.
	if err := os.WriteFile(filepath.Join(dir, "b", "bad name"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, dir, dirstore.Options{})
	ni, err := s2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ni.Objects != 3 {
		t.Fatalf("Info.Objects after reopen = %d", ni.Objects)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a stale temporary file survived New")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("New removed a fresh temporary file (a Put may be running)")
	}
	objs, err := s2.List(ctx, "", "", 100)
	if err != nil || len(objs) != 3 {
		t.Fatalf("List after reopen = %v, %v; want a, b/c, b/d/e", objs, err)
	}
	if ni.Capacity <= 0 || ni.Free <= 0 || ni.Free > ni.Capacity {
		t.Fatalf("Info capacity %d free %d", ni.Capacity, ni.Free)
	}
}

func TestNameConflicts(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, dirstore.Options{})
	ctx := t.Context()
	obj := remotetest.Object(t, 5, 10, 0)
	if err := s.Put(ctx, "a", obj); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", obj); !errors.Is(err, remote.ErrInvalidName) {
		t.Fatalf("Put under an object's name: %v, want ErrInvalidName", err)
	}
	if err := s.Put(ctx, "d/e", obj); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "d", obj); !errors.Is(err, remote.ErrInvalidName) {
		t.Fatalf("Put over a directory of objects: %v, want ErrInvalidName", err)
	}
	if err := s.Delete(ctx, "d"); err != nil {
		t.Fatalf("Delete of a directory name: %v, want nil (no such object)", err)
	}
	if _, err := s.Stat(ctx, "d/e"); err != nil {
		t.Fatalf("Delete of a directory name removed its objects: %v", err)
	}
	if err := s.Get(ctx, "a/b", 0, make([]byte, 1)); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("Get under an object's name: %v, want ErrNotFound", err)
	}
	// Nothing left behind by the refused puts.
	objs, _ := s.List(ctx, "", "", 10)
	if len(objs) != 2 {
		t.Fatalf("List = %v, want a and d/e", objs)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := dirstore.New("", dirstore.Options{}); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dirstore.New(f, dirstore.Options{}); err == nil {
		t.Fatal("New on a regular file succeeded")
	}
}

// FuzzGet stores arbitrary bytes as an object file and reads arbitrary
// ranges: no panic, and any successful read returns exactly the file's
// bytes of a file whose header and touched chunks verify.
func FuzzGet(f *testing.F) {
	valid, err := shard.Encode(&shard.Header{Kind: shard.KindMeta, K: 1}, bytes.Repeat([]byte("abc"), 5000))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, int64(0), uint16(100))
	f.Add(valid, int64(60), uint16(5000))
	f.Add(remotetest.Flip(valid, 9000), int64(8000), uint16(2000))
	f.Add(valid[:100], int64(0), uint16(10))
	f.Add([]byte("MDS1"), int64(0), uint16(1))
	dir := f.TempDir()
	s, err := dirstore.New(dir, dirstore.Options{HeaderCache: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, file []byte, off int64, n uint16) {
		path := filepath.Join(dir, "obj")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, n)
		err := s.Get(t.Context(), "obj", off, p)
		if err != nil {
			return
		}
		if off < 0 || off+int64(n) > int64(len(file)) || !bytes.Equal(p, file[off:off+int64(n)]) {
			t.Fatalf("Get(%d, %d) of a %d-byte file returned wrong bytes", off, n, len(file))
		}
		if _, err := shard.Parse(file); err != nil {
			t.Fatalf("Get succeeded on a file whose header does not parse: %v", err)
		}
	})
}

// FuzzVerify stores arbitrary bytes as an object file: Verify never
// panics, and it passes only a file that shard.Verify accepts whole.
func FuzzVerify(f *testing.F) {
	valid, err := shard.Encode(&shard.Header{Kind: shard.KindSegment, K: 2, M: 1, ChunkSize: 4 << 10}, bytes.Repeat([]byte("xyz"), 1700))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(remotetest.Flip(valid, 3000))
	f.Add(valid[:len(valid)-1])
	f.Add(append(slices.Clone(valid), 0))
	f.Add([]byte("MDS1"))
	dir := f.TempDir()
	s, err := dirstore.New(dir, dirstore.Options{HeaderCache: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		if err := os.WriteFile(filepath.Join(dir, "obj"), file, 0o600); err != nil {
			t.Fatal(err)
		}
		err := s.Verify(t.Context(), "obj")
		_, _, want := shard.Verify(file)
		if (err == nil) != (want == nil) {
			t.Fatalf("Verify says %v, shard.Verify says %v", err, want)
		}
		if err != nil && !errors.Is(err, remote.ErrCorrupt) {
			t.Fatalf("Verify of a bad file: %v, want ErrCorrupt", err)
		}
	})
}

// TestQuarantineKeepsGoodCopy: an object found corrupt and replaced by a
// good copy before Quarantine runs (a repair between the scrubber's
// Verify and its Quarantine) is left in place; a corrupt one is moved
// aside. The object count stays right either way.
func TestQuarantineKeepsGoodCopy(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, dirstore.Options{})
	ctx := t.Context()
	obj := remotetest.Object(t, 1, 3*shard.MinChunkSize, 0)
	path := filepath.Join(dir, "shards", "x.0")
	damage := func() {
		t.Helper()
		b := bytes.Clone(obj)
		b[len(b)-1] ^= 0xff
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(ctx, "shards/x.0"); !errors.Is(err, remote.ErrCorrupt) {
			t.Fatalf("Verify of a damaged object: %v", err)
		}
	}
	count := func() int64 {
		ni, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ni.Objects
	}
	if err := s.Put(ctx, "shards/x.0", obj); err != nil {
		t.Fatal(err)
	}
	damage()
	if err := s.Put(ctx, "shards/x.0", obj); err != nil { // the repair
		t.Fatal(err)
	}
	if err := s.Quarantine(ctx, "shards/x.0"); !errors.Is(err, dirstore.ErrReplaced) {
		t.Errorf("Quarantine of a name a good copy holds again: %v; want ErrReplaced", err)
	}
	got := make([]byte, len(obj))
	if err := s.Get(ctx, "shards/x.0", 0, got); err != nil || !bytes.Equal(got, obj) {
		t.Fatalf("the good copy after Quarantine: %v", err)
	}
	if n := count(); n != 1 {
		t.Errorf("%d objects counted; want 1", n)
	}
	if q, _ := os.ReadDir(filepath.Join(dir, dirstore.QuarantineDir)); len(q) != 0 {
		t.Errorf("the good copy left %d files in quarantine", len(q))
	}
	damage()
	if err := s.Quarantine(ctx, "shards/x.0"); err != nil {
		t.Fatalf("Quarantine of a corrupt object: %v", err)
	}
	if _, err := s.Stat(ctx, "shards/x.0"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Stat after Quarantine: %v; want ErrNotFound", err)
	}
	if q, _ := os.ReadDir(filepath.Join(dir, dirstore.QuarantineDir)); len(q) != 1 {
		t.Errorf("%d files in quarantine; want 1", len(q))
	}
	if n := count(); n != 0 {
		t.Errorf("%d objects counted; want 0", n)
	}
}

// TestQuarantineBounded: the quarantine keeps the newest corrupt copies
// up to QuarantineMax bytes and removes the oldest past it.
func TestQuarantineBounded(t *testing.T) {
	dir := t.TempDir()
	obj := remotetest.Object(t, 1, 3*shard.MinChunkSize, 0)
	s := newStore(t, dir, dirstore.Options{QuarantineMax: int64(2*len(obj) + len(obj)/2)})
	ctx := t.Context()
	qdir := filepath.Join(dir, dirstore.QuarantineDir)
	for i := range 5 {
		name := fmt.Sprintf("shards/x.%d", i)
		if err := s.Put(ctx, name, obj); err != nil {
			t.Fatal(err)
		}
		b := bytes.Clone(obj)
		b[len(b)-1] ^= 0xff
		if err := os.WriteFile(filepath.Join(dir, "shards", fmt.Sprintf("x.%d", i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.Quarantine(ctx, name); err != nil {
			t.Fatalf("Quarantine %s: %v", name, err)
		}
		time.Sleep(2 * time.Millisecond) // stamps in order
	}
	ents, err := os.ReadDir(qdir)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, e := range ents {
		kept = append(kept, e.Name()[:len("shards#x.0")])
	}
	slices.Sort(kept)
	if want := []string{"shards#x.3", "shards#x.4"}; !slices.Equal(kept, want) {
		t.Errorf("quarantine keeps %v; want the newest two, %v", kept, want)
	}
}

// TestQuarantineOrderAcrossSeconds: the oldest copy is the one with the
// earliest time, 10:00:00.999 before 10:00:01.001, whose fractions of a
// second alone sort the other way.
func TestQuarantineOrderAcrossSeconds(t *testing.T) {
	dir := t.TempDir()
	obj := remotetest.Object(t, 1, 3*shard.MinChunkSize, 0)
	s := newStore(t, dir, dirstore.Options{QuarantineMax: int64(2*len(obj) + len(obj)/2)})
	qdir := filepath.Join(dir, dirstore.QuarantineDir)
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, stamp := range []string{"20260101T100001.001000000", "20260101T100000.999000000"} {
		if err := os.WriteFile(filepath.Join(qdir, "shards#y.0."+stamp), obj, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(t.Context(), "shards/x.0", obj); err != nil {
		t.Fatal(err)
	}
	b := bytes.Clone(obj)
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(filepath.Join(dir, "shards", "x.0"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Quarantine(t.Context(), "shards/x.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(qdir, "shards#y.0.20260101T100000.999000000")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the oldest copy is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(qdir, "shards#y.0.20260101T100001.001000000")); err != nil {
		t.Errorf("a newer copy was removed: %v", err)
	}
}

// TestListLargeDirectory: paging through a large directory reads it once
// per listing, not once per page (a listing of 100,000 objects took 15 s,
// each page reading and sorting the whole directory), and the pages still
// hold every object in order, leaving out what was removed meanwhile.
func TestListLargeDirectory(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, dirstore.Options{})
	ctx := t.Context()
	const n = 6000
	if err := os.MkdirAll(filepath.Join(dir, "shards"), 0o700); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range n {
		name := fmt.Sprintf("shards/%08x.%d", i*2654435761%(1<<32), i%6)
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	reads, restore := dirstore.CountReadDirs()
	defer restore()
	page := func(after string) []remote.ObjectInfo {
		t.Helper()
		objs, err := s.List(ctx, "shards/", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	var got []string
	after, pages := "", 0
	for {
		objs := page(after)
		pages++
		if len(objs) == 0 {
			break
		}
		for _, o := range objs {
			got = append(got, o.Name)
		}
		after = objs[len(objs)-1].Name
		if len(got) == 3000 { // removed meanwhile: not listed
			for _, name := range want[3000:3010] {
				if err := os.Remove(filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	wantLeft := slices.Concat(want[:3000], want[3010:])
	if !slices.Equal(got, wantLeft) {
		t.Fatalf("paged listing: %d names (first %v); want %d in order", len(got), got[:min(3, len(got))], len(wantLeft))
	}
	// The store's own directory (a few entries) is read for every page,
	// shards/ once: the pages continue from its sorted entries.
	if r := reads.Load(); r > int64(pages)+1 {
		t.Errorf("%d directory reads for one listing of %d pages; want %d", r, pages, pages+1)
	}
	// A new listing reads again, and sees what was made since.
	extra := "shards/ffffffff.0"
	if err := os.WriteFile(filepath.Join(dir, extra), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	objs := page(want[len(want)-1])
	if len(objs) != 0 {
		t.Errorf("a page after the last name: %v", objs)
	}
	if all, err := s.List(ctx, "shards/ffff", "", 1000); err != nil || len(all) != 1 || all[0].Name != extra {
		t.Errorf("a new listing: %v, %v; want %s", all, err, extra)
	}
}

// TestQuarantinePruneSparesCopyBeingChecked: with a quarantine that keeps
// nothing, one Quarantine's prune must not remove the copy another is
// still checking. That copy may be good (a repair wrote it between the
// scrubber's Verify and its Quarantine) and must go back, not be lost.
func TestQuarantinePruneSparesCopyBeingChecked(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, dirstore.Options{QuarantineMax: 1})
	ctx := t.Context()
	obj := remotetest.Object(t, 1, 64*shard.MinChunkSize, 0)
	bad := bytes.Clone(obj)
	bad[len(bad)-1] ^= 0xff
	done := make(chan struct{})
	go func() { // a scrubber quarantining corrupt objects, pruning each time
		defer close(done)
		for i := 0; ctx.Err() == nil && i < 300; i++ {
			name := fmt.Sprintf("shards/y.%d", i%4)
			if err := s.Put(ctx, name, obj); err != nil {
				t.Error(err)
				return
			}
			if err := os.WriteFile(filepath.Join(dir, "shards", fmt.Sprintf("y.%d", i%4)), bad, 0o600); err != nil {
				t.Error(err)
				return
			}
			if err := s.Quarantine(ctx, name); err != nil {
				t.Errorf("Quarantine of a corrupt object: %v", err)
				return
			}
		}
	}()
	if err := s.Put(ctx, "shards/x.0", obj); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := s.Quarantine(ctx, "shards/x.0"); !errors.Is(err, dirstore.ErrReplaced) {
			t.Errorf("Quarantine %d of a good copy: %v; want ErrReplaced", i, err)
			break
		}
		if _, err := s.Stat(ctx, "shards/x.0"); err != nil {
			t.Errorf("the good copy after Quarantine %d: %v", i, err)
			break
		}
	}
	<-done
}
