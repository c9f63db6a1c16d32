package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meshdrive/meshdrive/cache"
	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/web"
	"golang.org/x/sys/unix"
)

// webDrive is a mounted drive on six real nodes with its web app.
type webFixture struct {
	tmp     string // the nodes' directories are tmp/node/a..f
	dir, mp string
	env     []string
	nodes   []*nodeProc
	login   string // web-url's first output (its code is single-use)
	base    string // http://127.0.0.1:PORT
	token   string
	photo   []byte // docs/photo.jpg, written through the mount
}

func newWebFixture(t *testing.T) *webFixture {
	t.Helper()
	requireFuse(t)
	base := t.TempDir()
	dir, nodes, env := newCluster(t, base, "web")
	mp := filepath.Join(base, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, "--web-max-upload", "64MiB", mp)
	f := &webFixture{tmp: base, dir: dir, mp: mp, env: env, nodes: nodes}
	f.login = strings.TrimSpace(mustRun(t, env, "web-url", "--data", dir).stdout)
	u, err := url.Parse(f.login)
	if err != nil || u.Hostname() != "127.0.0.1" || u.Path != "/login" {
		t.Fatalf("web-url printed %q; want http://127.0.0.1:PORT/login?code=...", f.login)
	}
	f.base = "http://" + u.Host
	fi, err := os.Stat(filepath.Join(dir, webTokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, fi.Mode())
	}
	tok, _ := os.ReadFile(filepath.Join(dir, webTokenFile))
	f.token = strings.TrimSpace(string(tok))
	if c := u.Query().Get("code"); len(c) < 32 || len(f.token) < 32 || strings.Contains(f.login, f.token) || u.Query().Has("token") {
		t.Fatalf("web-url printed %q; want a login code, not the token file's %q", f.login, f.token)
	}
	if fi, err := os.Stat(filepath.Join(dir, metricsTokenFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("metrics token file: %v; want mode 0600", err)
	}
	if st := mustRun(t, env, "status", "--data", dir).stdout; !strings.Contains(st, "web app at "+f.base+"/") {
		t.Errorf("status does not print the web app's address %s:\n%s", f.base, st)
	}
	f.photo = make([]byte, 700<<10)
	rng := rand.New(rand.NewPCG(17, 17))
	for i := range f.photo {
		f.photo[i] = byte(rng.Uint32())
	}
	if err := os.MkdirAll(filepath.Join(mp, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "docs", "photo.jpg"), f.photo, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "1m")
	return f
}

// loginURL is a fresh login address from web-url.
func (f *webFixture) loginURL(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(mustRun(t, f.env, "web-url", "--data", f.dir).stdout)
}

// req sends one API request with the token (unless hdr says otherwise).
func (f *webFixture) req(t *testing.T, method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	r, err := http.NewRequest(method, f.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+f.token)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			r.Host = hdr[i+1]
		} else if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp, b
}

