package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Deferred creates. A regular file made by create or mknod, or a
// directory made by mkdir, is acknowledged once it is in memory and
// appended to the unlink log (unlinks.go), as a deferred unlink is: its inode number is handed out from memory, and the
// sqlite work (the parent's times, the inode, the entry, and a commit:
// most of a create's cost) is done for many creates at once, in log order
// with the deferred unlinks, by the unlinker or by the next transaction.
// Until then:
//
//   - a lookup of its name and a GETATTR, GETXATTR or LISTXATTR of its
//     inode answer from memory (the inode has no xattrs yet);
//   - an open knows it is empty and has no block map (OpenFile);
//   - a directory's: a READDIR of it finds no entry in the database and
//     answers from what is pending in it (nothing, or the pending creates
//     it applies first); its link count and times are its own (2, its
//     mkdir's time) and those of the directories and changes pending in
//     it (createdAt); a committed directory's link count counts the
//     pending mkdirs in it (GetAttr, Lookup: pendingNlink), as it does the
//     pending rmdirs, and an apply of either makes rmSeq odd until they
//     are forgotten; an rmdir of it takes the synchronous way
//     (deferRmdirLocked), which applies it first;
//   - every transaction applies it first (txLocked), so whatever changes
//     or reads the file inside one (a flush of its data, a setattr, an
//     unlink, a rename, a link) finds its row;
//   - a READDIR of its directory applies it first, and a GETATTR of the
//     directory shows its time as the directory's mtime and ctime;
//   - the few reads that go to the database by inode outside those
//     (status, grid blocks, paths) apply what is pending first (settle).
//
// Only creates whose name is free in memory and in the database are
// deferred; an unlink of a name a pending create made takes the
// synchronous way, which applies the create first. So no name is both
// pending-created and pending-unlinked, and the log replays in order.
//
// Inode numbers: the inodes table is AUTOINCREMENT, and sqlite_sequence
// holds the largest number ever used. A deferred create takes the next
// one after it (and after the pending ones) and inserts it explicitly,
// which moves sqlite_sequence on; every other create applies the pending
// ones first. So a create record whose inode number is at most
// sqlite_sequence's was applied before a crash cut the log short.

// attr is a pending create's inode as a GETATTR shows it (a directory's
// without what is pending in it: createdAt adds that).
func (r unlinkRec) attr() Attr {
	t := time.Unix(0, r.t)
	nlink := uint32(1)
	if isDir(r.mode) {
		nlink = 2
	}
	return Attr{Ino: r.ino, Mode: r.mode, Nlink: nlink, Uid: r.uid, Gid: r.gid, Atime: t, Mtime: t, Ctime: t}
}

// pendingInLocked is a (pending) directory's attributes with what is
// pending in it laid over: a link for each pending mkdir in it, and the
// time of the newest pending create or unlink in it as its mtime and
// ctime. umu held.
func (q *unlinkQueue) pendingInLocked(a Attr) Attr {
	if !isDir(a.Mode) {
		return a
	}
	a.Nlink += uint32(q.inDir[a.Ino].mkdirs)
	if t, ok := q.unlDirs[a.Ino]; ok && t > a.Mtime.UnixNano() {
		a.Mtime, a.Ctime = time.Unix(0, t), time.Unix(0, t)
	}
	return a
}

// createPending reports whether name in parent was made by a create
// that is not applied yet.
func (q *unlinkQueue) createPending(parent Ino, name string) bool {
	_, ok := q.createdAt(parent, name)
	return ok
}

// createdAt returns the inode a pending create made as name in parent.
func (q *unlinkQueue) createdAt(parent Ino, name string) (Attr, bool) {
	if q.crN.Load() == 0 {
		return Attr{}, false
	}
	q.umu.Lock()
	defer q.umu.Unlock()
	ino, ok := q.crNames[dirName{parent, name}]
	if !ok {
		return Attr{}, false
	}
	return q.pendingInLocked(q.crAttrs[ino]), true
}

// createdAttr returns ino's attributes if a pending create made it.
func (q *unlinkQueue) createdAttr(ino Ino) (Attr, bool) {
	if q.crN.Load() == 0 {
		return Attr{}, false
	}
	q.umu.Lock()
	defer q.umu.Unlock()
	a, ok := q.crAttrs[ino]
	if !ok {
		return Attr{}, false
	}
	return q.pendingInLocked(a), true
}

// pendingNlink is how much the pending mkdirs and rmdirs in a committed
// directory change its link count once they are applied.
func (q *unlinkQueue) pendingNlink(dir Ino) int {
	if q.unlN.Load() == 0 {
		return 0
	}
	q.umu.Lock()
	defer q.umu.Unlock()
	c := q.inDir[dir]
	return c.mkdirs - c.rmdirs
}

