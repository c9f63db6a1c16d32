package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshdrive/meshdrive/remote"
)

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "meshsim:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "meshsim:", err)
		os.Exit(1)
	}
}

// options are the parsed flags: a base Config and the lists to sweep.
type options struct {
	base      Config
	nodes     []int
	km        [][2]int
	work      float64 // node-years × nodes per row, when years is 0
	years     float64
	parallel  int
	plot      string
	plotBW    []float64 // bytes per second
	plotNodes []int
}

const usage = `meshsim estimates how likely a meshdrive grid is to lose a segment in a year.

It simulates a grid of nodes holding segments placed by the drive's own
placement (remote.Placer), with permanent node failures, transient outages,
a detection delay, node replacement and repair at a bandwidth per node in
the order of remote.RepairPolicy. It prints a markdown table, one row per
grid size and k+m, with:

  P(loss)/yr   the probability that a given segment is lost in a year, from
               the segment's Markov chain fitted to the simulated repairs
               (reaches 1e-15 and below), with a 95% interval
  direct       losses the simulation itself counted (only for likely losses)
  bytes lost   expected bytes lost per year over the whole grid
  repair       repair network traffic per year, total and per node
  degraded     share of segment-time with a shard unreadable
  restore      mean time from a segment's first missing shard to all n back

Usage: meshsim [flags]

Example (the table and plot in docs/DURABILITY.md):
  meshsim -nodes 6,20,100,1000 -km 4+2,6+3,10+4 -plot docs/durability.png -plot-nodes 6,20,100

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("meshsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are returned, not printed with the usage
	fs.Usage = func() {}
	var (
		nodes      = fs.String("nodes", "1000", "grid sizes to simulate, comma-separated")
		km         = fs.String("km", "4+2", "data+parity shard choices, comma-separated (k+m)")
		zones      = fs.Int("zones", 0, "failure zones the nodes are spread over (0: none, each node its own)")
		afr        = fs.Float64("afr", 1.7, "permanent node failures, percent of nodes per year (Backblaze's fleet-wide yearly AFR: 1.37 in 2022, 1.70 in 2023, 1.57 in 2024)")
		weibull    = fs.Float64("weibull", 0, "Weibull shape for node lifetimes, mean 1/AFR (0 or 1: exponential; <1 infant mortality, >1 wear-out)")
		outages    = fs.Float64("outages", 4, "transient outages per node per year")
		outMean    = fs.Duration("outage-mean", 6*time.Minute+30*time.Second, "mean transient outage (exponential); the default leaves 10% longer than 15m")
		zoneAFR    = fs.Float64("zone-afr", 0, "zone-wide permanent losses (every node of the zone dies), percent of zones per year")
		zoneOut    = fs.Float64("zone-outages", 0, "zone-wide transient outages per zone per year")
		zoneOutM   = fs.Duration("zone-outage-mean", time.Hour, "mean zone-wide outage (exponential)")
		detect     = fs.Duration("detect", 15*time.Minute, "a node down this long is counted down and its shards repaired")
		replace    = fs.Duration("replace", 72*time.Hour, "a dead node is replaced by an empty one after this long")
		bw         = fs.String("bandwidth", "20MB", "repair bandwidth per node, bytes per second (k, M, G, T: powers of 1000; Ki, Mi, Gi: of 1024)")
		nodeData   = fs.String("node-data", "4TB", "bytes of shards stored per node")
		spn        = fs.Int("shards-per-node", 0, "simulated shards per node, each standing for node-data/shards-per-node bytes (0: the grid's size, at least 100 and at most 1000); repair spreads over at most this many nodes, so fewer than the nodes overstate repair times")
		below      = fs.Int("repair-below", 0, "repair a segment when fewer than this many of its shards are stored (0: k+m, any missing shard)")
		work       = fs.Float64("work", 2e6, "a row's budget: it simulates work / (nodes × max(nodes, shards per node)) years, at least 1 (6 nodes: 3,333 years; 1,000 nodes: 2)")
		years      = fs.Float64("years", 0, "simulated years per row, instead of -work")
		seed       = fs.Uint64("seed", 1, "random seed")
		repairTime = fs.String("repair-time", "", "replace the bandwidth model by a repair time: exp:DURATION or fixed:DURATION (for checking against formulas)")
		parallel   = fs.Int("parallel", runtime.GOMAXPROCS(0), "simulations run at once")
		plot       = fs.String("plot", "", "write a PNG of P(loss)/yr against repair bandwidth, for the first k+m and each grid size of -plot-nodes")
		plotNodes  = fs.String("plot-nodes", "", "grid sizes for -plot, comma-separated (default: those of -nodes)")
		plotBW     = fs.String("plot-bandwidths", "1MB,2MB,5MB,10MB,20MB,50MB,100MB", "repair bandwidths for -plot")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprint(stderr, usage)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, fmt.Errorf("%w (meshsim -help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (meshsim takes flags only; see -help)", fs.Arg(0))
	}
	o := &options{work: *work, years: *years, parallel: *parallel, plot: *plot}
	var err error
	if o.nodes, err = parseInts(*nodes); err != nil {
		return nil, fmt.Errorf("-nodes: %w", err)
	}
	for _, s := range strings.Split(*km, ",") {
		ks, ms, ok := strings.Cut(strings.TrimSpace(s), "+")
		k, err1 := strconv.Atoi(ks)
		m, err2 := strconv.Atoi(ms)
		if !ok || err1 != nil || err2 != nil || k < 1 || m < 0 || k+m > 255 {
			return nil, fmt.Errorf("-km: %q is not k+m (like 4+2, k >= 1, m >= 0, k+m <= 255)", s)
		}
		o.km = append(o.km, [2]int{k, m})
	}
	c := Config{Zones: *zones, AFR: *afr / 100, WeibullShape: *weibull, Outages: *outages,
		OutageMean: outMean.Seconds(), ZoneAFR: *zoneAFR / 100, ZoneOutages: *zoneOut, ZoneOutMean: zoneOutM.Seconds(),
		Detect: detect.Seconds(), Replace: replace.Seconds(), ShardsPerNode: *spn,
		Policy: remote.RepairPolicy{Below: *below}, Seed: *seed}
	if c.Bandwidth, err = parseBytes(*bw); err != nil || c.Bandwidth <= 0 {
		return nil, fmt.Errorf("-bandwidth %q: want a positive size per second like 20MB or 100MiB", *bw)
	}
	if c.NodeData, err = parseBytes(*nodeData); err != nil || c.NodeData <= 0 {
		return nil, fmt.Errorf("-node-data %q: want a positive size like 4TB", *nodeData)
	}
	switch {
	case c.AFR <= 0:
		return nil, fmt.Errorf("-afr %v: want a positive percentage, like 1.7", *afr)
	case c.WeibullShape < 0:
		return nil, fmt.Errorf("-weibull %v: want 0 (exponential) or a positive shape", c.WeibullShape)
	case c.Outages < 0 || c.ZoneAFR < 0 || c.ZoneOutages < 0:
		return nil, errors.New("-outages, -zone-afr and -zone-outages cannot be negative")
	case c.OutageMean <= 0 && c.Outages > 0, c.ZoneOutMean <= 0 && c.ZoneOutages > 0:
		return nil, errors.New("-outage-mean and -zone-outage-mean must be positive")
	case c.Detect < 0 || c.Replace < 0:
		return nil, errors.New("-detect and -replace cannot be negative")
	case c.Zones < 0:
		return nil, fmt.Errorf("-zones %d: cannot be negative", c.Zones)
	case (c.ZoneAFR > 0 || c.ZoneOutages > 0) && c.Zones == 0:
		return nil, errors.New("-zone-afr and -zone-outages need -zones")
	case c.ShardsPerNode < 0:
		return nil, fmt.Errorf("-shards-per-node %d: cannot be negative", c.ShardsPerNode)
	case c.Policy.Below < 0:
		return nil, fmt.Errorf("-repair-below %d: cannot be negative", c.Policy.Below)
	case o.work <= 0 || o.years < 0:
		return nil, fmt.Errorf("-work %v, -years %v: want a positive work, and years positive or 0", o.work, o.years)
	case o.parallel < 1:
		return nil, fmt.Errorf("-parallel %d: want at least 1", o.parallel)
	}
	for _, n := range o.nodes {
		if n < 1 {
			return nil, fmt.Errorf("-nodes: %d: want at least one node", n)
		}
		if c.Zones > n {
			return nil, fmt.Errorf("-zones %d: more zones than the %d nodes of a grid", c.Zones, n)
		}
		if n < o.km[0][0]+o.km[0][1] {
			return nil, fmt.Errorf("-nodes %d cannot hold k+m = %d+%d: every shard of a segment needs its own node", n, o.km[0][0], o.km[0][1])
		}
	}
	if *repairTime != "" {
		dist, d, ok := strings.Cut(*repairTime, ":")
		dur, err := time.ParseDuration(d)
		if !ok || (dist != "exp" && dist != "fixed") || err != nil || dur <= 0 {
			return nil, fmt.Errorf("-repair-time %q: want exp:DURATION or fixed:DURATION, like exp:6h", *repairTime)
		}
		c.RepairDist, c.RepairMean = dist, dur.Seconds()
	}
	for _, s := range strings.Split(*plotBW, ",") {
		b, err := parseBytes(strings.TrimSpace(s))
		if err != nil || b <= 0 {
			return nil, fmt.Errorf("-plot-bandwidths: %q: want positive sizes per second like 5MB", s)
		}
		o.plotBW = append(o.plotBW, b)
	}
	o.plotNodes = o.nodes
	if *plotNodes != "" {
		if o.plotNodes, err = parseInts(*plotNodes); err != nil {
			return nil, fmt.Errorf("-plot-nodes: %w", err)
		}
		for _, n := range o.plotNodes {
			if n < o.km[0][0]+o.km[0][1] || n < c.Zones {
				return nil, fmt.Errorf("-plot-nodes %d cannot hold k+m = %d+%d (or the zones)", n, o.km[0][0], o.km[0][1])
			}
		}
	}
	o.base = c
	return o, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseBytes reads 20MB, 1.5TB, 100MiB, 512 (bytes); a trailing "/s" is
// allowed.
func parseBytes(s string) (float64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	mult := 1.0
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15}, {"B", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

// run simulates every row (and the plot's points), at most o.parallel at
// once, and writes the report to out; progress goes to logw.
func run(ctx context.Context, o *options, out, logw io.Writer) error {
	start := time.Now()
	if o.plot != "" {
		if err := checkPlotPath(o.plot); err != nil {
			return err
		}
	}
	var cfgs []Config
	for _, n := range o.nodes {
		for _, p := range o.km {
			if n < p[0]+p[1] {
				fmt.Fprintf(logw, "meshsim: skipping k+m=%d+%d on %d nodes: every shard of a segment needs its own node\n", p[0], p[1], n)
				continue
			}
			if b := o.base.Policy.Below; b > 0 && b <= p[0] {
				fmt.Fprintf(logw, "meshsim: warning: -repair-below %d with k=%d never repairs a segment before it is lost\n", b, p[0])
			}
			cfgs = append(cfgs, o.config(n, p, o.base.Bandwidth))
		}
	}
	var plotCfgs []Config
	if o.plot != "" {
		for _, n := range o.plotNodes {
			for _, b := range o.plotBW {
				plotCfgs = append(plotCfgs, o.config(n, o.km[0], b))
			}
		}
	}
	all := append(append([]Config(nil), cfgs...), plotCfgs...)
	results := make([]*Result, len(all))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.parallel)
	for i, c := range all {
		g.Go(func() error {
			r, err := Run(gctx, c)
			if err != nil {
				return err
			}
			results[i] = r
			fmt.Fprintf(logw, "meshsim: %d nodes, k+m=%d+%d, %s/s: %.0f years in %s\n",
				c.Nodes, c.K, c.M, fmtBytes(c.Bandwidth), c.Years, r.Elapsed.Round(time.Millisecond))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	writeReport(out, o, results[:len(cfgs)])
	if o.plot != "" {
		if err := writePlot(o.plot, o, results[len(cfgs):]); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		fmt.Fprintf(out, "\nPlot: %s\n", o.plot)
	}
	fmt.Fprintf(out, "\nSimulated in %s.\n", time.Since(start).Round(time.Second))
	return nil
}

// checkPlotPath says before the simulation, not after it, when -plot names
// a file that cannot be written: a missing or read-only folder, a folder.
func checkPlotPath(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("-plot %s: is a folder; name a .png file", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".meshsim-plot-*")
	if err != nil {
		return fmt.Errorf("-plot %s: cannot write there (%w); name a file in a folder you can write", path, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func (o *options) config(nodes int, km [2]int, bw float64) Config {
	c := o.base
	c.Nodes, c.K, c.M, c.Bandwidth = nodes, km[0], km[1], bw
	if c.ShardsPerNode == 0 {
		c.ShardsPerNode = min(1000, max(100, nodes))
	}
	c.Years = o.years
	if c.Years == 0 {
		c.Years = max(1, o.work/float64(nodes)/float64(max(nodes, c.ShardsPerNode)))
	}
	return c
}
