package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/remote"
)

// cut is one dirty block after hashing and sealing.
type cut struct {
	idx      int64
	hole     bool
	id       remote.BlockID
	plainLen int64
	tmp      string // sealed bytes staged under a temporary name
	inline   []byte // or, for a small block, the sealed bytes to stage in the database
	plain    []byte // kept only when deduplicated (tmp and inline empty), to seal late if the block vanished
	unsealed []byte // or, for a new block of a close to be logged, its plain bytes: sealed when the close is applied (flushlog.go)
	big      []byte // or, for such a block sealed ahead too big for the database, its sealed bytes: the apply stages them in a file (incRef)
	staged   uint64 // or: the inode number of its file at its staging name (stageDirect), until a commit takes it
	// retake: the seq of the block's staged row when its copy on the
	// local disk failed its check (cutPlain): the flush sealed the
	// block again from its own bytes (tmp or inline), and incRef takes
	// that row over, if it is still the one, instead of adding a
	// reference to a copy that can never be uploaded. 0: none.
	retake int64
	// lost: deduplicated against a lost block's row, which this cut's
	// bytes bring back (incRef): its close commits at once (loggable),
	// so the files that name the block read again when it returns.
	lost bool
}

// stagedInlineMax is the largest sealed block staged in the database
// (table staged) instead of a staging file: creating a file costs more
// than the rest of a small file's flush, and the flush's commit makes the
// row durable with no fsync of its own. Blocks of more than half the
// block size always get a file (so small test block sizes still exercise
// both).
const stagedInlineMax = 128<<10 + remote.SealOverhead

func (j *flusher) inlineMax() int { return min(stagedInlineMax, int(j.bs)/2) }

// freed collects the effects of dropping references, applied after commit.
type freed struct {
	staged  []remote.BlockID // rows deleted: remove staging files, dequeue
	sealedB int64            // their sealed bytes
	durable bool             // the commit that freed them was durable (see afterFreeLocked)
}

// flushLocked commits n's dirty data: cut, hash, seal and stage outside
// wmu, then one transaction for the block map, size, times and the
// attributes set meanwhile (pendAttr). durable: that commit survives a
// power cut when this returns (fsync); otherwise a killed process loses
// nothing and the group commit makes it durable soon (close, idle
// flush, truncate). n.mu held.
func (j *flusher) flushLocked(ctx context.Context, n *inode, durable bool) error {
	return j.flushHowLocked(ctx, n, durable, false)
}

