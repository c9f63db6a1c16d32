package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// describeTree lists every entry under root with its type, mode, owner,
// size, mtime, link count, symlink target, user xattrs and a content hash,
// one line each, sorted: two trees are equal when their descriptions are.
func describeTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		l := fmt.Sprintf("%s mode=%v uid=%d gid=%d", rel, fi.Mode(), st.Uid, st.Gid)
		if !fi.IsDir() {
			// A directory's mtime and size are the file system's own
			// business (cp -a sets the mtime; sizes differ by fs).
			l += fmt.Sprintf(" size=%d mtime=%d nlink=%d", fi.Size(), fi.ModTime().UnixNano(), st.Nlink)
		} else {
			l += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			l += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("read %s: %w", rel, err)
			}
			l += fmt.Sprintf(" sha=%x", sha256.Sum256(data))
		}
		buf := make([]byte, 64<<10)
		if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			slices.Sort(names)
			for _, name := range names {
				if !strings.HasPrefix(name, "user.") || name == "user.meshdrive.status" {
					continue
				}
				v := make([]byte, 64<<10)
				m, _ := unix.Lgetxattr(p, name, v)
				l += fmt.Sprintf(" %s=%q", name, v[:max(m, 0)])
			}
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func sameTree(t *testing.T, what, want, got string) {
	t.Helper()
	w, g := describeTree(t, want), describeTree(t, got)
	if w == g {
		return
	}
	wl, gl := strings.Split(w, "\n"), strings.Split(g, "\n")
	var diff []string
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			diff = append(diff, "+ "+l)
		}
	}
	if len(diff) > 40 {
		diff = append(diff[:40], fmt.Sprintf("... %d more", len(diff)-40))
	}
	t.Errorf("%s: the trees differ (- want, + got):\n%s", what, strings.Join(diff, "\n"))
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// makeRefTree builds the source tree of the recovery test: Go sources,
// symlinks, hard links, xattrs, sparse, empty and random files, empty
// folders and odd modes.
func makeRefTree(t *testing.T, ref string) {
	t.Helper()
	sh(t, "cp", "-a", filepath.Join(runtime.GOROOT(), "src", "fmt"), filepath.Join(ref, "fmt"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(ref, "empty", "deeper"), 0o755))
	must(os.Mkdir(filepath.Join(ref, "odd"), 0o750))
	must(os.WriteFile(filepath.Join(ref, "odd", "setuid"), []byte("x"), 0o644))
	must(os.Chmod(filepath.Join(ref, "odd", "setuid"), 0o4751))
	must(os.WriteFile(filepath.Join(ref, "odd", "none"), []byte("no permissions"), 0o000))
	must(os.WriteFile(filepath.Join(ref, "odd", "owned"), []byte("owned by someone"), 0o640))
	must(os.Lchown(filepath.Join(ref, "odd", "owned"), 1234, 5678))
	must(os.WriteFile(filepath.Join(ref, "empty-file"), nil, 0o600))
	must(os.Symlink("fmt/print.go", filepath.Join(ref, "link-to-print")))
	must(os.Symlink("/nowhere/at/all", filepath.Join(ref, "dangling")))
	must(os.Link(filepath.Join(ref, "fmt", "doc.go"), filepath.Join(ref, "hardlink-doc.go")))
	must(unix.Setxattr(filepath.Join(ref, "fmt", "format.go"), "user.color", []byte("green"), 0))
	must(unix.Setxattr(filepath.Join(ref, "empty"), "user.note", []byte("a folder's xattr\x00\xff"), 0))
	f, err := os.Create(filepath.Join(ref, "sparse"))
	must(err)
	_, err = f.WriteAt([]byte("the end"), 9<<20)
	must(err)
	must(f.Close())
	random := make([]byte, 64<<20)
	rand.Read(random)
	must(os.WriteFile(filepath.Join(ref, "random.bin"), random, 0o644))
	old := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	must(os.Chtimes(filepath.Join(ref, "random.bin"), old, old))
}

