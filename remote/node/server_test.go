package node_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/remotetest"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// snapshot lists every path under root with its size and content hash
// stand-in (the bytes themselves, objects are small in these tests).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range after {
		if bv, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared", what, k)
		} else if bv != v {
			t.Errorf("%s: %s changed", what, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("%s: %s disappeared", what, k)
		}
	}
}

// rawRequest sends exactly the bytes of a request over a new connection
// and returns the status code and body of the answer.
func rawRequest(t *testing.T, baseURL, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req[:min(len(req), 60)], err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWrongToken(t *testing.T) {
	dir := t.TempDir()
	url, _ := startServer(t, node.ServerOptions{Dir: dir, Token: "right-token"})
	good := newClient(t, url, node.ClientOptions{Token: "right-token"})
	ctx := t.Context()
	obj := remotetest.Object(t, 1, 5000, 0)
	if err := good.Put(ctx, "shards/a.0", obj); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	for _, tok := range []string{"", "wrong-token", "right-toke", "right-token2", "RIGHT-TOKEN"} {
		bad := newClient(t, url, node.ClientOptions{Token: tok})
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, remote.ErrUnauthorized) {
				t.Errorf("token %q: %s: %v, want ErrUnauthorized", tok, op, err)
			}
			if err != nil && tok != "" && strings.Contains(err.Error(), tok) {
				t.Errorf("token %q: %s: the error shows the token: %v", tok, op, err)
			}
		}
		check("Put", bad.Put(ctx, "shards/b.0", obj))
		check("Put over", bad.Put(ctx, "shards/a.0", remotetest.Object(t, 2, 10, 0)))
		check("Get", bad.Get(ctx, "shards/a.0", 0, make([]byte, 10)))
		_, err := bad.Stat(ctx, "shards/a.0")
		check("Stat", err)
		check("Delete", bad.Delete(ctx, "shards/a.0"))
		_, err = bad.List(ctx, "", "", 10)
		check("List", err)
		_, err = bad.Info(ctx)
		check("Info", err)
	}
	sameSnapshot(t, "requests with a wrong token", before, snapshot(t, dir))
	status, body := rawRequest(t, url, "DELETE /v1/o/shards/a.0 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cmlnaHQtdG9rZW4=\r\nConnection: close\r\n\r\n")
	if status != http.StatusUnauthorized || !strings.Contains(body, "token") {
		t.Fatalf("DELETE with Basic auth: %d %q, want 401 saying the token is wrong", status, body)
	}
	if _, err := good.Stat(ctx, "shards/a.0"); err != nil {
		t.Fatalf("object gone after unauthorized requests: %v", err)
	}
}

func TestPathEscapes(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "node")
	if err := os.WriteFile(filepath.Join(base, "victim"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, _ := startServer(t, node.ServerOptions{Dir: dir})
	obj := remotetest.Object(t, 3, 100, 0)
	before := snapshot(t, base)
	targets := []string{
		"/v1/o/../victim", "/v1/o/..%2fvictim", "/v1/o/%2e%2e/victim", "/v1/o/%2E%2E%2Fvictim",
		"/v1/o/../../escape", "/v1/o/" + base + "/escape", "/v1/o//etc/escape", "/v1/o/a/../../victim",
		"/v1/o/a%5c..%5cvictim", "/v1/o/..%5cvictim", "/v1/o/a%00b", "/v1/o/.hidden", "/v1/o/a/./b",
		"/v1/o/", "/v1/o/a/b/c/d", "/v1/o/%2e", "/v1/o/a%2f%2fb", "/v1/o/" + strings.Repeat("x", 300),
		"/v1/o/a%20b", "/v1/o/%c3%a9",
	}
	for _, target := range targets {
		for _, method := range []string{"PUT", "GET", "HEAD", "DELETE"} {
			req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", method, target)
			if method == "PUT" {
				req += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(obj), obj)
			} else {
				req += "\r\n"
			}
			status, body := rawRequest(t, url, req)
			if status != http.StatusBadRequest {
				t.Errorf("%s %s: status %d %q, want 400", method, target, status, body)
			}
			if method != "HEAD" && !strings.Contains(body, "name") && !strings.Contains(strings.ToLower(body), "bad request") {
				t.Errorf("%s %s: body %q does not say the name is bad", method, target, body)
			}
		}
	}
	after := snapshot(t, base)
	// The node directory may now exist (NewServer made it) but must be empty.
	delete(after, "node/")
	delete(before, "node/")
	sameSnapshot(t, "path-escaping requests", before, after)
	if _, err := os.Stat(filepath.Join(filepath.Dir(base), "escape")); err == nil {
		t.Fatal("a file named escape appeared next to the test directory")
	}
}

