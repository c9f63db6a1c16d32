package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/meshdrive/meshdrive/fs"
	"golang.org/x/sys/unix"
)

// controlClient talks to a running mount over DATA/control.sock.
type controlClient struct {
	dir  string
	http *http.Client
}

func newControlClient(dir string) *controlClient {
	sock := filepath.Join(dir, controlSock)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &controlClient{dir: dir, http: &http.Client{Transport: tr}}
}

// notMounted is the one-line answer when no mount serves the socket.
func (c *controlClient) notMounted() error {
	if _, err := loadConfig(c.dir); err != nil {
		return err // no drive there: mounting it would make a new one
	}
	if _, mp := lockHolder(c.dir); mp != "" && !lockHeld(c.dir) {
		// A mount killed (kill -9, a crash) leaves its record in
		// DATA/lock and, often, a dead mount that mount refuses.
		if deadMount(mp) {
			return fmt.Errorf("drive at %s is not mounted: its mount process is gone and left a dead mount at %s; "+
				"clear it with meshdrive unmount %s, then run meshdrive mount --data %s %s", c.dir, mp, mp, c.dir, mp)
		}
	}
	return fmt.Errorf("drive at %s is not mounted; run meshdrive mount --data %s MOUNTPOINT", c.dir, c.dir)
}

// deadMount reports whether mp is a mount whose process is gone. (Its
// root's attributes may still come from the kernel's cache: stat can
// succeed; a read of the directory cannot.)
func deadMount(mp string) bool {
	d, err := os.Open(mp)
	if err == nil {
		_, err = d.Readdirnames(1)
		d.Close()
	}
	return deadMountErr(err)
}

// deadMountErr reports whether err is what a mount whose process is gone
// answers.
func deadMountErr(err error) bool {
	return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED)
}

// mountStartWait bounds how long a command waits for the control socket
// of a mount that is starting (a variable for tests).
var mountStartWait = 60 * time.Second