// TestRecoverFromGrid: a drive on six real nodes, a source tree with every
// kind of file in it, three snapshots; then the data dir is deleted, two
// nodes stopped, and the drive recovered from one of the others: the tree,
// its attributes and its snapshots come back.
func TestRecoverFromGrid(t *testing.T) {
	longTest(t)
	requireFuse(t)
	base := t.TempDir()
	dir, nodes, env := newCluster(t, base, "recover me")
	mp := filepath.Join(base, "Drive")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, "--metadata-interval", "1s", mp)

	ref := filepath.Join(base, "ref")
	if err := os.Mkdir(ref, 0o755); err != nil {
		t.Fatal(err)
	}
	makeRefTree(t, ref)
	sh(t, "cp", "-a", ref+"/.", mp+"/")
	sameTree(t, "the copy in the mount", ref, mp)

	// Three snapshots of a folder that changes between them; a copy of
	// it at each moment to compare with.
	work := filepath.Join(mp, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(work, n), []byte("first "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copies := filepath.Join(base, "copies")
	os.Mkdir(copies, 0o755)
	snapshot := func(name string) {
		t.Helper()
		r := mustRun(t, env, "snapshot", "create", "--data", dir, "--name", name)
		if !strings.Contains(r.stdout, "snapshot "+name+" taken") {
			t.Errorf("snapshot create: %s", r)
		}
		sh(t, "cp", "-a", work, filepath.Join(copies, name))
	}
	snapshot("s1")
	if err := os.WriteFile(filepath.Join(work, "a"), []byte("second a, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(work, "b"))
	os.Rename(filepath.Join(work, "c"), filepath.Join(work, "c2"))
	snapshot("s2")
	os.WriteFile(filepath.Join(work, "d"), []byte("new d"), 0o600)
	os.Chmod(filepath.Join(work, "a"), 0o600)
	snapshot("s3")
	// A name taken, a name not there: what happened and what to do.
	assertRefusal(t, runBin(t, env, "snapshot", "create", "--data", dir, "--name", "s1"), "", "",
		`a snapshot named "s1" already exists`, "choose another name", "meshdrive snapshot delete s1")
	assertRefusal(t, runBin(t, env, "snapshot", "delete", "--data", dir, "s1", "nosuch"), "", "",
		`no snapshot named "nosuch"`, "nothing was deleted", "meshdrive snapshot list")
	for _, s := range []string{"s1", "s2", "s3"} {
		sameTree(t, "snapshot "+s, filepath.Join(copies, s), filepath.Join(mp, ".snapshots", s, "work"))
	}
	ents, err := os.ReadDir(mp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == ".snapshots" {
			t.Errorf("readdir of the root lists .snapshots")
		}
	}
	snaps, err := os.ReadDir(filepath.Join(mp, ".snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range snaps {
		names = append(names, e.Name())
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		if !slices.Contains(names, s) {
			t.Errorf(".snapshots lists %v, missing %s", names, s)
		}
	}
	if err := os.WriteFile(filepath.Join(mp, ".snapshots", "s1", "work", "a"), []byte("x"), 0o644); !errors_Is(err, syscall.EROFS) {
		t.Errorf("writing into a snapshot: %v, want EROFS", err)
	}
	// What cp -a does to every directory it copies, and what it sets on
	// every file: both changes, both refused.
	if err := unix.Removexattr(filepath.Join(mp, ".snapshots", "s1", "work"), "system.posix_acl_default"); err != unix.EROFS {
		t.Errorf("removing an ACL in a snapshot: %v, want EROFS", err)
	}
	acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(filepath.Join(mp, ".snapshots", "s1", "work", "a"), "system.posix_acl_access", acl, 0); err != unix.EROFS {
		t.Errorf("setting an ACL in a snapshot: %v, want EROFS", err)
	}
	if err := unix.Setxattr(filepath.Join(mp, ".snapshots", "s1", "work"), "system.posix_acl_default", acl, 0); err != unix.EROFS {
		t.Errorf("setting a default ACL in a snapshot: %v, want EROFS", err)
	}
	// Changes that name a snapshot and the drive at once, and the
	// snapshots folder itself: refused, and the drive unchanged (a rename
	// onto a snapshot's file replaced the live file of that number, a link
	// from a snapshot linked the live file, a folder renamed to .snapshots
	// hid behind it, an rmdir of a snapshot answered success).
	snapA := filepath.Join(mp, ".snapshots", "s1", "work", "a")
	if err := os.Rename(filepath.Join(work, "d"), snapA); !errors.Is(err, syscall.EROFS) {
		t.Errorf("renaming a file of the drive onto a snapshot's: %v, want EROFS", err)
	}
	if err := os.Link(snapA, filepath.Join(work, "linked")); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("linking a snapshot's file into the drive: %v, want EXDEV", err)
	}
	if err := os.Mkdir(filepath.Join(work, "hideme"), 0o755); err != nil {
		t.Fatal(err)
	}
	// (rename(2) itself: os.Rename answers EEXIST for any folder onto a
	// folder before asking the kernel.)
	if err := syscall.Rename(filepath.Join(work, "hideme"), filepath.Join(mp, ".snapshots")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("renaming a folder to /.snapshots: %v, want EROFS", err)
	}
	snapDir := filepath.Join(mp, ".snapshots")
	if err := unix.Setxattr(snapDir, "user.x", []byte("1"), 0); err != unix.EROFS {
		t.Errorf("setxattr on .snapshots: %v, want EROFS", err)
	}
	if err := unix.Removexattr(snapDir, "user.x"); err != unix.EROFS {
		t.Errorf("removexattr on .snapshots: %v, want EROFS", err)
	}
	if f, err := os.Create(filepath.Join(snapDir, "new")); !errors.Is(err, syscall.EROFS) {
		if f != nil {
			f.Close()
		}
		t.Errorf("creating a file in .snapshots: %v, want EROFS", err)
	}
	if err := os.Symlink("s1", filepath.Join(snapDir, "link")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("a symlink in .snapshots: %v, want EROFS", err)
	}
	if err := syscall.Mknod(filepath.Join(snapDir, "fifo"), syscall.S_IFIFO|0o644, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mknod in .snapshots: %v, want EROFS", err)
	}
	if err := os.Link(filepath.Join(work, "d"), filepath.Join(snapDir, "hard")); !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EXDEV) {
		t.Errorf("a hard link in .snapshots: %v, want EROFS or EXDEV", err)
	}
	if err := syscall.Rmdir(filepath.Join(mp, ".snapshots", "s1")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("rmdir of a snapshot: %v, want EROFS", err)
	}
	if f, err := os.OpenFile(snapA, os.O_RDWR, 0); !errors_Is(err, syscall.EROFS) {
		if f != nil {
			f.Close()
		}
		t.Errorf("opening a snapshot's file for writing: %v, want EROFS", err)
	}
	// A size past the largest file (a block's end overflowed: shrinking
	// back zeroed the file).
	if err := os.Truncate(filepath.Join(work, "d"), 1<<63-1); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("truncate to 2^63-1: %v, want EFBIG", err)
	}
	for p, want := range map[string]string{"a": "second a, longer", "d": "new d", "hideme": ""} {
		if p == "hideme" {
			if fi, err := os.Stat(filepath.Join(work, p)); err != nil || !fi.IsDir() {
				t.Errorf("work/hideme after the refused rename: %v", err)
			}
			continue
		}
		if b, err := os.ReadFile(filepath.Join(work, p)); err != nil || string(b) != want {
			t.Errorf("work/%s after the refused changes: %q, %v; want %q", p, b, err, want)
		}
	}
	if b, err := os.ReadFile(snapA); err != nil || string(b) != "first a" {
		t.Errorf("the snapshot's work/a: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(work, "linked")); !os.IsNotExist(err) {
		t.Errorf("work/linked: %v, want none", err)
	}
	os.Remove(filepath.Join(work, "hideme"))
	mustRun(t, env, "snapshot", "restore", "--data", dir, "s1", "work/b")
	if b, err := os.ReadFile(filepath.Join(work, "b")); err != nil || string(b) != "first b" {
		t.Errorf("restored work/b: %q, %v", b, err)
	}
	if r := runBin(t, env, "snapshot", "restore", "--data", dir, "s1", "work/a"); r.code == 0 || !strings.Contains(r.stderr, "exists now") {
		t.Errorf("restore over an existing file: %s", r)
	}
	sh(t, "cp", "-a", work, filepath.Join(copies, "final"))

	r := mustRun(t, env, "sync", "--data", dir, "--timeout", "5m")
	if st := statusJSON(t, env, dir); !st.Durable || st.Metadata.Head == 0 || st.Metadata.PendingRows != 0 {
		t.Fatalf("after sync: %s, status %+v", r.stdout, st)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)

	// The machine is lost: no data dir; two nodes are down too.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	nodes[1].stop(t, syscall.SIGKILL)
	nodes[4].stop(t, syscall.SIGKILL)
	dir2 := filepath.Join(base, "data2")

	// Refusals first: each one line, nothing written.
	bad := runBin(t, cmdEnv("MESHDRIVE_PASSPHRASE=wrong"), "recover", "--node", nodes[0].url(), "--data", dir2)
	if bad.code == 0 || !strings.Contains(bad.stderr, "wrong passphrase") {
		t.Errorf("recover with a wrong passphrase: %s", bad)
	}
	empty := startNode(t, filepath.Join(base, "node", "empty"))
	bad = runBin(t, env, "recover", "--node", empty.url(), "--data", dir2)
	if bad.code == 0 || !strings.Contains(bad.stderr, "holds no meshdrive drive") {
		t.Errorf("recover from a node with no drive: %s", bad)
	}
	bad = runBin(t, env, "recover", "--node", nodes[1].url(), "--data", dir2)
	if bad.code == 0 || !strings.Contains(bad.stderr, "node") {
		t.Errorf("recover from a stopped node: %s", bad)
	}
	if _, err := os.Stat(dir2); !os.IsNotExist(err) {
		t.Fatalf("a refused recover left %s behind (%v)", dir2, err)
	}

	r = mustRun(t, env, "recover", "--node", nodes[2].url(), "--data", dir2)
	if !strings.Contains(r.stdout, "recovered drive") || strings.Contains(r.stdout, "warning") {
		t.Errorf("recover: %s", r)
	}
	if bad := runBin(t, env, "recover", "--node", nodes[2].url(), "--data", dir2); bad.code == 0 || !strings.Contains(bad.stderr, "already exists") {
		t.Errorf("recover over a drive: %s", bad)
	}
	cleanupMount(t, env, dir2, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir2, mp)
	// The work folder changed after the reference copy: compare it apart.
	sameTree(t, "the recovered work folder", filepath.Join(copies, "final"), work)
	os.RemoveAll(filepath.Join(base, "copies", "final"))
	got := filepath.Join(base, "got")
	sh(t, "cp", "-a", mp+"/.", got)
	os.RemoveAll(filepath.Join(got, "work"))
	sameTree(t, "the recovered drive", ref, got)
	for _, s := range []string{"s1", "s2", "s3"} {
		sameTree(t, "recovered snapshot "+s, filepath.Join(copies, s), filepath.Join(mp, ".snapshots", s, "work"))
	}
	if data, err := os.ReadFile(filepath.Join(mp, "random.bin")); err != nil || !bytes.Equal(data, mustRead(t, filepath.Join(ref, "random.bin"))) {
		t.Errorf("random.bin after recovery: %v", err)
	}
	mustRun(t, env, "unmount", "--data", dir2, mp)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func errors_Is(err error, target syscall.Errno) bool {
	var e syscall.Errno
	if pe, ok := err.(*os.PathError); ok {
		e, _ = pe.Err.(syscall.Errno)
	}
	return e == target
}

// TestRecoverEmbeddedCopy: a drive on the embedded default grid, its
// node directories copied elsewhere, the data dir lost: recover from the
// copy finds the other node dirs beside the one named.
// mountEmbedded inits a drive on the embedded default grid under a new
// temp dir base, with passphrase pass, and mounts it at base/Drive.
func mountEmbedded(t *testing.T, pass string) (base, dir, mp string, env []string) {
	t.Helper()
	requireFuse(t)
	base = t.TempDir()
	dir = filepath.Join(base, "data")
	env = cmdEnv("MESHDRIVE_PASSPHRASE=" + pass)
	mustRun(t, env, "init", "--data", dir)
	mp = filepath.Join(base, "Drive")
	os.Mkdir(mp, 0o755)
	cleanupMount(t, env, dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	return base, dir, mp, env
}

// syncedEmbedded is mountEmbedded with note.txt holding want, synced to
// the grid, and the drive unmounted.
func syncedEmbedded(t *testing.T, pass string, want []byte) (base, dir, mp string, env []string) {
	t.Helper()
	base, dir, mp, env = mountEmbedded(t, pass)
	if err := os.WriteFile(filepath.Join(mp, "note.txt"), want, 0o640); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	mustRun(t, env, "unmount", "--data", dir, mp)
	return base, dir, mp, env
}

func TestRecoverEmbeddedCopy(t *testing.T) {
	want := []byte("kept on the embedded grid\n")
	base, dir, mp, env := syncedEmbedded(t, "embedded", want)
	sh(t, "cp", "-a", filepath.Join(dir, nodesDir), filepath.Join(base, "backup"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	dir2 := filepath.Join(base, "data2")
	mustRun(t, env, "recover", "--node", filepath.Join(base, "backup", "node-3"), "--data", dir2)
	cleanupMount(t, env, dir2, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir2, mp)
	if got, err := os.ReadFile(filepath.Join(mp, "note.txt")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("note.txt after recovering from a copy of the node dirs: %q, %v", got, err)
	}
	mustRun(t, env, "unmount", "--data", dir2, mp)
}

// TestRecoverEmbeddedInPlace: a drive on the embedded default grid lost
// its journal and config, not its nodes folder: recover with one of its
// own node dirs rebuilds it in that data dir, with the config naming the
// nodes relative to the data dir as init wrote it, so the whole data dir
// can move afterwards. (recover refused the data dir as not empty; from a
// copy elsewhere the paths were absolute, and the moved drive had none.)
func TestRecoverEmbeddedInPlace(t *testing.T) {
	want := []byte("kept in the data dir's own nodes\n")
	base, dir, mp, env := syncedEmbedded(t, "in place", want)
	initCfg, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != nodesDir && e.Name() != "junk" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Anything but the nodes folder: refused, and left as it was.
	if err := os.WriteFile(filepath.Join(dir, "junk"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dir, nodesDir, "node-2")
	assertRefusal(t, runBin(t, env, "recover", "--node", node, "--data", dir), "", "",
		"holds more than its nodes folder", "move everything but "+filepath.Join(dir, nodesDir))
	os.Remove(filepath.Join(dir, "junk"))
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
		t.Fatalf("the refused recover left %v in the data dir (%v), want its nodes folder only", ents, err)
	}

	mustRun(t, env, "recover", "--node", node, "--data", dir)
	got, err := loadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	initial, err := parseConfig(initCfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Nodes, initial.Nodes) {
		t.Errorf("recovered config's nodes %+v, want init's %+v", got.Nodes, initial.Nodes)
	}
	moved := filepath.Join(base, "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	cleanupMount(t, env, moved, mp)
	mustRun(t, env, "mount", "--daemon", "--data", moved, mp)
	if b, err := os.ReadFile(filepath.Join(mp, "note.txt")); err != nil || !bytes.Equal(b, want) {
		t.Errorf("note.txt of the recovered drive, its data dir moved: %q, %v", b, err)
	}
	mustRun(t, env, "unmount", "--data", moved, mp)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the moved drive made %s again (%v)", dir, err)
	}
}

// TestRecoverInPlaceFailsClean: an in-place recover that fails once it
// has opened the nodes (the drive never shipped a checkpoint) leaves the
// data dir as it found it: no node dir made for a missing node, nothing
// else written.
func TestRecoverInPlaceFailsClean(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := cmdEnv("MESHDRIVE_PASSPHRASE=never synced")
	mustRun(t, env, "init", "--data", dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != nodesDir {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, nodesDir, "node-6")); err != nil {
		t.Fatal(err)
	}
	before := describeTree(t, dir)
	// (No node has a root record; node-6, missing, is named as down.)
	if r := runBin(t, env, "recover", "--node", filepath.Join(dir, nodesDir, "node-1"), "--data", dir); r.code == 0 ||
		!strings.Contains(r.stderr, "no metadata checkpoint") || !strings.Contains(r.stderr, "node-6 could not be read") {
		t.Errorf("recover of a drive that never shipped a checkpoint, node-6 missing: %s", r)
	}
	if after := describeTree(t, dir); after != before {
		t.Errorf("a failed recover changed the data dir:\n%s\nwas:\n%s", after, before)
	}
}

// TestRecoverNoCheckpoint: a drive that never shipped its metadata,
// recovered from a copy of its node dirs. With one node dir missing,
// recover says the nodes it read hold no metadata checkpoint, names the
// one it could not read, and what to do either way (it said "no node
// served a valid root record", as if the records were damaged); with all
// of them, that the drive has no checkpoint on the grid yet.
func TestRecoverNoCheckpoint(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	env := cmdEnv("MESHDRIVE_PASSPHRASE=never shipped")
	mustRun(t, env, "init", "--data", dir)
	nodes := filepath.Join(base, "copy")
	if err := os.Rename(filepath.Join(dir, nodesDir), nodes); err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(base, "node-6")
	if err := os.Rename(filepath.Join(nodes, "node-6"), aside); err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(base, "recovered")
	// (--log-level error: the node's warning aside, the error is one line.)
	r := runBin(t, env, "recover", "--log-level", "error", "--node", filepath.Join(nodes, "node-1"), "--data", into)
	assertRefusal(t, r, "", "", "the 5 nodes recover could read hold no metadata checkpoint of this drive",
		"node-6 could not be read", "the node's directory does not exist", "make node-6 reachable", "recover again",
		"nothing on the grid to recover", "mount it there and run meshdrive sync", "nothing was written")
	if strings.Contains(r.stderr, "no node served a valid root record") {
		t.Errorf("recover calls a missing node's record invalid: %s", r.stderr)
	}
	if _, err := os.Stat(into); !os.IsNotExist(err) {
		t.Errorf("the failed recover made %s (%v)", into, err)
	}

	if err := os.Rename(aside, filepath.Join(nodes, "node-6")); err != nil {
		t.Fatal(err)
	}
	r = runBin(t, env, "recover", "--node", filepath.Join(nodes, "node-1"), "--data", into)
	assertRefusal(t, r, "", "", "no metadata checkpoint on the grid yet", "nothing to recover", "mount it there and run meshdrive sync")
	if strings.Contains(r.stderr, "could not be read") {
		t.Errorf("recover with every node read names one it could not read: %s", r.stderr)
	}
}

// TestRecoverNothingWaiting: a machine lost while a program held a
// deleted file open (its checkpoint names the file with no link left):
// the recovered drive's status says everything is on the grid, with no
// change waiting for a checkpoint. The first mount reaped the file and
// counted that as changes waiting, and the drive as not durable, until
// the next checkpoint.
func TestRecoverNothingWaiting(t *testing.T) {
	base, dir, mp, env := mountEmbedded(t, "waiting")
	data := make([]byte, 9<<20)
	rand.Read(data)
	for _, n := range []string{"kept", "deleted-while-open"} {
		if err := os.WriteFile(filepath.Join(mp, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(mp, "deleted-while-open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(filepath.Join(mp, "deleted-while-open")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	// The machine is lost now: what is left is a copy of its node dirs.
	sh(t, "cp", "-a", filepath.Join(dir, nodesDir), filepath.Join(base, "backup"))
	f.Close()
	mustRun(t, env, "unmount", "--data", dir, mp)

	dir2 := filepath.Join(base, "data2")
	mustRun(t, env, "recover", "--node", filepath.Join(base, "backup", "node-1"), "--data", dir2)
	cleanupMount(t, env, dir2, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir2, mp)
	st := statusJSON(t, env, dir2)
	if st.Metadata.PendingRows != 0 || !st.Durable {
		t.Errorf("status right after recover: %d changes waiting, durable %v; want none waiting, durable", st.Metadata.PendingRows, st.Durable)
	}
	if r := mustRun(t, env, "status", "--data", dir2); !strings.Contains(r.stdout, ", 0 changes waiting") {
		t.Errorf("status right after recover:\n%s", r.stdout)
	}
	if got, err := os.ReadFile(filepath.Join(mp, "kept")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("kept after recover: %d bytes, %v", len(got), err)
	}
	if ents, err := os.ReadDir(mp); err != nil || len(ents) != 1 {
		t.Errorf("the recovered drive holds %v (%v), want only kept", ents, err)
	}
	mustRun(t, env, "unmount", "--data", dir2, mp)
}

// TestRecoverFromStaleNode: a node that was down while the node list
// changed keeps the config before the change; recover from it takes the
// newest config on the nodes it names (the highest generation), not its
// own, so the recovered drive knows the node added meanwhile.
func TestRecoverFromStaleNode(t *testing.T) {
	base, dir, mp, env := mountEmbedded(t, "stale")
	if err := os.WriteFile(filepath.Join(mp, "f.txt"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// node-1 misses the node add: its config is put back as it was.
	cfgObj := filepath.Join(dir, nodesDir, "node-1", "meta", metaConfig)
	old, err := os.ReadFile(cfgObj)
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(base, "extra")
	mustRun(t, env, "node", "add", "--data", dir, extra)
	if now, err := os.ReadFile(cfgObj); err != nil || bytes.Equal(now, old) {
		t.Fatalf("node add did not write node-1's config (%v)", err)
	}
	if err := os.WriteFile(cfgObj, old, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "sync", "--data", dir, "--timeout", "2m")
	mustRun(t, env, "unmount", "--data", dir, mp)

	dir2 := filepath.Join(base, "data2")
	r := mustRun(t, env, "recover", "--node", filepath.Join(dir, nodesDir, "node-1"), "--data", dir2)
	if !strings.Contains(r.stderr, "holds a newer drive config") {
		t.Errorf("recover from the stale node did not say it took a newer config: %s", r)
	}
	cfg, err := loadConfig(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cfg.Nodes, func(n NodeConfig) bool { return n.URL == extra }) || len(cfg.Nodes) != 7 {
		t.Errorf("recovered config's nodes %+v: want the six and %s", cfg.Nodes, extra)
	}
	cleanupMount(t, env, dir2, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir2, mp)
	if got, err := os.ReadFile(filepath.Join(mp, "f.txt")); err != nil || string(got) != "kept\n" {
		t.Errorf("f.txt after recovering from the stale node: %q, %v", got, err)
	}
	mustRun(t, env, "unmount", "--data", dir2, mp)
}
