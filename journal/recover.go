package journal

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/meshdrive/meshdrive/remote"
)

// recover runs at Open: it discards what was never committed and rebuilds
// the upload queue from the database.
func (j *flusher) recover(ctx context.Context) error {
	// Dirty files hold only unflushed (never promised) data.
	if err := os.RemoveAll(j.dirty); err != nil {
		return fmt.Errorf("journal: clear %s: %w", j.dirty, err)
	}
	if err := os.MkdirAll(j.dirty, 0o700); err != nil {
		return fmt.Errorf("journal: create %s: %w", j.dirty, err)
	}
	// Unlinked inodes that were open when we stopped.
	var fr freed
	err := j.tx(ctx, func(tx *sql.Tx) error {
		inos, err := orphans(ctx, tx)
		if err != nil {
			return err
		}
		for _, ino := range inos {
			if err := j.dropMapFrom(ctx, tx, ino, 0, &fr); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM inodes WHERE ino = ?`, ino); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: free unlinked files: %w", err)
	}
	if len(fr.staged) > 0 {
		// Durable first, as afterFreeLocked does; the rest of recover
		// removes what is left if this fails.
		if err := j.barrier(ctx); err != nil {
			return fmt.Errorf("journal: free unlinked files: %w", err)
		}
	}
	for _, id := range fr.staged {
		os.Remove(j.stagePath(id))
	}
	// The queue: every staged block.
	rows, err := j.db.QueryContext(ctx, `SELECT id, seq, prio, sealed_len, plain_len FROM blocks WHERE state = ?`, blockStaged)
	if err != nil {
		return fmt.Errorf("journal: read upload queue: %w", err)
	}
	for rows.Next() {
		var it qitem
		var id []byte
		if err := rows.Scan(&id, &it.seq, &it.prio, &it.sealedLen, &it.plainLen); err != nil {
			rows.Close()
			return fmt.Errorf("journal: read upload queue: %w", err)
		}
		copy(it.id[:], id)
		j.queue[it.id] = it
		j.stagedB += it.sealedLen
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("journal: read upload queue: %w", err)
	}
	if err := j.db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM blocks`).Scan(&j.nextSeq); err != nil {
		return fmt.Errorf("journal: read upload queue: %w", err)
	}
	if err := j.db.QueryRowContext(ctx, `SELECT count(*) FROM segments WHERE stored < k + m`).Scan(&j.stats.RepairOwed); err != nil {
		return fmt.Errorf("journal: count segments owing repair: %w", err)
	}
	// Staging: remove temporaries and files no staged block refers to;
	// a staged block without its file is damage we must report.
	ents, err := os.ReadDir(j.stage)
	if err != nil {
		return fmt.Errorf("journal: list %s: %w", j.stage, err)
	}
	present := map[remote.BlockID]bool{}
	// Small blocks are staged in the database (table staged), and kept
	// there after their upload (kept.go).
	if err := j.kp.recover(ctx); err != nil {
		return err
	}
	srows, err := j.db.QueryContext(ctx, `SELECT s.id FROM staged s JOIN blocks b ON b.id = s.id AND b.state = ?`, blockStaged)
	if err != nil {
		return fmt.Errorf("journal: read staged blocks: %w", err)
	}
	for srows.Next() {
		var b []byte
		if err := srows.Scan(&b); err != nil {
			srows.Close()
			return fmt.Errorf("journal: read staged blocks: %w", err)
		}
		var id remote.BlockID
		copy(id[:], b)
		present[id] = true
	}
	srows.Close()
	if err := srows.Err(); err != nil {
		return fmt.Errorf("journal: read staged blocks: %w", err)
	}
	for _, e := range ents {
		var id remote.BlockID
		b, derr := hex.DecodeString(e.Name())
		if derr == nil && len(b) == len(id) {
			copy(id[:], b)
			if _, ok := j.queue[id]; ok {
				present[id] = true
				continue
			}
			if back, err := takeBackLost(ctx, j, id); err != nil {
				return err
			} else if back {
				present[id] = true
				continue
			}
		}
		if err := os.Remove(j.stage + "/" + e.Name()); err != nil {
			return fmt.Errorf("journal: remove stale staging file %s: %w", e.Name(), err)
		}
	}
	var missing []string
	var missingIDs []remote.BlockID
	for id := range j.queue {
		if !present[id] {
			missing = append(missing, id.String())
			missingIDs = append(missingIDs, id)
		}
	}
	if len(missing) > 0 && !j.o.DropMissing {
		return fmt.Errorf("journal: %d staged blocks are missing from %s (first %s): the local staging area was damaged "+
			"outside meshdrive; these blocks were never uploaded, so files that use them cannot be read back. "+
			"Put the files back if you have a copy of that folder; else mount with --drop-missing to keep everything else "+
			"(reading those blocks then fails, and status PATH names them lost), or start from what the grid holds: "+
			"meshdrive recover --node URL --data NEWDIR (changes not yet on the grid are lost; this data dir is left as it is)",
			len(missing), j.stage, strings.Join(missing[:min(3, len(missing))], ", "))
	}
	if len(missing) > 0 {
		if err := dropMissing(ctx, j, missingIDs); err != nil {
			return err
		}
	}
	return syncDir(j.stage)
}

// dropMissing marks the staged blocks whose staging file is gone lost
// (Options.DropMissing), durably, takes them out of the upload queue and
// says which files they belong to. A function of recover's, not a
// method: flusher's method set is at its bound.
func dropMissing(ctx context.Context, j *flusher, missing []remote.BlockID) error {
	var files int64
	var paths []string
	err := j.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range missing {
			if _, err := tx.ExecContext(ctx, `UPDATE blocks SET state = ? WHERE id = ? AND state = ?`, blockLost, id[:], blockStaged); err != nil {
				return err
			}
		}
		var err error
		files, paths, err = lostFiles(ctx, tx)
		return err
	})
	if err == nil {
		err = j.barrier(ctx)
	}
	if err != nil {
		return fmt.Errorf("journal: mark the blocks missing from %s lost: %w", j.stage, err)
	}
	for _, id := range missing {
		if it, ok := j.queue[id]; ok {
			j.stagedB -= it.sealedLen
			delete(j.queue, id)
		}
	}
	j.log.Warn("journal: staged blocks were missing from the staging folder and are now lost: reading them fails; "+
		"restore the files that use them from a copy (writing the same bytes again brings the blocks back), or from an older version "+
		"in the mount's .snapshots folder, or delete them; "+
		"staging files put back later are taken at the next mount",
		"blocks", len(missing), "files", files, "some", strings.Join(paths[:min(10, len(paths))], ", "))
	return nil
}

