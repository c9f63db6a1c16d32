package web

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/journal/href"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// target decodes the path and the optional ?snapshot=NAME into a path
// inside the root: rel in the drive, or .snapshots/NAME/rel.
func (s *Server) target(r *http.Request, escaped string) (rel, inRoot, snap string, err error) {
	if rel, err = DecodePath(escaped); err != nil {
		return "", "", "", err
	}
	snap = r.URL.Query().Get("snapshot")
	if snap == "" {
		return rel, orDot(rel), "", nil
	}
	if !validName(snap) {
		return "", "", "", errBadPath
	}
	return rel, path.Join(snapshotsDir, snap, rel), snap, nil
}

// noSnapshot answers 404 no_snapshot when snap names a snapshot the drive
// does not have, or the error that kept it from being opened ("" is the
// drive itself: false).
func (s *fileOps) noSnapshot(w http.ResponseWriter, snap string) bool {
	if snap == "" {
		return false
	}
	_, err := s.root.Lstat(path.Join(snapshotsDir, snap))
	if err == nil {
		return false
	}
	if !errors.Is(err, iofs.ErrNotExist) {
		// It is there but could not be opened: its metadata is on the
		// grid, and no node answered (EIO: 502 io, try again).
		fsError(w, fmt.Sprintf("open snapshot %q", snap), err)
		return true
	}
	if _, err := s.root.Lstat(snapshotsDir); err != nil {
		// No .snapshots at all: a read-only mount serves none, though
		// GET /snapshots lists them.
		writeError(w, http.StatusForbidden, "read_only", fmt.Sprintf("snapshot %q cannot be opened: this mount serves no snapshots (a read-only mount does not); mount the drive read-write to browse or restore them", snap))
		return true
	}
	writeError(w, http.StatusNotFound, "no_snapshot", fmt.Sprintf("no snapshot %q; GET %ssnapshots lists them", snap, apiPrefix))
	return true
}

func orDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

func typeOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m.IsRegular():
		return "file"
	case m&os.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}

// uploadTempPrefix starts the temporary name an upload or restore writes
// before its rename (tempBeside): the prefix, 12 lowercase hex digits,
// then nothing or "-" and the target's name.
const uploadTempPrefix = ".meshdrive-upload-"

// isUploadTemp: name is one tempBeside made. Only that exact shape: a
// person's own ".meshdrive-upload-notes.txt" is neither hidden from
// listings nor swept away as a leftover.
func isUploadTemp(name string) bool {
	id, ok := strings.CutPrefix(name, uploadTempPrefix)
	if !ok || len(id) < 12 || (len(id) > 12 && id[12] != '-') {
		return false
	}
	for _, c := range id[:12] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *fileOps) entry(ctx context.Context, rel, inRoot, name string, fi os.FileInfo, withState bool) Entry {
	e := Entry{Name: name, Path: rel, Href: href.Escape(rel), Type: typeOf(fi.Mode()), Size: fi.Size(), MTime: fi.ModTime()}
	if e.Type == "dir" {
		e.Size = 0
	}
	if e.Type == "symlink" {
		e.Target, _ = s.root.Readlink(inRoot)
		e.TargetHref = href.IfNotUTF8(e.Target)
	}
	if withState && (e.Type == "file" || e.Type == "dir") {
		// A folder's state walks its tree: the budget of a listing's.
		ctx, cancel := context.WithTimeout(ctx, statesBudget)
		defer cancel()
		err := safely(s.log, "the state of /"+rel, func() error {
			st, err := s.o.Drive.Status(ctx, rel)
			if err == nil {
				e.State, e.Cached, e.PendingBytes = st.State, st.Cached, st.PendingBytes
			}
			return err
		})
		e.StatePartial = err != nil && (ctx.Err() != nil || errors.Is(err, errPanic))
		if p, ok := s.o.Drive.(Pinner); ok {
			if pinned, err := p.Pinned(ctx, rel); err == nil {
				e.Pinned = &pinned
			}
		}
	}
	return e
}

