package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/remote"
)

// diskUsage counts the block files under dir and their bytes.
func diskUsage(t testing.TB, dir string) (files int, bytes int64) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(dir, blocksDir), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		files++
		bytes += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, bytes
}

func blockPath(dir string, id remote.BlockID) string {
	return filepath.Join(dir, blocksDir, id.String()[:2], id.String())
}

func TestDiskTierSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(20, 20)), 10, 100, 2000)
	c, err := New(Options{Dir: dir, Fetcher: g})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	if err := c.Close(); err != nil { // finishes the queued disk writes
		t.Fatal(err)
	}

	g2 := newFakeGrid()
	for _, r := range refs {
		g2.add(g.want(r.ID))
	}
	c2 := newTestCache(t, Options{Dir: dir, Fetcher: g2})
	if s := c2.Stats(); s.DiskBlocks != int64(len(refs)) {
		t.Fatalf("after restart the index has %d blocks, want %d", s.DiskBlocks, len(refs))
	}
	for _, r := range refs {
		mustRead(t, c2, g2, r)
	}
	if n := g2.fetches.Load(); n != 0 {
		t.Fatalf("%d grid fetches after restart, want 0", n)
	}
	if s := c2.Stats(); s.DiskHits != uint64(len(refs)) {
		t.Fatalf("stats %+v, want %d disk hits", s, len(refs))
	}
}

func TestCorruptDiskFileIsRefetched(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"empty", func(b []byte) []byte { return nil }},
		{"flipped trailer", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			g := newFakeGrid()
			ref := g.addRandom(rand.New(rand.NewPCG(21, 21)), 1, 1000, 1000)[0]
			c, err := New(Options{Dir: dir, Fetcher: g})
			if err != nil {
				t.Fatal(err)
			}
			mustRead(t, c, g, ref)
			c.Close()

			p := blockPath(dir, ref.ID)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("block not on disk: %v", err)
			}
			if err := os.WriteFile(p, tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}

			c2, err := New(Options{Dir: dir, Fetcher: g})
			if err != nil {
				t.Fatal(err)
			}
			mustRead(t, c2, g, ref)
			s := c2.Stats()
			if g.fetches.Load() != 2 || s.Misses != 1 || s.DiskHits != 0 || s.DiskErrors == 0 {
				t.Fatalf("stats %+v, fetches %d: want a refetch counted as a miss and a disk error", s, g.fetches.Load())
			}
			c2.Close()

			// The damaged file was replaced by a good one.
			c3 := newTestCache(t, Options{Dir: dir, Fetcher: g})
			mustRead(t, c3, g, ref)
			if g.fetches.Load() != 2 || c3.Stats().DiskHits != 1 {
				t.Fatalf("the refetched block was not cached again on disk (fetches %d)", g.fetches.Load())
			}
		})
	}
}

func TestClearDropsUnpinnedKeepsPinned(t *testing.T) {
	dir := t.TempDir()
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(22, 22)), 6, 100, 500)
	c, err := New(Options{Dir: dir, Fetcher: g, ReadAhead: -1})
	if err != nil {
		t.Fatal(err)
	}
	pinned := refs[:2]
	c.Pin(pinned[0].ID) // before it is cached
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	c.disk.waitIdle()
	c.Pin(pinned[1].ID) // after
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
	if s.DiskBlocks != 2 || s.DiskBytes != pinned[0].Length+pinned[1].Length || s.MemBlocks != 2 {
		t.Fatalf("after Clear: %+v, want only the 2 pinned blocks", s)
	}
	if files, _ := diskUsage(t, dir); files != 2 {
		t.Fatalf("after Clear %d files on disk, want 2", files)
	}
	// Unpinned blocks come from the grid again; pinned ones do not.
	before := g.fetches.Load()
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	if n := g.fetches.Load() - before; n != 4 {
		t.Fatalf("%d fetches after Clear, want 4 (the unpinned blocks)", n)
	}
	c.Close()

	// Pinned blocks are on disk across a restart (the memory tier is empty).
	c2 := newTestCache(t, Options{Dir: dir, Fetcher: g, ReadAhead: -1})
	before = g.fetches.Load()
	for _, r := range pinned {
		mustRead(t, c2, g, r)
	}
	if g.fetches.Load() != before {
		t.Fatal("pinned block fetched after restart")
	}
}

