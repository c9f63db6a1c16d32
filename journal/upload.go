package journal

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// qitem is one staged block waiting for upload.
type qitem struct {
	id        remote.BlockID
	seq       int64
	prio      int
	sealedLen int64
	plainLen  int64
	// retook: its flush took over a staged row whose copy was damaged
	// (cut.retake): its staging file replaced that copy, and stays if
	// the commit fails (unstage).
	retook bool
}

// placedBlock is a block packed into a segment buffer.
type placedBlock struct {
	qitem
	off, len int64
}

// enqueue adds new staged blocks to the queue and wakes the uploader.
func (j *uploader) enqueue(items []qitem) {
	if len(items) == 0 {
		return
	}
	j.qmu.Lock()
	for _, it := range items {
		j.queue[it.id] = it
		j.stagedB += it.sealedLen
	}
	j.qmu.Unlock()
	j.poke()
}

func (j *uploader) poke() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// signalFreeLocked wakes writers waiting for quota. qmu held.
func (j *uploader) signalFreeLocked() {
	close(j.quotaFree)
	j.quotaFree = make(chan struct{})
}

// signalProgressLocked wakes WaitDurable callers. qmu held.
func (j *uploader) signalProgressLocked() {
	close(j.progress)
	j.progress = make(chan struct{})
}

// uploader owns the queue: it packs staged blocks into segments, ships
// them and records where they went. It returns when ctx is cancelled.
func (j *uploader) uploader(ctx context.Context) {
	defer close(j.done)
	for {
		j.qmu.Lock()
		n := len(j.queue)
		// The staged bytes stand for the queue's: summing the queue on
		// every wake-up (every flush pokes it) was quadratic in a copy of
		// many small files.
		queued := j.stagedB
		force := j.force
		if n == 0 {
			j.force = false
		}
		j.qmu.Unlock()
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-j.kick:
				continue
			}
		}
		if queued < j.o.SegmentSize && !force {
			// Wait for more data, or for IdleFlush without any.
			t := time.NewTimer(j.o.IdleFlush)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-j.kick:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		// Before reading megabytes of staging files too, not only before
		// shipping them.
		j.yieldToForeground(ctx)
		seg, placed := j.pack()
		if len(placed) == 0 {
			j.setInflight(nil)
			if seg != nil {
				seg.Release()
			}
			if !sleepCtx(ctx, j.o.IdleFlush) {
				return
			}
			continue
		}
		j.setInflight(placed)
		// Between the shards' write and the row that names them, the
		// segment would look orphaned to garbage collection (gc.go).
		j.segWriteMu.RLock()
		info, err := j.ship(ctx, seg)
		if err != nil {
			j.segWriteMu.RUnlock()
			seg.Release()
			j.setInflight(nil)
			return // ctx cancelled: the blocks stay staged for the next Open
		}
		err = j.commitSegment(ctx, info, placed)
		j.segWriteMu.RUnlock()
		seg.Release()
		j.setInflight(nil)
		if err != nil {
			j.noteError(err)
			j.log.Error("journal: record uploaded segment; the blocks stay queued and will be uploaded again", "err", err)
			if !sleepCtx(ctx, j.o.RetryMax) {
				return
			}
		}
	}
}