// deferCreate is create's fast way for a regular file or a directory:
// it reports false when the create must take the synchronous one
// (deferral off, another kind of file, the log unwritable). cmu held,
// not wmu: a create does not wait for the unlinker's apply, whose
// commit comes before it forgets the records it applied, so that these
// checks, which read the pending records first and the database after,
// see each record in one place or the other.
func (j *unlinks) deferCreate(ctx context.Context, parent Ino, name string, mode, uid, gid uint32) (Attr, bool, error) {
	if t := mode & sIFMT; t != sIFREG && t != sIFDIR || j.unl.ulogOff() {
		return Attr{}, false, nil
	}
	if j.unl.rmdirPending(parent) {
		// Before the parent's row, as every check here reads the
		// pending records before the database: an apply of the rmdir
		// between the two (no wmu here) would leave a row read before
		// it and no rmdir pending after it, and a create in a
		// directory that is gone. The synchronous way finds none.
		return Attr{}, false, nil
	}
	pa, err := j.ns.GetAttr(ctx, parent)
	if err != nil {
		return Attr{}, true, err
	}
	if !isDir(pa.Mode) {
		return Attr{}, true, ErrNotDir
	}
	if j.unl.createPending(parent, name) {
		return Attr{}, true, ErrExist
	}
	if j.unl.unlinkPending(parent, name) || j.unl.dirSetPending(parent) {
		// The name is free once the unlink is applied, which must come
		// first in the database: apply it now, and take this create
		// the synchronous way. (A pending change of the directory's
		// attributes must come first too: dirattr.go.)
		return Attr{}, false, nil
	}
	gen, cached := j.ns.cacheGen()
	if !(cached && j.lastLk.missing(parent, name, gen)) {
		switch _, err := j.ns.Lookup(ctx, parent, name); {
		case err == nil:
			return Attr{}, true, ErrExist
		case !errors.Is(err, ErrNotFound):
			return Attr{}, true, err
		}
	}
	if j.unl.full() {
		// The synchronous way applies the log first, which empties it
		// (under cmu no create comes meanwhile, and no unlink or close
		// is logged while it is full). Not here: wmu comes before cmu.
		return Attr{}, false, nil
	}
	if j.unl.crNext == 0 {
		seq, err := j.inodeSeq(ctx)
		if err != nil {
			return Attr{}, true, fmt.Errorf("journal: create: next inode number: %w", err)
		}
		j.unl.crNext = seq + 1
	}
	r := unlinkRec{parent: parent, ino: j.unl.crNext, name: name, create: true, mode: mode, uid: uid, gid: gid, t: nowNS()}
	q := &j.unl
	q.umu.Lock()
	logged := q.ulog != nil && j.logLocked(r, r.t)
	q.umu.Unlock()
	if !logged {
		return Attr{}, false, nil
	}
	q.kick()
	j.unl.crNext++
	return r.attr(), true, nil
}

// createRows is how many creates one INSERT applies: a statement costs
// about as much as the rows it carries, here.
const createRows = 32

var (
	insertInodes  = `INSERT INTO inodes(ino, mode, uid, gid, nlink, atime, mtime, ctime) VALUES` + valueRows(createRows, "(?, ?, ?, ?, ?, ?, ?, ?)")
	insertEntries = `INSERT INTO entries(parent, name, ino) VALUES` + valueRows(createRows, "(?, ?, ?)")
)

func valueRows(n int, row string) string {
	return strings.Repeat(row+", ", n-1) + row
}