// Pinned blocks survive eviction pressure; after Unpin they are evictable.
func TestEvictionSkipsPinned(t *testing.T) {
	const budget = 5_000
	dir := t.TempDir()
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(23, 23)), 40, 400, 600)
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: -1, DiskBytes: budget, ReadAhead: -1})
	// pin is pinned before it is cached, late after.
	pin, late := refs[0], refs[1]
	c.Pin(pin.ID)
	for _, r := range refs {
		mustRead(t, c, g, r)
		c.disk.waitIdle()
		if r == late {
			c.Pin(late.ID)
		}
	}
	for _, r := range []remote.BlockRef{pin, late} {
		if _, err := os.Stat(blockPath(dir, r.ID)); err != nil {
			t.Fatalf("pinned block evicted: %v", err)
		}
	}
	s := c.Stats()
	if s.DiskBytes > budget || s.Evictions == 0 {
		t.Fatalf("stats %+v: want evictions within the %d budget", s, budget)
	}
	c.Unpin(pin.ID)
	for _, r := range refs[2:] {
		mustRead(t, c, g, r)
		c.disk.waitIdle()
	}
	if _, err := os.Stat(blockPath(dir, pin.ID)); err == nil {
		t.Fatal("unpinned block never evicted under pressure")
	}
}

// A full disk pauses disk caching; reads go on from the grid.
func TestFullDiskNeverFailsReads(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(24, 24)), 5, 100, 200)
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})
	calls := 0
	c.disk.writeFile = func(dir string, data []byte) (string, error) {
		calls++ // only writer goroutines call this; waitIdle orders it with the reads below
		return "", &fs.PathError{Op: "write", Path: dir, Err: syscall.ENOSPC}
	}
	for _, r := range refs {
		mustRead(t, c, g, r)
		c.disk.waitIdle()
	}
	s := c.Stats()
	if s.DiskBlocks != 0 || s.DiskErrors != 1 || calls != 1 {
		t.Fatalf("stats %+v, %d write attempts: want one failed write, then disk caching paused", s, calls)
	}
}

// TestDiskKeepsReserveFree: a disk with less room than the cache's
// budget (the default --cache-size is 4 GiB) is not filled to its last
// byte: the disk tier evicts its oldest blocks to leave a twentieth of
// the file system free for the journal and every other program, and keeps
// caching the newest. The disk here is 100 kB, 40 kB of it used by
// others; the blocks read add up to about 90 kB.
func TestDiskKeepsReserveFree(t *testing.T) {
	const size, others = 100_000, 40_000
	dir := t.TempDir()
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(26, 26)), 60, 1000, 2000)
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: -1, ReadAhead: -1})
	used := func() int64 { // the tier's files, temp files included
		var n int64
		filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				if info, err := e.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
		return n
	}
	// Only writer goroutines call this; waitIdle orders it with the test.
	c.disk.space = func(string) (int64, int64, error) { return size, size - others - used(), nil }
	for _, r := range refs {
		mustRead(t, c, g, r)
		c.disk.waitIdle()
	}
	reserve := diskReserve(size)
	_, onDisk := diskUsage(t, dir)
	if free := size - others - onDisk; free < reserve {
		t.Errorf("the cache left %d bytes free on a %d-byte disk, want at least %d (a twentieth)", free, size, reserve)
	}
	last := refs[len(refs)-1]
	if _, err := os.Stat(blockPath(dir, last.ID)); err != nil {
		t.Errorf("the newest block is not on disk: %v", err)
	}
	if s := c.Stats(); s.Evictions == 0 || s.DiskErrors != 0 {
		t.Errorf("stats %+v: want evictions and no disk error", s)
	}
}

