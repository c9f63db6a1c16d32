package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meshdrive/meshdrive/fs"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
	"github.com/meshdrive/meshdrive/web"
)

// The control socket: the mount process serves HTTP over DATA/control.sock
// (mode 0600) for status, sync and cache clear.
//
//	GET  /status            statusReport as JSON
//	GET  /status?path=P     pathReport for one file or folder
//	POST /sync              JSON lines of syncLine until grid-durable
//	POST /cache/clear       clearReport
//	POST /pin, /unpin       ?path=P&abs=A (repeated): []pinReport
//	POST /gc?dry_run=1&grace=D  JSON lines of gcLine, the last with the stats
//	GET  /snapshots         []snapshotJSON
//	POST /snapshots?name=N  snapshotJSON of the new snapshot
//	POST /snapshots/delete  ?name=N (repeated) or ?all=1: []snapshotJSON deleted
//	POST /check             ?path=P&verify=1&repair=1: JSON lines of checkLine, the last with the report
//	GET  /nodes             []nodeStatus
//	POST /nodes/add         ?url=U&zone=Z: nodeStatus of the new node
//	POST /nodes/drain       ?node=N: JSON lines of checkLine until the node is drained and removed
//	POST /nodes/remove      ?node=N: the removed nodeStatus

// statusReport is GET /status (and meshdrive status --json).
type statusReport struct {
	DataDir    string `json:"data_dir"`
	DriveID    string `json:"drive_id"`
	Mountpoint string `json:"mountpoint"`
	PID        int    `json:"pid"`
	K          int    `json:"k"`
	M          int    `json:"m"`
	BlockSize  int    `json:"block_size"`
	ReadOnly   bool   `json:"read_only"`
	State      string `json:"state"`   // durable | degraded | local | lost
	Durable    bool   `json:"durable"` // everything written is on the grid with all n shards
	// Lost: blocks that cannot be read from anywhere, and their files
	// (nil when there are none).
	Lost   *fs.LostReport `json:"lost,omitempty"`
	Online bool           `json:"online"` // at least one node answered
	// OfflineSince: when no node was reachable any more (set while
	// offline); what waits is in Uploads and Metadata.
	OfflineSince *time.Time      `json:"offline_since,omitempty"`
	NodesUp      int             `json:"nodes_up"`
	NodesTotal   int             `json:"nodes_total"`
	Nodes        []nodeStatus    `json:"nodes"`
	Uploads      uploadStatus    `json:"uploads"`
	Metadata     metaStatus      `json:"metadata"`
	GC           gcStatus        `json:"gc"`
	Repair       *fs.RepairStats `json:"repair,omitempty"` // nil on a read-only mount
	Bandwidth    bandwidthStatus `json:"bandwidth"`
	Pins         *fs.PinStats    `json:"pins,omitempty"` // nil on a read-only mount
	Cache        json.RawMessage `json:"cache"`          // fs.CacheStats
	// Web is the web app's address ("" when off); meshdrive web-url
	// asks POST /web/login for a login address.
	Web string `json:"web,omitempty"`
	// DataDirHref and MountpointHref are DataDir and Mountpoint
	// %-encoded from their bytes when they are not UTF-8 (docs/API.md).
	DataDirHref    string `json:"data_dir_href,omitempty"`
	MountpointHref string `json:"mountpoint_href,omitempty"`
}

// gcStatus is garbage collection: what waits, what the last one freed.
type gcStatus struct {
	GarbageBytes int64       `json:"garbage_bytes"` // sealed bytes no file refers to (snapshots may)
	Last         *fs.GCStats `json:"last,omitempty"`
}

// metaStatus is the metadata log: how far the grid's copy is behind.
type metaStatus struct {
	Head        uint64    `json:"head"`      // seq of the newest record on the grid, 0 none
	HeadTime    time.Time `json:"head_time"` // when it was shipped
	PendingRows int64     `json:"pending_rows"`
	LastError   string    `json:"last_error,omitempty"`
	// TakenOver: another computer has written the drive since this data
	// dir did; this mount ships nothing more (LastError says what to do).
	TakenOver bool `json:"taken_over,omitempty"`
}

