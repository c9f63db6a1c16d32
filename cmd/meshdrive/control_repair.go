package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshdrive/meshdrive/fs"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// startRepair makes the mount's repairer and starts its background pass
// (none on a read-only mount). Nodes the config marks draining are
// marked in the grid first, so the pass moves their shards off.
func startRepair(ctx context.Context, o mountOptions, cfg *Config, grid *remoteopen.Grid, drive *fs.Drive, log *slog.Logger) *fs.Repairer {
	if o.readOnly {
		return nil
	}
	for _, n := range cfg.Nodes {
		if n.Draining {
			if err := grid.SetDraining(n.Name, true); err != nil {
				log.Warn("node marked draining in the config cannot drain", "node", n.Name, "err", err)
			}
		}
	}
	return drive.StartRepair(ctx, fs.RepairOptions{Below: o.repairBelow, Limit: o.repairLimit, Interval: o.repairInterval})
}

// checkLine is one line of POST /check and POST /nodes/drain.
type checkLine struct {
	Progress *fs.RepairProgress `json:"progress,omitempty"`
	Report   *fs.RepairReport   `json:"report,omitempty"`
	Done     bool               `json:"done,omitempty"`
	Error    string             `json:"error,omitempty"`
}

// stream answers with JSON lines: fn's progress as it comes, then its
// final line.
func (c *controlServer) stream(w http.ResponseWriter, fn func(send func(checkLine)) checkLine) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	last := time.Time{}
	send := func(l checkLine) {
		if l.Progress != nil && time.Since(last) < 100*time.Millisecond && l.Progress.Done < l.Progress.Total {
			return
		}
		last = time.Now()
		enc.Encode(l)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	final := fn(send)
	enc.Encode(final)
}

func (c *controlServer) check(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := fs.CheckRequest{Verify: q.Get("verify") == "1", Repair: q.Get("repair") == "1"}
	if p := q.Get("path"); p != "" {
		rel, err := c.relPath(p, q.Get("abs"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
			return
		}
		req.Path = rel
	}
	if c.refuseReadOnly(w, "check (it records what it finds and repairs in the journal)") {
		return
	}
	if c.o.repair == nil {
		writeJSON(w, http.StatusConflict, apiError{"check: the mount runs no repairer; unmount it and mount it again"})
		return
	}
	c.stream(w, func(send func(checkLine)) checkLine {
		rep, err := c.o.repair.Check(r.Context(), req, func(p fs.RepairProgress) { send(checkLine{Progress: &p}) })
		if err != nil {
			return checkLine{Error: err.Error()}
		}
		if req.Path == "" {
			c.checkDriveMeta(r.Context(), rep, req.Repair)
		}
		// The blocks not yet uploaded (the path's files', or all), on the
		// local disk: a disk that damaged them is found now, not when the
		// uploader reaches them.
		rep.Staged, err = c.o.drive.CheckStaged(r.Context(), req.Path, req.Repair, func(d, t int) {
			send(checkLine{Progress: &fs.RepairProgress{Phase: "staged", Done: d, Total: t}})
		})
		if err != nil {
			return checkLine{Error: fmt.Sprintf("the blocks not yet uploaded could not be checked on the local disk: %v; check the disk under %s", err, c.o.dataDir)}
		}
		if req.Repair && len(rep.MetaUnrecoverable) > 0 && len(rep.Down) == 0 {
			// Records below k cannot be rebuilt: a full record makes
			// the newest chain stand without them. Not while nodes are
			// down: the records may only be out of reach (the report
			// says to start the nodes), and the write would fail for
			// want of nodes, its error shown as one of the drive key's.
			if seq, err := c.o.drive.CheckpointFull(r.Context()); err != nil {
				rep.MetaError = strings.TrimPrefix(rep.MetaError+"; write a full metadata record: "+err.Error(), "; ")
			} else {
				rep.MetaFull = seq
			}
		}
		return checkLine{Report: rep, Done: true}
	})
}

// keepDriveMeta stores the drive key and config again on nodes that lost
// them, at once and every interval, as the background repair brings back
// their shards: a wiped node or a replaced disk was refilled by repair
// but, until someone ran check --repair, recover could not start from it.
func (c *controlServer) keepDriveMeta(ctx context.Context, every time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var rep fs.RepairReport
		c.checkDriveMeta(ctx, &rep, true)
		switch {
		case ctx.Err() != nil:
			return
		case rep.MetaRestored:
			c.o.log.Info("stored the drive key and config again on nodes that had lost them", "nodes", strings.Join(rep.MetaMissing, ", "))
		case rep.MetaError != "":
			c.o.log.Warn("the drive key and config could not be stored again on nodes that lost them; the next pass tries again (meshdrive check --repair now)",
				"nodes", strings.Join(rep.MetaMissing, ", "), "err", rep.MetaError)
		}
		t.Reset(every)
	}
}

