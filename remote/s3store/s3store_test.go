package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/remotetest"
	"github.com/meshdrive/meshdrive/remote/s3store"
)

const (
	testAccess = remotetest.VersitygwAccess
	testSecret = remotetest.VersitygwSecret
)

func startVersitygw(t *testing.T) string { return remotetest.StartVersitygw(t) }

func newStore(t *testing.T, addr, bucket, prefix string) *s3store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := s3store.New(ctx, s3store.Options{
		Endpoint: addr, Bucket: bucket, Prefix: prefix,
		AccessKey: testAccess, SecretKey: testSecret, MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	addr := startVersitygw(t)
	var n atomic.Int64
	remotetest.RunStoreTests(t, func(t *testing.T) remote.Store {
		return newStore(t, addr, "meshdrive-test", fmt.Sprintf("node-%d", n.Add(1)))
	})
}

func TestPrefixesAreSeparate(t *testing.T) {
	addr := startVersitygw(t)
	ctx := t.Context()
	a := newStore(t, addr, "shared", "a")
	b := newStore(t, addr, "shared", "b")
	obj := remotetest.Object(t, 1, 100, 0)
	if err := a.Put(ctx, "x", obj); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "x"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("object put under prefix a is visible under prefix b (Stat: %v)", err)
	}
	if objs, err := b.List(ctx, "", "", 10); err != nil || len(objs) != 0 {
		t.Fatalf("List under prefix b = %v, %v; want empty", objs, err)
	}
	ni, err := a.Info(ctx)
	if err != nil || ni.Objects != 1 || ni.Capacity != -1 || ni.Free != -1 {
		t.Fatalf("Info(a) = %+v, %v; want 1 object, capacity and free -1", ni, err)
	}
}

func TestWrongCredentials(t *testing.T) {
	addr := startVersitygw(t)
	good := newStore(t, addr, "creds", "p")
	if err := good.Put(t.Context(), "x", remotetest.Object(t, 2, 100, 0)); err != nil {
		t.Fatal(err)
	}
	_, err := s3store.New(t.Context(), s3store.Options{
		Endpoint: addr, Bucket: "creds", AccessKey: testAccess, SecretKey: "wrong", MaxRetries: 1,
	})
	if !errors.Is(err, remote.ErrUnauthorized) {
		t.Fatalf("New with a wrong secret: %v, want ErrUnauthorized", err)
	}
}

// TestUnknownAccessKey: an access key the server does not know is refused
// credentials, not a missing object (versitygw answers it with a 404).
func TestUnknownAccessKey(t *testing.T) {
	addr := startVersitygw(t)
	good := newStore(t, addr, "creds", "p")
	if err := good.Put(t.Context(), "x", remotetest.Object(t, 2, 100, 0)); err != nil {
		t.Fatal(err)
	}
	_, err := s3store.New(t.Context(), s3store.Options{
		Endpoint: addr, Bucket: "creds", Prefix: "p", AccessKey: "NOSUCHKEY", SecretKey: testSecret, MaxRetries: 1,
	})
	if !errors.Is(err, remote.ErrUnauthorized) || errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("New with an unknown access key: %v, want ErrUnauthorized", err)
	}
}

func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err = s3store.New(ctx, s3store.Options{Endpoint: addr, Bucket: "b", AccessKey: "a", SecretKey: "s", MaxRetries: 1})
	if !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("New against a closed port: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %q does not name the endpoint %s", err, addr)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []s3store.Options{
		{Endpoint: "", Bucket: "b"},
		{Endpoint: "http://host:9000", Bucket: "b"},
		{Endpoint: "host:9000"},
	} {
		if _, err := s3store.New(t.Context(), o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// slowCount delays the listings that count a bucket (pages of more than
// one key), as a bucket of many pages does.
type slowCount struct {
	rt    http.RoundTripper
	delay time.Duration
	pages atomic.Int64
}

func (s *slowCount) RoundTrip(r *http.Request) (*http.Response, error) {
	q := r.URL.Query()
	if r.Method == http.MethodGet && q.Has("list-type") && q.Get("max-keys") != "1" {
		s.pages.Add(1)
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return s.rt.RoundTrip(r)
}

// TestInfoQuickOnALargeBucket: Info answers within the health check's
// time however long the count of the objects takes (it counted every
// object first, so a bucket of tens of thousands of shards was a node
// that never answered); the count arrives later.
func TestInfoQuickOnALargeBucket(t *testing.T) {
	addr := startVersitygw(t)
	slow := &slowCount{rt: http.DefaultTransport, delay: 5 * time.Second}
	s, err := s3store.New(t.Context(), s3store.Options{Endpoint: addr, Bucket: "large", Prefix: "p",
		AccessKey: testAccess, SecretKey: testSecret, MaxRetries: 1, Transport: slow})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Put(t.Context(), fmt.Sprintf("shards/x.%d", i), remotetest.Object(t, uint64(i), 100, 0)); err != nil {
			t.Fatal(err)
		}
	}
	info := func() remote.NodeInfo {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second) // as Grid.Health
		defer cancel()
		ni, err := s.Info(ctx)
		if err != nil {
			t.Fatalf("Info while the objects are counted: %v", err)
		}
		return ni
	}
	if ni := info(); ni.Objects != -1 {
		t.Errorf("Info before the first count ends: %d objects; want -1 (not known yet)", ni.Objects)
	}
	deadline := time.Now().Add(30 * time.Second)
	for ni := info(); ni.Objects != 3; ni = info() {
		if time.Now().After(deadline) {
			t.Fatalf("Info still says %d objects 30 s later; want 3", ni.Objects)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := slow.pages.Load(); n != 1 {
		t.Errorf("%d counts ran; want 1 (one at a time, kept while fresh)", n)
	}
}

// TestRemoveBucket: BucketExists sees a bucket New made; RemoveBucket
// deletes it with the objects of every prefix in it, and a second
// RemoveBucket of the gone bucket is no error.
func TestRemoveBucket(t *testing.T) {
	addr := startVersitygw(t)
	ctx := t.Context()
	o := s3store.Options{Endpoint: addr, Bucket: "undo", AccessKey: testAccess, SecretKey: testSecret, MaxRetries: 1}
	exists := func() bool {
		t.Helper()
		ok, err := s3store.BucketExists(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if exists() {
		t.Fatal("a bucket nobody made exists")
	}
	for _, p := range []string{"a", "b"} {
		if err := newStore(t, addr, "undo", p).Put(ctx, "x", remotetest.Object(t, 1, 100, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if !exists() {
		t.Fatal("BucketExists does not see the bucket New made")
	}
	for range 2 {
		if err := s3store.RemoveBucket(ctx, o); err != nil {
			t.Fatal(err)
		}
		if exists() {
			t.Fatal("the bucket is still there after RemoveBucket")
		}
	}
}
