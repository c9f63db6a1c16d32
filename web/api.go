package web

import (
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

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/journal/repair"
)

const apiPrefix = "/api/v1/"

// Drive is what the server needs from the mount besides its files. The
// mount process implements it; every method is safe for concurrent use.
type Drive interface {
	// Status is fs.Drive.Status: the state of one file or folder.
	Status(ctx context.Context, rel string) (*fs.PathStatus, error)
	// Summary is the drive as a whole: state, queue, nodes, cache.
	Summary(ctx context.Context) Summary
	Snapshots(ctx context.Context) ([]Snapshot, error)
	CreateSnapshot(ctx context.Context, name string) (Snapshot, error)
	// Check runs repair.Repairer.Check; it fails at once on a read-only
	// mount.
	Check(ctx context.Context, req repair.CheckRequest, progress func(repair.Progress)) (*repair.Report, error)
}

// Pinner is the hook for pins: a Drive that also implements it gets each
// file's "pinned" in listings and stat.
type Pinner interface {
	Pinned(ctx context.Context, rel string) (bool, error)
}

// Summary is GET /api/v1/status.
type Summary struct {
	Mountpoint string      `json:"mountpoint"`
	State      string      `json:"state"` // durable | degraded | local
	Durable    bool        `json:"durable"`
	Online     bool        `json:"online"`
	ReadOnly   bool        `json:"read_only"`
	K          int         `json:"k"`
	M          int         `json:"m"`
	NodesUp    int         `json:"nodes_up"`
	NodesTotal int         `json:"nodes_total"`
	Nodes      []Node      `json:"nodes"`
	Uploads    fs.Progress `json:"uploads"`
	// MetaPendingRows: metadata changes not yet on the grid.
	MetaPendingRows int64        `json:"meta_pending_rows"`
	MetaLastError   string       `json:"meta_last_error,omitempty"`
	RepairOwed      int64        `json:"repair_owed"` // segments below n shards
	Cache           CacheSummary `json:"cache"`
}