// checkDriveMeta finds the nodes that answer without the drive's wrapped
// key or its config (under their names or the pre-2026-12 ones): a node
// wiped or a bucket emptied gets its shards back from repair and its root
// record from the next checkpoint, but nothing else writes these two, and
// meshdrive recover --node cannot start from a node without them. With
// fix (check --repair, and the mount's keepDriveMeta), they are stored
// again on every node.
func (c *controlServer) checkDriveMeta(ctx context.Context, rep *fs.RepairReport, fix bool) {
	grid := c.o.grid
	members := grid.Members()
	lacks := make(map[string]bool, len(members))
	unknown := map[string]bool{}
	var keys [][]byte // the wrapped keys the nodes hold
	for _, names := range [][2]string{{metaKey, "meta/" + metaKey}, {metaConfig, "meta/" + metaConfig}} {
		held := map[string]bool{}
		for _, name := range names {
			for _, mc := range grid.GetMetaAll(ctx, name) {
				switch {
				case mc.Err == nil:
					held[mc.Node] = true
					if names[0] == metaKey {
						keys = append(keys, mc.Data)
					}
				case !errors.Is(mc.Err, remoteopen.ErrNotFound):
					unknown[mc.Node] = true // did not answer: not known
				}
			}
		}
		for _, m := range members {
			if !held[m.Name] && !unknown[m.Name] {
				lacks[m.Name] = true
			}
		}
	}
	for _, m := range members {
		if lacks[m.Name] && !unknown[m.Name] && !m.Draining {
			rep.MetaMissing = append(rep.MetaMissing, m.Name)
		}
	}
	if !fix || len(rep.MetaMissing) == 0 || ctx.Err() != nil {
		return
	}
	wrapped, err := os.ReadFile(filepath.Join(c.o.dataDir, keyFile))
	if err != nil {
		rep.MetaError = fmt.Sprintf("store the drive key again: %v", err)
		return
	}
	// A passwd that ran since key.json was read has put the key under
	// the new passphrase on the nodes: this older copy must not undo it.
	if len(keys) > 0 && !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, wrapped) }) {
		rep.MetaError = fmt.Sprintf("%s is not the drive key the nodes hold (a meshdrive passwd running?); nothing was stored: run check --repair again once it has finished", keyFile)
		return
	}
	n := len(members) // those that did not answer may miss the copies
	for {
		if got, err := grid.PutMeta(ctx, metaKey, wrapped); err != nil || got < n-len(unknown) {
			rep.MetaError = fmt.Sprintf("the drive key reached %d of %d nodes (%v)", got, n, err)
			return
		}
		// A passwd that started since key.json was read may have put
		// the new key on the nodes before this put of the old one. It
		// writes key.json before the nodes: when key.json still holds
		// what was put, any passwd's node writes come after this put;
		// when it changed, the newer key goes to the nodes too.
		now, err := os.ReadFile(filepath.Join(c.o.dataDir, keyFile))
		if err != nil {
			rep.MetaError = fmt.Sprintf("read the drive key again after storing it: %v; run meshdrive check --repair to store the current one", err)
			return
		}
		if bytes.Equal(now, wrapped) {
			break
		}
		if ctx.Err() != nil {
			rep.MetaError = fmt.Sprintf("%s changed (a meshdrive passwd) while the drive key was stored; run meshdrive check --repair to store the current one", keyFile)
			return
		}
		wrapped = now
	}
	// Under the config's lock, so a node change's newer config is not
	// overwritten by this one.
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	cfg, err := c.o.cfg.marshal()
	if err != nil {
		rep.MetaError = fmt.Sprintf("store the drive config again: %v", err)
		return
	}
	if got, err := grid.PutMeta(ctx, metaConfig, grid.Sealer().SealMeta(configSealName, cfg)); err != nil || got < n-len(unknown) {
		rep.MetaError = fmt.Sprintf("the drive config reached %d of %d nodes (%v)", got, n, err)
		return
	}
	rep.MetaRestored = true
}

