package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"github.com/meshdrive/meshdrive/remote"
)

// GCGrid is what garbage collection needs of the grid beyond MetaGrid.
// *remote.Grid satisfies it.
type GCGrid interface {
	MetaGrid
	ListObjects(ctx context.Context, prefix string) (map[string][]remote.ObjectInfo, error)
	DeleteObject(ctx context.Context, node, name string) error
}

// GCOptions configure a collection.
type GCOptions struct {
	DryRun bool
	// Threshold: a segment whose live bytes are below this fraction of
	// its size is compacted (default 0.5).
	Threshold float64
	// OrphanGrace: a shard no record names is deleted once it is older
	// than this (default 1h): an upload in flight is never an orphan.
	OrphanGrace time.Duration
	// Limit bounds the bytes/s compaction reads and writes (0: no limit;
	// the background pass uses BackgroundGCLimit). Compaction also yields
	// to application reads and large flushes, as uploads do.
	Limit float64
	// Progress, when set, is called as segments are handled.
	Progress func(done, total int)
}

// BackgroundGCLimit is the bandwidth budget of the mount's background
// collection, in bytes/s of segment data read plus written.
const BackgroundGCLimit = 8 << 20

// GCStats says what a collection found and did.
type GCStats struct {
	Segments     int   // data segments looked at
	DeadSegments int   // with no live block: deleted
	Compacted    int   // rewritten: their live blocks moved to new segments
	MovedBytes   int64 // sealed bytes copied by compaction
	GarbageBytes int64 // sealed bytes of dead blocks found
	// KeptBytes: sealed bytes of blocks no file names any more, kept
	// because a snapshot still does (a named one, or a recent checkpoint
	// the retention keeps); freed once it expires or is deleted.
	KeptBytes       int64
	FreedBytes      int64 // segment bytes deleted (before erasure coding)
	Orphans         int   // shards no record names, deleted
	OrphanBytes     int64
	DryRun          bool
	Started, Finish time.Time
	limit           float64
}

// gcBlock is one block's row as garbage collection sees it.
type gcBlock struct {
	id          remote.BlockID
	state       int
	born, freed sql.NullInt64
	seg         remote.SegmentID
	off, len    int64
}

// live: referenced by the tree (state uploaded), by the newest record
// (not freed yet), or by a kept snapshot taken while it was named.
func (b *gcBlock) live(kept []uint64) bool {
	if b.state != blockGarbage || !b.freed.Valid {
		return true
	}
	born := uint64(max(b.born.Int64, 0)) // unknown (a recovered drive): from the start
	i := sort.Search(len(kept), func(i int) bool { return kept[i] >= born })
	return i < len(kept) && kept[i] < uint64(b.freed.Int64)
}

