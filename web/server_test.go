package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/repair"
	"golang.org/x/sys/unix"
)

// noDrive answers the Drive questions of a server over a plain folder
// (the fuzz test serves files only; the real mount's are in cmd/meshdrive).
type noDrive struct{}

var errNoDrive = errors.New("no drive behind this folder")

func (noDrive) Status(context.Context, string) (*fs.PathStatus, error) { return nil, errNoDrive }
func (noDrive) Summary(context.Context) Summary                        { return Summary{} }
func (noDrive) Snapshots(context.Context) ([]Snapshot, error)          { return nil, errNoDrive }
func (noDrive) CreateSnapshot(context.Context, string) (Snapshot, error) {
	return Snapshot{}, errNoDrive
}
func (noDrive) Check(context.Context, repair.CheckRequest, func(repair.Progress)) (*repair.Report, error) {
	return nil, errNoDrive
}

const (
	fuzzToken   = "0123456789abcdef0123456789abcdef"
	fuzzHost    = "127.0.0.1:8080"
	secret      = "SECRET-OUTSIDE-THE-DRIVE"
	fileContent = "0123456789 the file inside the drive"
)

// folderServer serves a folder that holds a file, a folder, and symlinks
// that point out of it (relative and absolute) at a secret.
func folderServer(t testing.TB) (*Server, string) {
	base := t.TempDir()
	mp := filepath.Join(base, "mnt")
	for _, d := range []string{mp + "/in/sub", base + "/outside"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(mp, "in/file.txt"), []byte(fileContent), 0o644))
	must(os.WriteFile(filepath.Join(base, "outside/secret"), []byte(secret), 0o644))
	must(os.Symlink("../../outside/secret", filepath.Join(mp, "in/rel")))
	must(os.Symlink(filepath.Join(base, "outside/secret"), filepath.Join(mp, "in/abs")))
	must(os.Symlink("../../outside", filepath.Join(mp, "in/dirlink")))
	must(os.Symlink("file.txt", filepath.Join(mp, "in/ok")))
	s, err := newServer(Options{Mountpoint: mp, Token: fuzzToken, Drive: noDrive{}})
	if err != nil {
		t.Fatal(err)
	}
	s.port = "8080"
	s.hosts[fuzzHost] = true
	return s, mp
}

func serve(s *Server, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		w.Code = -1 // not a request a client can send
		return w
	}
	r := httptest.NewRequest(method, "http://"+fuzzHost+"/", nil)
	r.URL, r.RequestURI, r.Host = u, target, fuzzHost
	r.Header.Set("Authorization", "Bearer "+fuzzToken)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	s.ServeHTTP(w, r)
	return w
}

// TestSymlinksOut: a symlink that leaves the drive is refused, one that
// stays inside works.
func TestSymlinksOut(t *testing.T) {
	s, _ := folderServer(t)
	for _, p := range []string{"in/rel", "in/abs", "in/dirlink/secret"} {
		w := serve(s, "GET", "/api/v1/files/"+p, nil)
		if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), secret) {
			t.Errorf("GET %s: %d %q; want 400 without the secret", p, w.Code, w.Body)
		}
	}
	if w := serve(s, "GET", "/api/v1/files/in/ok", nil); w.Code != 200 || w.Body.String() != fileContent {
		t.Errorf("GET in/ok (a symlink inside the drive): %d %q", w.Code, w.Body)
	}
	if w := serve(s, "GET", "/api/v1/list/in/dirlink", nil); w.Code != http.StatusBadRequest {
		t.Errorf("list of a symlink to a folder outside: %d %q; want 400", w.Code, w.Body)
	}
}

// FuzzServe: whatever the path and Range header, the server never answers
// with bytes from outside the drive, never fails with 5xx, and a file's
// answer is a slice of that file.
func FuzzServe(f *testing.F) {
	for _, s := range [][2]string{{"in/file.txt", "bytes=0-3"}, {"in/file.txt", "bytes=-5"}, {"in/file.txt", "bytes=3-1,0-0"},
		{"in/rel", ""}, {"in/%2E%2E/%2E%2E/outside/secret", ""}, {"in/dirlink/secret", "bytes=0-"}, {"in/file.txt", "bytes=99999999999999999999-"},
		{"in%2Ffile.txt", ""}, {"in/sub", ""}, {"in/file.txt", "bytes=0-1,2-3,4-5"}} {
		f.Add(s[0], s[1])
	}
	srv, _ := folderServer(f)
	f.Fuzz(func(t *testing.T, p, rng string) {
		if strings.ContainsAny(p, "?#") || !validHeader(rng) {
			return
		}
		for _, ep := range []string{"files", "list", "stat"} {
			w := serve(srv, "GET", "/api/v1/"+ep+"/"+p, map[string]string{"Range": rng})
			body := w.Body.Bytes()
			if bytes.Contains(body, []byte(secret)) || w.Code == 200 && bytes.Contains(body, []byte(`"name": "secret"`)) {
				t.Fatalf("GET %s/%s Range %q leaked what is outside the drive: %d %q", ep, p, rng, w.Code, body)
			}
			if w.Code >= 500 {
				t.Fatalf("GET %s/%s Range %q: %d %q", ep, p, rng, w.Code, body)
			}
			if ep == "files" && (w.Code == 200 || w.Code == 206) && !strings.HasPrefix(w.Header().Get("Content-Type"), "multipart/") &&
				!strings.Contains(fileContent, string(body)) {
				t.Fatalf("GET files/%s Range %q: %d %q is not a slice of the file", p, rng, w.Code, body)
			}
		}
	})
}

