package journal

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Deferred unlinks. An unlink of a file that nothing holds (no handle, no
// in-memory state, one link) is acknowledged once it is in memory and
// appended to the unlink log (Dir/unlinks.log) with one write(): a kill -9
// cannot lose it (the kernel has the write), and the next Open applies
// what the database does not have yet. The deferral takes neither wmu
// nor a transaction. The sqlite work (three statements and a commit per
// file when done one by one, about 180 µs here, most of an unlink's
// cost) is done for many unlinks at once, in a few statements (applyTx),
// by the unlinker goroutine at most UnlinkDelay after the first, or
// before anything that could see the difference:
//
//   - a lookup of a pending name answers ENOENT from memory;
//   - every other write transaction, and every durable commit (fsync, the
//     group commit, Close), applies the pending unlinks first, in a
//     transaction of their own (txLocked), or, for an rmdir, at the
//     start of its own (txApplying);
//   - a GETATTR of a directory with pending unlinks in it shows their
//     times as its mtime and ctime (the kernel asks for one after every
//     unlink when it checks permissions; the apply writes the same times),
//     and a READDIR of it applies them first.
//
// Creates of regular files go the same way, in the same log (creates.go),
// and so does an rmdir of a directory whose entries are all pending
// unlinks (rm -rf: deferRmdirLocked).
//
// A power cut may lose the last second of unlinks nobody fsync'd, as it
// may any namespace change (promise 1): the log is not fsync'd, and it is
// truncated once the transaction that applied it is committed. A log
// damaged before its end is refused at Open, unless the machine restarted
// since it was written (restarted): then the records after the damage
// are appends a power cut may drop.
//
// The log is emptied only by an apply that leaves nothing pending, which
// a stream of records that never goes quiet (closes and unlinks do not
// wait for wmu, and may land while an apply runs) might never let happen.
// So past ulogGrow bytes or ulogGrowRecs records (a replay at Open
// reads every one) it takes no record at all (fullLocked): each
// kind takes its synchronous way, whose transaction applies the pending
// records first, and the first apply after that finds nothing new and
// empties it.

// unlinkRec is one deferred change: an unlink (name in parent, which
// named ino); with dir set, an rmdir (name in parent, the directory ino);
// with create set, a create (name in parent, a new regular file ino made
// with mode, uid and gid at time t; creates.go).
type unlinkRec struct {
	parent Ino
	ino    Ino
	name   string
	create bool
	dir    bool
	mode   uint32
	uid    uint32
	gid    uint32
	t      int64
	// fl, for a deferred flush of ino (flushlog.go): no parent, no name.
	fl *flushRec
	// set, for a deferred SetAttr of directory ino (dirattr.go): no
	// parent, no name.
	set *setRec
}

type dirName struct {
	parent Ino
	name   string
}

// unlinkQueue is the deferred unlinks' state, a part of shared.
type unlinkQueue struct {
	// umu guards the fields below it; an unlink defers itself under umu
	// alone (not wmu), so it does not wait for the apply of the ones
	// before it. unlDirs: the directories with pending unlinks, and
	// when the newest of them was made (the directory's mtime and ctime
	// once applied). unlRecs: in the order of the log.
	umu      sync.Mutex
	unlNames map[dirName]struct{}
	unlDirs  map[Ino]int64
	unlRecs  []unlinkRec
	ulog     *os.File // nil: unlinks are not deferred (read-only, closed, or the log failed)
	ulogBuf  []byte
	ulogSize int64 // bytes in the log, applied or not
	ulogRecs int   // records in the log, applied or not
	// crNames and crAttrs are the deferred creates (creates.go): the
	// names they make and the attributes of their inodes.
	crNames map[dirName]Ino
	crAttrs map[Ino]Attr
	// inDir counts the pending records per parent directory, by kind;
	// rmdirs is the directories a pending rmdir removes.
	inDir  map[Ino]pendCount
	rmdirs map[Ino]struct{}
	// rmSeq is odd from before the commit of a transaction that applies
	// pending rmdirs or mkdirs until it has forgotten them, or failed
	// (wmu held throughout): a directory's row and its count of pending
	// rmdirs and mkdirs (pendingNlink) show each once only when both
	// were read while rmSeq stayed one even value (GetAttr, Lookup).
	rmSeq atomic.Uint64
	// unlN is len(unlRecs) (unlinks and creates), crN len(crAttrs), for
	// a check without umu.
	unlN atomic.Int64
	crN  atomic.Int64
	// cmu is held by a create from its checks to its record in the log,
	// so that a deferred create needs no wmu and does not wait for the
	// unlinker's apply (creates.go); and by every call that changes what
	// those checks read, but for the appliers of the log (which commit
	// before they forget a record: the checks read the log first) and
	// the unlinks (whose records umu orders): a synchronous create,
	// link, rename, rmdir (these after wmu: they wait for the apply
	// before them without cmu, and a deferred create waits only for
	// their own transaction), and a SetAttr while it defers a
	// directory's change.
	cmu sync.Mutex
	// crNext is the next inode number a deferred create takes (0: read
	// it from the database first). Guarded by cmu.
	crNext Ino
	// unlApplying is guarded by wmu.
	unlApplying bool
	unlKick     chan struct{}
	unlDone     chan struct{}
	// Deferred flushes (flushlog.go), under umu: the bytes their pending
	// records hold, the last sequence number given, and the applied
	// records whose inodes the unlinker cleans next. fa is guarded by
	// wmu.
	flushB   int
	flushSeq uint64
	toClean  []*flushRec
	fa       flushApplied
	// Deferred changes of directories' attributes (dirattr.go), under
	// umu: merged, by directory; setN is len(sets), for a look without
	// umu. setsApplied (wmu): the transaction under way applied them,
	// up to sequence number setsLast (the unlinker's batch may stop
	// short of the last).
	sets        map[Ino]setRec
	setN        atomic.Int64
	setsApplied bool
	setsLast    uint64
	setSeq      uint64 // the last sequence number given (meta's dirset_seq once applied)
}

// pendCount is how many pending unlinks (rmdirs included), rmdirs and
// creates (mkdirs included) and mkdirs a directory has in it.
type pendCount struct{ unl, rmdirs, creates, mkdirs int }

// add adds the count of r to c, or takes it away with d = -1.
func (c pendCount) add(r unlinkRec, d int) pendCount {
	switch {
	case r.create:
		c.creates += d
		if isDir(r.mode) {
			c.mkdirs += d
		}
	case r.dir:
		c.rmdirs += d
		c.unl += d
	default:
		c.unl += d
	}
	return c
}

// unlinkMax bounds the pending unlinks: the one that would go past it
// applies them first.
const unlinkMax = 2048

// ulogGrow and ulogGrowRecs bound the unlink log, applied records and
// pending ones, in bytes and in records: past either, the log takes no
// record until an apply has emptied it (fullLocked). Open replays every
// record a crash left (an applied unlink finds its entry gone): 32 MiB
// of unlinks (1.7 million) took 13 s and 2.7 GiB of allocations, 65536
// of them 0.36 s and 100 MiB.
const (
	ulogGrow     = 32 << 20
	ulogGrowRecs = 1 << 16
)

// fullLocked reports whether the log takes no record now: unlinkMax
// records pending, or the log past ulogGrow bytes or ulogGrowRecs
// records. The record then takes the synchronous way, whose transaction
// applies the pending ones first; with nothing appended meanwhile (every
// other record is refused too), that apply leaves nothing pending and
// empties the log. umu held.
func (q *unlinkQueue) fullLocked() bool {
	return len(q.unlRecs) >= unlinkMax || q.ulogSize > ulogGrow || q.ulogRecs >= ulogGrowRecs
}

// full is fullLocked for callers without umu.
func (q *unlinkQueue) full() bool {
	q.umu.Lock()
	defer q.umu.Unlock()
	return q.fullLocked()
}

// unlinkLogName is the unlink log's file in Options.Dir.
const unlinkLogName = "unlinks.log"

// unlinkPending reports whether name in parent is unlinked but not yet
// applied.
func (q *unlinkQueue) unlinkPending(parent Ino, name string) bool {
	if q.unlN.Load() == 0 {
		return false
	}
	q.umu.Lock()
	defer q.umu.Unlock()
	_, ok := q.unlNames[dirName{parent, name}]
	return ok
}

// dirPending reports whether dir has pending unlinks in it.
func (q *unlinkQueue) dirPending(dir Ino) bool {
	_, ok := q.dirPendTime(dir)
	return ok
}

// dirPendTime is when the newest pending unlink or create in dir was
// made.
func (q *unlinkQueue) dirPendTime(dir Ino) (int64, bool) {
	if q.unlN.Load() == 0 {
		return 0, false
	}
	q.umu.Lock()
	defer q.umu.Unlock()
	t, ok := q.unlDirs[dir]
	return t, ok
}

// addPendingLocked adds r, made at now. umu held.
func (q *unlinkQueue) addPendingLocked(r unlinkRec, now int64) {
	if q.unlNames == nil {
		q.unlNames = map[dirName]struct{}{}
		q.unlDirs = map[Ino]int64{}
		q.crNames = map[dirName]Ino{}
		q.crAttrs = map[Ino]Attr{}
		q.inDir = map[Ino]pendCount{}
		q.rmdirs = map[Ino]struct{}{}
	}
	if r.fl != nil {
		q.flushB += r.fl.logB
		q.unlRecs = append(q.unlRecs, r)
		q.unlN.Store(int64(len(q.unlRecs)))
		return
	}
	if r.set != nil {
		if q.sets == nil {
			q.sets = map[Ino]setRec{}
		}
		q.sets[r.ino] = q.sets[r.ino].merge(*r.set)
		q.setN.Store(int64(len(q.sets)))
		q.unlRecs = append(q.unlRecs, r)
		q.unlN.Store(int64(len(q.unlRecs)))
		return
	}
	q.inDir[r.parent] = q.inDir[r.parent].add(r, 1)
	if r.dir {
		q.rmdirs[r.ino] = struct{}{}
	}
	if r.create {
		q.crNames[dirName{r.parent, r.name}] = r.ino
		q.crAttrs[r.ino] = r.attr()
		q.crN.Store(int64(len(q.crAttrs)))
	} else {
		q.unlNames[dirName{r.parent, r.name}] = struct{}{}
	}
	q.unlDirs[r.parent] = max(q.unlDirs[r.parent], now)
	q.unlRecs = append(q.unlRecs, r)
	q.unlN.Store(int64(len(q.unlRecs)))
}

// pending is the pending unlinks, in the log's order: a view that later
// unlinks do not change (they append past its end), valid until
// dropApplied.
func (q *unlinkQueue) pending() []unlinkRec {
	q.umu.Lock()
	defer q.umu.Unlock()
	return q.unlRecs[:len(q.unlRecs):len(q.unlRecs)]
}

// dropApplied forgets the first n pending unlinks (applied), and empties
// the log when no other came meanwhile (else the next apply does: a
// record applied twice finds its entry gone and does nothing; past
// ulogGrow none comes, fullLocked). A
// directory that still has pending unlinks keeps its newest time, which
// the apply wrote as its mtime.
func (j *unlinks) dropApplied(n int) {
	j.dropAppliedOf(n, nil)
}

// dropAppliedOf is dropApplied when of the first n pending records only
// those for which applied is true (all: nil) were applied; the others
// stay pending, in their order.
func (j *unlinks) dropAppliedOf(n int, applied func(unlinkRec) bool) {
	q := &j.unl
	q.umu.Lock()
	defer q.umu.Unlock()
	kept := q.unlRecs[:0]
	for _, r := range q.unlRecs[:n] {
		if applied != nil && !applied(r) {
			kept = append(kept, r)
			continue
		}
		if r.fl != nil {
			q.flushB -= r.fl.logB
			continue
		}
		if r.set != nil {
			continue // forgotten at the commit that applied it (dropSetsLocked)
		}
		if r.create {
			delete(q.crNames, dirName{r.parent, r.name})
			delete(q.crAttrs, r.ino)
		} else {
			delete(q.unlNames, dirName{r.parent, r.name})
		}
		if r.dir {
			delete(q.rmdirs, r.ino)
		}
		if c := q.inDir[r.parent].add(r, -1); c == (pendCount{}) {
			delete(q.inDir, r.parent)
		} else {
			q.inDir[r.parent] = c
		}
	}
	q.unlRecs = append(kept, q.unlRecs[n:]...)
	q.unlN.Store(int64(len(q.unlRecs)))
	q.crN.Store(int64(len(q.crAttrs)))
	if len(q.unlRecs) > 0 {
		left := make(map[Ino]struct{}, len(q.unlDirs))
		for _, r := range q.unlRecs {
			if r.fl == nil && r.set == nil {
				left[r.parent] = struct{}{}
			}
		}
		for d := range q.unlDirs {
			if _, ok := left[d]; !ok {
				delete(q.unlDirs, d)
			}
		}
		return
	}
	clear(q.unlDirs)
	if q.ulog != nil && (q.ulogSize > ulogKeep || q.ulogRecs >= ulogGrowRecs) {
		q.ulogSize, q.ulogRecs = 0, 0
		if err := q.ulog.Truncate(0); err != nil {
			// The next Open applies them again: each unlink finds its
			// entry gone, each create its inode number taken, and does
			// nothing.
			j.log.Warn("journal: cannot empty the unlink log", "err", err)
		}
	}
}

// ulogKeep is how many bytes of applied records the log keeps before it
// is emptied: replaying them does nothing (an unlink finds its entry
// gone, a create its inode number taken), and a truncate per apply cost
// a syscall per file made by cp -a.
const ulogKeep = 64 << 10

// closeLog closes the unlink log (Close, after the last apply); an
// unlink after it is not deferred.
func (q *unlinkQueue) closeLog() {
	q.umu.Lock()
	defer q.umu.Unlock()
	if q.ulog != nil {
		q.ulog.Close()
		q.ulog = nil
	}
}

// openUnlinkLog opens the unlink log and applies what a crash left in it.
// Open calls it after recovery, and starts the unlinker when the log is
// open; a journal without a log applies every unlink at once.
func (j *unlinks) openUnlinkLog(ctx context.Context) error {
	path := filepath.Join(j.o.Dir, unlinkLogName)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: read the unlink log: %w (remove %s to start without the unlinks it holds)", err, path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: open the unlink log: %w", err)
	}
	j.unl.ulog = f
	recs, n := decodeUnlinks(b)
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if at := wholeRecordAfter(b, n); at >= 0 {
		// Not a torn tail: emptying the log would drop the records
		// after the damage. Those applied already (the log keeps
		// applied records until it is emptied) lose nothing; the others
		// may be files the drive answered for and keeps nowhere else.
		after, _ := decodeUnlinks(b[at:])
		c, u, fl, st, err := unappliedAfter(ctx, j, after)
		if err != nil {
			return err
		}
		if c+u+fl+st > 0 && restarted(j.o.Dir) {
			// The machine stopped since the log was written, with it
			// not empty: a power cut (or a crash of the kernel), which
			// may leave appends nobody fsync'd damaged on a file system
			// that does not order them (every record in journal.db
			// was fsync'd; the log never is). The records after the
			// damage are such appends, which a power cut may drop
			// (promise 1): dropped, with a copy of the log kept.
			keep := fmt.Sprintf("%s.damaged-%d", path, time.Now().Unix())
			if err := writeSynced(keep, b); err != nil {
				j.unl.closeLog()
				return fmt.Errorf("journal: keep a copy of the damaged unlink log: %w", err)
			}
			j.log.Warn("journal: the unlink log is damaged, and the machine restarted since it was written (a power cut can damage what was not fsync'd): "+
				"the records before the damage are applied, the ones after it dropped (nobody fsync'd them); the log is kept",
				"path", path, "at", n, "bytes", len(b), "dropped_creates", c, "dropped_deletes", u,
				"dropped_closes", fl, "dropped_folder_changes", st, "copy", keep)
		} else if c+u+fl+st > 0 {
			j.unl.closeLog()
			return fmt.Errorf("journal: the unlink log %s is damaged at byte %d of %d, and %d creates, %d deletes, %d closed files and %d folder attribute changes "+
				"after the damage (from byte %d) are not in journal.db yet. Nothing was changed. Keep a copy of the log for a bug report; "+
				"to start without the records it holds, mv %s %s.damaged (the files they name are then as of journal.db)",
				path, n, len(b), c, u, fl, st, at, path, path)
		} else {
			j.log.Warn("journal: the unlink log is damaged before its end; the records after the damage are in journal.db already, the ones before it are applied",
				"path", path, "at", n, "bytes", len(b))
		}
	} else if n < len(b) {
		j.log.Warn("journal: the unlink log ends in a torn record; the unlinks before it are applied", "bytes", len(b)-n)
	}
	if recs, err = j.replayable(ctx, recs); err != nil {
		return err
	}
	now := nowNS()
	j.unl.umu.Lock()
	for _, r := range recs {
		j.unl.addPendingLocked(r, now)
	}
	j.unl.umu.Unlock()
	if err := j.applyUnlinksLocked(ctx); err != nil {
		return err
	}
	if len(recs) > 0 {
		// Durable before the log is emptied: a flush record's data is
		// in no other place.
		if err := j.barrierLocked(ctx); err != nil {
			return err
		}
	}
	seq, err := j.flushSeqApplied(ctx)
	if err != nil {
		return fmt.Errorf("journal: read the unlink log's state: %w", err)
	}
	setSeq, err := j.seqApplied(ctx, "dirset_seq")
	if err != nil {
		return fmt.Errorf("journal: read the unlink log's state: %w", err)
	}
	j.unl.umu.Lock()
	j.unl.flushSeq, j.unl.setSeq = seq, setSeq
	j.unl.umu.Unlock()
	if len(b) > 0 {
		// Emptied at once, whatever its size: appends must not follow
		// a torn record, and what it held is applied.
		if err := j.unl.ulog.Truncate(0); err != nil {
			return fmt.Errorf("journal: empty the unlink log: %w", err)
		}
	}
	markBoot(j.o.Dir, j.log)
	if j.o.UnlinkDelay < 0 {
		// Deferral off: the log is replayed (a mount with it on may
		// have left records), then not written.
		err := j.unl.ulog.Close()
		j.unl.ulog = nil
		if err != nil {
			return fmt.Errorf("journal: close the unlink log: %w", err)
		}
	}
	return nil
}

