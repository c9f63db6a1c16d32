package fs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/journal"
)

// Kernel cache lifetimes. The kernel invalidates its own entries and
// attributes for every change made through this mount, and every change
// to the drive's names is made through it (one mount per journal,
// enforced by the data dir lock; the web app writes through the mount
// too), so a name the kernel has looked up stays right until the kernel
// itself changes it (the one name the mount process removes by itself,
// O_TMPFILE's hidden one, it tells the kernel to forget: Tmpfile).
// Entries are therefore kept for a minute, not
// libfuse's second: a name created, listed or looked up a little while
// ago is not asked for again before its unlink, rename or open (rm of
// files made a few seconds before took one LOOKUP each, a third of the
// unlink's time; docs/BENCHMARKS.md). The minute only bounds how long a
// mistake could last. The snapshots' trees keep one second
// (snapshotEntryTimeout): the mount process deletes snapshots, not the
// kernel. Attributes keep one second: the journal changes some by
// itself (st_blocks after a flush), and one second keeps a stat-heavy
// workload (ls -l, make, git status) to about one GETATTR per file per
// second. Negative entries are cached for a second: a create through
// this mount replaces the negative dentry at once, and build tools probe
// many missing paths.
const (
	attrTimeout     = time.Second
	entryTimeout    = time.Minute
	negativeTimeout = time.Second
)

// MountOptions configure Mount.
type MountOptions struct {
	// AllowOther lets users other than the mounting one use the mount
	// (permissions are still checked by the kernel: default_permissions).
	AllowOther bool
	// ReadOnly mounts with "ro"; the kernel refuses every change.
	ReadOnly bool
	// Writeback turns on the kernel's write-back cache: write(2) lands in
	// the page cache and reaches the journal in large WRITEs on close,
	// fsync or memory pressure. The kernel then owns mtime and ctime of
	// written files and sends them in a SETATTR (FATTR_CTIME), which the
	// journal stores as given. Off by default: it did not make cp -a
	// faster here (docs/BENCHMARKS.md), and written bytes wait in the
	// kernel, out of the journal's quota, so a full journal is reported
	// at close or fsync instead of by the write. The real-stack tests run
	// with it on under MESHDRIVE_FS_WRITEBACK=1.
	Writeback bool
	// Snapshots, when set, serves MOUNT/.snapshots (read-only).
	Snapshots Snapshotter
	// Observe, when set, is told of every FUSE request (metrics).
	Observe OpObserver
	// Pins, when set, handles the PinXattr xattr (pin, unpin).
	Pins Pins
	// ShardsDown, when set, says whether a shard of a file's data is on
	// a node that is down now: the status xattr says degraded then, not
	// durable (Drive.Mount sets it from the grid's health looks).
	ShardsDown func(ctx context.Context, ino journal.Ino) (bool, error)
	// Debug logs every FUSE request (very verbose).
	Debug  bool
	Logger *slog.Logger
}

// Mount mounts the drive whose namespace and data are j on mountpoint and
// serves it until the returned server is unmounted. It returns once the
// kernel has the mount ready (server.WaitMount), so callers may use the
// path at once.
func Mount(mountpoint string, j Journal, o MountOptions) (*fuse.Server, error) {
	m, err := mount(mountpoint, j, o)
	if err != nil {
		return nil, err
	}
	return m.server, nil
}

// mounted is a mount's server and the root of its tree of inodes.
type mounted struct {
	server *fuse.Server
	root   *node
}

func mount(mountpoint string, j Journal, o MountOptions) (*mounted, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	marks := new(sync.Map)
	root := &node{fsys: &fileSystem{j: j, log: log, attrTimeout: attrTimeout, snaps: o.Snapshots, pins: o.Pins, killMarks: marks,
		noLseek: o.Writeback, shardsDown: o.ShardsDown}}
	a, err := j.GetAttr(context.Background(), journal.RootIno)
	if err != nil {
		return nil, fmt.Errorf("mount %s: reading the root directory from the journal: %w", mountpoint, err)
	}
	root.last = packAttr(a)
	if o.Snapshots != nil {
		root.fsys.slots = newSlotTable()
	}

	opts := options(o, log)
	var raw fuse.RawFileSystem = &killPrivFS{RawFileSystem: fusefs.NewNodeFS(root, opts), marks: marks}
	if o.Observe != nil {
		raw = &observedFS{RawFileSystem: raw, obs: o.Observe}
	}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err == nil {
		go server.Serve()
		err = server.WaitMount() // a failed mount ends the serve loop by itself
	}
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w (is /dev/fuse present and the mountpoint an empty directory?)", mountpoint, err)
	}
	raiseReadAhead(mountpoint, opts.MaxReadAhead, log)
	noAtime(mountpoint, log)
	return &mounted{server: server, root: root}, nil
}

// noAtime makes the mount at mountpoint noatime, so that it says what the
// drive does: a read never moves a file's atime (only touch, utimensat and
// the like set it). mount(2) would show relatime, the kernel's default,
// which the drive never honoured; keeping relatime's promise would cost
// the read path a check and a batched journal write, for a time almost
// nothing reads. Per-mount flags are set by a bind remount after the
// mount, which only root may do (go-fuse's direct mount takes no atime
// flag): a mount made through fusermount3 keeps relatime, and the log
// says so.
func noAtime(mountpoint string, log *slog.Logger) {
	opts, err := mountFlags(mountpoint)
	if err == nil && opts["noatime"] {
		return
	}
	if err == nil {
		// A remount sets every per-mount flag: keep the ones it has.
		flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOATIME)
		for name, f := range map[string]uintptr{"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID,
			"nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC} {
			if opts[name] {
				flags |= f
			}
		}
		err = unix.Mount("", mountpoint, "", flags, "")
	}
	if err != nil {
		log.Info("fs: the mount stays relatime (making it noatime needs root); reads do not move atime all the same",
			"mountpoint", mountpoint, "err", err)
	}
}

