package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// workload is one measurement, run the same way on every mount.
type workload struct {
	name   string // short id: profile file names, --only-workloads
	title  string // row title in the report
	unit   string // "MB/s", "ops/s", "files/s", "entries/s"
	target float64
	// cold: drop the kernel's caches and the daemon's own cache first.
	cold bool
	// repeat: the workload changes nothing (or, the write, rewrites the
	// file with other bytes each round, so nothing dedups), so it runs
	// --rounds times and the best round counts (interference on a shared
	// machine only ever slows a round down).
	repeat bool
	// remount: unmount and mount again first (and drop the kernel's
	// caches); remountWipe also deletes the drive's disk cache.
	remount int
	// prep, when set, runs untimed before each measurement, on the
	// mount point dir.
	prep func(w *workspace, dir string) error
	// run does the work under dir (the mount point) and returns the
	// amount done in the unit's numerator (bytes, ops, files, entries).
	run func(ctx context.Context, w *workspace, dir string) (float64, error)
}

// workspace holds what the workloads share across mounts.
type workspace struct {
	size     int64    // bytes of the big file
	randOps  int      // random reads
	files    int      // entries for create/stat/readdir
	unlinks  int      // empty files made (untimed) and unlinked
	src      string   // source tree to copy
	srcFiles int      // regular files in src
	srcBytes int64    // their bytes
	pattern  []byte   // incompressible bytes the big file is cut from
	offsets  []int64  // the random read offsets, the same on every mount
	names    []string // the create/stat entry names
	eintr    int      // EINTR answers retried, reset by measure
	round    int      // the round being measured, set by measure
	gen      int      // the round whose bytes the big file holds (set by seqWrite)
}

// Remount modes of a workload.
const (
	remountKeep = 1 // the drive keeps its disk cache
	remountWipe = 2 // the drive's disk cache is deleted
)

const (
	ioSize   = 1 << 20 // sequential I/O size
	randSize = 4096
	bigName  = "big"
	manyDir  = "many"
	treeDir  = "tree"
	goneDir  = "gone"
)

func newWorkspace(size int64, randOps, files, unlinks int, src string) (*workspace, error) {
	w := &workspace{size: size, randOps: randOps, files: files, unlinks: unlinks, src: src}
	// 64 MiB of random bytes (or the file's size if smaller): every 4 MiB
	// block of the file is distinct and incompressible, so the drive can
	// neither dedup nor compress it away.
	n := min(size, 64<<20)
	n = (n + ioSize - 1) / ioSize * ioSize
	w.pattern = make([]byte, n)
	rng := rand.NewChaCha8([32]byte{'m', 'e', 's', 'h', 'b', 'e', 'n', 'c', 'h'})
	rng.Read(w.pattern)

	pages := size / randSize
	if pages < 1 {
		return nil, fmt.Errorf("--size %d is smaller than one %d-byte read", size, randSize)
	}
	r := rand.New(rand.NewPCG(1, 2))
	w.offsets = make([]int64, randOps)
	for i := range w.offsets {
		w.offsets[i] = r.Int64N(pages) * randSize
	}
	w.names = make([]string, files)
	for i := range w.names {
		w.names[i] = fmt.Sprintf("f%07d", i)
	}
	return w, w.scanSource()
}

// scanSource counts the source tree and reads it, so that the mount that
// copies it does not also pay for reading it from disk (cold workloads
// drop it from the page cache).
func (w *workspace) scanSource() error {
	w.srcFiles, w.srcBytes = 0, 0
	buf := make([]byte, ioSize)
	return filepath.WalkDir(w.src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("source tree: %w", err)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("source tree: %w", err)
		}
		defer f.Close()
		n, err := io.CopyBuffer(io.Discard, f, buf)
		if err != nil {
			return fmt.Errorf("source tree: %w", err)
		}
		w.srcFiles++
		w.srcBytes += n
		return nil
	})
}

