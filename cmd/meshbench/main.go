package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"go/build"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	if os.Getenv(serveEnv) == "1" {
		os.Exit(serve(os.Args[1:], os.Stdin, os.Stdout))
	}
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := run(ctx, o, log)
	if res != nil {
		md := res.markdown()
		fmt.Print(md)
		switch {
		case o.out != "" && err != nil:
			log.Warn("run failed: the section is not written", "file", o.out)
		case o.out != "":
			if werr := writeSection(o.out, sectionHeading, md); werr != nil {
				err = werr
			} else {
				log.Info("wrote section", "file", o.out, "heading", sectionHeading)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(1)
	}
}

// options are the driver's flags.
type options struct {
	dir      string          // scratch parent on the disk under test ("" = temp dir)
	size     int64           // big file bytes
	files    int             // entries for create/stat/readdir
	unlinks  int             // empty files to unlink
	randOps  int             // random 4 KiB reads
	rounds   int             // runs of each repeatable workload; the best counts
	src      string          // source tree to copy
	quick    bool            // smoke-run sizes
	out      string          // markdown file whose section is replaced
	profDir  string          // keep CPU profiles here ("" = scratch, removed)
	kinds    []string        // which mounts to measure
	only     map[string]bool // workloads to run (nil: all)
	keep     bool            // keep the scratch directory
	cacheMem int64           // drive memory cache (0 = drive default)
	warmMem  int64           // anonymous memory to touch before mounting (0 = none)
	args     []string        // the command line, for the report
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{args: args}
	f := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	f.SetOutput(stderr)
	f.Usage = func() {
		fmt.Fprintf(stderr, "usage: meshbench [flags]\n\n"+
			"Mounts go-fuse's loopback (A: passthrough as is; B: passthrough refused; D: B that\n"+
			"fsyncs a written file at close) and the meshdrive drive (C) on one disk, runs the\n"+
			"same workloads on each and reports figures and the ratios C/B, C/A and C/D.\n"+
			"Run as root (FUSE passthrough, drop_caches).\n\nflags:\n")
		f.PrintDefaults()
	}
	size := f.String("size", "2GiB", "size of the sequential file (B, KiB, MiB, GiB)")
	cacheMem := f.String("cache-mem", "0", "drive memory cache size (0: the drive's default)")
	warmMem := f.String("warm-mem", "8GiB", "before mounting, touch this much anonymous memory once (one byte per 4 KiB page), so a VM's first-touch cost of its memory does not fall on whichever mount first needs new page-cache pages; capped at half of MemAvailable (0: off; --quick: 0 unless given)")
	kinds := f.String("only", strings.Join(allKinds(), ","), "mounts to measure, comma-separated: loopback, plain, durable, drive")
	wls := f.String("workloads", "", "run only these workloads, comma-separated (e.g. write,copy-tree; read-* need write, stat and readdir need create); for iterating, not for the report")
	f.StringVar(&o.dir, "dir", "", "scratch directory on the disk under test (default: a new temp dir)")
	f.IntVar(&o.files, "files", 100_000, "entries to create, stat and list")
	f.IntVar(&o.unlinks, "unlinks", 10_000, "empty files to make (untimed) and unlink")
	f.IntVar(&o.randOps, "rand-ops", 50_000, "random 4 KiB reads")
	f.IntVar(&o.rounds, "rounds", 3, "runs of each read-only workload (reads, stat, readdir); the best counts")
	f.StringVar(&o.src, "src", filepath.Join(build.Default.GOROOT, "src"), "source tree to copy with cp -a")
	f.BoolVar(&o.quick, "quick", false, "smoke run: 32 MiB file, 2000 entries, 2000 reads, GOROOT/src/encoding, no --warm-mem")
	f.StringVar(&o.out, "out", "", "markdown file whose \""+sectionHeading+"\" section is replaced (e.g. docs/BENCHMARKS.md)")
	f.StringVar(&o.profDir, "profdir", "", "keep the daemons' CPU profiles (KIND-WORKLOAD-ROUND.pprof) in this directory")
	f.BoolVar(&o.keep, "keep", false, "keep the scratch directory")
	if err := f.Parse(args); err != nil {
		return o, err
	}
	if f.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", f.Args())
	}
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var err error
	if o.size, err = parseSize(*size); err != nil {
		return o, fmt.Errorf("--size: %w", err)
	}
	if o.cacheMem, err = parseSize(*cacheMem); err != nil {
		return o, fmt.Errorf("--cache-mem: %w", err)
	}
	if o.warmMem, err = parseSize(*warmMem); err != nil {
		return o, fmt.Errorf("--warm-mem: %w", err)
	}
	if o.quick {
		if !set["size"] {
			o.size = 32 << 20
		}
		if !set["files"] {
			o.files = 2000
		}
		if !set["unlinks"] {
			o.unlinks = 2000
		}
		if !set["rand-ops"] {
			o.randOps = 2000
		}
		if !set["rounds"] {
			o.rounds = 1
		}
		if !set["src"] {
			o.src = filepath.Join(build.Default.GOROOT, "src", "encoding")
		}
		if !set["warm-mem"] {
			o.warmMem = 0
		}
	}
	if o.size < randSize || o.files < 1 || o.unlinks < 1 || o.randOps < 1 || o.rounds < 1 {
		return o, fmt.Errorf("--size must be at least %d bytes, --files, --unlinks, --rand-ops and --rounds at least 1", randSize)
	}
	if *wls != "" {
		o.only = map[string]bool{}
		known := map[string]bool{}
		for _, wl := range workloads() {
			known[wl.name] = true
		}
		for _, name := range strings.Split(*wls, ",") {
			name = strings.TrimSpace(name)
			if !known[name] {
				return o, fmt.Errorf("--workloads: unknown workload %q", name)
			}
			o.only[name] = true
		}
		if o.out != "" {
			return o, errors.New("--workloads with --out: a partial run does not replace the report")
		}
	}
	for _, k := range strings.Split(*kinds, ",") {
		k = strings.TrimSpace(k)
		switch k {
		case kindLoopback, kindPlain, kindDurable:
		case kindDrive:
			if !driveBuilt {
				return o, errors.New("--only drive: this meshbench was built with -tags nodrive")
			}
		default:
			return o, fmt.Errorf("--only: unknown mount %q (want loopback, plain, durable, drive)", k)
		}
		o.kinds = append(o.kinds, k)
	}
	return o, nil
}