type nodeStatus struct {
	Name      string  `json:"name"`
	Zone      string  `json:"zone,omitempty"`
	URL       string  `json:"url"` // token redacted
	Up        bool    `json:"up"`
	LatencyMS float64 `json:"latency_ms"`
	Capacity  int64   `json:"capacity"` // bytes, -1 unknown
	Free      int64   `json:"free"`     // bytes, -1 unknown
	// Shards: in status, the objects the node reports holding (the
	// drive's shards, its key, config and root record, and shards no
	// segment names any more, the node's own approximate count); in node
	// list, the shards a listing found.
	Shards   int64  `json:"shards"`
	Error    string `json:"error,omitempty"`
	Draining bool   `json:"draining,omitempty"`
	// Full: the node has less free space than one shard of a full
	// segment (ShardBytes), so uploads that place a shard on it fail.
	Full       bool  `json:"full,omitempty"`
	ShardBytes int64 `json:"shard_bytes,omitempty"`
	// Scrub is the node's own scrubber's report (node serve --scrub-rate).
	Scrub *remoteopen.ScrubReport `json:"scrub,omitempty"`
}

// uploadStatus is the upload queue with its rate and ETA (the drive's).
type uploadStatus = fs.Progress

// pathReport is GET /status?path=: the drive's report on one file or folder.
type pathReport = fs.PathStatus

// syncLine is one line of POST /sync.
type syncLine struct {
	Pending    int64   `json:"pending"` // plaintext bytes not yet grid-durable
	DoneBytes  int64   `json:"done_bytes"`
	Rate       float64 `json:"rate"`
	ETASeconds float64 `json:"eta_seconds"`
	Errors     int64   `json:"errors"`
	LastError  string  `json:"last_error,omitempty"`
	Durable    bool    `json:"durable"`
	Error      string  `json:"error,omitempty"`
	// Lost, on the last line: everything else is grid-durable, but these
	// blocks cannot be read from anywhere (Durable is false).
	Lost *fs.LostReport `json:"lost,omitempty"`
}

type clearReport struct {
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

type controlOptions struct {
	dataDir, mountpoint string
	cfg                 *Config
	drive               *fs.Drive
	grid                *remoteopen.Grid
	readOnly            bool
	log                 *slog.Logger
	repair              *fs.Repairer     // nil on a read-only mount
	stack               remoteopen.Stack // what a node added while mounted is wrapped in
	bandwidth           *bandwidth       // the limits in force and their schedule
	online              *onlineState     // since when no node is reachable
	// repairInterval: how often the drive key and config are looked for
	// on every node and stored again where lost (keepDriveMeta).
	repairInterval time.Duration
}

type controlServer struct {
	o      controlOptions
	path   string
	srv    *http.Server
	cancel context.CancelFunc
	done   sync.WaitGroup

	cfgMu sync.Mutex // guards o.cfg (replaced whole by node add, drain, remove); taken alone
	// addMu: one node add at a time, from its look at the config to its
	// update (each picks the next node name; two at once picked one).
	addMu sync.Mutex

	realMPOnce sync.Once
	realMP     string // realMountpoint

	webURL atomic.Pointer[string]     // the web app's address, once it listens
	web    atomic.Pointer[web.Server] // the web app, once it listens
}

// startControl listens on DATA/control.sock. A socket left by a killed
// mount is removed first: the caller holds the drive lock, so no live
// mount owns it.
func startControl(o controlOptions) (*controlServer, error) {
	path := filepath.Join(o.dataDir, controlSock)
	os.Remove(path)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &controlServer{o: o, path: path, cancel: cancel}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", c.status)
	mux.HandleFunc("POST /sync", c.sync)
	mux.HandleFunc("POST /cache/clear", c.cacheClear)
	mux.HandleFunc("POST /pin", c.pin)
	mux.HandleFunc("POST /unpin", c.pin)
	mux.HandleFunc("POST /gc", c.gc)
	mux.HandleFunc("GET /snapshots", c.snapshotList)
	mux.HandleFunc("POST /snapshots", c.snapshotCreate)
	mux.HandleFunc("POST /snapshots/delete", c.snapshotDelete)
	mux.HandleFunc("POST /check", c.check)
	mux.HandleFunc("POST /web/login", c.webLogin)
	mux.HandleFunc("POST /web/end-uploads", c.webEndUploads)
	mux.HandleFunc("GET /nodes", c.nodeList)
	mux.HandleFunc("POST /nodes/add", c.nodeAdd)
	mux.HandleFunc("POST /nodes/drain", c.nodeDrain)
	mux.HandleFunc("POST /nodes/remove", c.nodeRemove)
	c.srv = &http.Server{Handler: mux, BaseContext: func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 10 * time.Second}
	if o.repair != nil && o.repairInterval > 0 {
		c.done.Add(1)
		go func() {
			defer c.done.Done()
			c.keepDriveMeta(ctx, o.repairInterval)
		}()
	}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("control socket", "err", err)
		}
	}()
	return c, nil
}