// CollectGarbage deletes from the grid what no file, no kept snapshot and
// not the newest metadata record refers to: segments with no live block
// outright; segments whose live bytes are below the threshold are
// compacted first (their live sealed blocks copied into new segments, no
// re-encryption), and deleted only once the records naming the new places
// are on the grid. Shards no record names (an upload cut short by a crash,
// a node that was down during a delete) are deleted after a grace period.
// A crash at any step loses nothing: the next collection finishes the job.
func (j *collector) CollectGarbage(ctx context.Context, o GCOptions) (*GCStats, error) {
	if err := j.checkWrite(); err != nil {
		return nil, err
	}
	g, ok := j.o.Meta.(GCGrid)
	if j.ms == nil || !ok {
		return nil, fmt.Errorf("journal: %w: no grid to collect on", ErrInvalid)
	}
	if o.Threshold <= 0 {
		o.Threshold = 0.5
	}
	if o.OrphanGrace <= 0 {
		o.OrphanGrace = time.Hour
	}
	j.gcMu.Lock()
	defer j.gcMu.Unlock()
	st := &GCStats{DryRun: o.DryRun, Started: time.Now(), limit: o.Limit}
	// What was freed so far must be in a record (freed marks), and the
	// grid's copy of the block locations current.
	if err := j.md.SyncGrid(ctx); err != nil {
		return nil, fmt.Errorf("journal: collect garbage: ship metadata first: %w", err)
	}
	j.sn.pruneMeta(ctx)
	mrows, err := j.sn.mlogRows(ctx)
	if err != nil {
		return nil, err
	}
	keptSet := j.sn.keptRecords(ctx, mrows)
	var kept []uint64
	for s := range keptSet {
		kept = append(kept, s)
	}
	slices.Sort(kept)

	segs, bySeg, err := j.gcScan(ctx)
	if err != nil {
		return nil, err
	}
	st.Segments = len(segs)
	var dead, sparse []*remote.SegmentInfo
	for _, s := range segs {
		var liveB int64
		for _, b := range bySeg[s.ID] {
			if b.live(kept) {
				liveB += b.len
				if b.state == blockGarbage && b.freed.Valid {
					st.KeptBytes += b.len
				}
			} else {
				st.GarbageBytes += b.len
			}
		}
		switch {
		case liveB == 0:
			dead = append(dead, s)
		case float64(liveB) < o.Threshold*float64(s.Size):
			sparse = append(sparse, s)
		}
	}
	total := len(dead) + len(sparse)
	done := 0
	progress := func() {
		done++
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}
	if !o.DryRun && len(sparse) > 0 {
		moved, err := j.compact(ctx, g, sparse, bySeg, kept, st, progress)
		if err != nil {
			return st, err
		}
		// The new places must be on the grid before the old go.
		if moved > 0 {
			if err := j.md.SyncGrid(ctx); err != nil {
				return st, fmt.Errorf("journal: collect garbage: ship the compacted blocks' places: %w", err)
			}
		}
		dead = append(dead, sparse...)
	} else if o.DryRun {
		// What compact would count: each segment's live bytes moved,
		// the whole segment freed.
		for _, s := range sparse {
			for _, b := range bySeg[s.ID] {
				if b.live(kept) {
					st.MovedBytes += b.len
				}
			}
			st.Compacted++
			st.FreedBytes += s.Size
		}
	}
	for _, s := range dead {
		if !o.DryRun {
			gone, err := j.dropSegment(ctx, g, s)
			if err != nil {
				return st, err
			}
			if !gone {
				continue
			}
		}
		if slices.Contains(sparse, s) {
			continue // counted by compact
		}
		st.DeadSegments++
		st.FreedBytes += s.Size
		progress()
	}
	if err := j.collectOrphans(ctx, g, o, st); err != nil {
		j.log.Warn("journal: orphaned shards not collected", "err", err)
	}
	st.Finish = time.Now()
	j.gcMu2.Lock()
	j.lastGC = st
	j.gcMu2.Unlock()
	j.log.Info("journal: garbage collected", "segments", st.Segments, "deleted", st.DeadSegments, "compacted", st.Compacted,
		"freed_bytes", st.FreedBytes, "orphans", st.Orphans, "dry_run", o.DryRun)
	return st, nil
}

// LastGC returns the stats of the newest collection of this mount (nil if
// none ran).
func (j *collector) LastGC() *GCStats {
	j.gcMu2.Lock()
	defer j.gcMu2.Unlock()
	return j.lastGC
}

// gcScan reads every data segment and the blocks in it.
func (j *collector) gcScan(ctx context.Context) ([]*remote.SegmentInfo, map[remote.SegmentID][]*gcBlock, error) {
	rows, err := j.db.QueryContext(ctx, `SELECT id FROM segments`)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: collect garbage: %w", err)
	}
	var ids [][]byte
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	var segs []*remote.SegmentInfo
	for _, id := range ids {
		s, err := j.fd.segment(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		segs = append(segs, s)
	}
	bySeg := map[remote.SegmentID][]*gcBlock{}
	brows, err := j.db.QueryContext(ctx, `SELECT id, state, born, freed, segment, seg_off, seg_len FROM blocks WHERE segment IS NOT NULL`)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: collect garbage: %w", err)
	}
	defer brows.Close()
	for brows.Next() {
		b := &gcBlock{}
		var id, seg []byte
		if err := brows.Scan(&id, &b.state, &b.born, &b.freed, &seg, &b.off, &b.len); err != nil {
			return nil, nil, err
		}
		copy(b.id[:], id)
		copy(b.seg[:], seg)
		if b.off < 0 || b.len <= 0 || b.len > remote.MaxSealedSize {
			return nil, nil, damagedSegment(fmt.Errorf("block %s: range [%d,+%d) in segment %s", b.id, b.off, b.len, b.seg))
		}
		bySeg[b.seg] = append(bySeg[b.seg], b)
	}
	return segs, bySeg, brows.Err()
}