// warnUnapplied is openUnlinkLog for a read-only open, which cannot
// apply the log: it says how many of the log's creates and unlinks the
// database does not show yet (a drive stopped by a crash or kill -9
// before it applied them), and how to see them.
func (j *unlinks) warnUnapplied(ctx context.Context) error {
	path := filepath.Join(j.o.Dir, unlinkLogName)
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil // no log: nothing to show; an unreadable one is the read-write open's to report
	}
	recs, _ := decodeUnlinks(b)
	creates, unlinks, flushes, sets, err := j.unapplied(ctx, recs)
	if err != nil {
		return err
	}
	if creates+unlinks+flushes+sets > 0 {
		j.log.Warn("journal: the drive stopped before it applied its last creates, deletes, closed files and folder attribute changes; this read-only mount shows the drive without them. Mount it read-write once to apply them",
			"creates", creates, "unlinks", unlinks, "closed_files", flushes, "folder_changes", sets)
	}
	return nil
}

// unappliedAfter is unapplied of the records after a damaged one. A
// create among them numbered past sqlite_sequence is not in the database,
// whether it fits it or not: it may be in a directory that a deferred
// mkdir before the damage, or in the damaged record, made (replayable
// alone would find its parent missing and drop it uncounted, and Open
// would empty the log). The other kinds do not depend on the creates.
// (A function: unlinks's method set is full.)
func unappliedAfter(ctx context.Context, j *unlinks, after []unlinkRec) (creates, unlinks, flushes, sets int, err error) {
	seq, err := j.inodeSeq(ctx)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("journal: read the unlink log: %w", err)
	}
	rest := after[:0:0]
	for _, r := range after {
		if r.create {
			if r.ino > seq {
				creates++
			}
			continue
		}
		rest = append(rest, r)
	}
	_, unlinks, flushes, sets, err = j.unapplied(ctx, rest)
	return creates, unlinks, flushes, sets, err
}