// flushHowLocked is flushLocked; mayLog: a close's flush, which may log
// its cuts and leave the commit to later (flushlog.go).
func (j *flusher) flushHowLocked(ctx context.Context, n *inode, durable, mayLog bool) error {
	if !n.hasDirty.Load() {
		return nil
	}
	if r := n.rec; r != nil && !durable && r.matches(n) {
		// Logged already, and nothing changed since: its apply commits
		// it, or has.
		if r.applied.Load() {
			j.cleanLocked(n, r.size)
		}
		return nil
	}
	n.amu.Lock()
	size, mtime, ctime := n.size, n.mtime, n.ctime
	pend := n.pend
	n.amu.Unlock()
	idxs := make([]int64, 0, len(n.dirty))
	for idx := range n.dirty {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	prio := 1
	if size < j.bs || durable { // small and fsync'd files before bulk
		prio = 0
	}
	if len(idxs) >= bigFlushBlocks {
		j.bigFlushes.Add(1)
		defer j.bigFlushes.Add(-1)
	}
	// A close that may be logged leaves its small new blocks unsealed:
	// the apply seals them, off the close's path (flushlog.go).
	mayDefer := mayLog && !durable && size <= flushMaxSize
	cuts, err := j.prepCuts(ctx, n, idxs, size, mayDefer)
	cleanup := func() {
		for _, c := range cuts {
			if c.tmp != "" {
				os.Remove(c.tmp)
			}
		}
	}
	if err != nil {
		cleanup()
		return err
	}
	var fr freed
	var added []qitem
	// A file with no block map rows has no old blocks to replace or drop.
	fresh := n.mapEmpty
	if mayDefer && loggable(cuts) {
		r := &flushRec{size: size, mtime: mtime, ctime: ctime, pend: pend, cuts: cuts, fresh: fresh}
		if j.ul.logFlushLocked(n, r) {
			n.refundLogged(j.c, r)
			return nil
		}
	}
	for i := range cuts { // not logged after all: sealed here, outside wmu
		if c := &cuts[i]; c.unsealed != nil {
			if err := j.stageSealed(c, c.unsealed, false); err != nil {
				cleanup()
				return err
			}
			c.unsealed = nil
		}
	}
	// An open inode's row lives until reclaim, which waits for n.mu.
	open := j.it.isOpen(n.ino)
	n.mapEmpty = false
	var row Attr // the inode's row after the commit
	j.wmu.Lock()
	j.scopeLocked(n.ino)
	commit := j.txLocked
	if durable {
		commit = j.durableTxLocked
	}
	err = commit(ctx, func(tx *sql.Tx) error {
		if !open {
			if err := j.inodeExists(ctx, tx, n.ino); err != nil {
				return err
			}
		}
		// The row comes back for the attribute cache: the kernel asks
		// for the file's attributes after its close.
		var renamed bool
		var err error
		row, renamed, err = j.cutsTx(ctx, tx, n.ino, cuts, prio, fresh, size, mtime, ctime, &pend, &fr, &added)
		if err != nil {
			return err
		}
		return j.syncStagingIf(renamed)
	})
	if err != nil {
		j.unstage(added)
		j.wmu.Unlock()
		cleanup()
		if errors.Is(err, ErrNotFound) {
			j.it.discardDirty(n)
			return err
		}
		return fmt.Errorf("journal: flush inode %d: %w", n.ino, err)
	}
	fr.durable = durable
	j.ac.put(n.ino, row, j.commitGen.Load()) // wmu held: no commit since
	j.afterFreeLocked(&fr)
	j.up.enqueue(added)
	j.wmu.Unlock()
	cleanup()
	j.cleanLocked(n, size)
	return nil
}

// cutsTx is a flush's transaction body (flushLocked's, and a logged
// close's apply): ino's block map pointed at cuts (applyCuts), the map
// cut back to size, and the inode's row updated with size, times and
// the pending attributes p; it returns the row, and whether a staging
// file was renamed into place. fresh: ino had no block map rows. wmu
// held.
func (j *flusher) cutsTx(ctx context.Context, tx *sql.Tx, ino Ino, cuts []cut, prio int, fresh bool, size, mtime, ctime int64, p *pendAttr, fr *freed, added *[]qitem) (Attr, bool, error) {
	renamed, err := j.applyCuts(ctx, tx, ino, cuts, prio, fr, added, fresh)
	if err != nil {
		return Attr{}, renamed, err
	}
	var used any // NULL: sum the block map
	if fresh {
		used = cutsUsed(cuts) // the map is exactly the cuts just applied
	} else if err := j.dropMapFrom(ctx, tx, ino, (size+j.bs-1)/j.bs, fr); err != nil {
		return Attr{}, renamed, err
	}
	row, err := j.updateFlushed(ctx, tx, ino, size, mtime, ctime, p, used)
	return row, renamed, err
}

// inodeExists fails with ErrNotFound when ino has no row. wmu held.
func (j *flusher) inodeExists(ctx context.Context, tx *sql.Tx, ino Ino) error {
	var one int
	if err := j.tqrow(ctx, tx, `SELECT 1 FROM inodes WHERE ino = ?`, ino).Scan(&one); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	return nil
}

// applyCuts points ino's block map at the cut blocks, taking references
// to them (new blocks are moved into staging and queued in *added) and
// dropping those of the blocks they replace. It reports whether a staging
// file was renamed into place (the staging directory then needs an fsync
// before the commit). fresh: ino has no block map rows, so there are no
// old blocks to look up. wmu held.
func (j *flusher) applyCuts(ctx context.Context, tx *sql.Tx, ino Ino, cuts []cut, prio int, fr *freed, added *[]qitem, fresh bool) (renamed bool, err error) {
	for i := range cuts {
		c := &cuts[i]
		var old []byte
		if !fresh {
			err := j.tqrow(ctx, tx, `SELECT block FROM blockmap WHERE ino = ? AND idx = ?`, ino, c.idx).Scan(&old)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return renamed, err
			}
		}
		if !c.hole && c.retake == 0 && bytes.Equal(old, c.id[:]) {
			// Unchanged, unless the block is lost: the bytes written
			// over it bring it back (incRef takes the row over, and
			// decRef below drops the reference it added).
			var state int
			if err := j.tqrow(ctx, tx, `SELECT state FROM blocks WHERE id = ?`, old).Scan(&state); err != nil {
				return renamed, err
			}
			if state != blockLost {
				continue
			}
		}
		if c.hole {
			if old == nil {
				continue
			}
			if _, err := j.texec(ctx, tx, `DELETE FROM blockmap WHERE ino = ? AND idx = ?`, ino, c.idx); err != nil {
				return renamed, err
			}
		} else {
			it, moved, err := j.incRef(ctx, tx, c, prio, fr)
			renamed = renamed || moved
			if err != nil {
				return renamed, err
			}
			if it != nil {
				*added = append(*added, *it)
			}
			if _, err := j.texec(ctx, tx, `INSERT OR REPLACE INTO blockmap(ino, idx, block) VALUES(?, ?, ?)`, ino, c.idx, c.id[:]); err != nil {
				return renamed, err
			}
		}
		if old != nil {
			if err := j.decRef(ctx, tx, old, fr); err != nil {
				return renamed, err
			}
		}
	}
	return renamed, nil
}