// allKinds are the mounts a default run measures, in report order.
func allKinds() []string {
	if driveBuilt {
		return []string{kindLoopback, kindPlain, kindDurable, kindDrive}
	}
	return []string{kindLoopback, kindPlain, kindDurable}
}

// parseSize reads "1GiB", "512MiB", "64KiB", "4096" (bytes); G/M/K are
// taken as binary units too.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 1GiB, 64MiB, 4096)", s)
	}
	return n * mult, nil
}

// run mounts every kind, runs every workload on each, and unmounts. It
// returns what it measured even when it fails part way.
func run(ctx context.Context, o options, log *slog.Logger) (res *results, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	scratch, err := os.MkdirTemp(o.dir, "meshbench-")
	if err != nil {
		return nil, fmt.Errorf("scratch dir: %w", err)
	}
	if !o.keep {
		defer func() {
			if rerr := os.RemoveAll(scratch); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove scratch %s: %w", scratch, rerr))
			}
		}()
	}
	profDir := o.profDir
	if profDir == "" {
		profDir = filepath.Join(scratch, "profiles")
	}
	if err := os.MkdirAll(profDir, 0o755); err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}

	res = newResults(o, exe, scratch)
	log.Info("preparing", "scratch", scratch, "size", o.size, "files", o.files, "src", o.src)
	w, err := newWorkspace(o.size, o.randOps, o.files, o.unlinks, o.src)
	if err != nil {
		return nil, err
	}
	res.srcFiles, res.srcBytes = w.srcFiles, w.srcBytes
	if err := warmUp(ctx, o.warmMem, res, log); err != nil {
		return res, err
	}
	if err := dropCaches(); err != nil {
		res.notes = append(res.notes, err.Error())
		log.Warn("cannot drop caches", "err", err)
		res.noDrop = true
	}

	children := map[string]*child{}
	defer func() {
		for _, k := range o.kinds {
			if c := children[k]; c != nil {
				if serr := c.stop(); serr != nil {
					err = errors.Join(err, serr)
				}
			}
		}
	}()
	for _, k := range o.kinds {
		base := filepath.Join(scratch, k)
		mnt := filepath.Join(base, "mnt")
		args := []string{"--profdir", profDir}
		switch k {
		case kindDrive:
			args = append(args, "--data", filepath.Join(base, "data"), "--cache-mem", strconv.FormatInt(o.cacheMem, 10))
			if err := os.MkdirAll(filepath.Join(base, "data"), 0o700); err != nil {
				return res, err
			}
		default:
			args = append(args, "--backing", filepath.Join(base, "backing"))
			if err := os.MkdirAll(filepath.Join(base, "backing"), 0o755); err != nil {
				return res, err
			}
		}
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			return res, err
		}
		c, err := startChild(ctx, exe, k, mnt, args, os.Stderr)
		if err != nil {
			return res, err
		}
		children[k] = c
		res.info[k] = c.info
		log.Info("mounted", "kind", k, "mnt", mnt, "info", c.info)
	}

	for _, wl := range workloads() {
		if o.only != nil && !o.only[wl.name] {
			continue
		}
		rounds := 1
		if wl.repeat {
			rounds = o.rounds
		}
		for round := 1; round <= rounds; round++ {
			for _, k := range o.kinds {
				m, err := measure(ctx, wl, round, w, children[k], res.noDrop)
				if err != nil {
					return res, fmt.Errorf("%s on %s: %w", wl.name, k, err)
				}
				res.add(wl, k, m)
				log.Info("measured", "workload", wl.name, "round", round, "kind", k,
					"value", fmt.Sprintf("%.1f %s", m.value, wl.unit), "secs", fmt.Sprintf("%.2f", m.secs),
					"daemon_cpu", m.use.CPU, "peak_rss_mib", m.use.RSS>>20, "settle", fmt.Sprintf("%.2f", m.settle))
			}
		}
	}
	for _, k := range o.kinds {
		if o.only != nil && !o.only["write"] {
			break // no big file to verify
		}
		// From the grid for the drive: its cache and the kernel's dropped.
		c := children[k]
		if err := c.clearCache(ctx); err != nil {
			return res, err
		}
		if !res.noDrop {
			if err := dropCaches(); err != nil {
				return res, err
			}
		}
		if err := verifyBig(ctx, w, c.mnt); err != nil {
			return res, fmt.Errorf("verify on %s: %w", k, err)
		}
		log.Info("verified the big file byte for byte", "kind", k)
	}
	res.verified = o.only == nil || o.only["write"]
	res.profile = summarizeProfile(ctx, res, profDir)
	res.hot = summarizeHot(ctx, res, profDir)
	return res, nil
}