// workloads lists the measurements in the order they run; later ones use
// what earlier ones left (the big file, the many-entry directory).
func workloads() []workload {
	return []workload{
		{name: "write", title: "sequential write + fsync", unit: "MB/s", target: 1.0, repeat: true, run: seqWrite},
		// The file a user just copied in, opened after a remount (or a
		// reboot): once, as only the first read finds it just written.
		{name: "read-written", title: "sequential read after remount, just written", unit: "MB/s",
			remount: remountKeep, run: seqRead},
		{name: "read-cold", title: "sequential read, cold", unit: "MB/s", cold: true, repeat: true, run: seqRead},
		{name: "read-warm", title: "sequential read, warm", unit: "MB/s", target: 1.0, repeat: true, run: seqRead},
		{name: "read-remount", title: "sequential read after remount, disk cache kept", unit: "MB/s", target: 0.5,
			repeat: true, remount: remountKeep, run: seqRead},
		{name: "rand-4k", title: "random 4 KiB reads, warm", unit: "ops/s", repeat: true, run: randRead},
		{name: "rand-4k-remount", title: "random 4 KiB reads after remount, disk cache kept", unit: "ops/s", target: 0.5,
			repeat: true, remount: remountKeep, run: randRead},
		{name: "rand-4k-wiped", title: "random 4 KiB reads after remount, disk cache wiped", unit: "ops/s", target: 0.2,
			repeat: true, remount: remountWipe, run: randRead},
		{name: "copy-tree", title: "copy source tree (cp -a)", unit: "files/s", target: 0.7, run: copyTree,
			prep: func(w *workspace, _ string) error { return w.scanSource() }},
		// The copied tree read back after a remount (or a reboot), as grep
		// -r or a build reads a folder just copied in.
		{name: "read-tree", title: "read copied tree after remount", unit: "files/s",
			remount: remountKeep, run: readTree, prep: haveTree},
		{name: "create", title: "create empty files in one dir", unit: "ops/s", target: 0.8, run: createMany},
		{name: "stat", title: "stat entries, cold", unit: "ops/s", target: 1.0, cold: true, repeat: true, run: statMany},
		{name: "stat-random", title: "stat entries in random order, cold", unit: "ops/s", target: 1.0, cold: true, repeat: true, run: statRandom},
		{name: "readdir", title: "readdir of the dir, cold", unit: "entries/s", cold: true, repeat: true, run: readdirMany},
		{name: "unlink", title: "unlink empty files in one dir", unit: "ops/s", target: 0.5, run: unlinkMany, prep: makeGone},
		{name: "rm-tree", title: "remove source tree (rm -rf)", unit: "files/s", target: 0.5, run: removeTree, prep: haveTree},
	}
}

// seqWrite writes the big file in 1 MiB writes, fsyncs and closes it.
func seqWrite(ctx context.Context, w *workspace, dir string) (float64, error) {
	w.gen = w.round
	f, err := os.OpenFile(filepath.Join(dir, bigName), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, ioSize) // owned here; the pattern is never written to
	for off := int64(0); off < w.size; off += ioSize {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n := w.chunk(buf, off)
		if _, err := f.Write(buf[:n]); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close: %w", err)
	}
	return float64(w.size), nil
}

// chunk fills buf with the big file's bytes at off (a multiple of ioSize)
// and returns how many there are.
func (w *workspace) chunk(buf []byte, off int64) int {
	n := int(min(ioSize, w.size-off))
	p := off % int64(len(w.pattern))
	copy(buf[:n], w.pattern[p:])
	// Stamp every 4 KiB page with its offset and the write's round: no
	// two pages are equal, and no round's file dedups against another's.
	for i := 0; i+8 <= n; i += randSize {
		binary.LittleEndian.PutUint64(buf[i:], uint64(off)+uint64(i)|uint64(w.gen)<<56)
	}
	return n
}

