package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// inode is the in-memory state of a file that is open, dirty or in use.
// It lives in Journal.inodes while refs > 0, open > 0 or it has dirty
// data.
type inode struct {
	ino Ino
	// refs, open and unlinked are guarded by Journal.imu.
	refs int
	open int
	// unlinked: a name of it went away while it was open, so its last
	// ReleaseFile checks whether it has links left.
	unlinked bool
	// openOK: an open handle found its row (OpenExisting), so the
	// inode lives until the last release; false again then.
	openOK bool

	hasDirty atomic.Bool // dirty blocks or unflushed size/times

	// mu guards the data fields below and serializes reads, writes and
	// flushes of this file. It is held while hashing and sealing, never
	// together with another inode's mu.
	mu     sync.Mutex
	loaded bool
	// mapEmpty: the file has no block map rows (made in this mount, and
	// no flush or write-behind has begun a commit of its blocks since),
	// so its first flush need not look for old blocks.
	mapEmpty bool
	mode     uint32
	f        *dirtyFile       // unflushed bytes at the file's own offsets (dirty.go); nil until first write
	dirty    map[int64]uint64 // block indexes whose whole block is in f -> wgen of their last change
	wgen     uint64           // counts changes to f; see markDirty
	wend     int64            // end of the last write, to see sequential writers
	// rec is the deferred flush that logged this file's close, until its
	// apply is cleaned up (flushlog.go); recBlocks is, while the file is
	// as rec logged it, the 512-byte blocks rec's blocks use, plus one
	// (0: not known), so that its stat shows what the apply will store.
	rec       *flushRec
	recBlocks atomic.Int64
	// logRefund is the quota (dirtyB) that the logging of rec gave back:
	// dirty blocks are charged whole while written, but a logged close
	// holds only its record and the dirty file's bytes. The next write,
	// truncate or write-behind charges it again (chargeBack), and a
	// release of the dirty data gives back only what is charged
	// (takeCharge).
	logRefund int64
	// behindQ are blocks a sequential writer has moved past, for the
	// write-behind goroutines; behindN of them run; behindIdle is
	// non-nil while any does and closed when the last stops (behind.go).
	behindQ    []int64
	behindN    int
	behindIdle chan struct{}
	// last decoded stored block, for small sequential reads; lastHold
	// (nil: nothing to release) lets the block reader reuse lastPlain's
	// memory once the memo drops it (dropLast)
	lastIdx   int64
	lastID    remote.BlockID
	lastPlain []byte
	lastHold  BlockHold
	// memo holds block map rows of one-block reads, valid while
	// commitGen is memoGen (mapMemo).
	memo    map[int64]memoRow
	memoGen uint64
	nextOff int64 // where a sequential read would continue
	seqRun  int
	prefTo  int64 // block index up to which read-ahead was requested

	// amu guards the attribute overlay below (read by GetAttr without mu).
	amu       sync.Mutex
	size      int64
	attrDirty bool // size/mtime/ctime (and pend) differ from the database
	mtime     int64
	ctime     int64
	pend      pendAttr // set while the file has unflushed data (SetAttr)
	timer     *time.Timer
}

// pendAttr holds what a SetAttr changed on a file with unflushed data
// besides times: its flush stores them in its own commit.
type pendAttr struct {
	mode, uid, gid          uint32
	atime                   int64
	hasMode, hasUid, hasGid bool
	hasAtime                bool
	// exactCtime: the kernel set the ctime (SetAttr.Ctime), so n.ctime
	// is stored as it is, not only when it is later than the stored one.
	// A link, unlink or rename commits its own ctime meanwhile, which
	// the flush then sets back to the kernel's: with its write-back cache
	// the kernel owns ctime, and sends its own after those too.
	exactCtime bool
}

// args gives the flush's UPDATE its mode, uid, gid and atime (NULL keeps
// the column).
func (p *pendAttr) args() (mode, uid, gid, atime any) {
	if p.hasMode {
		mode = int64(p.mode)
	}
	if p.hasUid {
		uid = int64(p.uid)
	}
	if p.hasGid {
		gid = int64(p.gid)
	}
	if p.hasAtime {
		atime = p.atime
	}
	return
}

