package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	mfs "github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/web"
)

// webTokenFile holds the web app's access token (mode 0600);
// metricsTokenFile a token that opens /metrics only.
const (
	webTokenFile     = "web.token"
	metricsTokenFile = "metrics.token"
)

// defaultWebAddr: loopback, a port the kernel picks (status prints it).
const defaultWebAddr = "127.0.0.1:0"

// webToken reads DATA/web.token, making it (32 random bytes, hex) on
// first use.
func webToken(dataDir string) (string, error) { return tokenFile(dataDir, webTokenFile) }

// tokenFile reads DATA/name, making it (32 random bytes, hex) on first use.
func tokenFile(dataDir, name string) (string, error) {
	p := filepath.Join(dataDir, name)
	b, err := os.ReadFile(p)
	if err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
				return "", fmt.Errorf("%s can be read by other users (mode %v); run chmod 600 %s, or delete it to get a new token", p, fi.Mode().Perm(), p)
			}
			return t, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("cannot read the web access token %s: %w", p, err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	t := hex.EncodeToString(raw[:])
	if err := writeFileAtomic(p, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot write the web access token %s: %w", p, err)
	}
	return t, nil
}

// parseWebAddr checks --web: "off", or host:port. A host that is not
// loopback is allowed (the user asked for it) but logged.
func parseWebAddr(s string) (addr string, off bool, err error) {
	if s == "off" || s == "" {
		return "", true, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", false, usageError("--web %q: want host:port like 127.0.0.1:8080 (port 0: any free port), or off", s)
	}
	if host == "" {
		return "", false, usageError("--web %q: name the address to listen on, like 127.0.0.1:%s (an empty host would listen on every network)", s, port)
	}
	return s, false, nil
}

func isLoopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// startWeb serves the web app and API of the mount, and tells the
// control socket its address.
func startWeb(o mountOptions, ctl *controlServer, metrics *web.Metrics) (*web.Server, error) {
	tok, err := webToken(o.dataDir)
	if err != nil {
		return nil, err
	}
	mtok, err := tokenFile(o.dataDir, metricsTokenFile)
	if err != nil {
		return nil, err
	}
	if !isLoopback(o.webAddr) {
		ctl.o.log.Warn("the web app listens beyond this computer: anyone who can reach it and holds the token can read and change the drive (plain HTTP)", "addr", o.webAddr)
	}
	srv, err := web.Start(web.Options{Addr: o.webAddr, Mountpoint: o.mountpoint, Token: tok, MetricsToken: mtok,
		Drive: &webDrive{c: ctl}, MaxUpload: o.webMaxUpload, Metrics: metrics.Handler(), Logger: ctl.o.log})
	if err != nil {
		return nil, err
	}
	u := srv.URL()
	ctl.webURL.Store(&u)
	ctl.web.Store(srv)
	ctl.o.log.Info("web app", "url", u)
	return srv, nil
}

