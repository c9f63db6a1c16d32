package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

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
	State      string      `json:"state"` // durable | degraded | local | lost
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
	MetaPendingRows int64  `json:"meta_pending_rows"`
	MetaLastError   string `json:"meta_last_error,omitempty"`
	RepairOwed      int64  `json:"repair_owed"` // segments below n shards
	// Lost: blocks that cannot be read from anywhere and their files
	// (nil when there are none).
	Lost  *fs.LostReport `json:"lost,omitempty"`
	Cache CacheSummary   `json:"cache"`
	// MountpointHref is Mountpoint %-encoded from its bytes when it is
	// not UTF-8 (docs/API.md).
	MountpointHref string `json:"mountpoint_href,omitempty"`
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
	Shards    int64   `json:"shards"`   // objects the node holds: shards and the drive's key, config and root record
	Error     string  `json:"error,omitempty"`
}

// CacheSummary is the local block cache, and the block reads the
// journal served from its copies of files written here, which never
// reach the cache.
type CacheSummary struct {
	MemBytes     int64   `json:"mem_bytes"`
	DiskBytes    int64   `json:"disk_bytes"`
	Hits         uint64  `json:"hits"` // memory and disk
	Misses       uint64  `json:"misses"`
	JournalReads uint64  `json:"journal_reads"` // not in hits
	HitRate      float64 `json:"hit_rate"`      // reads served here (hits and journal reads) of all, 0..1; -1 before the first read
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
	Name string `json:"name"`
	Path string `json:"path"` // relative to the drive's root
	// Href is Path %-encoded segment by segment from its bytes
	// (href.Escape), for the API's addresses and the JSON bodies' *_href
	// fields: a name that is not UTF-8 shows in Name and Path with U+FFFD
	// for each bad byte (JSON holds no other), which names another file
	// or none; Href names this one, and its last segment is Name's bytes.
	// Always there (every other path gets its FIELD_href only when it is
	// not UTF-8).
	Href  string    `json:"href"`
	Type  string    `json:"type"` // file, dir, symlink, other
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	// State, Cached and PendingBytes come from the drive (files of the
	// live drive; a folder's only in stat, which walks it).
	State        string `json:"state,omitempty"`
	Cached       string `json:"cached,omitempty"`
	PendingBytes int64  `json:"pending_bytes,omitempty"`
	// StatePartial: stat gave up on the state within statesBudget (a
	// large folder's walk); ask again, or stat what is inside.
	StatePartial bool   `json:"state_partial,omitempty"`
	Pinned       *bool  `json:"pinned,omitempty"` // nil: pins not known
	Target       string `json:"target,omitempty"` // a symlink's
	// TargetHref is Target %-encoded from its bytes when it is not UTF-8.
	TargetHref string `json:"target_href,omitempty"`
}