func (s *fileOps) list(w http.ResponseWriter, r *http.Request, escaped string) {
	rel, inRoot, snap, err := s.target(r, escaped)
	if err != nil {
		fsError(w, "list", err)
		return
	}
	if s.noSnapshot(w, snap) {
		return
	}
	d, err := openDir(s.root, inRoot)
	if errors.Is(err, syscall.ENOTDIR) {
		if fi, lerr := s.root.Lstat(inRoot); lerr == nil && !fi.IsDir() {
			writeError(w, http.StatusConflict, "not_dir", "list /"+rel+": it is a file, not a folder; download it with "+apiPrefix+"files/PATH")
			return
		}
	}
	if err != nil {
		fsError(w, "list /"+rel, err)
		return
	}
	defer d.Close()
	ents, err := d.ReadDir(maxList + 1)
	if err != nil && err != io.EOF {
		fsError(w, "list /"+rel, err)
		return
	}
	out := Listing{Path: "/" + rel, PathHref: href.IfNotUTF8("/" + rel), Snapshot: snap, Entries: []Entry{}}
	if len(ents) > maxList {
		ents, out.Truncated = ents[:maxList], true
	}
	sort.Slice(ents, func(i, j int) bool {
		if ents[i].IsDir() != ents[j].IsDir() {
			return ents[i].IsDir()
		}
		return strings.ToLower(ents[i].Name()) < strings.ToLower(ents[j].Name())
	})
	var files []int // entries that get a state
	for _, de := range ents {
		if isUploadTemp(de.Name()) {
			if fi, err := de.Info(); err == nil && snap == "" {
				s.sweepLeftover(path.Join(rel, de.Name()), fi)
			}
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		crel := path.Join(rel, de.Name())
		if snap == "" && fi.Mode().IsRegular() {
			files = append(files, len(out.Entries))
		}
		out.Entries = append(out.Entries, s.entry(r.Context(), crel, path.Join(inRoot, de.Name()), de.Name(), fi, false))
	}
	out.StatesPartial = s.fillStates(r.Context(), out.Entries, files)
	writeJSON(w, http.StatusOK, out)
}

// fillStates asks the drive for the state of the entries at idx, a few at
// a time, for at most maxStates files and statesBudget; it reports whether
// some were left without one.
func (s *Server) fillStates(ctx context.Context, ents []Entry, idx []int) (partial bool) {
	if len(idx) > maxStates {
		idx, partial = idx[:maxStates], true
	}
	ctx, cancel := context.WithTimeout(ctx, statesBudget)
	defer cancel()
	pinner, _ := s.o.Drive.(Pinner)
	var g errgroup.Group
	g.SetLimit(statesParallel)
	var mu sync.Mutex // guards partial
	for _, i := range idx {
		g.Go(func() error {
			e := &ents[i] // each goroutine owns its entry
			err := safely(s.log, "the state of /"+e.Path, func() error {
				st, err := s.o.Drive.Status(ctx, e.Path)
				if err != nil {
					return err
				}
				e.State, e.Cached, e.PendingBytes = st.State, st.Cached, st.PendingBytes
				if pinner != nil {
					if pinned, err := pinner.Pinned(ctx, e.Path); err == nil {
						e.Pinned = &pinned
					}
				}
				return nil
			})
			if err != nil && (ctx.Err() != nil || errors.Is(err, errPanic)) {
				mu.Lock()
				partial = true
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	return partial
}

func (s *fileOps) stat(w http.ResponseWriter, r *http.Request, escaped string) {
	rel, inRoot, snap, err := s.target(r, escaped)
	if err != nil {
		fsError(w, "stat", err)
		return
	}
	fi, err := s.root.Lstat(inRoot)
	if errors.Is(err, iofs.ErrNotExist) && s.noSnapshot(w, snap) {
		return
	}
	if err != nil {
		fsError(w, "stat /"+rel, err)
		return
	}
	name := path.Base("/" + rel)
	writeJSON(w, http.StatusOK, s.entry(r.Context(), rel, inRoot, name, fi, snap == ""))
}

func (s *fileOps) download(w http.ResponseWriter, r *http.Request, escaped string) {
	rel, inRoot, snap, err := s.target(r, escaped)
	if err != nil {
		fsError(w, "download", err)
		return
	}
	f, err := s.root.OpenFile(inRoot, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, iofs.ErrNotExist) && s.noSnapshot(w, snap) {
		return
	}
	if err != nil {
		fsError(w, "download /"+rel, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fsError(w, "download /"+rel, err)
		return
	}
	if fi.IsDir() {
		writeError(w, http.StatusConflict, "is_dir", "download /"+rel+": it is a folder; list it with "+apiPrefix+"list/PATH")
		return
	}
	if !fi.Mode().IsRegular() {
		writeError(w, http.StatusConflict, "not_regular", "download /"+rel+": it is not a regular file (a FIFO, socket or device) and has no content to download")
		return
	}
	if err := setBlocking(f); err != nil {
		fsError(w, "download /"+rel, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", attachment(path.Base("/"+rel)))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-cache")
	// The status waits for the first byte of body: a first read that
	// fails (the block not cached and the grid not answering) is answered
	// with its error (502 io) instead of a 200 whose body ends at once.
	hw := &heldWriter{ResponseWriter: w}
	content := &fileReadErr{File: f, run: s.downloading}
	http.ServeContent(&rangeErrorWriter{ResponseWriter: hw, rel: rel, size: fi.Size()}, r, "", fi.ModTime(), content)
	if !hw.sent && content.err != nil {
		for _, k := range []string{"Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified", "Content-Encoding"} {
			h.Del(k)
		}
		hw.sent = true
		fsError(w, "download /"+rel, content.err)
		return
	}
	hw.send()
}

// attachment is the Content-Disposition of a download of the file named
// name. filename= is for every client, in plain ASCII: each other
// character, each byte that is not UTF-8 and each control character is
// "_". filename* (RFC 6266, RFC 5987) gives the name itself, %-encoded,
// when it is UTF-8 with a character beyond ASCII. A name that is not UTF-8
// (Latin-1, as old archives have them) has no filename*: its bytes are
// not the UTF-8 that filename* says they are, and nothing tells their
// charset; the browser saves the file as filename= names it.
func attachment(name string) string {
	var ascii, ext strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f {
			r = '_'
		}
		ascii.WriteRune(r)
	}
	d := mime.FormatMediaType("attachment", map[string]string{"filename": ascii.String()})
	if !utf8.ValidString(name) || !strings.ContainsFunc(name, func(r rune) bool { return r >= 0x80 }) {
		return d
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			ext.WriteByte(c)
		} else {
			fmt.Fprintf(&ext, "%%%02X", c)
		}
	}
	return d + "; filename*=UTF-8''" + ext.String()
}

// heldWriter holds back the status until the first Write (or send): until
// then the answer can still become an error.
type heldWriter struct {
	http.ResponseWriter
	code int  // the status held back; 0 when none was set
	sent bool // the status went out
}

func (w *heldWriter) WriteHeader(code int) {
	if w.sent {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.code = code
}

func (w *heldWriter) Write(p []byte) (int, error) {
	w.send()
	return w.ResponseWriter.Write(p)
}

// send sends the status held back, if it was not sent yet.
func (w *heldWriter) send() {
	if w.sent {
		return
	}
	w.sent = true
	if w.code != 0 {
		w.ResponseWriter.WriteHeader(w.code)
	}
}

func (w *heldWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// fileReadErr is a file that remembers its first read error (EOF is not
// one). Its reads fail once run is ended (an unmount).
type fileReadErr struct {
	*os.File
	run *downloadRun // nil: never ended
	err error
}

func (f *fileReadErr) Read(p []byte) (int, error) {
	if f.run != nil && f.run.ended.Load() {
		if f.err == nil {
			f.err = errDownloadEnded
		}
		return 0, errDownloadEnded
	}
	n, err := f.File.Read(p)
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
	}
	return n, err
}

// rangeErrorWriter turns ServeContent's 416 (a plain-text line) into the
// API's JSON error; every other answer passes through.
type rangeErrorWriter struct {
	http.ResponseWriter
	rel      string
	size     int64
	replaced bool // the 416 was answered in JSON; ServeContent's text is dropped
}

func (w *rangeErrorWriter) WriteHeader(code int) {
	if code != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	writeError(w.ResponseWriter, code, "bad_range", fmt.Sprintf("download /%s: the Range asks for bytes outside the file, which has %d; ask for bytes 0 to %d, or no Range for all of it",
		w.rel, w.size, max(w.size-1, 0)))
}

func (w *rangeErrorWriter) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *rangeErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// openDir opens a folder. O_NONBLOCK and O_DIRECTORY: a FIFO's open
// would wait for a writer, holding the request and the mount busy.
func openDir(root *os.Root, name string) (*os.File, error) {
	return root.OpenFile(name, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
}

// setBlocking clears O_NONBLOCK on a regular file opened with it (the
// poller does not take regular files, so reads are plain blocking calls).
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}

// renameNoReplace renames from to to, failing with EEXIST when to exists:
// renameat2(RENAME_NOREPLACE) on the two folders opened in the root, so
// nothing can appear at to between a check and the rename (the mount's
// Rename takes the flag). A file system that refuses the flag (EINVAL)
// gets a check, then rename(2): best effort there.
func (s *fileOps) renameNoReplace(from, to string) error {
	fd, err := openDir(s.root, orDot(path.Dir(from)))
	if err != nil {
		return err
	}
	defer fd.Close()
	td, err := openDir(s.root, orDot(path.Dir(to)))
	if err != nil {
		return err
	}
	defer td.Close()
	err = unix.Renameat2(int(fd.Fd()), path.Base(from), int(td.Fd()), path.Base(to), unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if err != unix.EINVAL {
		return &os.LinkError{Op: "renameat2", Old: from, New: to, Err: err}
	}
	if _, err := s.root.Lstat(from); err != nil {
		return err
	}
	if _, err := s.root.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: unix.EEXIST}
	}
	return s.root.Rename(from, to)
}

// free is the room the drive reports for new data (its journal's quota).
func (s *Server) free() (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.o.Mountpoint, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}

// tempBeside is a new hidden name in rel's folder (isUploadTemp) for
// what becomes rel once it is whole. It is this server's until the
// returned release is called (after the rename, or the removal).
func (s *Server) tempBeside(rel string) (tmp string, release func()) {
	dir, name := path.Split(rel)
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp = path.Join(dir, uploadTempPrefix+hex.EncodeToString(rnd[:])+"-"+name)
	if len(path.Base(tmp)) > 255 {
		tmp = path.Join(dir, uploadTempPrefix+hex.EncodeToString(rnd[:]))
	}
	s.tmpMu.Lock()
	s.tmps[tmp] = true
	s.tmpMu.Unlock()
	return tmp, func() {
		s.tmpMu.Lock()
		delete(s.tmps, tmp)
		s.tmpMu.Unlock()
	}
}

// sweepLeftover removes the hidden name rel (isUploadTemp), met in a
// listing, when an upload or restore of an earlier run left it: a mount
// killed mid-upload leaves one that nothing lists, and it would hold its
// space for ever. One this server is writing now, or that changed since
// it started, is left alone.
func (s *fileOps) sweepLeftover(rel string, fi os.FileInfo) {
	s.tmpMu.Lock()
	ours := s.tmps[rel]
	s.tmpMu.Unlock()
	// A second's margin: the file system's clock ticks coarser than
	// time.Now, so a file written just after the start can carry a time
	// just before it.
	if ours || !fi.ModTime().Before(s.started.Add(-time.Second)) {
		return
	}
	if err := s.root.RemoveAll(rel); err != nil {
		s.log.Warn("web: cannot remove what an interrupted upload left", "path", "/"+rel, "err", err)
		return
	}
	s.log.Info("web: removed what an interrupted upload or restore left", "path", "/"+rel)
}

// readErr remembers the error of the reads from r: a body cut short
// (a connection reset) is the client's, not the drive's.
type readErr struct {
	r   io.Reader
	err error
}

func (b *readErr) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// carryOver gives f, the new content of rel, the permission bits and
// user xattrs of the file it replaces, as an editor's save keeps them: a
// pin (fs.PinXattr), a private mode, a tag survive an upload over the
// file. Nothing when rel is not a regular file yet. Best effort: a
// failure leaves f as created (0644, no xattrs), as before.
func carryOver(root *os.Root, rel string, f *os.File) {
	// Not a symlink's target (the rename replaces the link), and never
	// blocking in open on a FIFO of that name.
	if fi, err := root.Lstat(rel); err != nil || !fi.Mode().IsRegular() {
		return
	}
	old, err := root.OpenFile(rel, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer old.Close()
	fi, err := old.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	f.Chmod(fi.Mode().Perm())
	copyUserXattrs(old, f)
}

// copyUserXattrs gives to the user xattrs of from (a tag, a comment, a
// pin; not the drive's status), best effort.
func copyUserXattrs(from, to *os.File) {
	buf := make([]byte, 64<<10)
	n, err := unix.Flistxattr(int(from.Fd()), buf)
	if err != nil {
		return
	}
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") || name == fs.StatusXattr {
			continue
		}
		v := make([]byte, 64<<10)
		if vn, err := unix.Fgetxattr(int(from.Fd()), name, v); err == nil {
			unix.Fsetxattr(int(to.Fd()), name, v[:vn], 0)
		}
	}
}

// upload writes the body to a temporary file beside the target and
// renames it over the target once complete: readers see the old file or
// the whole new one.
func (s *fileOps) upload(w http.ResponseWriter, r *http.Request, escaped string) {
	rel, _, snap, err := s.target(r, escaped)
	if err != nil {
		fsError(w, "upload", err)
		return
	}
	if snap != "" {
		writeError(w, http.StatusForbidden, "read_only", "snapshots are read-only; upload into the drive instead")
		return
	}
	if rel == "" {
		writeError(w, http.StatusConflict, "is_dir", "upload: the path is the drive's root folder; name the file, like "+apiPrefix+"files/notes.txt")
		return
	}
	if r.ContentLength > s.o.MaxUpload {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("upload /%s: %d bytes is more than the %d this server takes in one upload (meshdrive mount --web-max-upload); copy large files into the mounted folder instead", rel, r.ContentLength, s.o.MaxUpload))
		return
	}
	if free, ok := s.free(); ok && r.ContentLength > free {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("upload /%s: %d bytes do not fit: the drive has room for %d more now; wait for uploads to the grid to free the journal, or raise its quota", rel, r.ContentLength, free))
		return
	}
	if fi, err := s.root.Lstat(rel); err == nil && fi.IsDir() {
		writeError(w, http.StatusConflict, "is_dir", "upload /"+rel+": a folder has that name; choose another name")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "multipart",
			"upload /"+rel+": the body is a form (multipart/form-data), which would be stored as the file; send the file's bytes as the body instead (curl -T FILE URL)")
		return
	}
	if r.Header.Get("Content-Range") != "" {
		// A part of a file (a resumed upload): stored as the whole file it
		// would cut the file short (RFC 9110 14.5: refuse it).
		writeError(w, http.StatusBadRequest, "invalid",
			"upload /"+rel+": the request has a Content-Range: a PUT here replaces the whole file, and would store the part as all of it; nothing was changed; send the whole file without Content-Range")
		return
	}
	tmp, release := s.tempBeside(rel)
	defer release()
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		fsError(w, "upload /"+rel, err)
		return
	}
	body := &readErr{r: http.MaxBytesReader(w, s.body, s.o.MaxUpload)}
	n, err := io.Copy(f, body)
	if err == nil {
		carryOver(s.root, rel, f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, r.ContentLength)
	}
	if err == nil {
		err = s.root.Rename(tmp, rel)
	}
	if err != nil {
		s.root.Remove(tmp)
		var errno syscall.Errno
		if body.err == nil && (errors.As(err, &errno) || errors.Is(err, iofs.ErrNotExist)) {
			fsError(w, "upload /"+rel, err)
			return
		}
		if errors.Is(err, errUploadsEnded) {
			writeError(w, http.StatusServiceUnavailable, "not_mounted",
				fmt.Sprintf("upload /%s: the drive is being unmounted; nothing was changed; send it again once it is mounted", rel))
			return
		}
		if s.body.stalled {
			of := ""
			if r.ContentLength >= 0 {
				of = fmt.Sprintf(" of %d", r.ContentLength)
			}
			writeError(w, http.StatusRequestTimeout, "stalled",
				fmt.Sprintf("upload /%s: the body stopped arriving (nothing for %v, after %d%s bytes); nothing was changed, send it again", rel, s.o.UploadIdle, n, of))
			return
		}
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("upload /%s: more than the %d bytes this server takes in one upload; nothing was changed; copy large files into the mounted folder instead", rel, s.o.MaxUpload))
			return
		}
		writeError(w, http.StatusBadRequest, "incomplete", fmt.Sprintf("upload /%s: the body ended early (%v); nothing was changed, send it again", rel, err))
		return
	}
	fi, err := s.root.Lstat(rel)
	if err != nil {
		fsError(w, "upload /"+rel, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.entry(r.Context(), rel, rel, path.Base(rel), fi, true))
}

