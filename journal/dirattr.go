package journal

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// Deferred attribute changes of directories. cp -a, tar and rsync -a set
// a directory's times (and owner and mode) after they have filled it:
// three SETATTRs a directory, each a commit of its own, which also
// applied the creates and closes pending in the log before it (about
// 1.4 s of the drive's CPU in cp -a of $GOROOT/src, all of it on the
// copy's path). A SetAttr of a directory is now a record in the unlink
// log ('s', written with one write() as the others), kept in memory
// until the unlinker applies it with the records before it:
//
//   - until then every read of the directory's attributes (GETATTR,
//     LOOKUP, the replies of other calls) shows it: inodeTable.overlay
//     applies the pending changes to the row it read (dirSetOverlay);
//   - it is applied after the unlinks, rmdirs, creates and closes of its
//     batch. That is the log's order for the records that touch the
//     directory's row, because no unlink, rmdir or create in a directory
//     with a pending change is deferred (deferCreate, deferUnlink,
//     deferRmdirLocked take the synchronous way, whose transaction
//     applies the change first). Every other change of the directory,
//     a rename, a mkdir or a link in it, commits after applying it too;
//   - a record is applied exactly once, like a close's: it takes a
//     number of its own sequence, the transaction that applies it writes
//     the number to meta (dirset_seq), and Open replays only the records
//     above it (an old change applied again would undo a later one). The
//     sequence is not the closes' (flush_seq): a mkdir applies the
//     pending creates and changes and leaves the closes pending (db.go,
//     foldLight).
//
// It is deferred under cmu, not wmu (a change does not wait for an
// apply), so a transaction that applies the pending records applies the
// changes logged before it began; right after its commit, the changes
// it applied are dropped from memory (dropSetsLocked: those logged
// since, past its last, stay, as do those past the unlinker's batch),
// and flushGen tells a read that began before the commit to read once
// more (flushedSince), as after a flush. In between, a read of the
// committed row may find
// the change still pending and lay it over the row again: the same
// values, unless the transaction went on to change the directory (a
// mkdir or rename in it, which applied the change first), whose call
// has not returned yet then; the kernel drops the directory's cached
// attributes when it does.
//
// A kill -9 after the SetAttr returned loses nothing (the kernel has the
// log's write); a power cut may lose the last second of them, as of any
// namespace change (promise 1).

// setRec is a deferred SetAttr of directory ino (the record's ino).
type setRec struct {
	seq                 uint64
	has                 uint8 // setHas*
	mode, uid, gid      uint32
	atime, mtime, ctime int64
}

// What a setRec changes; ctime always.
const (
	setHasMode = 1 << iota
	setHasUid
	setHasGid
	setHasAtime
	setHasMtime
	setHasAll = setHasMode | setHasUid | setHasGid | setHasAtime | setHasMtime
)

// newSetRec is s (all but Size) as a record, its ctime now or s.Ctime.
func newSetRec(s *SetAttr) setRec {
	var r setRec
	if s.Mode != nil {
		r.has, r.mode = r.has|setHasMode, *s.Mode&07777
	}
	if s.Uid != nil {
		r.has, r.uid = r.has|setHasUid, *s.Uid
	}
	if s.Gid != nil {
		r.has, r.gid = r.has|setHasGid, *s.Gid
	}
	if s.Atime != nil {
		r.has, r.atime = r.has|setHasAtime, s.Atime.UnixNano()
	}
	if s.Mtime != nil {
		r.has, r.mtime = r.has|setHasMtime, s.Mtime.UnixNano()
	}
	r.ctime = s.ctime()
	return r
}

// merge lays r over m, the changes pending before it.
func (m setRec) merge(r setRec) setRec {
	if r.has&setHasMode != 0 {
		m.mode = r.mode
	}
	if r.has&setHasUid != 0 {
		m.uid = r.uid
	}
	if r.has&setHasGid != 0 {
		m.gid = r.gid
	}
	if r.has&setHasAtime != 0 {
		m.atime = r.atime
	}
	if r.has&setHasMtime != 0 {
		m.mtime = r.mtime
	}
	m.has |= r.has
	m.ctime, m.seq = r.ctime, r.seq
	return m
}