// markDirty records that block idx of f changed: write-behind commits a
// block it cut only if it did not change meanwhile. n.mu held.
func (n *inode) markDirty(idx int64) {
	n.wgen++
	n.recBlocks.Store(0)
	n.dirty[idx] = n.wgen
}

func (n *inode) stopTimer() {
	n.amu.Lock()
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	n.amu.Unlock()
}

// getInode returns the in-memory inode with a reference; the caller must
// call putInode. It does not load it (see load).
func (j *inodeTable) getInode(ino Ino) *inode {
	j.imu.Lock()
	defer j.imu.Unlock()
	n := j.inodes[ino]
	if n == nil {
		n = &inode{ino: ino, dirty: map[int64]uint64{}, lastIdx: -1}
		j.imapMu.Lock()
		j.inodes[ino] = n
		j.imapMu.Unlock()
	}
	n.refs++
	return n
}

// memInode returns ino's in-memory inode with a reference (the caller
// calls putInode), or nil when it has none (then nothing of it is dirty).
func (j *inodeTable) memInode(ino Ino) *inode {
	j.imu.Lock()
	defer j.imu.Unlock()
	n := j.inodes[ino]
	if n != nil {
		n.refs++
	}
	return n
}

func (j *inodeTable) putInode(n *inode) {
	j.imu.Lock()
	defer j.imu.Unlock()
	n.refs--
	j.maybeForgetLocked(n)
}

// maybeForgetLocked drops a clean, unused inode from the map. imu held.
func (j *inodeTable) maybeForgetLocked(n *inode) {
	if n.refs == 0 && n.open == 0 && !n.hasDirty.Load() && j.inodes[n.ino] == n {
		j.imapMu.Lock()
		delete(j.inodes, n.ino)
		j.imapMu.Unlock()
		if n.f != nil {
			n.f.remove()
			n.f = nil
		}
	}
}

func (j *inodeTable) dirtyPath(ino Ino) string {
	return filepath.Join(j.dirty, strconv.FormatUint(uint64(ino), 10))
}

// load reads size and mode from the database. n.mu held.
func (j *inodeTable) load(ctx context.Context, n *inode) error {
	if n.loaded {
		return nil
	}
	if a, ok := j.unl.createdAttr(n.ino); ok {
		// Made by a pending create: empty, no block map (creates.go).
		n.mode, n.loaded, n.mapEmpty = a.Mode, true, true
		return nil
	}
	var size int64
	err := j.qrow(ctx, `SELECT mode, size FROM inodes WHERE ino = ?`, n.ino).Scan(&n.mode, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("journal: load inode %d: %w", n.ino, err)
	}
	n.amu.Lock()
	n.size = size
	n.amu.Unlock()
	n.loaded = true
	return nil
}

// regular loads n and checks that it is a regular file. n.mu held.
func (j *inodeTable) regular(ctx context.Context, n *inode) error {
	if err := j.load(ctx, n); err != nil {
		return err
	}
	switch n.mode & sIFMT {
	case sIFREG:
		return nil
	case sIFDIR:
		return ErrIsDir
	}
	return fmt.Errorf("%w: inode %d is not a regular file", ErrInvalid, n.ino)
}

// overlay applies unflushed size and times to an attribute read from the
// database.
func (j *inodeTable) overlay(a Attr) Attr {
	a = j.unl.dirSetOverlay(a) // a directory's pending change (dirattr.go)
	j.imapMu.Lock()
	n := j.inodes[a.Ino]
	j.imapMu.Unlock()
	if n == nil {
		return a
	}
	n.amu.Lock()
	defer n.amu.Unlock()
	if n.attrDirty {
		a.Size = uint64(n.size)
		a.Mtime = time.Unix(0, n.mtime)
		if ct := time.Unix(0, n.ctime); ct.After(a.Ctime) || n.pend.exactCtime {
			a.Ctime = ct
		}
		p := &n.pend
		if p.hasMode {
			a.Mode = a.Mode&sIFMT | p.mode&07777
		}
		if p.hasUid {
			a.Uid = p.uid
		}
		if p.hasGid {
			a.Gid = p.gid
		}
		if p.hasAtime {
			a.Atime = time.Unix(0, p.atime)
		}
		if b := n.recBlocks.Load(); b > 0 {
			a.Blocks = uint64(b - 1) // a logged close's (flushlog.go)
		} else {
			// Unflushed data may use up to the size (an overestimate
			// for sparse writes until the flush).
			a.Blocks = max(a.Blocks, uint64(n.size+511)/512)
		}
	}
	return a
}