func validHeader(v string) bool {
	for _, c := range []byte(v) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// slowDrive answers the state of files named fast* at once and of the
// others never (until the request's budget ends).
type slowDrive struct{ noDrive }

func (slowDrive) Status(ctx context.Context, rel string) (*fs.PathStatus, error) {
	if strings.HasPrefix(path.Base(rel), "fast") {
		return &fs.PathStatus{State: "durable", Cached: "fully"}, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestListStatesBudget: a drive slow to tell states does not hold a
// listing past its budget; the listing says which states it left out.
func TestListStatesBudget(t *testing.T) {
	s, mp := folderServer(t)
	s.o.Drive = slowDrive{}
	for _, n := range []string{"fast1", "fast2", "slow1"} {
		if err := os.WriteFile(filepath.Join(mp, "in/sub", n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	w := serve(s, "GET", "/api/v1/list/in/sub", nil)
	var l Listing
	if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || w.Code != 200 {
		t.Fatalf("list: %d %q %v", w.Code, w.Body, err)
	}
	if d := time.Since(t0); d > statesBudget+time.Second {
		t.Errorf("the listing took %v; its states budget is %v", d, statesBudget)
	}
	got := map[string]string{}
	for _, e := range l.Entries {
		got[e.Name] = e.State
	}
	if !l.StatesPartial || got["fast1"] != "durable" || got["fast2"] != "durable" || got["slow1"] != "" || len(got) != 3 {
		t.Errorf("listing: partial %v, states %v", l.StatesPartial, got)
	}
}

// TestFIFO: a FIFO in the drive neither hangs a download nor a listing
// (opening one waits for a writer): a download is refused with 409.
func TestFIFO(t *testing.T) {
	s, mp := folderServer(t)
	if err := unix.Mkfifo(filepath.Join(mp, "in/pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target string
		code   int
	}{{"/api/v1/files/in/pipe", 409}, {"/api/v1/list/in/pipe", 409}, {"/api/v1/list/in", 200}, {"/api/v1/stat/in/pipe", 200}} {
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- serve(s, "GET", c.target, nil) }()
		select {
		case w := <-done:
			if w.Code != c.code {
				t.Errorf("GET %s: %d %q; want %d", c.target, w.Code, w.Body, c.code)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("GET %s hangs on a FIFO", c.target) // the goroutine stays blocked in open
		}
	}
}

// panicDrive panics where a drive answers.
type panicDrive struct{ noDrive }

func (panicDrive) Status(context.Context, string) (*fs.PathStatus, error) { panic("status bug") }
func (panicDrive) Check(context.Context, repair.CheckRequest, func(repair.Progress)) (*repair.Report, error) {
	panic("check bug")
}

// TestPanicsRecovered: a panic in the server's own goroutines (a check, the
// states of a listing) becomes an error or a partial answer, not a crash.
func TestPanicsRecovered(t *testing.T) {
	s, _ := folderServer(t)
	s.o.Drive = panicDrive{}
	w := serve(s, "GET", "/api/v1/list/in", nil)
	var l Listing
	if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || w.Code != 200 || !l.StatesPartial {
		t.Errorf("list with a panicking Status: %d %q; want 200, states_partial", w.Code, w.Body)
	}
	if w := serve(s, "POST", "/api/v1/check", nil); w.Code != http.StatusAccepted {
		t.Fatalf("check: %d %q", w.Code, w.Body)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := s.check.state()
		if !st.Running {
			if !strings.Contains(st.Error, "check bug") {
				t.Errorf("check after a panic: %+v; want its error", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the check still runs after its panic")
		}
	}
}

// TestUserMistakes: a folder renamed into itself and a symlink loop are
// the user's mistakes (400 with what to do), not the server's (500).
func TestUserMistakes(t *testing.T) {
	s, mp := folderServer(t)
	if err := os.Symlink("loop", filepath.Join(mp, "in/loop")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, target, body, code string }{
		{"POST", "/api/v1/rename", `{"from":"in","to":"in/sub/in"}`, "into_itself"},
		{"GET", "/api/v1/files/in/loop", "", "symlink_loop"},
		{"GET", "/api/v1/list/in/loop", "", "symlink_loop"},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(c.method, "http://"+fuzzHost+c.target, strings.NewReader(c.body))
		r.Host = fuzzHost
		r.Header.Set("Authorization", "Bearer "+fuzzToken)
		s.ServeHTTP(w, r)
		var e apiError
		if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 400 || e.Code != c.code {
			t.Errorf("%s %s %s: %d %q; want 400 %s", c.method, c.target, c.body, w.Code, w.Body, c.code)
		}
	}
}

// snapDrive fails CreateSnapshot as the journal does.
type snapDrive struct {
	noDrive
	err error
}

func (d snapDrive) CreateSnapshot(context.Context, string) (Snapshot, error) {
	return Snapshot{}, d.err
}

func TestSnapshotCreateErrors(t *testing.T) {
	s, _ := folderServer(t)
	for _, c := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"2026-01-02T150405Z", nil, 400, "bad_name"}, // refused before the drive is asked
		{strings.Repeat("x", 300), nil, 400, "bad_name"},
		{"a/b", nil, 400, "bad_name"},
		{"..", nil, 400, "bad_name"},
		{`wipe\u001b[2J`, nil, 400, "bad_name"}, // JSON escapes: control and invisible characters
		{`two\nlines`, nil, 400, "bad_name"},
		{`rtl\u202etxt`, nil, 400, "bad_name"},
		{"x", fmt.Errorf("journal: %w: no grid for metadata", journal.ErrInvalid), 503, "snapshot"},
		{"x", fmt.Errorf("journal: %w", journal.ErrReadOnly), 403, "read_only"},
		{"x", fmt.Errorf("journal: snapshot %q: %w", "x", journal.ErrExist), 409, "exists"},
		{"x", errors.New("remote: no node answered"), 503, "snapshot"},
	} {
		s.o.Drive = snapDrive{err: c.err}
		w := serveBody(s, "POST", "/api/v1/snapshots", `{"name":"`+c.name+`"}`, nil)
		var e apiError
		if json.Unmarshal(w.Body.Bytes(), &e); w.Code != c.status || e.Code != c.code {
			t.Errorf("CreateSnapshot %q failing with %v: %d %q; want %d %s", c.name, c.err, w.Code, w.Body, c.status, c.code)
		}
		// A refused name is told its own reason, once.
		if e.Code == "bad_name" && ((len(c.name) > 100) != strings.Contains(e.Error, "longer than 100 bytes") ||
			strings.Contains(c.name, `\`) != strings.Contains(e.Error, "control or invisible character")) || strings.Count(e.Error, "choose") > 1 {
			t.Errorf("CreateSnapshot %.20q: %q; want the reason for this name, and what to do once", c.name, e.Error)
		}
	}
}

// TestRenameNoReplace: a rename never replaces what is at its destination
// (renameat2 RENAME_NOREPLACE: no check-then-rename race).
func TestRenameNoReplace(t *testing.T) {
	s, mp := folderServer(t)
	if err := os.WriteFile(filepath.Join(mp, "in/sub/other"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	post := func(body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "http://"+fuzzHost+"/api/v1/rename", strings.NewReader(body))
		r.Host = fuzzHost
		r.Header.Set("Authorization", "Bearer "+fuzzToken)
		s.ServeHTTP(w, r)
		return w
	}
	if w := post(`{"from":"in/file.txt","to":"in/sub/other"}`); w.Code != http.StatusConflict {
		t.Errorf("rename onto a file: %d %q; want 409", w.Code, w.Body)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in/sub/other")); err != nil || string(b) != "other" {
		t.Errorf("the destination after a refused rename: %q %v", b, err)
	}
	// Its own name: it exists (409), not "a folder moved into itself".
	if w := post(`{"from":"in/file.txt","to":"/in/file.txt/"}`); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), `"exists"`) {
		t.Errorf("rename of a file to its own name: %d %q; want 409 exists", w.Code, w.Body)
	}
	if w := post(`{"from":"in/file.txt","to":"in/sub/moved"}`); w.Code != 200 {
		t.Errorf("rename to a free name: %d %q", w.Code, w.Body)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in/sub/moved")); err != nil || string(b) != fileContent {
		t.Errorf("the file after its rename: %q %v", b, err)
	}
	if w := post(`{"from":"in/nothing","to":"in/sub/x"}`); w.Code != 404 {
		t.Errorf("rename of nothing: %d %q; want 404", w.Code, w.Body)
	}
	// A missing destination folder is named as what is missing, not the
	// file, which is there.
	w := post(`{"from":"in/sub/moved","to":"nodir/moved"}`)
	var e apiError
	if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 404 || e.Code != "not_found" || !strings.Contains(e.Error, "no folder /nodir") {
		t.Errorf("rename into a folder that does not exist: %d %q; want 404 naming /nodir", w.Code, w.Body)
	}
	if _, err := os.Stat(filepath.Join(mp, "in/sub/moved")); err != nil {
		t.Errorf("the file after a refused rename: %v", err)
	}
	if w := post(`{"from":"in/sub/moved","to":"in/sub/other/x"}`); w.Code != 409 || !strings.Contains(w.Body.String(), "/in/sub/other/x") {
		t.Errorf("rename under a file: %d %q; want 409 naming the destination", w.Code, w.Body)
	}
}

// TestStatBudget: a folder's stat (a walk of its tree) keeps a listing's
// budget and says when it gave up; downloads are not kept by caches.
func TestStatBudget(t *testing.T) {
	s, _ := folderServer(t)
	s.o.Drive = slowDrive{}
	t0 := time.Now()
	w := serve(s, "GET", "/api/v1/stat/in/sub", nil)
	var e Entry
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 200 || !e.StatePartial || e.State != "" {
		t.Errorf("stat of a folder slow to tell its state: %d %q %v; want 200, state_partial", w.Code, w.Body, err)
	}
	if d := time.Since(t0); d > statesBudget+time.Second {
		t.Errorf("the stat took %v; its budget is %v", d, statesBudget)
	}
	if w := serve(s, "GET", "/api/v1/files/in/file.txt", nil); w.Code != 200 || w.Header().Get("Cache-Control") != "private, no-cache" {
		t.Errorf("download: %d, Cache-Control %q; want private, no-cache", w.Code, w.Header().Get("Cache-Control"))
	}
}

// resetBody is a request body whose connection resets after some bytes.
type resetBody struct{ n int }

func (b *resetBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	}
	k := min(len(p), b.n)
	b.n -= k
	clear(p[:k])
	return k, nil
}

// TestUploadReset: an upload whose connection resets is the client's
// incomplete request (400), not a drive error with the socket's text
// (500), and the file it would have replaced is untouched.
func TestUploadReset(t *testing.T) {
	s, mp := folderServer(t)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("PUT", "http://"+fuzzHost+"/api/v1/files/in/file.txt", &resetBody{n: 1000})
	r.Host = fuzzHost
	r.Header.Set("Authorization", "Bearer "+fuzzToken)
	s.ServeHTTP(w, r)
	var e apiError
	if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 400 || e.Code != "incomplete" {
		t.Errorf("PUT with a reset body: %d %s; want 400 incomplete", w.Code, w.Body)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in/file.txt")); err != nil || string(b) != fileContent {
		t.Errorf("the file reads %q, %v after a reset upload", b, err)
	}
}

// TestUploadOverFIFO: an upload to the name of a FIFO does not block
// opening it for its mode and xattrs (carryOver), and replaces it.
func TestUploadOverFIFO(t *testing.T) {
	s, mp := folderServer(t)
	if err := unix.Mkfifo(filepath.Join(mp, "in/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("PUT", "http://"+fuzzHost+"/api/v1/files/in/fifo", strings.NewReader("data"))
		r.Host = fuzzHost
		r.Header.Set("Authorization", "Bearer "+fuzzToken)
		s.ServeHTTP(w, r)
		done <- w
	}()
	select {
	case w := <-done:
		if w.Code != 201 {
			t.Errorf("PUT over a FIFO: %d %s", w.Code, w.Body)
		}
		if b, err := os.ReadFile(filepath.Join(mp, "in/fifo")); err != nil || string(b) != "data" {
			t.Errorf("after the upload the name reads %q, %v", b, err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the handler's open before the test ends.
		if f, err := os.OpenFile(filepath.Join(mp, "in/fifo"), os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatal("an upload over a FIFO blocked")
	}
}

// TestLeftoversSwept: what an upload or restore of an earlier run left
// under a hidden name is removed when its folder is listed; one being
// written now, or written since the server started, is not.
func TestLeftoversSwept(t *testing.T) {
	s, mp := folderServer(t)
	old := time.Now().Add(-time.Hour)
	leftFile := filepath.Join(mp, "in/.meshdrive-upload-0123456789ab-big.iso")
	leftDir := filepath.Join(mp, "in/.meshdrive-upload-ba9876543210-photos")
	if err := os.WriteFile(leftFile, []byte("half an upload"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(leftDir, "2024"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leftDir, "2024/a.jpg"), []byte("jpg"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Ours, now: registered, and as old as a restore's copied times.
	ours, release := s.tempBeside("in/restoring")
	if err := os.Mkdir(filepath.Join(mp, ours), 0o755); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(mp, "in/.meshdrive-upload-aaaaaaaaaaaa-new")
	if err := os.WriteFile(fresh, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A person's own names that only start like ours: listed, kept.
	mineFile := filepath.Join(mp, "in/.meshdrive-upload-notes.txt")
	mineDir := filepath.Join(mp, "in/.meshdrive-upload-0123456789abcdef")
	if err := os.WriteFile(mineFile, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mineDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{leftFile, leftDir, filepath.Join(mp, ours), mineFile, mineDir} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	w := serve(s, "GET", "/api/v1/list/in", nil)
	var l Listing
	json.Unmarshal(w.Body.Bytes(), &l)
	var names []string
	for _, e := range l.Entries {
		if strings.HasPrefix(e.Name, ".meshdrive-upload-") {
			names = append(names, e.Name)
		}
	}
	if w.Code != 200 || !slices.Equal(names, []string{".meshdrive-upload-0123456789abcdef", ".meshdrive-upload-notes.txt"}) {
		t.Fatalf("list: %d, hidden-looking names listed %q; want only the person's own two", w.Code, names)
	}
	for _, p := range []string{mineFile, mineDir} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s, a person's own, was removed: %v", filepath.Base(p), err)
		}
	}
	for _, p := range []string{leftFile, leftDir} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left by an earlier run is still there: %v", filepath.Base(p), err)
		}
	}
	for _, p := range []string{filepath.Join(mp, ours), fresh} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s, written now, was removed: %v", filepath.Base(p), err)
		}
	}
	release()
	if b, err := os.ReadFile(filepath.Join(mp, "in/file.txt")); err != nil || string(b) != fileContent {
		t.Errorf("file.txt after the sweep: %q %v", b, err)
	}
}

// TestUploadRefusesForm: a multipart form, or a part of a file (a PUT
// with Content-Range), is not stored as the file.
func TestUploadRefusesForm(t *testing.T) {
	s, mp := folderServer(t)
	body := "--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file.txt\"\r\n\r\nnew\r\n--x--\r\n"
	w := serveBody(s, "PUT", "/api/v1/files/in/file.txt", body, map[string]string{"Content-Type": "multipart/form-data; boundary=x"})
	var e apiError
	if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 415 || e.Code != "multipart" {
		t.Errorf("PUT of a form: %d %s; want 415 multipart", w.Code, w.Body)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in/file.txt")); err != nil || string(b) != fileContent {
		t.Errorf("file.txt after a refused form: %q %v", b, err)
	}
	// A part of the file (a resumed upload) would be stored as all of it.
	w = serveBody(s, "PUT", "/api/v1/files/in/file.txt", "012", map[string]string{"Content-Range": "bytes 0-2/37"})
	if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 400 || e.Code != "invalid" {
		t.Errorf("PUT with a Content-Range: %d %s; want 400 invalid", w.Code, w.Body)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in/file.txt")); err != nil || string(b) != fileContent {
		t.Errorf("file.txt after a refused part: %q %v", b, err)
	}
	if w := serveBody(s, "PUT", "/api/v1/files/in/file.txt", "new", map[string]string{"Content-Type": "text/plain"}); w.Code != 201 {
		t.Errorf("PUT of text/plain: %d %s", w.Code, w.Body)
	}
}

// TestMethodNotAllowed: a 405 says which methods the endpoint takes.
func TestMethodNotAllowed(t *testing.T) {
	s, _ := folderServer(t)
	s.o.Metrics = NewMetrics().Handler()
	for _, c := range [][3]string{
		{"PATCH", "/api/v1/files/in/file.txt", "GET, HEAD, PUT, DELETE"},
		{"DELETE", "/api/v1/snapshots", "GET, POST"},
		{"GET", "/api/v1/ticket", "POST"},
		{"PUT", "/api/v1/list/in", "GET"},
		{"POST", "/", "GET, HEAD"},
		{"DELETE", "/login", "GET, POST"},
		{"POST", "/metrics", "GET, HEAD"},
		{"DELETE", "/metrics", "GET, HEAD"},
	} {
		w := serve(s, c[0], c[1], nil)
		if w.Code != 405 || w.Header().Get("Allow") != c[2] {
			t.Errorf("%s %s: %d, Allow %q; want 405, %q", c[0], c[1], w.Code, w.Header().Get("Allow"), c[2])
		}
	}
}

// TestDeleteNotEmptyAndBadRange: a folder deleted without recursive=1 while
// it holds something is 409 not_empty with the request that would delete
// it; a Range past the end is the API's JSON error, not ServeContent's text.
func TestDeleteNotEmptyAndBadRange(t *testing.T) {
	s, mp := folderServer(t)
	if err := os.Mkdir(filepath.Join(mp, "in/a b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "in/a b/x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := serve(s, "DELETE", "/api/v1/files/in/a%20b", nil)
	var e apiError
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 409 || e.Code != "not_empty" ||
		!strings.Contains(e.Error, "not empty") || !strings.Contains(e.Error, "DELETE /api/v1/files/in/a%20b?recursive=1") {
		t.Errorf("DELETE of a folder with a file in it: %d %q", w.Code, w.Body)
	}
	if _, err := os.Stat(filepath.Join(mp, "in/a b/x")); err != nil {
		t.Errorf("the refused delete removed something: %v", err)
	}
	if w := serve(s, "DELETE", "/api/v1/files/in/a%20b?recursive=1", nil); w.Code != 204 {
		t.Errorf("DELETE ?recursive=1: %d %q", w.Code, w.Body)
	}

	w = serve(s, "GET", "/api/v1/files/in/file.txt", map[string]string{"Range": "bytes=1000-"})
	e = apiError{}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 416 || e.Code != "bad_range" ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !strings.Contains(e.Error, fmt.Sprintf("has %d", len(fileContent))) {
		t.Errorf("GET a Range past the end: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	if cr := w.Header().Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", len(fileContent)) {
		t.Errorf("416 Content-Range %q", cr)
	}
	if w := serve(s, "GET", "/api/v1/files/in/file.txt", map[string]string{"Range": "bytes=1-2"}); w.Code != 206 || w.Body.String() != fileContent[1:3] {
		t.Errorf("GET Range 1-2: %d %q", w.Code, w.Body)
	}
}

// FuzzJSONBody: whatever JSON body (or not JSON) a client posts to an
// endpoint that takes one, the server never panics or answers 5xx for it
// (a drive that is not there is the fake's 5xx, not the body's), and
// never changes anything outside the drive.
func FuzzJSONBody(f *testing.F) {
	eps := []string{"rename", "mkdir/in/new", "snapshots", "restore", "check", "ticket"}
	for _, s := range []struct {
		ep   byte
		body string
	}{
		{0, `{"from":"in/file.txt","to":"in/sub/moved"}`},
		{0, `{"from":"in/file.txt","to":"../outside/x"}`},
		{0, `{"from":"in/dirlink","to":"in/sub/x"}`},
		{0, `{"from":"in/dirlink/secret","to":"in/got"}`},
		{0, `{"from":"in","to":"in/sub"}`},
		{1, `{}`},
		{2, `{"name":"s1"}`},
		{3, `{"snapshot":"s1","path":"in/file.txt","to":"../outside"}`},
		{4, `{"repair":true}`},
		{5, `{"url":"/api/v1/files/in/file.txt"}`},
		{5, `{"url":"//evil/api/v1/files/x"}`},
		{0, `{"from":"a","to":"b"}{"from":"b"}`},
		{0, `{"from":"a","to":"b","extra":1}`},
		{0, `[` + strings.Repeat(`[`, 10000)},
		{0, `{"from_href":"in/file.txt","to_href":"..%2Foutside%2Fx"}`},
		{0, `{"from_href":"in/dirlink%2Fsecret","to_href":"in/%E9"}`},
		{0, `{"from":"in/file.txt","from_href":"in/file.txt","to":"x"}`},
		{3, `{"snapshot":"s1","path_href":"in/file.txt","to_href":"..%2F..%2Foutside"}`},
		{4, `{"path_href":"in/dirlink/%2E%2E"}`},
	} {
		f.Add(s.ep, s.body)
	}
	f.Fuzz(func(t *testing.T, ep byte, body string) {
		srv, mp := folderServer(t)
		base := filepath.Dir(mp)
		target := apiPrefix + eps[int(ep)%len(eps)]
		r := httptest.NewRequest(http.MethodPost, "http://"+fuzzHost+target, strings.NewReader(body))
		r.Host = fuzzHost
		r.Header.Set("Authorization", "Bearer "+fuzzToken)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code >= 500 && !strings.Contains(w.Body.String(), errNoDrive.Error()) {
			t.Fatalf("POST %s %q: %d %q", target, body, w.Code, w.Body)
		}
		if b, err := os.ReadFile(filepath.Join(base, "outside/secret")); err != nil || string(b) != secret {
			t.Fatalf("POST %s %q changed what is outside the drive: %v", target, body, err)
		}
		for _, d := range []string{base, filepath.Join(base, "outside")} {
			ents, _ := os.ReadDir(d)
			if len(ents) != 2 && d == base || len(ents) != 1 && d != base {
				t.Fatalf("POST %s %q: %s holds %v", target, body, d, ents)
			}
		}
	})
}

// TestNameTooLong: a name over 255 bytes is answered name_too_long, as
// docs/API.md says, not bad_path (whose sentence is about leaving the
// drive), wherever the path comes from.
func TestNameTooLong(t *testing.T) {
	s, mp := folderServer(t)
	if err := os.MkdirAll(filepath.Join(mp, ".snapshots/s1/in"), 0o755); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", 256)
	for _, c := range []struct{ method, target, body string }{
		{"PUT", "/api/v1/files/in/" + long, "x"},
		{"GET", "/api/v1/files/in/" + long, ""},
		{"POST", "/api/v1/mkdir/in/" + long, ""},
		{"POST", "/api/v1/rename", `{"from":"in/file.txt","to":"in/` + long + `"}`},
		{"POST", "/api/v1/restore", `{"snapshot":"s1","path":"in","to":"` + long + `"}`},
		{"POST", "/api/v1/check", `{"path":"in/` + long + `"}`},
	} {
		w := serveBody(s, c.method, c.target, c.body, nil)
		var e apiError
		if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 400 || e.Code != "name_too_long" {
			t.Errorf("%s %.40s... %.40s: %d %q; want 400 name_too_long", c.method, c.target, c.body, w.Code, w.Body)
		}
	}
	if _, err := os.Stat(filepath.Join(mp, "in/file.txt")); err != nil {
		t.Errorf("the file after a refused rename: %v", err)
	}
}

// TestRestoreBesideLongName: restoring a file whose name is near 255
// bytes while the file is there puts the copy beside it under a name cut
// short to fit, not "too many restored copies already".
func TestRestoreBesideLongName(t *testing.T) {
	s, mp := folderServer(t)
	long := strings.Repeat("é", 127) // 254 bytes: the suffix must cut it on a character boundary
	for _, d := range []string{mp + "/in", mp + "/.snapshots/s1/in"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, long), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{" (restored s1)", " (restored s1, 2)"} {
		w := serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path":"in/`+long+`"}`, nil)
		var res restoreResult
		if json.Unmarshal(w.Body.Bytes(), &res); w.Code != 200 {
			t.Fatalf("restore %d beside a long name: %d %q; want 200", i+1, w.Code, w.Body)
		}
		name := path.Base(res.To)
		if !strings.HasSuffix(name, want) || len(name) > 255 || !utf8.ValidString(name) || !strings.HasPrefix(long, strings.TrimSuffix(name, want)) {
			t.Errorf("restore %d went to %q (%d bytes); want a valid name ending %q of at most 255 bytes", i+1, name, len(name), want)
		}
		if b, err := os.ReadFile(filepath.Join(mp, res.To)); err != nil || string(b) != mp+"/.snapshots/s1/in" {
			t.Errorf("the restored copy: %q %v", b, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in", long)); err != nil || string(b) != mp+"/in" {
		t.Errorf("the file restored beside: %q %v", b, err)
	}
}

// TestNoSnapshot: a download, stat or listing in a snapshot the drive does
// not have says so (404 no_snapshot, and where the snapshots are listed),
// not that the file is missing from a folder.
func TestNoSnapshot(t *testing.T) {
	s, mp := folderServer(t)
	if err := os.MkdirAll(filepath.Join(mp, ".snapshots/s1/in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, ".snapshots/s1/in/old.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target string
		status int
		code   string
	}{
		{"/api/v1/files/in/old.txt?snapshot=nope", 404, "no_snapshot"},
		{"/api/v1/stat/in/old.txt?snapshot=nope", 404, "no_snapshot"},
		{"/api/v1/list/in?snapshot=nope", 404, "no_snapshot"},
		{"/api/v1/files/in/missing?snapshot=s1", 404, "not_found"},
		{"/api/v1/stat/in/missing?snapshot=s1", 404, "not_found"},
		{"/api/v1/files/in/old.txt?snapshot=s1", 200, ""},
	} {
		w := serve(s, "GET", c.target, nil)
		var e apiError
		if json.Unmarshal(w.Body.Bytes(), &e); w.Code != c.status || e.Code != c.code {
			t.Errorf("GET %s: %d %q; want %d %s", c.target, w.Code, w.Body, c.status, c.code)
		}
	}
}

// TestCheckMissingPath: a check of a path that is not on the drive is
// refused at once (404, what to do), not started to stop with the drive's
// "resolve ...: no such file or directory".
func TestCheckMissingPath(t *testing.T) {
	s, _ := folderServer(t)
	w := serveBody(s, "POST", "/api/v1/check", `{"path":"in/nothing"}`, nil)
	var e apiError
	if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 404 || e.Code != "not_found" || !strings.Contains(e.Error, "/in/nothing") {
		t.Errorf("check of a missing path: %d %q; want 404 not_found naming it", w.Code, w.Body)
	}
	if st := s.check.state(); st.Started != nil {
		t.Errorf("a refused check started: %+v", st)
	}
	if w := serveBody(s, "POST", "/api/v1/check", `{"path":"in/file.txt"}`, nil); w.Code != http.StatusAccepted {
		t.Errorf("check of a file that is there: %d %q; want 202", w.Code, w.Body)
	}
}

// TestSnapshotsNotServed: a mount that serves no .snapshots (a read-only
// one), while GET /snapshots lists them, says so and what to do, not
// "no snapshot", which the list contradicts.
func TestSnapshotsNotServed(t *testing.T) {
	s, _ := folderServer(t) // no .snapshots
	for _, c := range []struct{ method, target, body string }{
		{"GET", "/api/v1/list/?snapshot=s1", ""},
		{"GET", "/api/v1/files/in/file.txt?snapshot=s1", ""},
		{"GET", "/api/v1/stat/in/file.txt?snapshot=s1", ""},
		{"POST", "/api/v1/restore", `{"snapshot":"s1","path":"in/file.txt","to":"x"}`},
	} {
		w := serveBody(s, c.method, c.target, c.body, nil)
		var e apiError
		if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 403 || e.Code != "read_only" || !strings.Contains(e.Error, "read-write") {
			t.Errorf("%s %s %s: %d %q; want 403 read_only saying to mount read-write", c.method, c.target, c.body, w.Code, w.Body)
		}
	}
}

// TestRestoreSpecialFiles: a restored folder brings its fifo back and
// names the socket it leaves out; a lone socket is refused as one. The
// restore dropped both in silence and counted only the files, and the
// restore of a lone fifo answered 404 "no such file or folder" for what
// the snapshot's listing showed.
func TestRestoreSpecialFiles(t *testing.T) {
	s, mp := folderServer(t)
	snap := snapshotFolder(t, mp)
	if err := unix.Mkfifo(filepath.Join(snap, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(snap, "sock"), unix.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	w := serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path":"dir","to":"back"}`, nil)
	var res restoreResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 {
		t.Fatalf("restore of a folder with a fifo and a socket: %d %s", w.Code, w.Body)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(mp, "back/fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o640 {
		t.Errorf("restored fifo: mode %o, %v; want a fifo with mode 640", st.Mode, err)
	}
	if res.Files != 2 || len(res.Skipped) != 1 || res.Skipped[0] != "/dir/sock" {
		t.Errorf("restore answered %d files, skipped %q; want 2 and the socket named", res.Files, res.Skipped)
	}
	w = serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path":"dir/fifo","to":"fifo2"}`, nil)
	if err := unix.Lstat(filepath.Join(mp, "fifo2"), &st); w.Code != 200 || err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("restore of a lone fifo: %d %s (%v)", w.Code, w.Body, err)
	}
	w = serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path":"dir/sock","to":"sock2"}`, nil)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), `"not_regular"`) {
		t.Errorf("restore of a lone socket: %d %s; want 409 not_regular", w.Code, w.Body)
	}
	if _, err := os.Lstat(filepath.Join(mp, "sock2")); !os.IsNotExist(err) {
		t.Errorf("the refused restore left sock2: %v", err)
	}
}

// TestRestoreKeepsHardLinks: names of one file in a snapshot come back
// as names of one file. The web restore copied each name as a file of
// its own, so a folder of rsync --link-dest backups came back many times
// its size, and a change to one name no longer showed in the others.
func TestRestoreKeepsHardLinks(t *testing.T) {
	s, mp := folderServer(t)
	snap := filepath.Join(mp, ".snapshots/s1/dir")
	if err := os.MkdirAll(filepath.Join(snap, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "a"), []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(snap, "a"), filepath.Join(snap, "sub/b")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "c"), []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	if w := serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path":"dir","to":"back"}`, nil); w.Code != 200 {
		t.Fatalf("restore: %d %s", w.Code, w.Body)
	}
	var a, b, c unix.Stat_t
	for p, st := range map[string]*unix.Stat_t{"a": &a, "sub/b": &b, "c": &c} {
		if err := unix.Lstat(filepath.Join(mp, "back", p), st); err != nil {
			t.Fatal(err)
		}
	}
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("a and sub/b restored as inodes %d and %d (a has %d links), want one inode with 2", a.Ino, b.Ino, a.Nlink)
	}
	if c.Ino == a.Ino || c.Nlink != 1 {
		t.Errorf("c, a file of its own, restored as inode %d with %d links", c.Ino, c.Nlink)
	}
}

// TestRestoreKeepsUserXattrs: a file and a folder restored in the web app
// keep their user xattrs (a tag, a comment), as the command line's
// restore and an upload over a file keep them. The web restore dropped
// them.
func TestRestoreKeepsUserXattrs(t *testing.T) {
	s, mp := folderServer(t)
	snap := snapshotFolder(t, mp)
	if err := unix.Setxattr(filepath.Join(snap, "file"), "user.xdg.comment", []byte("keep me"), 0); err != nil {
		t.Skipf("no user xattrs on the test's file system: %v", err)
	}
	if err := unix.Setxattr(snap, "user.xdg.tags", []byte("red"), 0); err != nil {
		t.Fatal(err)
	}
	if w := serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path":"dir","to":"back"}`, nil); w.Code != 200 {
		t.Fatalf("restore: %d %s", w.Code, w.Body)
	}
	for p, want := range map[string][2]string{"back/file": {"user.xdg.comment", "keep me"}, "back": {"user.xdg.tags", "red"}} {
		v := make([]byte, 64)
		n, err := unix.Getxattr(filepath.Join(mp, p), want[0], v)
		if err != nil || string(v[:max(n, 0)]) != want[1] {
			t.Errorf("restored %s: %s = %q (%v), want %q", p, want[0], v[:max(n, 0)], err, want[1])
		}
	}
}

// snapshotFolder makes the folder "dir" of snapshot s1 under mp, with a
// file "file" in it, and returns its path.
func snapshotFolder(t *testing.T, mp string) string {
	t.Helper()
	snap := filepath.Join(mp, ".snapshots/s1/dir")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestNotUTF8NameHref: a name that is not UTF-8 shows in a listing with
// U+FFFD for its bad byte, which names another file (or none); the
// entry's href names this one. The page built its addresses from the
// lossy path, so Download and Delete of "\xff.txt" reached "\ufffd.txt",
// a different file, when there was one.
func TestNotUTF8NameHref(t *testing.T) {
	s, mp := folderServer(t)
	for name, content := range map[string]string{"in/\xff.txt": "precious", "in/\ufffd.txt": "other"} {
		if err := os.WriteFile(filepath.Join(mp, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := serve(s, "GET", "/api/v1/list/in", nil)
	var l Listing
	if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || w.Code != 200 {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	seen := 0
	for _, e := range l.Entries {
		want, ok := map[int64]string{8: "in/%FF.txt", 5: "in/%EF%BF%BD.txt"}[e.Size]
		if !strings.HasSuffix(e.Name, ".txt") || !ok {
			continue
		}
		seen++
		if e.Href != want {
			t.Errorf("entry %q of %d bytes: href %q, want %q", e.Name, e.Size, e.Href, want)
			continue
		}
		if got := serve(s, "GET", "/api/v1/files/"+e.Href, nil); got.Code != 200 || int64(got.Body.Len()) != e.Size {
			t.Errorf("download of href %q: %d %q, want its own %d bytes", e.Href, got.Code, got.Body, e.Size)
		}
	}
	if seen != 2 {
		t.Errorf("listing has %d of the two files: %+v", seen, l.Entries)
	}
}
