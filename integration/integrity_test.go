package integration

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// integrityJobs are suite 1's fio jobs. Each writes with verify=crc32c
// (every block carries a header with its offset and a checksum) and
// verifies after writing; the suite replays each with --verify_only later.
// writeOnly args apply only to the first run.
func integrityJobs() []integrityJob {
	scale := func(s string) string { return s }
	if *long {
		scale = func(s string) string { return strings.Replace(s, "m", "0m", 1) } // 10x
	}
	return []integrityJob{
		{fioJob{"seq-1m", []string{"--rw=write", "--bs=1m", "--size=" + scale("32m")}}, nil},
		{fioJob{"rand-unaligned", []string{"--rw=randwrite", "--bsrange=1k-124k", "--bs_unaligned=1", "--size=" + scale("16m")}}, nil},
		// Two writers, each verifying its last 16 writes while it writes.
		{fioJob{"two-writers", []string{"--rw=randwrite", "--bs=16k", "--size=" + scale("8m"), "--numjobs=2"}}, []string{"--verify_backlog=16"}},
		// Three passes over the same file: every block overwritten twice.
		{fioJob{"overwrite-3", []string{"--rw=randwrite", "--bs=64k", "--size=" + scale("8m"), "--loops=3"}}, nil},
		{fioJob{"direct", []string{"--rw=randwrite", "--bs=16k", "--size=" + scale("8m"), "--direct=1"}}, nil},
		{fioJob{"mmap", []string{"--rw=randwrite", "--bs=4k", "--size=" + scale("8m"), "--ioengine=mmap"}}, nil},
	}
}

type integrityJob struct {
	fioJob
	writeOnly []string
}

// stressors are the stress-ng file system stressors of suite 1, each
// bounded by an operation count (not by time: stress-ng ends a timed
// stressor with SIGALRM, and a signal during a FUSE call turns into EINTR
// from the drive, which the stressors count as a failure). All run at once
// with --verify. The long variant adds the metadata-heavy ones: a single
// bogo op of link, symlink or xattr is thousands of journal commits.
// Left out, and why:
//   - copy-file: its smallest file is 128 MiB, too big for the time budget.
//   - dir, dirmany, dirdeep: minutes of mkdir/rmdir; rename and dentry
//     cover directory entries.
//   - fiemap, file-ioctl, inode-flags, chattr, verity, fanotify, binderfs,
//     bind-mount: ioctls and kernel features FUSE does not offer.
func stressors() [][]string {
	s := [][]string{
		{"--hdd", "1", "--hdd-bytes", "4m", "--hdd-write-size", "64k", "--hdd-ops", "100"}, // write, read back, check
		{"--seek", "1", "--seek-size", "4m", "--seek-ops", "100"},                          // pwrite/pread at random offsets, checked
		{"--readahead", "1", "--readahead-bytes", "1m", "--readahead-ops", "10"},           // readahead + pread, checked
		{"--iomix", "1", "--iomix-bytes", "4m", "--iomix-ops", "50"},                       // mixed read/write/fsync/fdatasync
		{"--sync-file", "1", "--sync-file-bytes", "1m", "--sync-file-ops", "5"},            // sync_file_range
		{"--fallocate", "1", "--fallocate-bytes", "1m", "--fallocate-ops", "5"},            // fallocate, ftruncate
		{"--mmap", "1", "--mmap-file", "--mmap-bytes", "256k", "--mmap-ops", "1"},          // shared file mappings, checked
		{"--rename", "1", "--rename-ops", "20"},                                            // rename storms
		{"--dentry", "1", "--dentries", "64", "--dentry-ops", "5"},                         // create, stat, unlink
		{"--filename", "1", "--filename-ops", "1"},                                         // every allowed name byte
		{"--chmod", "1", "--chmod-ops", "1"},                                               // permission bits
		{"--utime", "1", "--utime-ops", "5"},                                               // timestamps
		{"--lockf", "1", "--lockf-ops", "2000"},                                            // POSIX locks
		{"--fstat", "1", "--fstat-ops", "200"},                                             // stat over many files
	}
	if *long {
		s = append(s,
			[]string{"--link", "1", "--link-ops", "1"},       // hard links
			[]string{"--symlink", "1", "--symlink-ops", "1"}, // symlinks, readlink
			[]string{"--xattr", "1", "--xattr-ops", "1"},     // user.* xattrs
		)
	}
	return s
}

