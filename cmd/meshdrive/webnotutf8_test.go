package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/meshdrive/meshdrive/web"
)

// testWebNotUTF8 names a file whose name is not UTF-8 (Latin-1, as old
// archives have them) through the API of a real mount: by its href in
// addresses, by the *_href fields of JSON bodies (rename, restore, check),
// and status --json PATH gives its path_href. JSON has no string for the
// byte 0xE9 alone: before, such a file could only be downloaded and
// deleted from the web, and status --json showed its path with U+FFFD.
func testWebNotUTF8(t *testing.T, f *webFixture) {
	dir := filepath.Join(f.mp, "arch\xefve")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r\xe9sum\xe9.txt"), []byte("latin-1 name"), 0o644); err != nil {
		t.Fatal(err)
	}
	var l web.Listing
	f.want(t, 200, &l, "GET", "/api/v1/list/arch%EFve", nil)
	if l.PathHref != "/arch%EFve" || len(l.Entries) != 1 || l.Entries[0].Href != "arch%EFve/r%E9sum%E9.txt" {
		t.Fatalf("listing of /arch\\xefve: path_href %q, entries %+v", l.PathHref, l.Entries)
	}

	var e web.Entry
	f.want(t, 200, &e, "POST", "/api/v1/rename", jsonBody(map[string]string{"from_href": l.Entries[0].Href, "to_href": "arch%EFve/na%EFve.txt"}))
	if e.Href != "arch%EFve/na%EFve.txt" || string(readMount(t, filepath.Join(dir, "na\xefve.txt"))) != "latin-1 name" {
		t.Fatalf("rename by href: %+v", e)
	}

	// status --json PATH: the daemon's JSON, then the command's, keep the
	// bytes in path_href.
	p := pathJSON(t, f.env, f.dir, filepath.Join(dir, "na\xefve.txt"))
	if p.PathHref != "/arch%EFve/na%EFve.txt" || p.Type != "file" || p.Size != int64(len("latin-1 name")) {
		t.Errorf("status --json of /arch\\xefve/na\\xefve.txt: path %q, path_href %q, %+v", p.Path, p.PathHref, p)
	}
	if p := pathJSON(t, f.env, f.dir, filepath.Join(f.mp, "docs")); p.PathHref != "" {
		t.Errorf("status --json of a UTF-8 path has path_href %q", p.PathHref)
	}
	if out := mustRun(t, f.env, "status", "--data", f.dir, "--json").stdout; strings.Contains(out, "_href") {
		t.Errorf("status --json of a drive whose paths are UTF-8 has a companion:\n%s", out)
	}

	// Restore out of a snapshot by path_href: back under its own bytes.
	f.want(t, 201, nil, "POST", "/api/v1/snapshots", jsonBody(map[string]string{"name": "latin1-api"}))
	if err := os.Remove(filepath.Join(dir, "na\xefve.txt")); err != nil {
		t.Fatal(err)
	}
	var rr struct {
		To       string `json:"to"`
		ToHref   string `json:"to_href"`
		PathHref string `json:"path_href"`
		Files    int    `json:"files"`
	}
	f.want(t, 200, &rr, "POST", "/api/v1/restore", jsonBody(map[string]string{"snapshot": "latin1-api", "path_href": "arch%EFve/na%EFve.txt"}))
	if rr.ToHref != "/arch%EFve/na%EFve.txt" || rr.PathHref != rr.ToHref || rr.Files != 1 {
		t.Fatalf("restore by path_href: %+v", rr)
	}
	if got := string(readMount(t, filepath.Join(dir, "na\xefve.txt"))); got != "latin-1 name" {
		t.Fatalf("the restored file: %q", got)
	}

	// A check of the folder by path_href, which names it in its state.
	var cs web.CheckState
	f.want(t, 202, &cs, "POST", "/api/v1/check", jsonBody(map[string]any{"path_href": "arch%EFve"}))
	for deadline := time.Now().Add(time.Minute); cs.Running && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		f.want(t, 200, &cs, "GET", "/api/v1/check", nil)
	}
	if cs.Running || cs.Error != "" || cs.PathHref != "/arch%EFve" {
		t.Fatalf("check by path_href: %+v", cs)
	}

	f.want(t, 204, nil, "DELETE", "/api/v1/files/arch%EFve?recursive=1", nil)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the folder after its delete: %v", err)
	}
}