// bigFlushBlocks is the number of dirty blocks from which a flush counts as
// big: the uploader holds back while one runs (yieldToForeground).
const bigFlushBlocks = 4

// flushWorkers bounds the blocks of one flush cut, sealed and staged at
// once. Sealing is CPU; staging waits on fsync, and concurrent fsyncs share
// the local file system's journal commits.
const flushWorkers = 4

// prepCuts reads, hashes, deduplicates, seals and stages the dirty blocks
// idxs of n (sorted), several at a time. The cuts come back in idxs order;
// on error the caller removes the temporary files of those returned. n.mu
// held.
func (j *flusher) prepCuts(ctx context.Context, n *inode, idxs []int64, size int64, late bool) ([]cut, error) {
	cuts := make([]cut, len(idxs))
	one := func(i int) error {
		idx := idxs[i]
		cuts[i].idx = idx
		l := min(j.bs, size-idx*j.bs)
		if l <= 0 {
			cuts[i].hole = true // beyond the end: nothing to store
			return nil
		}
		plain := make([]byte, l) // owned by this cut until it is staged
		if err := n.f.readFull(plain, idx*j.bs); err != nil {
			return fmt.Errorf("journal: read dirty data of inode %d: %w", n.ino, err)
		}
		c, err := j.cutPlain(ctx, idx, plain, false, late)
		if err != nil {
			return err
		}
		cuts[i] = c
		return nil
	}
	if len(idxs) == 1 {
		if err := one(0); err != nil {
			return cuts[:0], err
		}
		return cuts, nil
	}
	var g errgroup.Group
	g.SetLimit(flushWorkers)
	for i := range idxs {
		g.Go(func() error { return one(i) })
	}
	return cuts, g.Wait()
}

