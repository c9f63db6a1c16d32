package journal

import (
	"context"
	"database/sql"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// Upload order and the metadata log. The uploader ships urgent blocks
// (small files', fsync'd files': prio 0) before bulk ones (upload.go,
// pack), and the background metadata shipper does not make a small file
// saved during a 2 GiB copy wait for the copy: its record leaves out the
// rows of the files whose blocks are still queued, and a later record
// ships them. What is left out must leave the grid's copy consistent,
// only older:
//
//   - every row of an inode that has a queued block (its inode row, map,
//     xattrs, symlink) and every name that points to it now are left out:
//     a new file is not on the grid yet; a file rewritten in place keeps
//     its older version there, whole;
//   - no block is marked freed by such a record (the older version's
//     blocks are garbage locally but still named on the grid: garbage
//     collection must keep them);
//   - when the window removes a name (unlink, rename) or an inode, or
//     re-points a name (removes and makes it again, exchanges it),
//     nothing is left out: a removed name may be the old name of a file
//     whose new name would be left out (the grid would lose the file),
//     leaving the removal out while shipping a new name would give a file
//     two names, and a removed inode or one that lost a link may be the
//     old target of a name that now points to a queued file (a rename
//     over NAME: the grid would keep the name pointing at an inode with
//     no link, freed at the next open, or at one it also names
//     elsewhere).
//     Such a record waits for the queued blocks, as every record did
//     before (an editor's save by rename during a copy waits for it).
//
// What is left out goes back into mdirty with new ids, so status shows
// those files as not yet grid-durable, and SyncGrid, snapshots and
// ShipMeta never leave anything out.

// kickGap is the least time between two records that fsyncs asked for.
const kickGap = time.Second

// mkey is one key noted in mdirty.
type mkey struct {
	tbl  uint8
	a, b any
}

// deferral is what a record leaves for later: inodes (nil: nothing is
// left out) and the keys left out; shipped counts the others, so a record
// that would carry nothing but its own log rows is not written.
type deferral struct {
	inodes  map[int64]bool
	keys    []mkey
	shipped int // keys of the record, mlog's own left aside
}

// deferredInodes returns the inodes whose rows a delta record up to maxID
// leaves out: those with a block in the upload queue. nil when there is
// none, or when the window removes a name (then nothing is left out).
func deferredInodes(ctx context.Context, tx *sql.Tx, maxID int64) (map[int64]bool, error) {
	// A removed name may have been made again in the window (NAME.tmp
	// renamed over NAME, then NAME.tmp again): the names as they are now
	// do not show it, but the inode it left is gone. So an inode removed
	// in the window counts as a removal too: the record would otherwise
	// ship the old inode's removal while it leaves out the name that now
	// points to a queued one, and the grid would lose the name.
	//
	// Nor do they show a name that now points elsewhere: one removed and
	// made again (a rename over it, an unlink and a create, a rename away
	// and a create) is noted more than once in the window, and so is one
	// an exchange re-pointed (it notes both names again: namespace.go).
	// The grid's copy of such a name may lead to another inode, whose own
	// change (its new name, its lower link count) the record would ship
	// while it leaves the name out: the grid would name that inode twice
	// with one link, or with none, or lose the name's old target. So a
	// name noted twice counts as a removal too. (The names a record left
	// out are noted once again, not twice: requeue.)
	var removes bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM mdirty d WHERE d.tbl = 2 AND d.id <= ?1
		AND NOT EXISTS(SELECT 1 FROM entries e WHERE e.parent = d.a AND e.name = d.b))
		OR EXISTS(SELECT 1 FROM mdirty d WHERE d.tbl = 1 AND d.id <= ?1
		AND NOT EXISTS(SELECT 1 FROM inodes i WHERE i.ino = d.a))
		OR EXISTS(SELECT 1 FROM mdirty d WHERE d.tbl = 2 AND d.id <= ?1 GROUP BY d.a, d.b HAVING count(*) > 1)`, maxID).Scan(&removes); err != nil {
		return nil, err
	}
	if removes {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT m.ino FROM blockmap m JOIN blocks b ON b.id = m.block WHERE b.state = ?`, blockStaged)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[int64]bool
	for rows.Next() {
		var ino int64
		if err := rows.Scan(&ino); err != nil {
			return nil, err
		}
		if out == nil {
			out = map[int64]bool{}
		}
		out[ino] = true
	}
	return out, rows.Err()
}

// leaves reports whether key k, whose row is now cur (nil: deleted), is
// left out of the record.
func (d *deferral) leaves(k mkey, cur []any) bool {
	if d.inodes == nil {
		return false
	}
	switch k.tbl {
	case 1, 3, 4, 5: // inodes, xattrs, symlinks, blockmap: keyed by ino
		ino, ok := k.a.(int64)
		return ok && d.inodes[ino]
	case 2: // entries: by the inode they name now
		if cur == nil {
			return false // a removal: deferredInodes let none through
		}
		ino, ok := cur[2].(int64)
		return ok && d.inodes[ino]
	}
	return false
}

// requeue notes the keys left out in mdirty again, for a later record.
func (d *deferral) requeue(ctx context.Context, tx *sql.Tx) error {
	for _, k := range d.keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO mdirty(tbl, a, b) VALUES(?, ?, ?)`, k.tbl, k.a, k.b); err != nil {
			return err
		}
	}
	return nil
}

func headSeq(h *headRec) uint64 {
	if h == nil {
		return 0
	}
	return h.seq
}

// waitUrgent returns once no urgent block (prio 0) queued before the call
// waits for upload, asking the uploader to ship a partial segment.
func (j *meta) waitUrgent(ctx context.Context) error {
	j.qmu.Lock()
	target := j.nextSeq
	j.qmu.Unlock()
	return j.up.waitQueue(ctx, func() bool {
		for _, it := range j.queue {
			if it.prio == 0 && it.seq < target {
				return true
			}
		}
		return false
	})
}

// prioritize makes the queued blocks of ino urgent (an fsync asked for
// them) and asks the metadata shipper for a record soon.
func (j *meta) prioritize(ctx context.Context, ino Ino) {
	if j.ms != nil {
		select {
		case j.ms.kick <- struct{}{}:
		default:
		}
	}
	rows, err := j.db.QueryContext(ctx, `SELECT m.block FROM blockmap m JOIN blocks b ON b.id = m.block
		WHERE m.ino = ? AND b.state = ?`, ino, blockStaged)
	if err != nil {
		return // only an ordering hint
	}
	var ids []remote.BlockID
	for rows.Next() {
		var raw []byte
		if rows.Scan(&raw) != nil {
			break
		}
		var id remote.BlockID
		copy(id[:], raw)
		ids = append(ids, id)
	}
	rows.Close()
	j.qmu.Lock()
	defer j.qmu.Unlock()
	for _, id := range ids {
		if it, ok := j.queue[id]; ok && it.prio != 0 {
			it.prio = 0
			j.queue[id] = it
		}
	}
}
