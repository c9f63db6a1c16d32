package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// answerTransport answers every request with the HTTP response in raw.
type answerTransport struct{ raw []byte }

func (a answerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(a.raw)), req)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// FuzzClientAnswer gives the client arbitrary bytes as every answer of a
// node (a node that is broken, or not a meshdrive node at all), and checks
// that no call panics or hangs, that a Get that succeeds filled exactly
// what was asked, and that a Stat that succeeds has a size.
func FuzzClientAnswer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-14/100\r\nContent-Length: 10\r\n\r\n0123456789",
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nContent-Length: 5\r\n\r\n01234",
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-14/100\r\nContent-Length: 3\r\n\r\n012",
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n" +
			`{"objects":[{"name":"shards/a.1","size":10,"mtime":"2026-01-02T03:04:05Z"}]}   `,
		"HTTP/1.1 200 OK\r\nContent-Length: 61\r\n\r\n" + `{"capacity":100,"free":-5,"objects":3,"version":"x","id":"y"}`,
		"HTTP/1.1 404 Not Found\r\nContent-Length: 41\r\n\r\n" + `{"error":"no such object","code":"not_found"}`,
		"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
		"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\nX-Meshdrive-Mtime: 2026-01-02T03:04:05Z\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 507 Insufficient Storage\r\n\r\n{\"code\":\"full\"}",
		"HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := NewClient("http://127.0.0.1:1", ClientOptions{Token: "tok", Timeout: 2 * time.Second,
			HTTPClient: &http.Client{Transport: answerTransport{raw}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p := bytes.Repeat([]byte{0xee}, 10)
		if err := c.Get(ctx, "shards/a.1", 5, p); err == nil && bytes.Equal(p, bytes.Repeat([]byte{0xee}, 10)) && !bytes.Contains(raw, bytes.Repeat([]byte{0xee}, 10)) {
			t.Fatal("Get succeeded without filling p")
		}
		if oi, err := c.Stat(ctx, "shards/a.1"); err == nil && oi.Size < 0 {
			t.Fatalf("Stat succeeded with size %d", oi.Size)
		}
		c.List(ctx, "shards/", "", 10)
		c.Info(ctx)
		if err := c.Verify(ctx, "shards/a.1"); err != nil && errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Verify: %v", err)
		}
		c.Put(ctx, "shards/a.1", []byte("x"))
		c.Delete(ctx, "shards/a.1")
		if ctx.Err() != nil {
			t.Fatal("the calls took 10 s")
		}
	})
}