func TestIntegrity(t *testing.T) {
	requireEnv(t, "fio", "stress-ng")
	s := newSuite(t, "integrity")
	nodes := startNodes(t, 6)
	d := newDrive(t, driveOptions{Nodes: nodeURLs(nodes), K: 4, M: 2})
	d.mount(t, nil)
	fioDir := d.path("fio")
	if err := os.Mkdir(fioDir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	work := t.TempDir()
	var written, verified int64
	var done []integrityJob
	for _, j := range integrityJobs() {
		s.run(t, "fio/"+j.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			start := time.Now()
			res, err := runFio(ctx, work, fioDir, j.fioJob, j.writeOnly...)
			if err != nil {
				t.Fatalf("%v", err)
			}
			if res.readBytes == 0 {
				t.Fatalf("fio verified nothing:\n%s", lastLines(res.out, 20))
			}
			written += res.writeBytes
			verified += res.readBytes
			done = append(done, j)
			t.Logf("%s: wrote %s, verified %s in %v", j.name, mib(res.writeBytes), mib(res.readBytes), time.Since(start).Round(time.Millisecond))
		})
	}

	s.run(t, "stress-ng", func(t *testing.T) {
		dir := d.path("stress-ng")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("%v", err)
		}
		// The timeout is a safety net only; the op counts end the run.
		args := []string{"--temp-path", dir, "--verify", "--timeout", "180s", "--metrics-brief"}
		for _, st := range stressors() {
			args = append(args, st...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		start := time.Now()
		out, err := run(ctx, dir, "stress-ng", args...)
		failed := stressFailures(out)
		if err != nil || len(failed) > 0 {
			t.Fatalf("stress-ng failed (%v); failing stressors: %v\n%s", err, failed, stressErrors(out))
		}
		if !strings.Contains(out, "successful run completed") {
			t.Fatalf("stress-ng did not report a successful run:\n%s", lastLines(out, 20))
		}
		if took := time.Since(start); took > 170*time.Second {
			t.Fatalf("stress-ng ran into its 180 s timeout (%v): the op counts are too big or the drive too slow", took)
		}
		t.Logf("stress-ng: %d stressors with --verify passed in %v", len(stressors()), time.Since(start).Round(time.Millisecond))
	})

	s.run(t, "signals-during-calls", func(t *testing.T) {
		dir := d.path("signals")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("%v", err)
		}
		eintr, effects := interruptedCalls(t, dir, 200)
		t.Logf("200 rounds of creat, unlink, mkdir, rmdir under a signal every 500 µs: %d calls returned EINTR, %d of those took effect anyway", eintr, len(effects))
		for i, e := range effects {
			if i == 10 {
				t.Errorf("... and %d more", len(effects)-10)
				break
			}
			t.Errorf("%s", e)
		}
	})

	s.run(t, "reread-2-of-6-nodes-down", func(t *testing.T) {
		if len(done) == 0 {
			t.Fatalf("no fio job succeeded: nothing to re-read")
		}
		start := time.Now()
		d.sync(t, 5*time.Minute)
		t.Logf("sync took %v", time.Since(start).Round(time.Millisecond))
		d.unmount(t)
		nodes[1].kill(t)
		nodes[4].kill(t)
		d.mount(t, nil)
		d.cacheClear(t)
		for _, j := range done {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			res, err := runFio(ctx, work, fioDir, j.fioJob, "--verify_only")
			cancel()
			if err != nil {
				t.Errorf("re-read %s with 2 of 6 nodes down: %v", j.name, err)
				continue
			}
			if res.readBytes == 0 {
				t.Errorf("re-read %s verified nothing", j.name)
			}
			verified += res.readBytes
		}
		st := d.status(t)
		if st.NodesUp > 4 {
			t.Errorf("status says %d nodes up, want at most 4 (2 of 6 are stopped)", st.NodesUp)
		}
		d.unmount(t)
		d.checkJournal(t)
	})
	s.figure("fio wrote %s, verified %s (crc32c), %d stress-ng stressors with --verify; 2 of 6 nodes stopped for the re-read; bytes lost: 0 unless a subtest failed",
		mib(written), mib(verified), len(stressors()))
}

var stressFailRE = regexp.MustCompile(`(?m)^stress-ng: fail:\s+\[\d+\]\s+([a-z0-9-]+):`)

// stressFailures names the stressors stress-ng reported as failing.
func stressFailures(out string) []string {
	seen := map[string]bool{}
	var names []string
	for _, m := range stressFailRE.FindAllStringSubmatch(out, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	return names
}

func stressErrors(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "fail") || strings.Contains(l, "error") || strings.Contains(l, "unsuccessful") {
			keep = append(keep, l)
		}
		if len(keep) >= 30 {
			break
		}
	}
	return strings.Join(keep, "\n")
}
