package node_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// startServer runs a node server on 127.0.0.1:0 until the test ends and
// returns its base URL and the server.
func startServer(t *testing.T, o node.ServerOptions) (string, *node.Server) {
	t.Helper()
	if o.Dir == "" && o.Store == nil {
		o.Dir = t.TempDir()
	}
	srv, err := node.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return 10s after its ctx was cancelled")
		}
	})
	return "http://" + ln.Addr().String(), srv
}

func newClient(t *testing.T, url string, o node.ClientOptions) *node.Client {
	t.Helper()
	c, err := node.NewClient(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// retrying stacks remote.WithRetry on c, n retries with short waits, as
// open.Store does with the default ones.
func retrying(c *node.Client, n int) remote.Store {
	return remote.WithRetry(c, remote.RetryOptions{Retries: n, Backoff: remote.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})
}

func TestStore(t *testing.T) {
	remotetest.RunStoreTests(t, func(t *testing.T) remote.Store {
		url, _ := startServer(t, node.ServerOptions{Token: "s3cret"})
		return newClient(t, url, node.ClientOptions{Token: "s3cret"})
	})
}

func TestStoreTokenInURL(t *testing.T) {
	remotetest.RunStoreTests(t, func(t *testing.T) remote.Store {
		url, _ := startServer(t, node.ServerOptions{Token: "tok-en_1"})
		return newClient(t, "http://tok-en_1@"+url[len("http://"):], node.ClientOptions{})
	})
}