// mountFlags returns the per-mount options of the mount at mountpoint
// (ro or rw, nosuid, noatime...), from /proc/self/mountinfo by the
// mount's id. Not from statfs(2): that is a call into the drive, which
// asks every node for its capacity, and a node that does not answer
// held the mount back for seconds.
func mountFlags(mountpoint string) (map[string]bool, error) {
	var stx unix.Statx_t
	// No sync: the kernel answers from what it has, without a GETATTR.
	if err := unix.Statx(unix.AT_FDCWD, mountpoint, unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID, &stx); err != nil {
		return nil, err
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return nil, fmt.Errorf("the kernel does not report the mount id of %s (Linux 5.8 or later does)", mountpoint)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	id := strconv.FormatUint(stx.Mnt_id, 10)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[0] == id {
			opts := map[string]bool{}
			for _, o := range strings.Split(f[5], ",") {
				opts[o] = true
			}
			// A read-only superblock (a read-only drive's) makes the
			// mount read-only too, as statfs would say: ro, not rw.
			if i := slices.Index(f[6:], "-"); i >= 0 && len(f) > 6+i+3 &&
				slices.Contains(strings.Split(f[6+i+3], ","), "ro") {
				delete(opts, "rw")
				opts["ro"] = true
			}
			return opts, nil
		}
	}
	return nil, fmt.Errorf("mount %s (id %s) is not in /proc/self/mountinfo", mountpoint, id)
}

// raiseReadAhead sets the kernel's read-ahead for the mount at mountpoint
// to want bytes. The kernel takes the smaller of the MaxReadAhead the
// daemon asks for and its own default of 128 KiB, so without this a
// sequential read reaches the drive in 128 KiB READs, eight times the
// round trips of 1 MiB ones (docs/BENCHMARKS.md). The setting is the
// mount's own backing device (/sys/class/bdi/MAJOR:MINOR, gone with the
// mount), and only root may write it: otherwise the default stays, and
// the drive works as before.
func raiseReadAhead(mountpoint string, want int, log *slog.Logger) {
	p, err := readAheadPath(mountpoint)
	if err == nil {
		if cur, ok := readAheadKB(p); ok && cur >= want>>10 {
			return
		}
		err = os.WriteFile(p, []byte(strconv.Itoa(want>>10)), 0)
	}
	if err != nil {
		log.Info("fs: the kernel's read-ahead for this mount stays at its default (raising it needs root): big files are read in smaller requests; root may write want_kb to file",
			"mountpoint", mountpoint, "file", p, "want_kb", want>>10, "err", err)
	}
}

// readAheadPath is the sysfs file of the read-ahead of the file system
// mounted at mountpoint.
func readAheadPath(mountpoint string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)), nil
}

// readAheadKB reads a read_ahead_kb file.
func readAheadKB(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	kb, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return kb, err == nil
}

// options are the go-fuse settings of a meshdrive mount.
func options(o MountOptions, log *slog.Logger) *fusefs.Options {
	attr, entry, neg := attrTimeout, entryTimeout, negativeTimeout
	mo := fuse.MountOptions{
		AllowOther: o.AllowOther,
		// The kernel checks permissions against our attributes, with the
		// sticky-directory, set-ID clearing and access(2) rules of a local
		// disk; the daemon never second-guesses it.
		Options: []string{"default_permissions"},
		// 1 MiB requests: fewer round trips for large reads and writes
		// (the read-ahead takes raiseReadAhead too).
		MaxWrite:     1 << 20,
		MaxReadAhead: 1 << 20,
		// Enough parallel background requests (read-ahead, write-back)
		// to keep the journal and the cache busy.
		MaxBackground: 64,
		FsName:        "meshdrive",
		Name:          "meshdrive",
		// We run as root in production and tests: mount(2) directly.
		// go-fuse falls back to fusermount3 when that fails (not root).
		DirectMount: true,
		// The kernel asks for security.capability before every write to
		// know whether to clear it; answer "none" without a round trip
		// into the journal. (Other security.* xattrs still work; the
		// drive keeps no file capabilities, see capabilityXattr.)
		IgnoreSecurityLabels: true,
		// Only this mount changes the drive, so the kernel never needs to
		// drop cached pages because an mtime moved; it drops them itself
		// on truncate.
		ExplicitDataCacheControl: true,
		Debug:                    o.Debug,
	}
	// Set-ID bits are cleared by us, on the kernel's word, and the kernel
	// stops asking for security.capability before every write
	// (killpriv.go).
	mo.ExtraCapabilities = fuse.CAP_HANDLE_KILLPRIV_V2
	if o.Writeback {
		// The kernel then owns size and times of cached inodes; a write
		// to a file whose set-ID bits it must drop skips the cache and
		// comes to us flagged.
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	if o.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	// go-fuse's own complaints go to the drive's log, not to stderr.
	mo.Logger = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	if o.Debug {
		mo.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	return &fusefs.Options{
		MountOptions:    mo,
		AttrTimeout:     &attr,
		EntryTimeout:    &entry,
		NegativeTimeout: &neg,
		// Keep the modes the journal reports, even 0000.
		NullPermissions: true,
		RootStableAttr:  &fusefs.StableAttr{Ino: uint64(journal.RootIno)},
		Logger:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
