package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/fs"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
	"github.com/meshdrive/meshdrive/web"
)

// daemonEnv is set in the detached child of mount --daemon: fd 3 carries
// the master key, fd 4 takes the one-line readiness report.
const daemonEnv = "MESHDRIVE_DAEMON_FDS"

// fuseDeviceEnv overrides the FUSE device path checked before mounting.
// TEST ONLY: it lets a test simulate a machine without /dev/fuse; the
// mount itself always uses the kernel's device.
const fuseDeviceEnv = "MESHDRIVE_FUSE_DEVICE"

// maxSockPath is the longest unix socket path Linux accepts.
const maxSockPath = 107

// Defaults of the mount flags.
const (
	defaultCacheSize = 4 << 30 // disk cache
)

type mountOptions struct {
	dataDir       string
	mountpoint    string
	cacheSize     int64
	cacheMem      int64
	pinBudget     int64
	uploadLimit   float64
	downloadLimit float64
	allowOther    bool
	readOnly      bool
	dropMissing   bool
	daemon        bool
	logLevel      string
	pass          passphraseSource
	// metaInterval: --metadata-interval (0: the config's, else the default).
	metaInterval time.Duration
	gcInterval   time.Duration
	// Background repair: bytes/s of shard traffic (0 unlimited), the
	// shard count below which a segment is repaired (0: k+m), and the
	// time between passes.
	repairLimit    float64
	repairBelow    int
	repairInterval time.Duration
	// webAddr: --web (the web app and API); "" when off.
	webAddr      string
	webMaxUpload int64
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runMount(e *env) error {
	fl := newFlagSet(e, "mount", "mount [--data DIR] [flags] MOUNTPOINT", `
Mount the drive at MOUNTPOINT (an existing empty directory) and serve it in the
foreground until it is unmounted (meshdrive unmount, Ctrl-C or SIGTERM, which
unmount after flushing the journal to local disk). With --daemon, detach once
the mount is ready (log in DATA/meshdrive.log); the exit code says whether the
mount got there.

If DATA holds no drive yet, a default drive is created first: its grid is 6
node directories under DATA/nodes, k=4 m=2 (--read-only creates nothing). Mounting never waits for the
nodes: with none reachable the drive mounts from its journal and cache and the
log says it is offline; writes wait in the journal and go up by themselves
when nodes come back. Small and fsync'd files upload before bulk copies.
--upload-limit and --download-limit hold the traffic to all nodes together;
"bandwidth_schedule" in DATA/config.json overrides them by the hour, for
example "08:00-18:00 1MiB/s, otherwise unlimited" (re-read every 2 s).
The passphrase comes from --passphrase-file, else $MESHDRIVE_PASSPHRASE,
else a prompt on the terminal.`)
	dataDir := dataDirFlag(e, fl)
	cacheSize := fl.String("cache-size", "4GiB", "disk cache size in bytes (suffixes K, M, G, T, KiB, MiB, GiB, TiB); small blocks written here are kept in the journal besides, up to a quarter of it; 0: no disk cache (every read the memory cache misses goes to the grid, and nothing can be pinned)")
	cacheMem := fl.String("cache-mem", "32MiB", "memory cache size in bytes (same suffixes): plaintext blocks and frames kept in RAM, most of the mount's memory; raise it for hot working sets larger than this")
	pinBudget := fl.String("pin-budget", "", "how much pinned files (meshdrive pin) may hold on this machine, in bytes (same suffixes; default: --cache-size); pinned blocks live in the disk cache and take their room from it")
	uploadLimit := fl.String("upload-limit", "0", "upload bandwidth limit in bytes/s, shards and metadata to every node together (same suffixes; 0 = unlimited); the config's bandwidth_schedule overrides it in its windows")
	downloadLimit := fl.String("download-limit", "0", "download bandwidth limit in bytes/s, reads from every node together (same suffixes; 0 = unlimited); the config's bandwidth_schedule overrides it in its windows")
	allowOther := fl.Bool("allow-other", false, "let other users access the mount (needs user_allow_other in /etc/fuse.conf for non-root)")
	readOnly := fl.Bool("read-only", false, "mount read-only")
	dropMissing := fl.Bool("drop-missing", false, "when staging files of blocks never uploaded are gone from DATA/journal/staging, mount anyway: those blocks are lost (reading them fails, status PATH says lost, writing the same bytes again brings them back) and everything else is kept")
	daemon := fl.Bool("daemon", false, "detach once the mount is ready; log to DATA/meshdrive.log")
	logLevel := fl.String("log-level", "info", "log level: debug, info, warn, error")
	passFile := fl.String("passphrase-file", "", "read the passphrase from this file")
	gcInterval := fl.Duration("gc-interval", time.Hour, "collect garbage (deleted data, compaction, orphaned shards) in the background this often; 0 = only by meshdrive gc")
	metaInterval := fl.Duration("metadata-interval", 0, "how far the grid's copy of the metadata may trail the journal while nodes are up (default: the config's metadata_interval, else 30s)")
	repairLimit := fl.String("repair-limit", "16MiB", "bandwidth of the background repair in bytes/s, shards read plus written (same suffixes; 0 = unlimited); it also holds back while reads and uploads run")
	repairBelow := fl.Int("repair-below", 0, "the background repair rebuilds segments with fewer than this many shards (default 0: k+m, any missing shard)")
	repairInterval := fl.Duration("repair-interval", 10*time.Minute, "time between background repair passes (one also runs at mount, after node add or remove, and 30s after the last one while segments miss shards, backing off while a node stays down); at mount and this often the drive key and config are also stored again on nodes that lost them")
	webMaxUpload := fl.String("web-max-upload", "4GiB", "the largest file the web app and API take in one upload (same suffixes); larger ones go through the mounted folder")
	webFlag := fl.String("web", defaultWebAddr, "serve the web app, the HTTP API and /metrics on this address (port 0: a free port, which meshdrive status and web-url print); off: none. Keep it on loopback unless you mean to share the drive")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if *gcInterval < 0 {
		return usageError("--gc-interval %v: want a positive interval like 1h, or 0 for gc only by meshdrive gc", *gcInterval)
	}
	if *metaInterval != 0 && *metaInterval < 100*time.Millisecond {
		return usageError("--metadata-interval %v: want at least 100ms, like 30s", *metaInterval)
	}
	if *readOnly && *dropMissing {
		return usageError("--drop-missing with --read-only: a read-only mount does not look at the staging folder and changes nothing; mount read-write to mark the missing blocks lost")
	}
	if len(pos) != 1 {
		return usageError("mount needs exactly one MOUNTPOINT (got %d arguments); see meshdrive mount --help", len(pos))
	}
	o := mountOptions{allowOther: *allowOther, readOnly: *readOnly, dropMissing: *dropMissing, daemon: *daemon, logLevel: *logLevel, metaInterval: *metaInterval, gcInterval: *gcInterval,
		pass: passphraseSource{file: *passFile, envVar: "MESHDRIVE_PASSPHRASE"}}
	if o.dataDir, err = dataDir(); err != nil {
		return err
	}
	if o.mountpoint, err = resolveMountpoint(pos[0]); err != nil {
		return err
	}
	if o.cacheSize, err = parseBytes(*cacheSize); err != nil || o.cacheSize < 0 {
		return usageError("--cache-size %q: want a byte count like 4GiB", *cacheSize)
	}
	if o.cacheMem, err = parseBytes(*cacheMem); err != nil || o.cacheMem < 0 {
		return usageError("--cache-mem %q: want a byte count like 32MiB", *cacheMem)
	}
	if *pinBudget != "" {
		if o.pinBudget, err = parseBytes(*pinBudget); err != nil || o.pinBudget <= 0 {
			return usageError("--pin-budget %q: want a byte count like 10GiB", *pinBudget)
		}
		if o.cacheSize == 0 {
			return usageError("--pin-budget with --cache-size 0: pinned files live in the disk cache; give the cache a size")
		}
	}
	ul, err := parseBytes(*uploadLimit)
	if err != nil || ul < 0 {
		return usageError("--upload-limit %q: want bytes per second like 10MiB", *uploadLimit)
	}
	o.uploadLimit = float64(ul)
	dl, err := parseBytes(*downloadLimit)
	if err != nil || dl < 0 {
		return usageError("--download-limit %q: want bytes per second like 10MiB", *downloadLimit)
	}
	o.downloadLimit = float64(dl)
	rl, err := parseBytes(*repairLimit)
	if err != nil || rl < 0 {
		return usageError("--repair-limit %q: want bytes per second like 16MiB", *repairLimit)
	}
	o.repairLimit = float64(rl)
	if *repairBelow < 0 {
		return usageError("--repair-below %d: want a shard count from 1 to k+m, or 0 for k+m", *repairBelow)
	}
	o.repairBelow = *repairBelow
	if *repairInterval < time.Second {
		return usageError("--repair-interval %v: want at least 1s, like 10m", *repairInterval)
	}
	o.repairInterval = *repairInterval
	webAddr, webOff, err := parseWebAddr(*webFlag)
	if err != nil {
		return err
	}
	if !webOff {
		o.webAddr = webAddr
	}
	if o.webMaxUpload, err = parseBytes(*webMaxUpload); err != nil || o.webMaxUpload <= 0 {
		return usageError("--web-max-upload %q: want a byte count like 4GiB", *webMaxUpload)
	}
	log, err := newLogger(e.stderr, o.logLevel)
	if err != nil {
		return err
	}
	if e.getenv(daemonEnv) != "" {
		return runDaemonChild(e, o, log)
	}

	// Refusals first, cheapest first, before anything is made or asked.
	if sock := filepath.Join(o.dataDir, controlSock); len(sock) > maxSockPath {
		return fmt.Errorf("data dir %s is too long a path for the control socket (%d bytes, at most %d); choose a shorter --data", o.dataDir, len(sock), maxSockPath)
	}
	if err := checkReadOnlyDrive(o); err != nil {
		return err
	}
	if err := checkRepairBelow(o); err != nil {
		return err
	}
	if err := checkMountpoint(o.mountpoint); err != nil {
		return err
	}
	if err := checkFuseDevice(e, o.allowOther); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	cfg, master, err := openOrCreate(ctx, e, o, log)
	if err != nil {
		return err
	}
	defer clear(master)
	if o.daemon {
		return startDaemon(ctx, e, o, master)
	}
	return serveMount(ctx, o, cfg, master, log, func(error) {})
}

// openOrCreate loads the drive config and unlocks the key, creating the
// default drive when DATA has none.
func openOrCreate(ctx context.Context, e *env, o mountOptions, log *slog.Logger) (*Config, []byte, error) {
	cfg, err := loadConfig(o.dataDir)
	if errors.Is(err, errNoDrive) {
		if err := probeLockIfExists(o.dataDir); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(e.stderr, "meshdrive: no drive at %s yet; creating one (grid on this machine, k=%d m=%d).\n", o.dataDir, defaultK, defaultM)
		cfg, master, err := createDrive(ctx, e, createOptions{dataDir: o.dataDir, pass: o.pass, log: log})
		if err != nil {
			return nil, nil, err
		}
		printProtectNotice(e.stderr, o.dataDir, cfg)
		return cfg, master, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if err := probeLock(o.dataDir); err != nil {
		return nil, nil, err
	}
	master, err := unlock(e, o.dataDir, o.pass)
	if err != nil {
		return nil, nil, err
	}
	return cfg, master, nil
}

func probeLockIfExists(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	return probeLock(dir)
}

// unlock reads DATA/key.json and unwraps it with the passphrase.
func unlock(e *env, dir string, src passphraseSource) ([]byte, error) {
	kp := filepath.Join(dir, keyFile)
	wrapped, err := os.ReadFile(kp)
	if err != nil {
		return nil, fmt.Errorf("cannot read the drive key %s: %w; restore it from a backup", kp, err)
	}
	if _, err := remoteopen.DecodeKey(wrapped); err != nil {
		return nil, fmt.Errorf("drive key %s is corrupt (%v); restore it from a backup, or rebuild the drive from the grid, "+
			"whose every node holds the key: meshdrive recover --node URL --data NEWDIR (changes not yet on the grid stay only in %s)", kp, err, dir)
	}
	pass, err := src.read(e, "Passphrase for the drive at "+dir, false)
	if err != nil {
		return nil, err
	}
	master, err := remoteopen.UnwrapKey(wrapped, pass)
	if errors.Is(err, remoteopen.ErrWrongPassphrase) {
		return nil, fmt.Errorf("wrong passphrase for drive at %s (key check failed): the passphrase was %s; give the drive's passphrase, "+
			"the new one if meshdrive passwd changed it; nothing was changed", dir, src.origin(e))
	}
	if err != nil {
		return nil, fmt.Errorf("drive key %s: %w", kp, err)
	}
	return master, nil
}

// checkReadOnlyDrive refuses a read-only mount of a data dir that holds no
// drive: mount would make the default drive there, and a read-only mount
// must not make anything. A config that does not load is left to the
// mount itself, which says what is wrong with it.
func checkReadOnlyDrive(o mountOptions) error {
	if !o.readOnly {
		return nil
	}
	if _, err := loadConfig(o.dataDir); errors.Is(err, errNoDrive) {
		return fmt.Errorf("no drive at %s (no %s), and a read-only mount makes none: create one with meshdrive init --data %s "+
			"(or mount without --read-only), or rebuild one from its grid with meshdrive recover --node URL --data %s; "+
			"if the drive lives elsewhere, give its data dir with --data", o.dataDir, configFile, o.dataDir, o.dataDir)
	}
	return nil
}

// checkRepairBelow refuses a --repair-below above k+m: a segment never has
// more than k+m shards, so such a value would only mean k+m. The drive's k+m
// comes from its config, or the default drive's when there is none yet (a
// config that does not load is reported by the mount itself).
func checkRepairBelow(o mountOptions) error {
	if o.repairBelow == 0 {
		return nil
	}
	n := defaultK + defaultM
	cfg, err := loadConfig(o.dataDir)
	switch {
	case err == nil:
		n = cfg.K + cfg.M
	case !errors.Is(err, errNoDrive):
		return nil
	}
	if o.repairBelow > n {
		return usageError("--repair-below %d: want a shard count from 1 to %d (k+m of the drive at %s), or 0 for %d: repair any missing shard",
			o.repairBelow, n, o.dataDir, n)
	}
	return nil
}

// checkMountpoint refuses a missing, non-directory, non-empty, stale or
// unwritable mountpoint.
func checkMountpoint(mp string) error {
	dead := func(err error) error {
		if deadMountErr(err) {
			return fmt.Errorf("mountpoint %s is a dead mount (its mount process is gone); clear it with meshdrive unmount %s", mp, mp)
		}
		return nil
	}
	fi, err := os.Stat(mp)
	if derr := dead(err); derr != nil {
		return derr
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("mountpoint %s does not exist; create it with mkdir -p %s", mp, mp)
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("no permission to use mountpoint %s", mp)
	}
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", mp, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mountpoint %s is not a directory", mp)
	}
	d, err := os.Open(mp)
	if err != nil {
		if derr := dead(err); derr != nil {
			return derr
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("no permission to mount on %s: you cannot read it", mp)
		}
		return fmt.Errorf("mountpoint %s: %w", mp, err)
	}
	names, rerr := d.Readdirnames(1)
	d.Close()
	if derr := dead(rerr); derr != nil {
		return derr
	}
	// An empty mounted drive looks like an empty directory; mounting over
	// it would hide it and leave two mounts on one path. (A dead mount is
	// caught above, with its own advice.)
	if fstype, ok := mountedAs(mp); ok {
		return fmt.Errorf("mountpoint %s is already a mount point (%s); unmount it first (meshdrive unmount %s) or mount on another empty directory", mp, fstype, mp)
	}
	if len(names) > 0 {
		return fmt.Errorf("mountpoint %s is not empty (it holds %q); mount on an empty directory", mp, names[0])
	}
	if err := unix.Access(mp, unix.W_OK); err != nil {
		return fmt.Errorf("no permission to mount on %s: it is not writable by you", mp)
	}
	return nil
}

