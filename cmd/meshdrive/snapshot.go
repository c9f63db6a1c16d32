package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	mfs "github.com/meshdrive/meshdrive/fs"
)

// snapshotJSON is one snapshot on the control socket.
type snapshotJSON struct {
	Name    string    `json:"name"`
	Seq     uint64    `json:"seq"`
	Named   bool      `json:"named"`
	Created time.Time `json:"created"`
}

func toJSON(ss []mfs.Snapshot) []snapshotJSON {
	out := make([]snapshotJSON, 0, len(ss))
	for _, s := range ss {
		out = append(out, snapshotJSON{Name: s.Name, Seq: s.Seq, Named: s.Named, Created: s.Created})
	}
	return out
}

func snapshotStatus(err error) int {
	switch {
	case errors.Is(err, mfs.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, mfs.ErrExist):
		return http.StatusConflict
	case errors.Is(err, mfs.ErrInvalid), errors.Is(err, mfs.ErrReadOnly):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (c *controlServer) snapshotList(w http.ResponseWriter, r *http.Request) {
	ss, err := c.o.drive.Snapshots(r.Context())
	if err != nil {
		writeJSON(w, snapshotStatus(err), apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, toJSON(ss))
}

// snapshotWaitNote is how long snapshot create waits before it says
// what it waits for.
const snapshotWaitNote = 3 * time.Second

func (c *controlServer) snapshotCreate(w http.ResponseWriter, r *http.Request) {
	if c.refuseReadOnly(w, "snapshot create (it writes a metadata checkpoint)") {
		return
	}
	name := r.URL.Query().Get("name")
	if name != "" {
		if err := mfs.CheckSnapshotName(name); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"cannot take a snapshot: " + strings.TrimSuffix(err.Error(), "; choose another") +
				"; choose a --name of at most 100 bytes of printable text, with no slash, that is not a time like 2026-01-02T150405Z (nothing was taken)"})
			return
		}
	}
	s, err := c.o.drive.CreateSnapshot(r.Context(), name)
	if errors.Is(err, mfs.ErrExist) {
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("a snapshot named %q already exists; choose another name or delete it first (meshdrive snapshot delete %s)", name, name)})
		return
	}
	if err != nil {
		writeJSON(w, snapshotStatus(err), apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, toJSON([]mfs.Snapshot{s})[0])
}

func (c *controlServer) snapshotDelete(w http.ResponseWriter, r *http.Request) {
	if c.refuseReadOnly(w, "snapshot delete") {
		return
	}
	q := r.URL.Query()
	del, err := c.o.drive.DeleteSnapshots(r.Context(), q["name"], q.Get("all") == "1")
	if errors.Is(err, mfs.ErrNotFound) {
		// Name the first one missing, as the journal found it.
		ss, _ := c.o.drive.Snapshots(r.Context())
		for _, n := range q["name"] {
			if !slices.ContainsFunc(ss, func(s mfs.Snapshot) bool { return s.Name == n }) {
				writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("no snapshot named %q (nothing was deleted); meshdrive snapshot list shows them", n)})
				return
			}
		}
	}
	if err != nil {
		writeJSON(w, snapshotStatus(err), apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, toJSON(del))
}

