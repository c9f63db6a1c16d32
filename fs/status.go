package fs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/journal/href"
	"github.com/meshdrive/meshdrive/remote"
)

// PathStatus is what the drive says about one file, or a folder's files
// summed: how safe the data is and how much of it is in the local cache.
// The control socket (meshdrive status PATH) and the web API both serve it.
type PathStatus struct {
	Path string `json:"path"`
	// PathHref is Path %-encoded from its bytes when it is not UTF-8
	// (JSON shows Path with U+FFFD then; href.IfNotUTF8).
	PathHref      string `json:"path_href,omitempty"`
	Type          string `json:"type"` // file, dir, symlink, other
	Size          int64  `json:"size"` // bytes (a folder: sum over its files)
	State         string `json:"state"`
	Files         int    `json:"files"` // regular files counted (1 for a file)
	Blocks        int    `json:"blocks"`
	PendingBlocks int    `json:"pending_blocks"`
	PendingBytes  int64  `json:"pending_bytes"`
	// LostBlocks cannot be read from anywhere (state "lost"): restore
	// the file from a copy.
	LostBlocks int `json:"lost_blocks,omitempty"`
	// The local cache, over the blocks that are on the grid (blocks not yet
	// uploaded are in the journal, on this machine anyway).
	Cached       string `json:"cached"`        // fully | partly | not: are the grid blocks in the cache
	GridBlocks   int    `json:"grid_blocks"`   // blocks on the grid
	GridBytes    int64  `json:"grid_bytes"`    // their plaintext bytes
	CachedBlocks int    `json:"cached_blocks"` // of those, in the cache (memory or disk)
	CachedBytes  int64  `json:"cached_bytes"`
	CachedFiles  int    `json:"cached_files"` // files whose grid blocks are all cached
	// Pinned: the path or a folder above it is pinned. Local is like
	// Cached over the disk cache only (what survives a restart; pinned
	// blocks live there): fully | partly | not.
	Pinned      bool   `json:"pinned"`
	Local       string `json:"local"`
	LocalBlocks int    `json:"local_blocks"`
	LocalBytes  int64  `json:"local_bytes"`
	// Down names the nodes that hold shards of its segments and were
	// down at the grid's last health look (the mount looks every few
	// seconds); then ShardsUp is the fewest shards of any of those
	// segments on nodes that answer, of N, k of which read it; and a
	// state that would be durable is degraded.
	Down     []string `json:"down,omitempty"`
	ShardsUp int      `json:"shards_up,omitempty"`
	N        int      `json:"n,omitempty"`
	K        int      `json:"k,omitempty"`
}

// Values of PathStatus.Cached.
const (
	CachedFully  = "fully"  // every grid block is cached (or none is needed)
	CachedPartly = "partly" // some are
	CachedNot    = "not"    // none is
)

func cachedVerdict(cached, grid int) string {
	switch {
	case cached >= grid:
		return CachedFully
	case cached > 0:
		return CachedPartly
	default:
		return CachedNot
	}
}

// MaxWalk bounds the entries a folder's Status visits.
const MaxWalk = 200000

// CleanPath turns a path given relative to the drive's root ("/a/b",
// "a/b/", "") into the form Status takes ("a/b", "" for the root). A
// path that climbs above the root stops at the root.
func CleanPath(rel string) string {
	return strings.Trim(path.Clean("/"+rel), "/")
}

