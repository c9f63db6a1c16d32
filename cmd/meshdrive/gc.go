package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/meshdrive/meshdrive/fs"
)

// gcLine is one line of POST /gc: progress, then the result.
type gcLine struct {
	Done  int         `json:"done"`
	Total int         `json:"total"`
	Stats *fs.GCStats `json:"stats,omitempty"`
	Error string      `json:"error,omitempty"`
}

func (c *controlServer) gc(w http.ResponseWriter, r *http.Request) {
	if c.refuseReadOnly(w, "gc") {
		return
	}
	q := r.URL.Query()
	o := fs.GCOptions{DryRun: q.Get("dry_run") == "1"}
	if g := q.Get("grace"); g != "" {
		d, err := time.ParseDuration(g)
		if err != nil || d <= 0 {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("grace %q: want a duration like 1h", g)})
			return
		}
		o.OrphanGrace = d
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	lines := make(chan gcLine, 16)
	o.Progress = func(done, total int) {
		select {
		case lines <- gcLine{Done: done, Total: total}:
		default:
		}
	}
	res := make(chan gcLine, 1)
	go func() {
		st, err := c.o.drive.CollectGarbage(r.Context(), o)
		l := gcLine{Stats: st}
		if err != nil {
			l.Error = err.Error()
		}
		res <- l
	}()
	for {
		select {
		case l := <-lines:
			enc.Encode(l)
			flush()
		case l := <-res:
			enc.Encode(l)
			flush()
			return
		}
	}
}

func runGC(e *env) error {
	fl := newFlagSet(e, "gc", "gc [--data DIR] [--dry-run] [--grace D]", `
Collect garbage now: delete from the grid the data no file, no kept snapshot
and not the newest metadata checkpoint refers to. Segments with no live block
are deleted; segments less than half live are compacted (their live blocks
copied into new segments, then the old ones deleted once the new places are
on the grid); shards no checkpoint names (an upload cut short, a node that was
down during a delete) are deleted once older than --grace. A crash at any
step loses nothing: the next gc finishes the job. The mount also collects in
the background (mount --gc-interval). Talks to the running mount.`)
	dataDir := dataDirFlag(e, fl)
	dry := fl.Bool("dry-run", false, "only report what would be freed")
	grace := fl.Duration("grace", time.Hour, "age after which a shard no checkpoint names is an orphan")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("gc takes no arguments; see meshdrive gc --help")
	}
	if *grace <= 0 {
		return usageError("--grace %v: want a positive duration", *grace)
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	path := "/gc?grace=" + grace.String()
	if *dry {
		path += "&dry_run=1"
	}
	resp, err := newControlClient(dir).do(ctx, "POST", path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tty := isTerminal(e.stdout)
	var bar *progressbar.ProgressBar
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l gcLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("gc: bad progress line: %v", err)
		}
		if l.Error != "" {
			return fmt.Errorf("gc did not finish: %s; run it again (nothing is lost)", l.Error)
		}
		if l.Stats != nil {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(e.stdout)
			}
			printGC(e, l.Stats)
			return nil
		}
		if tty && l.Total > 0 {
			if bar == nil {
				bar = progressbar.NewOptions(l.Total, progressbar.OptionSetWriter(e.stdout),
					progressbar.OptionSetDescription("collecting"), progressbar.OptionShowCount())
			}
			bar.Set(l.Done)
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("gc: %w", err)
	}
	return context.Cause(ctx)
}

func printGC(e *env, st *fs.GCStats) {
	verb := "freed"
	if st.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(e.stdout, "gc: %s %s in %d segments (%d deleted, %d compacted, %s of live blocks moved) and %d orphaned shards (%s); %d segments looked at in %.1fs\n",
		verb, humanBytes(st.FreedBytes), st.DeadSegments+st.Compacted, st.DeadSegments, st.Compacted, humanBytes(st.MovedBytes),
		st.Orphans, humanBytes(st.OrphanBytes), st.Segments, st.Finish.Sub(st.Started).Seconds())
	if st.KeptBytes > 0 {
		fmt.Fprintf(e.stdout, "gc: %s of deleted or overwritten data is kept because snapshots still name it (named ones, and the checkpoints the retention keeps: the last hour's, hourly, daily and weekly ones, config retention); "+
			"it is freed when they expire, or now with meshdrive snapshot delete (meshdrive snapshot list shows them)\n", humanBytes(st.KeptBytes))
	}
}