func runSnapshot(e *env) error {
	fl := newFlagSet(e, "snapshot", "snapshot [--data DIR] create [--name N] | list [--json] | delete NAME... | delete --all | restore SNAPSHOT PATH [--to DEST]", `
Snapshots are metadata checkpoints on the grid, kept by the retention policy
(config "retention"; default: every checkpoint of the last hour, hourly for 48
hours, daily for 30 days, weekly for a year) or by name until deleted. Each is
browsable read-only at MOUNTPOINT/.snapshots/NAME (reachable by path, not
listed in the drive's root). The drive must be mounted.

  create [--name N]       take a snapshot now (ships the metadata first)
  list                    the kept snapshots, oldest first
  delete NAME... | --all  stop keeping snapshots (the newest checkpoint stays)
  restore SNAPSHOT PATH   copy PATH (a file or folder, relative to the drive's
                          root; a leading / is the drive's root too) out of the
                          snapshot, back to PATH when nothing is there now,
                          else to --to DEST. It never changes the snapshot.

--to DEST is a path on this machine, read as cp reads it (relative to the
current directory, or absolute), not relative to the drive: --to /restored is
/restored at the root of this machine. Inside the drive give its mountpoint,
e.g. --to MOUNTPOINT/restored. A DEST that is an existing folder gets the copy
inside it (DEST/NAME). Outside the drive DEST must be an existing folder, so
that a path meant for the drive never lands on this machine by mistake; make
it first (mkdir). restore prints where the files went.`)
	dataDir := dataDirFlag(e, fl)
	name := fl.String("name", "", "create: the snapshot's name (kept until deleted)")
	all := fl.Bool("all", false, "delete: every snapshot but the newest checkpoint")
	to := fl.String("to", "", "restore: where to put the copy: a path on this machine (not relative to the drive); outside the drive an existing folder")
	jsonOut := fl.Bool("json", false, "list: print JSON")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError("snapshot needs a subcommand: create, list, delete or restore; see meshdrive snapshot --help")
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	c := newControlClient(dir)
	ctx, stop := signalContext()
	defer stop()
	switch pos[0] {
	case "list":
		var ss []snapshotJSON
		if err := c.getJSON(ctx, "GET", "/snapshots", &ss); err != nil {
			return err
		}
		if *jsonOut {
			return printJSON(e.stdout, ss)
		}
		if len(ss) == 0 {
			fmt.Fprintln(e.stdout, "no snapshots yet: the first checkpoint reaches the grid within the metadata interval, or run meshdrive snapshot create")
		}
		for _, s := range ss {
			kind := "auto"
			if s.Named {
				kind = "named"
			}
			fmt.Fprintf(e.stdout, "%-32s %-5s %s\n", showName(s.Name), kind, s.Created.Local().Format(time.DateTime))
		}
		return nil
	case "create":
		if len(pos) != 1 {
			return usageError("snapshot create takes no arguments (use --name N)")
		}
		var s snapshotJSON
		// A snapshot is a checkpoint on the grid: everything written
		// goes up first, which waits as long as no node answers.
		waiting := time.AfterFunc(snapshotWaitNote, func() {
			fmt.Fprintln(e.stderr, "meshdrive: waiting until everything written is on the grid (a snapshot is a checkpoint there); meshdrive status shows what waits, Ctrl-C gives up")
		})
		err := c.getJSON(ctx, "POST", "/snapshots?name="+url.QueryEscape(*name), &s)
		waiting.Stop()
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("interrupted (%v) before the snapshot was confirmed; meshdrive snapshot list shows whether it was taken. What was written stays, and goes up to the grid by itself", context.Cause(ctx))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "snapshot %s taken (checkpoint %d)\n", showName(s.Name), s.Seq)
		return nil
	case "delete":
		switch {
		case len(pos) == 1 && !*all:
			return usageError("snapshot delete needs the NAMEs of the snapshots to delete, or --all (snapshot list shows them)")
		case len(pos) > 1 && *all:
			return usageError("snapshot delete takes NAMEs or --all, not both")
		}
		q := url.Values{}
		for _, n := range pos[1:] {
			q.Add("name", n)
		}
		if *all {
			q.Set("all", "1")
		}
		var del []snapshotJSON
		if err := c.getJSON(ctx, "POST", "/snapshots/delete?"+q.Encode(), &del); err != nil {
			return err
		}
		for _, s := range del {
			fmt.Fprintf(e.stdout, "deleted snapshot %s\n", showName(s.Name))
		}
		return nil
	case "restore":
		if len(pos) != 3 {
			return usageError("snapshot restore needs SNAPSHOT PATH; see meshdrive snapshot --help")
		}
		return restoreSnapshot(ctx, e, c, pos[1], pos[2], *to)
	}
	return usageError("unknown snapshot subcommand %q: want create, list, delete or restore", pos[0])
}

// pathInMount is p relative to the mountpoint mp when p is inside it, also
// when p reaches it through a symlink (omlink/work/a with omlink -> om).
// Only the part of p up to the mountpoint is resolved: what follows names
// a file in the drive, which may be a symlink or gone.
func pathInMount(p, mp string) (string, bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", false
	}
	real, err := resolveMountpoint(mp)
	if err != nil {
		real = mp
	}
	var dirs []string // abs's folders, the shortest first
	for d := filepath.Dir(abs); d != "/" && d != "."; d = filepath.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		if d == mp || d == real {
			return abs[len(d)+1:], true
		}
		if r, err := filepath.EvalSymlinks(d); err == nil && r == real {
			return abs[len(d)+1:], true
		}
	}
	return "", false
}

