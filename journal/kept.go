package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/meshdrive/meshdrive/remote"
)

// Small blocks written here stay here. A block whose sealed form is
// small enough is staged as a row of table staged, not as a file
// (stagedInlineMax), so the uploader has no file to hand to the disk
// cache (Options.Uploaded) once it is on the grid. With
// Options.KeepSmall set, the row stays instead of being deleted by the
// commit that places the block in its segment: a small file written here
// is then read from the database after a remount, not fetched back from
// the grid (a local query and an Open, against a grid read and a new file
// in the disk cache; and it reads with the grid out of reach).
//
// A kept row is a copy: the block's state says uploaded (or garbage), and
// its bytes are on the grid. The sealed bytes are authenticated with the
// block id, so a kept row can only ever open to the block's own
// plaintext; one that fails to open is dropped (dropLater) and the grid
// read as before. Rows are kept up to KeepSmall sealed bytes (keptB
// counts them); the commit that keeps more deletes the oldest (staged
// rows in the order they were made). Garbage collection deletes the kept rows of a
// segment's blocks with them, and Open those of blocks that are no longer
// live (stale rows of a crash, or of garbage).

// keptMax is how many kept rows one eviction pass looks at: enough for a
// segment of small blocks.
const keptMax = 4096

// evictTx deletes the oldest kept rows until over bytes are freed (or
// keptMax rows were looked at) and returns the bytes freed. wmu held, in
// a transaction.
func (j *keeper) evictTx(ctx context.Context, tx *sql.Tx, over int64) (int64, error) {
	if over <= 0 {
		return 0, nil
	}
	rows, err := j.tquery(ctx, tx, `SELECT s.rowid, b.sealed_len FROM staged s JOIN blocks b ON b.id = s.id
		WHERE b.state != ? ORDER BY s.rowid LIMIT ?`, blockStaged, keptMax)
	if err != nil {
		return 0, fmt.Errorf("evict kept small blocks: %w", err)
	}
	var drop []int64
	var freed int64
	for rows.Next() && freed < over {
		var rowid, n int64
		if err := rows.Scan(&rowid, &n); err != nil {
			rows.Close()
			return 0, fmt.Errorf("evict kept small blocks: %w", err)
		}
		drop = append(drop, rowid)
		freed += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("evict kept small blocks: %w", err)
	}
	for _, rowid := range drop {
		if _, err := j.texec(ctx, tx, `DELETE FROM staged WHERE rowid = ?`, rowid); err != nil {
			return 0, fmt.Errorf("evict kept small blocks: %w", err)
		}
	}
	return freed, nil
}

// dropTx deletes the kept rows of segment seg's garbage blocks,
// before garbage collection deletes the blocks, and returns their sealed
// bytes. wmu held, in a transaction.
func (j *keeper) dropTx(ctx context.Context, tx *sql.Tx, seg remote.SegmentID) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(b.sealed_len), 0) FROM blocks b JOIN staged s ON s.id = b.id
		WHERE b.segment = ? AND b.state = ?`, seg[:], blockGarbage).Scan(&n)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM staged WHERE id IN (SELECT id FROM blocks WHERE segment = ? AND state = ?)`,
		seg[:], blockGarbage)
	return n, err
}

// recover deletes the staged rows of blocks that are neither staged
// nor uploaded (and all kept rows when KeepSmall is 0), then counts the
// kept ones. Part of Open's recovery.
func (j *keeper) recover(ctx context.Context) error {
	q := `DELETE FROM staged WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.id = staged.id AND b.state IN (?, ?))`
	args := []any{blockStaged, blockUploaded}
	if j.o.KeepSmall <= 0 {
		args[1] = blockStaged
	}
	if _, err := j.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("journal: clear stale staged rows: %w", err)
	}
	err := j.db.QueryRowContext(ctx, `SELECT coalesce(sum(b.sealed_len), 0) FROM staged s JOIN blocks b ON b.id = s.id
		WHERE b.state != ?`, blockStaged).Scan(&j.keptB)
	if err != nil {
		return fmt.Errorf("journal: count kept small blocks: %w", err)
	}
	if over := j.keptB - j.o.KeepSmall; over > 0 && j.o.KeepSmall > 0 {
		// KeepSmall was lowered since the last run.
		j.wmu.Lock()
		defer j.wmu.Unlock()
		var freed int64
		err := j.txLocked(ctx, func(tx *sql.Tx) error {
			var err error
			freed, err = j.evictTx(ctx, tx, over)
			return err
		})
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.keptB -= freed
	}
	return nil
}

