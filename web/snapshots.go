package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/href"
)

func (s *Server) snapshots(w http.ResponseWriter, r *http.Request) {
	ss, err := s.o.Drive.Snapshots(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "snapshots", "cannot list snapshots: "+err.Error()+
			"; snapshots are read from the grid: check the nodes (meshdrive status, or the Nodes page) and try again")
		return
	}
	if ss == nil {
		ss = []Snapshot{}
	}
	writeJSON(w, http.StatusOK, ss)
}

func (s *Server) snapshotCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if r.ContentLength != 0 && !decodeBody(w, r, &req) {
		return
	}
	// CheckSnapshotName refuses what validName does (., .., a slash, NUL,
	// a long name), and names that are not printable UTF-8, each with
	// its own reason.
	if req.Name != "" {
		if err := journal.CheckSnapshotName(req.Name); err != nil {
			writeError(w, http.StatusBadRequest, "bad_name", "cannot take a snapshot: "+strings.TrimSuffix(err.Error(), "; choose another")+
				"; choose a name of at most 100 bytes of printable text, with no slash, that is not a time like 2026-01-02T150405Z")
			return
		}
	}
	sn, err := s.o.Drive.CreateSnapshot(r.Context(), req.Name)
	switch {
	case errors.Is(err, journal.ErrReadOnly):
		writeError(w, http.StatusForbidden, "read_only", "cannot take a snapshot: the drive is mounted read-only; remount it read-write")
	case errors.Is(err, journal.ErrExist):
		writeError(w, http.StatusConflict, "exists", fmt.Sprintf("cannot take a snapshot: one is named %q already; choose another name", req.Name))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "snapshot", "cannot take a snapshot: "+err.Error()+
			"; a snapshot is taken once the drive's metadata is on the grid: check the nodes (meshdrive status, or the Nodes page) and try again")
	}
	if err != nil {
		return
	}
	writeJSON(w, http.StatusCreated, sn)
}

// restoreRequest is POST /api/v1/restore's body. Path and To are given
// as text, or as PathHref and ToHref: %-encoded from their bytes
// (bodyPath).
type restoreRequest struct {
	Snapshot string `json:"snapshot"`
	Path     string `json:"path"`
	PathHref string `json:"path_href,omitempty"`
	// To is where the copy goes; "" puts it back at Path when nothing is
	// there now, else beside it as "NAME (restored SNAPSHOT)".
	To     string `json:"to,omitempty"`
	ToHref string `json:"to_href,omitempty"`
}

