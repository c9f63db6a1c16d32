package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshdrive/meshdrive/remote/shard"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=0-", "bytes=-1", "bytes=5-2", "bytes=0-1,2-3", "bytes= 1 - 2 ",
		"bytes=99999999999999999999-", "bytes=-", "bytes=", "", "bits=0-1", "bytes=-0", "bytes=+1-2", "bytes=0x1-2"} {
		f.Add(s, int64(100))
		f.Add(s, int64(0))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		off, n, err := parseRange(h, size)
		if err != nil {
			if !errors.Is(err, errBadRange) && !errors.Is(err, errUnsatisfiable) && !errors.Is(err, errMultipleRanges) {
				t.Fatalf("parseRange(%q, %d): unexpected error %v", h, size, err)
			}
			return
		}
		if off < 0 || n < 1 || off > size-n {
			t.Fatalf("parseRange(%q, %d) = off %d, n %d: outside the object", h, size, off, n)
		}
		off2, n2, err := parseRange(fmt.Sprintf("bytes=%d-%d", off, off+n-1), size)
		if err != nil || off2 != off || n2 != n {
			t.Fatalf("round trip of [%d,+%d): %d %d %v", off, n, off2, n2, err)
		}
	})
}

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes */10", "bytes 5-4/10", "bytes 0-10/10", "bytes 0-0/1", "bytes -1-2/3", "bytes 1-2/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, size, err := parseContentRange(s)
		if err != nil {
			return
		}
		if start < 0 || end < start || end >= size {
			t.Fatalf("parseContentRange(%q) = %d %d %d", s, start, end, size)
		}
	})
}

func FuzzListQuery(f *testing.F) {
	for _, s := range []string{"", "prefix=shards/&after=shards/a&limit=10", "limit=-1", "limit=99999999999999999999",
		"prefix=a&prefix=b", "bogus=1", "limit=", "after=%ff%00", "prefix=" + string(bytes.Repeat([]byte("x"), 500))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		prefix, after, limit, err := parseListQuery(q)
		if err != nil {
			if !errors.Is(err, errBadListArguments) {
				t.Fatalf("parseListQuery(%q): unexpected error %v", raw, err)
			}
			return
		}
		if limit < 0 || len(prefix) > maxListArg || len(after) > maxListArg {
			t.Fatalf("parseListQuery(%q) = %q %q %d", raw, prefix, after, limit)
		}
	})
}

var fuzzMethods = []string{http.MethodGet, http.MethodPut, http.MethodHead, http.MethodDelete, http.MethodPost, http.MethodOptions}

// FuzzServerRequest throws arbitrary requests at the handler over a real
// directory three levels below the fuzz root, and checks that nothing
// panics, nothing appears outside the directory, and no GET answers bytes
// that differ from the verified object.
func FuzzServerRequest(f *testing.F) {
	h := &shard.Header{Kind: shard.KindMeta, K: 1}
	valid, err := shard.Encode(h, bytes.Repeat([]byte("payload!"), 1000))
	if err != nil {
		f.Fatal(err)
	}
	seeds := []struct {
		method    byte
		target    string
		auth, rng string
		body      []byte
	}{
		{1, "/v1/o/shards/x.1", "Bearer tok", "", valid},
		{1, "/v1/o/../x", "Bearer tok", "", valid},
		{1, "/v1/o/%2e%2e/x", "Bearer tok", "", valid},
		{1, "/v1/o/a/b", "Bearer tok", "", valid[:100]},
		{1, "/v1/o/a", "Bearer nope", "", valid},
		{0, "/v1/o/shards/x.1", "Bearer tok", "bytes=0-99", nil},
		{0, "/v1/o/shards/x.1", "Bearer tok", "bytes=-5", nil},
		{0, "/v1/o/shards/x.1", "Bearer tok", "bytes=999999-", nil},
		{2, "/v1/o/shards/x.1", "Bearer tok", "", nil},
		{3, "/v1/o/shards/x.1", "Bearer tok", "", nil},
		{0, "/v1/list?prefix=shards/&limit=3", "Bearer tok", "", nil},
		{0, "/v1/info", "Bearer tok", "", nil},
		{4, "/v1/o/x", "Bearer tok", "", []byte("x")},
		{1, "/v1/o//abs", "Bearer tok", "", valid},
		{1, "/v1/o/a%5cb", "Bearer tok", "", valid},
		{4, "/v1/verify/shards/x.1", "Bearer tok", "", nil},
		{4, "/v1/verify/../x", "Bearer tok", "", nil},
		{0, "/v1/verify/shards/x.1", "Bearer tok", "", nil},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.auth, s.rng, s.body)
	}
	base := f.TempDir()
	root := filepath.Join(base, "a", "b")
	dir := filepath.Join(root, "node")
	srv, err := NewServer(ServerOptions{Dir: dir, Token: "tok", MaxObject: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	handler := srv.Handler()
	expect := map[string][]string{base: {"a"}, filepath.Join(base, "a"): {"b"}, root: {"node"}}
	f.Fuzz(func(t *testing.T, m byte, target, auth, rng string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // the HTTP server refuses such a request line itself
		}
		req := &http.Request{
			Method:        fuzzMethods[int(m)%len(fuzzMethods)],
			URL:           u,
			RequestURI:    target,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{},
			Host:          "node",
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		for d, want := range expect {
			des, err := os.ReadDir(d)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, de := range des {
				got = append(got, de.Name())
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s %q made %v appear in %s (want only %v)", req.Method, target, got, d, want)
			}
		}
		res := rec.Result()
		if req.Method == http.MethodGet && (res.StatusCode == http.StatusOK || res.StatusCode == http.StatusPartialContent) &&
			len(u.Path) > len(objectPath) && u.Path[:len(objectPath)] == objectPath {
			onDisk, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(u.Path[len(objectPath):])))
			if err != nil {
				t.Fatalf("GET %q answered %d but the file is unreadable: %v", target, res.StatusCode, err)
			}
			if !bytes.Contains(onDisk, rec.Body.Bytes()) {
				t.Fatalf("GET %q answered bytes that are not in the object", target)
			}
		}
	})
}