// restoreSnapshot copies PATH out of MOUNT/.snapshots/SNAP.
func restoreSnapshot(ctx context.Context, e *env, c *controlClient, snap, path, to string) error {
	var st statusReport
	if err := c.getJSON(ctx, "GET", "/status", &st); err != nil {
		return err
	}
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	if r, ok := pathInMount(path, st.Mountpoint); ok {
		rel = r // a path inside the mount
	}
	if strings.HasPrefix(rel, ".snapshots") {
		return usageError("PATH is relative to the drive's root and may not be inside .snapshots")
	}
	src := filepath.Join(st.Mountpoint, ".snapshots", snap, rel)
	if _, err := os.Lstat(filepath.Join(st.Mountpoint, ".snapshots", snap)); err != nil {
		return fmt.Errorf("no snapshot %q (meshdrive snapshot list shows the names)", snap)
	}
	if _, err := os.Lstat(src); err != nil {
		return fmt.Errorf("snapshot %s has no %s", showName(snap), showName(rel))
	}
	dst, where, err := restoreDest(st.Mountpoint, rel, to)
	if err != nil {
		return err
	}
	n, skipped, err := copyTree(src, dst)
	if err != nil {
		return fmt.Errorf("restore %s from snapshot %s: %w (%d files copied to %s)", showName(rel), showName(snap), err, n, showName(dst))
	}
	fmt.Fprintf(e.stdout, "restored %s from snapshot %s to %s, %s (%d files)\n", showName(rel), showName(snap), showName(dst), where, n)
	if len(skipped) > 0 {
		more := ""
		if len(skipped) > 10 {
			more = fmt.Sprintf(" and %d more", len(skipped)-10)
			skipped = skipped[:10]
		}
		fmt.Fprintf(e.stdout, "not restored (a socket is made by the program that listens on it, a device only by root): %s%s\n",
			strings.Join(quoteAll(rel, skipped), ", "), more)
	}
	return nil
}

// restoreDest is where restore copies rel of the drive mounted at mp, and
// a few words saying whether that is in the drive: MP/rel with no --to;
// else to, a path on this machine (relative to the current directory),
// or to/BASE(rel) when to is an existing folder. Outside the drive, to
// must be an existing folder: --to /restored, meant as the drive's
// /restored, would otherwise land at the root of this machine.
func restoreDest(mp, rel, to string) (dst, where string, err error) {
	if to == "" {
		dst = filepath.Join(mp, rel)
		if _, err := os.Lstat(dst); err == nil {
			return "", "", fmt.Errorf("%s exists now; restore elsewhere with --to DEST (nothing was changed)", showName(dst))
		}
		return dst, "in the drive", nil
	}
	dst, err = filepath.Abs(to)
	if err != nil {
		return "", "", fmt.Errorf("--to %s: %w", to, err)
	}
	fi, statErr := os.Stat(dst)
	isDir := statErr == nil && fi.IsDir()
	if isDir {
		base := filepath.Base(rel)
		if rel == "" {
			base = "drive"
		}
		dst = filepath.Join(dst, base)
	}
	_, inDrive := pathInMount(dst, mp)
	where = "in the drive"
	if !inDrive {
		where = "on this machine, outside the drive"
	}
	switch {
	case !inDrive && !isDir:
		return "", "", usageError("--to %s is not in the drive (mounted at %s) and is not an existing folder on this machine; nothing was changed. "+
			"--to is a path on this machine, not relative to the drive: to restore into the drive give --to %s; "+
			"to restore out of it, make the folder first (mkdir %s) and the copy goes inside it",
			to, mp, filepath.Join(mp, strings.TrimPrefix(filepath.Clean("/"+to), "/")), to)
	case statErr == nil && !isDir:
		return "", "", fmt.Errorf("%s exists; choose a --to that does not, or an existing folder to restore into (nothing was changed)", showName(dst))
	}
	if _, err := os.Lstat(dst); err == nil {
		return "", "", fmt.Errorf("%s exists; choose another --to (nothing was changed)", showName(dst))
	}
	return dst, where, nil
}

// quoteAll quotes each of names, paths relative to dir: in double quotes
// when printable, else as showName quotes it.
func quoteAll(dir string, names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		p := filepath.Join(dir, n)
		q[i] = showName(p)
		if plainName(p) {
			q[i] = fmt.Sprintf("%q", p)
		}
	}
	return q
}