// Listing is GET /api/v1/list/PATH.
type Listing struct {
	Path string `json:"path"`
	// PathHref is Path %-encoded from its bytes when it is not UTF-8.
	PathHref string  `json:"path_href,omitempty"`
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
	var two *twoFormsError
	switch {
	case errors.As(err, &two):
		writeError(w, http.StatusBadRequest, "bad_json", what+": "+two.Error()+"; see docs/API.md")
	case errors.Is(err, errBadPath) || strings.Contains(err.Error(), "path escapes from parent"):
		writeError(w, http.StatusBadRequest, "bad_path", what+": the path leaves the drive or is not a name (no \"..\", no encoded slash, no symlink out of the drive)")
	case errors.Is(err, errRestoreEnded) || errors.Is(err, errDownloadEnded):
		writeError(w, http.StatusServiceUnavailable, "not_mounted", what+": the drive is being unmounted; send it again once it is mounted")
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
		writeError(w, http.StatusBadRequest, "name_too_long", what+": a name is longer than 255 bytes; choose a shorter name")
	case errno == syscall.ELOOP:
		writeError(w, http.StatusBadRequest, "symlink_loop", what+": a symlink on the path points back at itself (a loop); fix or delete the symlink")
	case errno == syscall.EINVAL:
		writeError(w, http.StatusBadRequest, "invalid", what+": the drive refused it as invalid (a folder cannot be moved into itself, for one); choose another destination")
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
	body *uploadBody // a PUT's body (uploads registers it)
	// restoring is a restore's run (uploads registers it).
	restoring *restoreRun
	// downloading is a download's run (uploads registers it).
	downloading *downloadRun
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

// jsonBodies are the endpoints whose POST takes a JSON body (readJSONBody
// reads it before the request does anything else).
var jsonBodies = map[string]bool{"rename": true, "restore": true, "snapshots": true, "check": true, "ticket": true}

// allowed is each endpoint's methods, for a 405's Allow header; it must
// match api's cases.
var allowed = map[string]string{
	"list": "GET", "stat": "GET", "files": "GET, HEAD, PUT, DELETE", "mkdir": "POST", "rename": "POST",
	"status": "GET", "nodes": "GET", "snapshots": "GET, POST", "restore": "POST", "check": "GET, POST", "ticket": "POST",
}

// api routes /api/v1/REST.
func (srv *Server) api(w http.ResponseWriter, r *http.Request, rest string) {
	ep, tail, _ := strings.Cut(rest, "/")
	m := r.Method
	s := &fileOps{Server: srv}
	if m == http.MethodPost && jsonBodies[ep] && !srv.readJSONBody(w, r) {
		return
	}
	if ep == "files" && m == http.MethodPut {
		// Unregistered after the root is closed (defers run last first):
		// EndUploads waits until nothing of the upload holds the mount.
		b, done := srv.ups.add(w, r.Body)
		if done == nil {
			writeError(w, http.StatusServiceUnavailable, "not_mounted", "upload: the drive is being unmounted; nothing was changed; send it again once it is mounted")
			return
		}
		defer done()
		s.body = b
	}
	if ep == "files" && (m == http.MethodGet || m == http.MethodHead) {
		d, done := srv.ups.addDownload(w)
		if done == nil {
			writeError(w, http.StatusServiceUnavailable, "not_mounted", "download: the drive is being unmounted; download it again once it is mounted")
			return
		}
		defer done()
		s.downloading = d
	}
	if ep == "restore" && m == http.MethodPost {
		run, done := srv.ups.addRestore()
		if done == nil {
			writeError(w, http.StatusServiceUnavailable, "not_mounted", "restore: the drive is being unmounted; nothing was restored; send it again once it is mounted")
			return
		}
		defer done()
		s.restoring = run
	}
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
	case ep == "ticket" && tail == "" && m == http.MethodPost:
		s.ticket(w, r)
	default:
		if allow, ok := allowed[ep]; ok && (tail == "" || ep == "list" || ep == "stat" || ep == "files" || ep == "mkdir") {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method", fmt.Sprintf("%s is not allowed on %s%s (only %s); see docs/API.md", m, apiPrefix, ep, allow))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s%s; see docs/API.md", apiPrefix, rest))
	}
}

// ticketRequest is POST /api/v1/ticket's body; ticketAnswer its answer.
type ticketRequest struct {
	URL string `json:"url"` // /api/v1/files/PATH[?snapshot=NAME]
}
type ticketAnswer struct {
	URL     string    `json:"url"` // the same address with ?ticket=T: GETs without a header
	Expires time.Time `json:"expires"`
}

// ticket gives the page an address it can hand to the browser (a download
// link): the browser follows it without the page's Authorization header.
func (s *Server) ticket(w http.ResponseWriter, r *http.Request) {
	var req ticketRequest
	if !decodeBody(w, r, &req) {
		return
	}
	bad := func() {
		writeError(w, http.StatusBadRequest, "bad_url", "a ticket is only for a download: url must be "+apiPrefix+"files/PATH, with ?snapshot=NAME if any")
	}
	u, err := url.Parse(req.URL)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Fragment != "" ||
		!strings.HasPrefix(u.EscapedPath(), apiPrefix+"files/") {
		bad()
		return
	}
	q, err := url.ParseQuery(u.RawQuery)
	if _, perr := DecodePath(strings.TrimPrefix(u.EscapedPath(), apiPrefix+"files/")); err != nil || perr != nil || q.Has("ticket") {
		bad()
		return
	}
	_, target := ticketTarget(u)
	tk := s.sess.newTicket(target)
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	writeJSON(w, http.StatusOK, ticketAnswer{URL: target + sep + "ticket=" + tk, Expires: s.sess.now().Add(ticketTTL).UTC()})
}