// cutPlain makes block idx from plain (which the cut owns from here on):
// trailing zeros are not stored (a short block reads as zeros), an
// all-zero block is a hole; otherwise it is hashed, looked up for dedup,
// and sealed and staged (stageSealed) when it is new. direct: stage a
// big block under its own name (stageDirect) when it can. late: a new
// block is left unsealed (cut.unsealed), for a logged close's apply to
// seal, and to stage in a file if it seals too big for the database.
func (j *flusher) cutPlain(ctx context.Context, idx int64, plain []byte, direct, late bool) (cut, error) {
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 {
		return cut{idx: idx, hole: true}, nil
	}
	c := cut{idx: idx, plainLen: int64(len(plain))}
	c.id = j.seal.BlockID(plain)
	if remote.SealedSizeMax(len(plain)) <= j.inlineMax() && j.known.absent(c.id) {
		// New for sure, and staged in the database whatever it seals to
		// (known.go): no look-up.
		j.known.skipped.Add(1)
		if late {
			c.unsealed = plain
			return c, nil
		}
		err := j.stageSealed(&c, plain, false)
		return c, err
	}
	row, err := j.blockRow(ctx, c.id)
	if err != nil {
		return c, err
	}
	if row.found && row.state == blockStaged {
		// Its only copy is the staging file or row on this disk: one the
		// disk damaged must not take the reference while these good
		// bytes are dropped.
		if err := j.stagedIntact(ctx, c.id, row); err != nil {
			j.log.Warn("journal: a block not yet uploaded was damaged on the local disk; the same bytes, written again, replace it",
				"id", c.id, "err", err)
			c.retake = row.seq
			if err := j.stageSealed(&c, plain, false); err != nil || c.inline == nil || row.sealedLen <= int64(j.inlineMax()) {
				return c, err
			}
			// The damaged copy is a staging file (sealed before with
			// another compression): so is the new one, which replaces it.
			c.tmp, err = j.writeTemp(c.id, c.inline)
			c.inline = nil
			return c, err
		}
	}
	if row.found {
		c.plain, c.lost = plain, row.state == blockLost
		return c, nil
	}
	if late {
		c.unsealed = plain
		return c, nil
	}
	err = j.stageSealed(&c, plain, direct)
	return c, err
}

// stageSealed seals plain as block c and stages it: in c.inline when
// small, else in a temporary staging file named by c.tmp, or (direct)
// under its own name (c.staged, stageDirect).
func (j *flusher) stageSealed(c *cut, plain []byte, direct bool) error {
	return sealCut(j, c, plain, func(sealed []byte) (err error) {
		if !direct || !j.stageDirect(c, sealed) {
			c.tmp, err = j.writeTemp(c.id, sealed)
		}
		return err
	})
}

// sealCut seals plain as block c: in c.inline when small enough for the
// database, else it hands the sealed bytes to big (they live in a pooled
// buffer until big returns). (A function: flusher's method set is full.)
func sealCut(j *flusher, c *cut, plain []byte, big func(sealed []byte) error) error {
	buf := sealBufs.Get().(*[]byte)
	sealed := j.seal.Seal(sealBuf(buf, len(plain)), c.id, plain)
	var err error
	if len(sealed) <= j.inlineMax() {
		c.inline = slices.Clone(sealed)
	} else {
		err = big(sealed)
	}
	*buf = sealed[:0]
	sealBufs.Put(buf)
	return err
}

// sealBufs holds buffers for sealed blocks being staged: one lives from
// Seal to the end of writeTemp (or the copy kept as cut.inline).
var sealBufs = sync.Pool{New: func() any { return new([]byte) }}

// blockRow is block id's row as a flush looks it up (found false: none).
type blockRow struct {
	found          bool
	state          int
	seq, sealedLen int64
}

func (j *flusher) blockRow(ctx context.Context, id remote.BlockID) (blockRow, error) {
	var r blockRow
	st, release := j.reader(j.st.blockExists, j.wst.blockExists)
	err := st.QueryRowContext(ctx, id[:]).Scan(&r.state, &r.seq, &r.sealedLen)
	release()
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("journal: look up block: %w", err)
	}
	r.found = true
	return r, nil
}

// stagedIntact checks staged block id's copy on the local disk (its
// staging file or its row in table staged) as the uploader will before
// shipping it: there, of the length row says, and authentic (Verify). A
// copy gone because the block was uploaded or freed since row was read
// is no damage: nil.
func (j *flusher) stagedIntact(ctx context.Context, id remote.BlockID, row blockRow) error {
	buf := sealBufs.Get().(*[]byte)
	b, err := j.fd.stagedBytes(id, (*buf)[:0], row.sealedLen)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if now, lerr := j.blockRow(ctx, id); lerr != nil || now != row {
			err = nil // uploaded or freed meanwhile: incRef sees to it
		}
	case err == nil && int64(len(b)) != row.sealedLen:
		err = fmt.Errorf("%w: %d bytes, journal.db says %d", errDamaged, len(b), row.sealedLen)
	case err == nil:
		err = j.seal.Verify(b, id)
	}
	sealBufs.Put(buf) // b is in it, or was allocated (the pool's are aligned: sealBuf)
	return err
}

