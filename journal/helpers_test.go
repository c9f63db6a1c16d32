package journal

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

var long = flag.Bool("long", false, "run the long variants (more crash points, 1 GiB differential)")

// fakeGrid stores segments in memory, or as files in dir when dir is set
// (so they survive a killed process).
type fakeGrid struct {
	dir  string
	k, m int

	down    atomic.Bool
	stored  atomic.Int64 // shards reported stored per segment; 0 = k+m
	written atomic.Int64 // bytes passed to successful WriteSegment calls
	calls   atomic.Int64
	fails   atomic.Int64

	mu   sync.Mutex
	segs map[remote.SegmentID][]byte
}

func newFakeGrid(dir string) *fakeGrid {
	return &fakeGrid{dir: dir, k: 4, m: 2, segs: map[remote.SegmentID][]byte{}}
}

func (g *fakeGrid) K() int { return g.k }
func (g *fakeGrid) M() int { return g.m }

func (g *fakeGrid) WriteSegment(ctx context.Context, data []byte) (*remote.SegmentInfo, error) {
	g.calls.Add(1)
	if g.down.Load() {
		g.fails.Add(1)
		return nil, fmt.Errorf("fake grid: %w", remote.ErrTooFewNodes)
	}
	var id remote.SegmentID
	rand.Read(id[:])
	n := g.k + g.m
	if s := g.stored.Load(); s > 0 {
		n = int(s)
	}
	nodes := make([]string, g.k+g.m)
	for i := 0; i < n; i++ {
		nodes[i] = fmt.Sprintf("node-%d", i)
	}
	if g.dir != "" {
		p := filepath.Join(g.dir, id.String())
		if err := os.WriteFile(p+".tmp", data, 0o600); err != nil {
			return nil, err
		}
		f, _ := os.Open(p + ".tmp")
		f.Sync()
		f.Close()
		if err := os.Rename(p+".tmp", p); err != nil {
			return nil, err
		}
	} else {
		g.mu.Lock()
		g.segs[id] = append([]byte(nil), data...)
		g.mu.Unlock()
	}
	g.written.Add(int64(len(data)))
	shard := (int64(len(data)) + int64(g.k) - 1) / int64(g.k)
	return &remote.SegmentInfo{ID: id, K: g.k, M: g.m, Size: int64(len(data)), ShardSize: shard, ChunkSize: 64 << 10, Nodes: nodes}, nil
}

func (g *fakeGrid) NewSegmentBuf(size int64) (*remote.SegmentBuf, error) {
	return remote.NewSegmentBuf(g.k, g.m, 0, size)
}

func (g *fakeGrid) WriteSegmentBuf(ctx context.Context, b *remote.SegmentBuf) (*remote.SegmentInfo, error) {
	return g.WriteSegment(ctx, b.Bytes())
}

func (g *fakeGrid) DeleteSegment(ctx context.Context, seg *remote.SegmentInfo) error { return nil }

func (g *fakeGrid) Capacity(ctx context.Context) (int64, int64) { return 6 << 30, 3 << 30 }

func (g *fakeGrid) read(ref remote.BlockRef) ([]byte, error) {
	if g.down.Load() {
		return nil, fmt.Errorf("fake grid: %w", remote.ErrTooFewShards)
	}
	var seg []byte
	if g.dir != "" {
		b, err := os.ReadFile(filepath.Join(g.dir, ref.Seg.ID.String()))
		if err != nil {
			return nil, err
		}
		seg = b
	} else {
		g.mu.Lock()
		seg = g.segs[ref.Seg.ID]
		g.mu.Unlock()
	}
	if seg == nil || ref.Offset+ref.Length > int64(len(seg)) {
		return nil, fmt.Errorf("fake grid: segment %s: %w", ref.Seg.ID, remote.ErrNotFound)
	}
	return seg[ref.Offset : ref.Offset+ref.Length], nil
}

// testReader is the BlockReader of the tests: it reads the fake grid and
// opens blocks with the sealer.
type testReader struct {
	g         *fakeGrid
	s         *remote.Sealer
	reads     atomic.Int64
	prefetchs atomic.Int64
	pmu       sync.Mutex
	prefetchd map[remote.BlockID]bool // every block asked for by Prefetch
}

func (r *testReader) ReadBlock(ctx context.Context, ref remote.BlockRef) ([]byte, error) {
	r.reads.Add(1)
	sealed, err := r.g.read(ref)
	if err != nil {
		return nil, err
	}
	return r.s.Open(nil, ref.ID, sealed)
}

// ReadAt opens the whole block and copies the range.
func (r *testReader) ReadAt(ctx context.Context, ref remote.BlockRef, p []byte, off int64) (int, error) {
	b, err := r.ReadBlock(ctx, ref)
	if err != nil || off >= int64(len(b)) {
		return 0, err
	}
	return copy(p, b[off:]), nil
}