// warmUp touches up to n bytes of anonymous memory once, capped at half of
// MemAvailable, and records what it did in res. A VM pays a large cost the
// first time its guest touches a page of memory (measured: 2.1 s of CPU to
// pwrite 1 GiB into a fresh file the first time, 0.2 s once that memory had
// been used); without this the mounts, measured one after another, would
// pay it unevenly: whichever first needs new page-cache pages pays it all.
func warmUp(ctx context.Context, n int64, res *results, log *slog.Logger) error {
	if n <= 0 {
		return nil
	}
	avail, err := memAvailable()
	if err != nil {
		log.Warn("memory warm-up skipped", "err", err)
		res.notes = append(res.notes, fmt.Sprintf("no memory was touched before measuring (%v): a VM's first-touch cost of its memory may fall on whichever mount first needs new page-cache pages.", err))
		return nil
	}
	want := n
	if half := avail / 2; n > half {
		n = half
	}
	n &^= warmPage - 1
	if n <= 0 {
		log.Warn("memory warm-up skipped: no memory available", "mem_available", avail)
		return nil
	}
	log.Info("warming memory", "bytes", n, "asked", want, "mem_available", avail)
	d, err := timed(func() error { return touchMemory(ctx, n) })
	if err != nil {
		return fmt.Errorf("memory warm-up: %w", err)
	}
	res.warmed = n
	log.Info("warmed memory", "bytes", n, "secs", fmt.Sprintf("%.2f", d.Seconds()))
	capped := ""
	if n < want {
		capped = fmt.Sprintf(", --warm-mem %s capped at half of MemAvailable", approxBytes(want))
	}
	res.notes = append(res.notes, fmt.Sprintf("%s of anonymous memory was touched once (one byte per 4 KiB page, %.1f s%s) and released before the mounts started, because on a VM the first touch of its memory is costly and would otherwise fall on whichever mount first needs new page-cache pages.",
		approxBytes(n), d.Seconds(), capped))
	return nil
}

