package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestMountFlippedStagingByte: a staging file of a block never uploaded
// has one byte flipped (same length) while the drive is unmounted and the
// nodes away. When they are back, the uploader does not ship the block as
// if it were good: the file is lost (EIO, status names it), the queue
// drains, and the log says what happened and what to do.
func TestMountFlippedStagingByte(t *testing.T) {
	dir, mp, env, nodes, big, kept, staged := stagedOffline(t)
	b, err := os.ReadFile(staged)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x01
	if err := os.WriteFile(staged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := os.Rename(n+".away", n); err != nil {
			t.Fatal(err)
		}
	}

	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	s := pollStatus(t, env, dir, "the upload queue to drain", func(s statusReport) bool {
		return s.Uploads.Files == 0 && s.Uploads.Blocks == 0
	})
	if s.Lost == nil || s.Lost.Blocks != 1 || len(s.Lost.Paths) != 1 || s.Lost.Paths[0] != "/big" {
		t.Errorf("status of the drive: lost %+v", s.Lost)
	}
	if _, err := os.ReadFile(filepath.Join(mp, "big")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of the file whose staged block was damaged: %v, want EIO", err)
	}
	if p := pathJSON(t, env, dir, filepath.Join(mp, "big")); p.State != "lost" || p.LostBlocks != 1 {
		t.Errorf("status of the file whose staged block was damaged: %+v", p)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "small")); err != nil || !bytes.Equal(b, kept) {
		t.Errorf("the other file: %q, %v", b, err)
	}
	// The remedy the log names: the same bytes written again.
	if err := os.WriteFile(filepath.Join(mp, "restored"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "big")); err != nil || !bytes.Equal(b, big) {
		t.Errorf("the file after its bytes were written again: %v", err)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	if log, _ := os.ReadFile(filepath.Join(dir, "meshdrive.log")); !strings.Contains(string(log), "changed on local disk after it was sealed") ||
		!strings.Contains(string(log), "/big") {
		t.Errorf("the log does not say that a staged block was damaged, nor name its file:\n%s", log)
	}
}