// relPath turns a status or check path argument into a path relative to
// the drive's root.
func (c *controlServer) relPath(rel, abs string) (string, error) {
	if abs != "" {
		inside := false
		// abs has its symlinks resolved (cliAbs); the mountpoint as the
		// config names it may not.
		for _, mp := range []string{c.o.mountpoint, c.realMountpoint()} {
			if r, err := filepath.Rel(mp, abs); mp != "" && err == nil && r != ".." && !strings.HasPrefix(r, "../") {
				rel, inside = r, true
				break
			}
		}
		if !inside && filepath.IsAbs(rel) {
			return "", fmt.Errorf("%s is not inside the drive mounted at %s", showName(abs), showName(c.o.mountpoint))
		}
	}
	rel = fs.CleanPath(filepath.ToSlash(rel))
	if rel == ".snapshots" || strings.HasPrefix(rel, ".snapshots/") {
		return "", fmt.Errorf("%s is in .snapshots, the drive's read-only history: status, pin and check work on the live drive's files (meshdrive snapshot restore copies one out)", showName("/"+rel))
	}
	return rel, nil
}

// realMountpoint is the mountpoint with its symlinks resolved ("" when it
// cannot be).
func (c *controlServer) realMountpoint() string {
	c.realMPOnce.Do(func() { c.realMP, _ = filepath.EvalSymlinks(c.o.mountpoint) })
	return c.realMP
}

// cliAbs is the command line's path argument p made absolute for the
// mount to find it in the drive. The working directory may be reached
// through a symlink (a shortcut into the drive), which filepath.Abs keeps
// (it answers $PWD): the working directory, or an absolute argument's
// folder, is resolved; the last name is not (a symlink in the drive is
// itself). "" when the working directory cannot be read.
func cliAbs(p string) string {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return ""
		}
		if r, err := filepath.EvalSymlinks(wd); err == nil {
			wd = r
		}
		return filepath.Join(wd, p)
	}
	p = filepath.Clean(p)
	if d, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		return filepath.Join(d, filepath.Base(p))
	}
	return p
}

// config returns the drive config as it is now.
func (c *controlServer) config() *Config {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	return c.o.cfg
}

// updateConfig applies edit to a copy of the config, writes it to
// DATA/config.json and, sealed, to every node (so a recover sees the
// current node list), then makes it the mount's.
func (c *controlServer) updateConfig(ctx context.Context, edit func(*Config) error) error {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	nc := *c.o.cfg
	nc.Nodes = append([]NodeConfig(nil), c.o.cfg.Nodes...)
	if err := edit(&nc); err != nil {
		return err
	}
	if err := nc.validateNodes(); err != nil {
		return err
	}
	nc.Generation = c.o.cfg.Generation + 1
	b, err := nc.marshal()
	if err != nil {
		return err
	}
	path := filepath.Join(c.o.dataDir, configFile)
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	c.o.cfg = &nc
	got, err := c.o.grid.PutMeta(ctx, metaConfig, c.o.grid.Sealer().SealMeta(configSealName, b))
	if n := len(c.o.grid.Members()); err != nil || got < n {
		c.o.log.Warn("the drive config reached only some nodes; the next node change writes it again", "stored", got, "nodes", n, "err", err)
	}
	return nil
}