// pack reads the next segment's worth of staged blocks, small and fsync'd
// files first (alone when there are any), then in queue order. The
// segment is the uploader's until it calls seg.Release after the
// segment's commit; nil when there is nothing to pack.
func (j *uploader) pack() (*remote.SegmentBuf, []placedBlock) {
	j.qmu.Lock()
	items := make([]qitem, 0, len(j.queue))
	for _, it := range j.queue {
		items = append(items, it)
	}
	j.qmu.Unlock()
	slices.SortFunc(items, func(a, b qitem) int {
		if a.prio != b.prio {
			return a.prio - b.prio
		}
		return int(a.seq - b.seq)
	})
	// A segment that starts with urgent blocks (small and fsync'd
	// files') carries only those: it ships in the time its own bytes
	// take, not a full segment of bulk data's. It is half a segment at
	// most: while small files are copied, the uploader's shards (half
	// the live heap then) are the memory that most often meets the
	// rest of the work at its peak.
	limit := j.o.SegmentSize
	if len(items) > 0 && items[0].prio == 0 {
		if i := slices.IndexFunc(items, func(it qitem) bool { return it.prio != 0 }); i > 0 {
			items = items[:i]
		}
		limit = max(limit/2, 1)
	}
	// The segment is laid out in its shard objects for the size of the
	// blocks taken, and each staging file is read into place: no copy
	// per block, and none of the whole segment when it ships.
	var size int64
	for _, it := range items {
		if size >= limit {
			break
		}
		size += it.sealedLen
	}
	if size == 0 {
		return nil, nil
	}
	seg, err := j.o.Grid.NewSegmentBuf(size)
	if err != nil {
		j.noteError(err)
		j.log.Error("journal: cannot lay out a segment; the blocks stay queued", "bytes", size, "err", err)
		return nil, nil
	}
	var placed []placedBlock
	var goneErr error // the staging folder is gone (stagingGone)
	defer func() { noteStaging(j, goneErr) }()
	for _, it := range items {
		if seg.Len() >= limit || it.sealedLen > seg.Cap()-seg.Len() {
			break // full, or a block before this one was skipped
		}
		off := seg.Len()
		err := j.packBlock(seg, it)
		if err != nil {
			j.qmu.Lock()
			_, still := j.queue[it.id]
			j.qmu.Unlock()
			if still && errors.Is(err, os.ErrNotExist) {
				// Freed or uploaded meanwhile: check the database.
				var state int
				qerr := j.db.QueryRow(`SELECT state FROM blocks WHERE id = ?`, it.id[:]).Scan(&state)
				if errors.Is(qerr, sql.ErrNoRows) || qerr == nil && state != blockStaged {
					j.dequeue(it.id, 0)
					continue
				}
				if qerr == nil && goneErr == nil {
					goneErr = stagingGone(j)
				}
				if qerr == nil && goneErr != nil {
					// The whole staging folder is gone, not this file: a
					// disk not mounted, a folder moved or deleted by
					// mistake, which may be undone. The block stays
					// queued; one error says so (noteStaging).
					continue
				}
				if qerr == nil {
					// Staged, and neither its staging file nor its row is
					// there: removed outside meshdrive. Nothing else holds
					// its bytes, and waiting would keep sync waiting for
					// ever: it is lost now, as the next mount's
					// --drop-missing would mark it (loseDamaged checks it
					// is still this row).
					loseDamaged(j, it, fmt.Errorf("its staging file %s is gone from the local disk (removed outside meshdrive) "+
						"and journal.db holds no copy: %w", j.stagePath(it.id), os.ErrNotExist))
					continue
				}
			}
			if still && errors.Is(err, errDamaged) {
				loseDamaged(j, it, err)
				continue
			}
			if still {
				j.noteError(fmt.Errorf("read staged block %s: %w", it.id, err))
				j.log.Error("journal: staged block unreadable; it stays queued", "id", it.id, "err", err)
			}
			continue
		}
		// The bytes about to ship are the ones sealed, or the block is
		// lost here and now, not years later at a read of the grid's copy.
		if err := j.seal.VerifyIn(seg, off, seg.Len()-off, it.id); err != nil {
			seg.Truncate(off)
			loseDamaged(j, it, err)
			continue
		}
		placed = append(placed, placedBlock{qitem: it, off: off, len: seg.Len() - off})
		j.addInflight(it)
	}
	return seg, placed
}

// stagingGone returns an error that says so when the staging folder
// itself is gone (or is no longer a folder), else nil.
func stagingGone(j *uploader) error {
	fi, err := os.Stat(j.stage)
	what := "nothing is there now"
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		what = fmt.Sprintf("it is not a folder now (mode %v)", fi.Mode())
	case !errors.Is(err, os.ErrNotExist):
		return nil // unreadable, not gone: the blocks' own errors say more
	}
	j.qmu.Lock()
	n := len(j.queue)
	j.qmu.Unlock()
	return fmt.Errorf("the staging folder %s is gone (%s): the %d blocks queued for upload stay queued, none is marked lost. "+
		"Put the folder back (mount its disk, or move it back) and the upload goes on; if it cannot come back, "+
		"unmount and mount with --drop-missing, which marks the blocks whose files it held lost and keeps everything else", j.stage, what, n)
}