// want checks the status and, for JSON answers, decodes into v.
func (f *webFixture) want(t *testing.T, code int, v any, method, path string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	resp, b := f.req(t, method, path, body, hdr...)
	if resp.StatusCode != code {
		t.Fatalf("%s %s: %d %s; want %d", method, path, resp.StatusCode, b, code)
	}
	if code >= 400 {
		var e struct{ Error, Code string }
		if json.Unmarshal(b, &e) != nil || e.Error == "" || e.Code == "" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: error answer is not JSON with error and code: %q", method, path, b)
		}
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v in %q", method, path, err, b)
		}
	}
	return resp
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func readMount(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWeb runs the web API and the web app against one mount on six real
// nodes: the API's every endpoint and refusals, /metrics, then the page in
// a real Chromium (upload, download, states, restore, nodes).
func TestWeb(t *testing.T) {
	f := newWebFixture(t)
	t.Run("API", func(t *testing.T) { testWebAPI(t, f) })
	t.Run("Refusals", func(t *testing.T) { testWebRefusals(t, f) })
	t.Run("NotUTF8", func(t *testing.T) { testWebNotUTF8(t, f) })
	t.Run("Metrics", func(t *testing.T) { testWebMetrics(t, f) })
	t.Run("Browser", func(t *testing.T) { testWebBrowser(t, f) })
}

func testWebAPI(t *testing.T, f *webFixture) {
	// list, stat: the synced file is durable.
	var l web.Listing
	f.want(t, 200, &l, "GET", "/api/v1/list/docs", nil)
	if len(l.Entries) != 1 || l.Entries[0].Name != "photo.jpg" || l.Entries[0].Size != int64(len(f.photo)) || l.Entries[0].State != "durable" {
		t.Fatalf("list docs: %+v", l)
	}
	var e web.Entry
	f.want(t, 200, &e, "GET", "/api/v1/stat/docs", nil)
	if e.Type != "dir" || e.State != "durable" {
		t.Errorf("stat docs: %+v", e)
	}

	// GET whole and with Range.
	resp, b := f.req(t, "GET", "/api/v1/files/docs/photo.jpg", nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, f.photo) || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("GET photo.jpg: %d, %d bytes, disposition %q", resp.StatusCode, len(b), resp.Header.Get("Content-Disposition"))
	}
	resp, b = f.req(t, "GET", "/api/v1/files/docs/photo.jpg", nil, "Range", "bytes=1000-1999")
	if resp.StatusCode != 206 || !bytes.Equal(b, f.photo[1000:2000]) {
		t.Fatalf("GET Range 1000-1999: %d, %d bytes (equal %v)", resp.StatusCode, len(b), bytes.Equal(b, f.photo[1000:2000]))
	}
	resp, _ = f.req(t, "GET", "/api/v1/files/docs/photo.jpg", nil, "Range", fmt.Sprintf("bytes=%d-", len(f.photo)+5))
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("GET a range past the end: %d, want 416", resp.StatusCode)
	}

	// PUT, then the mount has it byte-exact; a second PUT replaces it.
	up := bytes.Repeat([]byte("uploaded through the API\n"), 5000)
	f.want(t, 201, &e, "PUT", "/api/v1/files/docs/notes%20v1.txt", bytes.NewReader(up))
	if e.Path != "docs/notes v1.txt" || e.Size != int64(len(up)) || e.State != "local" && e.State != "durable" {
		t.Errorf("PUT answered %+v", e)
	}
	if got := readMount(t, filepath.Join(f.mp, "docs", "notes v1.txt")); !bytes.Equal(got, up) {
		t.Fatalf("the mount holds %d bytes after PUT; want the %d sent", len(got), len(up))
	}
	// A private mode and a user xattr on it: an overwrite keeps both, as
	// an editor's save does.
	notes := filepath.Join(f.mp, "docs", "notes v1.txt")
	if err := os.Chmod(notes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(notes, "user.tag", []byte("blue"), 0); err != nil {
		t.Fatal(err)
	}
	f.want(t, 201, nil, "PUT", "/api/v1/files/docs/notes%20v1.txt", strings.NewReader("short"))
	if got := readMount(t, notes); string(got) != "short" {
		t.Fatalf("after the second PUT the mount holds %q", got)
	}
	if fi, err := os.Stat(notes); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("after an overwrite through the API: mode %v, %v; want 0600 kept", fi.Mode(), err)
	}
	tag := make([]byte, 16)
	if n, err := unix.Getxattr(notes, "user.tag", tag); err != nil || string(tag[:n]) != "blue" {
		t.Errorf("after an overwrite through the API: user.tag %q, %v; want blue kept", tag[:max(n, 0)], err)
	}

	// mkdir, rename, delete.
	f.want(t, 201, nil, "POST", "/api/v1/mkdir/docs/sub", nil)
	if fi, err := os.Stat(filepath.Join(f.mp, "docs", "sub")); err != nil || !fi.IsDir() {
		t.Fatalf("mkdir: %v", err)
	}
	f.want(t, 409, nil, "POST", "/api/v1/mkdir/docs/sub", nil)
	f.want(t, 200, &e, "POST", "/api/v1/rename", jsonBody(map[string]string{"from": "docs/notes v1.txt", "to": "docs/sub/notes.txt"}))
	if got := readMount(t, filepath.Join(f.mp, "docs", "sub", "notes.txt")); string(got) != "short" {
		t.Fatalf("after rename the mount holds %q", got)
	}
	f.want(t, 409, nil, "POST", "/api/v1/rename", jsonBody(map[string]string{"from": "docs/sub", "to": "docs/photo.jpg"}))
	// RENAME_NOREPLACE on the mount: a file is not renamed over another.
	f.want(t, 409, nil, "POST", "/api/v1/rename", jsonBody(map[string]string{"from": "docs/sub/notes.txt", "to": "docs/photo.jpg"}))
	f.want(t, 409, nil, "DELETE", "/api/v1/files/docs/sub", nil) // not empty
	f.want(t, 204, nil, "DELETE", "/api/v1/files/docs/sub?recursive=1", nil)
	if _, err := os.Stat(filepath.Join(f.mp, "docs", "sub")); !os.IsNotExist(err) {
		t.Fatalf("after delete: %v", err)
	}
	f.want(t, 404, nil, "DELETE", "/api/v1/files/docs/sub", nil)

	// status, nodes.
	var s web.Summary
	f.want(t, 200, &s, "GET", "/api/v1/status", nil)
	if s.NodesTotal != 6 || s.NodesUp != 6 || !s.Online || s.K != 4 || s.M != 2 || s.Mountpoint != f.mp || s.State == "" {
		t.Errorf("status: %+v", s)
	}
	var ns []web.Node
	f.want(t, 200, &ns, "GET", "/api/v1/nodes", nil)
	if len(ns) != 6 || !ns[0].Up || ns[0].Capacity <= 0 {
		t.Errorf("nodes: %+v", ns)
	}

	// snapshots, browse one, restore from it.
	var sn web.Snapshot
	f.want(t, 201, &sn, "POST", "/api/v1/snapshots", jsonBody(map[string]string{"name": "api-snap"}))
	var ss []web.Snapshot
	f.want(t, 200, &ss, "GET", "/api/v1/snapshots", nil)
	found := false
	for _, x := range ss {
		found = found || x.Name == "api-snap"
	}
	if !found || sn.Name != "api-snap" {
		t.Fatalf("snapshots: %+v (created %+v)", ss, sn)
	}
	f.want(t, 200, &l, "GET", "/api/v1/list/docs?snapshot=api-snap", nil)
	if len(l.Entries) != 1 || l.Entries[0].Name != "photo.jpg" {
		t.Fatalf("list docs in the snapshot: %+v", l)
	}
	if err := os.Remove(filepath.Join(f.mp, "docs", "photo.jpg")); err != nil {
		t.Fatal(err)
	}
	var rr struct {
		To    string `json:"to"`
		Files int    `json:"files"`
	}
	f.want(t, 200, &rr, "POST", "/api/v1/restore", jsonBody(map[string]string{"snapshot": "api-snap", "path": "docs/photo.jpg"}))
	if rr.To != "/docs/photo.jpg" || rr.Files != 1 || !bytes.Equal(readMount(t, filepath.Join(f.mp, "docs", "photo.jpg")), f.photo) {
		t.Fatalf("restore: %+v", rr)
	}
	// Restoring over something that is there puts the copy beside it.
	f.want(t, 200, &rr, "POST", "/api/v1/restore", jsonBody(map[string]string{"snapshot": "api-snap", "path": "docs"}))
	if rr.To != "/docs (restored api-snap)" || !bytes.Equal(readMount(t, filepath.Join(f.mp, "docs (restored api-snap)", "photo.jpg")), f.photo) {
		t.Fatalf("restore of a folder that exists: %+v", rr)
	}
	f.want(t, 404, nil, "POST", "/api/v1/restore", jsonBody(map[string]string{"snapshot": "no-such", "path": "docs"}))

	// check: runs in the background, reports progress, then the counts.
	var cs web.CheckState
	f.want(t, 202, &cs, "POST", "/api/v1/check", jsonBody(map[string]any{"path": "docs", "verify": true}))
	deadline := time.Now().Add(time.Minute)
	for cs.Running && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		f.want(t, 200, &cs, "GET", "/api/v1/check", nil)
	}
	if cs.Running || cs.Error != "" || cs.Report == nil || cs.Report.Healthy < 1 || cs.Report.Segments < 1 || cs.Report.Unrecoverable != 0 {
		t.Fatalf("check: %+v (report %+v)", cs, cs.Report)
	}
}