// checkFuseDevice refuses when the FUSE device is missing or unusable.
func checkFuseDevice(e *env, allowOther bool) error {
	dev := "/dev/fuse"
	if v := e.getenv(fuseDeviceEnv); v != "" {
		dev = v
	}
	if _, err := os.Stat(dev); err != nil {
		return fmt.Errorf("%s is missing: load the fuse kernel module (modprobe fuse), or pass the device into this container", dev)
	}
	if os.Geteuid() == 0 {
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("cannot open %s: %v", dev, err)
		}
		f.Close()
		return nil
	}
	if _, err := lookFusermount(); err != nil {
		return errors.New("fusermount3 is not installed: install fuse3 (apt-get install fuse3) to mount as a non-root user")
	}
	if err := unix.Access(dev, unix.R_OK|unix.W_OK); err != nil {
		return fmt.Errorf("no permission to use %s (%v); ask for access to it", dev, err)
	}
	return nil
}

// mountWarning is what serveMount hands ready when the mount is ready
// but a person must hear something at once (mount --daemon prints it).
type mountWarning struct{ msg string }

func (w *mountWarning) Error() string { return w.msg }

// readOnlyLost warns of a read-only mount whose journal misses staging
// files of blocks never uploaded (nil otherwise): those files read EIO,
// and a read-only mount cannot mark them lost.
func readOnlyLost(ctx context.Context, o mountOptions, drive *fs.Drive) error {
	if !o.readOnly {
		return nil
	}
	l, err := drive.Lost(ctx)
	if err != nil || l.Blocks == 0 {
		return nil
	}
	return &mountWarning{fmt.Sprintf("mounted read-only, but %d blocks of %d files (%s) were never uploaded and their staging files are gone from %s: "+
		"reading those files fails (EIO) and status says lost. Put the staging files back if you have a copy and mount again, "+
		"or mount read-write with --drop-missing to keep everything else, then restore those files from a copy or delete them",
		l.Blocks, l.Files, strings.Join(l.Paths[:min(3, len(l.Paths))], ", "), filepath.Join(o.dataDir, "journal", "staging"))}
}