// TestMakeRoomEvictsUnpinned: the journal asks for room on a full disk;
// the disk tier frees at least that much, oldest first, and never a
// pinned block.
func TestMakeRoomEvictsUnpinned(t *testing.T) {
	dir := t.TempDir()
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(27, 27)), 10, 1000, 1000)
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: -1, ReadAhead: -1})
	pin := refs[0]
	c.Pin(pin.ID)
	for _, r := range refs {
		mustRead(t, c, g, r)
		c.disk.waitIdle()
	}
	_, before := diskUsage(t, dir)
	if freed := c.MakeRoom(2500); freed < 2500 {
		t.Errorf("MakeRoom(2500) freed %d bytes", freed)
	}
	_, after := diskUsage(t, dir)
	if before-after < 2500 {
		t.Errorf("%d bytes on disk before, %d after: want 2500 freed", before, after)
	}
	if _, err := os.Stat(blockPath(dir, refs[1].ID)); err == nil {
		t.Error("the oldest unpinned block is still on disk")
	}
	if freed := c.MakeRoom(1 << 30); freed != after-pin.Length {
		t.Errorf("MakeRoom of everything freed %d bytes, want %d (all but the pinned block)", freed, after-pin.Length)
	}
	if _, err := os.Stat(blockPath(dir, pin.ID)); err != nil {
		t.Errorf("pinned block evicted: %v", err)
	}
}

// Any other write error is logged and ignored.
func TestDiskWriteErrorIgnored(t *testing.T) {
	dir := t.TempDir()
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(25, 25)), 3, 100, 200)
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, ReadAhead: -1})
	// Replace the temp dir with a file: every write fails.
	if err := os.RemoveAll(filepath.Join(dir, tmpDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tmpDir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		mustRead(t, c, g, r)
		c.disk.waitIdle()
	}
	if s := c.Stats(); s.DiskErrors != 3 || s.DiskBlocks != 0 {
		t.Fatalf("stats %+v, want 3 disk errors and nothing cached", s)
	}
}

// New removes leftover temp files, ignores foreign files, and a cache file
// deleted behind its back is just a miss.
func TestScanAndVanishedFile(t *testing.T) {
	dir := t.TempDir()
	g := newFakeGrid()
	ref := g.addRandom(rand.New(rand.NewPCG(26, 26)), 1, 100, 200)[0]
	c, err := New(Options{Dir: dir, Fetcher: g})
	if err != nil {
		t.Fatal(err)
	}
	mustRead(t, c, g, ref)
	c.Close()
	for name, data := range map[string]string{
		filepath.Join(tmpDir, "blk-123"):                             "half a block",
		filepath.Join(blocksDir, "zz", "hello"):                      "not ours",
		filepath.Join(blocksDir, "README"):                           "not ours",
		filepath.Join(blocksDir, "ab", "AB"+fmt.Sprintf("%062d", 0)): "upper case",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c2 := newTestCache(t, Options{Dir: dir, Fetcher: g})
	if s := c2.Stats(); s.DiskBlocks != 1 || s.DiskBytes != ref.Length {
		t.Fatalf("index after scan: %+v, want just the one block", s)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpDir, "blk-123")); err == nil {
		t.Fatal("leftover temp file kept")
	}
	if err := os.Remove(blockPath(dir, ref.ID)); err != nil {
		t.Fatal(err)
	}
	mustRead(t, c2, g, ref)
	if s := c2.Stats(); s.Misses != 1 || s.DiskErrors != 0 {
		t.Fatalf("stats %+v: a vanished file should be a plain miss", s)
	}
}

func TestParseBlockName(t *testing.T) {
	id := remote.BlockID{0xab, 0xcd}
	s := id.String()
	if got, ok := parseBlockName(s[:2], s); !ok || got != id {
		t.Fatalf("parseBlockName(%q) = %v, %v", s, got, ok)
	}
	for _, bad := range []struct{ sub, name string }{
		{"ab", s[:63]}, {"cd", s}, {"ab", s + "0"}, {"AB", "AB" + s[2:]}, {"ab", "ab" + s[2:62] + "zz"},
	} {
		if _, ok := parseBlockName(bad.sub, bad.name); ok {
			t.Errorf("parseBlockName(%q, %q) accepted", bad.sub, bad.name)
		}
	}
}

