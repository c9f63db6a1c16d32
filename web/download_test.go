package web

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// eioFile is a file of 1000 bytes whose every read fails with EIO, as a
// block the cache does not hold reads while no node answers.
type eioFile struct{ gofs.Inode }

func (*eioFile) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode, out.Size = syscall.S_IFREG|0o644, 1000
	return 0
}

func (*eioFile) Open(context.Context, uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (*eioFile) Read(context.Context, gofs.FileHandle, []byte, int64) (fuse.ReadResult, syscall.Errno) {
	return nil, syscall.EIO
}

type eioRoot struct{ gofs.Inode }

func (r *eioRoot) OnAdd(ctx context.Context) {
	r.AddChild("unreadable", r.NewPersistentInode(ctx, &eioFile{}, gofs.StableAttr{Mode: syscall.S_IFREG}), false)
	r.AddChild(".snapshots", r.NewPersistentInode(ctx, &eioSnapshots{}, gofs.StableAttr{Mode: syscall.S_IFDIR}), false)
}

// eioSnapshots is a .snapshots whose every snapshot fails to open with
// EIO, as one does whose metadata no node can serve.
type eioSnapshots struct{ gofs.Inode }

func (*eioSnapshots) Lookup(context.Context, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EIO
}

// eioMount mounts eioRoot and serves it.
func eioMount(t *testing.T) *Server {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("/dev/fuse is required under CI: %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
	mp := t.TempDir()
	srv, err := gofs.Mount(mp, &eioRoot{}, &gofs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Unmount() })
	s, err := newServer(Options{Mountpoint: mp, Token: fuzzToken, Drive: noDrive{}})
	if err != nil {
		t.Fatal(err)
	}
	s.port = "8080"
	s.hosts[fuzzHost] = true
	return s
}

// TestDownloadReadFails: a download whose first read fails (nothing
// cached, no node answering) is answered 502 io with what to do, not a
// 200 whose body ends at once with no word of why.
func TestDownloadReadFails(t *testing.T) {
	s := eioMount(t)
	for _, rng := range []string{"", "bytes=10-19"} {
		w := serve(s, "GET", "/api/v1/files/unreadable", map[string]string{"Range": rng})
		var e apiError
		if json.Unmarshal(w.Body.Bytes(), &e); w.Code != http.StatusBadGateway || e.Code != "io" || !strings.Contains(e.Error, "try again") {
			t.Errorf("download (Range %q) of a file that cannot be read: %d %v %q; want 502 io", rng, w.Code, w.Header(), w.Body)
		}
		if cl := w.Header().Get("Content-Length"); cl != "" && cl != strconv.Itoa(w.Body.Len()) {
			t.Errorf("the error's Content-Length %q is the file's, not the answer's (%d bytes)", cl, w.Body.Len())
		}
		if cr := w.Header().Get("Content-Range"); cr != "" {
			t.Errorf("the error carries the file's Content-Range %q", cr)
		}
	}
}

// TestSnapshotUnreadable: a snapshot that is listed but cannot be opened
// now (its metadata on the grid, no node answering) is answered 502 io,
// try again, not "no snapshot; GET /snapshots lists them", which the list
// contradicts.
func TestSnapshotUnreadable(t *testing.T) {
	s := eioMount(t)
	for _, c := range []struct{ method, target, body string }{
		{"GET", "/api/v1/list/?snapshot=s1", ""},
		{"GET", "/api/v1/files/unreadable?snapshot=s1", ""},
		{"POST", "/api/v1/restore", `{"snapshot":"s1","path":"unreadable","to":"x"}`},
	} {
		w := serveBody(s, c.method, c.target, c.body, nil)
		var e apiError
		if json.Unmarshal(w.Body.Bytes(), &e); w.Code != http.StatusBadGateway || e.Code != "io" {
			t.Errorf("%s %s %s: %d %q; want 502 io", c.method, c.target, c.body, w.Code, w.Body)
		}
	}
}
