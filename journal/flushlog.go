package journal

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Deferred flushes. The close of a file of at most flushMaxSize does
// not commit its own transaction: its cuts are hashed, new blocks are
// left unsealed (cut.unsealed), and blocks already in the database
// (deduplicated) are only looked up; then one record goes to the unlink
// log with one write() (an 'f' record: the size, times, pending
// attributes and the plain bytes), and the close returns. Sealing (zstd
// and AES-GCM, about 90 µs of a source file's close) is off the close's
// path, and so is, for a block that seals too big for the database, its
// staging file (written with O_DIRECT, renamed, the staging folder
// synced), and so is the commit, which would apply every pending record
// first: a close that committed took milliseconds where a logged one
// takes tens of microseconds. The unlinker seals the pending records'
// blocks before its apply (sealAhead), outside wmu, and the apply stages
// them (incRef: a big one's file is written then, under wmu, and the
// staging folder synced once before the commit). An apply that finds a
// record not sealed ahead seals its blocks itself. The log holds plain bytes
// then, as the dirty files do: local only. A kill -9 after it loses nothing: the next Open applies the
// record. The record is applied with the other pending records, in log
// order, by the unlinker (many files a commit: cp -a of a source tree
// commits once per many files, not once per file), or at the start of
// any other transaction (txLocked), so that an fsync, a truncate, a
// rename or an unlink of the file, the group commit and Close all see it
// applied before their own change.
//
// Until the apply, memory is the truth, as it is before a close: the
// inode keeps its dirty data, size and attributes, so reads, GETATTR, a
// later write, truncate or setattr see them with no code of their own.
// The inode remembers its record (n.rec) and the state it logged (the
// data's write generation, the size, times and pending attributes). A
// close or idle flush whose state is still the record's returns at once;
// after the apply's commit the inode is cleaned (cleanApplied), unless
// its state moved on, which its own flush then commits over the applied
// one.
//
// A record is applied exactly once: the transaction that applies it
// writes its sequence number into meta (flush_seq), and Open replays
// only the records above it (the log keeps applied records until it is
// emptied, and an old record applied again would bring back an older
// content of its file).

// flushRec is a deferred flush: the state of file ino that its close
// logged.
type flushRec struct {
	seq                uint64
	size, mtime, ctime int64
	pend               pendAttr
	cuts               []cut // holes, and new blocks with their sealed bytes (cut.inline) or plain ones (cut.unsealed)
	// late: some cut is unsealed; sealed: its cuts with every block
	// sealed, when the unlinker sealed them ahead of the apply
	// (sealAhead).
	late   bool
	sealed atomic.Pointer[[]cut]
	// Known only to the mount that logged it (zero for a record read
	// back from the log): the inode and its write generation when it
	// was logged, whether its block map was empty then, and the
	// record's bytes in the log.
	n       *inode
	wgen    uint64
	fresh   bool
	logB    int
	applied atomic.Bool
}

// flushLogMax bounds the bytes of pending flush records (sealed small
// blocks held in the log and, unsealed, in memory): a close past it
// commits at once, and its transaction applies them all.
const flushLogMax = 8 << 20

// flushMaxSize is the largest file whose close may be logged: its plain
// bytes are written to the log and held in memory until the apply, and a
// larger file's close is rarer, and pays its own staging less per byte.
const flushMaxSize = 1 << 20

// matches reports whether n is still in the state r logged. n.mu held.
func (r *flushRec) matches(n *inode) bool {
	if r.n != n || n.wgen != r.wgen {
		return false
	}
	n.amu.Lock()
	defer n.amu.Unlock()
	return n.size == r.size && n.mtime == r.mtime && n.ctime == r.ctime && n.pend == r.pend
}

// cutsUsed is the plain bytes of cuts' blocks (holes use none).
func cutsUsed(cuts []cut) int64 {
	var used int64
	for _, c := range cuts {
		if !c.hole {
			used += c.plainLen
		}
	}
	return used
}

// loggable reports whether cuts can go in a flush record: holes, blocks
// left unsealed or sealed small enough for the database, and blocks
// found in the database (deduplicated: the record keeps their plain
// bytes, which its apply seals only if the block has gone since), but
// not a lost one (cut.lost).
func loggable(cuts []cut) bool {
	for _, c := range cuts {
		if !c.hole && c.inline == nil && c.unsealed == nil && c.plain == nil || c.retake != 0 || c.lost {
			return false // a record keeps no retake: its apply would take a reference to the damaged copy
		}
	}
	return true
}