// apply lays r over a, a row read from the database.
func (r setRec) apply(a Attr) Attr {
	if r.has&setHasMode != 0 {
		a.Mode = a.Mode&sIFMT | r.mode
	}
	if r.has&setHasUid != 0 {
		a.Uid = r.uid
	}
	if r.has&setHasGid != 0 {
		a.Gid = r.gid
	}
	if r.has&setHasAtime != 0 {
		a.Atime = time.Unix(0, r.atime)
	}
	if r.has&setHasMtime != 0 {
		a.Mtime = time.Unix(0, r.mtime)
	}
	a.Ctime = time.Unix(0, r.ctime)
	return a
}

// setMagic starts an 's' record in the unlink log: its payload is the
// directory's inode and the record's sequence number (uvarints), the
// setHas* byte, mode, uid and gid (uvarints), atime, mtime and ctime
// (zigzag uvarints), all written whatever the byte says.
const setMagic = 's'

func appendSetPayload(p []byte, ino Ino, r *setRec) []byte {
	p = binary.AppendUvarint(p, uint64(ino))
	p = binary.AppendUvarint(p, r.seq)
	p = append(p, r.has)
	p = binary.AppendUvarint(p, uint64(r.mode))
	p = binary.AppendUvarint(p, uint64(r.uid))
	p = binary.AppendUvarint(p, uint64(r.gid))
	p = binary.AppendUvarint(p, zigzag(r.atime))
	p = binary.AppendUvarint(p, zigzag(r.mtime))
	return binary.AppendUvarint(p, zigzag(r.ctime))
}

// decodeSetPayload reads an 's' record's payload; ok is false when it is
// not one this build writes.
func decodeSetPayload(p []byte) (ino Ino, r *setRec, ok bool) {
	at := 0
	next := func() (uint64, bool) { return nextUvarint(p, &at) }
	i, good := next()
	if !good || i == 0 || i > math.MaxInt64 {
		return 0, nil, false
	}
	seq, good := next()
	if !good || seq == 0 || seq > math.MaxInt64 || at >= len(p) || p[at]&^setHasAll != 0 {
		return 0, nil, false
	}
	r = &setRec{seq: seq, has: p[at]}
	at++
	var v [6]uint64
	for k := range v {
		if v[k], good = next(); !good {
			return 0, nil, false
		}
	}
	if v[0] > 07777 || v[1] > math.MaxUint32 || v[2] > math.MaxUint32 || at != len(p) {
		return 0, nil, false
	}
	r.mode, r.uid, r.gid = uint32(v[0]), uint32(v[1]), uint32(v[2])
	r.atime, r.mtime, r.ctime = unzigzag(v[3]), unzigzag(v[4]), unzigzag(v[5])
	return Ino(i), r, true
}

// dirSet returns the changes pending for directory ino, merged.
func (q *unlinkQueue) dirSet(ino Ino) (setRec, bool) {
	if q.setN.Load() == 0 {
		return setRec{}, false
	}
	q.umu.Lock()
	defer q.umu.Unlock()
	r, ok := q.sets[ino]
	return r, ok
}

// dirSetOverlay lays the changes pending for a's directory over a.
func (q *unlinkQueue) dirSetOverlay(a Attr) Attr {
	if r, ok := q.dirSet(a.Ino); ok {
		return r.apply(a)
	}
	return a
}

// dirSetPending reports whether directory ino has a change pending: an
// unlink, rmdir or create in it must not be deferred behind it.
func (q *unlinkQueue) dirSetPending(ino Ino) bool {
	_, ok := q.dirSet(ino)
	return ok
}

