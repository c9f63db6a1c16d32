package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/meshdrive/meshdrive/remote"
)

// SegmentRow is one segment the drive stores on the grid: a data segment
// (table segments) or a metadata record's (table mlog, column seg).
type SegmentRow struct {
	Info *remote.SegmentInfo
	// MetaSeq is the metadata record's seq; 0 for a data segment.
	MetaSeq uint64
}

// Segments lists every segment the drive keeps on the grid: data segments,
// then the segments of the metadata records not deleted from the grid
// (every mlog row: a deleted snapshot's record stays on the grid while a
// chain needs it, and pruneMeta removes the row with the segment).
func (j *gridView) Segments(ctx context.Context) ([]SegmentRow, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	var out []SegmentRow
	rows, err := j.db.QueryContext(ctx, `SELECT id, k, m, size, shard_size, chunk_size, nodes FROM segments`)
	if err != nil {
		return nil, fmt.Errorf("journal: list segments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		s := &remote.SegmentInfo{}
		var id []byte
		var nodes string
		if err := rows.Scan(&id, &s.K, &s.M, &s.Size, &s.ShardSize, &s.ChunkSize, &nodes); err != nil {
			return nil, fmt.Errorf("journal: list segments: %w", err)
		}
		copy(s.ID[:], id)
		if err := json.Unmarshal([]byte(nodes), &s.Nodes); err != nil {
			return nil, damagedSegment(fmt.Errorf("segment %s: node list is not a JSON list of names: %w", s.ID, err))
		}
		if err := s.Check(); err != nil {
			return nil, damagedSegment(err)
		}
		out = append(out, SegmentRow{Info: s})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: list segments: %w", err)
	}
	mrows, err := j.db.QueryContext(ctx, `SELECT seq, seg FROM mlog ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("journal: list metadata records: %w", err)
	}
	defer mrows.Close()
	for mrows.Next() {
		var seq uint64
		var b []byte
		if err := mrows.Scan(&seq, &b); err != nil {
			return nil, fmt.Errorf("journal: list metadata records: %w", err)
		}
		s, _, err := remote.DecodeSegmentInfo(b)
		if err != nil {
			return nil, fmt.Errorf("journal: metadata record %d names a bad segment: %w", seq, err)
		}
		out = append(out, SegmentRow{Info: s, MetaSeq: seq})
	}
	return out, mrows.Err()
}

// FileSegments maps every regular file with data on the grid to the
// segments holding its blocks.
func (j *gridView) FileSegments(ctx context.Context) (map[Ino][]remote.SegmentID, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := j.db.QueryContext(ctx, `SELECT DISTINCT m.ino, b.segment FROM blockmap m JOIN blocks b ON b.id = m.block
		WHERE b.segment IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("journal: segments of files: %w", err)
	}
	defer rows.Close()
	out := map[Ino][]remote.SegmentID{}
	for rows.Next() {
		var ino Ino
		var raw []byte
		if err := rows.Scan(&ino, &raw); err != nil {
			return nil, fmt.Errorf("journal: segments of files: %w", err)
		}
		var id remote.SegmentID
		copy(id[:], raw)
		out[ino] = append(out[ino], id)
	}
	return out, rows.Err()
}

// ErrSegmentGone: UpdateSegment found no row to update; the segment was
// deleted (a metadata record the retention dropped) while it was repaired.
var ErrSegmentGone = errors.New("segment no longer in the journal")

// UpdateSegment records a segment's new node list (after a repair or a
// move) in one durable commit, so the shards it replaced may be deleted
// once it returns. The update of a segments or mlog row reaches the grid's
// copy of the metadata by itself (the triggers note it). It fails with
// ErrSegmentGone when the row was deleted meanwhile.
func (j *gridView) UpdateSegment(ctx context.Context, info *remote.SegmentInfo, metaSeq uint64) error {
	if err := j.checkWrite(); err != nil {
		return err
	}
	nodes, err := json.Marshal(info.Nodes)
	if err != nil {
		return err
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.scopeLocked(scopeNone)
	var owed int64
	err = j.durableTxLocked(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if metaSeq == 0 {
			res, err = tx.ExecContext(ctx, `UPDATE segments SET nodes = ?, stored = ? WHERE id = ?`, string(nodes), info.Stored(), info.ID[:])
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE mlog SET seg = ? WHERE seq = ?`, remote.AppendSegmentInfo(nil, info), metaSeq)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrSegmentGone
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM segments WHERE stored < k + m`).Scan(&owed)
	})
	if err != nil {
		if errors.Is(err, ErrSegmentGone) {
			return err
		}
		return fmt.Errorf("journal: record the new nodes of segment %s: %w", info.ID, err)
	}
	if metaSeq == 0 {
		j.segMu.Lock()
		if _, ok := j.segs[info.ID]; ok {
			j.segs[info.ID] = info // readers holding the old one keep it
		}
		j.segMu.Unlock()
	}
	j.qmu.Lock()
	j.stats.RepairOwed = owed
	j.qmu.Unlock()
	return nil
}

// Foreground reports whether an application waits for the grid or a big
// flush runs: background work (repair) holds back while it does.
func (j *gridView) Foreground() bool {
	j.qmu.Lock()
	uploading := j.stats.InFlightBytes > 0
	j.qmu.Unlock()
	return j.appReads.Load() > 0 || j.bigFlushes.Load() > 0 || uploading
}
