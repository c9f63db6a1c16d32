package fs

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	nodeserver "github.com/meshdrive/meshdrive/remote/node"
)

// Every test in this file's family mounts the real stack: a journal in
// t.TempDir(), the block cache, and a remote.Grid (k=4, m=2) over six
// stores: local directory stores, or node servers on 127.0.0.1:0 reached
// through the HTTP client.
const (
	gridK = 4
	gridM = 2
)

// downStore wraps a Store; when down is set every call fails the way an
// unreachable node does.
type downStore struct {
	remote.Store
	name string
	down atomic.Bool
}

func (s *downStore) err(op string) error {
	return fmt.Errorf("%s %s: %w", s.name, op, remote.ErrUnavailable)
}

func (s *downStore) Put(ctx context.Context, name string, data []byte) error {
	if s.down.Load() {
		return s.err("put")
	}
	return s.Store.Put(ctx, name, data)
}

func (s *downStore) Get(ctx context.Context, name string, off int64, p []byte) error {
	if s.down.Load() {
		return s.err("get")
	}
	return s.Store.Get(ctx, name, off, p)
}

func (s *downStore) Stat(ctx context.Context, name string) (remote.ObjectInfo, error) {
	if s.down.Load() {
		return remote.ObjectInfo{}, s.err("stat")
	}
	return s.Store.Stat(ctx, name)
}

func (s *downStore) Delete(ctx context.Context, name string) error {
	if s.down.Load() {
		return s.err("delete")
	}
	return s.Store.Delete(ctx, name)
}

func (s *downStore) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	if s.down.Load() {
		return nil, s.err("list")
	}
	return s.Store.List(ctx, prefix, after, limit)
}

func (s *downStore) Info(ctx context.Context) (remote.NodeInfo, error) {
	if s.down.Load() {
		return remote.NodeInfo{}, s.err("info")
	}
	return s.Store.Info(ctx)
}

type stackOptions struct {
	// HTTP puts each store behind a real node server on 127.0.0.1:0.
	HTTP       bool
	BlockSize  int
	AllowOther bool
	CacheMem   int64 // the memory cache's bytes (0: default)
	ObserveOp  OpObserver
}

// writebackTests runs the real-stack tests with the kernel write-back
// cache on (MESHDRIVE_FS_WRITEBACK=1).
var writebackTests = os.Getenv("MESHDRIVE_FS_WRITEBACK") != ""

// stack is one drive on the real stack and its mount.
type stack struct {
	t      testing.TB
	o      stackOptions
	base   string // holds data/ and the node dirs
	mnt    string
	stores []*downStore
	grid   *remote.Grid
	sealer *remote.Sealer
	drive  *Drive
	srv    *fuse.Server
}

func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	requireFUSE(t)
	if o.BlockSize == 0 {
		o.BlockSize = 64 << 10
	}
	s := &stack{t: t, o: o, base: t.TempDir(), mnt: t.TempDir()}
	if o.AllowOther {
		// t.TempDir makes 0700 directories; other users must reach the
		// mount.
		if err := os.Chmod(filepath.Dir(s.mnt), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	master := make([]byte, 32)
	rand.Read(master)
	var err error
	if s.sealer, err = remote.NewSealer(master); err != nil {
		t.Fatal(err)
	}
	var members []remote.Member
	for i := 0; i < gridK+gridM; i++ {
		name := fmt.Sprintf("node-%d", i)
		dir := filepath.Join(s.base, "nodes", name)
		var st remote.Store
		if o.HTTP {
			srv, err := nodeserver.NewServer(nodeserver.ServerOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			t.Cleanup(hs.Close)
			c, err := nodeserver.NewClient(hs.URL, nodeserver.ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st = c
		} else {
			ds, err := dirstore.New(dir, dirstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			st = ds
		}
		w := &downStore{Store: st, name: name}
		s.stores = append(s.stores, w)
		members = append(members, remote.Member{Name: name, Store: w})
	}
	s.grid, err = remote.NewGrid(remote.GridOptions{K: gridK, M: gridM, Members: members, Sealer: s.sealer, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.open()
	s.mount()
	t.Cleanup(s.close)
	// A hung request would leave a process that cannot exit: dump the
	// goroutines and abort the connection instead.
	t.Cleanup(watchdog(t, s.mnt, stackWatchdog))
	return s
}

func (s *stack) driveOptions() DriveOptions {
	return DriveOptions{
		DataDir:       filepath.Join(s.base, "data"),
		Grid:          s.grid,
		Sealer:        s.sealer,
		BlockSize:     s.o.BlockSize,
		AllowOther:    s.o.AllowOther,
		CacheMemBytes: s.o.CacheMem,
		Writeback:     writebackTests,
		ObserveOp:     s.o.ObserveOp,
		Logger:        testLogger(),
	}
}

func (s *stack) open() {
	s.t.Helper()
	d, err := OpenDrive(context.Background(), s.driveOptions())
	if err != nil {
		s.t.Fatal(err)
	}
	s.drive = d
}

func (s *stack) mount() {
	s.t.Helper()
	srv, err := s.drive.Mount(s.mnt)
	if err != nil {
		s.t.Fatal(err)
	}
	s.srv = srv
}

// close unmounts and closes the drive (what a clean shutdown does).
func (s *stack) close() {
	if s.srv != nil {
		unmount(s.t, s.srv, s.mnt)
		s.srv = nil
	}
	if s.drive != nil {
		if err := s.drive.Close(); err != nil {
			s.t.Errorf("close drive: %v", err)
		}
		s.drive = nil
	}
}

// remount is unmount, Drive.Close, OpenDrive and Mount.
func (s *stack) remount() {
	s.t.Helper()
	s.close()
	s.open()
	s.mount()
}

// stackWatchdog bounds one test on a mounted stack.
var stackWatchdog = 8 * time.Minute