// validateNodes checks what a node change may break.
func (c *Config) validateNodes() error {
	names := map[string]bool{}
	for i, n := range c.Nodes {
		if n.Name == "" || n.URL == "" {
			return fmt.Errorf("node %d has no name or url", i+1)
		}
		if names[n.Name] {
			return fmt.Errorf("node name %q appears twice", n.Name)
		}
		names[n.Name] = true
	}
	return checkKM(c.K, c.M, len(c.Nodes))
}

// findNode finds a configured node by name or URL (tokens ignored).
func findNode(cfg *Config, dataDir, key string) (NodeConfig, error) {
	for _, n := range cfg.Nodes {
		if n.Name == key || n.URL == key || redactURL(n.URL) == redactURL(key) || stripUser(n.URL) == stripUser(key) ||
			nodeURL(dataDir, n.URL) == key {
			return n, nil
		}
	}
	var names []string
	for _, n := range cfg.Nodes {
		names = append(names, n.Name+" "+redactURL(n.URL))
	}
	return NodeConfig{}, fmt.Errorf("no node %q in the drive (its nodes: %s); see meshdrive node list", redactURL(key), strings.Join(names, ", "))
}

// stripUser drops the userinfo (token) of a URL.
func stripUser(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 && (strings.Index(rest, "/") < 0 || at < strings.Index(rest, "/")) {
			return s[:i+3] + rest[at+1:]
		}
	}
	return s
}

func (c *controlServer) nodeList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.nodes(r.Context()))
}

// nodes is every node's health, capacity and shard count (from a listing
// of its shards/).
func (c *controlServer) nodes(ctx context.Context) []nodeStatus {
	cfg := c.config()
	urls := map[string]string{}
	for _, n := range cfg.Nodes {
		urls[n.Name] = redactURL(n.URL)
	}
	var out []nodeStatus
	sv := c.o.grid.Survey(ctx) // exact shard counts (the node's own object count is approximate)
	for _, h := range c.o.grid.Health(ctx) {
		ns := nodeStatus{Name: h.Name, Zone: h.Zone, URL: urls[h.Name], Up: h.Up, Error: h.Err, Draining: h.Draining,
			LatencyMS: float64(h.Latency.Microseconds()) / 1000, Capacity: -1, Free: -1}
		if h.Up {
			c.space(&ns, h.Info, cfg.K)
			if n := sv.Count(h.Name); n >= 0 {
				ns.Shards = int64(n)
			}
			ns.Scrub = h.Info.Scrub
		}
		out = append(out, ns)
	}
	return out
}

func (c *controlServer) nodeStatusOf(ctx context.Context, name string) nodeStatus {
	for _, ns := range c.nodes(ctx) {
		if ns.Name == name {
			return ns
		}
	}
	return nodeStatus{Name: name}
}

