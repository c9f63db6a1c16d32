package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary serve mounts: run re-executes
// os.Executable(), which in a test is this binary.
func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		os.Exit(serve(os.Args[1:], os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

func needFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("/dev/fuse is missing and CI is set: %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the benchmark mounts directly and drops caches: CI must run it as root")
		}
		t.Skip("not root: the benchmark mounts directly and drops caches")
	}
}

// TestQuickRun runs the whole driver in --quick mode on every mount this
// build has and checks that every workload produced a positive figure on
// each, that A's reads and writes really bypassed its daemon (passthrough)
// while B's reached it, that D fsynced the files cp -a wrote at their close
// and B did not, and that the report and section came out.
func TestQuickRun(t *testing.T) {
	needFUSE(t)
	dir := t.TempDir()
	o, err := parseFlags([]string{"--quick", "--dir", dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	res, err := run(context.Background(), o, log)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !res.verified {
		t.Error("the big file was not verified")
	}
	if got, want := len(res.rows), len(workloads()); got != want {
		t.Fatalf("%d workloads measured, want %d", got, want)
	}
	for _, rw := range res.rows {
		for _, k := range o.kinds {
			m, ok := rw.got[k]
			if !ok || !(m.value > 0) || !(m.secs > 0) {
				t.Errorf("%s on %s: no positive figure (%+v)", rw.wl.name, k, m)
			}
			if rw.rss[k] <= 0 {
				t.Errorf("%s on %s: no peak RSS (%d)", rw.wl.name, k, rw.rss[k])
			}
		}
	}
	passthrough := strings.Contains(res.info[kindLoopback], "kernel-passthrough=true")
	for _, name := range []string{"write", "read-cold", "read-warm"} {
		var rw *row
		for i := range res.rows {
			if res.rows[i].wl.name == name {
				rw = &res.rows[i]
			}
		}
		a, b := rw.got[kindLoopback].use, rw.got[kindPlain].use
		if b.Reads+b.Writes == 0 {
			t.Errorf("%s: the plain daemon (B) saw no reads or writes: passthrough was not refused", name)
		}
		if passthrough && a.Reads+a.Writes != 0 {
			t.Errorf("%s: the loopback (A) saw %d reads, %d writes despite passthrough", name, a.Reads, a.Writes)
		}
	}
	for _, rw := range res.rows {
		if rw.wl.name != "copy-tree" {
			continue
		}
		files := int64(rw.got[kindDurable].value * rw.got[kindDurable].secs)
		if d := rw.got[kindDurable].use.Fsyncs; d < files/2 {
			t.Errorf("copy-tree: the durable daemon (D) made %d fsyncs for about %d files", d, files)
		}
		if b := rw.got[kindPlain].use.Fsyncs; b != 0 {
			t.Errorf("copy-tree: the plain daemon (B) made %d fsyncs at close", b)
		}
	}
	if !passthrough {
		t.Logf("kernel did not offer FUSE passthrough: A is a plain daemon too (%s)", res.info[kindLoopback])
	}
	md := res.markdown()
	if !strings.HasPrefix(md, sectionHeading+"\n") || !strings.Contains(md, "| sequential write + fsync | MB/s |") {
		t.Errorf("report does not look right:\n%s", md)
	}
	if driveBuilt && res.profile == nil {
		t.Errorf("no profile summary of the drive's biggest gap; notes: %q", res.notes)
	}
	doc := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeSection(doc, sectionHeading, md); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(doc)
	if err != nil || !strings.Contains(string(b), md) {
		t.Errorf("section not written to %s (%v)", doc, err)
	}
	left, err := os.ReadDir(dir)
	if err != nil || len(left) != 1 {
		t.Errorf("scratch not removed: %d entries left in %s (%v)", len(left), dir, err)
	}
}

func TestReplaceSection(t *testing.T) {
	const h = "## Drive vs loopback"
	sec := h + "\n\nnew\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"append", "# Benchmarks\n\n## Grid\n\ng\n", "# Benchmarks\n\n## Grid\n\ng\n\n" + sec},
		{"replace-last", "# B\n\n## Grid\n\ng\n\n" + h + "\n\nold\nold\n", "# B\n\n## Grid\n\ng\n\n" + sec},
		{"replace-middle", "# B\n\n" + h + "\n\nold\n\n## Grid\n\ng\n", "# B\n\n" + sec + "\n## Grid\n\ng\n"},
		{"heading-in-fence", "# B\n\n" + h + "\n\n```\n## not a heading\n```\n\n## Grid\ng\n", "# B\n\n" + sec + "\n## Grid\ng\n"},
		{"similar-heading-kept", "# B\n\n## Drive vs loopback, old notes\n\nx\n", "# B\n\n## Drive vs loopback, old notes\n\nx\n\n" + sec},
	} {
		if got := replaceSection(tc.doc, h, sec); got != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "64MiB": 64 << 20, "4KiB": 4096, "4096": 4096, "2G": 2 << 30, "10B": 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "1.5GiB", "1TiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestHidePaths(t *testing.T) {
	got := strings.Join(hidePaths([]string{"--dir", "/srv/disk/scratch", "--out=/a/b/BENCHMARKS.md", "--quick", "docs/x.md"}), " ")
	if want := "--dir …/scratch --out=…/BENCHMARKS.md --quick docs/x.md"; got != want {
		t.Errorf("hidePaths = %q, want %q", got, want)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b/c\134d`); got != `/a b/c\d` {
		t.Errorf("unescapeMount = %q", got)
	}
}

// TestWorkloadsOnPlainDir runs the workloads that need no mount on a plain
// directory, and checks that verifyBig passes on the written file and
// catches one flipped byte (its negative control).
func TestWorkloadsOnPlainDir(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.go"), []byte("package a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := newWorkspace(3<<20+5000, 100, 50, 40, src)
	if err != nil {
		t.Fatal(err)
	}
	if w.srcFiles != 1 || w.srcBytes != 10 {
		t.Errorf("source scan: %d files, %d bytes; want 1, 10", w.srcFiles, w.srcBytes)
	}
	ctx := context.Background()
	dir := t.TempDir()
	for _, wl := range workloads() {
		if wl.prep != nil {
			if err := wl.prep(w, dir); err != nil {
				t.Fatalf("%s: prep: %v", wl.name, err)
			}
		}
		got, err := wl.run(ctx, w, dir)
		if err != nil || !(got > 0) {
			t.Fatalf("%s: %v, %v", wl.name, got, err)
		}
	}
	if err := verifyBig(ctx, w, dir); err != nil {
		t.Fatalf("verify of a good file: %v", err)
	}
	big := filepath.Join(dir, bigName)
	b, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != w.size {
		t.Fatalf("big file has %d bytes, want %d", len(b), w.size)
	}
	b[2<<20+17] ^= 1
	if err := os.WriteFile(big, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verifyBig(ctx, w, dir); err == nil || !strings.Contains(err.Error(), "offset 2097152") {
		t.Errorf("verify of a flipped byte = %v, want a mismatch at offset 2097152", err)
	}
	// Pages differ: no 4 KiB page repeats, so a dedup cannot shrink the file.
	seen := map[string]bool{}
	for off := 0; off+randSize <= len(b); off += randSize {
		p := string(b[off : off+randSize])
		if seen[p] {
			t.Fatalf("page at %d repeats an earlier page", off)
		}
		seen[p] = true
	}
}

// The profile goes to the row furthest below its target, before any row
// without a target that merely has a lower ratio.
func TestBiggestGapPrefersMissedTarget(t *testing.T) {
	mk := func(name string, target, drive, plain float64) row {
		return row{wl: workload{name: name, target: target}, got: map[string]measurement{
			kindDrive: {value: drive}, kindPlain: {value: plain}}}
	}
	r := &results{rows: []row{
		mk("cold", 0, 30, 100),    // 0.30, no target
		mk("copy", 0.7, 32, 100),  // 0.32 of 0.7: 0.46
		mk("write", 1.0, 90, 100), // 0.90 of 1.0
		mk("stat", 1.0, 120, 100), // met
	}}
	if g := r.biggestGap(); g == nil || g.wl.name != "copy" {
		t.Fatalf("biggest gap %v, want copy", g)
	}
	r.rows = r.rows[:1]
	r.rows = append(r.rows, mk("stat", 1.0, 120, 100))
	if g := r.biggestGap(); g == nil || g.wl.name != "cold" {
		t.Fatalf("with every target met: biggest gap %v, want cold (lowest ratio)", g)
	}
}

// Every line of the report's first table has as many cells as its header,
// whichever mounts ran (C/D needs only C and D, C/B and C/A need B).
func TestMarkdownColumns(t *testing.T) {
	for _, kinds := range [][]string{allKinds(), {kindPlain, kindDrive}, {kindDurable, kindDrive}, {kindLoopback, kindPlain}} {
		got := map[string]measurement{}
		for _, k := range kinds {
			got[k] = measurement{value: 100, secs: 1}
		}
		r := &results{opts: options{kinds: kinds, rounds: 1}, info: map[string]string{},
			rows: []row{{wl: workload{name: "copy-tree", title: "copy", unit: "files/s", target: 0.7}, got: got}}}
		md := r.markdown()
		var cells []int
		for _, line := range strings.Split(md, "\n") {
			if strings.HasPrefix(line, "| workload | unit |") || strings.HasPrefix(line, "|---|---|") || strings.HasPrefix(line, "| copy |") {
				cells = append(cells, strings.Count(line, "|"))
			}
		}
		if len(cells) != 3 || cells[0] != cells[1] || cells[1] != cells[2] {
			t.Errorf("mounts %v: header, separator and row have %v bars:\n%s", kinds, cells, md)
		}
		if wantCD := has(kinds, kindDurable) && has(kinds, kindDrive); strings.Contains(md, " C/D |") != wantCD {
			t.Errorf("mounts %v: C/D column present = %t, want %t", kinds, !wantCD, wantCD)
		}
	}
}

// With B, D and C, the copy row's note gives D/B and the time per file
// the target leaves the drive beyond D: B 2000 files/s (500 µs), C 800
// (1250 µs); C/B ≥ 0.7 allows 714 µs, less than D's 800 at 1250 files/s,
// 89 µs more than D's 625 at 1600.
func TestPromiseBudget(t *testing.T) {
	got := map[string]measurement{
		kindPlain:   {value: 2000, secs: 1},
		kindDurable: {value: 1250, secs: 1},
		kindDrive:   {value: 800, secs: 1},
	}
	rw := row{wl: workload{name: "copy-tree", title: "copy", unit: "files/s", target: 0.7}, got: got}
	want := "- D/B 0.62: an fsync at close alone (D, the drive's promise until 2026-12) takes 300 µs per file beyond B's 500. C/B ≥ 0.7 (at most 714 µs per file) was out of reach in this run for any daemon that fsyncs at close; the drive took 450 µs per file beyond D.\n"
	if s := promiseBudget(rw); s != want {
		t.Errorf("promiseBudget:\n got %q\nwant %q", s, want)
	}
	got[kindDurable] = measurement{value: 1600, secs: 1} // 625 µs: 89 left
	if s, want := promiseBudget(rw), "- D/B 0.80: an fsync at close alone (D, the drive's promise until 2026-12) takes 125 µs per file beyond B's 500. C/B ≥ 0.7 (at most 714 µs per file) leaves the drive 89 µs per file beyond D; it took 625.\n"; s != want {
		t.Errorf("promiseBudget:\n got %q\nwant %q", s, want)
	}
	got[kindDurable] = measurement{value: 1250, secs: 1}
	r := &results{opts: options{kinds: []string{kindPlain, kindDurable, kindDrive}, rounds: 1}, info: map[string]string{}, rows: []row{rw}}
	if md := r.markdown(); !strings.Contains(md, want) {
		t.Errorf("the report lacks the promise's note:\n%s", md)
	}
	delete(got, kindDurable)
	if s := promiseBudget(rw); s != "" {
		t.Errorf("without D: %q, want no note", s)
	}
}
