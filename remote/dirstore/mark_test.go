package dirstore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/dirstore"
	"github.com/meshdrive/meshdrive/remote/remotetest"
)

// TestMark: a new store's directory carries the mark, and so does one
// from before marks once opened; with MustExist an empty directory
// without it (a disk's mount point, the disk not mounted) is refused, and
// opens once the mark is put there by hand.
func TestMark(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	if _, err := dirstore.New(fresh, dirstore.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fresh, dirstore.MarkName)); err != nil {
		t.Fatalf("a new store's mark: %v", err)
	}
	old := filepath.Join(base, "old")
	if err := os.MkdirAll(filepath.Join(old, "meta"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "meta", "key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dirstore.New(old, dirstore.Options{MustExist: true}); err != nil {
		t.Fatalf("a store from before marks: %v", err)
	}
	if _, err := os.Stat(filepath.Join(old, dirstore.MarkName)); err != nil {
		t.Fatalf("a store from before marks, once opened: %v", err)
	}
	mp := filepath.Join(base, "mnt")
	if err := os.Mkdir(mp, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := dirstore.New(mp, dirstore.Options{MustExist: true})
	if !errors.Is(err, dirstore.ErrNoDir) || !strings.Contains(err.Error(), "mount the disk") || !strings.Contains(err.Error(), "touch "+filepath.Join(mp, dirstore.MarkName)) {
		t.Fatalf("an empty directory without the mark: %v", err)
	}
	if ents, _ := os.ReadDir(mp); len(ents) != 0 {
		t.Fatalf("the refused open wrote into the directory: %v", ents)
	}
	if err := os.WriteFile(filepath.Join(mp, dirstore.MarkName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := dirstore.New(mp, dirstore.Options{MustExist: true})
	if err != nil {
		t.Fatalf("the directory with the mark put there: %v", err)
	}
	if objs, err := s.List(t.Context(), "", "", 10); err != nil || len(objs) != 0 {
		t.Fatalf("the mark is listed as an object: %v %v", objs, err)
	}
}

// TestUnmountedMountPoint: a directory on a mount point that the file
// system table names, with nothing mounted there (a node served from a
// disk's mount point, the disk not mounted at boot), is refused whether
// or not the store must exist, and nothing is made or written there: the
// store would be made on the file system under the disk, and filled
// there by repair. Once mounted (here: once the table no longer names
// it), it opens.
func TestUnmountedMountPoint(t *testing.T) {
	base := t.TempDir()
	disk := filepath.Join(base, "disk1")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	fstab := filepath.Join(base, "fstab")
	table := "# a comment\nUUID=0123 " + strings.ReplaceAll(disk, " ", `\040`) + " ext4 defaults,nofail 0 2\n"
	if err := os.WriteFile(fstab, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := filepath.Join(base, "srv") // a path to the disk through a symbolic link
	if err := os.Symlink(disk, srv); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{disk, filepath.Join(disk, "meshdrive"), filepath.Join(srv, "meshdrive")} {
		for _, must := range []bool{false, true} {
			_, err := dirstore.New(dir, dirstore.Options{MustExist: must, Fstab: fstab})
			if !errors.Is(err, dirstore.ErrNoDir) || !strings.Contains(err.Error(), "mount "+disk) {
				t.Fatalf("%s (must exist %v) on a mount point with nothing mounted: %v", dir, must, err)
			}
		}
	}
	if ents, _ := os.ReadDir(disk); len(ents) != 0 {
		t.Fatalf("the refused opens wrote under the mount point: %v", ents)
	}
	if err := os.WriteFile(fstab, []byte("# the disk is gone from the table\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dirstore.New(filepath.Join(disk, "meshdrive"), dirstore.Options{Fstab: fstab}); err != nil {
		t.Fatal(err)
	}
}

// openOnDisk makes a node's directory at dir, opens it as a drive does
// (MustExist) and puts an object under each of names; it returns the
// store and the object.
func openOnDisk(t *testing.T, dir string, names ...string) (*dirstore.Store, []byte) {
	t.Helper()
	if _, err := dirstore.New(dir, dirstore.Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := dirstore.New(dir, dirstore.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	obj := remotetest.Object(t, 1, 1000, 0)
	for _, name := range names {
		if err := s.Put(t.Context(), name, obj); err != nil {
			t.Fatal(err)
		}
	}
	return s, obj
}

// TestMarkLostWhileOpen: a store opened with MustExist whose disk goes
// away while it is open (its directory gone, or an empty mount point in
// its place) writes nothing there and reports itself unavailable, saying
// why; once the mark is back it stores again. A store without MustExist
// (the embedded grid) makes its directory again, as before.
func TestMarkLostWhileOpen(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	dir := filepath.Join(base, "disk", "node")
	s, obj := openOnDisk(t, dir, "shards/a.0")

	// The disk goes: the directory is gone.
	if err := os.Rename(filepath.Join(base, "disk"), filepath.Join(base, "away")); err != nil {
		t.Fatal(err)
	}
	err := s.Put(ctx, "shards/b.0", obj)
	if !errors.Is(err, remote.ErrUnavailable) || !errors.Is(err, dirstore.ErrNoDir) || !strings.Contains(err.Error(), "mount it again") {
		t.Fatalf("put with the directory gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "disk")); !os.IsNotExist(err) {
		t.Fatalf("the put made the directory again: %v", err)
	}
	if _, err := s.Info(ctx); !errors.Is(err, dirstore.ErrNoDir) {
		t.Fatalf("info with the directory gone: %v", err)
	}

	// An empty directory in its place (a mount point, the disk not mounted).
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "shards/b.0", obj); !errors.Is(err, dirstore.ErrNoDir) {
		t.Fatalf("put into an empty directory without the mark: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the refused put wrote into the directory: %v", ents)
	}

	// A replaced disk, marked by hand: stored again, once counted.
	if err := os.WriteFile(filepath.Join(dir, dirstore.MarkName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx); err != nil {
		t.Fatalf("info once the mark is back: %v", err)
	}
	dirstore.WaitRecount(s)
	if err := s.Put(ctx, "shards/b.0", obj); err != nil {
		t.Fatalf("put once the mark is back: %v", err)
	}
	// It holds what was stored since, not what the disk that went held.
	if ni, err := s.Info(ctx); err != nil || ni.Objects != 1 {
		t.Fatalf("info once the mark is back: %d objects, %v", ni.Objects, err)
	}

	// Without MustExist a gone directory is made again.
	loose, err := dirstore.New(filepath.Join(base, "loose"), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(base, "loose")); err != nil {
		t.Fatal(err)
	}
	if err := loose.Put(ctx, "shards/a.0", obj); err != nil {
		t.Fatalf("put into a wiped store without MustExist: %v", err)
	}
	// Made again with its mark: the next open, with the node's id, takes
	// it for the node's directory.
	if _, err := dirstore.New(filepath.Join(base, "loose"), dirstore.Options{ID: loose.ID()}); err != nil {
		t.Fatalf("open a wiped store made again by a put: %v", err)
	}
}

// TestRecountDoesNotBlockPut: when a node's disk comes back, the walk
// that counts its objects again runs beside the Puts and Infos that
// meet the mark again, which do not wait for it (on a big node it takes
// minutes, past any deadline of theirs); its count is the one Info
// reports once it ends.
func TestRecountDoesNotBlockPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		base := t.TempDir()
		dir := filepath.Join(base, "disk", "node")
		s, obj := openOnDisk(t, dir, "shards/a.0", "shards/a.1", "shards/a.2")
		// The disk goes, and comes back.
		if err := os.Rename(filepath.Join(base, "disk"), filepath.Join(base, "away")); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "shards/b.0", obj); !errors.Is(err, dirstore.ErrNoDir) {
			t.Fatalf("put with the disk gone: %v", err)
		}
		if err := os.Rename(filepath.Join(base, "away"), filepath.Join(base, "disk")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "shards", "a.2")); err != nil { // deleted while it was away
			t.Fatal(err)
		}

		release := make(chan struct{})
		walking, restore := dirstore.HoldWalks(release)
		defer restore()
		put := make(chan error, 1)
		go func() { put <- s.Put(ctx, "shards/c.0", obj) }()
		synctest.Wait() // the Put has returned, or waits on the held walk
		var putErr error
		returned := false
		select {
		case putErr = <-put:
			returned = true
		default:
		}
		if returned {
			if _, err := s.Info(ctx); err != nil {
				t.Errorf("info while the recount walks: %v", err)
			}
		}
		select {
		case <-walking:
		default:
			t.Error("no walk counted the objects of the disk that came back")
		}
		close(release)
		if !returned {
			putErr = <-put
			t.Error("a Put waited for the walk that counts the objects of the disk that came back")
		}
		if putErr != nil {
			t.Fatalf("put once the disk is back: %v", putErr)
		}
		dirstore.WaitRecount(s)
		if ni, err := s.Info(ctx); err != nil || ni.Objects != 3 {
			t.Fatalf("info after the recount: %d objects, %v; want 3 (a.0, a.1, c.0)", ni.Objects, err)
		}
	})
}

// TestNodeID: a node's directory carries a random id in its mark, which
// Info reports; opened with the id the drive recorded, another node's
// directory (another id, or files without a mark) is refused, at New and
// when it takes the place of the node's directory while the store is
// open. Marks without an id are adopted: the id is written into them.
func TestNodeID(t *testing.T) {
	ctx := t.Context()
	base, dirA, dirB, a, b := twoNodes(t)
	idA, idB := a.ID(), b.ID()
	if len(idA) != 32 || len(idB) != 32 || idA == idB {
		t.Fatalf("node ids %q and %q: want two different ids of 32 hex digits", idA, idB)
	}
	if ni, err := a.Info(ctx); err != nil || ni.ID != idA {
		t.Fatalf("info reports id %q (%v), want %q", ni.ID, err, idA)
	}
	if m, _ := os.ReadFile(filepath.Join(dirA, dirstore.MarkName)); !strings.Contains(string(m), "id "+idA+"\n") {
		t.Fatalf("the mark does not hold the id:\n%s", m)
	}
	if s, err := dirstore.New(dirA, dirstore.Options{MustExist: true, ID: idA}); err != nil || s.ID() != idA {
		t.Fatalf("reopen with its own id: %v", err)
	}

	// Another node's directory, given as this node's.
	_, err := dirstore.New(dirB, dirstore.Options{MustExist: true, ID: idA})
	if !errors.Is(err, dirstore.ErrWrongNode) || !strings.Contains(err.Error(), idA) || !strings.Contains(err.Error(), idB) ||
		!strings.Contains(err.Error(), "another node's directory") {
		t.Fatalf("open another node's directory: %v", err)
	}

	// Files without a mark, where the drive knows the node's id: not the
	// node's directory. Without an id recorded: a store from before marks.
	dirC := filepath.Join(base, "c")
	if err := os.MkdirAll(filepath.Join(dirC, "photos"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := dirstore.New(dirC, dirstore.Options{MustExist: true, ID: idA}); !errors.Is(err, dirstore.ErrWrongNode) || !strings.Contains(err.Error(), "holds files but not the mark") {
		t.Fatalf("open an unmarked directory with files as a node with an id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirC, dirstore.MarkName)); !os.IsNotExist(err) {
		t.Fatalf("the refused open marked the directory: %v", err)
	}
	if s, err := dirstore.New(dirC, dirstore.Options{MustExist: true}); err != nil || len(s.ID()) != 32 {
		t.Fatalf("open an unmarked directory with files, no id recorded: %v", err)
	}

	// A mark without an id (from before ids, or touched by hand for a
	// replaced disk) takes the recorded id, or a new one.
	for _, want := range []string{idA, ""} {
		dirD := filepath.Join(base, "d"+want)
		if _, err := dirstore.New(dirD, dirstore.Options{}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirD, dirstore.MarkName), []byte("meshdrive node directory\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := dirstore.New(dirD, dirstore.Options{MustExist: true, ID: want})
		if err != nil {
			t.Fatalf("open a mark without an id (recorded id %q): %v", want, err)
		}
		if want != "" && s.ID() != want || len(s.ID()) != 32 {
			t.Fatalf("adopted mark: id %q, want %q", s.ID(), want)
		}
		if m, _ := os.ReadFile(filepath.Join(dirD, dirstore.MarkName)); !strings.Contains(string(m), "id "+s.ID()+"\n") {
			t.Fatalf("the adopted mark does not hold the id:\n%s", m)
		}
	}

	// While open, another node's directory takes the place of this one's
	// (another disk mounted at its path): refused until it is back.
	s, err := dirstore.New(dirA, dirstore.Options{MustExist: true, ID: idA})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dirA, filepath.Join(base, "a-away")); err != nil {
		t.Fatal(err)
	}
	obj := remotetest.Object(t, 1, 1000, 0)
	if err := s.Put(ctx, "shards/x.0", obj); !errors.Is(err, dirstore.ErrNoDir) {
		t.Fatalf("put with the directory gone: %v", err)
	}
	if err := os.Rename(dirB, dirA); err != nil {
		t.Fatal(err)
	}
	err = s.Put(ctx, "shards/x.0", obj)
	if !errors.Is(err, remote.ErrUnavailable) || !errors.Is(err, dirstore.ErrWrongNode) {
		t.Fatalf("put into another node's directory: %v", err)
	}
	if _, err := s.Info(ctx); !errors.Is(err, dirstore.ErrWrongNode) {
		t.Fatalf("info of another node's directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirA, "shards", "x.0")); !os.IsNotExist(err) {
		t.Fatalf("the refused put wrote into the other node's directory: %v", err)
	}
	if err := os.Rename(dirA, dirB); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(base, "a-away"), dirA); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "shards/x.0", obj); err != nil {
		t.Fatalf("put once the node's own directory is back: %v", err)
	}
}

// TestMarkKeptWhenWiped: a store without MustExist (the embedded grid's
// directories, a node served with --new) whose directory is emptied while
// it is open, its mark too (a disk swapped under it, a person's rm), and
// that then stores again (repair fills it), writes its mark and id back,
// so the next open with the id the drive recorded takes the directory
// for the node's, not for another node's (files, no mark).
func TestMarkKeptWhenWiped(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "node")
	s, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj := remotetest.Object(t, 1, 1000, 0)
	if err := s.Put(ctx, "shards/a.0", obj); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shards", dirstore.MarkName} { // all it holds
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the wiped directory holds %v", ents)
	}
	// Stored again from many Puts at once: they all find the mark gone.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Put(ctx, fmt.Sprintf("shards/b%d/x.%d", i, i), obj) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("puts into the wiped directory: %v", err)
	}
	for _, mode := range []bool{false, true} {
		if _, err := dirstore.New(dir, dirstore.Options{ID: s.ID(), MustExist: mode}); err != nil {
			t.Fatalf("open (MustExist %v) with the node's id after the wiped directory was stored again: %v", mode, err)
		}
	}
	mark, err := os.ReadFile(filepath.Join(dir, dirstore.MarkName))
	if err != nil || !strings.Contains(string(mark), "id "+s.ID()+"\n") {
		t.Fatalf("the mark after the wipe: %q, %v", mark, err)
	}
}

// TestNodeSwappedBetweenCalls: another node's directory that takes the
// place of the node's between two calls (another disk mounted over the
// node's path at once, no call finding the mark gone) is refused, and
// nothing is written there; the node's own directory back is served
// again.
func TestNodeSwappedBetweenCalls(t *testing.T) {
	ctx := t.Context()
	_, dirA, dirB, a, _ := twoNodes(t)
	s, err := dirstore.New(dirA, dirstore.Options{MustExist: true, ID: a.ID()})
	if err != nil {
		t.Fatal(err)
	}
	obj := remotetest.Object(t, 1, 1000, 0)
	if err := s.Put(ctx, "shards/x.0", obj); err != nil {
		t.Fatal(err)
	}
	swap := func() {
		t.Helper()
		for _, mv := range [][2]string{{dirA, dirA + ".tmp"}, {dirB, dirA}, {dirA + ".tmp", dirB}} {
			if err := os.Rename(mv[0], mv[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	swap() // b's directory now at a's path, a's at b's
	if err := s.Put(ctx, "shards/y.0", obj); !errors.Is(err, remote.ErrUnavailable) || !errors.Is(err, dirstore.ErrWrongNode) {
		t.Fatalf("put into another node's directory swapped in between two calls: %v", err)
	}
	if _, err := s.Info(ctx); !errors.Is(err, dirstore.ErrWrongNode) {
		t.Fatalf("info of another node's directory swapped in: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirA, "shards", "y.0")); !os.IsNotExist(err) {
		t.Fatalf("the refused put wrote into the other node's directory: %v", err)
	}
	swap() // back
	if err := s.Put(ctx, "shards/y.0", obj); err != nil {
		t.Fatalf("put once the node's own directory is back: %v", err)
	}
	dirstore.WaitRecount(s)
	if ni, err := s.Info(ctx); err != nil || ni.Objects != 2 {
		t.Fatalf("info once the node's own directory is back: %d objects, %v; want 2", ni.Objects, err)
	}
}

// twoNodes makes two nodes' directories, a and b, under base and returns
// them with their stores.
func twoNodes(t *testing.T) (base, dirA, dirB string, a, b *dirstore.Store) {
	t.Helper()
	base = t.TempDir()
	dirA, dirB = filepath.Join(base, "a"), filepath.Join(base, "b")
	a, err := dirstore.New(dirA, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err = dirstore.New(dirB, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return base, dirA, dirB, a, b
}