// logFlushLocked logs r, the close of n, and makes it pending. It
// reports false when the log cannot take it (deferral off, the log
// full, too many pending bytes): the caller commits the flush itself,
// and its transaction applies the pending records first. n.mu held.
func (j *unlinks) logFlushLocked(n *inode, r *flushRec) bool {
	q := &j.unl
	q.umu.Lock()
	defer q.umu.Unlock()
	if q.ulog == nil || q.fullLocked() {
		return false
	}
	size := 0
	for _, c := range r.cuts {
		size += len(c.inline) + len(c.unsealed) + len(c.plain) + 64
		r.late = r.late || c.unsealed != nil
	}
	if q.flushB+size > flushLogMax {
		return false
	}
	r.seq = q.flushSeq + 1
	r.n, r.wgen, r.logB = n, n.wgen, size
	if !j.logLocked(unlinkRec{ino: n.ino, fl: r}, nowNS()) {
		return false
	}
	q.flushSeq = r.seq
	n.rec = r
	if r.fresh {
		// Its apply stores exactly these blocks (holes use none).
		n.recBlocks.Store((cutsUsed(r.cuts)+511)/512 + 1)
	}
	n.mapEmpty = false // the next flush finds this one's rows
	q.kick()
	return true
}

// flushApplied is what the deferred flushes applied in the transaction
// under way left for after its commit (txLocked). wmu held.
type flushApplied struct {
	recs  []*flushRec
	inos  []Ino
	rows  []Attr
	added []qitem
	fr    freed // when folded: what they freed (applyTx passes its own)
}

// applyFlushRecs applies deferred flushes, in log order, in tx: each
// one's block map, size, times and pending attributes, as its own
// flush's transaction would have (flushLocked). A record whose inode is
// gone or is no regular file, or whose cuts do not fit the block size
// (a log from another journal), is dropped with a warning. wmu held, in
// a transaction.
//
// fr collects the blocks the transaction frees: the same list as the
// unlinks applied before in it, so that a block an unlink freed and a
// record brings back is neither dropped from the upload queue nor left
// in it.
func (j *unlinks) applyFlushRecs(ctx context.Context, tx *sql.Tx, recs []unlinkRec, fr *freed) error {
	fa := &j.unl.fa
	var last uint64
	renamed := false
	for _, ur := range recs {
		r := ur.fl
		last = max(last, r.seq)
		var mode uint32
		err := j.tqrow(ctx, tx, `SELECT mode FROM inodes WHERE ino = ?`, ur.ino).Scan(&mode)
		if errors.Is(err, sql.ErrNoRows) || err == nil && mode&sIFMT != sIFREG || !j.fitsBlocks(r) {
			j.log.Warn("journal: a deferred flush does not fit the database; dropped", "ino", ur.ino, "seq", r.seq)
			continue
		}
		if err != nil {
			return fmt.Errorf("journal: flush inode %d: %w", ur.ino, err)
		}
		prio := 1
		if r.size < j.bs {
			prio = 0
		}
		// Only blocks in the database: no staging file is renamed.
		// A copy: incRef seals the blocks nothing sealed ahead in it,
		// and the unlinker may be reading r.cuts (sealAhead).
		cuts := r.cuts
		if p := r.sealed.Load(); p != nil {
			cuts = *p
		} else if r.late {
			cuts = slices.Clone(cuts)
		}
		row, moved, err := j.fl.cutsTx(ctx, tx, ur.ino, cuts, prio, r.fresh, r.size, r.mtime, r.ctime, &r.pend, fr, &fa.added)
		renamed = renamed || moved
		// A staging file written here and not renamed into place: its
		// block was added by another flush meanwhile, or the
		// transaction fails.
		for i := range cuts {
			if c := &cuts[i]; c.tmp != "" {
				os.Remove(c.tmp)
				c.tmp = ""
			}
		}
		if err != nil {
			return fmt.Errorf("journal: flush inode %d: %w", ur.ino, err)
		}
		fa.recs = append(fa.recs, r)
		fa.inos = append(fa.inos, ur.ino)
		fa.rows = append(fa.rows, row)
	}
	if last == 0 {
		return nil
	}
	// The staging files renamed into place, before the commit that
	// names them: once for all the records.
	if err := j.fl.syncStagingIf(renamed); err != nil {
		return err
	}
	_, err := j.texec(ctx, tx, `INSERT OR REPLACE INTO meta(key, value) VALUES('flush_seq', ?)`, strconv.FormatUint(last, 10))
	return err
}