// copyTree copies src to dst (which must not exist): folders, files
// (their holes kept), symlinks, fifos and, for root, devices, with modes,
// times and user xattrs; names of one file in src stay names of one
// file. It returns the files, fifos and devices copied and what it could
// not make (sockets, and devices when not root), relative to src.
func copyTree(src, dst string) (n int, skipped []string, err error) {
	copied := map[uint64]string{} // inode in src -> its first copy, for files with more names
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(out, 0o700); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(t, out); err != nil {
				return err
			}
			// Its owner and time, not its target's (a symlink has
			// no mode of its own, and no user xattrs).
			if s, ok := fi.Sys().(*syscall.Stat_t); ok {
				os.Lchown(out, int(s.Uid), int(s.Gid))
			}
			mt := unix.NsecToTimespec(fi.ModTime().UnixNano())
			return unix.UtimesNanoAt(unix.AT_FDCWD, out, []unix.Timespec{mt, mt}, unix.AT_SYMLINK_NOFOLLOW)
		case fi.Mode().IsRegular():
			s, ok := fi.Sys().(*syscall.Stat_t)
			if ok && s.Nlink > 1 {
				if first, seen := copied[s.Ino]; seen {
					n++
					return os.Link(first, out) // its attributes came with the first
				}
				copied[s.Ino] = out
			}
			if err := copyFile(p, out); err != nil {
				return err
			}
			n++
		case fi.Mode()&(fs.ModeNamedPipe|fs.ModeDevice) != 0:
			s, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				skipped = append(skipped, rel)
				return nil
			}
			if err := unix.Mknod(out, s.Mode, int(s.Rdev)); err != nil {
				if errors.Is(err, unix.EPERM) {
					skipped = append(skipped, rel) // a device, not root
					return nil
				}
				return err
			}
			n++
		default:
			skipped = append(skipped, rel) // a socket
			return nil
		}
		copyXattrs(p, out)
		// The owner before the mode: chown clears set-user-ID and
		// set-group-ID (root's too), chmod then sets them.
		if s, ok := fi.Sys().(*syscall.Stat_t); ok {
			os.Lchown(out, int(s.Uid), int(s.Gid))
		}
		if err := os.Chmod(out, fi.Mode().Perm()|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		return os.Chtimes(out, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		return n, skipped, err
	}
	// Folders' times again: copying into them moved their mtimes.
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, err := os.Lstat(p); err == nil {
				rel, _ := filepath.Rel(src, p)
				os.Chtimes(filepath.Join(dst, rel), fi.ModTime(), fi.ModTime())
			}
		}
		return nil
	})
	return n, skipped, nil
}

// copyFile copies src to a new file dst, holes kept: it reads only the
// data regions src reports (SEEK_DATA/SEEK_HOLE: a sparse file's holes
// are skipped, not read through the drive as zeros), and leaves a hole
// in dst wherever a data region reads as a whole page of zeros too.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := copyData(in, out, fi.Size()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyData copies the first size bytes of in to out (empty), region by
// data region, and gives out that size (a hole at the end stays one). A
// file shorter than size by now ends out where it ends.
func copyData(in, out *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		d, h, err := dataRegion(in, off, size)
		if err != nil {
			return err
		}
		for off = d; off < h; {
			n, err := in.ReadAt(buf[:min(int64(len(buf)), h-off)], off)
			if n > 0 {
				if err := writeSparse(out, buf[:n], off); err != nil {
					return err
				}
				off += int64(n)
			}
			if errors.Is(err, io.EOF) {
				size = off
				break
			}
			if err != nil {
				return err
			}
		}
	}
	return out.Truncate(size)
}

// dataRegion returns [d, h), the first data region of f at or after off,
// cut at size; d is size when only a hole follows. A file system without
// SEEK_DATA (EINVAL, EOPNOTSUPP) has one region, the whole file.
func dataRegion(f *os.File, off, size int64) (d, h int64, err error) {
	fd := int(f.Fd())
	d, err = seekRetry(fd, off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		return size, size, nil
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP):
		return off, size, nil
	case err != nil:
		return 0, 0, fmt.Errorf("finding the data of %s (lseek SEEK_DATA at %d): %w", f.Name(), off, err)
	}
	h, err = seekRetry(fd, d, unix.SEEK_HOLE)
	if err != nil {
		return 0, 0, fmt.Errorf("finding the data of %s (lseek SEEK_HOLE at %d): %w", f.Name(), d, err)
	}
	if d >= size || h <= d || h > size {
		h = size // grown since, or an answer that makes no progress: read to the end
	}
	return min(d, size), h, nil
}

// seekRetry is lseek(2), again when a signal interrupted it.
func seekRetry(fd int, off int64, whence int) (int64, error) {
	for {
		o, err := unix.Seek(fd, off, whence)
		if !errors.Is(err, unix.EINTR) {
			return o, err
		}
	}
}

const sparsePage = 4096

var zeroPage [sparsePage]byte

// writeSparse writes p at off in f, skipping its pages of zeros.
func writeSparse(f *os.File, p []byte, off int64) error {
	zero := func(i int) bool {
		return bytes.Equal(p[i:min(i+sparsePage, len(p))], zeroPage[:min(sparsePage, len(p)-i)])
	}
	for i := 0; i < len(p); {
		for i < len(p) && zero(i) {
			i += sparsePage
		}
		j := i
		for j < len(p) && !zero(j) {
			j += sparsePage
		}
		i, j = min(i, len(p)), min(j, len(p))
		if j > i {
			if _, err := f.WriteAt(p[i:j], off+int64(i)); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

func copyXattrs(src, dst string) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(src, buf)
	if err != nil || n <= 0 {
		return
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") || name == "user.meshdrive.status" {
			continue
		}
		val := make([]byte, 64<<10)
		if m, err := unix.Lgetxattr(src, name, val); err == nil {
			unix.Lsetxattr(dst, name, val[:m], 0)
		}
	}
}