// FuzzCacheFile puts arbitrary bytes in a block's cache file: ReadBlock must
// still return exactly the block's plaintext (from the file if it
// authenticates, else from the grid).
func FuzzCacheFile(f *testing.F) {
	g := newFakeGrid()
	ref := g.add([]byte("the plaintext of one block, not very long"))
	good := g.seal(ref.ID, g.want(ref.ID))
	f.Add(good)
	f.Add([]byte{})
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	bad := bytes.Clone(good)
	bad[3] ^= 0xff
	f.Add(bad)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := blockPath(dir, ref.ID)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := New(Options{Dir: dir, Fetcher: g, ReadAhead: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, err := c.ReadBlock(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, g.want(ref.ID)) {
			t.Fatalf("cache file %x produced wrong plaintext %q", data, b)
		}
	})
}

// Whole blocks read from disk go through one pooled buffer per reader:
// blocks read later (of other sizes, by many readers at once) must never
// change a plaintext handed out earlier, and every read is a disk hit.
func TestDiskReadsReuseBuffersSafely(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(7, 7)), 24, 1000, 300000)
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, MemBytes: -1, ReadAhead: -1})
	for _, r := range refs {
		mustRead(t, c, g, r)
	}
	c.disk.waitIdle()
	got := make([][]byte, len(refs))
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for round := range 3 {
				for i := w; i < len(refs); i += 4 {
					b, err := c.ReadBlock(context.Background(), refs[(i+round)%len(refs)])
					if err != nil {
						errs <- err
						return
					}
					if round == 0 {
						got[i] = b
					}
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range refs {
		if !bytes.Equal(got[i], g.want(r.ID)) {
			t.Fatalf("block %d changed after later disk reads", i)
		}
	}
	if s := c.Stats(); s.DiskHits != uint64(3*len(refs)) || g.fetches.Load() != int64(len(refs)) {
		t.Fatalf("stats %+v (fetches %d), want %d disk hits and no refetch", s, g.fetches.Load(), 3*len(refs))
	}
}

// A full disk write queue makes the fetch write its block itself: a read
// that outruns the writers still leaves every block on disk (a sequential
// read after a remount then reads the disk tier, not the grid).
func TestFullWriteQueueWritesInline(t *testing.T) {
	g := newFakeGrid()
	var refs []remote.BlockRef
	for i := range 3 {
		refs = append(refs, g.add(bytes.Repeat([]byte{byte(i + 1)}, 3<<20))) // two fill the queue's bytes
	}
	c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1})
	gate := make(chan struct{})
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the cache's Close, which waits for the writers
	var calls atomic.Int32
	write := c.disk.writeFile
	c.disk.writeFile = func(dir string, data []byte) (string, error) {
		if calls.Add(1) <= diskWriters {
			<-gate // the writer goroutines are stuck on the first blocks
		}
		return write(dir, data)
	}
	mustRead(t, c, g, refs[0])
	mustRead(t, c, g, refs[1])
	eventually(t, "both writers busy", func() bool { return calls.Load() == diskWriters })
	mustRead(t, c, g, refs[2])
	if !c.OnDisk(refs[2].ID) {
		t.Fatal("a block read while the write queue was full is not on disk when its read returns")
	}
	release()
	c.disk.waitIdle()
	for i, r := range refs {
		if !c.OnDisk(r.ID) {
			t.Fatalf("block %d not on disk", i)
		}
	}
}