// compact copies the live blocks of segs into new segments and points
// their rows there. It returns how many blocks moved.
func (j *collector) compact(ctx context.Context, g GCGrid, segs []*remote.SegmentInfo, bySeg map[remote.SegmentID][]*gcBlock,
	kept []uint64, st *GCStats, progress func()) (int, error) {
	type moving struct {
		b      *gcBlock
		newOff int64
	}
	var buf []byte
	var batch []moving
	moved := 0
	lim := rate.NewLimiter(rate.Inf, 1<<20)
	if st.limit > 0 {
		lim = rate.NewLimiter(rate.Limit(st.limit), 1<<20)
	}
	budget := func(n int64) error {
		j.up.yieldToForeground(ctx)
		for n > 0 {
			c := min(n, 1<<20)
			if err := lim.WaitN(ctx, int(c)); err != nil {
				return err
			}
			n -= c
		}
		return nil
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := budget(int64(len(buf))); err != nil {
			return err
		}
		// Between the shards and the row: a drain (WaitSegmentWrites)
		// must see this write in flight.
		j.segWriteMu.RLock()
		defer j.segWriteMu.RUnlock()
		info, err := g.WriteSegment(ctx, buf)
		if err != nil {
			return fmt.Errorf("journal: compact: write segment: %w", err)
		}
		j.wmu.Lock()
		j.scopeLocked(scopeNone)
		err = j.txLocked(ctx, func(tx *sql.Tx) error {
			if err := insertSegment(ctx, tx, info); err != nil {
				return err
			}
			for _, m := range batch {
				if _, err := tx.ExecContext(ctx, `UPDATE blocks SET segment = ?, seg_off = ?, seg_len = ? WHERE id = ? AND segment = ?`,
					info.ID[:], m.newOff, m.b.len, m.b.id[:], m.b.seg[:]); err != nil {
					return err
				}
			}
			return nil
		})
		j.wmu.Unlock()
		if err != nil {
			g.DeleteSegment(context.WithoutCancel(ctx), info)
			return fmt.Errorf("journal: compact: record new places: %w", err)
		}
		j.segMu.Lock()
		j.segs[info.ID] = info
		j.segMu.Unlock()
		moved += len(batch)
		buf, batch = nil, nil
		return nil
	}
	for _, s := range segs {
		for _, b := range bySeg[s.ID] {
			if !b.live(kept) {
				continue
			}
			if err := budget(b.len); err != nil {
				return moved, err
			}
			sealed := make([]byte, b.len)
			if err := g.ReadSegment(ctx, s, b.off, sealed); err != nil {
				return moved, fmt.Errorf("journal: compact: read block %s: %w", b.id, err)
			}
			batch = append(batch, moving{b: b, newOff: int64(len(buf))})
			buf = append(buf, sealed...)
			st.MovedBytes += b.len
			if int64(len(buf)) >= j.o.SegmentSize {
				if err := flush(); err != nil {
					return moved, err
				}
			}
		}
		st.Compacted++
		st.FreedBytes += s.Size
		progress()
	}
	if err := flush(); err != nil {
		return moved, err
	}
	// Readers that looked a moved block up before (this journal's, or a
	// snapshot journal's) find its new place when the old one fails
	// (relocate).
	return moved, nil
}

func insertSegment(ctx context.Context, tx *sql.Tx, info *remote.SegmentInfo) error {
	nodes := "["
	for i, n := range info.Nodes {
		if i > 0 {
			nodes += ","
		}
		nodes += fmt.Sprintf("%q", n)
	}
	nodes += "]"
	_, err := tx.ExecContext(ctx, `INSERT INTO segments(id, k, m, size, shard_size, chunk_size, nodes, stored, created)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`, info.ID[:], info.K, info.M, info.Size, info.ShardSize, info.ChunkSize,
		nodes, info.Stored(), nowNS())
	return err
}