// serveMount mounts the drive and serves it until unmounted or signalled.
// ready is called once: nil (or a *mountWarning) when the mount is ready,
// or the error that stopped it.
func serveMount(ctx context.Context, o mountOptions, cfg *Config, master []byte, log *slog.Logger, ready func(error)) (err error) {
	reported := false
	defer func() {
		if !reported {
			ready(err)
		}
	}()
	lock, err := acquireLock(o.dataDir, o.mountpoint)
	if err != nil {
		return err
	}
	defer lock.release()
	bw, err := newBandwidth(o.dataDir, cfg, remoteopen.Rates{Up: o.uploadLimit, Down: o.downloadLimit}, log)
	if err != nil {
		return err
	}
	metrics := web.NewMetrics()
	stack := remoteopen.Stack{Limits: bw.limits, Metrics: metrics}
	grid, sealer, err := openGridStack(ctx, o.dataDir, cfg, master, log, false, stack)
	if err != nil {
		return err
	}
	mem := o.cacheMem
	if mem == 0 {
		mem = -1 // --cache-mem 0: no memory tier (the cache's 0 means its default)
	}
	disk := o.cacheSize
	if disk == 0 {
		disk = -1 // --cache-size 0: no disk tier, likewise
	}
	drive, err := fs.OpenDrive(ctx, fs.DriveOptions{
		DataDir: o.dataDir, Grid: grid, Sealer: sealer,
		CacheMemBytes: mem, CacheDiskBytes: disk, PinBudget: o.pinBudget,
		BlockSize: cfg.BlockSize, ReadOnly: o.readOnly, DropMissing: o.dropMissing, AllowOther: o.allowOther, Logger: log,
		MetaInterval: metaInterval(o, cfg), Retention: retention(cfg), GCInterval: o.gcInterval,
		ObserveOp:  metrics.ObserveFUSE,
		WrapBlocks: testHooks.wrapBlocks,
	})
	if err != nil {
		if o.readOnly && errors.Is(err, fs.ErrReadOnly) {
			// The journal needs a change a read-only open may not make
			// (an older schema to upgrade).
			return fmt.Errorf("cannot open the drive at %s read-only: %w; mount it once without --read-only, then read-only again", o.dataDir, err)
		}
		return fmt.Errorf("cannot open the drive at %s: %w", o.dataDir, err)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		fs.LimitMemory(ctx, fs.MemoryLimit(mem), drive.ShedMemory)
	}
	fs.RaiseProcs()
	defer func() {
		if cerr := drive.Close(); cerr != nil {
			log.Error("closing the drive", "err", cerr)
			if err == nil {
				err = fmt.Errorf("closing the drive: %w", cerr)
			}
		}
	}()
	srv, err := drive.Mount(o.mountpoint)
	if err != nil {
		return fmt.Errorf("cannot mount at %s: %w", o.mountpoint, err)
	}
	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()

	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	online := &onlineState{}
	go bw.follow(hctx)
	rep := startRepair(hctx, o, cfg, grid, drive, log)
	observe := func([]remoteopen.NodeHealth) {}
	if rep != nil {
		observe = rep.Observe
	}
	go watchHealth(hctx, grid, online, drive.NodesBack, drive.NodesUp, observe, log)
	ctl, err := startControl(controlOptions{dataDir: o.dataDir, mountpoint: o.mountpoint, cfg: cfg, drive: drive, grid: grid, readOnly: o.readOnly, log: log, repair: rep,
		stack: stack, bandwidth: bw, online: online, repairInterval: o.repairInterval})
	if err != nil {
		unmountServer(o.mountpoint, srv, served, log)
		return err
	}
	defer ctl.close()
	watchDrive(metrics, o.dataDir, drive, rep)
	closeWeb := func() {}
	if o.webAddr != "" {
		ws, err := startWeb(o, ctl, metrics)
		if err != nil {
			unmountServer(o.mountpoint, srv, served, log)
			return err
		}
		// Closed before the unmount: its requests hold files of the mount open.
		closeWeb = func() { ws.Close() }
		defer closeWeb()
	}

	log.Info("mounted", "data", o.dataDir, "mountpoint", o.mountpoint, "nodes", len(cfg.Nodes), "k", cfg.K, "m", cfg.M, "pid", os.Getpid())
	reported = true
	ready(readOnlyLost(ctx, o, drive))
	select {
	case <-served:
		log.Info("unmounted", "mountpoint", o.mountpoint)
	case <-ctx.Done():
		log.Info("signal: unmounting", "mountpoint", o.mountpoint)
		closeWeb()
		unmountServer(o.mountpoint, srv, served, log)
	}
	return nil
}