// verifyBig reads the big file back and compares every byte with what
// seqWrite wrote: figures for a filesystem that returns wrong bytes are
// worthless. It is not timed.
func verifyBig(ctx context.Context, w *workspace, dir string) error {
	f, err := os.Open(filepath.Join(dir, bigName))
	if err != nil {
		return err
	}
	defer f.Close()
	got, want := make([]byte, ioSize), make([]byte, ioSize)
	for off := int64(0); off < w.size; off += ioSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := w.chunk(want, off)
		if _, err := io.ReadFull(f, got[:n]); err != nil {
			return fmt.Errorf("read back at %d: %w", off, err)
		}
		if !bytes.Equal(got[:n], want[:n]) {
			return fmt.Errorf("the big file differs from what was written in the MiB at offset %d", off)
		}
	}
	return nil
}

// seqRead reads the big file start to end in 1 MiB reads and checks its
// length (its bytes are checked once, by the smoke test).
func seqRead(ctx context.Context, w *workspace, dir string) (float64, error) {
	f, err := os.Open(filepath.Join(dir, bigName))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, ioSize)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := f.Read(buf)
		total += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if total != w.size {
		return 0, fmt.Errorf("read %d bytes of a %d-byte file", total, w.size)
	}
	return float64(total), nil
}

// randRead does w.randOps 4 KiB preads at the same pseudo-random page
// offsets on every mount.
func randRead(ctx context.Context, w *workspace, dir string) (float64, error) {
	f, err := os.Open(filepath.Join(dir, bigName))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, randSize)
	for i, off := range w.offsets {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		if n, err := f.ReadAt(buf, off); n != randSize {
			return 0, fmt.Errorf("pread at %d: %d bytes: %w", off, n, err)
		}
	}
	return float64(len(w.offsets)), nil
}

// copyTree runs cp -a of the source tree into the mount: a real tool,
// with its chmod, chown, utimes and xattr calls.
func copyTree(ctx context.Context, w *workspace, dir string) (float64, error) {
	dst := filepath.Join(dir, treeDir)
	cmd := exec.CommandContext(ctx, "cp", "-a", w.src, dst)
	// cp must not outlive the driver: it would keep the mount busy.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("cp -a %s: %w: %s", w.src, err, out)
	}
	return float64(w.srcFiles), nil
}

// readTree reads every file of the copied source tree and checks it
// against the source (warm in the page cache since scanSource). The unit
// is the tree's files.
func readTree(ctx context.Context, w *workspace, dir string) (float64, error) {
	root := filepath.Join(dir, treeDir)
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(w.src, rel))
		if err != nil {
			return fmt.Errorf("source tree: %w", err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: read %d bytes that differ from the source's %d", rel, len(got), len(want))
		}
		files++
		return nil
	})
	if err != nil {
		return 0, err
	}
	if files != w.srcFiles {
		return 0, fmt.Errorf("read %d files of a tree of %d", files, w.srcFiles)
	}
	return float64(files), nil
}

// createMany creates w.files empty files in one directory.
func createMany(ctx context.Context, w *workspace, dir string) (float64, error) {
	d := filepath.Join(dir, manyDir)
	if err := os.Mkdir(d, 0o755); err != nil {
		return 0, err
	}
	for i, name := range w.names {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		f, err := os.OpenFile(filepath.Join(d, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return 0, err
		}
		if err := f.Close(); err != nil {
			return 0, err
		}
	}
	return float64(len(w.names)), nil
}

// statMany lstats every entry createMany made, in the order it made
// them (which is readdir's order: what ls -l and file managers do).
func statMany(ctx context.Context, w *workspace, dir string) (float64, error) {
	return statNames(ctx, w, dir, w.names)
}

// statRandom lstats the same entries in a shuffled order (the same on
// every mount): no read-ahead of either file system helps.
func statRandom(ctx context.Context, w *workspace, dir string) (float64, error) {
	names := slices.Clone(w.names)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(names), func(i, k int) { names[i], names[k] = names[k], names[i] })
	return statNames(ctx, w, dir, names)
}

