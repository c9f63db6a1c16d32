package journal

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Deferred unlinks. An unlink of a file that nothing holds (no handle, no
// in-memory state, one link) is acknowledged once it is in memory and
// appended to the unlink log (Dir/unlinks.log) with one write(): a kill -9
// cannot lose it (the kernel has the write), and the next Open applies
// what the database does not have yet. The sqlite work, three statements
// and a commit per file (about 180 µs here, most of an unlink's cost), is
// done for many unlinks at once, by the unlinker goroutine at most
// UnlinkDelay after the first, or before anything that could see the
// difference:
//
//   - a lookup of a pending name answers ENOENT from memory;
//   - every other write transaction, and every durable commit (fsync, the
//     group commit, Close), applies the pending unlinks first, in a
//     transaction of their own (txLocked);
//   - a GETATTR of a directory with pending unlinks in it shows their
//     times as its mtime and ctime (the kernel asks for one after every
//     unlink when it checks permissions; the apply writes the same times),
//     and a READDIR of it applies them first.
//
// A power cut may lose the last second of unlinks nobody fsync'd, as it
// may any namespace change (promise 1): the log is not fsync'd, and it is
// truncated once the transaction that applied it is committed.

// unlinkRec is one deferred change: an unlink (name in parent, which
// named ino) or, with create set, a create (name in parent, a new regular
// file ino made with mode, uid and gid at time t; creates.go).
type unlinkRec struct {
	parent Ino
	ino    Ino
	name   string
	create bool
	mode   uint32
	uid    uint32
	gid    uint32
	t      int64
}

type dirName struct {
	parent Ino
	name   string
}

// unlinkQueue is the deferred unlinks' state, a part of shared.
type unlinkQueue struct {
	// umu guards unlNames and unlDirs, read by lookups that do not hold
	// wmu. unlDirs: the directories with pending unlinks, and when the
	// newest of them was made (the directory's mtime and ctime once
	// applied).
	umu      sync.Mutex
	unlNames map[dirName]struct{}
	unlDirs  map[Ino]int64
	// crNames and crAttrs are the deferred creates (creates.go): the
	// names they make and the attributes of their inodes. Under umu.
	crNames map[dirName]Ino
	crAttrs map[Ino]Attr
	// unlN is len(unlRecs), crN len(crAttrs), for a check without umu.
	unlN atomic.Int64
	crN  atomic.Int64
	// crNext is the next inode number a deferred create takes (0: read
	// it from the database first). Guarded by wmu.
	crNext Ino
	// unlRecs, unlApplying, ulog and ulogBuf are guarded by wmu.
	unlRecs     []unlinkRec
	unlApplying bool
	ulog        *os.File // nil: unlinks are not deferred (read-only, or the log failed)
	ulogBuf     []byte
	unlKick     chan struct{}
	unlDone     chan struct{}
}

// unlinkMax bounds the pending unlinks: the one that would go past it
// applies them first.
const unlinkMax = 512

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

// dirPendTime is when the newest pending unlink in dir was made.
func (q *unlinkQueue) dirPendTime(dir Ino) (int64, bool) {
	if q.unlN.Load() == 0 {
		return 0, false
	}
	q.umu.Lock()
	defer q.umu.Unlock()
	t, ok := q.unlDirs[dir]
	return t, ok
}

func (q *unlinkQueue) addPending(r unlinkRec, now int64) {
	q.umu.Lock()
	defer q.umu.Unlock()
	if q.unlNames == nil {
		q.unlNames = map[dirName]struct{}{}
		q.unlDirs = map[Ino]int64{}
		q.crNames = map[dirName]Ino{}
		q.crAttrs = map[Ino]Attr{}
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

// clearPending forgets every pending unlink (they are applied).
func (q *unlinkQueue) clearPending() {
	q.umu.Lock()
	defer q.umu.Unlock()
	clear(q.unlNames)
	clear(q.unlDirs)
	clear(q.crNames)
	clear(q.crAttrs)
	q.unlN.Store(0)
	q.crN.Store(0)
	q.unlRecs = q.unlRecs[:0]
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
	if n < len(b) {
		j.log.Warn("journal: the unlink log ends in a torn record; the unlinks before it are applied", "bytes", len(b)-n)
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if recs, err = j.replayable(ctx, recs); err != nil {
		return err
	}
	now := nowNS()
	for _, r := range recs {
		j.unl.addPending(r, now)
	}
	if err := j.applyUnlinksLocked(ctx); err != nil {
		return err
	}
	if len(b) > 0 && len(recs) == 0 {
		if err := j.unl.ulog.Truncate(0); err != nil {
			return fmt.Errorf("journal: empty the unlink log: %w", err)
		}
	}
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

// deferUnlinkLocked is Unlink's fast way: it reports false when the
// unlink must take the synchronous one (deferral off, a file someone
// holds, more than one link, the log unwritable). wmu held.
func (j *unlinks) deferUnlinkLocked(ctx context.Context, parent Ino, name string) (bool, error) {
	if j.unl.ulog == nil || j.unl.createPending(parent, name) {
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
	j.imu.Lock()
	held := j.inodes[a.Ino] != nil
	j.imu.Unlock()
	if held {
		return false, nil
	}
	if len(j.unl.unlRecs) >= unlinkMax {
		if err := j.applyUnlinksLocked(ctx); err != nil {
			return true, err
		}
	}
	r := unlinkRec{parent: parent, ino: a.Ino, name: name}
	if !j.logPendingLocked(r, nowNS()) {
		return false, nil
	}
	return true, nil
}

// logPendingLocked appends r to the log with one write() and makes it
// pending, made at now. It reports false when the log cannot take it:
// then deferral is off for good, and the caller takes the synchronous
// way (whose transaction applies what is pending first). wmu held.
func (j *unlinks) logPendingLocked(r unlinkRec, now int64) bool {
	j.unl.ulogBuf = appendUnlink(j.unl.ulogBuf[:0], r)
	if _, err := j.unl.ulog.Write(j.unl.ulogBuf); err != nil {
		j.log.Warn("journal: cannot append to the unlink log; unlinks and creates are applied one by one", "err", err)
		j.unl.ulog.Close()
		j.unl.ulog = nil
		// A partial record is torn for the next Open.
		return false
	}
	j.unl.addPending(r, now)
	select {
	case j.unl.unlKick <- struct{}{}:
	default:
	}
	return true
}

// applyUnlinksLocked applies every pending unlink in one transaction and
// empties the log. wmu held.
func (j *unlinks) applyUnlinksLocked(ctx context.Context) error {
	if len(j.unl.unlRecs) == 0 {
		return nil
	}
	j.unl.unlApplying = true
	defer func() { j.unl.unlApplying = false }()
	var gone []Ino
	j.imu.Lock()
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		touched, g, err := j.applyTx(ctx, tx)
		gone = g
		j.narrowLocked(touched...)
		return err
	})
	j.imu.Unlock()
	if err != nil {
		return fmt.Errorf("journal: apply %d deferred unlinks and creates: %w", len(j.unl.unlRecs), err)
	}
	j.appliedLocked(gone)
	return nil
}

// applyTx applies the pending records in tx, in log order, and returns
// the inodes whose rows it changed and those it left with one link
// fewer, for the reaper. wmu held, and imu unless every record is a
// create (the unlinks read j.inodes).
func (j *unlinks) applyTx(ctx context.Context, tx *sql.Tx) (touched, gone []Ino, err error) {
	now := nowNS()
	touched = make([]Ino, 0, 2*len(j.unl.unlRecs))
	parents := map[Ino]struct{}{}
	recs := j.unl.unlRecs
	for i := 0; i < len(recs); i++ {
		r := recs[i]
		if r.create {
			k := i + 1
			for k < len(recs) && recs[k].create {
				k++
			}
			if err := j.applyCreates(ctx, tx, recs[i:k]); err != nil {
				return nil, nil, err
			}
			for _, r := range recs[i:k] {
				if _, ok := parents[r.parent]; !ok {
					parents[r.parent] = struct{}{}
					touched = append(touched, r.parent)
				}
			}
			i = k - 1
			continue
		}
		var ino Ino
		err := j.tqrow(ctx, tx, `DELETE FROM entries WHERE parent = ? AND name = ? AND ino = ? RETURNING ino`, r.parent, r.name, r.ino).Scan(&ino)
		if errors.Is(err, sql.ErrNoRows) {
			continue // applied before a crash cut the log short
		}
		if err != nil {
			return nil, nil, fmt.Errorf("journal: unlink: %w", err)
		}
		touched = append(touched, ino)
		if _, ok := parents[r.parent]; !ok {
			parents[r.parent] = struct{}{}
			touched = append(touched, r.parent)
		}
		if j.inodes[ino] == nil {
			dropped, err := j.ns.dropEmptyInode(ctx, tx, ino)
			if err != nil {
				return nil, nil, err
			}
			if dropped {
				continue
			}
		}
		if _, err := j.texec(ctx, tx, `UPDATE inodes SET nlink = nlink - 1, ctime = ? WHERE ino = ?`, now, ino); err != nil {
			return nil, nil, fmt.Errorf("journal: unlink: %w", err)
		}
		gone = append(gone, ino)
	}
	for p := range parents {
		t, ok := j.unl.dirPendTime(p)
		if !ok {
			t = now
		}
		if _, err := j.texec(ctx, tx, `UPDATE inodes SET mtime = ?1, ctime = ?1 WHERE ino = ?2`, t, p); err != nil {
			return nil, nil, fmt.Errorf("journal: unlink: update parent: %w", err)
		}
	}
	return touched, gone, nil
}

// appliedLocked runs after the commit of applyTx's transaction: the
// records are in the database, the log is emptied, the reaper gets what
// the unlinks left. wmu held.
func (j *unlinks) appliedLocked(gone []Ino) {
	j.unl.clearPending()
	if j.unl.ulog != nil {
		if err := j.unl.ulog.Truncate(0); err != nil {
			// The next Open applies them again: each unlink finds its
			// entry gone, each create its inode number taken, and does
			// nothing.
			j.log.Warn("journal: cannot empty the unlink log", "err", err)
		}
	}
	for _, ino := range gone {
		j.it.reclaimLater(ino)
	}
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

// unlinker applies pending unlinks UnlinkDelay after the first of them.
func (j *unlinks) unlinker(ctx context.Context) {
	defer close(j.unl.unlDone)
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
		j.wmu.Lock()
		err := j.applyUnlinksLocked(ctx)
		j.wmu.Unlock()
		if err != nil && ctx.Err() == nil {
			j.log.Warn("journal: applying deferred unlinks failed; retrying with the next change", "err", err)
		}
	}
}

// The unlink log's record: 'u' (an unlink) or 'c' (a create), the
// payload's length (uvarint), the payload, the payload's CRC-32C (4
// bytes, little-endian). An unlink's payload is parent and inode as
// uvarints, then the name; a create's is parent, inode, mode, uid, gid
// and time (nanoseconds) as uvarints, then the name.
const (
	unlinkMagic = 'u'
	createMagic = 'c'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendUnlink(b []byte, r unlinkRec) []byte {
	var p [6 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(p[:], uint64(r.parent))
	n += binary.PutUvarint(p[n:], uint64(r.ino))
	magic := byte(unlinkMagic)
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
		if rest[0] != unlinkMagic && rest[0] != createMagic {
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
		parent, a := uvarint(p)
		if a <= 0 {
			return recs, n
		}
		ino, c := uvarint(p[a:])
		if c <= 0 {
			return recs, n
		}
		r := unlinkRec{parent: Ino(parent), ino: Ino(ino), create: rest[0] == createMagic}
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
				uint32(v[0])&sIFMT != sIFREG {
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

// uvarint is binary.Uvarint that refuses an encoding longer than needed,
// so that a record reads back from exactly the bytes it was written as.
func uvarint(b []byte) (uint64, int) {
	v, k := binary.Uvarint(b)
	if k > 1 && b[k-1] == 0 {
		return 0, -1
	}
	return v, k
}