func testWebRefusals(t *testing.T, f *webFixture) {
	// No token, a wrong one, a wrong cookie.
	f.want(t, 401, nil, "GET", "/api/v1/status", nil, "Authorization", "")
	f.want(t, 401, nil, "GET", "/api/v1/list/", nil, "Authorization", "Bearer "+strings.Repeat("0", len(f.token)))
	f.want(t, 401, nil, "GET", "/metrics", nil, "Authorization", "")
	port := strings.Split(f.base, ":")[2]
	for _, ck := range []string{"meshdrive_token=" + f.token, "meshdrive_" + port + "=" + f.token, "meshdrive_" + port + "=wrong"} {
		f.want(t, 401, nil, "GET", "/api/v1/status", nil, "Authorization", "", "Cookie", ck)
	}
	for _, q := range []string{"token=" + f.token, "code=wrong", "code=" + f.token} {
		if resp, _ := f.req(t, "GET", "/login?"+q, nil); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
			t.Errorf("login?%s: %d, cookies %v; want 401", q, resp.StatusCode, resp.Cookies())
		}
	}

	// A login address sends the browser to the page with the code in the
	// fragment (no cookie, no token); the page trades it for a session,
	// once, which opens the API as "Authorization: Session".
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := f.loginURL(t)
	resp, err := c.Get(login)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	code := strings.TrimPrefix(login, f.base+"/login?code=")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/#login="+code || len(resp.Cookies()) != 0 {
		t.Fatalf("login: %d, Location %q, cookies %+v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	var la struct{ Session string }
	f.want(t, 200, &la, "POST", "/login", jsonBody(map[string]string{"code": code}), "Authorization", "", "Origin", f.base)
	if la.Session == "" || strings.Contains(la.Session, f.token) {
		t.Fatalf("login answered session %q", la.Session)
	}
	f.want(t, 200, nil, "GET", "/api/v1/status", nil, "Authorization", "Session "+la.Session)
	f.want(t, 401, nil, "GET", "/api/v1/status", nil, "Authorization", "", "Cookie", "meshdrive_"+port+"="+la.Session)
	f.want(t, 401, nil, "POST", "/login", jsonBody(map[string]string{"code": code}), "Authorization", "")
	if resp, _ := f.req(t, "GET", strings.TrimPrefix(login, f.base), nil); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("a login address used twice: %d, cookies %v; want 401", resp.StatusCode, resp.Cookies())
	}
	mtok, _ := os.ReadFile(filepath.Join(f.dir, metricsTokenFile))
	f.want(t, 200, nil, "GET", "/metrics", nil, "Authorization", "Bearer "+strings.TrimSpace(string(mtok)))
	f.want(t, 401, nil, "GET", "/api/v1/status", nil, "Authorization", "Bearer "+strings.TrimSpace(string(mtok)))

	// Paths that leave the drive.
	for _, p := range []string{"docs/../../etc/passwd", "docs/..%2F..%2Fetc%2Fpasswd", "docs%2Fphoto.jpg", "%2E%2E/x", ".snapshots/api-snap/docs/photo.jpg", "docs/%00"} {
		f.want(t, 400, nil, "GET", "/api/v1/files/"+p, nil)
	}
	if err := os.Symlink("/etc", filepath.Join(f.mp, "docs", "etc")); err != nil {
		t.Fatal(err)
	}
	f.want(t, 400, nil, "GET", "/api/v1/files/docs/etc/passwd", nil)
	f.want(t, 400, nil, "GET", "/api/v1/list/docs/etc", nil)
	f.want(t, 400, nil, "POST", "/api/v1/rename", jsonBody(map[string]string{"from": "docs/photo.jpg", "to": "../photo.jpg"}))
	f.want(t, 400, nil, "POST", "/api/v1/restore", jsonBody(map[string]string{"snapshot": "../..", "path": "x"}))

	// Cross-site: a foreign Origin, a browser's cross-site fetch, a Host
	// that is not us (DNS rebinding).
	f.want(t, 403, nil, "POST", "/api/v1/mkdir/evil", nil, "Origin", "http://evil.example")
	f.want(t, 403, nil, "PUT", "/api/v1/files/evil.txt", strings.NewReader("x"), "Origin", "null")
	f.want(t, 403, nil, "GET", "/api/v1/list/", nil, "Sec-Fetch-Site", "cross-site")
	f.want(t, 403, nil, "GET", "/api/v1/files/docs/photo.jpg", nil, "Sec-Fetch-Site", "same-site") // another local port
	f.want(t, 421, nil, "GET", "/api/v1/status", nil, "Host", "evil.example:"+strings.Split(f.base, ":")[2])
	for _, p := range []string{"evil", "evil.txt"} {
		if _, err := os.Lstat(filepath.Join(f.mp, p)); !os.IsNotExist(err) {
			t.Errorf("a refused request made %s: %v", p, err)
		}
	}
	f.want(t, 201, nil, "POST", "/api/v1/mkdir/ours", nil, "Origin", f.base) // our own origin is fine

	// A folder where a file is expected, a file where a folder is.
	f.want(t, 409, nil, "GET", "/api/v1/files/docs", nil)
	f.want(t, 409, nil, "PUT", "/api/v1/files/docs", strings.NewReader("x"))
	f.want(t, 409, nil, "GET", "/api/v1/list/docs/photo.jpg", nil)
	f.want(t, 404, nil, "GET", "/api/v1/stat/nothing-here", nil)
	// A FIFO on the mount: opening it would wait for a writer (and keep
	// the mount busy); a download is refused, listings go on.
	if err := syscall.Mkfifo(filepath.Join(f.mp, "docs", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.want(t, 409, nil, "GET", "/api/v1/files/docs/pipe", nil)
	f.want(t, 409, nil, "GET", "/api/v1/list/docs/pipe", nil)
	f.want(t, 200, nil, "GET", "/api/v1/list/docs", nil)
	if err := os.Remove(filepath.Join(f.mp, "docs", "pipe")); err != nil {
		t.Fatal(err)
	}
	f.want(t, 405, nil, "PATCH", "/api/v1/files/docs/photo.jpg", nil)
	f.want(t, 404, nil, "GET", "/api/v1/nothing", nil)
	f.want(t, 400, nil, "POST", "/api/v1/rename", strings.NewReader("{not json"))

	// A 10 GiB Content-Length is refused before a byte is read (raw HTTP:
	// the client never sends the body).
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /api/v1/files/huge.bin HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
		strings.TrimPrefix(f.base, "http://"), f.token, int64(10)<<30)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	hr, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || hr.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT with a 10 GiB Content-Length: %v %v; want 413", hr, err)
	}
	// A chunked body past the limit (64 MiB here) is cut off, and leaves nothing.
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 1<<20)
		for i := 0; i < 70; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	f.want(t, 413, nil, "PUT", "/api/v1/files/big.bin", pr)
	pr.Close()
	if names, _ := filepath.Glob(filepath.Join(f.mp, "*big*")); len(names) != 0 {
		t.Errorf("an upload cut off left %v", names)
	}
}