// nodeAdd opens the node, checks it answers and holds no other drive,
// gives it the drive's key, adds it to the grid and the config, and
// starts a rebalancing pass.
func (c *controlServer) nodeAdd(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, zone := r.URL.Query().Get("url"), r.URL.Query().Get("zone")
	if c.o.repair == nil {
		writeJSON(w, http.StatusConflict, apiError{"the drive is mounted read-only; mount it read-write to change its nodes"})
		return
	}
	if u == "" {
		writeJSON(w, http.StatusBadRequest, apiError{"node add needs a URL"})
		return
	}
	c.addMu.Lock()
	defer c.addMu.Unlock()
	cfg := c.config()
	if n, err := findNode(cfg, c.o.dataDir, u); err == nil {
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("%s is already node %s of the drive", redactURL(u), n.Name)})
		return
	}
	u = withS3Region(u, os.Getenv("AWS_REGION")) // the region this mount opens it with, kept in the config
	if !strings.Contains(u, "://") && !filepath.IsAbs(u) {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("node URL %q: give an http(s):// or s3:// URL or an absolute directory", u)})
		return
	}
	octx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	st, err := remoteopen.Store(octx, u, remoteopen.Options{Logger: c.o.log})
	if errors.Is(err, remoteopen.ErrBadURL) {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	var info remoteopen.NodeInfo
	if err == nil {
		info, err = st.Info(octx)
	}
	if err != nil {
		what := "does not answer"
		if errors.Is(err, remoteopen.ErrUnauthorized) {
			what = "refused the access token (give it in the URL: http://TOKEN@host:port)"
		}
		writeJSON(w, http.StatusBadGateway, apiError{fmt.Sprintf("node %s %s: %v; check the URL and that it runs (meshdrive node serve)", redactURL(u), what, err)})
		return
	}
	wrapped, err := os.ReadFile(filepath.Join(c.o.dataDir, keyFile))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	if theirs, err := remoteopen.GetMeta(octx, st, metaKey); err == nil && string(theirs) != string(wrapped) {
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("node %s already holds another meshdrive drive (meta/key found); use an empty node (%s)", redactURL(u), oneDrivePerNode)})
		return
	}
	// The same store under another address (a URL spelled otherwise, a
	// symlink to a node's directory) must not join twice: see notMember.
	pctx, pcancel := context.WithTimeout(ctx, reachTimeout)
	answers, err := c.o.grid.SameStore(pctx, st)
	pcancel()
	if err != nil {
		writeJSON(w, http.StatusBadGateway, apiError{fmt.Sprintf("node %s did not take a small probe object (%v); check that it has space and runs (meshdrive node serve)", redactURL(u), err)})
		return
	}
	unchecked, err := notMember(cfg, u, answers)
	if err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	for _, n := range unchecked {
		c.o.log.Warn("node add: could not check that the new node is not this one under another address", "url", redactURL(u), "node", n.Name, "err", n.Error)
	}
	name := nextNodeName(cfg)
	if err := c.o.grid.AddMember(remoteopen.Member{Name: name, Store: c.o.stack.Wrap(name, st), Zone: zone}); err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	if got, err := c.o.grid.PutMeta(ctx, metaKey, wrapped); err != nil || got < len(c.o.grid.Members()) {
		c.o.log.Warn("the drive key reached only some nodes", "stored", got, "err", err)
	}
	err = c.updateConfig(ctx, func(nc *Config) error {
		nc.Nodes = append(nc.Nodes, NodeConfig{Name: name, URL: u, Zone: zone, ID: info.ID})
		return nil
	})
	if err != nil {
		c.o.grid.RemoveMember(name)
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	c.o.log.Info("node added; rebalancing onto it in the background", "node", name, "url", redactURL(u))
	c.o.repair.Kick(true)
	writeJSON(w, http.StatusOK, nodeAdded{nodeStatus: c.nodeStatusOf(ctx, name), Unchecked: unchecked})
}

// nodeAdded is node add's answer: the new node, and the nodes that could
// not be asked whether they are the same store (Error says why).
type nodeAdded struct {
	nodeStatus
	Unchecked []nodeStatus `json:"unchecked,omitempty"`
}

// notMember reads the answers of the drive's nodes to a probe object put
// on the store u names (remote.Grid.SameStore), and refuses it when a
// node holds the probe: two names for one store would put two "distinct"
// shards of a segment on one disk, and a drain of either name would
// delete the other's shards and meta objects. A node that did not answer
// cannot be checked; it does not block the add (a node is often added
// again under a new address because its old one broke) and is returned
// for the user to see, with the cause in its Error.
func notMember(cfg *Config, u string, answers []remoteopen.ProbeAnswer) (unchecked []nodeStatus, err error) {
	urls := map[string]string{}
	for _, n := range cfg.Nodes {
		urls[n.Name] = redactURL(n.URL)
	}
	for _, a := range answers {
		switch {
		case a.Same:
			return nil, fmt.Errorf("%s is the same node as %s (%s): a probe object written to it appeared there; give another node", redactURL(u), a.Node, urls[a.Node])
		case a.Err != nil:
			unchecked = append(unchecked, nodeStatus{Name: a.Node, URL: urls[a.Node], Error: a.Err.Error()})
		}
	}
	return unchecked, nil
}