// browseNotUTF8 uses the web app on a folder whose name is not UTF-8,
// beside a folder whose name is that name as the JSON shows it (U+FFFD for
// each bad byte): the page opens the folder itself, uploads into it,
// renames in it, restores it, checks it and deletes it. Before, the page
// built the folder's address from the lossy path and opened the
// look-alike (or nothing), and refused rename and restore; its check form
// sent the folder as text and never opened on the folder shown.
func browseNotUTF8(t *testing.T, f *webFixture, ctx context.Context, run func(string, ...chromedp.Action[chromedp.Void]),
	wait func(string) chromedp.Action[chromedp.Void]) {
	dir := filepath.Join(f.mp, "d\xe9j\xe0")
	for _, d := range []string{dir, filepath.Join(f.mp, "d\ufffdj\ufffd")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "caf\xe9.txt"), []byte("caf\xe9"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.mp, "d\ufffdj\ufffd", "look-alike.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	row := func(href string) string { return fmt.Sprintf(`tr[data-href=%q]`, href) }
	has := func(href string) string { return fmt.Sprintf(`document.querySelector('%s') !== null`, row(href)) }
	// The page lists the root again (it listed it before the folders were made).
	run("open the folder d\\xe9j\\xe0", chromedp.Evaluate[chromedp.Void](`location.hash = "#/activity"`),
		chromedp.Evaluate[chromedp.Void](`location.hash = "#/files/"`), wait(has("d%E9j%E0")),
		chromedp.Click(chromedp.CSS(row("d%E9j%E0")+" .c-name a")),
		wait(`location.hash === "#/files/d%E9j%E0" && `+has("d%E9j%E0/caf%E9.txt")),
		wait(`[...document.querySelectorAll("#crumbs a")].at(-1).textContent === "d\ufffdj\ufffd"`))

	// Download the Latin-1 file: the browser saves it under the plain
	// ASCII name of the download's header, over the link's download
	// attribute (its name as text: U+FFFD for the bad byte), with its bytes.
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl}); err != nil {
		t.Fatal(err)
	}
	run("download caf\\xe9.txt", chromedp.Click(chromedp.CSS(row("d%E9j%E0/caf%E9.txt")+" .c-name a")))
	var saved []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if saved, _ = filepath.Glob(filepath.Join(dl, "*")); len(saved) == 1 && !strings.HasSuffix(saved[0], ".crdownload") {
			break
		}
	}
	if len(saved) != 1 || filepath.Base(saved[0]) != "caf_.txt" || string(readMount(t, saved[0])) != "caf\xe9" {
		t.Errorf("the browser saved caf\\xe9.txt as %q; want caf_.txt holding its bytes", saved)
	}

	// Upload into it.
	local := filepath.Join(t.TempDir(), "up.txt")
	if err := os.WriteFile(local, []byte("uploaded"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("upload into d\\xe9j\\xe0", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{local}),
		wait(has("d%E9j%E0/up.txt")))
	if got := string(readMount(t, filepath.Join(dir, "up.txt"))); got != "uploaded" {
		t.Fatalf("the uploaded file in the mount: %q", got)
	}

	// Rename the Latin-1 file to a UTF-8 name.
	run("rename caf\\xe9.txt", chromedp.Click(chromedp.CSS(row("d%E9j%E0/caf%E9.txt")+` button[title="Rename"]`)),
		wait(`!document.getElementById("modal").hidden`),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("modal-input").value = "café.txt"`),
		chromedp.Click(chromedp.CSS("#modal-ok")),
		wait(has("d%E9j%E0/caf%C3%A9.txt")+` && document.querySelector('`+row("d%E9j%E0/caf%E9.txt")+`') === null`))
	if got := string(readMount(t, filepath.Join(dir, "café.txt"))); got != "caf\xe9" {
		t.Fatalf("the renamed file: %q", got)
	}

	// Restore the folder from a snapshot, from the snapshot's root.
	f.want(t, 201, nil, "POST", "/api/v1/snapshots", jsonBody(map[string]string{"name": "latin1-snap"}))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	run("restore d\\xe9j\\xe0", chromedp.Navigate(f.base+"/#/snap/latin1-snap/"),
		wait(has("d%E9j%E0")),
		chromedp.Click(chromedp.CSS(row("d%E9j%E0")+" button")),
		wait(`!document.getElementById("modal").hidden`),
		chromedp.Click(chromedp.CSS("#modal-ok")),
		wait(`location.hash === "#/files/" && `+has("d%E9j%E0")))
	for name, want := range map[string]string{"café.txt": "caf\xe9", "up.txt": "uploaded"} {
		if got := string(readMount(t, filepath.Join(dir, name))); got != want {
			t.Errorf("restored %s: %q, want %q", name, got, want)
		}
	}

	// Check it from the folder itself: the nav's Check opens the form on
	// it, shown with U+FFFD, and the check is of the folder's own bytes,
	// not of the look-alike that text names.
	run("check d\\xe9j\\xe0", chromedp.Click(chromedp.CSS(row("d%E9j%E0")+" .c-name a")),
		wait(`location.hash === "#/files/d%E9j%E0"`),
		chromedp.Click(chromedp.CSS(`#nav a[data-view="check"]`)),
		wait(`location.hash === "#/check/d%E9j%E0" && document.getElementById("check-path").value === "/d\ufffdj\ufffd"`),
		chromedp.Click(chromedp.CSS("#btn-check")),
		wait(`document.getElementById("check-title").textContent.endsWith("/d\ufffdj\ufffd") && document.getElementById("check-sentence").textContent.includes(" checked: ")`))
	var cs web.CheckState
	f.want(t, 200, &cs, "GET", "/api/v1/check", nil)
	if cs.Running || cs.Error != "" || cs.PathHref != "/d%E9j%E0" {
		t.Errorf("the check the page started: path %q, path_href %q, error %q; want the folder /d%%E9j%%E0", cs.Path, cs.PathHref, cs.Error)
	}
	run("back to the root after the check", chromedp.Evaluate[chromedp.Void](`location.hash = "#/files/"`), wait(has("d%E9j%E0")))

	// Delete it: the look-alike stays.
	run("delete d\\xe9j\\xe0", chromedp.Click(chromedp.CSS(row("d%E9j%E0")+` button[title="Delete"]`)),
		wait(`!document.getElementById("modal").hidden`),
		chromedp.Click(chromedp.CSS("#modal-ok")),
		wait(`document.querySelector('`+row("d%E9j%E0")+`') === null`))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("d\\xe9j\\xe0 after its delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.mp, "d\ufffdj\ufffd", "look-alike.txt")); err != nil {
		t.Errorf("the look-alike folder after the delete: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(f.mp, "d\ufffdj\ufffd")); err != nil {
		t.Fatal(err)
	}
	run("back to the root", chromedp.Evaluate[chromedp.Void](`location.hash = "#/files/"`), wait(`document.querySelector('tr[data-name="docs"]') !== null`))
}

// TestStatusNotUTF8Dirs: a drive whose data dir and mountpoint are named
// in Latin-1 gives both with their bytes: status --json in data_dir_href
// and mountpoint_href, the web API's status in mountpoint_href, and
// status prints them quoted by their bytes. Before, JSON had them with
// U+FFFD alone, which names another folder.
func TestStatusNotUTF8Dirs(t *testing.T) {
	requireFuse(t)
	base := t.TempDir()
	dir, mp := filepath.Join(base, "d\xe9ta"), filepath.Join(base, "Dr\xefve")
	env := cmdEnv("MESHDRIVE_PASSPHRASE=latin-1 dirs")
	mustRun(t, env, "init", "--data", dir)
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)

	var st statusReport
	if err := json.Unmarshal([]byte(mustRun(t, env, "status", "--data", dir, "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if got := pathOf(st.DataDir, st.DataDirHref); got != dir || !strings.HasSuffix(st.DataDirHref, "/d%E9ta") {
		t.Errorf("status --json: data_dir %q, data_dir_href %q; want the bytes of %q", st.DataDir, st.DataDirHref, dir)
	}
	if got := pathOf(st.Mountpoint, st.MountpointHref); got != mp || !strings.HasSuffix(st.MountpointHref, "/Dr%EFve") {
		t.Errorf("status --json: mountpoint %q, mountpoint_href %q; want the bytes of %q", st.Mountpoint, st.MountpointHref, mp)
	}
	out := mustRun(t, env, "status", "--data", dir).stdout
	for _, want := range []string{"at " + showName(dir) + "\n", "mounted at " + showName(mp) + " ("} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not print %q:\n%s", want, out)
		}
	}

	// The web API's status, with the token from the data dir.
	tok, err := os.ReadFile(filepath.Join(dir, webTokenFile))
	if err != nil || st.Web == "" {
		t.Fatalf("web app at %q, token %v", st.Web, err)
	}
	api := &webFixture{base: strings.TrimSuffix(st.Web, "/"), token: strings.TrimSpace(string(tok))}
	var s web.Summary
	api.want(t, 200, &s, "GET", "/api/v1/status", nil)
	if got := pathOf(s.Mountpoint, s.MountpointHref); got != mp {
		t.Errorf("GET /api/v1/status: mountpoint %q, mountpoint_href %q; want the bytes of %q", s.Mountpoint, s.MountpointHref, mp)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}
