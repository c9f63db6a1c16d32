package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// uploadServer is folderServer on a real listener (read deadlines need a
// connection) with uploads that stall after idle.
func uploadServer(t *testing.T, idle time.Duration) (*Server, string, string) {
	s, mp := folderServer(t)
	s.o.UploadIdle, s.ups.idle = idle, idle
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	addr := ts.Listener.Addr().String()
	s.hosts[addr] = true
	return s, mp, addr
}

// startPut sends a PUT's head announcing size bytes, and the first bytes
// of its body; the caller sends the rest, or not.
func startPut(t *testing.T, addr, target string, size int, first []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", target, addr, fuzzToken, size)
	c.Write(first)
	return c
}

func readAnswer(t *testing.T, c net.Conn) (int, apiError) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiError
	json.Unmarshal(b, &e)
	return resp.StatusCode, e
}

func uploadTemps(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var tmps []string
	for _, e := range ents {
		if isUploadTemp(e.Name()) {
			tmps = append(tmps, e.Name())
		}
	}
	return tmps
}

// TestUploadStalls: a body that stops arriving ends the upload with 408
// stalled and removes its hidden file; one that keeps arriving, slower in
// all than the idle time, is stored whole.
func TestUploadStalls(t *testing.T) {
	const idle = 300 * time.Millisecond
	_, mp, addr := uploadServer(t, idle)
	start := time.Now()
	c := startPut(t, addr, "/api/v1/files/in/short.txt", 100, []byte("11 bytes..."))
	code, e := readAnswer(t, c)
	if code != http.StatusRequestTimeout || e.Code != "stalled" || !strings.Contains(e.Error, "after 11 of 100 bytes") {
		t.Errorf("a stalled upload: %d %+v", code, e)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the stalled upload took %v to end, idle is %v", d, idle)
	}
	if tmps := uploadTemps(t, filepath.Join(mp, "in")); len(tmps) > 0 {
		t.Errorf("a stalled upload left %v", tmps)
	}
	if _, err := os.Stat(filepath.Join(mp, "in/short.txt")); err == nil {
		t.Errorf("a stalled upload made the file")
	}

	// 8 pieces 100 ms apart: 800 ms in all, more than idle.
	want := strings.Repeat("0123456789", 8)
	c = startPut(t, addr, "/api/v1/files/in/slow.txt", len(want), nil)
	for i := 0; i < len(want); i += 10 {
		time.Sleep(idle / 3)
		if _, err := c.Write([]byte(want[i : i+10])); err != nil {
			t.Fatal(err)
		}
	}
	if code, e := readAnswer(t, c); code != http.StatusCreated {
		t.Errorf("a slow upload that keeps sending: %d %+v", code, e)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "in/slow.txt")); err != nil || string(b) != want {
		t.Errorf("the slow upload stored %q, %v", b, err)
	}
}

// TestEndUploads: EndUploads (an unmount) ends an upload waiting for its
// body at once: 503, and its hidden file is gone when EndUploads returns.
func TestEndUploads(t *testing.T) {
	s, mp, addr := uploadServer(t, time.Hour)
	c := startPut(t, addr, "/api/v1/files/in/big.bin", 1<<20, []byte("the first bytes"))
	deadline := time.Now().Add(30 * time.Second)
	for len(uploadTemps(t, filepath.Join(mp, "in"))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the upload never made its hidden file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.EndUploads(10 * time.Second); n != 1 {
		t.Errorf("EndUploads ended %d uploads, want 1", n)
	}
	if tmps := uploadTemps(t, filepath.Join(mp, "in")); len(tmps) > 0 {
		t.Errorf("after EndUploads, %v is still there", tmps)
	}
	if code, e := readAnswer(t, c); code != http.StatusServiceUnavailable || e.Code != "not_mounted" || !strings.Contains(e.Error, "being unmounted") {
		t.Errorf("an ended upload: %d %+v", code, e)
	}
	if n := s.EndUploads(time.Second); n != 0 {
		t.Errorf("a second EndUploads found %d", n)
	}
	// Until the umount, a new upload is refused at once: it would hold
	// a file open and make the umount fail as busy.
	c = startPut(t, addr, "/api/v1/files/in/late.bin", 10, []byte("0123456789"))
	if code, e := readAnswer(t, c); code != http.StatusServiceUnavailable || e.Code != "not_mounted" {
		t.Errorf("an upload after EndUploads: %d %+v", code, e)
	}
	if _, err := os.Stat(filepath.Join(mp, "in/late.bin")); err == nil {
		t.Error("the upload after EndUploads made its file")
	}
	// An unmount that failed: after refuseAfterEnd, uploads are taken.
	s.ups.mu.Lock()
	s.ups.refuseUntil = time.Now()
	s.ups.mu.Unlock()
	c = startPut(t, addr, "/api/v1/files/in/later.bin", 10, []byte("0123456789"))
	if code, e := readAnswer(t, c); code != http.StatusCreated {
		t.Errorf("an upload once the refusal ran out: %d %+v", code, e)
	}
}

// TestEndUploadsEndsRestore: EndUploads (an unmount) also ends a restore
// copying a file out of a snapshot: it stops at its next chunk, answers
// 503, and its hidden copy is gone when EndUploads returns.
func TestEndUploadsEndsRestore(t *testing.T) {
	s, mp := folderServer(t)
	snap := filepath.Join(mp, ".snapshots", "s1", "in")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "big.bin"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	oldChunk, oldHook := restoreChunk, restoreChunkHook
	t.Cleanup(func() { restoreChunk, restoreChunkHook = oldChunk, oldHook })
	restoreChunk = 4 << 10
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	restoreChunkHook = func() {
		once.Do(func() { close(started); <-release })
	}
	answer := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		answer <- serveBody(s, "POST", "/api/v1/restore", `{"snapshot":"s1","path":"in/big.bin","to":"big.bin"}`, nil)
	}()
	<-started
	ended := make(chan int, 1)
	go func() { ended <- s.EndUploads(10 * time.Second) }()
	// Let the copy go on once EndUploads has ended the restore.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.ups.mu.Lock()
		all := len(s.ups.m) > 0
		for e := range s.ups.m {
			all = all && e.(*restoreRun).ended.Load()
		}
		s.ups.mu.Unlock()
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("EndUploads did not end the restore")
		}
	}
	close(release)
	if n := <-ended; n != 1 {
		t.Errorf("EndUploads ended %d, want 1 (the restore)", n)
	}
	w := <-answer
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "being unmounted") {
		t.Errorf("an ended restore: %d %s", w.Code, w.Body)
	}
	ents, err := os.ReadDir(mp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "in" && e.Name() != ".snapshots" {
			t.Errorf("after an ended restore, %s is in the drive", e.Name())
		}
	}
}