// writeTemp writes sealed bytes to a new temporary staging file and
// fsyncs it (stageTemp), a second time when the disk was full and
// Options.MakeRoom freed some of it.
func (j *flusher) writeTemp(id remote.BlockID, sealed []byte) (string, error) {
	name, err := stageTemp(j, id, sealed)
	if errors.Is(err, os.ErrNotExist) {
		if there, rerr := remakeStaging(j, err); there {
			name, err = stageTemp(j, id, sealed)
		} else if rerr != nil {
			return "", rerr
		}
	}
	if madeRoom(&j.o, j.log, err, len(sealed)) {
		name, err = stageTemp(j, id, sealed)
	}
	return name, stagingFolderErr(j.stage, err) // gone still: not made again
}

// remakeStaging makes the staging directory again when it is gone
// (removed by hand, or by a cleaner of old files) and no block waits in
// it for upload, so that closes and fsyncs go on instead of failing with
// a bare "no such file or directory". It reports whether the directory
// is there now, made by this call or by a close racing with it, so the
// caller tries again; only the call that made it logs so, once. When
// blocks do wait in it, the folder may have been moved or its disk not
// mounted, which can be undone: an empty folder in its place would make
// the uploader find their files missing and mark them all lost
// (uploader.pack), and would stand in the way of moving the folder back.
// It then makes nothing and returns an error that says what to do, as the
// uploader's own (stagingGone), with cause (the staging write's error) in
// it. A link to nothing (its disk not mounted) is not there: the caller's
// error says so (stagingFolderErr). (A function: flusher's method set is
// full.)
func remakeStaging(j *flusher, cause error) (bool, error) {
	made := false
	if _, err := os.Stat(j.stage); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		var waiting int64
		if err := j.db.QueryRow(`SELECT count(*) FROM blocks WHERE state = ? AND id NOT IN (SELECT id FROM staged)`,
			blockStaged).Scan(&waiting); err != nil {
			return false, fmt.Errorf("journal: the staging folder %s is gone, and the blocks that wait in it cannot be counted: %w", j.stage, err)
		}
		if waiting > 0 {
			if _, err := os.Stat(j.stage); err != nil { // else a racing close made it and staged those since the look above
				return false, fmt.Errorf("journal: the staging folder %s is gone, and %d blocks not yet uploaded have their only copy in it: "+
					"put the folder back (mount its disk, or move it back) and closes and fsyncs go on (what they wrote is kept until then); if it cannot come back, "+
					"unmount and mount with --drop-missing, which marks those blocks lost and keeps everything else: %w", j.stage, waiting, hideErrno{cause})
			}
		} else if err := os.Mkdir(j.stage, 0o700); err == nil {
			made = true
		} else if !errors.Is(err, os.ErrExist) {
			j.log.Error("journal: the staging folder is gone and cannot be made again; closes of large files fail until it can",
				"dir", j.stage, "err", err)
			return false, nil
		} else if _, err := os.Stat(j.stage); err != nil {
			return false, nil // a link to nothing
		}
	}
	// There now, made by this call or by a racing close, whose sync of
	// the journal folder may not be done: an fsync that returns must
	// find the folder after a power cut.
	if err := syncDir(j.o.Dir); err != nil {
		j.log.Warn("journal: sync the journal folder after making the staging folder again", "dir", j.o.Dir, "err", err)
	}
	if made {
		j.log.Warn("journal: the staging folder was gone (removed by hand or by a cleaner?) and was made again; no block waited in it for upload",
			"dir", j.stage)
	}
	return true, nil
}