// OpenFile counts an open handle: the data of an unlinked inode lives
// until the last ReleaseFile.
func (j *inodeTable) OpenFile(ino Ino) {
	j.imu.Lock()
	defer j.imu.Unlock()
	j.openLocked(ino)
}

// openLocked counts an open handle of ino and returns its inode, which
// stays in the map while the handle is open. imu held.
func (j *inodeTable) openLocked(ino Ino) *inode {
	n := j.inodes[ino]
	if n == nil {
		n = &inode{ino: ino, dirty: map[int64]uint64{}, lastIdx: -1}
		if c := j.created; c.ino == ino && c.gen == j.commitGen.Load() {
			// Just made, and nothing committed since: empty, and no
			// one else holds it in memory (it would be in j.inodes).
			n.mode, n.loaded, n.mapEmpty = c.mode, true, true
		} else if a, ok := j.unl.createdAttr(ino); ok {
			n.mode, n.loaded, n.mapEmpty = a.Mode, true, true // made by a pending create
		}
		j.imapMu.Lock()
		j.inodes[ino] = n
		j.imapMu.Unlock()
	}
	n.open++
	return n
}

// OpenExisting is OpenFile for an inode the caller found by a lookup
// before: ErrNotFound, and no handle, when the inode was freed since (its
// last name went away and the reaper dropped its row between the
// kernel's LOOKUP and its OPEN). Without the check the open succeeded and
// every read and write of the handle failed with ENOENT. An inode whose
// row a handle still open found (openOK) keeps it; otherwise the row is
// read under the inode's lock, which reclaimBatch holds from its look at
// the open count to its commit: either it sees this handle and keeps the
// inode, or the row is gone by the time the lock is ours. (Another
// handle merely counted is no proof: its own check may be failing.)
func (j *inodeTable) OpenExisting(ctx context.Context, ino Ino) error {
	j.imu.Lock()
	n := j.openLocked(ino)
	held := n.openOK
	j.imu.Unlock()
	if held {
		return nil
	}
	n.mu.Lock()
	err := j.load(ctx, n)
	n.mu.Unlock()
	j.imu.Lock()
	defer j.imu.Unlock()
	if errors.Is(err, ErrNotFound) {
		n.open--
		j.maybeForgetLocked(n)
		return err
	}
	if err == nil {
		n.openOK = true
	}
	return nil // another error is the reads' and writes' to report
}

// isOpen reports whether ino has an open handle (then its row exists).
func (j *inodeTable) isOpen(ino Ino) bool {
	j.imu.Lock()
	defer j.imu.Unlock()
	n := j.inodes[ino]
	return n != nil && n.open > 0
}

// ReleaseFile drops an open handle. The last release of an unlinked inode
// frees its data; a dirty file is flushed by its idle timer.
func (j *inodeTable) ReleaseFile(ino Ino) {
	j.imu.Lock()
	n := j.inodes[ino]
	if n == nil || n.open == 0 {
		j.imu.Unlock()
		return
	}
	n.open--
	last := n.open == 0
	check := last && n.unlinked
	if last {
		n.unlinked, n.openOK = false, false
		j.maybeForgetLocked(n)
	}
	j.imu.Unlock()
	if check && !j.closed.Load() && !j.o.ReadOnly {
		j.reclaimLater(ino)
	}
}

// reclaimLater hands ino, which may have no link and no open handle left,
// to the reaper, which frees it in the background: the unlink, rename or
// release that dropped the last link or handle does nothing more itself
// (no block map to walk, no second transaction), and its caller succeeds
// whatever becomes of the freeing.
func (j *inodeTable) reclaimLater(ino Ino) {
	if ino == 0 {
		return
	}
	select {
	case j.orphanKick <- struct{}{}:
	default:
	}
}