// unapplied counts the records of recs that the database does not show
// yet: creates, unlinks (of an entry still there), closed files and
// folder attribute changes.
func (j *unlinks) unapplied(ctx context.Context, recs []unlinkRec) (creates, unlinks, flushes, sets int, err error) {
	if recs, err = j.replayable(ctx, recs); err != nil {
		return 0, 0, 0, 0, err
	}
	for _, r := range recs {
		if r.fl != nil {
			flushes++
			continue
		}
		if r.set != nil {
			sets++
			continue
		}
		if r.create {
			creates++
			continue
		}
		var one int
		err := j.qrow(ctx, `SELECT 1 FROM entries WHERE parent = ? AND name = ? AND ino = ?`, r.parent, r.name, r.ino).Scan(&one)
		switch {
		case err == nil:
			unlinks++
		case !errors.Is(err, sql.ErrNoRows):
			return 0, 0, 0, 0, fmt.Errorf("journal: read the unlink log: %w", err)
		}
	}
	return creates, unlinks, flushes, sets, nil
}

// deferUnlink is Unlink's fast way: it reports false when the unlink
// must take the synchronous one (deferral off, a file someone holds,
// more than one link, the log full or unwritable). It takes
// neither wmu nor a transaction: the kernel holds the directory's lock,
// so no other change to this name runs meanwhile, and the apply looks at
// j.inodes again.
func (j *unlinks) deferUnlink(ctx context.Context, parent Ino, name string) (bool, error) {
	if j.unl.ulogOff() || j.unl.createPending(parent, name) {
		// A file made by a deferred create goes the synchronous way,
		// whose transaction applies the create first.
		return false, nil
	}
	var a Attr
	gen, cached := j.ns.cacheGen()
	if la, ok := j.lastLk.get(parent, name, gen); ok && cached && !j.unl.unlinkPending(parent, name) {
		a = j.it.overlay(la)
	} else {
		var err error
		if a, err = j.ns.Lookup(ctx, parent, name); err != nil {
			return true, err
		}
	}
	if isDir(a.Mode) {
		return true, ErrIsDir
	}
	if a.Nlink != 1 {
		return false, nil
	}
	j.imapMu.Lock()
	held := j.inodes[a.Ino] != nil
	j.imapMu.Unlock()
	if held {
		return false, nil
	}
	q := &j.unl
	q.umu.Lock()
	if _, set := q.sets[parent]; set || q.ulog == nil || q.fullLocked() {
		// Full, or parent's pending attribute change must be applied
		// before the unlink changes its times (dirattr.go): the
		// synchronous unlink applies what is pending first.
		q.umu.Unlock()
		return false, nil
	}
	r := unlinkRec{parent: parent, ino: a.Ino, name: name}
	if !j.logLocked(r, nowNS()) {
		q.umu.Unlock()
		// A partial record is torn for the next Open; what is pending
		// is applied before this unlink (by its own transaction).
		return false, nil
	}
	q.umu.Unlock()
	q.kick()
	return true, nil
}