// dropSegment deletes a segment none of whose blocks is live any more (or
// whose live blocks were moved): its rows first, in one transaction that
// checks no block in it came back to life meanwhile (a dedup hit revives
// a garbage block; after this commit it finds no row and stores the block
// anew), then its shards. A crash between the two leaves shards no record
// names, which the orphan pass deletes.
func (j *collector) dropSegment(ctx context.Context, g GCGrid, s *remote.SegmentInfo) (bool, error) {
	gone := false
	var unkept int64
	var dropped []remote.BlockID
	j.wmu.Lock()
	j.scopeLocked(scopeNone)
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		gone, unkept, dropped = false, 0, nil
		var liveN int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM blocks WHERE segment = ? AND state != ?`, s.ID[:], blockGarbage).Scan(&liveN); err != nil {
			return err
		}
		if liveN > 0 {
			return nil // a later collection looks again
		}
		var err error
		if unkept, err = j.kp.dropTx(ctx, tx, s.ID); err != nil {
			return err
		}
		if j.o.Dropped != nil {
			if dropped, err = blockIDs(ctx, tx, `SELECT id FROM blocks WHERE segment = ? AND state = ?`, s.ID[:], blockGarbage); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE segment = ? AND state = ?`, s.ID[:], blockGarbage); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM segments WHERE id = ?`, s.ID[:]); err != nil {
			return err
		}
		gone = true
		return nil
	})
	if err == nil {
		j.keptB -= unkept
		if gone {
			// Durable before the shards go: a power cut must not bring
			// back garbage rows naming a deleted segment, which a dedup
			// hit could then revive into a file.
			err = j.barrierLocked(ctx)
		}
	}
	j.wmu.Unlock()
	if err != nil {
		return false, fmt.Errorf("journal: collect garbage: forget segment %s: %w", s.ID, err)
	}
	if !gone {
		return false, nil
	}
	if len(dropped) > 0 {
		j.o.Dropped(dropped)
	}
	j.segMu.Lock()
	delete(j.segs, s.ID)
	j.segMu.Unlock()
	if err := g.DeleteSegment(ctx, s); err != nil {
		j.log.Warn("journal: segment not deleted from every node; the orphan pass removes the rest", "segment", s.ID, "err", err)
	}
	return true, nil
}

// collectOrphans deletes shards whose segment neither a data segment row
// nor a metadata record names, once older than the grace period.
func (j *collector) collectOrphans(ctx context.Context, g GCGrid, o GCOptions, st *GCStats) error {
	// No segment may be between its shards and its row while we list and
	// look: wait for the writes in flight (an upload retrying against
	// down nodes can hold on; then skip orphans this time).
	deadline := time.Now().Add(30 * time.Second)
	for !j.segWriteMu.TryLock() {
		if time.Now().After(deadline) {
			return errors.New("segment writes in flight for 30s; orphans are looked for next time")
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	locked := true
	defer func() {
		if locked {
			j.segWriteMu.Unlock()
		}
	}()
	known := map[remote.SegmentID]bool{}
	rows, err := j.db.QueryContext(ctx, `SELECT id FROM segments`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id []byte
		if rows.Scan(&id) == nil {
			var s remote.SegmentID
			copy(s[:], id)
			known[s] = true
		}
	}
	rows.Close()
	mrows, err := j.sn.mlogRows(ctx)
	if err != nil {
		return err
	}
	for _, r := range mrows {
		if seg, _, err := remote.DecodeSegmentInfo(r.seg); err == nil {
			known[seg.ID] = true
		}
	}
	if r, err := ReadRoot(ctx, g, j.o.Sealer, nil); err == nil {
		known[r.Head.ID] = true // shipped by another mount of this data dir? never deleted
		if j.ms != nil {
			// Another computer writing the drive: its segments are in no
			// row here, and must not be taken for orphans (writer.go).
			if err := j.md.rootOurs(ctx, r); err != nil {
				return fmt.Errorf("orphans not collected: %w", err)
			}
		}
	}
	objs, lerr := g.ListObjects(ctx, "shards/")
	j.segWriteMu.Unlock()
	locked = false
	cutoff := time.Now().Add(-o.OrphanGrace)
	for node, list := range objs {
		for _, obj := range list {
			id, _, ok := remote.ParseShardName(obj.Name)
			if !ok || known[id] || obj.ModTime.After(cutoff) {
				continue
			}
			st.Orphans++
			st.OrphanBytes += obj.Size
			if o.DryRun {
				continue
			}
			if err := g.DeleteObject(ctx, node, obj.Name); err != nil {
				j.log.Warn("journal: orphaned shard not deleted", "node", node, "name", obj.Name, "err", err)
			}
		}
	}
	return lerr
}

// GarbageBytes sums the sealed bytes of blocks no file refers to (some may
// still be kept by snapshots).
func (j *collector) GarbageBytes(ctx context.Context) int64 {
	var n int64
	j.db.QueryRowContext(ctx, `SELECT coalesce(sum(seg_len), 0) FROM blocks WHERE state = ?`, blockGarbage).Scan(&n)
	return n
}

// gcLoop collects garbage every interval in the background.
func (j *collector) gcLoop(ctx context.Context, every time.Duration) {
	defer close(j.gcDone)
	for {
		if !sleepCtx(ctx, every) {
			return
		}
		if _, err := j.CollectGarbage(ctx, GCOptions{Limit: BackgroundGCLimit}); err != nil && !errors.Is(err, context.Canceled) {
			j.log.Warn("journal: background garbage collection failed; it runs again later", "err", err)
		}
	}
}

func (j *collector) closeSnapshots() {
	j.snapMu.Lock()
	for _, sj := range j.snaps {
		sj.Close()
	}
	j.snaps = nil
	j.snapMu.Unlock()
}