// stageTemp writes sealed bytes to a new temporary staging file and
// fsyncs it: with O_DIRECT when it can (stagefile.go), else through the
// page cache. (A function: flusher's method set is full.)
func stageTemp(j *flusher, id remote.BlockID, sealed []byte) (string, error) {
	var r [8]byte
	rand.Read(r[:])
	name := j.stagePath(id) + "." + hex.EncodeToString(r[:]) + ".tmp"
	if !j.bufferedStage.Load() && canWriteDirect(sealed) {
		ino, err := writeDirect(name, sealed)
		if err == nil {
			return name, nil
		}
		if ino != 0 {
			os.Remove(name) // a random name: nobody else has it
		}
		if !errors.Is(err, errNoDirect) {
			return "", fmt.Errorf("journal: stage block: %w", err)
		}
		j.bufferedStage.Store(true)
		j.log.Info("journal: the staging directory refuses O_DIRECT; staging through the page cache", "dir", j.stage)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("journal: stage block: %w", err)
	}
	_, err = f.Write(sealed)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		// Clean now: drop its pages, which the next staging write then
		// reuses, instead of growing the page cache by every byte staged
		// (the uploader reads it once, soon, and that read can come from
		// the disk).
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("journal: stage block: %w", err)
	}
	return name, nil
}

// syncStagingIf fsyncs the staging directory when a commit is about to
// refer to a staging file renamed into it.
func (j *flusher) syncStagingIf(renamed bool) error {
	if !renamed {
		return nil
	}
	if err := syncDir(j.stage); err != nil {
		return stagingFolderErr(j.stage, fmt.Errorf("sync staging directory: %w", err))
	}
	return nil
}