// reapDelay is how long the reaper lets deleted inodes gather after the
// first, so that a run of unlinks (rm -rf) costs a transaction per
// reapBatch inodes, not one per unlink.
const reapDelay = 100 * time.Millisecond

// reaper frees the inodes left with no link and no handle (reclaimLater),
// many per transaction, and retries RetryMax apart when that fails until
// none is left or ctx ends (then the next Open frees them).
func (j *inodeTable) reaper(ctx context.Context) {
	defer close(j.reaperDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.orphanKick:
		}
		if !sleepCtx(ctx, reapDelay) {
			return
		}
		for {
			err := j.freeOrphans(ctx)
			if err == nil && j.o.reaped != nil {
				j.o.reaped()
			}
			if err == nil || ctx.Err() != nil {
				break
			}
			j.log.Warn("journal: cannot free the space of deleted files yet; will retry", "err", err)
			if !sleepCtx(ctx, j.o.RetryMax) {
				return
			}
		}
	}
}

// orphans lists the inodes with no link left, on the pool or in a
// transaction (recover).
func orphans(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]Ino, error) {
	rows, err := q.QueryContext(ctx, `SELECT ino FROM inodes WHERE nlink = 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var inos []Ino
	for rows.Next() {
		var ino Ino
		if err := rows.Scan(&ino); err != nil {
			return nil, err
		}
		inos = append(inos, ino)
	}
	return inos, rows.Err()
}

// reapBatch is the most inodes the reaper frees in one transaction: the
// transaction holds wmu, which creates and flushes wait for.
const reapBatch = 64

// freeOrphans reclaims every inode with no link and no open handle,
// reapBatch per transaction.
func (j *inodeTable) freeOrphans(ctx context.Context) error {
	inos, err := orphans(ctx, j.db)
	if err != nil {
		return fmt.Errorf("journal: list deleted files: %w", err)
	}
	var first error
	failed := 0
	for len(inos) > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b := inos[:min(len(inos), reapBatch)]
		inos = inos[len(b):]
		busy, err := j.reclaimBatch(ctx, b)
		if err != nil {
			failed += len(b)
			if first == nil {
				first = err
			}
			continue
		}
		// Inodes whose lock was taken (a flush of the deleted file, a
		// release): one at a time, waiting for it.
		for _, ino := range busy {
			if err := j.reclaim(ctx, ino); err != nil {
				failed++
				if first == nil {
					first = err
				}
			}
		}
	}
	if failed > 1 {
		return fmt.Errorf("%w (and %d more deleted files)", first, failed-1)
	}
	return first
}

// reclaimBatch frees, in one transaction, the inodes of inos that still
// have no link and no open handle. It takes each inode's lock without
// waiting (it holds several, so it must not wait for one: the lock order
// has no order among inodes) and returns those it could not take.
func (j *inodeTable) reclaimBatch(ctx context.Context, inos []Ino) (busy []Ino, err error) {
	held := make([]*inode, 0, len(inos))
	defer func() {
		for _, n := range held {
			n.mu.Unlock()
			j.putInode(n)
		}
	}()
	for _, ino := range inos {
		n := j.getInode(ino)
		if !n.mu.TryLock() {
			j.putInode(n)
			busy = append(busy, ino)
			continue
		}
		held = append(held, n)
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	todo := make([]*inode, 0, len(held))
	j.imu.Lock()
	for _, n := range held {
		if n.open > 0 {
			n.unlinked = true // its last ReleaseFile comes back
			continue
		}
		todo = append(todo, n)
	}
	j.imu.Unlock()
	if len(todo) == 0 {
		return busy, nil
	}
	var fr freed
	var gone []*inode
	err = j.txLocked(ctx, func(tx *sql.Tx) error {
		gone = gone[:0]
		// Only the rows of these inodes, which no entry names: the
		// caches keep the rest (a scan of rm -rf keeps its window).
		inos := make([]Ino, len(todo))
		for i, n := range todo {
			inos[i] = n.ino
		}
		j.narrowLocked(inos...)
		freed, err := j.freeTx(ctx, tx, inos, &fr)
		if err != nil {
			return err
		}
		for _, n := range todo {
			if _, ok := freed[n.ino]; ok {
				gone = append(gone, n)
			}
		}
		return nil
	})
	if err != nil {
		return busy, err
	}
	for _, n := range gone {
		j.discardDirty(n)
	}
	j.fl.afterFreeLocked(&fr)
	return busy, nil
}

// freeTx drops, for the inodes of inos that have no link left, their
// block references, block map rows and inode rows (xattrs and a symlink's
// target go with them), and returns the inodes it dropped. A few
// statements for the whole set, whatever its size: the inodes go as a
// JSON array of numbers, and each block loses all the references the set
// holds in one UPDATE. The caller makes sure nothing holds them (imu, or
// their locks). wmu held, within txLocked's fn.
func (j *inodeTable) freeTx(ctx context.Context, tx *sql.Tx, inos []Ino, fr *freed) (map[Ino]struct{}, error) {
	if len(inos) == 0 {
		return nil, nil
	}
	dead, err := j.inoSet(ctx, tx, `SELECT ino FROM inodes WHERE ino IN (SELECT value FROM json_each(?1)) AND nlink <= 0`, inoJSON(inos))
	if err != nil || len(dead) == 0 {
		return nil, err
	}
	set := make([]Ino, 0, len(dead))
	for ino := range dead {
		set = append(set, ino)
	}
	arg := inoJSON(set)
	// Every block the set refers to loses its references at once (SET
	// reads the row as it was): one left with none becomes garbage when
	// it was uploaded; a staged one is deleted below.
	rows, err := j.tquery(ctx, tx, `UPDATE blocks SET refcount = refcount - d.n,
		state = CASE WHEN refcount - d.n <= 0 AND state NOT IN (?2, ?4) THEN ?3 ELSE state END
		FROM (SELECT block, count(*) AS n FROM blockmap WHERE ino IN (SELECT value FROM json_each(?1)) GROUP BY block) AS d
		WHERE blocks.id = d.block RETURNING id, refcount, state, sealed_len`, arg, blockStaged, blockGarbage, blockLost)
	if err != nil {
		return nil, fmt.Errorf("journal: free inodes: drop block references: %w", err)
	}
	type stagedRow struct {
		id        []byte
		sealedLen int64
	}
	var staged []stagedRow
	var lost [][]byte // nothing to collect: their bytes are nowhere
	for rows.Next() {
		var id []byte
		var ref, state int
		var sealedLen int64
		if err := rows.Scan(&id, &ref, &state, &sealedLen); err != nil {
			rows.Close()
			return nil, fmt.Errorf("journal: free inodes: %w", err)
		}
		if ref <= 0 && state == blockStaged {
			staged = append(staged, stagedRow{id, sealedLen})
		}
		if ref <= 0 && state == blockLost {
			lost = append(lost, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: free inodes: drop block references: %w", err)
	}
	if _, err := j.texec(ctx, tx, `DELETE FROM blockmap WHERE ino IN (SELECT value FROM json_each(?1))`, arg); err != nil {
		return nil, fmt.Errorf("journal: free inodes: drop block maps: %w", err)
	}
	for _, id := range lost {
		if _, err := j.texec(ctx, tx, `DELETE FROM blocks WHERE id = ?`, id); err != nil {
			return nil, fmt.Errorf("journal: free inodes: drop lost blocks: %w", err)
		}
	}
	for _, s := range staged { // after the block map rows that named them
		if err := j.fl.dropStaged(ctx, tx, s.id, s.sealedLen, fr); err != nil {
			return nil, err
		}
	}
	if _, err := j.texec(ctx, tx, `DELETE FROM inodes WHERE ino IN (SELECT value FROM json_each(?1))`, arg); err != nil {
		return nil, fmt.Errorf("journal: free inodes: %w", err)
	}
	return dead, nil
}

// inoSet runs q (one column of inode numbers) and returns its rows as a set.
func (j *core) inoSet(ctx context.Context, tx *sql.Tx, q string, args ...any) (map[Ino]struct{}, error) {
	rows, err := j.tquery(ctx, tx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[Ino]struct{}{}
	for rows.Next() {
		var ino Ino
		if err := rows.Scan(&ino); err != nil {
			return nil, err
		}
		out[ino] = struct{}{}
	}
	return out, rows.Err()
}

// inoJSON is inos as a JSON array, the argument of json_each in a
// statement about a set of inodes.
func inoJSON(inos []Ino) string {
	b := make([]byte, 0, 2+len(inos)*8)
	b = append(b, '[')
	for i, ino := range inos {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(ino), 10)
	}
	return string(append(b, ']'))
}

// reclaim drops an unlinked, closed inode: dirty data, block references,
// xattrs and the row, in a transaction of its own.
func (j *inodeTable) reclaim(ctx context.Context, ino Ino) error {
	n := j.getInode(ino)
	defer j.putInode(n)
	n.mu.Lock()
	defer n.mu.Unlock()
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.imu.Lock()
	open := n.open > 0
	if open {
		n.unlinked = true // opened meanwhile: its last ReleaseFile comes back
	}
	j.imu.Unlock()
	if open {
		return nil
	}
	var fr freed
	var ok bool
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		var err error
		j.narrowLocked(ino)
		freed, err := j.freeTx(ctx, tx, []Ino{ino}, &fr)
		_, ok = freed[ino]
		return err
	})
	if err != nil {
		return err
	}
	if ok {
		j.discardDirty(n)
	}
	j.fl.afterFreeLocked(&fr)
	return nil
}

// discardDirty forgets n's dirty data. n.mu held.
func (j *inodeTable) discardDirty(n *inode) {
	if len(n.dirty) > 0 {
		j.qmu.Lock()
		j.dirtyB -= n.takeCharge(j.bs)
		j.qmu.Unlock()
		clear(n.dirty)
	}
	if n.f != nil {
		n.f.remove()
		n.f = nil
	}
	n.stopTimer()
	n.amu.Lock()
	n.attrDirty = false
	n.pend = pendAttr{}
	n.amu.Unlock()
	n.hasDirty.Store(false)
	n.rec = nil
	n.recBlocks.Store(0)
	n.dropLast()
	n.loaded = false
}

// dirtyInodes lists inodes with unflushed data.
func (j *inodeTable) dirtyInodes() []Ino {
	j.imu.Lock()
	defer j.imu.Unlock()
	var out []Ino
	for ino, n := range j.inodes {
		if n.hasDirty.Load() {
			out = append(out, ino)
		}
	}
	return out
}

// dropLast forgets the last decoded block and releases it to the block
// reader. n.mu held.
func (n *inode) dropLast() {
	if n.lastHold != nil {
		n.lastHold.Release()
	}
	n.lastIdx, n.lastPlain, n.lastHold = -1, nil, nil
}

// takeCharge returns n's share of dirtyB, for a release of all its
// dirty blocks: the blocks, whole, less what the logging of its close
// gave back (logRefund, zero after). n.mu held.
func (n *inode) takeCharge(bs int64) int64 {
	b := int64(len(n.dirty))*bs - n.logRefund
	n.logRefund = 0
	return b
}

// chargeBack charges n's dirty blocks whole again before they change
// (logRefund). n.mu held.
func (n *inode) chargeBack(c *core) {
	if n.logRefund == 0 {
		return
	}
	c.qmu.Lock()
	c.dirtyB += n.logRefund
	c.qmu.Unlock()
	n.logRefund = 0
}

// refundLogged gives back the quota of n's dirty blocks beyond what r,
// the close just logged, holds on disk: its record and the dirty file's
// bytes, at most r.size. Without it a close logged keeps a whole block
// charged until its apply, and a few hundred small files closed while
// the apply waits for wmu fill a small quota with a few hundred KB of
// data. n.mu held.
func (n *inode) refundLogged(c *core, r *flushRec) {
	total := int64(len(n.dirty)) * c.bs
	keep := min(total, int64(r.logB)+r.size)
	refund := total - keep
	if refund == n.logRefund {
		return
	}
	c.qmu.Lock()
	c.dirtyB -= refund - n.logRefund
	c.up.signalFreeLocked()
	c.qmu.Unlock()
	n.logRefund = refund
}