// Node is one storage node's health.
type Node struct {
	Name      string  `json:"name"`
	Zone      string  `json:"zone,omitempty"`
	Up        bool    `json:"up"`
	Draining  bool    `json:"draining,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
	Capacity  int64   `json:"capacity"` // bytes, -1 unknown
	Free      int64   `json:"free"`     // bytes, -1 unknown
	Shards    int64   `json:"shards"`
	Error     string  `json:"error,omitempty"`
}

// CacheSummary is the local block cache.
type CacheSummary struct {
	MemBytes  int64   `json:"mem_bytes"`
	DiskBytes int64   `json:"disk_bytes"`
	Hits      uint64  `json:"hits"` // memory and disk
	Misses    uint64  `json:"misses"`
	HitRate   float64 `json:"hit_rate"` // 0..1, -1 before the first read
}

// Snapshot is one kept snapshot.
type Snapshot struct {
	Name    string    `json:"name"`
	Seq     uint64    `json:"seq"`
	Named   bool      `json:"named"`
	Created time.Time `json:"created"`
}

// Entry is one file or folder in a listing, and GET /api/v1/stat.
type Entry struct {
	Name  string    `json:"name"`
	Path  string    `json:"path"` // relative to the drive's root
	Type  string    `json:"type"` // file, dir, symlink, other
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	// State, Cached and PendingBytes come from the drive (files of the
	// live drive; a folder's only in stat, which walks it).
	State        string `json:"state,omitempty"`
	Cached       string `json:"cached,omitempty"`
	PendingBytes int64  `json:"pending_bytes,omitempty"`
	Pinned       *bool  `json:"pinned,omitempty"` // nil: pins not known
	Target       string `json:"target,omitempty"` // a symlink's
}

// Listing is GET /api/v1/list/PATH.
type Listing struct {
	Path     string  `json:"path"`
	Snapshot string  `json:"snapshot,omitempty"`
	Entries  []Entry `json:"entries"`
	// Truncated: the folder has more than maxList entries; the first are
	// listed.
	Truncated bool `json:"truncated,omitempty"`
	// StatesPartial: some files were listed without their state (more
	// than maxStates, or the drive took longer than statesBudget); stat
	// them one by one.
	StatesPartial bool `json:"states_partial,omitempty"`
}

// maxList bounds a listing; maxStates and statesBudget bound the files
// whose state a listing asks the drive for, statesParallel of them at once.
const (
	maxList        = 10000
	maxStates      = 5000
	statesBudget   = time.Second
	statesParallel = 2
)

// apiError is every error body.
type apiError struct {
	Error string `json:"error"` // what happened and what to do
	Code  string `json:"code"`  // stable, for scripts
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: msg, Code: code})
}

// fsError answers a file system error with a status that says what it is.
func fsError(w http.ResponseWriter, what string, err error) {
	var errno syscall.Errno
	errors.As(err, &errno)
	switch {
	case errors.Is(err, errBadPath) || strings.Contains(err.Error(), "path escapes from parent"):
		writeError(w, http.StatusBadRequest, "bad_path", what+": the path leaves the drive or is not a name (no \"..\", no encoded slash, no symlink out of the drive)")
	case errors.Is(err, iofs.ErrNotExist):
		writeError(w, http.StatusNotFound, "not_found", what+": no such file or folder; list its folder to see what is there")
	case errors.Is(err, iofs.ErrExist) || errno == syscall.ENOTEMPTY:
		writeError(w, http.StatusConflict, "exists", what+": something is already there (or the folder is not empty); choose another name or remove it first")
	case errno == syscall.EROFS:
		writeError(w, http.StatusForbidden, "read_only", what+": the drive is mounted read-only (or this is a snapshot); remount it read-write to change it")
	case errors.Is(err, iofs.ErrPermission):
		writeError(w, http.StatusForbidden, "permission", what+": permission denied by the file's mode")
	case errno == syscall.ENOTDIR:
		writeError(w, http.StatusConflict, "not_dir", what+": a part of the path is a file, not a folder")
	case errno == syscall.EISDIR:
		writeError(w, http.StatusConflict, "is_dir", what+": it is a folder; list it with /api/v1/list/PATH")
	case errno == syscall.ENOSPC || errno == syscall.EDQUOT:
		writeError(w, http.StatusInsufficientStorage, "full", what+": the drive's journal is full; wait for uploads to catch up (meshdrive status) and try again")
	case errno == syscall.ENAMETOOLONG:
		writeError(w, http.StatusBadRequest, "name_too_long", what+": a name is longer than 255 bytes")
	case errno == syscall.EIO:
		writeError(w, http.StatusBadGateway, "io", what+": the data could not be read from the grid (nodes unreachable and the block not cached); try again when nodes are up")
	default:
		writeError(w, http.StatusInternalServerError, "internal", what+": "+err.Error())
	}
}

// fileOps is one request's view of the mount: the mountpoint opened as
// an os.Root for the request and closed after it, so no descriptor keeps
// the mount busy between requests (unmount would fail).
type fileOps struct {
	*Server
	root *os.Root
}

// openRoot opens the mountpoint, and refuses when the drive is no longer
// mounted there (the empty folder under it is not the drive).
func (s *Server) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(s.o.Mountpoint)
	if err != nil {
		return nil, err
	}
	fi, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Dev != s.dev {
		root.Close()
		return nil, errNotMounted
	}
	return root, nil
}

var errNotMounted = errors.New("the drive is no longer mounted")

// api routes /api/v1/REST.
func (srv *Server) api(w http.ResponseWriter, r *http.Request, rest string) {
	ep, tail, _ := strings.Cut(rest, "/")
	m := r.Method
	s := &fileOps{Server: srv}
	switch ep {
	case "list", "stat", "files", "mkdir", "rename", "restore":
		root, err := srv.openRoot()
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "not_mounted", "the drive is not mounted at "+srv.o.Mountpoint+" any more ("+err.Error()+"); mount it again")
			return
		}
		defer root.Close()
		s.root = root
	}
	switch {
	case ep == "list" && m == http.MethodGet:
		s.list(w, r, tail)
	case ep == "stat" && m == http.MethodGet:
		s.stat(w, r, tail)
	case ep == "files" && (m == http.MethodGet || m == http.MethodHead):
		s.download(w, r, tail)
	case ep == "files" && m == http.MethodPut:
		s.upload(w, r, tail)
	case ep == "files" && m == http.MethodDelete:
		s.remove(w, r, tail)
	case ep == "mkdir" && m == http.MethodPost:
		s.mkdir(w, r, tail)
	case ep == "rename" && tail == "" && m == http.MethodPost:
		s.rename(w, r)
	case ep == "status" && tail == "" && m == http.MethodGet:
		writeJSON(w, http.StatusOK, s.o.Drive.Summary(r.Context()))
	case ep == "nodes" && tail == "" && m == http.MethodGet:
		writeJSON(w, http.StatusOK, s.o.Drive.Summary(r.Context()).Nodes)
	case ep == "snapshots" && tail == "" && m == http.MethodGet:
		s.snapshots(w, r)
	case ep == "snapshots" && tail == "" && m == http.MethodPost:
		s.snapshotCreate(w, r)
	case ep == "restore" && tail == "" && m == http.MethodPost:
		s.restore(w, r)
	case ep == "check" && tail == "" && m == http.MethodGet:
		writeJSON(w, http.StatusOK, s.check.state())
	case ep == "check" && tail == "" && m == http.MethodPost:
		s.checkStart(w, r)
	default:
		switch ep {
		case "list", "stat", "files", "mkdir", "rename", "status", "nodes", "snapshots", "restore", "check":
			if tail == "" || ep == "list" || ep == "stat" || ep == "files" || ep == "mkdir" {
				writeError(w, http.StatusMethodNotAllowed, "method", fmt.Sprintf("%s is not allowed on %s%s; see docs/API.md", m, apiPrefix, ep))
				return
			}
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s%s; see docs/API.md", apiPrefix, rest))
	}
}

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

// isUploadTemp: the temporary name an upload writes before its rename.
func isUploadTemp(name string) bool { return strings.HasPrefix(name, ".meshdrive-upload-") }

func (s *fileOps) entry(ctx context.Context, rel, inRoot, name string, fi os.FileInfo, withState bool) Entry {
	e := Entry{Name: name, Path: rel, Type: typeOf(fi.Mode()), Size: fi.Size(), MTime: fi.ModTime()}
	if e.Type == "dir" {
		e.Size = 0
	}
	if e.Type == "symlink" {
		e.Target, _ = s.root.Readlink(inRoot)
	}
	if withState && (e.Type == "file" || e.Type == "dir") {
		if st, err := s.o.Drive.Status(ctx, rel); err == nil {
			e.State, e.Cached, e.PendingBytes = st.State, st.Cached, st.PendingBytes
		}
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
	if snap != "" {
		if _, err := s.root.Lstat(path.Join(snapshotsDir, snap)); err != nil {
			writeError(w, http.StatusNotFound, "no_snapshot", fmt.Sprintf("no snapshot %q; GET %ssnapshots lists them", snap, apiPrefix))
			return
		}
	}
	d, err := s.root.Open(inRoot)
	if err != nil {
		fsError(w, "list /"+rel, err)
		return
	}
	defer d.Close()
	if fi, err := d.Stat(); err == nil && !fi.IsDir() {
		writeError(w, http.StatusConflict, "not_dir", "list /"+rel+": it is a file, not a folder; download it with "+apiPrefix+"files/PATH")
		return
	}
	ents, err := d.ReadDir(maxList + 1)
	if err != nil && err != io.EOF {
		fsError(w, "list /"+rel, err)
		return
	}
	out := Listing{Path: "/" + rel, Snapshot: snap, Entries: []Entry{}}
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
			st, err := s.o.Drive.Status(ctx, e.Path)
			if err != nil {
				if ctx.Err() != nil {
					mu.Lock()
					partial = true
					mu.Unlock()
				}
				return nil
			}
			e.State, e.Cached, e.PendingBytes = st.State, st.Cached, st.PendingBytes
			if pinner != nil {
				if pinned, err := pinner.Pinned(ctx, e.Path); err == nil {
					e.Pinned = &pinned
				}
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
	if err != nil {
		fsError(w, "stat /"+rel, err)
		return
	}
	name := path.Base("/" + rel)
	writeJSON(w, http.StatusOK, s.entry(r.Context(), rel, inRoot, name, fi, snap == ""))
}

func (s *fileOps) download(w http.ResponseWriter, r *http.Request, escaped string) {
	rel, inRoot, _, err := s.target(r, escaped)
	if err != nil {
		fsError(w, "download", err)
		return
	}
	f, err := s.root.Open(inRoot)
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
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base("/" + rel)}))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Del("Cache-Control")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// free is the room the drive reports for new data (its journal's quota).
func (s *Server) free() (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.o.Mountpoint, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
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
	dir, name := path.Split(rel)
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, ".meshdrive-upload-"+hex.EncodeToString(rnd[:])+"-"+name)
	if len(path.Base(tmp)) > 255 {
		tmp = path.Join(dir, ".meshdrive-upload-"+hex.EncodeToString(rnd[:]))
	}
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		fsError(w, "upload /"+rel, err)
		return
	}
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, s.o.MaxUpload))
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
		if errors.As(err, &errno) || errors.Is(err, iofs.ErrNotExist) {
			fsError(w, "upload /"+rel, err)
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

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", "the request body is not the JSON this endpoint takes ("+err.Error()+"); see docs/API.md")
		return false
	}
	return true
}

type renameRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
}

func (s *fileOps) rename(w http.ResponseWriter, r *http.Request) {
	var req renameRequest
	if !decodeBody(w, r, &req) {
		return
	}
	from, err1 := cleanRel(req.From)
	to, err2 := cleanRel(req.To)
	if err := errors.Join(err1, err2); err != nil || from == "" || to == "" {
		fsError(w, "rename", errBadPath)
		return
	}
	if _, err := s.root.Lstat(to); err == nil {
		writeError(w, http.StatusConflict, "exists", "rename: /"+to+" exists; choose another name or delete it first")
		return
	}
	if err := s.root.Rename(from, to); err != nil {
		fsError(w, "rename /"+from, err)
		return
	}
	fi, err := s.root.Lstat(to)
	if err != nil {
		fsError(w, "rename /"+from, err)
		return
	}
	writeJSON(w, http.StatusOK, s.entry(r.Context(), to, to, path.Base(to), fi, false))
}

func (s *Server) snapshots(w http.ResponseWriter, r *http.Request) {
	ss, err := s.o.Drive.Snapshots(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "snapshots", "cannot list snapshots: "+err.Error())
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
	if req.Name != "" && !validName(req.Name) {
		writeError(w, http.StatusBadRequest, "bad_name", "a snapshot's name is one path segment: no slash, not . or ..")
		return
	}
	sn, err := s.o.Drive.CreateSnapshot(r.Context(), req.Name)
	if err != nil {
		writeError(w, http.StatusConflict, "snapshot", "cannot take a snapshot: "+err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, sn)
}

type restoreRequest struct {
	Snapshot string `json:"snapshot"`
	Path     string `json:"path"`
	// To is where the copy goes; "" puts it back at Path when nothing is
	// there now, else beside it as "NAME (restored SNAPSHOT)".
	To string `json:"to,omitempty"`
}

type restoreResult struct {
	Snapshot string `json:"snapshot"`
	Path     string `json:"path"`
	To       string `json:"to"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
}