// fitsBlocks checks r's cuts against the block size.
func (j *unlinks) fitsBlocks(r *flushRec) bool {
	if r.size < 0 || r.size > math.MaxInt64-j.bs {
		return false
	}
	for _, c := range r.cuts {
		if c.idx < 0 || c.idx > r.size/j.bs || c.plainLen > j.bs || c.plainLen > r.size-c.idx*j.bs {
			return false
		}
	}
	return true
}

// afterFlushRecsLocked runs after the commit (gen) of a transaction that
// applied deferred flushes: with put, their rows go to the attribute
// cache (unless skip has them: the transaction's own change may have
// come after; without put, it may have changed any row), their
// new blocks to the upload queue, and their inodes to the unlinker to be
// cleaned. wmu held.
func (j *unlinks) afterFlushRecsLocked(gen uint64, put bool, skip []Ino) {
	fa := &j.unl.fa
	if len(fa.recs) == 0 && len(fa.added) == 0 && len(fa.fr.staged) == 0 {
		return
	}
	for i, a := range fa.rows {
		if put && !slices.Contains(skip, fa.inos[i]) {
			j.ac.put(fa.inos[i], a, gen)
		}
	}
	j.fl.afterFreeLocked(&fa.fr)
	j.up.enqueue(fa.added)
	clean := false
	j.unl.umu.Lock()
	for _, r := range fa.recs {
		r.cuts = nil // committed: the bytes are in the database now
		r.applied.Store(true)
		r.sealed.Store(nil) // after applied: see sealAhead
		if r.n != nil {
			j.unl.toClean = append(j.unl.toClean, r)
			clean = true
		}
	}
	j.unl.umu.Unlock()
	*fa = flushApplied{}
	if clean {
		j.unl.kick()
	}
}

// sealAhead seals the blocks of the pending closes that left them
// unsealed, outside wmu, so that their apply (which holds it) only
// stores them; the unlinker calls it before each apply. A close that
// another transaction applies first is sealed by that one (incRef).
func (j *unlinks) sealAhead() {
	type job struct {
		r    *flushRec
		cuts []cut
	}
	var jobs []job
	q := &j.unl
	q.umu.Lock()
	for _, ur := range q.unlRecs {
		if r := ur.fl; r != nil && r.late && r.sealed.Load() == nil {
			jobs = append(jobs, job{r, r.cuts})
		}
	}
	q.umu.Unlock()
	for _, jb := range jobs {
		cuts := slices.Clone(jb.cuts)
		for i := range cuts {
			c := &cuts[i]
			if c.unsealed == nil {
				continue
			}
			// Sealed only: a block too big for the database keeps its
			// sealed bytes (c.big) for the apply to write to a file, so
			// that no staging file is left behind by a record another
			// transaction applies first.
			_ = sealCut(j.fl, c, c.unsealed, func(sealed []byte) error {
				c.big = slices.Clone(sealed)
				return nil
			})
			c.unsealed = nil
		}
		if jb.r.sealed.CompareAndSwap(nil, &cuts) && jb.r.applied.Load() {
			// Applied meanwhile, by a transaction that sealed them
			// itself: nothing will read these.
			jb.r.sealed.Store(nil)
		}
	}
}

// cleanApplied cleans the inodes of applied deferred flushes whose state
// is still the one they logged. wmu not held.
func (j *unlinks) cleanApplied() {
	j.unl.umu.Lock()
	recs := j.unl.toClean
	j.unl.toClean = nil
	j.unl.umu.Unlock()
	var busy []*flushRec
	for _, r := range recs {
		if _, ok := j.unl.createdAttr(r.n.ino); ok {
			// The apply that committed the close and the file's create
			// hands the close over at its commit and forgets the create
			// after: cleaned in between, the inode would read as the
			// create's empty file. The apply's own clean comes after.
			busy = append(busy, r)
			continue
		}
		n := j.it.memInode(r.n.ino)
		if n == nil {
			continue
		}
		// Not waiting: a writer may hold n.mu for long (a big flush, a
		// wait for quota), and the inodes after this one hold quota
		// until they are cleaned. Its own next flush cleans it too.
		if !n.mu.TryLock() {
			busy = append(busy, r)
			j.it.putInode(n)
			continue
		}
		if n.rec == r && r.matches(n) {
			j.fl.cleanLocked(n, r.size)
		}
		n.mu.Unlock()
		j.it.putInode(n)
	}
	if len(busy) > 0 {
		j.unl.umu.Lock()
		j.unl.toClean = append(j.unl.toClean, busy...)
		j.unl.umu.Unlock()
		j.unl.kick()
	}
}