// metricValue sums a family's samples whose labels include want.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	fam := fams[name]
	if fam == nil {
		return -1
	}
	for _, m := range fam.Metric {
		ok := true
		for k, v := range want {
			found := false
			for _, lp := range m.Label {
				found = found || lp.GetName() == k && lp.GetValue() == v
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

func testWebMetrics(t *testing.T, f *webFixture) {
	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		resp, b := f.req(t, "GET", "/metrics", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		return fams
	}
	before := scrape()
	for _, name := range []string{"meshdrive_fuse_op_duration_seconds", "meshdrive_cache_hits_total", "meshdrive_cache_misses_total",
		"meshdrive_journal_reads_total", "meshdrive_grid_read_bytes_total", "meshdrive_grid_shipped_bytes_total", "meshdrive_upload_queue_bytes",
		"meshdrive_upload_queue_age_seconds", "meshdrive_node_request_duration_seconds", "meshdrive_repair_owed_segments", "meshdrive_journal_bytes"} {
		if before[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	var sum0 web.Summary
	f.want(t, 200, &sum0, "GET", "/api/v1/status", nil)
	data := bytes.Repeat([]byte("metrics move\n"), 1<<15)
	small := []byte("a small file, kept in the journal after its upload\n")
	for name, b := range map[string][]byte{"metrics.txt": data, "metrics-small.txt": small} {
		if err := os.WriteFile(filepath.Join(f.mp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, f.env, "sync", "--data", f.dir, "--timeout", "1m")
	// Read them from a new snapshot: the kernel has not seen the
	// snapshot's inodes. The small file comes from the journal's kept row
	// (before the cache clear drops it); the big one, after a cache clear,
	// from the grid.
	f.want(t, 201, nil, "POST", "/api/v1/snapshots", jsonBody(map[string]string{"name": "metrics-snap"}))
	if got := readMount(t, filepath.Join(f.mp, ".snapshots", "metrics-snap", "metrics-small.txt")); !bytes.Equal(got, small) {
		t.Fatal("the small file read back from the snapshot differs")
	}
	mustRun(t, f.env, "cache", "clear", "--data", f.dir)
	if got := readMount(t, filepath.Join(f.mp, ".snapshots", "metrics-snap", "metrics.txt")); !bytes.Equal(got, data) {
		t.Fatal("read back from the snapshot differs")
	}
	after := scrape()
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"meshdrive_fuse_op_duration_seconds", map[string]string{"op": "write"}},
		{"meshdrive_fuse_op_duration_seconds", map[string]string{"op": "create"}},
		{"meshdrive_grid_shipped_bytes_total", nil},
		{"meshdrive_upload_durable_bytes_total", nil},
		{"meshdrive_node_request_duration_seconds", map[string]string{"node": "node-1", "op": "put"}},
		{"meshdrive_cache_misses_total", nil},
		{"meshdrive_grid_read_bytes_total", nil},
		{"meshdrive_journal_reads_total", map[string]string{"copy": "kept"}},
	} {
		b, a := metricValue(before, c.name, c.labels), metricValue(after, c.name, c.labels)
		if !(a > b) {
			t.Errorf("%s%v did not move: %v before, %v after", c.name, c.labels, b, a)
		}
	}
	if v := metricValue(after, "meshdrive_journal_bytes", nil); v <= 0 {
		t.Errorf("meshdrive_journal_bytes = %v", v)
	}
	// The status summary counts the kept read too, as served here.
	var sum1 web.Summary
	f.want(t, 200, &sum1, "GET", "/api/v1/status", nil)
	if c0, c1 := sum0.Cache, sum1.Cache; c1.JournalReads <= c0.JournalReads {
		t.Errorf("status cache after reading a kept small file: %+v, before %+v; want more journal reads", c1, c0)
	}
	testNodeMetrics(t, f)
}

// testNodeMetrics: node serve's /metrics counts requests by operation and
// status (a verify of a flipped shard is a 409) and reports what it stores.
func testNodeMetrics(t *testing.T, f *webFixture) {
	n := f.nodes[0]
	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		resp, err := http.Get(n.url() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("node /metrics: %d, %v", resp.StatusCode, err)
		}
		return fams
	}
	before := scrape()
	if v := metricValue(before, "meshdrive_node_server_requests_total", map[string]string{"op": "put"}); v <= 0 {
		t.Errorf("node metrics count %v puts; the drive stored shards on it", v)
	}
	if v := metricValue(before, "meshdrive_node_server_objects", nil); v <= 0 {
		t.Errorf("node metrics report %v objects", v)
	}
	// Flip a byte in the middle of the node's largest shard, verify it
	// through the node, put the byte back.
	nodeDir := filepath.Join(f.tmp, "node", "a")
	var shard string
	var size int64
	filepath.Walk(nodeDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > size && !strings.Contains(p, "/.") {
			shard, size = p, fi.Size()
		}
		return nil
	})
	b, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.WriteFile(shard, b, 0o644)
	rel, _ := filepath.Rel(nodeDir, shard)
	resp, err := http.Post(n.url()+"/v1/verify/"+filepath.ToSlash(rel), "", nil)
	b[len(b)/2] ^= 0xff
	os.WriteFile(shard, b, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("verify of a flipped shard %s: %d, want 409", rel, resp.StatusCode)
	}
	after := scrape()
	if v := metricValue(after, "meshdrive_node_server_requests_total", map[string]string{"op": "verify", "code": "409"}) -
		metricValue(before, "meshdrive_node_server_requests_total", map[string]string{"op": "verify", "code": "409"}); v != 1 {
		t.Errorf("node metrics count %v more failed verifies; want 1", v)
	}
}

// chromiumPath finds Debian's chromium; under CI its absence fails the
// test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium); CI must run the browser test")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// artefacts is where screenshots go: $MESHDRIVE_TEST_ARTIFACTS, else a
// temporary directory.
func artefacts(t *testing.T) string {
	if d := os.Getenv("MESHDRIVE_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func testWebBrowser(t *testing.T, f *webFixture) {
	exe := chromiumPath(t)
	shots := artefacts(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		// Its singleton socket's directory too, which a killed chromium
		// leaves behind in /tmp (one per run, before this).
		chromedp.Env("TMPDIR="+t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// Start the browser before any step with a deadline (the first Do
	// owns it).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	// Any uncaught exception in the page fails the test.
	var jsMu sync.Mutex
	var jsErrs []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			jsMu.Lock()
			jsErrs = append(jsErrs, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			jsMu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		jsMu.Lock()
		defer jsMu.Unlock()
		for _, e := range jsErrs {
			t.Errorf("the page threw: %s", e)
		}
	}()
	wait := func(js string) chromedp.Action[chromedp.Void] {
		a := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := a(ctx, tg)
			if err != nil {
				err = fmt.Errorf("waiting for %s: %w", js, err)
			}
			return chromedp.Void{}, err
		}
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			b, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100: PNG
			if err == nil {
				err = os.WriteFile(filepath.Join(shots, name+".png"), b, 0o644)
			}
			return chromedp.Void{}, err
		}
	}
	row := func(name string) string { return fmt.Sprintf(`tr[data-name=%q]`, name) }

	pctNames := []string{"100%", "a%2Fb"} // folders whose names hold %
	for _, name := range pctNames {
		if err := os.MkdirAll(filepath.Join(f.mp, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.mp, name, "inside.txt"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Log in with a login address: the page drops the code from the address.
	run("log in and list the root",
		chromedp.Navigate(f.loginURL(t)),
		wait(`document.querySelector('tr[data-name="docs"]') !== null`),
		wait(`location.search === "" && location.hash === "#/files/" && document.getElementById("drive-state").textContent !== "…"`),
		shot("files"))
	// The session is in the page's storage, not in a cookie: cookies reach
	// every server on 127.0.0.1, whatever its port.
	cookies, err := chromedp.CallBrowser(ctx, storage.GetCookies, storage.GetCookiesParams{})
	if err != nil || len(cookies.Cookies) != 0 {
		t.Errorf("the browser holds cookies %+v (%v); want none", cookies.Cookies, err)
	}

	// Open a folder; the synced file says it is on the grid.
	// Folders whose names hold % route to themselves: each segment of the
	// hash is decoded once ("100%" threw, "a%2Fb" opened a/b).
	for _, name := range pctNames {
		run("open the folder "+name, chromedp.Click(chromedp.CSS(row(name)+" .c-name a")),
			wait(fmt.Sprintf(`location.hash === %q && document.querySelector('tr[data-name="inside.txt"]') !== null`, "#/files/"+url.PathEscape(name))),
			chromedp.Evaluate[chromedp.Void](`location.hash = "#/files/"`),
			wait(`document.querySelector('tr[data-name="docs"]') !== null && document.querySelector('tr[data-name="inside.txt"]') === null`))
	}

	browseNotUTF8(t, f, ctx, run, wait)

	// A new folder's name with a slash is refused, as a rename's is: it
	// made a folder inside another one ("100%/inner").
	run("new folder with a slash", chromedp.Click(chromedp.CSS("#btn-mkdir")),
		wait(`!document.getElementById("modal").hidden`),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("modal-input").value = "100%/inner"`),
		chromedp.Click(chromedp.CSS("#modal-ok")),
		wait(`!document.getElementById("toast").hidden && document.getElementById("toast").textContent.includes("slash")`))
	if _, err := os.Stat(filepath.Join(f.mp, "100%", "inner")); err == nil {
		t.Errorf("New folder %q made a folder inside 100%%", "100%/inner")
	}

	run("open docs", chromedp.Click(chromedp.CSS(row("docs")+" .c-name a")),
		wait(`location.hash === "#/files/docs" && document.querySelector('tr[data-name="photo.jpg"]') !== null`))
	state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row("photo.jpg")+" .c-state .pill")))
	if err != nil || state != "On the grid" {
		t.Errorf("photo.jpg's state on the page: %q, %v; want On the grid", state, err)
	}

	// Download: the browser saves the bytes of the file.
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl}); err != nil {
		t.Fatal(err)
	}
	run("download photo.jpg", chromedp.Click(chromedp.CSS(row("photo.jpg")+" .c-name a")))
	var got []byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		names, _ := filepath.Glob(filepath.Join(dl, "*"))
		if len(names) == 1 && !strings.HasSuffix(names[0], ".crdownload") {
			if got, _ = os.ReadFile(names[0]); len(got) == len(f.photo) {
				break
			}
		}
	}
	if !bytes.Equal(got, f.photo) {
		t.Fatalf("downloaded %d bytes; want photo.jpg's %d, byte for byte", len(got), len(f.photo))
	}
	// The pointer on a download link gets it a ticket, so its own address
	// (a middle click, "open in new tab", "copy link") opens the file
	// without the session's header, more than once (HEAD, a resumed GET).
	btn := row("photo.jpg") + " .c-act a"
	run("point at Download", chromedp.Evaluate[chromedp.Void](`document.querySelector('`+btn+`').dispatchEvent(new MouseEvent("mouseenter"))`),
		wait(`document.querySelector('`+btn+`').href.includes("ticket=")`))
	linkCodes, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`(async () => {
		const u = document.querySelector('`+btn+`').href;
		const a = await fetch(u, { method: "HEAD", credentials: "omit" });
		const b = await fetch(u, { credentials: "omit", headers: { Range: "bytes=10-" } });
		return [a.status, b.status, (await b.arrayBuffer()).byteLength];
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || len(linkCodes) != 3 || linkCodes[0] != 200 || linkCodes[1] != 206 || linkCodes[2] != len(f.photo)-10 {
		t.Errorf("the Download link's own address, HEAD then a ranged GET: %v, %v; want 200, 206, %d bytes", linkCodes, err, len(f.photo)-10)
	}

	// Upload through the file input: the file appears in the mount.
	upData := make([]byte, 300<<10)
	for i := range upData {
		upData[i] = byte(i*7 + i>>9)
	}
	local := filepath.Join(t.TempDir(), "from browser.bin")
	if err := os.WriteFile(local, upData, 0o644); err != nil {
		t.Fatal(err)
	}
	run("upload", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{local}),
		wait(`document.querySelector('tr[data-name="from browser.bin"]') !== null`),
		wait(`[...document.querySelectorAll("#transfer-list .how")].some(e => e.textContent.startsWith("Uploaded"))`),
		shot("upload"))
	if b, err := os.ReadFile(filepath.Join(f.mp, "docs", "from browser.bin")); err != nil || !bytes.Equal(b, upData) {
		t.Fatalf("the uploaded file in the mount: %d bytes, %v; want the %d uploaded", len(b), err, len(upData))
	}
	// Upload by a drop on the page (a DragEvent carrying a File, as the
	// desktop's drag and drop delivers it).
	run("drop", chromedp.Evaluate[chromedp.Void](`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File(["dropped on the page\n".repeat(1000)], "dropped.txt"));
		const zone = document.getElementById("drop");
		zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer: dt, bubbles: true, cancelable: true}));
		zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
	})()`), wait(`document.querySelector('tr[data-name="dropped.txt"]') !== null`))
	if b, err := os.ReadFile(filepath.Join(f.mp, "docs", "dropped.txt")); err != nil || string(b) != strings.Repeat("dropped on the page\n", 1000) {
		t.Fatalf("the dropped file in the mount: %d bytes, %v", len(b), err)
	}
	upState, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row("from browser.bin")+" .c-state .pill")))
	if upState != "Local only" && upState != "On the grid" {
		t.Errorf("the uploaded file's state on the page: %q", upState)
	}

	// Restore from a snapshot: delete the file, open the snapshot, restore.
	f.want(t, 201, nil, "POST", "/api/v1/snapshots", jsonBody(map[string]string{"name": "browser-snap"}))
	if err := os.Remove(filepath.Join(f.mp, "docs", "photo.jpg")); err != nil {
		t.Fatal(err)
	}
	run("restore", chromedp.Navigate(f.base+"/#/snapshots"),
		wait(`document.querySelector('li[data-snap="browser-snap"] a') !== null`),
		shot("snapshots"),
		chromedp.Click(chromedp.CSS(`li[data-snap="browser-snap"] a`)),
		wait(`document.querySelector('tr[data-name="docs"]') !== null`),
		chromedp.Click(chromedp.CSS(row("docs")+" .c-name a")),
		wait(`document.querySelector('tr[data-name="photo.jpg"] button') !== null`),
		chromedp.Click(chromedp.CSS(row("photo.jpg")+" button")),
		wait(`!document.getElementById("modal").hidden`),
		chromedp.Click(chromedp.CSS("#modal-ok")),
		wait(`location.hash === "#/files/docs" && document.querySelector('tr[data-name="photo.jpg"]') !== null`))
	if b, err := os.ReadFile(filepath.Join(f.mp, "docs", "photo.jpg")); err != nil || !bytes.Equal(b, f.photo) {
		t.Fatalf("photo.jpg after the restore: %d bytes, %v", len(b), err)
	}

	// The page's own requests are refused for a path with an encoded slash
	// or "..", like anyone's.
	// Without the session header the page's origin opens nothing.
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`(() => {
		const h = { headers: { Authorization: "Session " + localStorage.getItem("meshdrive-session") } };
		return Promise.all([fetch("/api/v1/files/docs%2Fphoto.jpg", h), fetch("/api/v1/files/docs/..%2Fx", h), fetch("/api/v1/files/docs/photo.jpg")].map(p => p.then(r => r.status)));
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || len(codes) != 3 || codes[0] != 400 || codes[1] != 400 || codes[2] != 401 {
		t.Errorf("the page's fetch of bad paths, and of a good one without the session: %v, %v; want 400, 400, 401", codes, err)
	}

	// Activity, check, and the phone layout.
	run("activity", chromedp.Navigate(f.base+"/#/activity"), wait(`document.getElementById("q-sentence").textContent !== ""`), shot("activity"))
	// A folder typed into the check form: its text is sent %-encoded ("100%" as 100%25).
	run("check a typed folder", chromedp.Navigate(f.base+"/#/check"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("check-path").value = " /100% "`), chromedp.Click(chromedp.CSS("#btn-check")),
		wait(`document.getElementById("check-title").textContent === "Check and repair of /100%" && document.getElementById("check-sentence").textContent.includes(" checked: ")`))
	run("check", chromedp.Evaluate[chromedp.Void](`document.getElementById("check-path").value = ""`), chromedp.Click(chromedp.CSS("#btn-check")),
		wait(`document.getElementById("check-title").textContent.endsWith("the whole drive") && document.getElementById("check-sentence").textContent.includes("segments checked")`),
		shot("check"))
	run("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(f.base+"/#/files/docs"),
		wait(`document.querySelector('tr[data-name="photo.jpg"]') !== null`), shot("files-phone"),
		chromedp.EmulateViewport(1280, 800))

	// One node stopped: the nodes page says which.
	f.nodes[5].stop(t, syscall.SIGTERM)
	run("nodes", chromedp.Navigate(f.base+"/#/nodes"),
		wait(`document.querySelectorAll("#node-cards .card").length === 6 && document.querySelector('.card.down[data-node="node-6"]') !== null`),
		shot("nodes"))
	sentence, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#nodes-sentence")))
	if !strings.Contains(sentence, "1 node of 6 is down") {
		t.Errorf("nodes page says %q; want it to say 1 node of 6 is down", sentence)
	}

	// The drive stops answering (unmounted, its process gone; here its
	// status requests are blocked): the page says so, on the top bar and
	// on Activity and Nodes, rather than keep the last state it had, which
	// said everything was safe.
	block := func(patterns ...string) {
		t.Helper()
		var bp []*network.BlockPattern
		for _, p := range patterns {
			bp = append(bp, &network.BlockPattern{URLPattern: p, Block: true})
		}
		if _, err := chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: bp}); err != nil {
			t.Fatal(err)
		}
	}
	block(f.base + "/api/v1/status")
	run("drive not answering", chromedp.Evaluate[chromedp.Void](`location.hash = "#/activity"`),
		wait(`document.getElementById("drive-state").textContent === "Drive not answering" && document.getElementById("q-sentence").textContent.includes("not answering")`),
		chromedp.Evaluate[chromedp.Void](`location.hash = "#/nodes"`),
		wait(`document.getElementById("nodes-sentence").textContent.includes("not answering") && document.querySelectorAll("#node-cards .card").length === 0`),
		shot("not-answering"))
	block()
	run("drive answering again", wait(`document.getElementById("drive-state").textContent !== "Drive not answering" && document.querySelectorAll("#node-cards .card").length === 6`))
	t.Logf("screenshots in %s", shots)
}

// TestUnmountEndsStalledUpload: a web upload whose body stalls holds a
// hidden file of the mount open; meshdrive unmount ends it (503) instead
// of failing as busy.
func TestUnmountEndsStalledUpload(t *testing.T) {
	f := newWebFixture(t)
	host := strings.TrimPrefix(f.base, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /api/v1/files/short.txt HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n11 bytes...", host, f.token)
	deadline := time.Now().Add(time.Minute)
	for {
		ents, _ := os.ReadDir(f.mp)
		if slices.ContainsFunc(ents, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), ".meshdrive-upload-") }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upload's hidden file never showed in the mount")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := mustRun(t, f.env, "unmount", "--data", f.dir, f.mp)
	if !strings.Contains(r.stdout, "unmounted "+f.mp) || !strings.Contains(r.stderr, "ended 1 web uploads") {
		t.Errorf("unmount: %s", r)
	}
	if mounted(f.mp) {
		t.Errorf("still mounted at %s", f.mp)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the upload got no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "being unmounted") {
		t.Errorf("the stalled upload: %d %s", resp.StatusCode, b)
	}
}

// TestCacheSummary: the web app's hit rate counts the journal's reads of
// its copies of files written here as served here, in a field of their
// own (hits keeps its meaning): 168 of 171 reads from the journal is a
// rate near 1, not near 0.
func TestCacheSummary(t *testing.T) {
	for _, c := range []struct {
		cs   fs.CacheStats
		want web.CacheSummary
	}{
		{fs.CacheStats{Stats: cache.Stats{Hits: 1, DiskHits: 1, Misses: 1}, KeptReads: 160, StagedReads: 8},
			web.CacheSummary{Hits: 2, Misses: 1, JournalReads: 168, HitRate: 170.0 / 171}},
		{fs.CacheStats{Stats: cache.Stats{Hits: 1, Misses: 3}}, web.CacheSummary{Hits: 1, Misses: 3, HitRate: 0.25}},
		{fs.CacheStats{}, web.CacheSummary{HitRate: -1}},
	} {
		if got := cacheSummary(c.cs); got != c.want {
			t.Errorf("cache %+v: summary %+v, want %+v", c.cs, got, c.want)
		}
	}
}