// watchDrive registers the metrics read from the drive at each scrape.
func watchDrive(m *web.Metrics, dataDir string, d *mfs.Drive, rep *mfs.Repairer) {
	var mu sync.Mutex // guards the two below
	var size int64
	var at time.Time
	m.Watch(web.Sources{
		Cache: func() (uint64, uint64, uint64, int64, int64) {
			s := d.CacheStats()
			return s.Hits, s.DiskHits, s.Misses, s.MemBytes, s.DiskBytes
		},
		JournalReads: func() (uint64, uint64) {
			s := d.CacheStats()
			return s.KeptReads, s.StagedReads
		},
		Progress: d.Progress,
		RepairOwed: func() int64 {
			owed := d.Progress().RepairOwed
			if rep != nil {
				owed = max(owed, int64(rep.Stats().Owed))
			}
			return owed
		},
		JournalBytes: func() int64 {
			// A walk of the journal's files, at most every 10 s.
			mu.Lock()
			defer mu.Unlock()
			if time.Since(at) > 10*time.Second {
				size, at = dirSize(filepath.Join(dataDir, "journal")), time.Now()
			}
			return size
		},
	})
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// webDrive is the mount as the web server sees it.
type webDrive struct{ c *controlServer }

func (w *webDrive) Status(ctx context.Context, rel string) (*mfs.PathStatus, error) {
	return w.c.o.drive.Status(ctx, rel)
}

// Pinned: rel or a folder above it is pinned (meshdrive pin).
func (w *webDrive) Pinned(ctx context.Context, rel string) (bool, error) {
	return w.c.o.drive.Pinned(ctx, rel), nil
}

func (w *webDrive) Summary(ctx context.Context) web.Summary {
	r := w.c.report(ctx)
	s := web.Summary{Mountpoint: r.Mountpoint, MountpointHref: r.MountpointHref, State: r.State, Durable: r.Durable, Online: r.Online, ReadOnly: r.ReadOnly,
		K: r.K, M: r.M, NodesUp: r.NodesUp, NodesTotal: r.NodesTotal, Uploads: r.Uploads,
		MetaPendingRows: r.Metadata.PendingRows, MetaLastError: r.Metadata.LastError, RepairOwed: r.Uploads.RepairOwed, Lost: r.Lost}
	if r.Repair != nil {
		s.RepairOwed = max(s.RepairOwed, int64(r.Repair.Owed))
	}
	for _, n := range r.Nodes {
		s.Nodes = append(s.Nodes, web.Node{Name: n.Name, Zone: n.Zone, Up: n.Up, Draining: n.Draining, LatencyMS: n.LatencyMS,
			Capacity: n.Capacity, Free: n.Free, Shards: n.Shards, Error: n.Error})
	}
	s.Cache = cacheSummary(w.c.o.drive.CacheStats())
	return s
}

// cacheSummary is the web app's cache summary. Reads of the journal's
// copies of blocks written here are served here as much as the cache's
// hits: the hit rate counts them, so a folder of small files written here
// and read back does not show a rate near 0.
func cacheSummary(cs mfs.CacheStats) web.CacheSummary {
	s := web.CacheSummary{MemBytes: cs.MemBytes, DiskBytes: cs.DiskBytes, Hits: cs.Hits + cs.DiskHits, Misses: cs.Misses,
		JournalReads: cs.KeptReads + cs.StagedReads, HitRate: -1}
	if t := s.Hits + s.JournalReads + s.Misses; t > 0 {
		s.HitRate = float64(s.Hits+s.JournalReads) / float64(t)
	}
	return s
}

func toWebSnapshots(ss []mfs.Snapshot) []web.Snapshot {
	out := make([]web.Snapshot, 0, len(ss))
	for _, s := range ss {
		out = append(out, web.Snapshot{Name: s.Name, Seq: s.Seq, Named: s.Named, Created: s.Created})
	}
	return out
}

func (w *webDrive) Snapshots(ctx context.Context) ([]web.Snapshot, error) {
	ss, err := w.c.o.drive.Snapshots(ctx)
	return toWebSnapshots(ss), err
}

func (w *webDrive) CreateSnapshot(ctx context.Context, name string) (web.Snapshot, error) {
	s, err := w.c.o.drive.CreateSnapshot(ctx, name)
	if err != nil {
		return web.Snapshot{}, err
	}
	return toWebSnapshots([]mfs.Snapshot{s})[0], nil
}

func (w *webDrive) Check(ctx context.Context, req mfs.CheckRequest, progress func(mfs.RepairProgress)) (*mfs.RepairReport, error) {
	if w.c.o.repair == nil {
		return nil, errors.New("the drive is mounted read-only: check needs a read-write mount")
	}
	return w.c.o.repair.Check(ctx, req, progress)
}

func runWebURL(e *env) error {
	fl := newFlagSet(e, "web-url", "web-url [--data DIR]", `
Print a login address for the mounted drive's web app. Open it in a browser
within a minute: it works once, and gives that browser a session (kept in the
page's storage, never in a cookie) that lasts until the drive is unmounted, or
a week. Scripts use the API with the token in DATA/web.token, and Prometheus
/metrics with DATA/metrics.token (see docs/API.md).`)
	dataDir := dataDirFlag(e, fl)
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("web-url takes no arguments")
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var l webLoginReply
	if err := newControlClient(dir).getJSON(ctx, "POST", "/web/login", &l); err != nil {
		if strings.Contains(err.Error(), "404 Not Found") {
			return fmt.Errorf("the mount of the drive at %s runs an older meshdrive, which hands out no login codes; unmount it and mount it again", dir)
		}
		return err
	}
	fmt.Fprintln(e.stdout, l.URL)
	return nil
}

type webLoginReply struct {
	URL string `json:"url"`
}

// webEndUploadsReply is POST /web/end-uploads.
type webEndUploadsReply struct {
	Ended int `json:"ended"`
}

// webEndUploads ends the web app's uploads in flight before meshdrive
// unmount unmounts: a stalled one would hold a file of the mount open and
// the unmount would fail as busy.
func (c *controlServer) webEndUploads(w http.ResponseWriter, r *http.Request) {
	n := 0
	if srv := c.web.Load(); srv != nil {
		n = srv.EndUploads(5 * time.Second)
	}
	writeJSON(w, http.StatusOK, webEndUploadsReply{Ended: n})
}

// webLogin answers web-url: a login address with a fresh single-use code
// (the control socket is 0600: only the mount's user gets one).
func (c *controlServer) webLogin(w http.ResponseWriter, r *http.Request) {
	srv := c.web.Load()
	if srv == nil {
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("the drive at %s is mounted without its web app (--web off); remount it without --web off", c.o.dataDir)})
		return
	}
	writeJSON(w, http.StatusOK, webLoginReply{URL: srv.LoginURL()})
}