// restore copies a file or folder out of a snapshot into the drive. It
// never overwrites: the copy goes where nothing is.
func (s *fileOps) restore(w http.ResponseWriter, r *http.Request) {
	var req restoreRequest
	if !decodeBody(w, r, &req) {
		return
	}
	rel, err := cleanRel(req.Path)
	if err != nil || !validName(req.Snapshot) {
		fsError(w, "restore", errBadPath)
		return
	}
	src := path.Join(snapshotsDir, req.Snapshot, rel)
	if _, err := s.root.Lstat(path.Join(snapshotsDir, req.Snapshot)); err != nil {
		writeError(w, http.StatusNotFound, "no_snapshot", fmt.Sprintf("no snapshot %q; GET %ssnapshots lists them", req.Snapshot, apiPrefix))
		return
	}
	if _, err := s.root.Lstat(src); err != nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("snapshot %s has no /%s; list the snapshot to see what it holds", req.Snapshot, rel))
		return
	}
	var to string
	switch {
	case req.To != "":
		if to, err = cleanRel(req.To); err != nil || to == "" {
			fsError(w, "restore", errBadPath)
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
	if req.To == "" {
		base := to
		for i := 1; ; i++ {
			if _, err := s.root.Lstat(to); errors.Is(err, iofs.ErrNotExist) {
				break
			}
			suffix := fmt.Sprintf(" (restored %s)", req.Snapshot)
			if i > 1 {
				suffix = fmt.Sprintf(" (restored %s, %d)", req.Snapshot, i)
			}
			to = base + suffix
			if i > 100 {
				writeError(w, http.StatusConflict, "exists", "restore: too many restored copies already; choose a destination with \"to\"")
				return
			}
		}
	}
	res := restoreResult{Snapshot: req.Snapshot, Path: "/" + rel, To: "/" + to}
	if err := s.copyTree(r.Context(), src, to, &res); err != nil {
		fsError(w, fmt.Sprintf("restore /%s from %s (%d files copied to /%s)", rel, req.Snapshot, res.Files, to), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// copyTree copies src to dst (which does not exist) inside the root:
// folders, files and symlinks, with modes and times.
func (s *fileOps) copyTree(ctx context.Context, src, dst string, res *restoreResult) error {
	fi, err := s.root.Lstat(src)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case fi.IsDir():
		if err := s.root.Mkdir(dst, fi.Mode().Perm()|0o700); err != nil {
			return err
		}
		d, err := s.root.Open(src)
		if err != nil {
			return err
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
	case fi.Mode().IsRegular():
		in, err := s.root.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := s.root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
		if err != nil {
			return err
		}
		n, err := io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		res.Files++
		res.Bytes += n
	default:
		return nil // devices, fifos, sockets are not copied
	}
	return s.root.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// checkJob is the one check (and repair) the server runs at a time.
type checkJob struct {
	mu       sync.Mutex // guards the fields below
	running  bool
	cancel   context.CancelFunc
	req      repair.CheckRequest
	started  time.Time
	finished time.Time
	progress repair.Progress
	report   *repair.Report
	err      string
}

// CheckState is GET /api/v1/check.
type CheckState struct {
	Running  bool            `json:"running"`
	Path     string          `json:"path,omitempty"`
	Verify   bool            `json:"verify"`
	Repair   bool            `json:"repair"`
	Started  *time.Time      `json:"started,omitempty"`
	Finished *time.Time      `json:"finished,omitempty"`
	Progress repair.Progress `json:"progress"`
	// Report is the finished check's; its files are those not healthy
	// (at most 100).
	Report *repair.Report `json:"report,omitempty"`
	Error  string         `json:"error,omitempty"`
}

func (c *checkJob) state() CheckState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := CheckState{Running: c.running, Path: "/" + c.req.Path, Verify: c.req.Verify, Repair: c.req.Repair,
		Progress: c.progress, Error: c.err}
	if !c.started.IsZero() {
		t := c.started
		st.Started = &t
	}
	if !c.finished.IsZero() {
		t := c.finished
		st.Finished = &t
	}
	if c.report != nil {
		rp := *c.report
		rp.Files = nil
		for _, f := range c.report.Files {
			if f.State != "healthy" && len(rp.Files) < 100 {
				rp.Files = append(rp.Files, f)
			}
		}
		st.Report = &rp
	}
	return st
}

func (c *checkJob) cancelRun() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}

type checkRequest struct {
	Path   string `json:"path"`
	Verify bool   `json:"verify"`
	Repair bool   `json:"repair"`
}

// checkStart starts a check in the background; GET /api/v1/check follows it.
func (s *Server) checkStart(w http.ResponseWriter, r *http.Request) {
	var req checkRequest
	if r.ContentLength != 0 && !decodeBody(w, r, &req) {
		return
	}
	rel, err := cleanRel(req.Path)
	if err != nil {
		fsError(w, "check", err)
		return
	}
	c := &s.check
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		writeError(w, http.StatusConflict, "busy", "a check is running already; follow it with GET "+apiPrefix+"check and start another when it is done")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.running, c.cancel, c.started, c.finished = true, cancel, time.Now(), time.Time{}
	c.req = repair.CheckRequest{Path: rel, Verify: req.Verify, Repair: req.Repair}
	c.progress, c.report, c.err = repair.Progress{}, nil, ""
	creq := c.req
	c.mu.Unlock()
	go func() {
		defer cancel()
		rep, err := s.o.Drive.Check(ctx, creq, func(p repair.Progress) {
			c.mu.Lock()
			c.progress = p
			c.mu.Unlock()
		})
		c.mu.Lock()
		defer c.mu.Unlock()
		c.running, c.finished, c.report, c.cancel = false, time.Now(), rep, nil
		if err != nil {
			c.err = err.Error()
		}
	}()
	writeJSON(w, http.StatusAccepted, c.state())
}
