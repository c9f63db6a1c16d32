package main

import (
	"errors"
	"fmt"
	"go/build"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// sectionHeading is the part of docs/BENCHMARKS.md this command owns.
const sectionHeading = "## Drive vs loopback"

// results is everything one run measured.
type results struct {
	opts     options
	exe      string
	scratch  string
	started  time.Time
	kernel   string
	fsType   string
	srcFiles int
	srcBytes int64
	noDrop   bool
	verified bool              // the big file read back byte-exact on every mount
	warmed   int64             // anonymous memory touched before mounting (bytes)
	info     map[string]string // kind -> child's ready info
	rows     []row
	notes    []string
	profile  *profileSummary
	hot      []hotSpots
}

type row struct {
	wl     workload
	got    map[string]measurement // by kind: the best round
	rounds map[string][]float64   // by kind: every round's figure
	eintrs map[string]int         // by kind: EINTRs retried over all rounds
	rss    map[string]int64       // by kind: peak RSS over all rounds (bytes; -1 unknown)
}

// rssTarget is the drive's peak RSS target on every workload.
const rssTarget = 128 << 20

func newResults(o options, exe, scratch string) *results {
	r := &results{opts: o, exe: exe, scratch: scratch, started: time.Now().UTC(), info: map[string]string{}}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		r.kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	r.fsType = fsTypeOf(scratch)
	return r
}

// add records one round; the row keeps the best.
func (r *results) add(wl workload, kind string, m measurement) {
	i := 0
	for i < len(r.rows) && r.rows[i].wl.name != wl.name {
		i++
	}
	if i == len(r.rows) {
		r.rows = append(r.rows, row{wl: wl, got: map[string]measurement{}, rounds: map[string][]float64{}, eintrs: map[string]int{},
			rss: map[string]int64{}})
	}
	rw := &r.rows[i]
	if old, ok := rw.got[kind]; !ok || m.value > old.value {
		rw.got[kind] = m
	}
	rw.rounds[kind] = append(rw.rounds[kind], m.value)
	rw.eintrs[kind] += m.eintr
	if old, ok := rw.rss[kind]; !ok || m.use.RSS > old {
		rw.rss[kind] = m.use.RSS
	}
}

// ratio is a/b of one row's figures, NaN when either is missing.
func (rw row) ratio(a, b string) float64 {
	x, okx := rw.got[a]
	y, oky := rw.got[b]
	if !okx || !oky || y.value == 0 {
		return math.NaN()
	}
	return x.value / y.value
}

// biggestGap is the row the profile is taken of: among the rows that
// miss their C/B target, the one furthest below it (C/B over target);
// when none misses, the row where the drive trails the plain daemon most
// (lowest C/B); nil when no row has both figures.
func (r *results) biggestGap() *row {
	var worst *row
	var worstScore float64
	worstMissed := false
	for i := range r.rows {
		rw := &r.rows[i]
		q := rw.ratio(kindDrive, kindPlain)
		if math.IsNaN(q) {
			continue
		}
		missed := rw.wl.target > 0 && q < rw.wl.target
		score := q
		if missed {
			score = q / rw.wl.target
		}
		if worst == nil || missed && !worstMissed || missed == worstMissed && score < worstScore {
			worst, worstScore, worstMissed = rw, score, missed
		}
	}
	return worst
}

// rssTable writes the peak RSS of every daemon per workload.
func (r *results) rssTable(b *strings.Builder) {
	o := r.opts
	fmt.Fprintf(b, "\nPeak RSS of the serving process per workload (MiB: VmHWM, reset as the workload starts, after the daemon has returned the memory it freed to the system; the largest of its rounds). Target for C: at most %d MiB on every workload.\n\n| workload |", rssTarget>>20)
	for _, k := range o.kinds {
		fmt.Fprintf(b, " %s |", kindTitle(k))
	}
	b.WriteString("\n|---|")
	for range o.kinds {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, rw := range r.rows {
		fmt.Fprintf(b, "| %s |", rw.wl.name)
		for _, k := range o.kinds {
			v, ok := rw.rss[k]
			switch {
			case !ok || v < 0:
				b.WriteString(" – |")
			case k == kindDrive && v > rssTarget:
				fmt.Fprintf(b, " **%.0f** (over) |", float64(v)/(1<<20))
			default:
				fmt.Fprintf(b, " %.0f |", float64(v)/(1<<20))
			}
		}
		b.WriteString("\n")
	}
}

// kindTitle is a mount's column title.
func kindTitle(kind string) string {
	switch kind {
	case kindLoopback:
		return "A loopback (passthrough)"
	case kindPlain:
		return "B plain daemon"
	case kindDurable:
		return "D plain, fsync at close"
	case kindDrive:
		return "C meshdrive"
	}
	return kind
}

// markdown renders the section, heading included.
func (r *results) markdown() string {
	var b strings.Builder
	o := r.opts
	fmt.Fprintf(&b, "%s\n\n", sectionHeading)
	fmt.Fprintf(&b, "Written by `meshbench %s` (cmd/meshbench, run by `make bench`) on %s.\n\n",
		strings.Join(hidePaths(o.args), " "), r.started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %s, %s/%s, %d CPUs (shared with other work: absolute figures are noisy, the ratios within this run are the result), %s.\n",
		r.kernel, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "- Disk: scratch on %s; A, B and D serve a directory on it, C keeps its journal, cache and a local grid of 6 dirstores (k=4, m=2) on it.\n", r.fsType)
	fmt.Fprintf(&b, "- Sizes: %s file in 1 MiB I/O, %d random 4 KiB reads, %d entries, %d empty files unlinked, source tree `$GOROOT/%s` (%d files, %.0f MB; copied, read back after a remount, then removed with rm -rf).\n",
		humanBytes(o.size), o.randOps, o.files, o.unlinks, relGoroot(o.src), r.srcFiles, float64(r.srcBytes)/1e6)
	for _, k := range o.kinds {
		fmt.Fprintf(&b, "- %s: %s\n", kindTitle(k), r.info[k])
	}
	if r.verified {
		b.WriteString("- After the workloads the big file was read back with every cache dropped and matched what was written, byte for byte, on every mount.\n")
	}
	if r.noDrop {
		b.WriteString("- **Caches could not be dropped (not root): the cold rows are warm.**\n")
	}
	b.WriteString("\nMB = 10^6 bytes. A: go-fuse `NewLoopbackRoot` with example/loopback's options; with FUSE passthrough its reads and writes never reach the daemon (the kernel's ceiling). B: the same, its files answering `PassthroughFd` with false (a daemon that serves every byte). D: B whose flush fsyncs a file written since the last flush (the drive's promise for close until 2026-12, kept by a daemon that does nothing else; the drive's close now commits to its journal without an fsync, and a group commit fsyncs within a second, so D is a daemon that does more than the drive promises). C: `fs.OpenDrive` + `Drive.Mount`. Cold rows drop the kernel's page, dentry and inode caches and C's block cache first (a virtual disk may still be cached by its host, so cold A and B reads can beat the device). Each workload runs on every mount before the next starts; after each, C is left to upload until grid-durable (not timed).")
	if r.warmed > 0 {
		fmt.Fprintf(&b, " Before the mounts started, %s of memory was touched once, so that the VM's first-touch cost of its memory falls on no mount (see the note below).", approxBytes(r.warmed))
	}
	b.WriteString("\n\n")

	fmt.Fprintf(&b, "| workload | unit |")
	for _, k := range o.kinds {
		fmt.Fprintf(&b, " %s |", kindTitle(k))
	}
	hasAll := has(o.kinds, kindDrive) && has(o.kinds, kindPlain)
	hasD := has(o.kinds, kindDrive) && has(o.kinds, kindDurable)
	if hasAll {
		b.WriteString(" C/B | C/A |")
	}
	if hasD {
		b.WriteString(" C/D |")
	}
	if hasAll {
		b.WriteString(" target C/B |")
	}
	b.WriteString("\n|---|---|")
	for range o.kinds {
		b.WriteString("---:|")
	}
	if hasAll {
		b.WriteString("---:|---:|---:|")
	}
	if hasD {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, rw := range r.rows {
		fmt.Fprintf(&b, "| %s | %s |", rw.wl.title, rw.wl.unit)
		for _, k := range o.kinds {
			if m, ok := rw.got[k]; ok {
				fmt.Fprintf(&b, " %s (%.2f s) |", figure(m.value), m.secs)
			} else {
				b.WriteString(" – |")
			}
		}
		cb := rw.ratio(kindDrive, kindPlain)
		if hasAll {
			fmt.Fprintf(&b, " %s | %s |", ratioStr(cb), ratioStr(rw.ratio(kindDrive, kindLoopback)))
		}
		if hasD {
			fmt.Fprintf(&b, " %s |", ratioStr(rw.ratio(kindDrive, kindDurable)))
		}
		if hasAll {
			fmt.Fprintf(&b, " %s |", targetStr(rw.wl.target, cb))
		}
		b.WriteString("\n")
	}

	b.WriteString("\nDaemon CPU seconds per workload (user+system of the serving process; requests that reached the daemon, for A, B and D):\n\n| workload |")
	for _, k := range o.kinds {
		fmt.Fprintf(&b, " %s |", kindTitle(k))
	}
	b.WriteString("\n|---|")
	for range o.kinds {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, rw := range r.rows {
		fmt.Fprintf(&b, "| %s |", rw.wl.name)
		for _, k := range o.kinds {
			m, ok := rw.got[k]
			switch {
			case !ok:
				b.WriteString(" – |")
			case m.use.Reads >= 0 && k == kindDurable:
				fmt.Fprintf(&b, " %.2f s, %d reads, %d writes, %d fsyncs |", m.use.CPU, m.use.Reads, m.use.Writes, m.use.Fsyncs)
			case m.use.Reads >= 0:
				fmt.Fprintf(&b, " %.2f s, %d reads, %d writes |", m.use.CPU, m.use.Reads, m.use.Writes)
			default:
				fmt.Fprintf(&b, " %.2f s |", m.use.CPU)
			}
		}
		b.WriteString("\n")
	}

	r.rssTable(&b)

	if o.rounds > 1 {
		fmt.Fprintf(&b, "\nRepeated rows (the reads; the write, with other bytes each round so that nothing dedups) are the best of %d rounds, the mounts taking turns (interference only slows a round down); every round:\n\n", o.rounds)
		for _, rw := range r.rows {
			if !rw.wl.repeat {
				continue
			}
			fmt.Fprintf(&b, "- %s:", rw.wl.name)
			for i, k := range o.kinds {
				if i > 0 {
					b.WriteString(";")
				}
				fmt.Fprintf(&b, " %s", kindTitle(k)[:1])
				for _, v := range rw.rounds[k] {
					fmt.Fprintf(&b, " %s", figure(v))
				}
			}
			b.WriteString("\n")
		}
	}

	if has(o.kinds, kindDrive) {
		b.WriteString("\n")
		for _, rw := range r.rows {
			m, ok := rw.got[kindDrive]
			if !ok {
				continue
			}
			switch rw.wl.name {
			case "write":
				up := "n/a"
				if t := m.secs + m.settle; t > 0 {
					up = fmt.Sprintf("%.0f MB/s", float64(o.size)/1e6/t)
				}
				fmt.Fprintf(&b, "- C, write then grid-durable: %.2f s more after the fsync (%s from first write to all %d shards stored).\n",
					m.settle, up, gridK+gridM)
			case "read-cold":
				verdict := "meets"
				if m.value < 300 {
					verdict = "**misses**"
				}
				fmt.Fprintf(&b, "- C, cold read from the local grid: %.0f MB/s, %s the 300 MB/s target.\n", m.value, verdict)
			case "copy-tree":
				fmt.Fprintf(&b, "- C, source tree grid-durable %.2f s after cp returned.\n", m.settle)
				b.WriteString(promiseBudget(rw)) // "" unless B, D and C ran
			}
		}
	}
	for _, rw := range r.rows {
		for _, k := range o.kinds {
			if n := rw.eintrs[k]; n > 0 {
				fmt.Fprintf(&b, "- %s answered EINTR %d times in %s (over all rounds; retried, as Go's os package does).\n", kindTitle(k), n, rw.wl.name)
			}
		}
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "- Note: %s\n", n)
	}
	if p := r.profile; p != nil {
		fmt.Fprintf(&b, "\n### Profile of the biggest gap: %s (C/B %s)\n\n", p.workload, ratioStr(p.ratio))
		fmt.Fprintf(&b, "CPU profile of the drive's process during that workload's best round (%.2f s of CPU in %.2f s; B's daemon used %.2f s). `go tool pprof -top`:\n\n```\n%s```\n",
			p.cpu, p.secs, p.plainCPU, p.top)
		if p.cum != "" {
			fmt.Fprintf(&b, "\nBy cumulative time (`-top -cum`):\n\n```\n%s```\n", p.cum)
		}
	}
	if len(r.hot) > 0 {
		b.WriteString("\n### Where the drive's CPU goes where it trails\n\nFor each row with C/B below its target (or below 0.5), the drive's own functions with the most cumulative CPU in that workload's profile:\n\n")
		for _, h := range r.hot {
			fmt.Fprintf(&b, "- %s (C/B %s, %.1f s CPU in %.1f s): %s\n", h.title, ratioStr(h.ratio), h.cpu, h.secs, strings.Join(h.funcs, ", "))
		}
	}
	b.WriteString("\n")
	return b.String()
}

// hidePaths shortens absolute paths in a command line to their last
// element, so no machine path lands in the docs.
func hidePaths(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		flag, val, ok := strings.Cut(a, "=")
		switch {
		case ok && filepath.IsAbs(val):
			out[i] = flag + "=…/" + filepath.Base(val)
		case filepath.IsAbs(a):
			out[i] = "…/" + filepath.Base(a)
		default:
			out[i] = a
		}
	}
	return out
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func figure(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func ratioStr(q float64) string {
	if math.IsNaN(q) {
		return "–"
	}
	return fmt.Sprintf("%.2f", q)
}

// promiseBudget says, for a row with a C/B target where B, D and C ran,
// what D/B is (the cost of an fsync at close alone, the drive's promise
// until 2026-12) and how much time per item the target leaves C beyond D,
// against what C took beyond D.
func promiseBudget(rw row) string {
	b, okB := rw.got[kindPlain]
	d, okD := rw.got[kindDurable]
	c, okC := rw.got[kindDrive]
	if !okB || !okD || !okC || rw.wl.target == 0 || b.value <= 0 || d.value <= 0 || c.value <= 0 {
		return ""
	}
	tb, td, tc := 1e6/b.value, 1e6/d.value, 1e6/c.value // µs per item
	most := tb / rw.wl.target
	head := fmt.Sprintf("- D/B %.2f: an fsync at close alone (D, the drive's promise until 2026-12) takes %.0f µs per file beyond B's %.0f. ", d.value/b.value, td-tb, tb)
	if most < td {
		return head + fmt.Sprintf("C/B ≥ %.1f (at most %.0f µs per file) was out of reach in this run for any daemon that fsyncs at close; the drive took %.0f µs per file beyond D.\n",
			rw.wl.target, most, tc-td)
	}
	return head + fmt.Sprintf("C/B ≥ %.1f (at most %.0f µs per file) leaves the drive %.0f µs per file beyond D; it took %.0f.\n",
		rw.wl.target, most, most-td, tc-td)
}

func targetStr(target, got float64) string {
	if target == 0 {
		return ""
	}
	if math.IsNaN(got) {
		return fmt.Sprintf("≥ %.1f", target)
	}
	if got >= target {
		return fmt.Sprintf("≥ %.1f met", target)
	}
	return fmt.Sprintf("≥ %.1f **missed**", target)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// relGoroot names a path inside GOROOT relative to it, so no machine path
// lands in the docs.
func relGoroot(p string) string {
	if rel, err := filepath.Rel(build.Default.GOROOT, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return filepath.Base(p)
}

// fsTypeOf names the filesystem holding path ("ext4", "xfs", ...), from
// /proc/self/mountinfo's longest matching mount point.
func fsTypeOf(path string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "unknown filesystem"
	}
	best, typ := "", "unknown filesystem"
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		mp := unescapeMount(f[4])
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, g[0]
		}
	}
	return typ
}

// writeSection replaces the section that starts with heading (up to the
// next "## " heading) in the markdown file at path, or appends it. The
// other sections, written by other tools, are left as they are.
func writeSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var out string
	if len(old) == 0 {
		out = "# Benchmarks\n\n" + section
	} else {
		out = replaceSection(string(old), heading, section)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// replaceSection swaps the lines from heading to the next level-2 heading
// (or the end) for section; without heading it appends section. Headings
// inside fenced code blocks do not count.
func replaceSection(doc, heading, section string) string {
	lines := strings.SplitAfter(doc, "\n")
	start, end := -1, len(lines)
	fence := false
	for i, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		if strings.HasPrefix(t, "```") {
			fence = !fence
			continue
		}
		if fence {
			continue
		}
		if start < 0 && t == heading {
			start = i
			continue
		}
		if start >= 0 && strings.HasPrefix(t, "## ") {
			end = i
			break
		}
	}
	section = strings.TrimRight(section, "\n") + "\n"
	if start < 0 {
		d := strings.TrimRight(doc, "\n")
		return d + "\n\n" + section
	}
	before := strings.Join(lines[:start], "")
	after := strings.Join(lines[end:], "")
	if after != "" {
		section += "\n"
	}
	return before + section + after
}
