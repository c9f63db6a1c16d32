package journal

import (
	"context"
	"database/sql"
	"fmt"
)

// Seek answers lseek(2)'s SEEK_DATA (hole false) and SEEK_HOLE (hole
// true) for ino from off, at block granularity. A block is data when it
// is dirty (written and not yet cut: in memory or in the dirty file) or
// has a block map row, whatever its bytes; it is a hole only when it has
// neither (the journal stores a block of zeros as no row). The end of the
// file is a hole. ErrNoData when off is at or past the end of the file,
// or, for SEEK_DATA, when no data lies at or after off.
//
// cp, tar and rsync skip what is reported as a hole, so a wrong hole
// loses bytes in every copy: a data region here may hold zeros, a hole
// never holds anything else. The answer is taken under n.mu, the lock
// under which a dirty block becomes a block map row (flush,
// write-behind), so no block is seen as neither.
func (j *files) Seek(ctx context.Context, ino Ino, off int64, hole bool) (int64, error) {
	if err := j.checkOpen(); err != nil {
		return 0, err
	}
	n := j.it.getInode(ino)
	defer j.it.putInode(n)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := j.it.regular(ctx, n); err != nil {
		return 0, err
	}
	n.amu.Lock()
	size := n.size
	n.amu.Unlock()
	if off < 0 || off >= size {
		return 0, ErrNoData
	}
	first, end := off/j.bs, (size+j.bs-1)/j.bs // blocks [first, end) hold [off, size)
	if hole {
		h, err := nextHole(ctx, j.db, n, first, end)
		if err != nil {
			return 0, err
		}
		return max(off, min(h*j.bs, size)), nil
	}
	d, err := nextData(ctx, j.db, n, first, end)
	if err != nil {
		return 0, err
	}
	if d >= end {
		return 0, ErrNoData
	}
	return max(off, d*j.bs), nil
}

// nextData returns the first block in [first, end) that is dirty or
// mapped in db, or end when there is none. n.mu held.
func nextData(ctx context.Context, db *sql.DB, n *inode, first, end int64) (int64, error) {
	var mapped sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT min(idx) FROM blockmap WHERE ino = ? AND idx >= ? AND idx < ?`,
		n.ino, first, end).Scan(&mapped)
	if err != nil {
		return 0, fmt.Errorf("journal: read block map of inode %d: %w", n.ino, err)
	}
	d := end
	if mapped.Valid {
		d = mapped.Int64
	}
	for idx := range n.dirty {
		if idx >= first && idx < d {
			d = idx
		}
	}
	return d, nil
}

// nextHole returns the first block in [first, end) that is neither dirty
// nor mapped in db, or end when every one is data. n.mu held.
func nextHole(ctx context.Context, db *sql.DB, n *inode, first, end int64) (int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT idx FROM blockmap WHERE ino = ? AND idx >= ? AND idx < ? ORDER BY idx`,
		n.ino, first, end)
	if err != nil {
		return 0, fmt.Errorf("journal: read block map of inode %d: %w", n.ino, err)
	}
	defer rows.Close()
	h := first
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx); err != nil {
			return 0, fmt.Errorf("journal: read block map of inode %d: %w", n.ino, err)
		}
		for h < idx && hasKey(n.dirty, h) {
			h++
		}
		if h < idx {
			return h, nil // before the next mapped block, and not dirty
		}
		h = idx + 1
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("journal: read block map of inode %d: %w", n.ino, err)
	}
	for h < end && hasKey(n.dirty, h) {
		h++
	}
	return h, nil
}
