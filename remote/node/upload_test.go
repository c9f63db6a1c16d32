package node_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/remotetest"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// rawPut sends a PUT of name with Content-Length cl and body, over its
// own connection, and returns the connection (the answer not read yet).
func rawPut(t *testing.T, addr, name string, cl int64, body []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "PUT /v1/o/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", name, addr, cl)
	if _, err := c.Write(body); err != nil {
		t.Fatal(err)
	}
	return c
}

// answer reads the server's answer on c: its status and body, or -1 when
// the server cut the connection without one.
func answer(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestUploadBounded: a body that is not an object, is over the limit or
// is not as long as its header says is refused before it is buffered; the
// bytes of uploads read at once are bounded; a stalled upload is cut off
// and gives its share back.
func TestUploadBounded(t *testing.T) {
	t.Cleanup(node.SetUploadPace(500*time.Millisecond, 1<<40))
	url, srv := startServer(t, node.ServerOptions{UploadBudget: 1 << 20})
	addr := strings.TrimPrefix(url, "http://")
	obj := remotetest.Object(t, 1, 700<<10, 0)

	// 60 MiB of zeros: refused after its first bytes, without a buffer of
	// its size (the whole body was read into memory, which grew to twice
	// it).
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c := rawPut(t, addr, "shards/zeros", 60<<20, make([]byte, 1<<20))
	if code, body := answer(t, c); code != 422 || !strings.Contains(body, "not a meshdrive shard") {
		t.Errorf("PUT of zeros: %d %s; want 422", code, body)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
		t.Errorf("PUT of 60 MiB of zeros allocated %d MiB", d>>20)
	}

	// A header that says more than MaxObject: 413 whatever the length sent.
	big := bytes.Clone(obj[:shard.FixedLen])
	binary.LittleEndian.PutUint64(big[40:48], 1<<30)
	if code, body := answer(t, rawPut(t, addr, "shards/big", 1000, big)); code != 413 || !strings.Contains(body, "--max-object") {
		t.Errorf("PUT of an object whose header says 1 GiB: %d %s; want 413", code, body)
	}
	// A length sent that is not the header's.
	if code, body := answer(t, rawPut(t, addr, "shards/long", int64(len(obj))+5, append(bytes.Clone(obj), "extra"...))); code != 422 {
		t.Errorf("PUT of an object with 5 bytes more: %d %s; want 422", code, body)
	}

	// Budget: an upload stalled halfway holds 700 KiB of the 1 MiB; a
	// second one is 503 until the first is cut off.
	stalled := rawPut(t, addr, "shards/a", int64(len(obj)), obj[:len(obj)/2])
	time.Sleep(100 * time.Millisecond) // the server has read its header
	resp := put(t, addr, "shards/b", obj)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("PUT beside a stalled upload: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, _ := answer(t, stalled); code != 400 && code != -1 {
		t.Errorf("the stalled upload: %d; want 400 or the connection cut", code)
	}
	if resp := put(t, addr, "shards/b", obj); resp.StatusCode != 201 {
		t.Errorf("PUT after the stalled upload was cut off: %d; want 201", resp.StatusCode)
	}
	if left := node.UploadBytes(srv); left != 0 {
		t.Errorf("%d bytes of the budget still taken after every upload ended", left)
	}
	// Chunked: the header's length, not more.
	for _, c := range []struct {
		body []byte
		code int
	}{{obj, 201}, {append(bytes.Clone(obj), 0), 422}, {obj[:100], 400}, {obj[:10], 422}} {
		req, _ := http.NewRequest("PUT", "http://"+addr+"/v1/o/shards/chunked", io.MultiReader(bytes.NewReader(c.body)))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("chunked PUT of %d bytes: %d; want %d", len(c.body), resp.StatusCode, c.code)
		}
	}
}

func put(t *testing.T, addr, name string, obj []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("PUT", "http://"+addr+"/v1/o/"+name, bytes.NewReader(obj))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestGetOfReplacedObject: a large GET is read in pieces. A dirstore's
// object is read from the version the GET opened, whatever replaces the
// name meanwhile, even at the same size and modification time (two Puts
// in one tick of the file system's clock). A store that cannot hold an
// object open is checked between pieces: a replacement cuts the answer
// short rather than send the start of one version and the rest of the
// other.
func TestGetOfReplacedObject(t *testing.T) {
	for _, pinned := range []bool{true, false} {
		t.Run(fmt.Sprintf("pinned=%v", pinned), func(t *testing.T) {
			dir := t.TempDir()
			ds, err := dirstore.New(dir, dirstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var served remote.Store = ds
			if !pinned {
				served = struct{ remote.Store }{ds} // no Open
			}
			url, _ := startServer(t, node.ServerOptions{Store: served})
			old := remotetest.Object(t, 1, 48<<20, 0)
			if err := ds.Put(t.Context(), "shards/big.0", old); err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(url + "/v1/o/shards/big.0")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %s", resp.Status)
			}
			head := make([]byte, 1<<20)
			if _, err := io.ReadFull(resp.Body, head); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "shards", "big.0")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := ds.Put(t.Context(), "shards/big.0", remotetest.Object(t, 2, 48<<20, 0)); err != nil {
				t.Fatal(err)
			}
			if pinned {
				if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
					t.Fatal(err)
				}
			}
			rest, err := io.ReadAll(resp.Body)
			got := append(head, rest...)
			switch {
			case pinned && (err != nil || !bytes.Equal(got, old)):
				t.Fatalf("GET across a replacement answered %d bytes (%v); want the old version whole", len(got), err)
			case err == nil && !bytes.Equal(got, old):
				t.Fatalf("GET across a replacement answered %d bytes that are neither version whole", len(got))
			case err == nil && !pinned:
				t.Logf("the whole old version was sent before the replacement (socket buffers of %d bytes?)", len(got))
			}
		})
	}
}