// Status reports one file, or sums a folder's files (at most MaxWalk
// entries). rel is relative to the drive's root (see CleanPath).
func (d *Drive) Status(ctx context.Context, rel string) (*PathStatus, error) {
	rel = CleanPath(rel)
	j := d.j
	ino := journal.RootIno
	if rel != "" {
		var err error
		if ino, err = j.ResolvePath(ctx, rel); err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
	}
	attr, err := j.GetAttr(ctx, ino)
	if err != nil {
		return nil, err
	}
	rep := &PathStatus{Path: "/" + rel, PathHref: href.IfNotUTF8("/" + rel), Pinned: d.Pinned(ctx, rel)}
	worst := journal.StateDurable
	down := map[string]bool{}
	for _, n := range d.o.Grid.DownNodes() {
		down[n] = true
	}
	downHolds := map[string]bool{}
	add := func(ino journal.Ino, size uint64) error {
		st, err := j.Status(ctx, ino)
		if err != nil {
			return err
		}
		if len(down) > 0 && st.State >= journal.StateLocal {
			short, err := d.shardsDown(ctx, ino, down, rep, downHolds)
			if err != nil {
				return err
			}
			if short {
				st.State = min(st.State, journal.StateDegraded)
			}
		}
		gb, err := j.GridBlocks(ctx, ino)
		if err != nil {
			return err
		}
		cached := 0
		for _, b := range gb {
			rep.GridBytes += b.Len
			if b.Kept || d.cache.Has(b.ID) {
				cached++
				rep.CachedBytes += b.Len
			}
			if b.Kept || d.cache.OnDisk(b.ID) {
				rep.LocalBlocks++
				rep.LocalBytes += b.Len
			}
		}
		if cached == len(gb) {
			rep.CachedFiles++
		}
		rep.GridBlocks += len(gb)
		rep.CachedBlocks += cached
		rep.Files++
		rep.Size = addSat(rep.Size, int64(size))
		rep.Blocks += st.Blocks
		rep.PendingBlocks += st.PendingBlocks
		rep.PendingBytes += st.PendingBytes
		rep.LostBlocks += st.LostBlocks
		worst = min(worst, st.State)
		return nil
	}
	// A folder's, a symlink's or a device's own metadata (its name, its
	// target) is safe only once it is on the grid too: a folder just made
	// is local, like a file.
	if attr.Mode&syscall.S_IFMT != syscall.S_IFREG {
		st, err := j.Status(ctx, ino)
		if err != nil {
			return nil, err
		}
		worst = st.State
	}
	switch attr.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		rep.Type = "file"
		if err := add(ino, attr.Size); err != nil {
			return nil, err
		}
	case syscall.S_IFDIR:
		rep.Type = "dir"
		err := journal.WalkFiles(ctx, j, ino, rep.Path, MaxWalk, func(_ string, e journal.DirEntry) error {
			a, err := j.GetAttr(ctx, e.Ino)
			if err != nil {
				return err
			}
			return add(e.Ino, a.Size)
		})
		if errors.Is(err, journal.ErrTooManyEntries) {
			return nil, fmt.Errorf("folder has more than %d entries; ask for a subfolder", MaxWalk)
		}
		if err != nil {
			return nil, err
		}
	case syscall.S_IFLNK:
		rep.Type = "symlink"
	default:
		rep.Type = "other"
	}
	rep.State = worst.String()
	for n := range downHolds {
		rep.Down = append(rep.Down, n)
	}
	slices.Sort(rep.Down)
	rep.Cached = cachedVerdict(rep.CachedBlocks, rep.GridBlocks)
	rep.Local = cachedVerdict(rep.LocalBlocks, rep.GridBlocks)
	return rep, nil
}

// shardsDown counts the shards of ino's segments on nodes that answer,
// down being the nodes that do not: rep.ShardsUp keeps the fewest of any
// segment (with its N and K), holds gathers the down nodes that hold a
// shard. It reports whether a segment of ino has a shard on one of them.
func (d *Drive) shardsDown(ctx context.Context, ino journal.Ino, down map[string]bool, rep *PathStatus, holds map[string]bool) (bool, error) {
	refs, err := d.j.GridRefs(ctx, ino)
	if err != nil {
		return false, err
	}
	short := false
	seen := map[remote.SegmentID]bool{}
	for _, r := range refs {
		if r.Seg == nil || seen[r.Seg.ID] {
			continue
		}
		seen[r.Seg.ID] = true
		up, hit := 0, false
		for _, n := range r.Seg.Nodes {
			switch {
			case n == "":
			case down[n]:
				holds[n], hit = true, true
			default:
				up++
			}
		}
		if !hit {
			continue
		}
		short = true
		if rep.N == 0 || up < rep.ShardsUp {
			rep.ShardsUp, rep.N, rep.K = up, r.Seg.K+r.Seg.M, r.Seg.K
		}
	}
	return short, nil
}

// fileShardsDown reports whether a shard of ino's data is on a node the
// grid's last health look found down (the status xattr).
func (d *Drive) fileShardsDown(ctx context.Context, ino journal.Ino) (bool, error) {
	names := d.o.Grid.DownNodes()
	if len(names) == 0 {
		return false, nil
	}
	down := make(map[string]bool, len(names))
	for _, n := range names {
		down[n] = true
	}
	return d.shardsDown(ctx, ino, down, &PathStatus{}, map[string]bool{})
}

// Pinned reports whether rel (relative to the drive's root, see
// CleanPath) or a folder above it is pinned.
func (d *Drive) Pinned(ctx context.Context, rel string) bool {
	rel = CleanPath(rel)
	has := func(ino journal.Ino) bool {
		v, err := d.j.GetXattr(ctx, ino, PinXattr)
		return err == nil && string(v) != "0"
	}
	if has(journal.RootIno) {
		return true
	}
	if rel == "" {
		return false
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		ino, err := d.j.ResolvePath(ctx, strings.Join(parts[:i+1], "/"))
		if err != nil {
			return false
		}
		if has(ino) {
			return true
		}
	}
	return false
}

// Progress is the uploader's progress with a recent rate and an estimate
// of the time left.
type Progress struct {
	Files         int64   `json:"files"`           // files with data waiting to upload
	Bytes         int64   `json:"bytes"`           // plaintext bytes waiting (in flight included)
	Blocks        int64   `json:"blocks"`          // blocks waiting
	InFlightBytes int64   `json:"in_flight_bytes"` // the segment being shipped now (sealed bytes)
	DoneBytes     int64   `json:"done_bytes"`      // made grid-durable since mount
	ShippedBytes  int64   `json:"shipped_bytes"`   // shard bytes sent since mount
	Rate          float64 `json:"rate"`            // bytes/s made durable, recent average
	ETASeconds    float64 `json:"eta_seconds"`     // -1 when unknown
	Errors        int64   `json:"errors"`
	LastError     string  `json:"last_error,omitempty"`
	RepairOwed    int64   `json:"repair_owed"` // segments with fewer than n shards
	// QueueAgeSeconds: how long the upload queue has been non-empty
	// without a break (0 when it is empty).
	QueueAgeSeconds float64 `json:"queue_age_seconds"`
}