// noteStaging reports what pack found of the staging folder: goneErr,
// when it is gone, as the uploader's last error at every pass and in
// the log once; a line in the log when it is back.
func noteStaging(j *uploader, goneErr error) {
	j.qmu.Lock()
	was := j.stageGone
	j.qmu.Unlock()
	switch {
	case goneErr != nil:
		j.noteError(goneErr)
		if !was {
			j.log.Error("journal: "+goneErr.Error(), "dir", j.stage)
		}
	case !was || stagingGone(j) != nil:
		return
	default:
		j.log.Info("journal: the staging folder is back; the queued blocks upload again", "dir", j.stage)
	}
	j.qmu.Lock()
	j.stageGone = goneErr != nil
	j.qmu.Unlock()
}

// loseDamaged marks staged block it lost, as a mount with --drop-missing
// marks one whose staging file is gone (recover.go): its sealed bytes
// (staging file or staged row) no longer authenticate, so the local disk
// changed them after they were sealed, and nothing else holds them (the
// disk cache takes a block only after its upload, memory only while it is
// dirty). Reads of it fail with ErrLostBlock, Status says StateLost, an
// identical write takes the row over. The damaged bytes go once that is
// durable. When the database cannot record it the block stays queued,
// and is checked again; when it records it but cannot make it durable
// (the WAL's fsync fails), the block is lost all the same and leaves the
// queue, and its damaged staging file stays for a power cut that would
// bring the staged row back (the next Open removes it otherwise). A block
// whose staging file and row are both gone (cause is os.ErrNotExist:
// removed outside meshdrive while the drive runs) is lost the same way,
// and said to be missing rather than damaged. It says
// whether it marked the block lost (false: freed or staged anew
// meanwhile, or the database failed).
func loseDamaged(j *uploader, it qitem, cause error) bool {
	ctx := context.Background()
	var files int64
	var paths []string
	lost := false
	j.wmu.Lock()
	j.scopeLocked(scopeNone)
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		// The seq: not a row staged anew since (freed, then the same bytes
		// written again), whose good file this is not.
		res, err := j.texec(ctx, tx, `UPDATE blocks SET state = ? WHERE id = ? AND state = ? AND seq = ?`, blockLost, it.id[:], blockStaged, it.seq)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return nil // freed meanwhile: nothing to lose
		}
		lost = true
		if _, err := j.texec(ctx, tx, `DELETE FROM staged WHERE id = ?`, it.id[:]); err != nil {
			return err
		}
		files, paths, err = blockFiles(ctx, tx, it.id) // this block's, not every lost one's
		return err
	})
	var syncErr error
	if err == nil && lost {
		if syncErr = j.barrierLocked(ctx); syncErr == nil {
			if rerr := os.Remove(j.stagePath(it.id)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				j.log.Warn("journal: remove a damaged staging file", "id", it.id, "err", rerr)
			}
		}
	}
	j.wmu.Unlock()
	if err != nil {
		j.noteError(fmt.Errorf("staged block %s is damaged or missing (%w) and cannot be marked lost: %w", it.id, cause, err))
		j.log.Error("journal: a staged block is damaged (it fails its check) or its staging file is gone, and the journal cannot mark it lost; "+
			"it stays queued, not uploaded", "id", it.id, "check", cause, "err", err)
		return false
	}
	// Out of the queue unless the block was staged anew meanwhile (the
	// next pack reads its new file).
	j.qmu.Lock()
	if q, ok := j.queue[it.id]; ok && q.seq == it.seq {
		delete(j.queue, it.id)
		j.stagedB -= q.sealedLen
		j.signalProgressLocked()
	}
	j.qmu.Unlock()
	if !lost {
		return false
	}
	const remedy = "reading the files that use it fails at that block and meshdrive status names them lost. " +
		"Restore those files from a copy (writing the same bytes again brings the block back), " +
		"or from an older version in the mount's .snapshots folder, or delete them; and check the local disk"
	some := strings.Join(paths[:min(10, len(paths))], ", ")
	// What happened, for the uploader's last error (status prints it) and
	// the log: a staging file gone is not one the disk damaged.
	short, what := "was damaged on local disk before its upload", "a staged block changed on local disk after it was sealed "+
		"(the disk or something outside meshdrive damaged it); it was not uploaded and is now"
	if errors.Is(cause, os.ErrNotExist) {
		short, what = "lost its staging file before its upload", "a staged block's staging file was removed outside meshdrive "+
			"before its upload; nothing else holds its bytes, and it is now"
	}
	named := fmt.Sprintf("%d files use it", files)
	if some != "" {
		named += " (" + some + ")"
	}
	if syncErr != nil {
		j.noteError(fmt.Errorf("staged block %s %s and is lost (%w); "+
			"the journal could not make that durable: %w; %s", it.id, short, cause, syncErr, named))
		j.log.Error("journal: "+what+" marked lost, but the journal could not make that durable on the local disk "+
			"(its staging file, if any, is kept: after a power cut the block may be staged again, and is checked again): "+remedy,
			"id", it.id, "files", files, "some", some, "check", cause, "err", syncErr)
		return true
	}
	j.noteError(fmt.Errorf("staged block %s %s and is lost: %w; %s; restore them from a copy or delete them", it.id, short, cause, named))
	j.log.Error("journal: "+what+" lost: "+remedy,
		"id", it.id, "files", files, "some", some, "check", cause)
	return true
}