// applyCreates inserts pending creates' inodes and entries, createRows
// to a statement, then moves their parents' times to the newest pending
// change in each and adds a link to a parent for each directory made in
// it (a parent may be one of the directories made: its row comes first);
// it returns the parents and their rows as the transaction leaves them.
// wmu held, in a transaction.
func (j *unlinks) applyCreates(ctx context.Context, tx *sql.Tx, recs []unlinkRec) ([]Ino, []Attr, error) {
	var parents []Ino
	subdirs := map[Ino]int{}
	for _, r := range recs {
		if !slices.Contains(parents, r.parent) {
			parents = append(parents, r.parent)
		}
		var made Ino
		if isDir(r.mode) {
			made = r.ino
			subdirs[r.parent]++
		}
		j.ents.added = append(j.ents.added, addedEntry{parent: r.parent, name: r.name, dir: made})
	}
	for len(recs) >= createRows {
		ia := make([]any, 0, 8*createRows)
		ea := make([]any, 0, 3*createRows)
		for _, r := range recs[:createRows] {
			ia = append(ia, r.ino, r.mode, r.uid, r.gid, r.attr().Nlink, r.t, r.t, r.t)
			ea = append(ea, r.parent, r.name, r.ino)
		}
		if _, err := j.texec(ctx, tx, insertInodes, ia...); err != nil {
			return nil, nil, fmt.Errorf("journal: create %d inodes from %d: %w", createRows, recs[0].ino, err)
		}
		if _, err := j.texec(ctx, tx, insertEntries, ea...); err != nil {
			return nil, nil, fmt.Errorf("journal: create %d entries from %q in %d: %w", createRows, recs[0].name, recs[0].parent, err)
		}
		recs = recs[createRows:]
	}
	for _, r := range recs {
		if _, err := j.texec(ctx, tx, `INSERT INTO inodes(ino, mode, uid, gid, nlink, atime, mtime, ctime) VALUES(?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ino, r.mode, r.uid, r.gid, r.attr().Nlink, r.t, r.t, r.t); err != nil {
			return nil, nil, fmt.Errorf("journal: create inode %d: %w", r.ino, err)
		}
		if _, err := j.texec(ctx, tx, `INSERT INTO entries(parent, name, ino) VALUES(?, ?, ?)`, r.parent, r.name, r.ino); err != nil {
			return nil, nil, fmt.Errorf("journal: create entry %q in %d: %w", r.name, r.parent, err)
		}
	}
	now := nowNS()
	rows := make([]Attr, 0, len(parents))
	for _, p := range parents {
		t, ok := j.unl.dirPendTime(p)
		if !ok {
			t = now
		}
		a, err := scanAttr(j.tqrow(ctx, tx, `UPDATE inodes SET mtime = ?1, ctime = ?1, nlink = nlink + ?3 WHERE ino = ?2 RETURNING `+
			strings.ReplaceAll(attrCols, "i.", ""), t, p, subdirs[p]))
		if err != nil {
			return nil, nil, fmt.Errorf("journal: create: update parent: %w", err)
		}
		rows = append(rows, a)
	}
	return parents, rows, nil
}

// replayable drops from the records a crash left in the log the creates
// and flushes that were applied before it (their inode number is taken;
// their sequence number is not above meta's flush_seq) and the creates
// that no longer fit the database (a parent gone or a name taken: a log
// from another database, or edited), with a warning. wmu held.
func (j *unlinks) replayable(ctx context.Context, recs []unlinkRec) ([]unlinkRec, error) {
	seq, err := j.inodeSeq(ctx)
	if err != nil {
		return nil, fmt.Errorf("journal: replay the unlink log: %w", err)
	}
	flushed, err := j.flushSeqApplied(ctx)
	if err != nil {
		return nil, fmt.Errorf("journal: replay the unlink log: %w", err)
	}
	setsApplied, err := j.seqApplied(ctx, "dirset_seq")
	if err != nil {
		return nil, fmt.Errorf("journal: replay the unlink log: %w", err)
	}
	out := recs[:0]
	made := map[dirName]bool{} // names the records before made (true) or freed (false)
	dirs := map[Ino]bool{}     // directories the records before make
	for _, r := range recs {
		if r.fl != nil {
			if r.fl.seq > flushed {
				out = append(out, r)
			}
			continue
		}
		if r.set != nil {
			if r.set.seq > setsApplied {
				out = append(out, r)
			}
			continue
		}
		key := dirName{r.parent, r.name}
		if !r.create {
			made[key] = false
			out = append(out, r)
			continue
		}
		if r.ino <= seq {
			continue // applied
		}
		taken, known := made[key]
		if !known {
			var one int
			lerr := j.qrow(ctx, `SELECT 1 FROM entries WHERE parent = ? AND name = ?`, r.parent, r.name).Scan(&one)
			if lerr != nil && !errors.Is(lerr, sql.ErrNoRows) {
				return nil, fmt.Errorf("journal: replay the unlink log: %w", lerr)
			}
			taken = lerr == nil
		}
		var perr error
		if !dirs[r.parent] {
			_, perr = j.ns.dirAttr(ctx, nil, r.parent)
		}
		if taken || perr != nil {
			j.log.Warn("journal: the unlink log holds a create that does not fit the database; dropped", "parent", r.parent, "name", r.name, "ino", r.ino)
			continue
		}
		made[key] = true
		if isDir(r.mode) {
			dirs[r.ino] = true
		}
		seq = r.ino
		out = append(out, r)
	}
	return out, nil
}

// inodeSeq is the largest inode number AUTOINCREMENT ever gave (or a
// deferred create inserted), 0 before the first.
func (j *unlinks) inodeSeq(ctx context.Context) (Ino, error) {
	var seq int64
	err := j.qrow(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'inodes'`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	return Ino(seq), nil
}

// settle applies the pending unlinks and creates: for the reads that go to
// the database by inode or by path outside a transaction and know nothing
// of them. wmu not held.
func (j *unlinks) settle(ctx context.Context) error {
	if j.unl.unlN.Load() == 0 {
		j.cleanApplied()
		return nil
	}
	j.wmu.Lock()
	err := j.applyUnlinksLocked(ctx)
	j.wmu.Unlock()
	j.cleanApplied() // a file whose close was applied has nothing in memory now
	return err
}
