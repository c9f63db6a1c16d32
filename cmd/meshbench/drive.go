//go:build !nodrive

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
)

// driveBuilt says this binary can mount the drive (C); a build with
// -tags nodrive measures the loopbacks only.
const driveBuilt = true

// driveMount is the meshdrive drive over a local grid.
type driveMount struct {
	mnt string
	d   *fs.Drive
	srv *fuse.Server
}

// limitOnce applies the drive's memory limit once in a serving process;
// its shed goes to the drive mounted now (remounts replace it).
var (
	limitOnce    sync.Once
	mountedDrive atomic.Pointer[fs.Drive]
)

// shedMounted is LimitMemory's shed: the mounted drive's memory cache.
func shedMounted(n int64) int64 {
	if d := mountedDrive.Load(); d != nil {
		return d.ShedMemory(n)
	}
	return 0
}

// mountDrive builds a grid of k+m dirstores under DATA/nodes (on the disk
// under test), seals with a random key (made at the first mount and kept in
// DATA/bench.key for remounts) and mounts the drive at mnt.
func mountDrive(ctx context.Context, a serveArgs, log *slog.Logger) (*driveMount, error) {
	keyFile := filepath.Join(a.data, "bench.key")
	key, err := os.ReadFile(keyFile)
	if errors.Is(err, iofs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err = rand.Read(key); err == nil {
			err = os.WriteFile(keyFile, key, 0o600)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("drive key: %w", err)
	}
	sealer, err := remote.NewSealer(key)
	if err != nil {
		return nil, fmt.Errorf("drive sealer: %w", err)
	}
	members := make([]remote.Member, gridK+gridM)
	for i := range members {
		name := fmt.Sprintf("node-%d", i)
		st, err := dirstore.New(filepath.Join(a.data, "nodes", name), dirstore.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("node store %s: %w", name, err)
		}
		members[i] = remote.Member{Name: name, Store: st}
	}
	grid, err := remote.NewGrid(remote.GridOptions{K: gridK, M: gridM, Members: members, Sealer: sealer, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("local grid: %w", err)
	}
	if os.Getenv("GOMEMLIMIT") == "" { // as meshdrive mount does; once per process (remounts)
		limitOnce.Do(func() { fs.LimitMemory(context.Background(), fs.MemoryLimit(a.cacheMem), shedMounted) })
	}
	fs.RaiseProcs() // as meshdrive mount does
	d, err := fs.OpenDrive(ctx, fs.DriveOptions{
		DataDir:       a.data,
		Grid:          grid,
		Sealer:        sealer,
		CacheMemBytes: a.cacheMem,
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("open drive in %s: %w", a.data, err)
	}
	srv, err := d.Mount(a.mnt)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("mount drive at %s: %w", a.mnt, err)
	}
	mountedDrive.Store(d)
	return &driveMount{mnt: a.mnt, d: d, srv: srv}, nil
}

// Settle waits until everything written so far is grid-durable: its
// blocks uploaded and the metadata that names them shipped (SyncGrid), so
// the metadata shipper's work for one workload (a record of 100,000
// creates) does not fall into the next one's timed window.
func (m *driveMount) Settle(ctx context.Context) error { return m.d.SyncGrid(ctx) }

// ClearCache drops every unpinned block, so reads go to the grid.
func (m *driveMount) ClearCache() error { return m.d.ClearCache() }

func (m *driveMount) Counters() (int64, int64, int64) { return -1, -1, -1 }

func (m *driveMount) Info() string {
	return fmt.Sprintf("grid=dirstore k=%d m=%d", gridK, gridM)
}

func (m *driveMount) Unmount() error {
	uerr := unmountOrDetach(m.mnt, m.srv.Unmount)
	mountedDrive.CompareAndSwap(m.d, nil)
	cerr := m.d.Close()
	if uerr != nil {
		return fmt.Errorf("unmount drive: %w", uerr)
	}
	if cerr != nil {
		return fmt.Errorf("close drive: %w", cerr)
	}
	return nil
}
