package integration

import (
	"context"
	"os"
	"testing"
	"time"
)

// corruptEnv turns on the negative control in the test build of the binary
// (-tags meshdrive_testhooks; a product binary ignores it): the mount wraps
// its block reader in faulty.CorruptBlocks with this fraction of block
// reads getting a byte flipped after every integrity check.
const corruptEnv = "MESHDRIVE_TEST_CORRUPT_READS"

// TestNegativeControl proves that suite 1's checks can fail: the same fio
// verification that passes on a healthy drive must fail when the drive
// silently corrupts 5% of its block reads below the integrity checks, and
// pass again once the corruption is off (the stored data was never hurt).
func TestNegativeControl(t *testing.T) {
	requireEnv(t, "fio")
	s := newSuite(t, "negative-control")
	d := newDrive(t, driveOptions{})
	d.mount(t, nil)
	dir := d.path("fio")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	work := t.TempDir()
	jobs := []integrityJob{integrityJobs()[0], integrityJobs()[1]} // seq-1m, rand-unaligned
	var written int64
	for _, j := range jobs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		res, err := runFio(ctx, work, dir, j.fioJob, j.writeOnly...)
		cancel()
		if err != nil {
			t.Fatalf("write %s: %v", j.name, err)
		}
		written += res.writeBytes
	}
	d.sync(t, 3*time.Minute)
	d.unmount(t)

	// verify mounts the drive (with env), clears its cache and re-reads
	// every job with fio --verify_only, up to passes times per job (with
	// O_DIRECT, so every pass reaches the drive and not the page cache),
	// stopping at a job's first failure. The corruption is per block read
	// and fio reads a 4 MiB block once per pass, hence the passes.
	verify := func(t *testing.T, env []string, passes int) (failed int, verified int64) {
		t.Helper()
		d.mount(t, env)
		defer d.unmount(t)
		d.cacheClear(t)
		for _, j := range jobs {
			for p := range passes {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				res, err := runFio(ctx, work, dir, j.fioJob, "--verify_only", "--direct=1")
				cancel()
				verified += res.readBytes
				if err != nil {
					if !isVerifyFailure(res.out) {
						t.Errorf("%s failed, but not with a verify error: %v", j.name, err)
					}
					t.Logf("%s, pass %d: %v", j.name, p+1, firstLine(err.Error()))
					s.figure("negative control: %s caught the corruption on pass %d", j.name, p+1)
					failed++
					break
				}
			}
		}
		return failed, verified
	}

	s.run(t, "healthy-passes", func(t *testing.T) {
		failed, n := verify(t, nil, 3)
		if failed != 0 {
			t.Errorf("%d of %d fio verifications failed on a healthy drive", failed, len(jobs))
		}
		t.Logf("healthy: verified %s", mib(n))
	})
	s.run(t, "corrupt-reads-fail", func(t *testing.T) {
		failed, _ := verify(t, []string{corruptEnv + "=0.05"}, 60)
		if failed != len(jobs) {
			t.Errorf("with 5%% of block reads corrupted only %d of %d fio verifications failed: the suite cannot see corruption "+
				"(does the mount process read %s?)", failed, len(jobs), corruptEnv)
		}
	})
	s.run(t, "healthy-again", func(t *testing.T) {
		if failed, _ := verify(t, nil, 3); failed != 0 {
			t.Errorf("%d fio verifications failed after the corruption was turned off: stored data changed", failed)
		}
	})
	s.figure("negative control: %s written; with %s=0.05 fio verify must fail, without it must pass", mib(written), corruptEnv)
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