// unstage removes the staging files of blocks whose commit failed: no
// row refers to them (Open would remove them too), but for a row a
// flush was taking over (qitem.retook), whose damaged copy that file
// replaced.
func (j *flusher) unstage(added []qitem) {
	for _, it := range added {
		if !it.retook { // the good copy of a row the commit leaves as it was
			os.Remove(j.stagePath(it.id))
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// incRef adds a reference to c's block, creating the row (and moving the
// staged file into place, or storing the small sealed block in table
// staged) if it is new. It returns the queue item of a new block, and
// whether a staging file was renamed into place. wmu held.
//
// A block sealed by this flush (c.inline or c.tmp set) was not in the
// table when cutPlain looked, so its row is inserted first and the
// reference update runs only if another flush added the block since: a
// new small file's flush runs one statement fewer.
func (j *flusher) incRef(ctx context.Context, tx *sql.Tx, c *cut, prio int, fr *freed) (it *qitem, renamed bool, err error) {
	if c.unsealed != nil {
		// A logged close's block that nothing sealed ahead (sealAhead).
		if err := j.stageSealed(c, c.unsealed, false); err != nil {
			return nil, false, err
		}
		c.unsealed = nil
	}
	if c.big != nil && c.tmp == "" {
		// Sealed ahead, too big for the database: to a staging file
		// now. c.big stays: a transaction rolled back after the rename
		// below is tried again from it.
		if c.tmp, err = j.writeTemp(c.id, c.big); err != nil {
			return nil, false, err
		}
	}
	sealedNow := c.tmp != "" || c.inline != nil || c.staged != 0
	if !sealedNow {
		if ok, err := j.addRef(ctx, tx, c); ok || err != nil {
			return nil, false, err
		}
		// Deduplicated against a block that has gone since: seal now.
		if err := j.stageSealed(c, c.plain, false); err != nil {
			return nil, false, err
		}
	}
	var sealedLen int64
	own := false // c.staged's file is still at its name
	if c.inline != nil {
		sealedLen = int64(len(c.inline))
	} else if c.staged != 0 {
		sealedLen, own = j.ownStaged(c)
	} else {
		st, err := os.Stat(c.tmp)
		if err != nil {
			return nil, false, stagingFolderErr(j.stage, err)
		}
		sealedLen = st.Size()
	}
	// A staged row whose copy failed its check (cut.retake) is taken
	// over when it is still that row: its damaged bytes leave the quota
	// (the queue's entry is the new copy's from its enqueue on).
	retake, damagedLen := int64(-1), int64(0)
	if c.retake != 0 {
		var state int
		var seq int64
		err := j.tqrow(ctx, tx, `SELECT state, seq, sealed_len FROM blocks WHERE id = ?`, c.id[:]).Scan(&state, &seq, &damagedLen)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, false, err
		}
		if err == nil && state == blockStaged && seq == c.retake {
			retake = seq
		}
	}
	j.qmu.Lock()
	seq := j.nextSeq
	j.nextSeq++
	j.qmu.Unlock()
	// A lost block's row (ErrLostBlock) is taken over by the new copy,
	// as a new block: the files that name it read again. So is a
	// garbage row with no segment: a lost block freed by a build before
	// lost blocks were deleted when freed (its freed mark goes too).
	res, err := j.texec(ctx, tx, `INSERT INTO blocks(id, plain_len, sealed_len, refcount, state, prio, seq)
		VALUES(?1, ?2, ?3, 1, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET plain_len = ?2, sealed_len = ?3,
			refcount = blocks.refcount + 1, state = ?4, prio = ?5, seq = ?6, segment = NULL, seg_off = NULL, seg_len = NULL,
			freed = NULL
		WHERE blocks.state = ?7 OR (blocks.state = ?8 AND blocks.segment IS NULL) OR (blocks.state = ?4 AND blocks.seq = ?9)`,
		c.id[:], c.plainLen, sealedLen, blockStaged, prio, seq, blockLost, blockGarbage, retake)
	if err != nil {
		return nil, false, err
	}
	if k, _ := res.RowsAffected(); k == 0 {
		// Added by another flush since cutPlain looked, or in the
		// table all along but not in the filter of known blocks
		// (known.go). Only a sealed block gets here: the others' row
		// went, under wmu, before the insert. The staging file made for
		// it is removed by the caller.
		if _, err := j.addRef(ctx, tx, c); err != nil {
			return nil, false, err
		}
		return nil, false, nil
	}
	j.known.add(c.id)
	if c.staged != 0 && !own {
		// Another flush of the block renamed its file over this one's
		// and dropped it since: the commit fails, the block stays dirty.
		return nil, false, fmt.Errorf("stage block %s: its staging file was replaced", c.id)
	}
	// Deleted earlier in this transaction (here, or by a logged close
	// applied at its start, whose frees are kept apart: j.unl.fa), or
	// by an ordinary commit whose staging file waits for a durable one,
	// and back now: its staging file must survive.
	fr.staged = slices.DeleteFunc(fr.staged, func(id remote.BlockID) bool { return id == c.id })
	if fa := &j.unl.fa.fr; fa != fr {
		fa.staged = slices.DeleteFunc(fa.staged, func(id remote.BlockID) bool { return id == c.id })
	}
	j.keepStagedLocked(c.id)
	it = &qitem{id: c.id, seq: seq, prio: prio, sealedLen: sealedLen, plainLen: c.plainLen, retook: retake > 0}
	if retake > 0 {
		fr.sealedB += damagedLen
		if c.inline == nil { // a staging file replaces a damaged row
			if _, err := j.texec(ctx, tx, `DELETE FROM staged WHERE id = ?`, c.id[:]); err != nil {
				return nil, false, err
			}
		}
	}
	if c.inline != nil && retake > 0 { // over the damaged row, if it was one
		_, err = j.texec(ctx, tx, `INSERT OR REPLACE INTO staged(id, sealed) VALUES(?, ?)`, c.id[:], c.inline)
		return it, false, err
	}
	if c.inline != nil {
		_, err = j.texec(ctx, tx, `INSERT INTO staged(id, sealed) VALUES(?, ?)`, c.id[:], c.inline)
		return it, false, err
	}
	if c.staged != 0 {
		c.staged = 0 // at its name, the directory synced, since stageDirect
		return it, false, nil
	}
	if err := os.Rename(c.tmp, j.stagePath(c.id)); err != nil {
		return nil, false, stagingFolderErr(j.stage, fmt.Errorf("stage block: %w", err))
	}
	c.tmp = ""
	return it, true, nil
}

// addRef adds a reference to c's block if its row exists (reviving it
// if it was garbage), and reports whether it did. A lost block's row is
// not one to add to, nor a garbage row with no segment (an older build's
// freed lost block): the caller seals c and incRef's insert takes the
// row over. wmu held.
func (j *flusher) addRef(ctx context.Context, tx *sql.Tx, c *cut) (bool, error) {
	res, err := j.texec(ctx, tx, `UPDATE blocks SET refcount = refcount + 1,
		state = CASE state WHEN ?1 THEN ?2 ELSE state END WHERE id = ?3 AND state != ?4 AND (state != ?1 OR segment IS NOT NULL)`,
		blockGarbage, blockUploaded, c.id[:], blockLost)
	if err != nil {
		return false, err
	}
	k, _ := res.RowsAffected()
	return k == 1, nil
}

// decRef drops a reference. A staged block with none left is deleted (its
// file is removed after commit); an uploaded one becomes garbage. wmu held.
func (j *flusher) decRef(ctx context.Context, tx *sql.Tx, id []byte, fr *freed) error {
	var ref, state int
	var sealedLen int64
	err := j.tqrow(ctx, tx, `UPDATE blocks SET refcount = refcount - 1 WHERE id = ? RETURNING refcount, state, sealed_len`, id).
		Scan(&ref, &state, &sealedLen)
	if err != nil {
		return fmt.Errorf("drop block reference: %w", err)
	}
	if ref > 0 {
		return nil
	}
	if state == blockStaged {
		return j.dropStaged(ctx, tx, id, sealedLen, fr)
	}
	if state == blockLost {
		// Nothing to collect: its bytes are nowhere.
		_, err = j.texec(ctx, tx, `DELETE FROM blocks WHERE id = ?`, id)
		return err
	}
	_, err = j.texec(ctx, tx, `UPDATE blocks SET state = ? WHERE id = ?`, blockGarbage, id)
	return err
}

// dropStaged deletes a staged block left with no reference; its staging
// file is removed after the commit (afterFreeLocked). wmu held.
func (j *flusher) dropStaged(ctx context.Context, tx *sql.Tx, id []byte, sealedLen int64, fr *freed) error {
	if _, err := j.texec(ctx, tx, `DELETE FROM staged WHERE id = ?`, id); err != nil {
		return err
	}
	if _, err := j.texec(ctx, tx, `DELETE FROM blocks WHERE id = ?`, id); err != nil {
		return err
	}
	var bid remote.BlockID
	copy(bid[:], id)
	fr.staged = append(fr.staged, bid)
	fr.sealedB += sealedLen
	return nil
}

// dropMapFrom removes ino's block map rows with idx >= from. wmu held.
func (j *flusher) dropMapFrom(ctx context.Context, tx *sql.Tx, ino Ino, from int64, fr *freed) error {
	rows, err := j.tquery(ctx, tx, `DELETE FROM blockmap WHERE ino = ? AND idx >= ? RETURNING block`, ino, from)
	if err != nil {
		return fmt.Errorf("drop block map: %w", err)
	}
	var ids [][]byte
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if err := j.decRef(ctx, tx, id, fr); err != nil {
			return err
		}
	}
	return nil
}

func (j *flusher) afterFree(fr *freed) {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.afterFreeLocked(fr)
}

// afterFreeLocked removes the staging files of deleted blocks. wmu held
// (so no flush re-creates one of them meanwhile). A file is removed only
// once the commit that dropped its block can no longer be undone by a
// power cut: after an ordinary commit (synchronous=NORMAL) it waits for
// the next durable commit (freeLaterLocked), else a power cut could
// bring back a staged block whose file is gone, and Open would refuse
// the journal. The blocks leave the upload queue and the quota at once.
// A block dropped and staged again in the transaction (incRef took it
// off fr.staged) keeps its file and its place in the queue, which the
// new copy's enqueue takes over, but its old bytes leave the quota.
func (j *flusher) afterFreeLocked(fr *freed) {
	if len(fr.staged) == 0 && fr.sealedB == 0 {
		return
	}
	if !fr.durable {
		j.freeLaterLocked(fr.staged)
		j.dequeueFreed(fr)
		return
	}
	for _, id := range fr.staged {
		if err := os.Remove(j.stagePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.log.Warn("journal: remove staged block", "id", id, "err", err)
		}
	}
	j.dequeueFreed(fr)
}

// dequeueFreed takes freed blocks off the upload queue and the quota.
func (j *flusher) dequeueFreed(fr *freed) {
	j.qmu.Lock()
	for _, id := range fr.staged {
		delete(j.queue, id)
	}
	j.stagedB -= fr.sealedB
	j.up.signalFreeLocked()
	j.up.signalProgressLocked()
	j.qmu.Unlock()
}