func (s *fileOps) remove(w http.ResponseWriter, r *http.Request, escaped string) {
	rel, _, snap, err := s.target(r, escaped)
	if err != nil {
		fsError(w, "delete", err)
		return
	}
	if snap != "" {
		writeError(w, http.StatusForbidden, "read_only", "snapshots are read-only; delete a snapshot with meshdrive snapshot delete")
		return
	}
	if rel == "" {
		writeError(w, http.StatusForbidden, "root", "delete: the drive's root folder cannot be deleted")
		return
	}
	if _, err := s.root.Lstat(rel); err != nil {
		fsError(w, "delete /"+rel, err)
		return
	}
	if r.URL.Query().Get("recursive") == "1" {
		err = s.root.RemoveAll(rel)
	} else {
		err = s.root.Remove(rel)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && (errno == syscall.ENOTEMPTY || errno == syscall.EEXIST) {
		writeError(w, http.StatusConflict, "not_empty", "delete /"+rel+": the folder is not empty; delete what is in it first, or delete it with everything in it: DELETE "+
			apiPrefix+"files/"+href.Escape(rel)+"?recursive=1")
		return
	}
	if err != nil {
		fsError(w, "delete /"+rel, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *fileOps) mkdir(w http.ResponseWriter, r *http.Request, escaped string) {
	rel, _, snap, err := s.target(r, escaped)
	if err != nil || snap != "" || rel == "" {
		if err == nil {
			err = errBadPath
		}
		fsError(w, "mkdir", err)
		return
	}
	if err := s.root.Mkdir(rel, 0o755); err != nil {
		fsError(w, "mkdir /"+rel, err)
		return
	}
	fi, err := s.root.Lstat(rel)
	if err != nil {
		fsError(w, "mkdir /"+rel, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.entry(r.Context(), rel, rel, path.Base(rel), fi, false))
}

// maxJSONBody bounds a JSON request body.
const maxJSONBody = 64 << 10

// readJSONBody reads a JSON endpoint's body into memory before anything
// else is done for the request (the mount's root is opened after it): a
// body that stops arriving must not hold the mount busy, or a goroutine,
// for ever. It has UploadIdle to arrive whole (it is at most 64 KiB);
// past it the answer is 408 stalled. Bodies over maxJSONBody are left for
// decodeBody to refuse. false: answered.
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request) bool {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(s.o.UploadIdle)) // unsupported (a recorder in tests): no deadline
	b, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err == nil {
		// Off again: past the handler's own reads the server watches the
		// connection, and a deadline then would end a long restore's
		// context. (Kept after an error: the server reads what is left of
		// the body before it answers, and must not wait for it.)
		rc.SetReadDeadline(time.Time{})
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		writeError(w, http.StatusRequestTimeout, "stalled",
			fmt.Sprintf("the request body stopped arriving (not whole after %v); nothing was changed, send it again", s.o.UploadIdle))
		return false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "incomplete", "the request body ended early ("+err.Error()+"); nothing was changed, send it again")
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One value and nothing after it (a second is not ignored).
		if _, e := dec.Token(); e != io.EOF {
			err = e
			if err == nil {
				err = errors.New("something follows the JSON object")
			}
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the request body is over %d KiB; this endpoint takes a small JSON object, see docs/API.md", maxJSONBody>>10))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad_json", "the request body is not the JSON this endpoint takes ("+err.Error()+"); see docs/API.md")
		return false
	}
	return true
}

// renameRequest is POST /api/v1/rename's body. Each path is given as
// text, or as FIELD_href: %-encoded from its bytes (bodyPath).
type renameRequest struct {
	From     string `json:"from"`
	To       string `json:"to"`
	FromHref string `json:"from_href"`
	ToHref   string `json:"to_href"`
}

func (s *fileOps) rename(w http.ResponseWriter, r *http.Request) {
	var req renameRequest
	if !decodeBody(w, r, &req) {
		return
	}
	from, err1 := bodyPath("from", req.From, req.FromHref)
	to, err2 := bodyPath("to", req.To, req.ToHref)
	if err := cmp.Or(err1, err2); err != nil || from == "" || to == "" {
		fsError(w, "rename", cmp.Or(err, errBadPath))
		return
	}
	if to == from {
		writeError(w, http.StatusConflict, "exists", "rename: /"+to+" already has that name; choose another name")
		return
	}
	if strings.HasPrefix(to, from+"/") {
		writeError(w, http.StatusBadRequest, "into_itself", "rename: /"+to+" is inside /"+from+": a folder cannot be moved into itself; choose a destination outside it")
		return
	}
	if err := s.renameNoReplace(from, to); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			writeError(w, http.StatusConflict, "exists", "rename: /"+to+" exists; choose another name or delete it first")
			return
		}
		if _, ferr := s.root.Lstat(from); ferr == nil && errors.Is(err, iofs.ErrNotExist) {
			// from is there: what is missing is the destination's folder.
			writeError(w, http.StatusNotFound, "not_found", "rename /"+from+" to /"+to+": there is no folder /"+path.Dir(to)+
				"; make it first ("+apiPrefix+"mkdir/PATH) or choose another destination")
			return
		}
		fsError(w, "rename /"+from+" to /"+to, err)
		return
	}
	fi, err := s.root.Lstat(to)
	if err != nil {
		fsError(w, "rename /"+from, err)
		return
	}
	writeJSON(w, http.StatusOK, s.entry(r.Context(), to, to, path.Base(to), fi, false))
}