// deferRmdirLocked is Rmdir's fast way: when every entry of the
// directory is a pending unlink (rm -rf has just unlinked them), the
// rmdir is a record in the log too, and the unlinker applies it after
// them; the call does not wait for their transaction. It reports false
// when the rmdir must take the synchronous way (deferral off, the
// directory holds a pending create or something holds it, the log full
// or unwritable); its transaction then applies what is pending first. wmu held, so no apply changes the pending unlinks and
// the database between the count and the record.
func (j *unlinks) deferRmdirLocked(ctx context.Context, parent Ino, name string) (bool, error) {
	if j.unl.ulogOff() || j.unl.createPending(parent, name) {
		// A directory made by a deferred mkdir goes the synchronous
		// way, whose transaction applies the mkdir first (the apply
		// takes rmdirs before creates).
		return false, nil
	}
	a, err := j.ns.Lookup(ctx, parent, name)
	if err != nil {
		return true, err
	}
	if !isDir(a.Mode) {
		return true, ErrNotDir
	}
	j.imapMu.Lock()
	held := j.inodes[a.Ino] != nil
	j.imapMu.Unlock()
	q := &j.unl
	q.umu.Lock()
	c := q.inDir[a.Ino]
	_, set := q.sets[parent] // applied first (dirattr.go)
	full := set || q.ulog == nil || q.fullLocked()
	q.umu.Unlock()
	if held || full || c.creates > 0 {
		return false, nil
	}
	// The entries the database has in it, up to one more than the
	// pending unlinks there: each of those has its entry still there.
	var n int
	if err := j.qrow(ctx, `SELECT count(*) FROM (SELECT 1 FROM entries WHERE parent = ? LIMIT ?)`, a.Ino, c.unl+1).Scan(&n); err != nil {
		return true, fmt.Errorf("journal: rmdir: read directory: %w", err)
	}
	if n > c.unl {
		return true, ErrNotEmpty
	}
	q.umu.Lock()
	logged := q.ulog != nil && j.logLocked(unlinkRec{parent: parent, ino: a.Ino, name: name, dir: true}, nowNS())
	q.umu.Unlock()
	if !logged {
		return false, nil
	}
	q.kick()
	return true, nil
}