// deferSet is SetAttr's fast way for a directory (s without Size): it
// logs s and reports true, or reports false when s must take the
// synchronous way (deferral off, not a directory, one its parent's
// pending rmdir removes, the log full or unwritable). cmu held, not wmu:
// a change does not wait for the unlinker's apply.
func (j *dirAttrs) deferSet(ctx context.Context, ino Ino, s *SetAttr) bool {
	if j.unl.ulogOff() {
		return false
	}
	a, err := j.ns.GetAttr(ctx, ino)
	if err != nil || !isDir(a.Mode) {
		return false // the synchronous way says what is wrong
	}
	q := &j.unl
	q.umu.Lock()
	defer q.umu.Unlock()
	if _, gone := q.rmdirs[ino]; gone || q.ulog == nil || q.fullLocked() {
		return false
	}
	r := newSetRec(s)
	r.seq = q.setSeq + 1
	if !j.ul.logLocked(unlinkRec{ino: ino, set: &r}, nowNS()) {
		return false
	}
	q.setSeq = r.seq
	q.kick()
	return true
}

// apply applies recs, pending directory changes in the log's order, in
// tx, after the records of other kinds that it applies (none of which is
// in their directories after them), and writes the last one's sequence
// number to meta (dirset_seq). A record whose inode is gone or is no
// directory does nothing. It returns the rows it changed. wmu held, in a
// transaction.
func (j *dirAttrs) apply(ctx context.Context, tx *sql.Tx, recs []unlinkRec) ([]Ino, error) {
	inos := make([]Ino, 0, len(recs))
	var last uint64
	for _, ur := range recs {
		r := ur.set
		last = max(last, r.seq)
		opt := func(bit uint8, v int64) any {
			if r.has&bit == 0 {
				return nil
			}
			return v
		}
		if _, err := j.texec(ctx, tx, `UPDATE inodes SET
			mode = CASE WHEN ?1 IS NULL THEN mode ELSE (mode & ?2) | (?1 & 4095) END,
			uid = coalesce(?3, uid), gid = coalesce(?4, gid),
			atime = coalesce(?5, atime), mtime = coalesce(?6, mtime), ctime = ?7
			WHERE ino = ?8 AND mode & ?2 = ?9`,
			opt(setHasMode, int64(r.mode)), sIFMT, opt(setHasUid, int64(r.uid)), opt(setHasGid, int64(r.gid)),
			opt(setHasAtime, r.atime), opt(setHasMtime, r.mtime), r.ctime, ur.ino, sIFDIR); err != nil {
			return nil, fmt.Errorf("journal: setattr of directory %d: %w", ur.ino, err)
		}
		inos = append(inos, ur.ino)
	}
	if _, err := j.texec(ctx, tx, `INSERT OR REPLACE INTO meta(key, value) VALUES('dirset_seq', ?)`, strconv.FormatUint(last, 10)); err != nil {
		return nil, err
	}
	j.unl.setsApplied, j.unl.setsLast = true, last
	return inos, nil
}

// dropSetsLocked forgets the pending directory changes once the
// transaction that applied them has committed (gen), with the pending
// times of the directories they change: every record pending in such a
// directory was applied with them (none is deferred behind a change),
// and the row has the change's times, which GetAttr must not replace
// with those until dropApplied forgets the records. A directory whose
// newest change is past setsLast (the unlinker applies a batch of the
// pending records at a time) keeps it, merged with those applied: it is
// still pending, so the reads lay it over the row, and no create or
// unlink in the directory is deferred behind it. A read that began
// before the commit reads once more (flushedSince). wmu held.
func (q *unlinkQueue) dropSetsLocked(flushGen *atomic.Uint64, gen uint64) {
	q.umu.Lock()
	defer q.umu.Unlock()
	raiseGen(flushGen, gen)
	for ino, r := range q.sets {
		if r.seq > q.setsLast {
			continue
		}
		if a, ok := q.crAttrs[ino]; ok {
			// A directory a deferred mkdir made, applied in this
			// transaction too and forgotten only by dropApplied: until
			// then GetAttr reads it from here, as the row is now.
			if t, ok := q.unlDirs[ino]; ok && t > a.Mtime.UnixNano() {
				a.Mtime, a.Ctime = time.Unix(0, t), time.Unix(0, t)
			}
			q.crAttrs[ino] = r.apply(a)
		}
		delete(q.unlDirs, ino)
		delete(q.sets, ino)
	}
	q.setN.Store(int64(len(q.sets)))
	q.setsApplied = false
}