// TestEndUploadsEndsDownload: EndUploads (an unmount) also ends a download
// whose client reads slowly (or not at all): its write fails at once, the
// file is closed when EndUploads returns (an open one would make the
// umount fail as busy), and a download after it is refused with 503.
func TestEndUploadsEndsDownload(t *testing.T) {
	s, mp, addr := uploadServer(t, time.Hour)
	big := filepath.Join(mp, "in/big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 << 20) // far more than the connection's buffers
	f.Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/files/in/big.bin HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", addr, fuzzToken)
	// The client reads nothing: the handler blocks writing, the file open.
	openFile := func() bool {
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); l == big {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !openFile(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the download never opened its file")
		}
	}
	start := time.Now()
	if n := s.EndUploads(20 * time.Second); n != 1 {
		t.Errorf("EndUploads ended %d, want the download", n)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("EndUploads took %v: it waited for the download instead of ending it", d)
	}
	if openFile() {
		t.Error("after EndUploads the download still holds its file open")
	}
	w := serve(s, "GET", "/api/v1/files/in/file.txt", nil)
	var e apiError
	if json.Unmarshal(w.Body.Bytes(), &e); w.Code != http.StatusServiceUnavailable || e.Code != "not_mounted" {
		t.Errorf("a download after EndUploads: %d %q; want 503 not_mounted", w.Code, w.Body)
	}
}

// TestJSONBodyStalls: a JSON body that never arrives (a rename, a restore,
// a login) is answered 408 stalled after the idle time, and while it is
// awaited the mount's root is not open (it would make an unmount fail as
// busy, with no end).
func TestJSONBodyStalls(t *testing.T) {
	const idle = time.Second
	_, mp, addr := uploadServer(t, idle)
	rootOpen := func() bool {
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); l == mp {
				return true
			}
		}
		return false
	}
	for _, target := range []string{"/api/v1/rename", "/api/v1/restore", "/login"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{\"from\":", target, addr, fuzzToken)
		time.Sleep(idle / 4)
		if rootOpen() {
			t.Errorf("POST %s: the root is open while the body is awaited", target)
		}
		if code, e := readAnswer(t, c); code != http.StatusRequestTimeout || e.Code != "stalled" {
			t.Errorf("POST %s whose body stops: %d %+v; want 408 stalled", target, code, e)
		}
	}
}

// TestRestoreNeverOverwrites: a restore never replaces what appears at
// its destination while it copies (another restore of the same path, a
// file written meanwhile): with "to" given it is refused (409) and the
// file kept; without, the copy goes to the next free name.
func TestRestoreNeverOverwrites(t *testing.T) {
	s, mp := folderServer(t)
	snap := filepath.Join(mp, ".snapshots", "s1", "in")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "old.txt"), []byte("from the snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldHook := restoreChunkHook
	t.Cleanup(func() { restoreChunkHook = oldHook })
	for _, c := range []struct {
		body, appears string
		status        int
		to            string
	}{
		{`{"snapshot":"s1","path":"in/old.txt","to":"in/dest.txt"}`, "in/dest.txt", 409, ""},
		{`{"snapshot":"s1","path":"in/old.txt"}`, "in/old.txt", 200, "/in/old.txt (restored s1)"},
	} {
		restoreChunkHook = func() {
			if _, err := os.Stat(filepath.Join(mp, c.appears)); os.IsNotExist(err) {
				os.WriteFile(filepath.Join(mp, c.appears), []byte("written meanwhile"), 0o644)
			}
		}
		w := serveBody(s, "POST", "/api/v1/restore", c.body, nil)
		var res restoreResult
		if json.Unmarshal(w.Body.Bytes(), &res); w.Code != c.status || res.To != c.to {
			t.Errorf("restore %s while %s appears: %d %q; want %d to %q", c.body, c.appears, w.Code, w.Body, c.status, c.to)
		}
		if b, err := os.ReadFile(filepath.Join(mp, c.appears)); err != nil || string(b) != "written meanwhile" {
			t.Errorf("%s, written while the restore copied: %q %v; want it kept", c.appears, b, err)
		}
		if c.to != "" {
			if b, err := os.ReadFile(filepath.Join(mp, c.to)); err != nil || string(b) != "from the snapshot" {
				t.Errorf("the restored copy %s: %q %v", c.to, b, err)
			}
		}
		if tmps := uploadTemps(t, filepath.Join(mp, "in")); len(tmps) > 0 {
			t.Errorf("the restore left %v", tmps)
		}
	}
}