// unmountServer unmounts, retrying while the mount is busy, and detaches
// it lazily if it stays busy, then waits for the server to stop.
func unmountServer(mp string, srv interface{ Unmount() error }, served <-chan struct{}, log *slog.Logger) {
	delay := 50 * time.Millisecond
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := srv.Unmount()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log.Warn("mount still busy; detaching it lazily", "mountpoint", mp, "err", err)
			lazyUnmount(mp)
			break
		}
		select {
		case <-served:
			return
		case <-time.After(jitter(delay)):
		}
		delay = min(delay*2, time.Second)
	}
	select {
	case <-served:
	case <-time.After(30 * time.Second):
		log.Error("FUSE server did not stop after unmount", "mountpoint", mp)
	}
}

// healthEvery is how often the mount looks at its nodes.
const healthEvery = 5 * time.Second

// onlineState remembers since when no node has been reachable.
type onlineState struct {
	mu    sync.Mutex // guards since
	since time.Time  // zero while online
}

// observe records how many nodes are up at now; it reports whether the
// drive just came back online.
func (s *onlineState) observe(up int, now time.Time) (back bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case up == 0 && s.since.IsZero():
		s.since = now
	case up > 0 && !s.since.IsZero():
		s.since = time.Time{}
		return true
	}
	return false
}