// takeBackLost stages lost block id again when its staging file is in the
// staging folder (put back after a mount with --drop-missing, as the
// refusal asks) and opens as that block, and reports whether it did; a
// file that is not one is left to the caller, which removes it. Part of
// recover.
func takeBackLost(ctx context.Context, j *flusher, id remote.BlockID) (bool, error) {
	var one int
	err := j.db.QueryRowContext(ctx, `SELECT 1 FROM blocks WHERE id = ? AND state = ?`, id[:], blockLost).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("journal: look up a lost block: %w", err)
	}
	name := j.stagePath(id)
	sealed, err := os.ReadFile(name)
	if err != nil || len(sealed) <= j.inlineMax() {
		return false, nil // a small block's bytes live in the database
	}
	plain, err := j.seal.Open(nil, id, sealed)
	if err != nil {
		j.log.Warn("journal: a staging file named by a lost block does not open as that block; removed", "id", id, "err", err)
		return false, nil
	}
	f, err := os.Open(name)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = syncDir(j.stage)
	}
	if err != nil {
		return false, fmt.Errorf("journal: take back lost block %s: %w", id, err)
	}
	it := qitem{id: id, seq: j.nextSeq, prio: 1, sealedLen: int64(len(sealed)), plainLen: int64(len(plain))}
	err = j.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE blocks SET state = ?, plain_len = ?, sealed_len = ?, prio = ?, seq = ?,
			segment = NULL, seg_off = NULL, seg_len = NULL WHERE id = ? AND state = ?`,
			blockStaged, it.plainLen, it.sealedLen, it.prio, it.seq, id[:], blockLost)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("journal: take back lost block %s: %w", id, err)
	}
	j.nextSeq++
	j.queue[id] = it
	j.stagedB += it.sealedLen
	j.log.Info("journal: a lost block's staging file is back: the block is staged again", "id", id)
	return true, nil
}