// updateFlushed is the flush's UPDATE of the inode's row: size, times,
// the attributes set meanwhile, and its used bytes (used; NULL: sum the
// block map). It returns the row as the transaction leaves it.
func (j *flusher) updateFlushed(ctx context.Context, tx *sql.Tx, ino Ino, size, mtime, ctime int64, p *pendAttr, used any) (Attr, error) {
	pmode, puid, pgid, patime := p.args()
	return scanAttr(j.tqrow(ctx, tx, `UPDATE inodes SET size = ?1, mtime = ?2, ctime = CASE WHEN ?11 THEN ?3 ELSE max(ctime, ?3) END,
			used = coalesce(?10, (SELECT coalesce(sum(b.plain_len), 0) FROM blockmap m JOIN blocks b ON b.id = m.block WHERE m.ino = ?4)),
			mode = CASE WHEN ?5 IS NULL THEN mode ELSE (mode & ?6) | (?5 & 4095) END,
			uid = coalesce(?7, uid), gid = coalesce(?8, gid), atime = coalesce(?9, atime)
			WHERE ino = ?4 RETURNING `+strings.ReplaceAll(attrCols, "i.", ""), size, mtime, ctime, ino, pmode, sIFMT, puid, pgid, patime, used, p.exactCtime))
}

// cleanLocked drops n's dirty data and attributes once a commit has
// them: size is the size that commit stored. n.mu held.
func (j *flusher) cleanLocked(n *inode, size int64) {
	// Before attrDirty and pend are cleared below (see flushedSince).
	raiseGen(&j.flushGen, j.commitGen.Load())
	j.qmu.Lock()
	j.dirtyB -= n.takeCharge(j.bs)
	j.up.signalFreeLocked()
	j.qmu.Unlock()
	clear(n.dirty)
	if n.f != nil {
		// Drop the bytes; keep the file open for the next write.
		if err := n.f.reset(); err != nil {
			j.log.Warn("journal: truncate dirty file", "ino", n.ino, "err", err)
		}
	}
	n.amu.Lock()
	if n.size == size {
		n.attrDirty = false
	}
	n.pend = pendAttr{} // every setter holds n.mu: nothing came meanwhile
	n.amu.Unlock()
	n.hasDirty.Store(false)
	n.rec = nil
	n.recBlocks.Store(0)
	n.stopTimer()
}

// The flush record ('f'): the payload is the inode, the sequence number,
// the size, mtime and ctime (signed, zigzag), a flags byte (which of
// mode, uid, gid and atime are set, and exactCtime), mode, uid, gid and
// atime (signed), the number of cuts, and per cut its index and a kind
// byte: 0 a hole, 1 a block with its id (32 bytes), plain length,
// sealed length and sealed bytes.
const flushMagic = 'f'

const (
	flHasMode = 1 << iota
	flHasUid
	flHasGid
	flHasAtime
	flExactCtime
	flAll = 1<<iota - 1
)

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func appendFlushPayload(p []byte, ino Ino, r *flushRec) []byte {
	p = binary.AppendUvarint(p, uint64(ino))
	p = binary.AppendUvarint(p, r.seq)
	p = binary.AppendUvarint(p, uint64(r.size))
	p = binary.AppendUvarint(p, zigzag(r.mtime))
	p = binary.AppendUvarint(p, zigzag(r.ctime))
	var fl byte
	for i, b := range []bool{r.pend.hasMode, r.pend.hasUid, r.pend.hasGid, r.pend.hasAtime, r.pend.exactCtime} {
		if b {
			fl |= 1 << i
		}
	}
	p = append(p, fl)
	p = binary.AppendUvarint(p, uint64(r.pend.mode))
	p = binary.AppendUvarint(p, uint64(r.pend.uid))
	p = binary.AppendUvarint(p, uint64(r.pend.gid))
	p = binary.AppendUvarint(p, zigzag(r.pend.atime))
	p = binary.AppendUvarint(p, uint64(len(r.cuts)))
	for _, c := range r.cuts {
		p = binary.AppendUvarint(p, uint64(c.idx))
		if c.hole {
			p = append(p, 0)
			continue
		}
		b, kind := c.inline, byte(1)
		if c.unsealed != nil {
			b, kind = c.unsealed, 2
		} else if c.plain != nil {
			b, kind = c.plain, 2 // read back, sealed unless the block is there
		}
		p = append(p, kind)
		p = append(p, c.id[:]...)
		p = binary.AppendUvarint(p, uint64(c.plainLen))
		p = binary.AppendUvarint(p, uint64(len(b)))
		p = append(p, b...)
	}
	return p
}

