package s3store

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// rawTransport answers the bucket check of New with 200 and every later
// request with the HTTP response in raw.
type rawTransport struct {
	raw   []byte
	ready atomic.Bool
}

func (a *rawTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	raw := a.raw
	if !a.ready.Load() {
		raw = []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}
	return http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
}

// FuzzS3Answer gives the store arbitrary bytes as every answer of the S3
// server (a broken server, or a proxy's error page): no call panics or
// hangs, a Get that succeeds filled what was asked, a Stat that succeeds
// has a size, a listing holds only names under the prefix after `after`.
func FuzzS3Answer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-14/100\r\nContent-Length: 10\r\nLast-Modified: Mon, 02 Jan 2006 15:04:05 GMT\r\nETag: \"x\"\r\n\r\n0123456789",
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nContent-Length: 5\r\n\r\n01234",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nLast-Modified: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n\r\n<?xml version=\"1.0\"?><ListBucketResult><Name>bkt</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>10</MaxKeys>" +
			"<IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken><Contents><Key>p/shards/a.1</Key><Size>-5</Size></Contents>" +
			"<Contents><Key>p/../x</Key><Size>1</Size></Contents></ListBucketResult>",
		"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n\r\n<Error><Code>NoSuchKey</Code><Message>m</Message></Error>",
		"HTTP/1.1 403 Forbidden\r\n\r\n<html>proxy says no</html>",
		"HTTP/1.1 503 Slow Down\r\nRetry-After: 99999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nLast-Modified: Mon, 02 Jan 2006 15:04:05 GMT\r\nETag: \"x\"\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -5\r\nLast-Modified: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	// minio-go sleeps its backoff after a call's last attempt too: up to
	// 200 ms of each failed call, which kept this target at a few inputs
	// a second. The calls made here run one at a time.
	unit := minio.DefaultRetryUnit
	minio.DefaultRetryUnit = 0
	f.Cleanup(func() { minio.DefaultRetryUnit = unit })
	f.Fuzz(func(t *testing.T, raw []byte) {
		tr := &rawTransport{raw: raw}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := New(ctx, Options{Endpoint: "127.0.0.1:1", Bucket: "bkt", Prefix: "p", AccessKey: "a", SecretKey: "s",
			MaxRetries: 1, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		tr.ready.Store(true)
		p := bytes.Repeat([]byte{0xee}, 10)
		if err := s.Get(ctx, "shards/a.1", 5, p); err == nil && bytes.Equal(p, bytes.Repeat([]byte{0xee}, 10)) && !bytes.Contains(raw, p) {
			t.Fatal("Get succeeded without filling p")
		}
		if oi, err := s.Stat(ctx, "shards/a.1"); err == nil && oi.Size < 0 {
			t.Fatalf("Stat succeeded with size %d", oi.Size)
		}
		objs, err := s.List(ctx, "shards/", "shards/0", 10)
		if err == nil {
			for _, o := range objs {
				if !strings.HasPrefix(o.Name, "shards/") || o.Name <= "shards/0" {
					t.Fatalf("listed %q", o.Name)
				}
			}
		}
		s.Put(ctx, "shards/a.1", []byte("x"))
		s.Delete(ctx, "shards/a.1")
		if ctx.Err() != nil {
			t.Fatal("the calls took 10 s")
		}
	})
}