func (c *controlClient) do(ctx context.Context, method, path string) (*http.Response, error) {
	deadline := time.Now().Add(mountStartWait)
	var resp *http.Response
	for {
		req, err := http.NewRequestWithContext(ctx, method, "http://meshdrive"+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err = c.http.Do(req)
		if err == nil {
			break
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			return nil, fmt.Errorf("control socket of the drive at %s: %w", c.dir, err)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("no permission to reach the control socket of the drive at %s: run meshdrive as the user who mounted it", c.dir)
		}
		// A mount that holds the drive's lock but does not answer yet is
		// starting: the folder can show as mounted a moment before its
		// control socket listens. Wait for it rather than say "not
		// mounted" to a command run right after the mount.
		pid, mp := lockHolder(c.dir)
		if mp == "" || !lockHeld(c.dir) {
			return nil, c.notMounted()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the drive at %s is held by its mount process (pid %d, at %s), but its control socket %s did not answer within %v: "+
				"see the mount's log (%s for a --daemon mount), or unmount it (meshdrive unmount %s) and mount again",
				c.dir, pid, mp, filepath.Join(c.dir, controlSock), mountStartWait, filepath.Join(c.dir, logFile), mp)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var ae apiError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			return nil, errors.New(ae.Error)
		}
		return nil, fmt.Errorf("control socket: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

func (c *controlClient) getJSON(ctx context.Context, method, path string, v any) error {
	resp, err := c.do(ctx, method, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func runStatus(e *env) error {
	fl := newFlagSet(e, "status", "status [--data DIR] [--json] [PATH]", `
Show the mounted drive: its nodes (up or down, latency, free space, the
objects each holds: shards and the drive's key, config and root record;
node list counts the shards alone), the upload queue (files, bytes, rate, ETA), the cache, and whether
everything written is grid-durable. With PATH (a file or folder inside the
mount, or a path relative to the drive's root): its state (durable, degraded
or local), blocks and bytes still pending upload, and whether its blocks on
the grid are in the local cache: fully, partly or not (blocks not yet
uploaded are local anyway), whether it is pinned (meshdrive pin) and how much
of it is on this machine's disk ("local: fully" once a pinned folder can be
read with no node reachable). A folder sums its files. Talks to the running
mount.`)
	dataDir := dataDirFlag(e, fl)
	asJSON := fl.Bool("json", false, "print JSON")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("status takes at most one PATH")
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	c := newControlClient(dir)
	if len(pos) == 1 {
		q := url.Values{"path": {pos[0]}}
		if abs := cliAbs(pos[0]); abs != "" {
			q.Set("abs", abs)
		}
		var rep pathReport
		if err := c.getJSON(ctx, "GET", "/status?"+q.Encode(), &rep); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, rep)
		}
		fmt.Fprintf(e.stdout, "%s (%s): %s\n", showName(pathOf(rep.Path, rep.PathHref)), rep.Type, rep.State)
		if rep.Type == "dir" {
			fmt.Fprintf(e.stdout, "  %d files, %s\n", rep.Files, humanBytes(rep.Size))
		} else if rep.Type == "file" {
			fmt.Fprintf(e.stdout, "  %s\n", humanBytes(rep.Size))
		}
		fmt.Fprintf(e.stdout, "  %d blocks, %d pending upload (%s)\n", rep.Blocks, rep.PendingBlocks, humanBytes(rep.PendingBytes))
		printShardsDown(e.stdout, &rep)
		if rep.LostBlocks > 0 {
			fmt.Fprintf(e.stdout, "  %d blocks lost: reading them fails (EIO); restore the file from a copy, or delete it\n", rep.LostBlocks)
		}
		printCached(e.stdout, &rep)
		printPinned(e.stdout, &rep)
		return nil
	}
	var rep statusReport
	if err := c.getJSON(ctx, "GET", "/status", &rep); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, rep)
	}
	printStatus(e.stdout, &rep)
	return nil
}

// printShardsDown says, for status PATH, how many shards of its data the
// nodes that answer hold when some that hold the rest are down.
func printShardsDown(w io.Writer, r *pathReport) {
	if len(r.Down) == 0 {
		return
	}
	down, holds := strings.Join(r.Down, ", "), "which holds the rest, is down"
	if len(r.Down) > 1 {
		holds = "which hold the rest, are down"
	}
	fmt.Fprintf(w, "  %d of %d shards reachable (the fewest of any of its segments; any %d read it): %s, %s\n",
		r.ShardsUp, r.N, r.K, down, holds)
	if r.ShardsUp < r.K {
		fmt.Fprintf(w, "  fewer than k: reading what is not in the local cache fails until enough of them are back\n")
	}
	fmt.Fprintf(w, "  %s\n", bringBack(r.Down))
}

// bringBack says what to do about nodes that are down.
func bringBack(down []string) string {
	return fmt.Sprintf("bring %s back (start its meshdrive node serve, mount its disk, or check its S3 endpoint); "+
		"one gone for good: meshdrive node remove NAME (repair rebuilds its shards)", strings.Join(down, ", "))
}

// printCached prints the cache line of status PATH.
func printCached(w io.Writer, r *pathReport) {
	switch {
	case r.Type != "file" && r.Type != "dir":
		return
	case r.GridBlocks == 0 && r.Blocks == 0:
		fmt.Fprintf(w, "  cached: %s (no data)\n", r.Cached)
		return
	case r.GridBlocks == 0:
		fmt.Fprintf(w, "  cached: %s (nothing uploaded yet: every block is in the local journal)\n", r.Cached)
		return
	}
	fmt.Fprintf(w, "  cached: %s (%d of %d uploaded blocks in the local cache, %s of %s",
		r.Cached, r.CachedBlocks, r.GridBlocks, humanBytes(r.CachedBytes), humanBytes(r.GridBytes))
	if r.Type == "dir" {
		fmt.Fprintf(w, "; %d of %d files fully", r.CachedFiles, r.Files)
	}
	fmt.Fprintln(w, ")")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, r *statusReport) {
	fmt.Fprintf(w, "drive %s at %s\n", r.DriveID, showName(pathOf(r.DataDir, r.DataDirHref)))
	ro := ""
	if r.ReadOnly {
		ro = ", read-only"
	}
	fmt.Fprintf(w, "  mounted at %s (pid %d%s)\n", showName(pathOf(r.Mountpoint, r.MountpointHref)), r.PID, ro)
	if r.Web != "" {
		fmt.Fprintf(w, "  web app at %s (meshdrive web-url prints a login address)\n", r.Web)
	}
	state := r.State
	switch r.State {
	case "durable":
		state = "durable: everything written is on the grid"
	case "degraded":
		state = "degraded: on the grid, some segments owe repair"
	case "local":
		state = "not yet durable: data waits in the local journal"
		if r.ReadOnly && r.Uploads.Bytes > 0 {
			state += " (a read-only mount does not upload it: mount read-write)"
		}
	case "lost":
		state = "NOT safe: some files cannot be read from anywhere (LOST below)"
	}
	if r.Metadata.TakenOver && r.State == "local" {
		// The data does not wait: nothing goes up from here any more.
		state = "NOT durable, and nothing written here will be: another computer has written this drive since (metadata below says what to do)"
	} else if r.Metadata.TakenOver {
		state += "; but another computer has written this drive since, and nothing written here from now on reaches the grid (metadata below says what to do)"
	}
	fmt.Fprintf(w, "  %s\n", state)
	if l := r.Lost; l != nil {
		fmt.Fprintf(w, "  LOST: %s\n", lostSentence(l))
		fmt.Fprintf(w, "  while files are lost every snapshot is kept, and the grid grows by each one: an older version may be under .snapshots\n")
	}
	online := "online"
	if !r.Online {
		online = "OFFLINE: no node reachable"
	}
	if r.OfflineSince != nil {
		fmt.Fprintf(w, "  %s\n", offlineLine(r, time.Now()))
	}
	fmt.Fprintf(w, "\nnodes: %d of %d up, k=%d m=%d (%s)\n", r.NodesUp, r.NodesTotal, r.K, r.M, online)
	var down, draining []string
	var notes []string
	for _, n := range r.Nodes {
		if n.Draining {
			draining = append(draining, n.Name)
		}
		if n.Up {
			free := "free n/a"
			if n.Free >= 0 {
				free = "free " + humanBytes(n.Free)
			}
			if n.Full {
				free += " FULL"
			}
			if n.Draining {
				free += " draining"
			}
			fmt.Fprintf(w, "  %-10s up    %8.2f ms  %-16s %6s objects  %s\n", n.Name, n.LatencyMS, free, shardCount(n.Shards), n.URL)
			if s := spaceNote(n); s != "" {
				notes = append(notes, s)
			}
		} else {
			fmt.Fprintf(w, "  %-10s DOWN  %s  (%s)\n", n.Name, n.URL, joinLines(n.Error))
			down = append(down, n.Name)
		}
	}
	for _, name := range draining {
		notes = append(notes, fmt.Sprintf("%s is draining (a node drain that did not finish): the background repair moves its shards to the other nodes; "+
			"meshdrive node drain %s finishes it and removes the node", name, name))
	}
	for _, s := range notes {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if len(down) > 0 {
		fmt.Fprintf(w, "  down: %s\n", bringBack(down))
	}
	u := r.Uploads
	fmt.Fprintf(w, "\nuploads: %s, %s queued", plural(u.Files, "file", "files"), humanBytes(u.Bytes))
	if u.InFlightBytes > 0 {
		fmt.Fprintf(w, " (a %s segment in flight)", humanBytes(u.InFlightBytes))
	}
	if u.Bytes > 0 {
		fmt.Fprintf(w, ", %s/s, ETA %s", humanBytes(int64(u.Rate)), humanETA(u.ETASeconds))
	}
	fmt.Fprintf(w, "\n  %s made durable since mount, %s shipped to nodes", humanBytes(u.DoneBytes), humanBytes(u.ShippedBytes))
	if u.RepairOwed > 0 {
		fmt.Fprintf(w, ", %s", plural(u.RepairOwed, "segment owes repair", "segments owe repair"))
	}
	fmt.Fprintln(w)
	if u.Errors > 0 {
		fmt.Fprintf(w, "  %d upload errors, last: %s\n", u.Errors, joinLines(u.LastError))
	}
	if rp := r.Repair; rp != nil {
		printRepair(w, rp, u.RepairOwed)
	}
	md := r.Metadata
	switch {
	case md.Head == 0:
		fmt.Fprintf(w, "\nmetadata: not on the grid yet (%d changes waiting)\n", md.PendingRows)
	default:
		fmt.Fprintf(w, "\nmetadata: checkpoint %d on the grid since %s, %d changes waiting\n", md.Head, md.HeadTime.Local().Format(time.DateTime), md.PendingRows)
	}
	if md.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", joinLines(md.LastError))
	}
	printBandwidth(w, r)
	fmt.Fprintf(w, "\ngarbage: %s no file refers to (kept snapshots may)", humanBytes(r.GC.GarbageBytes))
	if l := r.GC.Last; l != nil {
		fmt.Fprintf(w, "; the last collection, %s, freed %s", l.Finish.Local().Format(time.DateTime), humanBytes(l.FreedBytes))
	}
	fmt.Fprintln(w)
	printCacheStats(w, r.Cache)
}

// lostSentence says which files lost blocks and the way out, for status
// and sync.
func lostSentence(l *fs.LostReport) string {
	more := ""
	if l.Files > 5 {
		more = fmt.Sprintf(" and %d more (status --json names up to 100)", l.Files-5)
	}
	paths := showNames(pathsOf(l.Paths, l.PathsHref))
	return fmt.Sprintf("%d blocks of %d files cannot be read from anywhere; restore those files from a copy, or delete them: %s%s",
		l.Blocks, l.Files, strings.Join(paths[:min(5, len(paths))], ", "), more)
}

// printCacheStats says what the cache holds and how reads went, in
// sentences; the counters themselves are on /metrics. Reads of the
// journal's own copies of blocks written here (kept after their upload,
// or not uploaded yet) never reach the cache but are served here too; a
// daemon from before they were counted sends none, and the line reads
// as it did then.
func printCacheStats(w io.Writer, raw json.RawMessage) {
	var cs struct {
		MemBytes, DiskBytes                      int64
		Hits, DiskHits, Misses                   uint64
		KeptReads, StagedReads                   uint64
		FetchErrors, DiskErrors, PrefetchDropped uint64
	}
	if json.Unmarshal(raw, &cs) != nil {
		return
	}
	fmt.Fprintf(w, "\ncache: %s in memory, %s on disk\n", humanBytes(cs.MemBytes), humanBytes(cs.DiskBytes))
	journal := cs.KeptReads + cs.StagedReads
	here := cs.Hits + cs.DiskHits + journal
	if reads := here + cs.Misses; reads == 0 {
		fmt.Fprintln(w, "  no block read since mount")
	} else {
		fromJournal := ""
		if journal > 0 {
			fromJournal = fmt.Sprintf(", %d from the journal's local copies of files written here", journal)
		}
		fmt.Fprintf(w, "  %.0f%% of %d block reads since mount were served here (%d from memory, %d from disk%s); %d went to the grid\n",
			100*float64(here)/float64(reads), reads, cs.Hits, cs.DiskHits, fromJournal, cs.Misses)
	}
	if cs.FetchErrors > 0 {
		fmt.Fprintf(w, "  %d fetches from the grid failed (see the node list above)\n", cs.FetchErrors)
	}
	if cs.DiskErrors > 0 {
		fmt.Fprintf(w, "  %d reads or writes of the disk cache failed; corrupt cache files are dropped and fetched again\n", cs.DiskErrors)
	}
	if cs.PrefetchDropped > 0 {
		fmt.Fprintf(w, "  read-ahead skipped %d blocks because its queue was full\n", cs.PrefetchDropped)
	}
}

func humanBytes(n int64) string {
	if n < 0 {
		return "?"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f EiB", f/unit)
}

func humanETA(s float64) string {
	if s < 0 {
		return "unknown"
	}
	return (time.Duration(s) * time.Second).Round(time.Second).String()
}

// joinLines is an error's text for one line of status or sync output:
// the errors it joins (one a line, errors.Join) separated by "; ", and
// other control characters escaped (plainText).
func joinLines(s string) string {
	return plainText(strings.ReplaceAll(strings.TrimSpace(s), "\n", "; "))
}

func runSync(e *env) error {
	fl := newFlagSet(e, "sync", "sync [--data DIR] [--timeout DURATION]", `
Wait until everything written to the mounted drive so far is grid-durable
(every segment stored on the nodes, and the metadata naming it in a checkpoint
on the grid). Shows a progress bar (bytes, rate, ETA)
on a terminal, plain progress lines otherwise, and on stderr why an upload
failed (too few nodes up, a full node...; the mount retries it, and says so
at most every 30 s). Talks to the running mount.

Exits 0 once everything is grid-durable. Blocks that are lost (they cannot be
read from anywhere: status says LOST and names their files) are not waited
for: sync waits for everything else, then names those files and exits 1;
restore them from a copy, or delete them, and sync exits 0 again. It exits 1
too when --timeout passes or the mount goes away, and at once on a read-only
mount whose journal holds data an earlier mount did not upload (only a
read-write mount uploads).`)
	dataDir := dataDirFlag(e, fl)
	timeout := fl.Duration("timeout", 0, "give up after this long (0 = wait as long as it takes)")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("sync takes no arguments")
	}
	if *timeout < 0 {
		return usageError("--timeout %v: want a positive duration like 5m, or 0 to wait as long as it takes", *timeout)
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	resp, err := newControlClient(dir).do(ctx, "POST", "/sync")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tty := isTerminal(e.stdout)
	var bar *progressbar.ProgressBar
	var total, startDone int64 = -1, 0
	lastPrint := time.Time{}
	// Upload errors during the sync are shown (the mount retries them),
	// one every half minute at most: without them a stalled sync said
	// only "0 B/s, ETA unknown".
	errsSeen, lastErr, errNew, errShown := int64(-1), "", false, time.Time{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l syncLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("sync: bad progress line: %v", err)
		}
		if l.Error != "" {
			return fmt.Errorf("sync did not finish: %s", l.Error)
		}
		if l.Lost != nil {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(e.stdout)
			}
			return fmt.Errorf("sync: everything else written is grid-durable, but %s", lostSentence(l.Lost))
		}
		if total < 0 {
			startDone = l.DoneBytes
		}
		if errsSeen < 0 {
			errsSeen = l.Errors
		}
		if l.Errors > errsSeen && l.LastError != "" {
			errsSeen, lastErr, errNew = l.Errors, joinLines(l.LastError), true
		}
		if errNew && time.Since(errShown) >= 30*time.Second {
			errNew, errShown = false, time.Now()
			if bar != nil {
				bar.Clear()
			}
			fmt.Fprintf(e.stderr, "sync: an upload failed; the mount retries it: %s\n", lastErr)
		}
		// The total grows when more data is written during the sync.
		total = max(total, l.DoneBytes-startDone+l.Pending, 1)
		if tty {
			if bar == nil {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(e.stdout), progressbar.OptionShowBytes(true),
					progressbar.OptionSetDescription("uploading"), progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth(),
					progressbar.OptionThrottle(100*time.Millisecond))
			}
			if bar.GetMax64() != total {
				bar.ChangeMax64(total)
			}
			bar.Set64(total - l.Pending)
		} else if l.Durable || time.Since(lastPrint) >= 2*time.Second {
			lastPrint = time.Now()
			if !l.Durable {
				fmt.Fprintf(e.stdout, "sync: %s left, %s/s, ETA %s\n", humanBytes(l.Pending), humanBytes(int64(l.Rate)), humanETA(l.ETASeconds))
			}
		}
		if l.Durable {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(e.stdout)
			}
			fmt.Fprintf(e.stdout, "sync: everything written is grid-durable\n")
			return nil
		}
	}
	if ctx.Err() != nil {
		if lastErr != "" {
			return fmt.Errorf("sync: gave up before everything was durable (%v); the upload goes on in the mount; its last error: %s", context.Cause(ctx), lastErr)
		}
		return fmt.Errorf("sync: gave up before everything was durable (%v); the upload goes on in the mount", context.Cause(ctx))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("sync: the mount stopped answering: %w", err)
	}
	return errors.New("sync: the mount ended the stream before everything was durable (was it unmounted?)")
}