// warmPage is the stride warmUp touches memory at.
const warmPage = 4 << 10

// touchMemory maps n bytes of anonymous memory, writes one byte in every
// 4 KiB page, and unmaps it.
func touchMemory(ctx context.Context, n int64) (err error) {
	mem, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("mmap %d bytes: %w", n, err)
	}
	defer func() {
		if uerr := unix.Munmap(mem); uerr != nil {
			err = errors.Join(err, fmt.Errorf("munmap: %w", uerr))
		}
	}()
	const check = 256 << 20 // how often to look at ctx
	for off := 0; off < len(mem); off += warmPage {
		if off%check == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		mem[off] = 1
	}
	return nil
}

// memAvailable is MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemAvailable:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, errors.New("no MemAvailable line in /proc/meminfo")
}

// approxBytes is n for a reader: "8 GiB", "3.5 GiB", "64 MiB".
func approxBytes(n int64) string {
	switch {
	case n%(1<<30) == 0 && n > 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// measurement is one workload on one mount.
type measurement struct {
	value  float64 // per second, in the workload's unit
	secs   float64 // wall time of the timed part
	settle float64 // seconds the daemon then needed to settle (uploads)
	eintr  int     // EINTR answers the workload retried
	prof   string  // its daemon's CPU profile, in the profile dir
	use    usage
}

// measure prepares the caches, times wl on c's mount with the daemon's CPU
// clock and profile running, then lets the daemon settle.
func measure(ctx context.Context, wl workload, round int, w *workspace, c *child, noDrop bool) (measurement, error) {
	m := measurement{prof: fmt.Sprintf("%s-%s-%d.pprof", c.kind, wl.name, round)}
	if wl.prep != nil {
		if err := wl.prep(w, c.mnt); err != nil {
			return m, err
		}
		// The prep's background work (the drive's uploads and metadata
		// record of the files it made) is not the workload's.
		if err := c.settle(ctx); err != nil {
			return m, err
		}
	}
	if wl.remount != 0 {
		if err := c.remount(ctx, wl.remount == remountWipe); err != nil {
			return m, err
		}
	}
	if wl.cold {
		if err := c.clearCache(ctx); err != nil {
			return m, err
		}
	}
	if wl.cold || wl.remount != 0 {
		if !noDrop {
			if err := dropCaches(); err != nil {
				return m, err
			}
		}
	}
	w.eintr, w.round = 0, round
	if err := c.begin(ctx, strings.TrimSuffix(m.prof, ".pprof")); err != nil {
		return m, err
	}
	var amount float64
	d, err := timed(func() error {
		var err error
		amount, err = wl.run(ctx, w, c.mnt)
		return err
	})
	use, eerr := c.end(ctx)
	if err = errors.Join(err, eerr); err != nil {
		return m, err
	}
	m.use, m.secs, m.eintr = use, d.Seconds(), w.eintr
	m.value = amount / d.Seconds()
	if wl.unit == "MB/s" {
		m.value /= 1e6
	}
	sd, err := timed(func() error { return c.settle(ctx) })
	if err != nil {
		return m, err
	}
	unix.Sync()
	m.settle = sd.Seconds()
	return m, nil
}
