package node_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// flaky answers status for the first fails requests, then passes to next.
func flaky(status, fails int, calls *atomic.Int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= int64(fails) {
			http.Error(w, "injected failure", status)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestClientRetries(t *testing.T) {
	srv, err := node.NewServer(node.ServerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	obj := remotetest.Object(t, 1, 100, 0)
	for _, tc := range []struct {
		status, fails int
		retries       int
		wantCalls     int64
		wantErr       error
	}{
		{http.StatusInternalServerError, 2, 3, 3, nil},
		{http.StatusBadGateway, 1, 3, 2, nil},
		{http.StatusServiceUnavailable, 10, 2, 3, remote.ErrUnavailable},
		{http.StatusInternalServerError, 1, -1, 1, remote.ErrUnavailable},
		{http.StatusInsufficientStorage, 10, 3, 1, remote.ErrFull},
		{http.StatusNotFound, 10, 3, 1, remote.ErrNotFound},
		{http.StatusBadRequest, 10, 3, 1, remote.ErrInvalidName},
		{http.StatusUnauthorized, 10, 3, 1, remote.ErrUnauthorized},
		{http.StatusConflict, 10, 3, 1, remote.ErrCorrupt},
		{http.StatusTooManyRequests, 1, 3, 2, nil},
	} {
		var calls atomic.Int64
		hs := httptest.NewServer(flaky(tc.status, tc.fails, &calls, srv.Handler()))
		c := retrying(newClient(t, hs.URL, node.ClientOptions{}), max(tc.retries, 0))
		err := c.Put(t.Context(), "x", obj)
		if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("status %d x%d: Put = %v, want %v", tc.status, tc.fails, err, tc.wantErr)
		}
		if got := calls.Load(); got != tc.wantCalls {
			t.Errorf("status %d x%d, retries %d: %d requests, want %d", tc.status, tc.fails, tc.retries, got, tc.wantCalls)
		}
		if err != nil && !strings.Contains(err.Error(), hs.URL) {
			t.Errorf("error %q does not name the node %s", err, hs.URL)
		}
		hs.Close()
	}
}

func TestClientConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	c := retrying(newClient(t, url, node.ClientOptions{}), 2)
	start := time.Now()
	err = c.Get(t.Context(), "shards/x.1", 0, make([]byte, 10))
	if !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("Get from a closed port: %v, want ErrUnavailable", err)
	}
	if !errors.Is(err, syscallECONNREFUSED()) {
		t.Errorf("Get from a closed port: %v does not keep the cause (connection refused)", err)
	}
	if !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "shards/x.1") || !strings.Contains(err.Error(), "3 attempts") {
		t.Errorf("error %q should name the node, the object and the attempts", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three attempts against a closed port took %v", d)
	}
}

func TestClientHonoursContext(t *testing.T) {
	// A node that never answers: the call must end with the ctx.
	hang := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(hang)
	c := retrying(newClient(t, hs.URL, node.ClientOptions{}), 5)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Get(ctx, "x", 0, make([]byte, 1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get from a hanging node: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Get from a hanging node took %v after a 200ms deadline", d)
	}
	// The per-attempt timeout turns a hang into retries, then ErrUnavailable.
	c2 := retrying(newClient(t, hs.URL, node.ClientOptions{Timeout: 100 * time.Millisecond}), 1)
	start = time.Now()
	_, err = c2.Stat(t.Context(), "x")
	if !errors.Is(err, remote.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stat with a per-attempt timeout: %v, want ErrUnavailable wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("two 100ms attempts took %v", d)
	}
}

func TestClientReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv, err := node.NewServer(node.ServerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	hs.Start()
	defer hs.Close()
	c := newClient(t, hs.URL, node.ClientOptions{})
	obj := remotetest.Object(t, 2, 1000, 0)
	if err := c.Put(t.Context(), "x", obj); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := c.Get(t.Context(), "x", 10, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(t.Context(), "missing", 0, make([]byte, 1)); !errors.Is(err, remote.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("101 sequential requests used %d connections, want 1", n)
	}
}

func TestNewClientURLs(t *testing.T) {
	for _, u := range []string{"", "ftp://host:1", "host:1234", "http://", "http://host:1/?q=1", "://x"} {
		if _, err := node.NewClient(u, node.ClientOptions{}); err == nil {
			t.Errorf("NewClient(%q) succeeded", u)
		}
	}
	c, err := node.NewClient("http://secret@127.0.0.1:9/base/", node.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.URL() != "http://127.0.0.1:9/base" || strings.Contains(c.String(), "secret") {
		t.Fatalf("URL() = %q, String() = %q: want the URL without the token", c.URL(), c.String())
	}
	_, err = node.NewClient("ftp://secret@host:1", node.ClientOptions{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("bad URL error %v shows the token", err)
	}
}

func syscallECONNREFUSED() error { return syscall.ECONNREFUSED }
