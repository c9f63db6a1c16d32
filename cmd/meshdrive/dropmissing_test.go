package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/web"
)

// TestMountDropMissing: a staging file of a block never uploaded is gone
// from the data dir. The mount refuses and names --drop-missing; with it,
// the drive mounts, the file's block is lost (EIO; status PATH says lost)
// and the other file reads.
func TestMountDropMissing(t *testing.T) {
	dir, mp, env, _, kept := stageLostBlock(t)
	r := runBin(t, env, "mount", "--daemon", "--data", dir, mp)
	assertRefusal(t, r, dir, mp, "1 staged blocks are missing", "--drop-missing")
	mustRun(t, env, "mount", "--daemon", "--drop-missing", "--data", dir, mp)
	if b, err := os.ReadFile(filepath.Join(mp, "small")); err != nil || !bytes.Equal(b, kept) {
		t.Errorf("the other file after --drop-missing: %q, %v", b, err)
	}
	if _, err := os.ReadFile(filepath.Join(mp, "big")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of the file whose block was dropped: %v, want EIO", err)
	}
	if p := pathJSON(t, env, dir, filepath.Join(mp, "big")); p.State != "lost" || p.LostBlocks != 1 {
		t.Errorf("status of the file whose block was dropped: %+v", p)
	}
	if out := mustRun(t, env, "status", "--data", dir, filepath.Join(mp, "big")).stdout; !strings.Contains(out, "1 blocks lost") {
		t.Errorf("status PATH does not say the block is lost:\n%s", out)
	}
	if st := statusJSON(t, env, dir); st.Lost == nil || st.Lost.Blocks != 1 || st.Lost.Files != 1 || len(st.Lost.Paths) != 1 || st.Lost.Paths[0] != "/big" {
		t.Errorf("status of the drive does not count the lost block: %+v", st.Lost)
	}
	// The web app's summary says it too.
	if sum := webSummary(t, dir, statusJSON(t, env, dir).Web); sum.Lost == nil || sum.Lost.Blocks != 1 || len(sum.Lost.Paths) != 1 || sum.Lost.Paths[0] != "/big" {
		t.Errorf("the web app's summary does not count the lost block: %+v", sum.Lost)
	}
	if out := mustRun(t, env, "status", "--data", dir).stdout; !strings.Contains(out, "LOST: 1 blocks of 1 files") || !strings.Contains(out, "/big") {
		t.Errorf("status does not say a block is lost:\n%s", out)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "meshdrive.log")); !strings.Contains(string(log), "/big") {
		t.Errorf("the log does not name the file that lost a block:\n%s", log)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// stageLostBlock makes a drive on three node directories whose file
// /big has a block that was never uploaded and whose staging file is
// gone, beside /small (kept, in the journal's database); the drive is
// unmounted and its nodes are renamed to NODE.away (nodes names them).
func stageLostBlock(t *testing.T) (dir, mp string, env, nodes []string, kept []byte) {
	t.Helper()
	dir, mp, env, nodes, _, kept, staged := stagedOffline(t)
	if err := os.Remove(staged); err != nil {
		t.Fatal(err)
	}
	return dir, mp, env, nodes, kept
}

// TestLostNotDurable: with every node back and everything else uploaded,
// a drive with a lost block is not called durable anywhere a person asks
// about the whole drive: status (text and JSON), the web app's summary,
// the root's status xattr; sync does not wait for the lost block, names
// its file and exits 1.
func TestLostNotDurable(t *testing.T) {
	dir, mp, env, nodes, _ := stageLostBlock(t)
	for _, n := range nodes {
		if err := os.Rename(n+".away", n); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, env, "mount", "--daemon", "--drop-missing", "--data", dir, mp)
	r := runBin(t, env, "sync", "--data", dir, "--timeout", "2m")
	if r.code != 1 || !strings.Contains(r.stderr, "everything else written is grid-durable") ||
		!strings.Contains(r.stderr, "/big") || !strings.Contains(r.stderr, "restore those files from a copy, or delete them") {
		t.Errorf("sync with a lost block: want exit 1 naming /big and the way out, got %s", r)
	}
	st := statusJSON(t, env, dir)
	if st.State != "lost" || st.Durable || st.Uploads.Bytes != 0 {
		t.Errorf("status of a synced drive with a lost block: state %q, durable %v, %d bytes queued; want lost, false, 0",
			st.State, st.Durable, st.Uploads.Bytes)
	}
	if out := mustRun(t, env, "status", "--data", dir).stdout; strings.Contains(out, "durable: everything written") ||
		!strings.Contains(out, "NOT safe") || !strings.Contains(out, "LOST: 1 blocks of 1 files") ||
		!strings.Contains(out, "every snapshot is kept") {
		t.Errorf("status says the drive is safe, or not that it is lost:\n%s", out)
	}
	if sum := webSummary(t, dir, st.Web); sum.State != "lost" || sum.Durable {
		t.Errorf("the web app's summary: state %q, durable %v; want lost, false", sum.State, sum.Durable)
	}
	buf := make([]byte, 512)
	n, err := unix.Getxattr(mp, "user.meshdrive.status", buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "lost (1 blocks of 1 files") {
		t.Errorf("the root's status xattr: %q, %v; want it to say lost", buf[:max(n, 0)], err)
	}
	// Deleting the file is the way out: sync says durable again.
	if err := os.Remove(filepath.Join(mp, "big")); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, env, "sync", "--data", dir, "--timeout", "2m"); r.code != 0 || !strings.Contains(r.stdout, "everything written is grid-durable") {
		t.Errorf("sync once the lost file is deleted: %s", r)
	}
	if st := statusJSON(t, env, dir); st.State != "durable" || !st.Durable || st.Lost != nil {
		t.Errorf("status once the lost file is deleted: state %q, durable %v, lost %+v", st.State, st.Durable, st.Lost)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// webSummary is GET /api/v1/status of the web app at addr.
func webSummary(t *testing.T, dir, addr string) web.Summary {
	t.Helper()
	tok, _ := os.ReadFile(filepath.Join(dir, webTokenFile))
	req, _ := http.NewRequest("GET", strings.TrimSuffix(addr, "/")+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	var sum web.Summary
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/v1/status: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil {
		t.Fatalf("GET /api/v1/status: %v", err)
	}
	return sum
}

// TestReadOnlyMissingStaged: a read-only mount of a journal whose staging
// file of a block never uploaded is gone mounts (it may write nothing,
// so it cannot refuse for --drop-missing's sake), but says so at once,
// naming the file and what to do; the file reads EIO, status calls it
// and the drive lost, and the other file reads.
func TestReadOnlyMissingStaged(t *testing.T) {
	dir, mp, env, _, kept := stageLostBlock(t)
	r := mustRun(t, env, "mount", "--daemon", "--read-only", "--data", dir, mp)
	for _, w := range []string{"warning", "1 blocks of 1 files (/big)", "never uploaded", "--drop-missing", "Put the staging files back"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("read-only mount's warning does not say %q: %s", w, r)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mp, "small")); err != nil || !bytes.Equal(b, kept) {
		t.Errorf("the other file: %q, %v", b, err)
	}
	if _, err := os.ReadFile(filepath.Join(mp, "big")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of the file whose staging file is gone: %v, want EIO", err)
	}
	if p := pathJSON(t, env, dir, filepath.Join(mp, "big")); p.State != "lost" || p.LostBlocks != 1 || p.PendingBlocks != 0 {
		t.Errorf("status of the file whose staging file is gone: %+v; want lost, 1 lost block, none pending", p)
	}
	if st := statusJSON(t, env, dir); st.State != "lost" || st.Lost == nil || st.Lost.Files != 1 || len(st.Lost.Paths) != 1 || st.Lost.Paths[0] != "/big" {
		t.Errorf("status of the drive: state %q, lost %+v; want lost naming /big", st.State, st.Lost)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// TestReadOnlyPendingNotDurable: data an earlier mount wrote while no
// node was reachable waits in the journal. A read-only mount of it does
// not upload it, so it must not call the drive durable (it did, and sync
// said everything was grid-durable and exited 0): status says local and
// what waits, and sync refuses at once, saying how to upload it.
func TestReadOnlyPendingNotDurable(t *testing.T) {
	dir, mp, env, _ := awayDiskDrive(t)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	randomFile(t, filepath.Join(mp, "big"), 500_000, 1)
	mustRun(t, env, "unmount", "--data", dir, mp)
	mustRun(t, env, "mount", "--daemon", "--read-only", "--data", dir, mp)
	if st := statusJSON(t, env, dir); st.State != "local" || st.Durable || st.Uploads.Bytes != 500_000 || st.Uploads.Files != 1 {
		t.Errorf("status of a read-only mount with data waiting: state %q, durable %v, %d bytes of %d files queued; want local, 500000 of 1",
			st.State, st.Durable, st.Uploads.Bytes, st.Uploads.Files)
	}
	if out := mustRun(t, env, "status", "--data", dir).stdout; !strings.Contains(out, "a read-only mount does not upload it") {
		t.Errorf("status does not say the read-only mount does not upload:\n%s", out)
	}
	r := runBin(t, env, "sync", "--data", dir, "--timeout", "1m")
	assertRefusal(t, r, "", "", "mounted read-only", "488.3 KiB of 1 file", "meshdrive unmount "+mp, "without --read-only")
	mustRun(t, env, "unmount", "--data", dir, mp)
}

// TestStagingFileGoneWhileMounted: with the nodes away, /big is staged on
// the local disk, and its staging file is removed while the drive is
// mounted. When the nodes are back, the uploader marks the block lost (as
// the next mount's --drop-missing would) rather than keep it queued for
// ever: sync returns, exits 1, names /big and the way out; status's LOST
// line names it; the log says the staging file was removed.
func TestStagingFileGoneWhileMounted(t *testing.T) {
	dir, mp, env, nodes := awayDiskDrive(t)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	if err := os.WriteFile(filepath.Join(mp, "first"), []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	pollStatus(t, env, dir, "the first upload to fail", func(s statusReport) bool { return s.Uploads.Errors > 0 })
	staged := stageBig(t, env, dir, mp)
	if err := os.Remove(staged); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := os.Rename(n+".away", n); err != nil {
			t.Fatal(err)
		}
	}
	r := runBin(t, env, "sync", "--data", dir, "--timeout", "2m")
	if r.code != 1 || !strings.Contains(r.stderr, "everything else written is grid-durable") ||
		!strings.Contains(r.stderr, "/big") || !strings.Contains(r.stderr, "restore those files from a copy, or delete them") {
		t.Errorf("sync with a staging file gone: want exit 1 naming /big and the way out, got %s", r)
	}
	if out := mustRun(t, env, "status", "--data", dir).stdout; !strings.Contains(out, "LOST: 1 blocks of 1 files") || !strings.Contains(out, "/big") {
		t.Errorf("status does not name the file whose staging file is gone:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "first")); err != nil || string(b) != "first" {
		t.Errorf("the other file: %q, %v", b, err)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "meshdrive.log")); !strings.Contains(string(log), "removed outside meshdrive") || !strings.Contains(string(log), "/big") {
		t.Errorf("the log does not say the staging file was removed, nor name /big:\n%s", log)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}