// rmdirPending reports whether a pending rmdir removes dir.
func (q *unlinkQueue) rmdirPending(dir Ino) bool {
	if q.unlN.Load() == 0 {
		return false
	}
	q.umu.Lock()
	defer q.umu.Unlock()
	_, ok := q.rmdirs[dir]
	return ok
}

// rmSeqEven returns rmSeq once it is even: no apply of rmdirs is
// between its commit and forgetting them. The wait is that commit's.
func (q *unlinkQueue) rmSeqEven() uint64 {
	for {
		if s := q.rmSeq.Load(); s&1 == 0 {
			return s
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// rmSeqSame reports whether rmSeq is still s, an even value.
func (q *unlinkQueue) rmSeqSame(s uint64) bool { return s&1 == 0 && q.rmSeq.Load() == s }

// changesNlink reports whether r, a pending record, changes its parent's
// link count when applied: an rmdir or a mkdir (see rmSeq).
func changesNlink(r unlinkRec) bool {
	return r.dir && !r.create || r.create && isDir(r.mode)
}

// logLocked appends r to the log with one write() and makes it pending,
// made at now. It reports false when the log cannot take it: deferral is
// then off for good. umu held.
func (j *unlinks) logLocked(r unlinkRec, now int64) bool {
	q := &j.unl
	q.ulogBuf = appendUnlink(q.ulogBuf[:0], r)
	q.ulogSize += int64(len(q.ulogBuf))
	q.ulogRecs++
	if _, err := q.ulog.Write(q.ulogBuf); err != nil {
		j.log.Warn("journal: cannot append to the unlink log; unlinks and creates are applied one by one", "err", err)
		q.ulog.Close()
		q.ulog = nil
		return false
	}
	q.addPendingLocked(r, now)
	return true
}

// kick wakes the unlinker.
func (q *unlinkQueue) kick() {
	select {
	case q.unlKick <- struct{}{}:
	default:
	}
}

// ulogOff reports whether unlinks are not deferred.
func (q *unlinkQueue) ulogOff() bool {
	q.umu.Lock()
	defer q.umu.Unlock()
	return q.ulog == nil
}

// applyUnlinksLocked applies every pending unlink in one transaction and
// empties the log. wmu held.
func (j *unlinks) applyUnlinksLocked(ctx context.Context) error {
	return j.txApplyingLocked(ctx, nil)
}

// txApplying runs fn in one write transaction under wmu, like tx, with
// the pending unlinks applied at its start, in it: a rmdir of a
// directory whose entries are pending unlinks (rm -rf) commits once, not
// twice. fn must say which inode rows it changes (narrowLocked), as
// Rmdir does. When fn fails, the unlinks stay pending.
func (j *unlinks) txApplying(ctx context.Context, fn func(tx *sql.Tx) error) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.unl.unlN.Load() == 0 {
		return j.txLocked(ctx, fn)
	}
	return j.txApplyingLocked(ctx, fn)
}

// txApplyingLocked applies the pending unlinks, then runs fn (when not
// nil) in the same transaction. wmu held.
func (j *unlinks) txApplyingLocked(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return txApplyingRecsLocked(j, ctx, j.unl.pending(), fn)
}

// txApplyingRecsLocked is txApplyingLocked for recs, the first of the
// pending records (all of them, or the unlinker's batch). wmu held. (A
// function: unlinks' method set is full.)
func txApplyingRecsLocked(j *unlinks, ctx context.Context, recs []unlinkRec, fn func(tx *sql.Tx) error) error {
	if len(recs) == 0 {
		if fn != nil {
			return j.txLocked(ctx, fn)
		}
		return nil
	}
	j.unl.unlApplying = true
	defer func() { j.unl.unlApplying = false }()
	if slices.ContainsFunc(recs, changesNlink) {
		j.unl.rmSeq.Add(1) // odd: see rmSeq
		defer j.unl.rmSeq.Add(1)
	}
	var fr freed
	var gone []Ino
	// With unlinks or rmdirs among recs, imu is held from the look at
	// j.inodes until the commit, so no OpenFile of an inode freed here
	// comes in between (lock order wmu -> imu); fn must not take it.
	// Creates, closes and directory times free nothing and look at no
	// inode in memory: without them, imu is left to the requests (a
	// cp -a waited on it in every create, write and release while a
	// hundred closes were applied).
	frees := slices.ContainsFunc(recs, func(r unlinkRec) bool { return !r.create && r.fl == nil && r.set == nil })
	if frees {
		j.imu.Lock()
	}
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		fr = freed{}
		var err error
		if gone, err = j.applyTx(ctx, tx, recs, &fr); err != nil {
			return err
		}
		if j.applyingHook != nil {
			j.applyingHook(len(recs))
		}
		if fn != nil {
			return fn(tx)
		}
		return nil
	})
	if frees {
		j.imu.Unlock()
	}
	if err != nil {
		if fn != nil {
			return err
		}
		return fmt.Errorf("journal: apply %d deferred unlinks: %w", len(recs), err)
	}
	if j.appliedHook != nil {
		j.appliedHook()
	}
	j.dropApplied(len(recs))
	j.fl.afterFreeLocked(&fr)
	for _, ino := range gone {
		j.it.reclaimLater(ino)
	}
	return nil
}