// errDamaged: a staged block's bytes are not the ones sealed (pack).
var errDamaged = errors.New("staged block damaged")

// packBlock appends staged block it's sealed bytes to seg: a staging file
// is read straight into the shard payloads, a database row (small blocks)
// copied there.
func (j *uploader) packBlock(seg *remote.SegmentBuf, it qitem) error {
	if it.sealedLen > int64(j.fl.inlineMax()) {
		f, err := os.Open(j.stagePath(it.id))
		if err == nil {
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if st.Size() != it.sealedLen {
				// Shipped, it would be taken for durable and fail only
				// when read back, as corruption on the grid.
				return fmt.Errorf("%w: staging file %s is %d bytes, journal.db says %d: the local disk damaged it, and the block was never uploaded. "+
					"It is not shipped and the block is lost: the file that holds it cannot be read back at that block; restore that file from a copy "+
					"(writing the same bytes again brings the block back) or delete it", errDamaged, f.Name(), st.Size(), it.sealedLen)
			}
			if err := seg.ReadFull(f, st.Size()); err != nil {
				return fmt.Errorf("read %s: %w", f.Name(), err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	b, err := j.fd.stagedBytes(it.id, nil, it.sealedLen)
	if err != nil {
		return err
	}
	if int64(len(b)) != it.sealedLen {
		// Longer, it may not fit the segment laid out for it: an error
		// that would keep it queued for ever.
		return fmt.Errorf("%w: its staged copy is %d bytes, journal.db says %d: the local disk damaged it, and the block was never uploaded. "+
			"It is not shipped and the block is lost: the file that holds it cannot be read back at that block; restore that file from a copy "+
			"(writing the same bytes again brings the block back) or delete it", errDamaged, len(b), it.sealedLen)
	}
	_, err = seg.Write(b)
	return err
}

// readFileInto reads the file at path into dst's spare capacity when it
// fits (the result then shares dst's array), else into a new slice.
func readFileInto(path string, dst []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := st.Size()
	var b []byte
	if int64(cap(dst)) >= n { // the caller relies on this to know it is in place
		b = dst[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func (j *uploader) dequeue(id remote.BlockID, sealed int64) {
	j.qmu.Lock()
	delete(j.queue, id)
	j.stagedB -= sealed
	j.signalProgressLocked()
	j.qmu.Unlock()
}

func (j *uploader) noteError(err error) {
	j.qmu.Lock()
	j.stats.Errors++
	j.stats.LastError = err.Error()
	j.qmu.Unlock()
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool { return remote.Sleep(ctx, d) }

// ship writes one segment, retrying with capped exponential backoff and
// jitter while the grid fails. It returns an error only when ctx ends.
func (j *uploader) ship(ctx context.Context, seg *remote.SegmentBuf) (*remote.SegmentInfo, error) {
	bo := remote.Backoff{Min: 50 * time.Millisecond, Max: j.o.RetryMax}
	for attempt := 0; ; attempt++ {
		// Bandwidth limits are the grid's stores' (remote/limit).
		j.yieldToForeground(ctx)
		j.qmu.Lock()
		j.stats.InFlightBytes = seg.Len()
		j.qmu.Unlock()
		info, err := j.o.Grid.WriteSegmentBuf(ctx, seg)
		j.qmu.Lock()
		j.stats.InFlightBytes = 0
		j.qmu.Unlock()
		if err == nil {
			return info, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		j.noteError(err)
		d := bo.Delay(attempt)
		j.log.Warn("journal: segment upload failed; retrying", "bytes", seg.Len(), "retry_in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		case <-j.retryNow:
			t.Stop()
			attempt = -1 // the nodes are back: start the backoff over
		}
	}
}

// RetryNow ends the uploader's wait before its next attempt, when one
// failed: the nodes are back (the mount's health check saw them), so the
// queue goes now, not after a backoff that grows to RetryMax while they
// were away. A call while nothing waits cuts the next wait short.
func (j *uploader) RetryNow() {
	select {
	case j.retryNow <- struct{}{}:
	default:
	}
}

// NodesUp tells the uploader how many nodes answer now (the mount's
// health check, every few seconds). When that rises from fewer than a
// segment needs (k+1 shards stored, or all n when there is no parity:
// remote.Grid.WriteSegmentBuf) to enough, the wait between failed uploads
// ends (RetryNow): after an outage where some nodes stayed up but too
// few to store a segment, as after one where none did, the queue goes at
// once, not after a backoff that grew to RetryMax meanwhile.
func (j *uploader) NodesUp(up int) {
	if j.o.Grid == nil {
		return
	}
	k, m := j.o.Grid.K(), j.o.Grid.M()
	need := int64(min(k+1, k+m))
	prev := j.nodesUp.Swap(int64(up))
	if prev >= 0 && prev < need && int64(up) >= need {
		j.RetryNow()
	}
}

// maxYield bounds how long one segment upload waits for application
// reads, so a drive that is read without pause still uploads.
const maxYield = 250 * time.Millisecond

// maxFlushYield bounds how long one segment upload waits for big flushes,
// so a drive written without pause still uploads.
const maxFlushYield = 2 * time.Second

// behindLinger is how long after a write-behind goroutine ends the
// uploader still counts the write as going on: between two blocks of a
// sequential writer no goroutine runs for a few milliseconds (a 4 MiB
// block every 40 ms at 100 MB/s), and an uploader that shipped in such a
// gap took the CPU the writer's next blocks needed.
const behindLinger = 100 * time.Millisecond

// yieldToForeground holds a segment upload back while applications wait
// on the local disk or the grid: for at most maxYield while they wait for
// blocks from the grid (an interactive read should not queue behind
// megabytes of shards going to the same nodes), for at most maxFlushYield
// while a big flush stages its blocks or a sequential write is cut behind
// its writer (an fsync should not share the disk with shard writes when
// the grid is local, nor the CPU with encoding; nor should the writer),
// unless someone waits for the uploader (quota, WaitDurable).
func (j *uploader) yieldToForeground(ctx context.Context) {
	busy := func() (reads, flushes bool) {
		// A writer short of quota, or a caller of WaitDurable, waits for
		// the uploader itself (force): no yielding to flushes then.
		j.qmu.Lock()
		force := j.force
		j.qmu.Unlock()
		writing := j.bigFlushes.Load() > 0 || time.Since(time.Unix(0, j.behindEnd.Load())) < behindLinger
		return j.appReads.Load() > 0, writing && !force
	}
	reads, flushes := busy()
	if !reads && !flushes {
		return
	}
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		reads, flushes = busy()
		waited := time.Since(start)
		if !(reads && waited < maxYield) && !(flushes && waited < maxFlushYield) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// commitSegment records a stored segment and its blocks in one
// transaction, then frees their staging space.
func (j *uploader) commitSegment(ctx context.Context, info *remote.SegmentInfo, placed []placedBlock) error {
	nodes, err := json.Marshal(info.Nodes)
	if err != nil {
		return err
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	var done []placedBlock
	var keptDelta int64
	j.scopeLocked(scopeNone)
	err = j.txLocked(ctx, func(tx *sql.Tx) error {
		done, keptDelta = done[:0], 0
		if _, err := j.texec(ctx, tx, `INSERT INTO segments(id, k, m, size, shard_size, chunk_size, nodes, stored, created)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`, info.ID[:], info.K, info.M, info.Size, info.ShardSize, info.ChunkSize,
			string(nodes), info.Stored(), nowNS()); err != nil {
			return fmt.Errorf("record segment: %w", err)
		}
		// Two statements for the whole segment, not two per block: a
		// segment of small files' blocks holds hundreds of them.
		moved, err := j.placeBlocksTx(ctx, tx, info.ID, placed)
		if err != nil {
			return err
		}
		for _, p := range placed {
			if _, ok := moved[p.id]; ok {
				done = append(done, p)
				if j.o.KeepSmall > 0 && p.sealedLen <= int64(j.fl.inlineMax()) {
					keptDelta += p.sealedLen
				}
			}
		}
		if keptDelta > 0 {
			evicted, err := j.kp.evictTx(ctx, tx, j.keptB+keptDelta-j.o.KeepSmall)
			if err != nil {
				return err
			}
			keptDelta -= evicted
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.keptB += keptDelta
	// The staging files go only once that commit is durable: a power cut
	// could otherwise bring back staged blocks without their files (see
	// afterFreeLocked). One WAL fsync per segment.
	keep := false
	if len(done) > 0 {
		if err := j.barrierLocked(ctx); err != nil {
			j.log.Warn("journal: cannot make the upload commit durable; staging files are kept until the next open", "err", err)
			keep = true
		}
	}
	var plain, sealed int64
	for _, p := range done {
		if !keep && j.o.Uploaded != nil && p.sealedLen > int64(j.fl.inlineMax()) {
			j.o.Uploaded(p.id, j.stagePath(p.id), p.sealedLen) // it takes the file
		} else if !keep {
			if err := os.Remove(j.stagePath(p.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
				j.log.Warn("journal: remove uploaded staging file", "id", p.id, "err", err)
			}
		}
		plain += p.plainLen
		sealed += p.sealedLen
	}
	j.segMu.Lock()
	j.segs[info.ID] = info
	j.segMu.Unlock()
	j.qmu.Lock()
	for _, p := range placed {
		delete(j.queue, p.id)
	}
	j.stagedB -= sealed
	j.stats.DoneBytes += plain
	j.stats.ShippedBytes += info.ShardSize * int64(info.Stored())
	if info.Stored() < info.K+info.M {
		j.stats.RepairOwed++
	}
	j.signalFreeLocked()
	j.signalProgressLocked()
	j.qmu.Unlock()
	return nil
}

// placeBlocksSQL moves the blocks of a JSON array (hex id, offset,
// length) into a segment. The unary + keeps sqlite off the blocks_queue
// index: with it, the plan scanned every staged block once per array
// element (TestPlaceBlocksPlan).
const placeBlocksSQL = `UPDATE blocks SET state = ?1, segment = ?2, seg_off = r.value->>1, seg_len = r.value->>2
	FROM json_each(?3) AS r WHERE blocks.id = unhex(r.value->>0) AND +blocks.state = ?4 RETURNING blocks.id`

// placeBlocksTx points the staged blocks among placed at their place in
// segment seg and drops their staged rows (unless Options.KeepSmall keeps
// them), in two statements (the blocks
// as one JSON array: hex id, offset, length); it returns the blocks it
// moved. A block no longer staged (freed, or placed by an earlier
// segment) is left alone. wmu held, in a transaction.
func (j *uploader) placeBlocksTx(ctx context.Context, tx *sql.Tx, seg remote.SegmentID, placed []placedBlock) (map[remote.BlockID]struct{}, error) {
	b := make([]byte, 0, 2+len(placed)*(2*len(remote.BlockID{})+48))
	b = append(b, '[')
	for i, p := range placed {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[', '"')
		b = hex.AppendEncode(b, p.id[:])
		b = append(b, '"', ',')
		b = strconv.AppendInt(b, p.off, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, p.len, 10)
		b = append(b, ']')
	}
	b = append(b, ']')
	rows, err := j.tquery(ctx, tx, placeBlocksSQL, blockUploaded, seg[:], string(b), blockStaged)
	if err != nil {
		return nil, fmt.Errorf("record block locations: %w", err)
	}
	moved := make(map[remote.BlockID]struct{}, len(placed))
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("record block locations: %w", err)
		}
		var bid remote.BlockID
		copy(bid[:], id)
		moved[bid] = struct{}{}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("record block locations: %w", err)
	}
	if len(moved) == 0 || j.o.KeepSmall > 0 {
		return moved, nil // small blocks' rows stay (kept.go)
	}
	if _, err := j.texec(ctx, tx, `DELETE FROM staged WHERE id IN (SELECT unhex(r.value->>0) FROM json_each(?1) AS r
		JOIN blocks ON blocks.id = unhex(r.value->>0) AND blocks.segment = ?2)`, string(b), seg[:]); err != nil {
		return nil, fmt.Errorf("drop staged copies: %w", err)
	}
	return moved, nil
}

// Stats reports the uploader's progress.
func (j *uploader) Stats() UploadStats {
	j.qmu.Lock()
	s := j.stats
	for _, it := range j.queue {
		s.QueuedBlocks++
		s.QueuedBytes += it.plainLen
	}
	j.qmu.Unlock()
	if ro := &j.roLost; ro.waitBlocks > 0 {
		// Read-only: what an earlier mount left for the grid waits.
		s.QueuedBlocks, s.QueuedBytes, s.QueuedFiles = ro.waitBlocks, ro.waitBytes, ro.waitFiles
		return s
	}
	if s.QueuedBlocks > 0 && !j.closed.Load() {
		j.db.QueryRow(`SELECT count(DISTINCT m.ino) FROM blocks b JOIN blockmap m ON m.block = b.id WHERE b.state = ?`,
			blockStaged).Scan(&s.QueuedFiles)
	}
	return s
}

// WaitDurable flushes every dirty file, makes the journal durable on
// local disk, asks the uploader to ship partial
// segments now, and waits until every block queued before the call is in
// a stored segment.
func (j *uploader) WaitDurable(ctx context.Context) error {
	if err := j.checkOpen(); err != nil {
		return err
	}
	if j.o.ReadOnly {
		return nil
	}
	for _, ino := range j.it.dirtyInodes() {
		if err := j.fd.flushIno(ctx, ino, false); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	// One WAL fsync for those flushes and everything before them.
	if err := j.barrier(ctx); err != nil {
		return fmt.Errorf("journal: make the journal durable: %w", err)
	}
	j.ul.cleanApplied() // the closes it applied: nothing left in memory

	j.qmu.Lock()
	target := j.nextSeq
	j.qmu.Unlock()
	return j.waitQueue(ctx, func() bool {
		for _, it := range j.queue {
			if it.seq < target {
				return true
			}
		}
		return false
	})
}

// waitQueue returns once pending (called with qmu held) is false, asking
// the uploader to ship partial segments meanwhile.
func (j *uploader) waitQueue(ctx context.Context, pending func() bool) error {
	for {
		j.qmu.Lock()
		p := pending()
		if p {
			j.force = true
		}
		ch := j.progress
		j.qmu.Unlock()
		if !p {
			return nil
		}
		j.poke()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-j.done:
			return ErrClosed
		case <-ch:
		}
	}
}

// damagedSegment is the error for a segments row that fails Check: the
// database was changed outside meshdrive, or its disk lost data.
func damagedSegment(err error) error {
	return fmt.Errorf("journal: the journal's row of %w: journal.db was changed outside meshdrive or damaged; "+
		"meshdrive recover --node URL --data NEWDIR rebuilds the drive from its grid as of its last metadata checkpoint", err)
}

func loadSegment(ctx context.Context, db *sql.DB, id remote.SegmentID) (*remote.SegmentInfo, error) {
	s := &remote.SegmentInfo{ID: id}
	var nodes string
	err := db.QueryRowContext(ctx, `SELECT k, m, size, shard_size, chunk_size, nodes FROM segments WHERE id = ?`, id[:]).
		Scan(&s.K, &s.M, &s.Size, &s.ShardSize, &s.ChunkSize, &nodes)
	if err != nil {
		return nil, fmt.Errorf("journal: read segment %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(nodes), &s.Nodes); err != nil {
		return nil, damagedSegment(fmt.Errorf("segment %s: node list is not a JSON list of names: %w", id, err))
	}
	if err := s.Check(); err != nil {
		return nil, damagedSegment(err)
	}
	return s, nil
}
