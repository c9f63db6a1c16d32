package journal

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// metaPending answers, for Status, whether a row of a file changed since
// the last metadata record shipped. mdirty has no index (every commit
// appends to it, and an index would cost each one), so instead of a scan
// of it per file (a folder's status during a large copy asked one per
// file), the keys it holds are kept in memory: read once, then only the
// rows appended since (ids grow: the shipper deletes a prefix and its
// own mlog row stays behind it), and read again from the start when the
// shipper has deleted rows. A folder's status then costs one pass over
// mdirty and a few indexed queries per file.

// pendingKeys is the in-memory copy of mdirty's keys.
type pendingKeys struct {
	mu          sync.Mutex // guards the fields below
	first, last int64      // the ids folded in: [first, last]
	keys        map[pendingKey]struct{}
	drop        *time.Timer // forgets keys after pendingKeep unused
}

// pendingKey is a row key of mdirty: its table and first key column;
// for entries (tbl 2) also the name, for the other tables "".
type pendingKey struct {
	tbl  int64
	a, b string
}

// pendingKeep is how long the keys stay in memory after their last use.
const pendingKeep = 30 * time.Second

// mdKey turns a key column of mdirty (an integer, a blob or a text) into
// a map key.
func mdKey(v any) string {
	switch v := v.(type) {
	case int64:
		return "i" + strconv.FormatInt(v, 10)
	case []byte:
		return "b" + string(v)
	case string:
		return "s" + v
	case nil:
		return ""
	}
	return fmt.Sprintf("?%v", v)
}

// metaPending reports whether a row of file ino (its inode, name, data
// map, blocks or their segments) changed since the last record shipped.
func (j *meta) metaPending(ctx context.Context, ino Ino) (bool, error) {
	if _, ok := j.unl.createdAttr(ino); ok {
		return true, nil // a deferred create: its rows are not even written
	}
	if j.unl.dirSetPending(ino) {
		return true, nil // a directory's deferred change (dirattr.go)
	}
	p := &j.pending
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := j.refreshPending(ctx, p); err != nil {
		return false, fmt.Errorf("journal: metadata state of inode %d: %w", ino, err)
	}
	if len(p.keys) == 0 {
		return false, nil
	}
	ik := mdKey(int64(ino))
	for _, tbl := range []int64{1, 3, 4, 5} { // inode, xattrs, symlink, block map
		if _, ok := p.keys[pendingKey{tbl: tbl, a: ik}]; ok {
			return true, nil
		}
	}
	found, err := j.anyPending(ctx, p, `SELECT 2, parent, name FROM entries WHERE ino = ?`, ino)
	if err != nil || found {
		return found, err
	}
	return j.anyPending(ctx, p, `SELECT DISTINCT 6, b.id, NULL FROM blockmap m JOIN blocks b ON b.id = m.block WHERE m.ino = ?1
		UNION SELECT DISTINCT 7, b.segment, NULL FROM blockmap m JOIN blocks b ON b.id = m.block WHERE m.ino = ?1 AND b.segment IS NOT NULL`, ino)
}

// anyPending reports whether a key that q (tbl, a, b rows) lists for ino
// is in p. p.mu held.
func (j *meta) anyPending(ctx context.Context, p *pendingKeys, q string, ino Ino) (bool, error) {
	rows, err := j.db.QueryContext(ctx, q, ino)
	if err != nil {
		return false, fmt.Errorf("journal: metadata state of inode %d: %w", ino, err)
	}
	defer rows.Close()
	for rows.Next() {
		var tbl int64
		var a, b any
		if err := rows.Scan(&tbl, &a, &b); err != nil {
			return false, fmt.Errorf("journal: metadata state of inode %d: %w", ino, err)
		}
		k := pendingKey{tbl: tbl, a: mdKey(a)}
		if tbl == 2 {
			k.b = mdKey(b)
		}
		if _, ok := p.keys[k]; ok {
			return true, nil
		}
	}
	return false, rows.Err()
}

// refreshPending brings p up to date with mdirty, in one read
// transaction. p.mu held.
func (j *meta) refreshPending(ctx context.Context, p *pendingKeys) error {
	if p.drop == nil {
		p.drop = time.AfterFunc(pendingKeep, func() {
			p.mu.Lock()
			p.keys = nil
			p.mu.Unlock()
		})
	} else {
		p.drop.Reset(pendingKeep)
	}
	tx, err := j.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var lo, hi sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT min(id) FROM mdirty), (SELECT max(id) FROM mdirty)`).Scan(&lo, &hi); err != nil {
		return err
	}
	if !lo.Valid {
		p.keys = nil
		return nil
	}
	if p.keys == nil || lo.Int64 != p.first || hi.Int64 < p.last {
		// First use, or the shipper deleted what it shipped: again from
		// the start.
		p.keys = map[pendingKey]struct{}{}
		p.first, p.last = lo.Int64, lo.Int64-1
	}
	if hi.Int64 == p.last {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT tbl, a, b FROM mdirty WHERE id > ? AND id <= ? AND tbl != ?`, p.last, hi.Int64, mlogTable)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var tbl int64
		var a, b any
		if err := rows.Scan(&tbl, &a, &b); err != nil {
			p.keys = nil
			return err
		}
		if name, ok := b.(string); ok && tbl == 3 && slices.Contains(j.o.LocalXattrs, name) {
			continue // this machine's choice (Options.LocalXattrs)
		}
		k := pendingKey{tbl: tbl, a: mdKey(a)}
		if tbl == 2 {
			k.b = mdKey(b)
		}
		p.keys[k] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		p.keys = nil
		return err
	}
	p.last = hi.Int64
	return nil
}