func (r *testReader) Prefetch(ctx context.Context, refs []remote.BlockRef) {
	r.prefetchs.Add(int64(len(refs)))
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if r.prefetchd == nil {
		r.prefetchd = map[remote.BlockID]bool{}
	}
	for _, ref := range refs {
		r.prefetchd[ref.ID] = true
	}
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

func testSealer(t testing.TB) *remote.Sealer {
	t.Helper()
	s, err := remote.NewSealer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type env struct {
	t    testing.TB
	dir  string
	g    *fakeGrid
	r    *testReader
	j    *Journal
	opts Options
}

// newEnv opens a journal in a fresh directory with a fake grid; mod
// adjusts the options.
func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.g = newFakeGrid("")
	s := testSealer(t)
	e.r = &testReader{g: e.g, s: s}
	e.opts = Options{
		Dir: filepath.Join(e.dir, "journal"), Grid: e.g, Sealer: s, Blocks: e.r,
		BlockSize: 64 << 10, SegmentSize: 1 << 20, IdleFlush: 50 * time.Millisecond,
		QuotaWait: time.Second, RetryMax: 100 * time.Millisecond, Quota: 1 << 30,
	}
	if mod != nil {
		mod(&e.opts)
	}
	e.open()
	t.Cleanup(func() {
		if e.j != nil {
			e.j.Close()
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	j, err := Open(context.Background(), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.j = j
}

// reap frees the inodes left with no link and no handle now, as the
// reaper does in the background after an unlink, rename or release.
func (e *env) reap() {
	e.t.Helper()
	applyUnlinks(e.t, e.j)
	if err := e.j.it.freeOrphans(bg); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.j.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.j = nil
	checkDB(e.t, e.opts.Dir)
	e.open()
}

// writeClosed makes file name in the root with data, as a program that
// writes a file and closes it: its close's flush and release.
func writeClosed(t testing.TB, j *Journal, name string, data []byte) Attr {
	t.Helper()
	f := must[Attr](t)(j.Mknod(bg, RootIno, name, 0o644, 0, 0, 0))
	j.OpenFile(f.Ino)
	must[int](t)(j.WriteAt(bg, f.Ino, data, 0))
	if err := j.Flush(bg, f.Ino); err != nil {
		t.Fatal(err)
	}
	j.ReleaseFile(f.Ino)
	return f
}

// killAndReopen opens, in place of e's journal, the folder as a kill -9
// would leave it now: a copy of it (the database, its write-ahead log,
// the unlink log, the staging folder), without sqlite's shared-memory
// index, which a new process rebuilds. The journal it copied is closed.
func (e *env) killAndReopen() {
	e.t.Helper()
	killed := filepath.Join(e.t.TempDir(), "journal")
	if err := os.CopyFS(killed, os.DirFS(e.opts.Dir)); err != nil {
		e.t.Fatal(err)
	}
	os.Remove(filepath.Join(killed, "journal.db-shm"))
	if err := e.j.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.j = nil
	e.opts.Dir = killed
	e.open()
}

// checkDB runs PRAGMA integrity_check and foreign_key_check on a closed
// (or idle) journal and checks that every block's refcount equals the
// number of block map rows that refer to it.
func checkDB(t testing.TB, dir string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "journal.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q %v", res, err)
	}
	rows, err := db.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Fatal("foreign_key_check reports violations")
	}
	rows.Close()
	var bad int
	if err := db.QueryRow(`SELECT count(*) FROM blocks b WHERE refcount != (SELECT count(*) FROM blockmap m WHERE m.block = b.id)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d blocks have a refcount that differs from their block map count", bad)
	}
	if err := db.QueryRow(`SELECT count(*) FROM blocks WHERE refcount = 0 AND state != ?`, blockGarbage).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d unreferenced blocks are not garbage", bad)
	}
	// Staged bytes: a row in staged for a staged block (or a kept copy
	// of an uploaded one, kept.go, which may since have become garbage),
	// and every staged block has its bytes in a row or a staging file.
	if err := db.QueryRow(`SELECT count(*) FROM staged s WHERE NOT EXISTS
		(SELECT 1 FROM blocks b WHERE b.id = s.id AND b.state IN (?, ?, ?))`, blockStaged, blockUploaded, blockGarbage).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d rows of staged belong to no staged, uploaded or garbage block", bad)
	}
	srows, err := db.Query(`SELECT hex(b.id), s.id IS NOT NULL FROM blocks b LEFT JOIN staged s ON s.id = b.id WHERE b.state = ?`, blockStaged)
	if err != nil {
		t.Fatal(err)
	}
	defer srows.Close()
	for srows.Next() {
		var id string
		var inline bool
		if err := srows.Scan(&id, &inline); err != nil {
			t.Fatal(err)
		}
		_, ferr := os.Stat(filepath.Join(dir, "staging", strings.ToLower(id)))
		if inline == (ferr == nil) {
			t.Fatalf("staged block %s: row in staged %v, staging file %v (want exactly one)", id, inline, ferr == nil)
		}
	}
}

var bg = context.Background()

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

// bubble runs test in a synctest bubble, in parallel with the package's
// other tests: the journal's timers (IdleFlush, the group commit, the
// reaper's delay, retries, yields) run on the bubble's clock, which jumps
// ahead as soon as every goroutine of the test waits, and synctest.Wait
// waits for them to settle. Everything the test starts must stop before
// it returns (Close the journal).
func bubble(t *testing.T, test func(*testing.T)) {
	t.Parallel()
	synctest.Test(t, test)
}

// applyUnlinks applies the deferred unlinks (unlinks.go) now, as the
// unlinker does UnlinkDelay after an unlink: for a test that reads the
// database itself.
func applyUnlinks(t testing.TB, j *Journal) {
	t.Helper()
	j.wmu.Lock()
	err := j.ul.applyUnlinksLocked(bg)
	j.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	j.ul.cleanApplied()
}

// whileLocked runs fn while mu is locked and returns its error; the test
// fails when fn has not returned within 20 s: it waited for mu, which it
// must not (what says which calls).
func whileLocked(t *testing.T, mu *sync.Mutex, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	mu.Lock()
	go func() { done <- fn() }()
	select {
	case err := <-done:
		mu.Unlock()
		return err
	case <-time.After(20 * time.Second):
		mu.Unlock()
		<-done
		t.Fatalf("%s waited for the lock", what)
		return nil
	}
}
