package open_test

import (
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/open"
	"github.com/meshdrive/meshdrive/remote/remotetest"
	"github.com/meshdrive/meshdrive/remote/s3store"
)

// roundTrip puts and reads back one object through s.
func roundTrip(t *testing.T, s remote.Store) {
	t.Helper()
	obj := remotetest.Object(t, 1, 100, 0)
	if err := s.Put(t.Context(), "x", obj); err != nil {
		t.Fatalf("Put through %T: %v", s, err)
	}
	p := make([]byte, len(obj))
	if err := s.Get(t.Context(), "x", 0, p); err != nil || string(p) != string(obj) {
		t.Fatalf("Get through %T: %v", s, err)
	}
}

func TestDir(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{dir, "file://" + filepath.Join(dir, "a"), "file://localhost" + filepath.Join(dir, "b")} {
		s, err := open.Store(t.Context(), u, open.Options{})
		if err != nil {
			t.Fatalf("Store(%q): %v", u, err)
		}
		if _, ok := s.(*dirstore.Store); !ok {
			t.Fatalf("Store(%q) = %T, want a dirstore", u, s)
		}
		roundTrip(t, s)
	}
	t.Chdir(dir)
	s, err := open.Store(t.Context(), "rel/dir", open.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.(*dirstore.Store).Dir(); got != filepath.Join(dir, "rel", "dir") {
		t.Fatalf("relative path opened %s", got)
	}
}

func TestNode(t *testing.T) {
	srv, err := node.NewServer(node.ServerOptions{Dir: t.TempDir(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	hostport := strings.TrimPrefix(hs.URL, "http://")
	s, err := open.Store(t.Context(), "http://tok@"+hostport, open.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := remote.Base(s).(*node.Client); !ok || s == remote.Base(s) {
		t.Fatalf("Store(http://...) = %T over %T, want a node client with retries stacked on it", s, remote.Base(s))
	}
	if _, ok := s.(remote.Verifier); !ok {
		t.Fatalf("Store(http://...) = %T lost the node client's Verify", s)
	}
	roundTrip(t, s)
	s, err = open.Store(t.Context(), hs.URL, open.Options{Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s)
	s, err = open.Store(t.Context(), hs.URL, open.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(t.Context()); !errors.Is(err, remote.ErrUnauthorized) {
		t.Fatalf("no token: %v, want ErrUnauthorized", err)
	}
}

func TestS3(t *testing.T) {
	addr := remotetest.StartVersitygw(t)
	env := map[string]string{"AWS_ACCESS_KEY_ID": remotetest.VersitygwAccess, "AWS_SECRET_ACCESS_KEY": remotetest.VersitygwSecret}
	s, err := open.Store(t.Context(), "s3://bkt/node-1?endpoint="+addr+"&secure=false&region=us-east-1",
		open.Options{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*s3store.Store); !ok {
		t.Fatalf("Store(s3://...) = %T, want an s3store", s)
	}
	roundTrip(t, s)
	_, err = open.Store(t.Context(), "s3://bkt/node-1?endpoint="+addr+"&secure=false",
		open.Options{Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("no credentials: %v, want an error naming AWS_ACCESS_KEY_ID", err)
	}

	// A node with keys=NAME takes its own pair; the default pair here is
	// wrong, and does not stand in for a missing named one.
	env = map[string]string{"AWS_ACCESS_KEY_ID": "wrong", "AWS_SECRET_ACCESS_KEY": "wrong",
		"AWS_ACCESS_KEY_ID_OFFICE_2": remotetest.VersitygwAccess, "AWS_SECRET_ACCESS_KEY_OFFICE_2": remotetest.VersitygwSecret}
	getenv := open.Options{Getenv: func(k string) string { return env[k] }}
	s, err = open.Store(t.Context(), "s3://bkt/node-2?endpoint="+addr+"&secure=false&region=us-east-1&keys=office_2", getenv)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s)
	_, err = open.Store(t.Context(), "s3://bkt/node-3?endpoint="+addr+"&secure=false&keys=other", getenv)
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID_OTHER and AWS_SECRET_ACCESS_KEY_OTHER") {
		t.Fatalf("keys=other without its variables: %v, want an error naming them", err)
	}
	_, err = open.Store(t.Context(), "s3://bkt/node-3?endpoint="+addr+"&secure=false&keys=a-b", getenv)
	if !errors.Is(err, open.ErrBadURL) || !strings.Contains(err.Error(), "keys") {
		t.Fatalf("keys=a-b: %v, want a bad URL", err)
	}
}

func TestBadURLs(t *testing.T) {
	for _, u := range []string{
		"", "   ", "ftp://host/x", "node1:9000", "127.0.0.1:8080", "http://", "https://:80x",
		"file://host/dir", "file:///dir?x=1", "s3://", "s3://b?bogus=1", "s3://b?secure=maybe",
		"s3://b?endpoint=a&endpoint=b", "s3://AK:SK@bucket/p", "s3://b?endpoint=http://x:1",
		"http://secrettoken@host:1?q=1", "http://127.0.0.1:99999", "https://host:0",
		// Bucket names S3 refuses: not a node that does not answer.
		"s3://ab/p?endpoint=127.0.0.1:1", "s3://a..b/p?endpoint=127.0.0.1:1", "s3://10.0.0.1/p?endpoint=127.0.0.1:1",
	} {
		_, err := open.Store(t.Context(), u, open.Options{Getenv: func(string) string { return "x" }})
		if err == nil {
			t.Errorf("Store(%q) succeeded", u)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("Store(%q): error is not one line: %q", u, msg)
		}
		if !errors.Is(err, open.ErrBadURL) || !strings.Contains(msg, "http(s)://[TOKEN@]host:port") || !strings.Contains(msg, "s3://bucket") {
			t.Errorf("Store(%q): %q does not list the accepted forms", u, msg)
		}
		if strings.Contains(msg, "secrettoken") || strings.Contains(msg, "AK:SK") {
			t.Errorf("Store(%q): error %q shows a secret", u, msg)
		}
	}
}

func TestDown(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	s := open.Down(cause)
	if err := s.Put(t.Context(), "x", nil); !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Put on a down store: %v, want ErrUnavailable saying why", err)
	}
	if _, err := s.Info(t.Context()); !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("Info on a down store: %v", err)
	}
}
