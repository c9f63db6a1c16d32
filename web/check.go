package web

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/meshdrive/meshdrive/journal/href"
	"github.com/meshdrive/meshdrive/journal/repair"
)

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
	PathHref string          `json:"path_href,omitempty"` // Path %-encoded, when it is not UTF-8
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
	st := CheckState{Running: c.running, Path: "/" + c.req.Path, PathHref: href.IfNotUTF8("/" + c.req.Path), Verify: c.req.Verify, Repair: c.req.Repair,
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
	Path     string `json:"path"`
	PathHref string `json:"path_href"` // Path %-encoded from its bytes (bodyPath)
	Verify   bool   `json:"verify"`
	Repair   bool   `json:"repair"`
}

// checkStart starts a check in the background; GET /api/v1/check follows it.
func (s *Server) checkStart(w http.ResponseWriter, r *http.Request) {
	var req checkRequest
	if r.ContentLength != 0 && !decodeBody(w, r, &req) {
		return
	}
	rel, err := bodyPath("path", req.Path, req.PathHref)
	if err != nil {
		fsError(w, "check", err)
		return
	}
	if rel != "" {
		// A path that is not there is the request's mistake, answered now,
		// not a check that starts and stops with the drive's own words.
		root, err := s.openRoot()
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "not_mounted", "the drive is not mounted at "+s.o.Mountpoint+" any more ("+err.Error()+"); mount it again")
			return
		}
		_, err = root.Lstat(rel)
		root.Close()
		if err != nil {
			fsError(w, "check /"+rel, err)
			return
		}
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
		var rep *repair.Report
		err := safely(s.log, "check", func() (err error) {
			rep, err = s.o.Drive.Check(ctx, creq, func(p repair.Progress) {
				c.mu.Lock()
				c.progress = p
				c.mu.Unlock()
			})
			return err
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