// restoreResult is POST /api/v1/restore's answer. Each *Href is its
// path %-encoded from its bytes, there only when that path is not UTF-8.
type restoreResult struct {
	Snapshot string `json:"snapshot"`
	Path     string `json:"path"`
	PathHref string `json:"path_href,omitempty"`
	To       string `json:"to"`
	ToHref   string `json:"to_href,omitempty"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	// Skipped: the sockets and devices under path, which a restore does
	// not make (paths in the snapshot, at most maxSkipped).
	Skipped     []string `json:"skipped,omitempty"`
	SkippedHref []string `json:"skipped_href,omitempty"`
	// copies: a file with more names (inode in the snapshot) -> its
	// first copy, which the next names are linked to.
	copies map[uint64]string
}

// maxSkipped bounds restoreResult.Skipped.
const maxSkipped = 100

// restore copies a file or folder out of a snapshot into the drive. It
// never overwrites: the copy goes where nothing is.
func (s *fileOps) restore(w http.ResponseWriter, r *http.Request) {
	var req restoreRequest
	if !decodeBody(w, r, &req) {
		return
	}
	rel, err := bodyPath("path", req.Path, req.PathHref)
	if err != nil || !validName(req.Snapshot) {
		fsError(w, "restore", cmp.Or(err, errBadPath))
		return
	}
	src := path.Join(snapshotsDir, req.Snapshot, rel)
	if s.noSnapshot(w, req.Snapshot) {
		return
	}
	fi, err := s.root.Lstat(src)
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("snapshot %s has no /%s; list the snapshot to see what it holds", req.Snapshot, rel))
		return
	}
	if fi.Mode()&(os.ModeSocket|os.ModeDevice) != 0 {
		writeError(w, http.StatusConflict, "not_regular", fmt.Sprintf("restore /%s: it is a socket or device, which a restore does not make (the program that listens makes a socket; root makes a device with mknod); nothing was restored", rel))
		return
	}
	var to string
	toGiven := req.To != "" || req.ToHref != ""
	switch {
	case toGiven:
		if to, err = bodyPath("to", req.To, req.ToHref); err != nil || to == "" {
			fsError(w, "restore", cmp.Or(err, errBadPath))
			return
		}
		if _, err := s.root.Lstat(to); err == nil {
			writeError(w, http.StatusConflict, "exists", "restore: /"+to+" exists; choose a destination that does not (nothing was changed)")
			return
		}
	case rel == "":
		to = "Restored " + req.Snapshot
	default:
		to = rel
	}
	// The names tried when no "to" was given: the path itself, then
	// "P (restored S)", "P (restored S, 2)", ...
	base, i := to, 0
	name := func(i int) string {
		switch i {
		case 0:
			return base
		case 1:
			return withSuffix(base, fmt.Sprintf(" (restored %s)", req.Snapshot))
		}
		return withSuffix(base, fmt.Sprintf(" (restored %s, %d)", req.Snapshot, i))
	}
	// free sets to to the first name from name(i) on that nothing has;
	// false: answered.
	free := func() bool {
		for ; i <= 101; i++ {
			to = name(i)
			if _, err := s.root.Lstat(to); errors.Is(err, iofs.ErrNotExist) {
				return true
			} else if err != nil {
				fsError(w, "restore /"+rel+" from "+req.Snapshot+" to /"+to, err)
				return false
			}
		}
		writeError(w, http.StatusConflict, "exists", "restore: too many restored copies already; choose a destination with \"to\"")
		return false
	}
	if !toGiven && !free() {
		return
	}
	// Copied under a hidden name and renamed when whole: a restore cut
	// short (the client gone, a read of the grid failing) leaves no
	// partial copy under the name a retry would avoid.
	res := restoreResult{Snapshot: req.Snapshot, Path: "/" + rel, To: "/" + to}
	tmp, release := s.tempBeside(to)
	defer release()
	err = s.copyTree(r.Context(), src, tmp, &res)
	for err == nil {
		// Never over what is there: the name may have been taken while
		// the copy was made (another restore of the same path, a file
		// written meanwhile). Then the next free name, unless "to" was
		// given.
		err = s.renameNoReplace(tmp, to)
		if !errors.Is(err, iofs.ErrExist) || toGiven {
			break
		}
		if i++; !free() {
			s.root.RemoveAll(tmp)
			return
		}
		res.To, err = "/"+to, nil
	}
	if err != nil {
		s.root.RemoveAll(tmp)
		fsError(w, fmt.Sprintf("restore /%s from %s to /%s: nothing was restored", rel, req.Snapshot, to), err)
		return
	}
	res.PathHref, res.ToHref, res.SkippedHref = href.IfNotUTF8(res.Path), href.IfNotUTF8(res.To), href.List(res.Skipped)
	writeJSON(w, http.StatusOK, res)
}

// copyTree copies src to dst (which does not exist) inside the root:
// folders, files, symlinks and fifos, with modes, times and user xattrs;
// names of one file in src stay names of one file.
func (s *fileOps) copyTree(ctx context.Context, src, dst string, res *restoreResult) error {
	fi, err := s.root.Lstat(src)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.restoring != nil && s.restoring.ended.Load() {
		return errRestoreEnded
	}
	switch {
	case fi.IsDir():
		if err := s.root.Mkdir(dst, fi.Mode().Perm()|0o700); err != nil {
			return err
		}
		d, err := openDir(s.root, src)
		if err != nil {
			return err
		}
		if out, err := openDir(s.root, dst); err == nil {
			copyUserXattrs(d, out)
			out.Close()
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := s.copyTree(ctx, path.Join(src, n), path.Join(dst, n), res); err != nil {
				return err
			}
		}
		s.root.Chmod(dst, fi.Mode().Perm())
	case fi.Mode()&os.ModeSymlink != 0:
		t, err := s.root.Readlink(src)
		if err != nil {
			return err
		}
		return s.root.Symlink(t, dst)
	case fi.Mode()&os.ModeNamedPipe != 0:
		if err := s.mkfifo(dst, fi.Mode().Perm()); err != nil {
			return err
		}
		res.Files++
	case fi.Mode().IsRegular():
		in, err := s.root.OpenFile(src, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		defer in.Close()
		if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
			return nil // replaced meanwhile by what is not a file
		}
		if err := setBlocking(in); err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if first, seen := res.copies[st.Ino]; seen {
				res.Files++
				return s.root.Link(first, dst) // one file, its times came with the first
			}
			if res.copies == nil {
				res.copies = map[uint64]string{}
			}
			res.copies[st.Ino] = dst
		}
		out, err := s.root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
		if err != nil {
			return err
		}
		n, err := s.copyFile(out, in)
		if err == nil {
			copyUserXattrs(in, out)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		res.Files++
		res.Bytes += n
	default: // sockets and devices are not made, but named
		if len(res.Skipped) < maxSkipped {
			_, inSnap, _ := strings.Cut(strings.TrimPrefix(src, snapshotsDir+"/"), "/")
			res.Skipped = append(res.Skipped, "/"+inSnap)
		}
		return nil
	}
	return s.root.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// mkfifo makes the fifo name inside the root, in its folder opened
// through the root (so no symlink takes it out).
func (s *fileOps) mkfifo(name string, perm os.FileMode) error {
	d, err := openDir(s.root, path.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Mknodat(int(d.Fd()), path.Base(name), unix.S_IFIFO|uint32(perm), 0); err != nil {
		return &os.PathError{Op: "mkfifo", Path: name, Err: err}
	}
	return s.root.Chmod(name, perm) // the umask took bits off
}

// restoreChunk is how much of a file a restore copies between looks at
// whether an unmount ended it (a variable for tests).
var restoreChunk int64 = 8 << 20

// restoreChunkHook, when set (tests), runs after each chunk a restore
// copies.
var restoreChunkHook func()

// copyFile copies in to out in chunks (each as io.Copy would: the kernel
// may copy it without reading it out) until EOF, or until an unmount
// ends the restore.
func (s *fileOps) copyFile(out, in *os.File) (int64, error) {
	var total int64
	for {
		if s.restoring != nil && s.restoring.ended.Load() {
			return total, errRestoreEnded
		}
		n, err := io.CopyN(out, in, restoreChunk)
		total += n
		if restoreChunkHook != nil {
			restoreChunkHook()
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// withSuffix is rel with suffix added to its last name, which is cut
// short first (on a character boundary) when the two together would be
// longer than a name may be: a copy beside a file with a long name gets
// a name the drive takes.
func withSuffix(rel, suffix string) string {
	dir, name := path.Split(rel)
	for name != "" && len(name)+len(suffix) > maxName {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	return dir + name + suffix
}
