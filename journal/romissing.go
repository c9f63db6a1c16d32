package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/meshdrive/meshdrive/remote"
)

// roMissing is what a read-only open finds of the staged blocks whose
// staging file is gone (damage outside meshdrive). A read-write open
// refuses such a journal or, with DropMissing, marks the blocks lost in
// the database; a read-only one may write nothing, so it keeps them here:
// reads of them fail with ErrLostBlock, Status and Lost count them. Set
// once by Open, read-only afterwards.
type roMissing struct {
	ids map[remote.BlockID]bool
	rep LostReport
	// waiting is the staged blocks that are there: written by an
	// earlier read-write mount, not yet on the grid, and only a
	// read-write mount uploads them (Stats counts them as queued).
	waitBlocks, waitBytes, waitFiles int64
}

// findMissingReadOnly fills j.roLost: the staged blocks that wait for a
// read-write mount's upload, and those whose staging file is gone, with a
// log line of what is missing and what to do (a function, not a method:
// the parts' method sets are bounded).
func findMissingReadOnly(ctx context.Context, j *core) error {
	rows, err := j.db.QueryContext(ctx, `SELECT id, plain_len, id IN (SELECT id FROM staged) FROM blocks WHERE state = ?`, blockStaged)
	if err != nil {
		return fmt.Errorf("journal: read staged blocks: %w", err)
	}
	var missing []remote.BlockID
	var m roMissing
	for rows.Next() {
		var b []byte
		var n int64
		var inDB bool
		if err := rows.Scan(&b, &n, &inDB); err != nil {
			rows.Close()
			return fmt.Errorf("journal: read staged blocks: %w", err)
		}
		var id remote.BlockID
		copy(id[:], b)
		if !inDB {
			if _, err := os.Stat(j.stagePath(id)); errors.Is(err, os.ErrNotExist) {
				missing = append(missing, id)
				continue
			}
		}
		m.waitBlocks++
		m.waitBytes += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("journal: read staged blocks: %w", err)
	}
	if m.waitBlocks > 0 {
		if err := j.db.QueryRowContext(ctx, `SELECT count(DISTINCT m.ino) FROM blocks b JOIN blockmap m ON m.block = b.id WHERE b.state = ?`,
			blockStaged).Scan(&m.waitFiles); err != nil {
			return fmt.Errorf("journal: read staged blocks: %w", err)
		}
	}
	j.roLost = m
	if len(missing) == 0 {
		return nil
	}
	m.ids, m.rep = map[remote.BlockID]bool{}, LostReport{Blocks: int64(len(missing))}
	files := map[Ino]bool{}
	var named []Ino
	for _, id := range missing {
		m.ids[id] = true
		rows, err := j.db.QueryContext(ctx, `SELECT DISTINCT ino FROM blockmap WHERE block = ? ORDER BY ino`, id[:])
		if err != nil {
			return fmt.Errorf("journal: files of a missing staged block: %w", err)
		}
		for rows.Next() {
			var ino Ino
			if err := rows.Scan(&ino); err != nil {
				rows.Close()
				return fmt.Errorf("journal: files of a missing staged block: %w", err)
			}
			if !files[ino] && len(named) < maxLostNamed {
				named = append(named, ino)
			}
			files[ino] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("journal: files of a missing staged block: %w", err)
		}
	}
	m.rep.Files = int64(len(files))
	if m.rep.Paths, err = inoPaths(ctx, j.db, named); err != nil {
		return fmt.Errorf("journal: name the files of missing staged blocks: %w", err)
	}
	j.roLost = m
	j.log.Warn("journal: staged blocks were never uploaded and their staging files are gone from the staging folder: "+
		"reading the files that use them fails on this read-only mount. Put the staging files back if you have a copy and mount again, "+
		"or mount read-write with --drop-missing to keep everything else (those blocks are then marked lost; "+
		"restore the files from a copy, or delete them)",
		"folder", j.stage, "blocks", len(missing), "files", len(files), "some", strings.Join(m.rep.Paths[:min(10, len(m.rep.Paths))], ", "))
	return nil
}

// roLostIn counts the blocks of ino that a read-only open found missing,
// and their plaintext bytes (0 without any).
func roLostIn(ctx context.Context, j *core, ino Ino) (blocks int, bytes int64, err error) {
	if len(j.roLost.ids) == 0 {
		return 0, 0, nil
	}
	rows, err := j.db.QueryContext(ctx, `SELECT b.id, b.plain_len FROM blockmap m JOIN blocks b ON b.id = m.block
		WHERE m.ino = ? AND b.state = ?`, ino, blockStaged)
	if err != nil {
		return 0, 0, fmt.Errorf("journal: status of inode %d: %w", ino, err)
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		var n int64
		if err := rows.Scan(&b, &n); err != nil {
			return 0, 0, fmt.Errorf("journal: status of inode %d: %w", ino, err)
		}
		var id remote.BlockID
		copy(id[:], b)
		if j.roLost.ids[id] {
			blocks++
			bytes += n
		}
	}
	return blocks, bytes, rows.Err()
}