// rateSampler keeps the recent upload rate, sampled once a second by the
// drive's own goroutine. Bytes become durable a segment at a time (tens of
// MiB, which take many seconds under --upload-limit), so the rate is an
// average over the recent commits, each one's bytes over the time since
// the one before: it holds between commits instead of decaying to nothing
// (an ETA of half an hour a few seconds before the end). When the segment
// in flight takes longer than that rate says, the rate falls to what it
// can be at most (its bytes over the time since the last commit), and to
// unknown when it takes four times as long, so a stalled or offline upload
// does not keep a stale rate.
type rateSampler struct {
	mu        sync.Mutex // guards the fields below
	rate      float64    // what status shows
	commit    float64    // average over recent commits
	lastDone  int64
	lastSeg   int64     // the bytes of the last commit
	lastAt    time.Time // the last commit, or when the queue became busy
	busySince time.Time // zero while the queue is empty
}

func (r *rateSampler) sample(now time.Time, s journal.UploadStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	busy := s.QueuedBytes > 0 || s.QueuedBlocks > 0
	if busy && r.busySince.IsZero() {
		r.busySince = now
	}
	if d := s.DoneBytes - r.lastDone; d > 0 {
		if dt := now.Sub(r.lastAt).Seconds(); dt > 0 {
			inst := float64(d) / dt
			if r.commit == 0 {
				r.commit = inst
			} else {
				r.commit = 0.5*r.commit + 0.5*inst
			}
		}
		r.lastDone, r.lastAt, r.lastSeg = s.DoneBytes, now, d
	}
	if !busy {
		// Idle time is no part of the next commit's rate.
		r.busySince = time.Time{}
		r.lastDone, r.lastAt = s.DoneBytes, now
	}
	r.rate = r.commit
	if seg := float64(max(s.InFlightBytes, r.lastSeg)); busy && r.rate > 0 {
		switch el, want := now.Sub(r.lastAt).Seconds(), seg/r.rate; {
		case el > 4*want:
			r.rate = 0
		case el > want:
			r.rate = seg / el
		}
	}
	if r.rate < 1 {
		r.rate = 0
	}
}

func (d *Drive) sampleRate(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.rate.sample(now, d.j.Stats())
		}
	}
}

// Progress reports the upload queue, its rate and ETA.
// SegmentSize is the size of a full segment the drive uploads: a node
// with less free space than SegmentSize/k takes no more of its shards.
func (d *Drive) SegmentSize() int64 { return d.j.SegmentSize() }

func (d *Drive) Progress() Progress {
	s := d.j.Stats()
	d.rate.mu.Lock()
	rate, since := d.rate.rate, d.rate.busySince
	d.rate.mu.Unlock()
	p := Progress{Files: s.QueuedFiles, Bytes: s.QueuedBytes, Blocks: s.QueuedBlocks,
		InFlightBytes: s.InFlightBytes, DoneBytes: s.DoneBytes, ShippedBytes: s.ShippedBytes,
		Rate: rate, ETASeconds: ETA(s.QueuedBytes, rate), Errors: s.Errors,
		LastError: s.LastError, RepairOwed: s.RepairOwed}
	if !since.IsZero() && (s.QueuedBytes > 0 || s.QueuedBlocks > 0) {
		p.QueueAgeSeconds = time.Since(since).Seconds()
	}
	return p
}

// ETA is the seconds to move pending bytes at rate: 0 when nothing is
// pending, -1 when the rate is unknown.
func ETA(pending int64, rate float64) float64 {
	if pending == 0 {
		return 0
	}
	if rate <= 0 {
		return -1
	}
	return float64(pending) / rate
}

// State is the whole drive's state: lost while any block cannot be read
// from anywhere (whatever else waits: the drive is not safe, and saying
// durable or uploading would hide it), local while any data or metadata
// is only on this machine, degraded while a segment owes repair
// (repairOwed adds what a repairer outside the journal counts), else
// durable.
func (d *Drive) State(ctx context.Context, repairOwed int64) (journal.State, Progress, journal.MetaStats) {
	p := d.Progress()
	ms := d.j.MetaStats(ctx)
	lost, _ := d.j.Lost(ctx)
	switch {
	case lost.Blocks > 0:
		return journal.StateLost, p, ms
	case p.Bytes > 0 || p.InFlightBytes > 0 || p.Blocks > 0 || (ms.PendingRows > 0 && !d.o.ReadOnly):
		return journal.StateLocal, p, ms
	case p.RepairOwed > 0 || repairOwed > 0:
		return journal.StateDegraded, p, ms
	}
	return journal.StateDurable, p, ms
}

// ReadOnly reports whether the drive was opened read-only.
func (d *Drive) ReadOnly() bool { return d.o.ReadOnly }
