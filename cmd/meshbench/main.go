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
	dir      string   // scratch parent on the disk under test ("" = temp dir)
	size     int64    // big file bytes
	files    int      // entries for create/stat/readdir
	randOps  int      // random 4 KiB reads
	rounds   int      // runs of each repeatable workload; the best counts
	src      string   // source tree to copy
	quick    bool     // smoke-run sizes
	out      string   // markdown file whose section is replaced
	profDir  string   // keep CPU profiles here ("" = scratch, removed)
	kinds    []string // which mounts to measure
	keep     bool     // keep the scratch directory
	cacheMem int64    // drive memory cache (0 = drive default)
	args     []string // the command line, for the report
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{args: args}
	f := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	f.SetOutput(stderr)
	f.Usage = func() {
		fmt.Fprintf(stderr, "usage: meshbench [flags]\n\n"+
			"Mounts go-fuse's loopback (A: passthrough as is; B: passthrough refused) and the\n"+
			"meshdrive drive (C) on one disk, runs the same workloads on each and reports\n"+
			"figures and the ratios C/B and C/A. Run as root (FUSE passthrough, drop_caches).\n\nflags:\n")
		f.PrintDefaults()
	}
	size := f.String("size", "1GiB", "size of the sequential file (B, KiB, MiB, GiB)")
	cacheMem := f.String("cache-mem", "0", "drive memory cache size (0: the drive's default)")
	kinds := f.String("only", strings.Join(allKinds(), ","), "mounts to measure, comma-separated: loopback, plain, drive")
	f.StringVar(&o.dir, "dir", "", "scratch directory on the disk under test (default: a new temp dir)")
	f.IntVar(&o.files, "files", 100_000, "entries to create, stat and list")
	f.IntVar(&o.randOps, "rand-ops", 50_000, "random 4 KiB reads")
	f.IntVar(&o.rounds, "rounds", 3, "runs of each read-only workload (reads, stat, readdir); the best counts")
	f.StringVar(&o.src, "src", filepath.Join(build.Default.GOROOT, "src"), "source tree to copy with cp -a")
	f.BoolVar(&o.quick, "quick", false, "smoke run: 32 MiB file, 2000 entries, 2000 reads, GOROOT/src/encoding")
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
	if o.quick {
		if !set["size"] {
			o.size = 32 << 20
		}
		if !set["files"] {
			o.files = 2000
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
	}
	if o.size < randSize || o.files < 1 || o.randOps < 1 || o.rounds < 1 {
		return o, fmt.Errorf("--size must be at least %d bytes, --files, --rand-ops and --rounds at least 1", randSize)
	}
	for _, k := range strings.Split(*kinds, ",") {
		k = strings.TrimSpace(k)
		switch k {
		case kindLoopback, kindPlain:
		case kindDrive:
			if !driveBuilt {
				return o, errors.New("--only drive: this meshbench was built with -tags nodrive")
			}
		default:
			return o, fmt.Errorf("--only: unknown mount %q (want loopback, plain, drive)", k)
		}
		o.kinds = append(o.kinds, k)
	}
	return o, nil
}

// allKinds are the mounts a default run measures, in report order.
func allKinds() []string {
	if driveBuilt {
		return []string{kindLoopback, kindPlain, kindDrive}
	}
	return []string{kindLoopback, kindPlain}
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
	w, err := newWorkspace(o.size, o.randOps, o.files, o.src)
	if err != nil {
		return nil, err
	}
	res.srcFiles, res.srcBytes = w.srcFiles, w.srcBytes
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
					"daemon_cpu", m.use.CPU, "settle", fmt.Sprintf("%.2f", m.settle))
			}
		}
	}
	for _, k := range o.kinds {
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
	res.verified = true
	res.profile = summarizeProfile(ctx, res, profDir)
	res.hot = summarizeHot(ctx, res, profDir)
	return res, nil
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
		if err := wl.prep(w); err != nil {
			return m, err
		}
	}
	if wl.cold {
		if err := c.clearCache(ctx); err != nil {
			return m, err
		}
		if !noDrop {
			if err := dropCaches(); err != nil {
				return m, err
			}
		}
	}
	w.eintr = 0
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