func statNames(ctx context.Context, w *workspace, dir string, names []string) (float64, error) {
	d := filepath.Join(dir, manyDir)
	var st unix.Stat_t
	for i, name := range names {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		err := unix.Lstat(filepath.Join(d, name), &st)
		for errors.Is(err, unix.EINTR) {
			// A FUSE request interrupted by a signal (the Go runtime's
			// preemption) answers EINTR when the daemon honours the
			// interrupt; Go's os package retries, and so do we, counting.
			w.eintr++
			err = unix.Lstat(filepath.Join(d, name), &st)
		}
		if err != nil {
			return 0, fmt.Errorf("lstat %s: %w", name, err)
		}
		if st.Size != 0 {
			return 0, fmt.Errorf("lstat %s: size %d, want 0", name, st.Size)
		}
	}
	return float64(len(w.names)), nil
}

// readdirMany lists the many-entry directory (names only, no stat).
func readdirMany(ctx context.Context, w *workspace, dir string) (float64, error) {
	f, err := os.Open(filepath.Join(dir, manyDir))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		names, err := f.Readdirnames(4096)
		n += len(names)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if n != len(w.names) {
		return 0, fmt.Errorf("readdir listed %d entries, want %d", n, len(w.names))
	}
	return float64(n), nil
}

// makeGone creates w.unlinks empty files in a directory of their own for
// unlinkMany (untimed), in the order unlinkMany removes them.
func makeGone(w *workspace, dir string) error {
	d := filepath.Join(dir, goneDir)
	if err := os.Mkdir(d, 0o755); err != nil {
		return err
	}
	for i := range w.unlinks {
		f, err := os.OpenFile(filepath.Join(d, fmt.Sprintf("u%07d", i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// unlinkMany unlinks the files makeGone made, in the order it made them,
// then removes their directory. What a file system leaves to do in the
// background after unlink returns (the drive's reaper) is not timed.
func unlinkMany(ctx context.Context, w *workspace, dir string) (float64, error) {
	d := filepath.Join(dir, goneDir)
	for i := range w.unlinks {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		p := filepath.Join(d, fmt.Sprintf("u%07d", i))
		err := unix.Unlink(p)
		for errors.Is(err, unix.EINTR) {
			w.eintr++ // see statNames
			err = unix.Unlink(p)
		}
		if err != nil {
			return 0, fmt.Errorf("unlink %s: %w", p, err)
		}
	}
	if err := os.Remove(d); err != nil {
		return 0, err
	}
	return float64(w.unlinks), nil
}

// haveTree makes sure the copy of the source tree is there for removeTree:
// copy-tree left it, unless only this workload runs (then it is copied
// here, untimed).
func haveTree(w *workspace, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, treeDir)); err == nil {
		return nil
	}
	_, err := copyTree(context.Background(), w, dir)
	return err
}

// removeTree runs rm -rf of the copied source tree: a real tool, with its
// readdir, unlinkat and rmdir calls. The unit is the tree's files.
func removeTree(ctx context.Context, w *workspace, dir string) (float64, error) {
	cmd := exec.CommandContext(ctx, "rm", "-rf", filepath.Join(dir, treeDir))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("rm -rf: %w: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, treeDir)); !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("rm -rf left the tree: %v", err)
	}
	return float64(w.srcFiles), nil
}

// dropCaches writes back dirty pages and drops the page, dentry and inode
// caches. It needs root; the caller reports when it could not.
func dropCaches() error {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop caches (needs root; cold figures are warm without it): %w", err)
	}
	return nil
}

// timed runs fn and returns its duration.
func timed(fn func() error) (time.Duration, error) {
	t0 := time.Now()
	err := fn()
	return time.Since(t0), err
}