// applyTx applies recs, pending unlinks, rmdirs and creates, in tx. No
// name is both pending-unlinked and pending-created (creates.go), an
// unlink names an inode no pending create made, and no create is pending
// in a directory a pending rmdir removes (deferCreate), so the
// kinds are applied apart, whatever their order in the log: the unlinks,
// then the rmdirs, then the creates. It returns the unlinked inodes
// something holds, for the reaper. wmu and imu held, within txLocked's
// fn.
func (j *unlinks) applyTx(ctx context.Context, tx *sql.Tx, recs []unlinkRec, fr *freed) ([]Ino, error) {
	var unl, rmd, cr, fl, st []unlinkRec
	for _, r := range recs {
		switch {
		case r.set != nil:
			st = append(st, r)
		case r.fl != nil:
			fl = append(fl, r)
		case r.create:
			cr = append(cr, r)
		case r.dir:
			rmd = append(rmd, r)
		default:
			unl = append(unl, r)
		}
	}
	var held []Ino
	if len(unl) > 0 {
		var err error
		if held, err = j.applyUnlinkRecs(ctx, tx, unl, fr); err != nil {
			return nil, err
		}
	}
	// After the unlinks that emptied them, in the log's order (a
	// directory before its parent).
	for _, r := range rmd {
		if err := j.applyRmdir(ctx, tx, r); err != nil {
			return nil, err
		}
	}
	if len(cr) > 0 {
		parents, _, err := j.applyCreates(ctx, tx, cr)
		if err != nil {
			return nil, err
		}
		j.narrowLocked(parents...)
	}
	// Last: a deferred flush's inode may be one of the creates (it
	// cannot be one of the unlinks: a file with unapplied data in
	// memory is unlinked the synchronous way, which applies it first).
	if len(fl) > 0 {
		if err := j.applyFlushRecs(ctx, tx, fl, fr); err != nil {
			return nil, err
		}
		j.narrowLocked(j.unl.fa.inos...)
	}
	// After everything that changes a directory's times (dirattr.go).
	if len(st) > 0 {
		inos, err := j.da.apply(ctx, tx, st)
		if err != nil {
			return nil, err
		}
		j.narrowLocked(inos...)
	}
	return held, nil
}