// offlineSince is when the drive went offline (zero: it is online).
func (s *onlineState) offlineSince() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.since
}

// watchHealth looks at the nodes every healthEvery, records when the grid
// goes offline and comes back, and logs it; back is called when it comes
// back (the pinner fetches what it could not), nodesUp with the number of
// nodes that answer at every look (the uploader retries at once when
// enough to store a segment answer again), observe with every look (the
// repairer counts the segments short of shards again when a node goes
// down, comes back or loses shards).
func watchHealth(ctx context.Context, g *remoteopen.Grid, st *onlineState, back func(), nodesUp func(int), observe func([]remoteopen.NodeHealth), log *slog.Logger) {
	last := -1
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		up, n := 0, 0
		hs := g.Health(ctx)
		for _, h := range hs {
			n++
			if h.Up {
				up++
			}
		}
		if ctx.Err() != nil {
			return
		}
		nodesUp(up)
		observe(hs)
		if st.observe(up, time.Now()) {
			back()
		}
		switch {
		case up == 0 && last != 0:
			log.Warn("offline: no node reachable; reads come from the cache, writes wait in the journal", "nodes", n)
		case up > 0 && up <= g.K() && last != up:
			log.Warn("few nodes reachable: uploads wait until more than k are up", "up", up, "nodes", n, "k", g.K())
		case up > g.K() && last != up && last != -1:
			log.Info("nodes reachable", "up", up, "nodes", n)
		}
		last = up
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runDaemonChild is the detached half of mount --daemon: it reads the
// master key from fd 3, mounts, and reports readiness on fd 4.
func runDaemonChild(e *env, o mountOptions, log *slog.Logger) error {
	os.Unsetenv(daemonEnv)
	keyPipe := os.NewFile(3, "key")
	report := os.NewFile(4, "ready")
	master := make([]byte, remoteopen.KeySize)
	_, err := io.ReadFull(keyPipe, master)
	keyPipe.Close()
	once := false
	ready := func(err error) {
		if once {
			return
		}
		once = true
		msg := "ok\n"
		var w *mountWarning
		if errors.As(err, &w) {
			msg = "ok warning: " + oneLine(w.msg) + "\n"
		} else if err != nil {
			msg = "error: " + oneLine(err.Error()) + "\n"
		}
		report.WriteString(msg)
		report.Close()
	}
	if err != nil {
		err = fmt.Errorf("daemon: reading the key from the parent: %w", err)
		ready(err)
		return err
	}
	defer clear(master)
	cfg, err := loadConfig(o.dataDir)
	if err != nil {
		ready(err)
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	signal.Ignore(syscall.SIGHUP)
	return serveMount(ctx, o, cfg, master, log, ready)
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

// parseBytes parses "4096", "10M", "4GiB", "1.5G" (K/M/G/T are powers of
// 1000 with B optional, KiB.. powers of 1024): limit.ParseSize.
func parseBytes(s string) (int64, error) {
	f, err := remoteopen.ParseSize(s)
	return int64(f), err
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(time.Now().UnixNano()%int64(d/2+1))
}

// metaInterval is --metadata-interval, else the config's, else 0 (the
// journal's default). The config was validated when loaded.
func metaInterval(o mountOptions, cfg *Config) time.Duration {
	if o.metaInterval > 0 {
		return o.metaInterval
	}
	d, _ := time.ParseDuration(cfg.MetadataInterval)
	return d
}

// retention is the config's snapshot retention (nil: the default).
func retention(cfg *Config) *fs.Retention {
	if cfg.Retention == "" {
		return nil
	}
	r, err := fs.ParseRetention(cfg.Retention)
	if err != nil {
		return nil
	}
	return &r
}