// mayBe reports whether uploaded block m is small enough to have a
// kept row: its reads go to blockPlain, which looks there first.
func (j *keeper) mayBe(m mapped) bool {
	return j.o.KeepSmall > 0 && m.len.Valid && m.len.Int64 <= int64(j.fl.inlineMax())
}

// DropKept deletes every kept row (cache clear: the local copies of
// uploaded blocks go, and reads fetch them from the grid again).
func (j *keeper) DropKept(ctx context.Context) error {
	if err := j.checkWrite(); err != nil {
		return err
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.scopeLocked(scopeNone)
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		_, err := j.texec(ctx, tx, `DELETE FROM staged WHERE EXISTS (SELECT 1 FROM blocks b WHERE b.id = staged.id AND b.state != ?)`, blockStaged)
		return err
	})
	if err != nil {
		return fmt.Errorf("journal: drop kept small blocks: %w", err)
	}
	j.keptB = 0
	return nil
}

// plain returns the plaintext of uploaded block m from its kept row,
// or false when it has none (or the row does not open: the grid has the
// block). n.mu held.
func (j *keeper) plain(ctx context.Context, m mapped) ([]byte, bool) {
	if j.o.Kept != nil {
		if !m.len.Valid || m.len.Int64 > int64(j.fl.inlineMax()) {
			return nil, false
		}
		return j.o.Kept(ctx, m.id)
	}
	if !j.mayBe(m) {
		return nil, false
	}
	return j.byID(ctx, m.id)
}

// byID returns the plaintext of block id from its row of table staged,
// or false when it has none (or the row does not open). It takes no
// lock: a snapshot's journal calls it (Options.Kept) with its own
// inode's lock held. It counts the read here, not in plain, so that a
// snapshot's reads of the drive's kept rows count in the drive's
// journal, the one status reads.
func (j *keeper) byID(ctx context.Context, id remote.BlockID) ([]byte, bool) {
	var sealed []byte
	err := j.qrow(ctx, `SELECT sealed FROM staged WHERE id = ?`, id[:]).Scan(&sealed)
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			j.log.Debug("journal: read kept small block; reading it from the grid", "id", id, "err", err)
		}
		return nil, false
	}
	plain, err := j.seal.Open(nil, id, sealed)
	if err != nil {
		j.log.Warn("journal: a small block kept on local disk fails to open (local disk corrupted it?); dropping the copy and reading the block from the grid",
			"id", id, "err", err)
		// Not here: n.mu is held, and the commit may wait for a flush.
		j.dropLater(id, int64(len(sealed)))
		return nil, false
	}
	j.keptReads.Add(1)
	return plain, true
}

// dropLater deletes block id's kept row, of n sealed bytes, on a
// goroutine of its own (a copy that failed to open). Only a row of a block
// still uploaded or garbage: a block staged anew under that id meanwhile
// keeps its row.
func (j *keeper) dropLater(id remote.BlockID, n int64) {
	if j.checkWrite() != nil {
		return
	}
	go func() {
		ctx := context.Background()
		j.wmu.Lock()
		defer j.wmu.Unlock()
		if j.closed.Load() {
			return
		}
		var gone int64
		j.scopeLocked(scopeNone)
		err := j.txLocked(ctx, func(tx *sql.Tx) error {
			res, err := j.texec(ctx, tx, `DELETE FROM staged WHERE id = ?1 AND EXISTS
				(SELECT 1 FROM blocks b WHERE b.id = ?1 AND b.state != ?2)`, id[:], blockStaged)
			if err != nil {
				return err
			}
			if k, err := res.RowsAffected(); err == nil && k > 0 {
				gone = n
			}
			return nil
		})
		if err != nil {
			j.log.Warn("journal: drop a damaged kept block", "id", id, "err", err)
			return
		}
		j.keptB -= gone
	}()
}