// applyUnlinkRecs applies recs (pending unlinks) in a few statements whatever their
// number: one DELETE of their entries (the records go as a JSON array of
// [parent, ino, hex(name)]: a name is any bytes), one UPDATE of the link
// counts, freeTx for the inodes nothing holds (a file's blocks go with
// it, so the reaper has nothing left to do), one UPDATE per parent. It
// returns the unlinked inodes something holds, for the reaper. wmu and
// imu held, within txLocked's fn.
func (j *unlinks) applyUnlinkRecs(ctx context.Context, tx *sql.Tx, recs []unlinkRec, fr *freed) ([]Ino, error) {
	b := make([]byte, 0, 64*len(recs))
	b = append(b, '[')
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendUint(b, uint64(r.parent), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(r.ino), 10)
		b = append(b, ',', '"')
		b = hex.AppendEncode(b, []byte(r.name))
		b = append(b, '"', ']')
	}
	b = append(b, ']')
	// An entry applied before a crash cut the log short is not there
	// any more: its record does nothing. Nor does one that names a
	// directory: deferUnlink never logs one, and the record's kind is
	// outside its CRC, so only a corrupted log could make one; the entry
	// stays.
	deleted, err := j.inoSet(ctx, tx, `DELETE FROM entries WHERE cookie IN (
		SELECT e.cookie FROM json_each(?1) AS r JOIN entries AS e
		ON e.parent = r.value->>0 AND e.name = CAST(unhex(r.value->>2) AS TEXT) AND e.ino = r.value->>1
		JOIN inodes AS i ON i.ino = e.ino AND i.mode & ?2 != ?3)
		RETURNING ino`, string(b), sIFMT, sIFDIR)
	if err != nil {
		return nil, fmt.Errorf("journal: unlink: %w", err)
	}
	now := nowNS()
	inos := make([]Ino, 0, len(deleted))
	touched := make([]Ino, 0, len(deleted)+1)
	for ino := range deleted {
		inos = append(inos, ino)
	}
	touched = append(touched, inos...)
	if _, err := j.texec(ctx, tx, `UPDATE inodes SET nlink = nlink - 1, ctime = ?2 WHERE ino IN (SELECT value FROM json_each(?1))`, inoJSON(inos), now); err != nil {
		return nil, fmt.Errorf("journal: unlink: %w", err)
	}
	free := inos[:0:0]
	var held []Ino
	for _, ino := range inos {
		if j.inodes[ino] == nil {
			free = append(free, ino)
		} else {
			held = append(held, ino)
		}
	}
	if _, err := j.it.freeTx(ctx, tx, free, fr); err != nil {
		return nil, err
	}
	parents := map[Ino]struct{}{}
	for _, r := range recs {
		if _, ok := deleted[r.ino]; !ok {
			continue
		}
		if _, ok := parents[r.parent]; ok {
			continue
		}
		parents[r.parent] = struct{}{}
		touched = append(touched, r.parent)
		t, ok := j.unl.dirPendTime(r.parent)
		if !ok {
			t = now
		}
		if _, err := j.texec(ctx, tx, `UPDATE inodes SET mtime = ?1, ctime = ?1 WHERE ino = ?2`, t, r.parent); err != nil {
			return nil, fmt.Errorf("journal: unlink: update parent: %w", err)
		}
	}
	j.narrowLocked(touched...)
	return held, nil
}

// applyRmdir applies a pending rmdir: the directory's entry, its inode,
// and its parent's link count and times. A record whose entry is gone
// (applied before a crash cut the log short) does nothing; one that
// names no directory, or whose directory is not empty (which
// deferRmdirLocked rules out), is dropped with a warning, the entry left
// in place. wmu held, within
// txLocked's fn.
func (j *unlinks) applyRmdir(ctx context.Context, tx *sql.Tx, r unlinkRec) error {
	var mode uint32
	err := j.tqrow(ctx, tx, `SELECT i.mode FROM entries AS e JOIN inodes AS i ON i.ino = e.ino
		WHERE e.parent = ? AND e.name = ? AND e.ino = ?`, r.parent, r.name, r.ino).Scan(&mode)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: rmdir: %w", err)
	}
	if !isDir(mode) {
		j.log.Warn("journal: a deferred rmdir names no directory; dropped", "parent", r.parent, "name", r.name, "ino", r.ino)
		return nil
	}
	switch err := j.ns.dirEmpty(ctx, tx, r.ino); {
	case errors.Is(err, ErrNotEmpty):
		j.log.Warn("journal: a deferred rmdir found its directory not empty; the directory stays", "parent", r.parent, "name", r.name, "ino", r.ino)
		return nil
	case err != nil:
		return err
	}
	t, ok := j.unl.dirPendTime(r.parent)
	if !ok {
		t = nowNS()
	}
	return j.ns.dropDirTx(ctx, tx, r.parent, r.name, r.ino, t)
}

// applyUnlinksFor applies the pending unlinks when dir has one: a
// READDIR of dir is about to read what they change. wmu not held.
func (j *unlinks) applyUnlinksFor(ctx context.Context, dir Ino) error {
	if !j.unl.dirPending(dir) {
		return nil
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	return j.applyUnlinksLocked(ctx)
}

// unlinker applies pending unlinks UnlinkDelay after the first of them,
// on a thread of lowered priority (nice.go).
func (j *unlinks) unlinker(ctx context.Context) {
	defer close(j.unl.unlDone)
	if err := lowerThreadPriority(); err != nil { // nice.go
		j.log.Debug("journal: the unlinker runs at the drive's own priority", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.unl.unlKick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(j.o.UnlinkDelay):
		}
		for more := true; more; {
			j.sealAhead()
			j.wmu.Lock()
			recs := j.unl.pending()
			if more = len(recs) > unlinkerBatch; more {
				recs = recs[:unlinkerBatch]
			}
			err := txApplyingRecsLocked(j, ctx, recs, nil)
			j.wmu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					j.log.Warn("journal: applying deferred unlinks failed; retrying with the next change", "err", err)
				}
				more = false
			}
			j.cleanApplied()
		}
	}
}

// unlinkerBatch bounds the records the unlinker applies in one
// transaction: it holds wmu throughout, and every call that commits (a
// big file's close, a rename, a file's SetAttr) waits for wmu. A cp -a
// of a source tree logs a hundred records (creates and closes) while one
// apply runs, whose next apply then took about 8 ms, and so did the
// create that came during it (creates waited for wmu then; they take
// cmu now), a hundred times in the copy.
const unlinkerBatch = 64

