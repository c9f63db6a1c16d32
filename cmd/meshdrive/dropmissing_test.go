package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meshdrive/meshdrive/web"
)

// TestMountDropMissing: a staging file of a block never uploaded is gone
// from the data dir. The mount refuses and names --drop-missing; with it,
// the drive mounts, the file's block is lost (EIO; status PATH says lost)
// and the other file reads.
func TestMountDropMissing(t *testing.T) {
	dir, mp, env, nodes := newDiskDrive(t, "")
	// Every node away: nothing is uploaded.
	for _, n := range nodes {
		if err := os.Rename(n, n+".away"); err != nil {
			t.Fatal(err)
		}
	}
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	lost, kept := make([]byte, 500_000), []byte("kept")
	rand.Read(lost) // sealed bigger than what the journal's database holds
	if err := os.WriteFile(filepath.Join(mp, "big"), lost, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "small"), kept, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
	staged, _ := filepath.Glob(filepath.Join(dir, "journal", "staging", "*"))
	if len(staged) != 1 {
		t.Fatalf("%d staging files, want 1: %v", len(staged), staged)
	}
	if err := os.Remove(staged[0]); err != nil {
		t.Fatal(err)
	}

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
	tok, _ := os.ReadFile(filepath.Join(dir, webTokenFile))
	req, _ := http.NewRequest("GET", strings.TrimSuffix(statusJSON(t, env, dir).Web, "/")+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	var sum web.Summary
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("GET /api/v1/status: %v", err)
	} else {
		err = json.NewDecoder(resp.Body).Decode(&sum)
		resp.Body.Close()
		if err != nil || sum.Lost == nil || sum.Lost.Blocks != 1 || len(sum.Lost.Paths) != 1 || sum.Lost.Paths[0] != "/big" {
			t.Errorf("the web app's summary does not count the lost block: %+v, %v", sum.Lost, err)
		}
	}
	if out := mustRun(t, env, "status", "--data", dir).stdout; !strings.Contains(out, "LOST: 1 blocks of 1 files") || !strings.Contains(out, "/big") {
		t.Errorf("status does not say a block is lost:\n%s", out)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "meshdrive.log")); !strings.Contains(string(log), "/big") {
		t.Errorf("the log does not name the file that lost a block:\n%s", log)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}