func runCache(e *env) error {
	fl := newFlagSet(e, "cache", "cache clear [--data DIR]", `
cache clear drops every cached block that is not pinned, from memory and from
disk. Blocks that are not yet on the grid live in the journal, not the cache,
so nothing is lost. Talks to the running mount.`)
	dataDir := dataDirFlag(e, fl)
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "clear" {
		return usageError("cache needs the subcommand clear: meshdrive cache clear [--data DIR]")
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var rep clearReport
	if err := newControlClient(dir).getJSON(ctx, "POST", "/cache/clear", &rep); err != nil {
		return err
	}
	var b, a map[string]any
	json.Unmarshal(rep.Before, &b)
	json.Unmarshal(rep.After, &a)
	num := func(m map[string]any, k string) int64 { f, _ := m[k].(float64); return int64(f) }
	fmt.Fprintf(e.stdout, "cache cleared: memory %s -> %s, disk %s -> %s\n",
		humanBytes(num(b, "MemBytes")), humanBytes(num(a, "MemBytes")),
		humanBytes(num(b, "DiskBytes")), humanBytes(num(a, "DiskBytes")))
	return nil
}

// shardCount is a node's shard count for people: "?" while the node has
// not counted them yet (an S3 bucket's count runs in the background).
func shardCount(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}