// The unlink log's record: 'u' (an unlink), 'd' (an rmdir) or 'c' (a
// create), the payload's length (uvarint), the payload, the payload's
// CRC-32C (4 bytes, little-endian). An unlink's and an rmdir's payload is
// parent and inode as uvarints, then the name; a create's is parent,
// inode, mode (a regular file's or, since 2026-12-07, a directory's),
// uid, gid and time (nanoseconds) as uvarints, then the name. A close's record ('f') is in flushlog.go, a directory's
// attribute change ('s') in dirattr.go. (A build from before rmdirs,
// closes or attribute changes were deferred stops at a 'd', 'f' or 's'
// record as at a torn one.)
const (
	unlinkMagic = 'u'
	rmdirMagic  = 'd'
	createMagic = 'c'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendUnlink(b []byte, r unlinkRec) []byte {
	if r.fl != nil || r.set != nil {
		var p []byte
		magic := byte(flushMagic)
		if r.fl != nil {
			p = appendFlushPayload(nil, r.ino, r.fl)
		} else {
			p, magic = appendSetPayload(nil, r.ino, r.set), setMagic
		}
		b = append(b, magic)
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
		return binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, castagnoli))
	}
	var p [6 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(p[:], uint64(r.parent))
	n += binary.PutUvarint(p[n:], uint64(r.ino))
	magic := byte(unlinkMagic)
	if r.dir {
		magic = rmdirMagic
	}
	if r.create {
		magic = createMagic
		n += binary.PutUvarint(p[n:], uint64(r.mode))
		n += binary.PutUvarint(p[n:], uint64(r.uid))
		n += binary.PutUvarint(p[n:], uint64(r.gid))
		n += binary.PutUvarint(p[n:], uint64(r.t))
	}
	crc := crc32.Update(crc32.Checksum(p[:n], castagnoli), castagnoli, []byte(r.name))
	b = append(b, magic)
	b = binary.AppendUvarint(b, uint64(n+len(r.name)))
	b = append(b, p[:n]...)
	b = append(b, r.name...)
	return binary.LittleEndian.AppendUint32(b, crc)
}

// decodeUnlinks reads records from b up to the first that is torn or
// does not check, and reports how many bytes they took.
func decodeUnlinks(b []byte) (recs []unlinkRec, n int) {
	for n < len(b) {
		rest := b[n:]
		if rest[0] != unlinkMagic && rest[0] != rmdirMagic && rest[0] != createMagic && rest[0] != flushMagic && rest[0] != setMagic {
			return recs, n
		}
		l, k := uvarint(rest[1:])
		if k <= 0 || l > uint64(len(rest)) || 1+uint64(k)+l+4 > uint64(len(rest)) {
			return recs, n
		}
		p := rest[1+k : 1+k+int(l)]
		if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(rest[1+k+int(l):]) {
			return recs, n
		}
		if rest[0] == flushMagic || rest[0] == setMagic {
			var r unlinkRec
			var ok bool
			if rest[0] == flushMagic {
				r.ino, r.fl, ok = decodeFlushPayload(p)
			} else {
				r.ino, r.set, ok = decodeSetPayload(p)
			}
			if !ok {
				return recs, n
			}
			recs = append(recs, r)
			n += 1 + k + int(l) + 4
			continue
		}
		parent, a := uvarint(p)
		if a <= 0 {
			return recs, n
		}
		ino, c := uvarint(p[a:])
		if c <= 0 {
			return recs, n
		}
		r := unlinkRec{parent: Ino(parent), ino: Ino(ino), create: rest[0] == createMagic, dir: rest[0] == rmdirMagic}
		at := a + c
		if r.create {
			var v [4]uint64
			for i := range v {
				x, k := uvarint(p[at:])
				if k <= 0 {
					return recs, n
				}
				v[i], at = x, at+k
			}
			if v[0] > math.MaxUint32 || v[1] > math.MaxUint32 || v[2] > math.MaxUint32 || v[3] > math.MaxInt64 ||
				uint32(v[0])&sIFMT != sIFREG && uint32(v[0])&sIFMT != sIFDIR {
				return recs, n
			}
			r.mode, r.uid, r.gid, r.t = uint32(v[0]), uint32(v[1]), uint32(v[2]), int64(v[3])
		}
		r.name = string(p[at:])
		if checkName(r.name) != nil || parent == 0 || ino == 0 {
			return recs, n
		}
		recs = append(recs, r)
		n += 1 + k + int(l) + 4
	}
	return recs, n
}

// wholeRecordAfter returns the first offset past n from which b holds
// whole records that decode and check up to its end, or -1 when there
// is none: the bytes from n on are then a torn last record (which may
// hold, in a closed file's data, bytes that look like records, but not
// ones that end where the log ends), or damage at the end.
func wholeRecordAfter(b []byte, n int) int {
	for at := n + 1; at < len(b); {
		recs, k := decodeUnlinks(b[at:])
		switch {
		case len(recs) == 0:
			at++
		case k == len(b)-at:
			return at
		default:
			// Records that stop short of the end: look past where
			// they stop, not inside them again (which would read
			// the rest of the log once per record).
			at += k + 1
		}
	}
	return -1
}

// nextUvarint reads a uvarint at *at in p and moves *at past it.
func nextUvarint(p []byte, at *int) (uint64, bool) {
	v, k := uvarint(p[*at:])
	if k <= 0 {
		return 0, false
	}
	*at += k
	return v, true
}

// uvarint is binary.Uvarint that refuses an encoding longer than needed,
// so that a record reads back from exactly the bytes it was written as.
func uvarint(b []byte) (uint64, int) {
	v, k := binary.Uvarint(b)
	if k > 1 && b[k-1] == 0 {
		return 0, -1
	}
	return v, k
}
