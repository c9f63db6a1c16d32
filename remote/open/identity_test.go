package open_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/node"
	"github.com/meshdrive/meshdrive/remote/open"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// TestNodeIdentity: a node server's store opened with the id the drive
// recorded works while the server serves that node's directory; once it
// serves another node's (started again over the wrong disk), Info and
// every call after it fail as unavailable with ErrWrongNode, and nothing
// is written there; with the right directory back it works again. A
// directory store with another id is refused at open.
func TestNodeIdentity(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	srvA, err := node.NewServer(node.ServerOptions{Dir: dirA})
	if err != nil {
		t.Fatal(err)
	}
	srvB, err := node.NewServer(node.ServerOptions{Dir: dirB})
	if err != nil {
		t.Fatal(err)
	}
	var serving atomic.Pointer[http.Handler]
	hA, hB := srvA.Handler(), srvB.Handler()
	serving.Store(&hA)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*serving.Load()).ServeHTTP(w, r) }))
	defer hs.Close()
	ctx := t.Context()
	infoA, err := srvA.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	infoB, err := srvB.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if infoA.ID == "" || infoB.ID == "" || infoA.ID == infoB.ID {
		t.Fatalf("node ids %q and %q: want two different ones", infoA.ID, infoB.ID)
	}

	s, err := open.Store(ctx, hs.URL, open.Options{ID: infoA.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(remote.Verifier); !ok {
		t.Fatalf("Store(http://...) = %T lost the node client's Verify", s)
	}
	roundTrip(t, s)

	serving.Store(&hB)
	_, err = s.Info(ctx)
	if !errors.Is(err, open.ErrWrongNode) || !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("info of a server serving another node's directory: %v", err)
	}
	obj := remotetest.Object(t, 2, 100, 0)
	if err := s.Put(ctx, "y", obj); !errors.Is(err, open.ErrWrongNode) {
		t.Fatalf("put to a server serving another node's directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirB, "y")); !os.IsNotExist(err) {
		t.Fatalf("the refused put reached the other node's directory: %v", err)
	}

	serving.Store(&hA)
	if err := s.Put(ctx, "y", obj); err != nil {
		t.Fatalf("put once the node's own directory is served again: %v", err)
	}

	if _, err := open.Store(ctx, dirB, open.Options{MustExist: true, ID: infoA.ID}); !errors.Is(err, open.ErrWrongNode) {
		t.Fatalf("open another node's directory as a directory store: %v", err)
	}
}