// nextNodeName is node-N for the smallest N above every node-N in use.
func nextNodeName(cfg *Config) string {
	hi := 0
	for _, n := range cfg.Nodes {
		if v, ok := strings.CutPrefix(n.Name, "node-"); ok {
			if i, err := strconv.Atoi(v); err == nil {
				hi = max(hi, i)
			}
		}
	}
	return "node-" + strconv.Itoa(hi+1)
}

// nodeDrain marks the node draining (in the grid and the config), moves
// every shard off it, deletes what is left on it, and removes it. A drain
// cut short (kill -9) leaves the mark in the config: the next mount's
// background pass goes on with it, and running node drain again finishes.
func (c *controlServer) nodeDrain(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if c.o.repair == nil {
		writeJSON(w, http.StatusConflict, apiError{"the drive is mounted read-only; mount it read-write to change its nodes"})
		return
	}
	n, err := findNode(c.config(), c.o.dataDir, r.URL.Query().Get("node"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
		return
	}
	if err := c.o.grid.SetDraining(n.Name, true); err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	err = c.updateConfig(ctx, func(nc *Config) error {
		for i := range nc.Nodes {
			if nc.Nodes[i].Name == n.Name {
				nc.Nodes[i].Draining = true
			}
		}
		return nil
	})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	c.stream(w, func(send func(checkLine)) checkLine {
		err := c.o.repair.Drain(ctx, n.Name, func(d, t int) { send(checkLine{Progress: &fs.RepairProgress{Phase: "drain", Done: d, Total: t}}) })
		if err != nil {
			return checkLine{Error: drainAdvice(err, n.Name)}
		}
		if err := c.forget(ctx, n.Name, true); err != nil {
			return checkLine{Error: err.Error()}
		}
		c.o.log.Info("node drained and removed", "node", n.Name)
		return checkLine{Done: true}
	})
}

// drainAdvice is the line for a drain that failed: run it again, or, when
// everything is moved off a node that is down, start it or remove it
// (running the drain again would fail the same way while it is down).
func drainAdvice(err error, node string) string {
	if errors.Is(err, fs.ErrDrainedNodeDown) {
		return fmt.Sprintf("%v; start the node and run meshdrive node drain %s again to delete what is left on it, or, if it is gone for good, meshdrive node remove %s (no segment needs it any more)", err, node, node)
	}
	return err.Error() + "; run meshdrive node drain again to finish"
}

// forget removes a node from the grid and the config; clean also deletes
// the drive's meta objects from it (a drained node).
func (c *controlServer) forget(ctx context.Context, name string, clean bool) error {
	if clean {
		if err := c.o.grid.DeleteObjects(ctx, name, []string{"meta/" + metaKey, "meta/" + metaConfig, "meta/" + remoteopen.MetaRoot, "meta/meta/" + metaKey, "meta/meta/" + metaConfig}); err != nil {
			c.o.log.Warn("could not delete the drive's meta objects from a drained node", "node", name, "err", err)
		}
	}
	if err := c.o.grid.RemoveMember(name); err != nil {
		return err
	}
	return c.updateConfig(ctx, func(nc *Config) error {
		var keep []NodeConfig
		for _, x := range nc.Nodes {
			if x.Name != name {
				keep = append(keep, x)
			}
		}
		nc.Nodes = keep
		return nil
	})
}

// nodeRemove forgets a dead node: repair regenerates its shards.
func (c *controlServer) nodeRemove(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if c.o.repair == nil {
		writeJSON(w, http.StatusConflict, apiError{"the drive is mounted read-only; mount it read-write to change its nodes"})
		return
	}
	n, err := findNode(c.config(), c.o.dataDir, r.URL.Query().Get("node"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
		return
	}
	ns := c.nodeStatusOf(ctx, n.Name)
	if err := c.forget(ctx, n.Name, false); err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	c.o.log.Info("node removed; repair regenerates its shards in the background", "node", n.Name)
	c.o.repair.Kick(false)
	writeJSON(w, http.StatusOK, ns)
}