// writeSealed writes ref's sealed bytes to a new file in dir, as the
// journal's staging does, and returns its path.
func writeSealed(t testing.TB, dir string, g *fakeGrid, ref remote.BlockRef) string {
	t.Helper()
	p := filepath.Join(dir, ref.ID.String())
	if err := os.WriteFile(p, g.seal(ref.ID, g.want(ref.ID)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// An adopted file is read from the disk tier, here and after a restart,
// and never fetched; within the budget, older blocks make room for it.
func TestAdoptedBlocksReadFromDisk(t *testing.T) {
	dir, stage := t.TempDir(), t.TempDir()
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(31, 31)), 8, 1000, 1000)
	budget := 4 * refs[0].Length
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: -1, DiskBytes: budget, ReadAhead: -1})
	for _, r := range refs[:4] {
		mustRead(t, c, g, r)
		c.disk.waitIdle()
	}
	fetched := g.fetches.Load()
	for _, r := range refs[4:] {
		p := writeSealed(t, stage, g, r)
		c.Adopt(r.ID, p, r.Length)
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("adopted file still at its old path: %v", err)
		}
		if _, err := os.Stat(blockPath(dir, r.ID)); err != nil {
			t.Fatalf("adopted file not in the tier: %v", err)
		}
	}
	if s := c.Stats(); s.DiskBytes > budget || s.DiskBlocks != 4 || s.Evictions != 4 {
		t.Fatalf("stats %+v: want the 4 adopted blocks alone in the %d budget, 4 evicted", s, budget)
	}
	for _, r := range refs[4:] {
		mustRead(t, c, g, r)
	}
	if n := g.fetches.Load() - fetched; n != 0 {
		t.Fatalf("%d grid fetches of adopted blocks, want 0", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := newTestCache(t, Options{Dir: dir, Fetcher: g, MemBytes: -1, DiskBytes: budget, ReadAhead: -1})
	for _, r := range refs[4:] {
		mustRead(t, c2, g, r)
	}
	if n := g.fetches.Load() - fetched; n != 0 {
		t.Fatalf("%d grid fetches of adopted blocks after a restart, want 0", n)
	}
}

// A file the tier does not take is deleted: the caller gave it up.
func TestAdoptDeletesWhatItDoesNotKeep(t *testing.T) {
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(32, 32)), 3, 500, 500)
	stage := t.TempDir()
	for _, tc := range []struct {
		name string
		o    Options
		prep func(c *Cache)
	}{
		{"disk tier off", Options{Fetcher: g}, func(*Cache) {}},
		{"already cached", Options{Dir: t.TempDir(), Fetcher: g, ReadAhead: -1}, func(c *Cache) {
			mustRead(t, c, g, refs[0])
			c.disk.waitIdle()
		}},
		{"closed", Options{Dir: t.TempDir(), Fetcher: g}, func(c *Cache) { c.Close() }},
		{"no room beside pins", Options{Dir: t.TempDir(), Fetcher: g, MemBytes: -1, DiskBytes: refs[1].Length, ReadAhead: -1}, func(c *Cache) {
			c.Pin(refs[1].ID)
			mustRead(t, c, g, refs[1])
			c.disk.waitIdle()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCache(t, tc.o)
			tc.prep(c)
			p := writeSealed(t, stage, g, refs[0])
			c.Adopt(refs[0].ID, p, refs[0].Length)
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("file not taken is still there: %v", err)
			}
		})
	}
}

// Across file systems the rename fails: the file is deleted, not copied,
// and adopting stops.
func TestAdoptAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "adopt")
	if err != nil {
		t.Skipf("no tmpfs at /dev/shm to stand for another file system: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	dir := t.TempDir()
	var a, b unix.Statfs_t
	if unix.Statfs(shm, &a) != nil || unix.Statfs(dir, &b) != nil || a.Type == b.Type {
		t.Skip("/dev/shm is not a different file system here")
	}
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(33, 33)), 2, 500, 500)
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, ReadAhead: -1})
	for _, r := range refs {
		p := writeSealed(t, shm, g, r)
		c.Adopt(r.ID, p, r.Length)
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("file on another file system not deleted: %v", err)
		}
	}
	if s := c.Stats(); s.DiskBlocks != 0 || s.DiskErrors != 0 {
		t.Fatalf("stats %+v: want nothing kept and no error counted", s)
	}
	c.disk.mu.Lock()
	off := c.disk.noAdopt
	c.disk.mu.Unlock()
	if !off {
		t.Fatal("adopting not turned off after a rename across file systems")
	}
}