func (c *controlServer) close() {
	c.cancel() // ends streaming /sync requests
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.srv.Shutdown(ctx)
	c.done.Wait()
	os.Remove(c.path)
}

func (c *controlServer) uploads() uploadStatus { return c.o.drive.Progress() }

func writeJSON(w http.ResponseWriter, code int, v any) {
	if e, ok := v.(apiError); ok {
		// It may name a path the mount was given, in bytes JSON has
		// no string for.
		e.Error = utf8Text(e.Error)
		v = e
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type apiError struct {
	Error string `json:"error"`
}

// refuseReadOnly answers a request that needs a writable journal, on a
// read-only mount, before anything is done, and reports whether it did.
func (c *controlServer) refuseReadOnly(w http.ResponseWriter, what string) bool {
	if !c.o.readOnly {
		return false
	}
	writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("the drive is mounted read-only: %s needs a read-write mount; "+
		"unmount it (meshdrive unmount %s) and mount it without --read-only", what, c.o.mountpoint)})
	return true
}

func (c *controlServer) status(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if p, ok := r.URL.Query()["path"]; ok {
		abs := r.URL.Query().Get("abs")
		rep, err := c.pathStatus(ctx, p[0], abs)
		if err != nil {
			writeJSON(w, http.StatusNotFound, apiError{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, rep)
		return
	}
	writeJSON(w, http.StatusOK, c.report(ctx))
}

// space fills in what node n said of its space and shards, and whether
// it is full: less free than one shard of a full segment of a k-of-n
// drive needs.
func (c *controlServer) space(n *nodeStatus, info remoteopen.NodeInfo, k int) {
	n.Capacity, n.Free, n.Shards = info.Capacity, info.Free, info.Objects
	if k > 0 {
		n.ShardBytes = (c.o.drive.SegmentSize() + int64(k) - 1) / int64(k)
	}
	n.Full = n.Free >= 0 && n.Free < n.ShardBytes
}

// report is the drive's status as GET /status serves it.
func (c *controlServer) report(ctx context.Context) statusReport {
	cfg := c.config()
	rep := statusReport{DataDir: c.o.dataDir, DriveID: cfg.DriveID, Mountpoint: c.o.mountpoint, PID: os.Getpid(),
		DataDirHref: fs.PathHref(c.o.dataDir), MountpointHref: fs.PathHref(c.o.mountpoint),
		K: cfg.K, M: cfg.M, BlockSize: cfg.BlockSize, ReadOnly: c.o.readOnly, NodesTotal: len(cfg.Nodes)}
	urls := map[string]string{}
	for _, n := range cfg.Nodes {
		urls[n.Name] = redactURL(n.URL)
	}
	for _, h := range c.o.grid.Health(ctx) {
		ns := nodeStatus{Name: h.Name, Zone: h.Zone, URL: urls[h.Name], Up: h.Up, Error: h.Err, Draining: h.Draining,
			LatencyMS: float64(h.Latency.Microseconds()) / 1000, Capacity: -1, Free: -1}
		if h.Up {
			rep.NodesUp++
			c.space(&ns, h.Info, cfg.K)
		}
		rep.Nodes = append(rep.Nodes, ns)
	}
	rep.Online = rep.NodesUp > 0
	if c.o.online != nil {
		c.o.online.observe(rep.NodesUp, time.Now())
		if since := c.o.online.offlineSince(); !rep.Online && !since.IsZero() {
			rep.OfflineSince = &since
		}
	}
	var owed int64
	if c.o.repair != nil {
		st := c.o.repair.Stats()
		rep.Repair = &st
		owed = int64(st.Owed)
	}
	state, up, ms := c.o.drive.State(ctx, owed)
	rep.State, rep.Durable, rep.Uploads = state.String(), state == fs.StateDurable, up
	if l, err := c.o.drive.Lost(ctx); err == nil && l.Blocks > 0 {
		rep.Lost = &l
	}
	rep.GC = gcStatus{GarbageBytes: c.o.drive.GarbageBytes(ctx), Last: c.o.drive.LastGC()}
	rep.Metadata = metaStatus{Head: ms.Head, HeadTime: ms.HeadTime, PendingRows: ms.PendingRows, LastError: ms.LastError, TakenOver: ms.TakenOver}
	rep.Cache, _ = json.Marshal(c.o.drive.CacheStats())
	if u := c.webURL.Load(); u != nil {
		rep.Web = *u
	}
	if c.o.bandwidth != nil {
		rep.Bandwidth = c.o.bandwidth.status()
	}
	if p := c.o.drive.Pins(); p != nil {
		st := p.Stats()
		rep.Pins = &st
	}
	return rep
}

// pathStatus reports one file, or sums a folder's files. rel is relative
// to the drive's root; abs, when set and inside the mountpoint, wins.
func (c *controlServer) pathStatus(ctx context.Context, rel, abs string) (*pathReport, error) {
	rel, err := c.relPath(rel, abs)
	if err != nil {
		return nil, err
	}
	return c.o.drive.Status(ctx, rel)
}

// syncProgressEvery is how often POST /sync reports.
const syncProgressEvery = 500 * time.Millisecond

func (c *controlServer) sync(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	enc := json.NewEncoder(w)
	line := func() syncLine {
		u := c.uploads()
		return syncLine{Pending: u.Bytes, DoneBytes: u.DoneBytes, Rate: u.Rate,
			ETASeconds: u.ETASeconds, Errors: u.Errors, LastError: u.LastError}
	}
	done := make(chan error, 1)
	if u := c.uploads(); c.o.readOnly && u.Bytes > 0 {
		// Nothing would ever move: only a read-write mount uploads.
		done <- fmt.Errorf("the drive is mounted read-only: %s of %s written by an earlier mount wait in the journal, "+
			"and only a read-write mount uploads them; unmount it (meshdrive unmount %s), mount it without --read-only and sync again",
			humanBytes(u.Bytes), plural(u.Files, "file", "files"), c.o.mountpoint)
	} else {
		go func() { done <- c.o.drive.SyncGrid(ctx) }()
	}
	t := time.NewTicker(syncProgressEvery)
	defer t.Stop()
	enc.Encode(line())
	flush()
	for {
		select {
		case err := <-done:
			l := line()
			switch lost, lerr := c.o.drive.Lost(ctx); {
			case err != nil:
				l.Error = err.Error()
			case lerr != nil:
				l.Error = "everything else is on the grid, but the journal could not count lost blocks: " + lerr.Error()
			case lost.Blocks > 0:
				// Lost blocks are in no upload queue: waiting for them
				// would never end, and "durable" would be a lie.
				l.Lost = &lost
			default:
				l.Durable = true
			}
			enc.Encode(l)
			flush()
			return
		case <-t.C:
			if enc.Encode(line()) != nil {
				return
			}
			flush()
		}
	}
}

func (c *controlServer) cacheClear(w http.ResponseWriter, r *http.Request) {
	before, _ := json.Marshal(c.o.drive.CacheStats())
	if err := c.o.drive.ClearCache(); err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	if p := c.o.drive.Pins(); p != nil {
		p.Kick() // pinned blocks stay; the pinner checks
	}
	after, _ := json.Marshal(c.o.drive.CacheStats())
	writeJSON(w, http.StatusOK, clearReport{Before: before, After: after})
}