func TestTruncatedAndCorruptUpload(t *testing.T) {
	dir := t.TempDir()
	url, _ := startServer(t, node.ServerOptions{Dir: dir})
	c := newClient(t, url, node.ClientOptions{})
	ctx := t.Context()
	kept := remotetest.Object(t, 4, 3*shard.MinChunkSize, 0)
	if err := c.Put(ctx, "shards/s.1", kept); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	// Truncated: the body ends before Content-Length bytes.
	next := remotetest.Object(t, 5, 3*shard.MinChunkSize, 0)
	for _, name := range []string{"shards/s.1", "shards/s.2"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "PUT /v1/o/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", name, len(next))
		conn.Write(next[:len(next)/2])
		conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("truncated PUT %s: no answer: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "truncated") {
			t.Fatalf("truncated PUT %s: %d %q, want 400 saying truncated", name, resp.StatusCode, body)
		}
	}
	sameSnapshot(t, "truncated uploads", before, snapshot(t, dir))

	// Corrupt: full length, a flipped byte. Through the client and raw.
	bad := remotetest.Flip(next, len(next)-10)
	for _, name := range []string{"shards/s.1", "shards/s.2"} {
		err := c.Put(ctx, name, bad)
		if !errors.Is(err, remote.ErrCorrupt) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), url) {
			t.Fatalf("corrupt PUT %s: %v, want ErrCorrupt naming the node and object", name, err)
		}
		status, body := rawRequest(t, url, fmt.Sprintf("PUT /v1/o/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", name, len(bad), bad))
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, "checksum") {
			t.Fatalf("raw corrupt PUT %s: %d %q, want 422 mentioning the checksum", name, status, body)
		}
	}
	sameSnapshot(t, "corrupt uploads", before, snapshot(t, dir))
	p := make([]byte, len(kept))
	if err := c.Get(ctx, "shards/s.1", 0, p); err != nil || !bytes.Equal(p, kept) {
		t.Fatalf("the existing shard did not survive: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	dir := t.TempDir()
	url, _ := startServer(t, node.ServerOptions{Dir: dir, MaxObject: 1000})
	c := newClient(t, url, node.ClientOptions{})
	err := c.Put(t.Context(), "big", remotetest.Object(t, 6, 2000, 0))
	if err == nil || !strings.Contains(err.Error(), "limit") || remote.ErrUnavailable == errors.Unwrap(err) {
		t.Fatalf("Put over MaxObject: %v, want a permanent error naming the limit", err)
	}
	if !remote.IsPermanent(err) {
		t.Fatalf("Put over MaxObject: %v is retryable", err)
	}
	if err := c.Put(t.Context(), "small", remotetest.Object(t, 7, 100, 0)); err != nil {
		t.Fatal(err)
	}
}

// fullDiskCheck puts objects until the node answers full, then checks the
// error, that no partial file is left and that earlier objects read back.
func fullDiskCheck(t *testing.T, dir, url string) {
	c := newClient(t, url, node.ClientOptions{})
	ctx := t.Context()
	first := remotetest.Object(t, 8, 1200<<10, shard.DefaultChunkSize)
	if err := c.Put(ctx, "shards/first.0", first); err != nil {
		t.Fatalf("first Put: %v", err)
	}
	before := snapshot(t, dir)
	err := c.Put(ctx, "shards/second.0", remotetest.Object(t, 9, 1200<<10, shard.DefaultChunkSize))
	if !errors.Is(err, remote.ErrFull) {
		t.Fatalf("Put on a full disk: %v, want ErrFull", err)
	}
	if !strings.Contains(err.Error(), "507") || !strings.Contains(err.Error(), "shards/second.0") {
		t.Fatalf("full-disk error %q does not say 507 and name the object", err)
	}
	sameSnapshot(t, "a Put on a full disk", before, snapshot(t, dir))
	p := make([]byte, len(first))
	if err := c.Get(ctx, "shards/first.0", 0, p); err != nil || !bytes.Equal(p, first) {
		t.Fatalf("earlier object after the full disk: %v", err)
	}
	status, _ := rawRequest(t, url, fmt.Sprintf("PUT /v1/o/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(first), first))
	if status != http.StatusInsufficientStorage {
		t.Fatalf("raw PUT on a full disk: status %d, want 507", status)
	}
}

// TestFullDisk fills a real (tmpfs) disk.
func TestFullDisk(t *testing.T) {
	dir := remotetest.Tmpfs(t, "2m")
	url, _ := startServer(t, node.ServerOptions{Dir: dir})
	fullDiskCheck(t, dir, url)
}

func TestCorruptShardOnDisk(t *testing.T) {
	dir := t.TempDir()
	url, _ := startServer(t, node.ServerOptions{Dir: dir})
	c := retrying(newClient(t, url, node.ClientOptions{}), 1)
	ctx := t.Context()
	cs := shard.MinChunkSize
	obj := remotetest.Object(t, 10, 4*cs, cs)
	hl := remotetest.HeaderLen(t, obj)
	if err := c.Put(ctx, "shards/c.0", obj); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shards", "c.0")
	flipOnDisk(t, path, hl+2*cs+7) // in payload chunk 2

	for _, r := range []struct{ off, n int }{{hl + 2*cs, 10}, {hl + cs + cs/2, cs}, {0, len(obj)}, {hl + 2*cs + 7, 1}} {
		p := make([]byte, r.n)
		err := c.Get(ctx, "shards/c.0", int64(r.off), p)
		if !errors.Is(err, remote.ErrCorrupt) {
			t.Fatalf("Get [%d,+%d) over a flipped byte: %v, want ErrCorrupt", r.off, r.n, err)
		}
		if bytes.Contains(p, obj[hl+2*cs:hl+2*cs+6]) && r.n > 6 {
			t.Fatalf("Get [%d,+%d) returned payload bytes with its error", r.off, r.n)
		}
	}
	// Other chunks still read.
	p := make([]byte, cs)
	if err := c.Get(ctx, "shards/c.0", int64(hl+3*cs), p); err != nil || !bytes.Equal(p, obj[hl+3*cs:hl+4*cs]) {
		t.Fatalf("Get of an intact chunk: %v", err)
	}
	status, body := rawRequest(t, url, "GET /v1/o/shards/c.0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if status != http.StatusConflict || !strings.Contains(body, "checksum") || strings.Contains(body, string(obj[hl:hl+64])) {
		t.Fatalf("raw GET of a corrupt shard: %d %q, want 409 saying checksum and no payload", status, body[:min(len(body), 200)])
	}

	// A flipped header byte: every range fails, even one inside the header.
	flipOnDisk(t, path, hl+2*cs+7) // repair the payload
	flipOnDisk(t, path, 30)
	for _, r := range []struct{ off, n int }{{0, 10}, {hl, 10}, {len(obj) - 1, 1}} {
		if err := c.Get(ctx, "shards/c.0", int64(r.off), make([]byte, r.n)); !errors.Is(err, remote.ErrCorrupt) {
			t.Fatalf("Get [%d,+%d) with a bad header: %v, want ErrCorrupt", r.off, r.n, err)
		}
	}
}

func flipOnDisk(t *testing.T, path string, off int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	// Make sure the mtime moves, so no cached header hides the change.
	later := time.Now().Add(time.Duration(off) * time.Microsecond)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

func TestLargeStreamedGet(t *testing.T) {
	dir := t.TempDir()
	url, _ := startServer(t, node.ServerOptions{Dir: dir})
	c := retrying(newClient(t, url, node.ClientOptions{}), 1)
	ctx := t.Context()
	obj := remotetest.Object(t, 11, 10<<20, shard.DefaultChunkSize)
	if err := c.Put(ctx, "big", obj); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, len(obj))
	if err := c.Get(ctx, "big", 0, p); err != nil || !bytes.Equal(p, obj) {
		t.Fatalf("streamed Get: %v", err)
	}
	// Corrupt the last chunk: the server has already sent the first
	// pieces when it finds out; the client must still get an error.
	flipOnDisk(t, filepath.Join(dir, "big"), len(obj)-5)
	clear(p)
	err := c.Get(ctx, "big", 0, p)
	if err == nil {
		t.Fatal("streamed Get over a corrupt last chunk succeeded")
	}
	if bytes.Equal(p[len(p)-100:], obj[len(obj)-100:]) {
		t.Fatal("streamed Get delivered the tail despite the error")
	}
}

// gate is a Store whose Get waits for release, to hold a request in flight.
type gate struct {
	remote.Store
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Get(ctx context.Context, name string, off int64, p []byte) error {
	if name == "slow" {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Store.Get(ctx, name, off, p)
}

func TestShutdownFinishesInFlight(t *testing.T) {
	ds, err := dirstore.New(t.TempDir(), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{Store: ds, entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv, err := node.NewServer(node.ServerOptions{Store: g, ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	c := newClient(t, url, node.ClientOptions{})
	obj := remotetest.Object(t, 12, 5000, 0)
	if err := c.Put(t.Context(), "slow", obj); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	p := make([]byte, len(obj))
	go func() { got <- c.Get(t.Context(), "slow", 0, p) }()
	<-g.entered
	cancel() // what SIGTERM does in `meshdrive node serve`
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	// New connections are refused once shutdown began.
	if conn, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		conn.Close()
		t.Error("a new connection was accepted during shutdown")
	}
	close(g.release)
	if err := <-got; err != nil || !bytes.Equal(p, obj) {
		t.Fatalf("in-flight Get during shutdown: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after a clean shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the in-flight request finished")
	}
}

func TestNoSuchEndpointAndMethods(t *testing.T) {
	url, _ := startServer(t, node.ServerOptions{})
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"GET /v2/o/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404},
		{"POST /v1/o/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 405},
		{"PUT /v1/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 405},
		{"GET /v1/list?limit=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400},
		{"GET /v1/list?bogus=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400},
		{"GET /v1/o/missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404},
		{"GET /v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200},
	} {
		status, body := rawRequest(t, url, tc.req)
		if status != tc.status {
			t.Errorf("%q: status %d %q, want %d", strings.SplitN(tc.req, "\r\n", 2)[0], status, body, tc.status)
		}
		if status >= 400 && !strings.Contains(body, `"error"`) {
			t.Errorf("%q: error body %q is not a JSON error", strings.SplitN(tc.req, "\r\n", 2)[0], body)
		}
	}
}

func TestRangeRequests(t *testing.T) {
	url, _ := startServer(t, node.ServerOptions{})
	c := newClient(t, url, node.ClientOptions{})
	obj := remotetest.Object(t, 13, 10000, 0)
	if err := c.Put(t.Context(), "r", obj); err != nil {
		t.Fatal(err)
	}
	size := len(obj)
	for _, tc := range []struct {
		rng    string
		status int
		want   []byte
	}{
		{"bytes=0-9", 206, obj[:10]},
		{"bytes=10-", 206, obj[10:]},
		{"bytes=-5", 206, obj[size-5:]},
		{fmt.Sprintf("bytes=%d-%d", size-3, size+100), 206, obj[size-3:]},
		{fmt.Sprintf("bytes=%d-", size), 416, nil},
		{"bytes=0-1,5-6", 400, nil},
		{"bytes=5-1", 400, nil},
		{"items=0-1", 400, nil},
		{"bytes=-0", 416, nil},
	} {
		status, body := rawRequest(t, url, "GET /v1/o/r HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: "+tc.rng+"\r\n\r\n")
		if status != tc.status {
			t.Errorf("Range %s: status %d, want %d (%q)", tc.rng, status, tc.status, body[:min(len(body), 100)])
		}
		if tc.want != nil && body != string(tc.want) {
			t.Errorf("Range %s: wrong bytes", tc.rng)
		}
	}
}

func TestListQueryOnServer(t *testing.T) {
	url, _ := startServer(t, node.ServerOptions{})
	c := newClient(t, url, node.ClientOptions{})
	var want []string
	for i := range 5 {
		n := fmt.Sprintf("l/%d", i)
		want = append(want, n)
		if err := c.Put(t.Context(), n, remotetest.Object(t, uint64(i), 10, 0)); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := c.List(t.Context(), "l/", "l/1", 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Name)
	}
	if !slices.Equal(got, want[2:4]) {
		t.Fatalf("List(l/, after l/1, 2) = %v, want %v", got, want[2:4])
	}
}
