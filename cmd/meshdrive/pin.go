package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/meshdrive/meshdrive/fs"
)

// pinReport is one path of POST /pin or /unpin.
type pinReport struct {
	Path string `json:"path"`
	// PathHref is Path %-encoded from its bytes when it is not UTF-8
	// (JSON shows it with U+FFFD then).
	PathHref string `json:"path_href,omitempty"`
	Pinned   bool   `json:"pinned"`
	// Unchanged: an unpin of a path that was not pinned (nothing done).
	Unchanged bool        `json:"unchanged,omitempty"`
	Stats     fs.PinStats `json:"stats"` // the pinner's, after the change
}

// resolve turns a path relative to the drive's root (or abs, when set and
// inside the mountpoint) into its inode and its clean relative form.
func (c *controlServer) resolve(ctx context.Context, rel, abs string) (fs.Ino, string, error) {
	rel, err := c.relPath(rel, abs)
	if err != nil {
		return 0, "", err
	}
	ino, err := c.o.drive.Resolve(ctx, rel)
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", showName(rel), err)
	}
	return ino, rel, nil
}

// pin serves POST /pin and POST /unpin: every path, in order; the first
// refusal stops the rest.
func (c *controlServer) pin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := c.o.drive.Pins()
	if p == nil {
		writeJSON(w, http.StatusConflict, apiError{"the drive is mounted read-only: pins cannot change; mount it read-write"})
		return
	}
	unpin := r.URL.Path == "/unpin"
	q := r.URL.Query()
	paths, abss := q["path"], q["abs"]
	var out []pinReport
	for i, path := range paths {
		abs := ""
		if i < len(abss) {
			abs = abss[i]
		}
		ino, rel, err := c.resolve(ctx, path, abs)
		unchanged := false
		if err == nil {
			if unpin {
				err = p.Unpin(ctx, ino)
				if errors.Is(err, fs.ErrNoXattr) {
					if c.o.drive.Pinned(ctx, rel) {
						err = fmt.Errorf("%s is pinned through a folder above it; unpin that folder", showName("/"+rel))
					} else {
						err, unchanged = nil, true // not pinned: nothing to do
					}
				}
			} else {
				err = p.Pin(ctx, ino)
			}
		}
		if err != nil {
			verb := "pin"
			if unpin {
				verb = "unpin"
			}
			writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("cannot %s %s: %v", verb, showName(path), err)})
			return
		}
		out = append(out, pinReport{Path: "/" + rel, PathHref: fs.PathHref("/" + rel), Pinned: !unpin, Unchanged: unchanged, Stats: p.Stats()})
	}
	if unpin && len(out) > 0 {
		// A pin is counted at once; an unpin by WaitPass's count (not
		// held back by a pass still fetching): the totals reported are
		// that count's when it comes within 10 s, else the ones before.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if p.WaitPass(wctx) == nil {
			st := p.Stats()
			for i := range out {
				out[i].Stats = st
			}
		}
		cancel()
	}
	writeJSON(w, http.StatusOK, out)
}

func runPin(e *env) error   { return pinCommand(e, false) }
func runUnpin(e *env) error { return pinCommand(e, true) }

func pinCommand(e *env, unpin bool) error {
	name, help := "pin", `
Keep files and folders on this machine: their blocks are fetched in the
background, never evicted from the disk cache, and read with no node
reachable. A folder is pinned with everything under it, files added later
included. Pinned files count against the mount's --pin-budget; a pin that
does not fit is refused and changes nothing. meshdrive status PATH shows
whether a path is pinned and how much of it is on this machine. The same
works from a file manager: setfattr -n user.meshdrive.pinned -v 1 PATH
(setfattr -x to unpin). Talks to the running mount.`
	if unpin {
		name, help = "unpin", `
Let pinned files and folders be evicted from the cache again (their data
stays on the grid). A file pinned through a folder above it stays pinned
until that folder is unpinned. Talks to the running mount.`
	}
	fl := newFlagSet(e, name, name+" [--data DIR] PATH...", help)
	dataDir := dataDirFlag(e, fl)
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError("%s needs at least one PATH (a file or folder inside the mount)", name)
	}
	dir, err := dataDir()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	q := url.Values{}
	for _, p := range pos {
		q.Add("path", p)
		q.Add("abs", cliAbs(p))
	}
	var reps []pinReport
	if err := newControlClient(dir).getJSON(ctx, "POST", "/"+name+"?"+q.Encode(), &reps); err != nil {
		return err
	}
	printPinReports(e.stdout, reps, unpin)
	return nil
}

// printPinReports prints what pin or unpin did to each path.
func printPinReports(w io.Writer, reps []pinReport, unpin bool) {
	for _, r := range reps {
		s := r.Stats
		p := showName(pathOf(r.Path, r.PathHref))
		switch {
		case unpin && r.Unchanged:
			fmt.Fprintf(w, "%s was not pinned; nothing to unpin\n", p)
		case unpin:
			fmt.Fprintf(w, "unpinned %s\n", p)
		default:
			fmt.Fprintf(w, "pinned %s; fetching it in the background (meshdrive status PATH shows how much is local)\n", p)
		}
		fmt.Fprintf(w, "  pins: %s, %s of %s budget; %d of %d blocks on this machine\n",
			plural(int64(s.Files), "file", "files"), humanBytes(s.Bytes), humanBytes(s.Budget), s.LocalBlocks, s.Blocks)
	}
}

// printPinned prints the pin line of status PATH.
func printPinned(w io.Writer, r *pathReport) {
	if r.Type != "file" && r.Type != "dir" {
		return
	}
	pin := "not pinned"
	if r.Pinned {
		pin = "pinned"
	}
	switch {
	case r.GridBlocks == 0 && r.Blocks == 0:
		fmt.Fprintf(w, "  %s; local: %s (no data)\n", pin, r.Local)
	case r.GridBlocks == 0:
		fmt.Fprintf(w, "  %s; local: %s (nothing uploaded yet: every block is in the local journal)\n", pin, r.Local)
	default:
		fmt.Fprintf(w, "  %s; local: %s (%d of %d uploaded blocks on this machine's disk, %s of %s)\n",
			pin, r.Local, r.LocalBlocks, r.GridBlocks, humanBytes(r.LocalBytes), humanBytes(r.GridBytes))
	}
}
