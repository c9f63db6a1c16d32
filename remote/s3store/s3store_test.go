package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
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