// stagedOffline makes a drive whose nodes are away (nothing uploads),
// writes big (500 KB of random bytes, one staging file) and small (kept in
// the database) through a mount and unmounts it; it returns the drive, the
// node directories (renamed to DIR.away), the two files' bytes and the
// path of big's staging file.
func stagedOffline(t *testing.T) (dir, mp string, env, nodes []string, big, small []byte, staged string) {
	t.Helper()
	dir, mp, env, nodes = awayDiskDrive(t)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	big, small = make([]byte, 500_000), []byte("kept")
	rand.Read(big) // sealed bigger than what the journal's database holds
	if err := os.WriteFile(filepath.Join(mp, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "small"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	files, _ := filepath.Glob(filepath.Join(dir, "journal", "staging", "*"))
	if len(files) != 1 {
		t.Fatalf("%d staging files, want 1: %v", len(files), files)
	}
	return dir, mp, env, nodes, big, small, files[0]
}

// TestCheckFlippedStagingByte: the nodes are away, so the uploader holds
// its first segment and retries it; a file written next is staged on the
// local disk, and its staging file gets a byte flipped. check finds it
// there, names the file and says to copy it in again, without marking it
// lost; check --repair marks it lost (status names it, a read fails with
// EIO), as the uploader would when it reached it.
func TestCheckFlippedStagingByte(t *testing.T) {
	dir, mp, env := heldMount(t)
	staged := stageBig(t, env, dir, mp)
	b, err := os.ReadFile(staged)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x01
	if err := os.WriteFile(staged, b, 0o600); err != nil {
		t.Fatal(err)
	}

	r := runBin(t, env, "check", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stdout, "DAMAGED") || !strings.Contains(r.stdout, "/big") ||
		!strings.Contains(r.stdout, "checked 2 blocks not yet uploaded on the local disk: 1 damaged") ||
		!strings.Contains(r.stderr, "/big") || !strings.Contains(r.stderr, "while you still have it") {
		t.Errorf("check of a drive with a damaged staging file: %s", r)
	}
	if s := statusJSON(t, env, dir); s.Lost != nil {
		t.Errorf("check without --repair marked blocks lost: %+v", s.Lost)
	}

	r = runBin(t, env, "check", "--repair", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stdout, "LOST") || !strings.Contains(r.stderr, "marked lost (files: /big)") {
		t.Errorf("check --repair of a drive with a damaged staging file: %s", r)
	}
	if s := statusJSON(t, env, dir); s.Lost == nil || s.Lost.Blocks != 1 || len(s.Lost.Paths) != 1 || s.Lost.Paths[0] != "/big" {
		t.Errorf("status after check --repair: lost %+v", s.Lost)
	}
	if _, err := os.ReadFile(filepath.Join(mp, "big")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of the file whose staged block was damaged: %v, want EIO", err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "first")); err != nil || string(b) != "first" {
		t.Errorf("the other file: %q, %v", b, err)
	}
	r = runBin(t, env, "check", "--data", dir)
	if !strings.Contains(r.stdout, "checked 1 blocks not yet uploaded on the local disk: 0 damaged") {
		t.Errorf("check after check --repair: %s", r)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// heldMount mounts a drive whose nodes are away and writes the file
// first, whose upload fails: the uploader has packed its segment and
// retries it until a node answers, so it reads no staged block meanwhile.
// stageBig writes MP/big, random bytes that seal bigger than what the
// journal's database holds, waits until it is staged, and returns its
// staging file (the only one but temporaries).
func stageBig(t *testing.T, env []string, dir, mp string) string {
	t.Helper()
	big := make([]byte, 500_000)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(mp, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	pollStatus(t, env, dir, "big to be staged", func(s statusReport) bool { return s.Uploads.Blocks >= 2 })
	files, _ := filepath.Glob(filepath.Join(dir, "journal", "staging", "*"))
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, ".tmp") })
	if len(files) != 1 {
		t.Fatalf("%d staging files, want 1: %v", len(files), files)
	}
	return files[0]
}

func heldMount(t *testing.T) (dir, mp string, env []string) {
	t.Helper()
	dir, mp, env, _ = awayDiskDrive(t)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	if err := os.WriteFile(filepath.Join(mp, "first"), []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	pollStatus(t, env, dir, "the first upload to fail", func(s statusReport) bool { return s.Uploads.Errors > 0 })
	return dir, mp, env
}

// awayDiskDrive makes a drive whose node directories are renamed to
// DIR.away (no node answers, nothing uploads) and unmounts its mountpoint
// at cleanup; it returns the node directories' names.
func awayDiskDrive(t *testing.T) (dir, mp string, env, nodes []string) {
	t.Helper()
	dir, mp, env, nodes = newDiskDrive(t, "")
	for _, n := range nodes {
		if err := os.Rename(n, n+".away"); err != nil {
			t.Fatal(err)
		}
	}
	cleanupMount(t, env, dir, mp)
	return dir, mp, env, nodes
}

// TestCheckPathStaged: with the nodes away, two files are staged on the
// local disk: d/x's staging file is removed, y's gets a byte flipped.
// check of a path checks the staged blocks of the files under it only;
// the missing staging file is reported with its file (the check goes on
// with the rest, it does not stop), and check --repair of its folder marks
// it lost, as a mount with --drop-missing would, and leaves y alone.
func TestCheckPathStaged(t *testing.T) {
	dir, mp, env := heldMount(t)
	if err := os.Mkdir(filepath.Join(mp, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Each file's staging file is the one that appears when it is written.
	var seen []string
	stage := func(name string) string {
		b := make([]byte, 500_000)
		rand.Read(b) // sealed bigger than what the journal's database holds
		if err := os.WriteFile(filepath.Join(mp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		pollStatus(t, env, dir, name+" to be staged", func(s statusReport) bool { return s.Uploads.Blocks >= int64(2+len(seen)) })
		files, _ := filepath.Glob(filepath.Join(dir, "journal", "staging", "*"))
		files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, ".tmp") || slices.Contains(seen, f) })
		if len(files) != 1 {
			t.Fatalf("%d new staging files for %s, want 1: %v", len(files), name, files)
		}
		seen = append(seen, files[0])
		return files[0]
	}
	x, y := stage("d/x"), stage("y")
	if err := os.Remove(x); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(y)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x01
	if err := os.WriteFile(y, b, 0o600); err != nil {
		t.Fatal(err)
	}

	r := runBin(t, env, "check", "--data", dir, filepath.Join(mp, "y"))
	if r.code != 1 || !strings.Contains(r.stdout, "DAMAGED") || !strings.Contains(r.stdout, "/y") || strings.Contains(r.stdout, "/d/x") ||
		!strings.Contains(r.stdout, "checked 1 blocks not yet uploaded on the local disk: 1 damaged") {
		t.Errorf("check of y: %s", r)
	}
	r = runBin(t, env, "check", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stdout, "/d/x") || !strings.Contains(r.stdout, "missing") || !strings.Contains(r.stdout, "/y") ||
		!strings.Contains(r.stdout, "checked 3 blocks not yet uploaded on the local disk: 2 damaged") {
		t.Errorf("check of the drive with a missing and a damaged staging file: %s", r)
	}
	r = runBin(t, env, "check", "--repair", "--data", dir, filepath.Join(mp, "d"))
	if r.code != 1 || !strings.Contains(r.stdout, "LOST") || strings.Contains(r.stdout, "/y") || !strings.Contains(r.stderr, "marked lost (files: /d/x)") {
		t.Errorf("check --repair of d: %s", r)
	}
	if s := statusJSON(t, env, dir); s.Lost == nil || s.Lost.Blocks != 1 || len(s.Lost.Paths) != 1 || s.Lost.Paths[0] != "/d/x" {
		t.Errorf("status after check --repair of d: lost %+v", s.Lost)
	}
	r = runBin(t, env, "check", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stdout, "checked 2 blocks not yet uploaded on the local disk: 1 damaged") {
		t.Errorf("check of the drive after check --repair of d: %s", r)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}