// Blocks fetched from the grid go into reused buffers: the sealed bytes
// into one the disk tier gave back after writing the last, the plaintext
// into one an eviction freed. Readers at once, blocks held from earlier
// and the files on disk must all keep the right bytes; buffers a losing
// read may still write into are never reused.
func TestFetchesReuseBuffers(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(fmt.Sprintf("lose=%v", lose), func(t *testing.T) {
			// One P: a buffer the disk writer puts back into the pool
			// is then where the next fetch looks (sync.Pool keeps one
			// per P out of reach of the others; with more, reuse is
			// likely, not certain).
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			g := newFakeGrid()
			g.lose.Store(lose)
			refs := g.addRandom(rand.New(rand.NewPCG(34, 34)), 16, 300000, 300000)
			c := newTestCache(t, Options{Dir: t.TempDir(), Fetcher: g, MemBytes: 2 * 300000, ReadAhead: -1})
			held := make([][]byte, len(refs))
			for i, r := range refs {
				// Every other block is held (ReadBlock: never reused); the
				// others are released, so their buffers come back.
				if i%2 == 0 {
					b, err := c.ReadBlock(context.Background(), r)
					if err != nil {
						t.Fatal(err)
					}
					held[i] = b
				} else {
					b, h, err := c.AcquireBlock(context.Background(), r)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(b, g.want(r.ID)) {
						t.Fatalf("block %d read wrong", i)
					}
					h.Release()
				}
				c.disk.waitIdle() // the sealed buffer is given back once written
			}
			errs := make(chan error, 4)
			for w := range 4 {
				go func() {
					for i := w; i < 4*len(refs); i += 4 {
						r := refs[(i*7)%len(refs)]
						b, err := c.ReadBlock(context.Background(), r)
						if err == nil && !bytes.Equal(b, g.want(r.ID)) {
							err = fmt.Errorf("block %s read wrong", r.ID)
						}
						if err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range 4 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			for i, r := range refs {
				if held[i] != nil && !bytes.Equal(held[i], g.want(r.ID)) {
					t.Fatalf("block %d changed after later fetches", i)
				}
			}
			if s := c.Stats(); s.DiskErrors != 0 || s.DiskBlocks != int64(len(refs)) {
				t.Fatalf("stats %+v: want every block on disk, intact", s)
			}
			if si, pi := g.sealedInto.Load(), g.plainInto.Load(); lose && si+pi != 0 || !lose && (si == 0 || pi == 0) {
				t.Fatalf("%d sealed and %d plaintext fetches into reused buffers; want none when the read lost, some otherwise", si, pi)
			}
		})
	}
}

// TestForgetDropsDeletedBlocks: blocks garbage collection deleted leave
// both tiers and their room goes to live blocks: an adopted live block
// is not evicted for them, and a read of a forgotten one fetches again.
func TestForgetDropsDeletedBlocks(t *testing.T) {
	dir, stage := t.TempDir(), t.TempDir()
	g := newFakeGrid()
	refs := g.addRandom(rand.New(rand.NewPCG(33, 33)), 4, 1000, 1000)
	budget := 3 * refs[0].Length
	c := newTestCache(t, Options{Dir: dir, Fetcher: g, DiskBytes: budget, ReadAhead: -1})
	for _, r := range refs[:3] {
		mustRead(t, c, g, r)
		c.disk.waitIdle()
	}
	c.Forget([]remote.BlockID{refs[0].ID, refs[1].ID})
	if c.Has(refs[0].ID) || c.Has(refs[1].ID) {
		t.Fatal("forgotten blocks still cached")
	}
	if _, err := os.Stat(blockPath(dir, refs[0].ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a forgotten block's file: %v", err)
	}
	c.Adopt(refs[3].ID, writeSealed(t, stage, g, refs[3]), refs[3].Length)
	if s := c.Stats(); s.DiskBlocks != 2 || s.Evictions != 0 {
		t.Fatalf("stats %+v: want the live block and the adopted one, nothing evicted", s)
	}
	fetched := g.fetches.Load()
	mustRead(t, c, g, refs[0])
	if g.fetches.Load() == fetched {
		t.Error("a forgotten block was read without a fetch")
	}
}