// decodeFlushPayload reads an 'f' record's payload; ok is false when it
// is not one this build writes.
func decodeFlushPayload(p []byte) (ino Ino, r *flushRec, ok bool) {
	at := 0
	next := func() (uint64, bool) { return nextUvarint(p, &at) }
	var v [5]uint64
	for i := range v {
		var good bool
		if v[i], good = next(); !good {
			return 0, nil, false
		}
	}
	if v[0] == 0 || v[0] > math.MaxInt64 || v[1] == 0 || v[1] > math.MaxInt64 || v[2] > math.MaxInt64 || at >= len(p) {
		return 0, nil, false
	}
	r = &flushRec{seq: v[1], size: int64(v[2]), mtime: unzigzag(v[3]), ctime: unzigzag(v[4])}
	fl := p[at]
	at++
	if fl&^flAll != 0 {
		return 0, nil, false
	}
	r.pend.hasMode, r.pend.hasUid, r.pend.hasGid = fl&flHasMode != 0, fl&flHasUid != 0, fl&flHasGid != 0
	r.pend.hasAtime, r.pend.exactCtime = fl&flHasAtime != 0, fl&flExactCtime != 0
	var a [5]uint64
	for i := range a {
		var good bool
		if a[i], good = next(); !good {
			return 0, nil, false
		}
	}
	// A cut takes two bytes at least.
	if a[0] > math.MaxUint32 || a[1] > math.MaxUint32 || a[2] > math.MaxUint32 || a[4] > uint64(len(p)-at)/2 {
		return 0, nil, false
	}
	r.pend.mode, r.pend.uid, r.pend.gid, r.pend.atime = uint32(a[0]), uint32(a[1]), uint32(a[2]), unzigzag(a[3])
	r.cuts = make([]cut, 0, min(a[4], 16))
	for range a[4] {
		idx, good := next()
		if !good || idx > math.MaxInt64 || at >= len(p) {
			return 0, nil, false
		}
		kind := p[at]
		at++
		c := cut{idx: int64(idx)}
		switch kind {
		case 0:
			c.hole = true
		case 1, 2:
			if len(p)-at < len(c.id) {
				return 0, nil, false
			}
			copy(c.id[:], p[at:])
			at += len(c.id)
			pl, good := next()
			if !good || pl == 0 || pl > math.MaxInt64 {
				return 0, nil, false
			}
			sl, good := next()
			if !good || sl == 0 || sl > uint64(len(p)-at) {
				return 0, nil, false
			}
			c.plainLen = int64(pl)
			if kind == 1 {
				c.inline = p[at : at+int(sl) : at+int(sl)]
			} else if sl != pl {
				return 0, nil, false
			} else {
				c.unsealed = p[at : at+int(sl) : at+int(sl)]
				r.late = true
			}
			at += int(sl)
		default:
			return 0, nil, false
		}
		r.cuts = append(r.cuts, c)
	}
	if at != len(p) {
		return 0, nil, false
	}
	return Ino(v[0]), r, true
}

// flushSeqApplied is the sequence number of the last deferred flush
// applied (meta's flush_seq), 0 before the first.
func (j *unlinks) flushSeqApplied(ctx context.Context) (uint64, error) {
	return j.seqApplied(ctx, "flush_seq")
}

// seqApplied is meta's key, a sequence number of the unlink log's
// records (flush_seq, dirset_seq), 0 before the first.
func (j *unlinks) seqApplied(ctx context.Context, key string) (uint64, error) {
	var v string
	err := j.qrow(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meta %s %q: %w", key, v, err)
	}
	return seq, nil
}
