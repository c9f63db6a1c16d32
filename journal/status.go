package journal

import (
	"context"
	"fmt"

	"github.com/meshdrive/meshdrive/remote"
)

// Status reports how safe a file's data is: lost while any block cannot
// be read (ErrLostBlock), local while any block is
// dirty or staged or its metadata has not reached the grid (with a
// metadata grid), degraded while any segment lacks shards, else durable.
func (j *gridView) Status(ctx context.Context, ino Ino) (FileStatus, error) {
	if err := j.checkOpen(); err != nil {
		return FileStatus{}, err
	}
	if _, err := j.ns.GetAttr(ctx, ino); err != nil {
		return FileStatus{}, err
	}
	var fs FileStatus
	var pending, pendingB, degraded, lost int64
	err := j.db.QueryRowContext(ctx, `SELECT count(*),
			coalesce(sum(b.state = ?1), 0),
			coalesce(sum(CASE WHEN b.state = ?1 THEN b.plain_len ELSE 0 END), 0),
			coalesce(sum(CASE WHEN b.state != ?1 AND s.stored < s.k + s.m THEN 1 ELSE 0 END), 0),
			coalesce(sum(b.state = ?2), 0)
		FROM blockmap m JOIN blocks b ON b.id = m.block LEFT JOIN segments s ON s.id = b.segment
		WHERE m.ino = ?3`, blockStaged, blockLost, ino).Scan(&fs.Blocks, &pending, &pendingB, &degraded, &lost)
	if err != nil {
		return fs, fmt.Errorf("journal: status of inode %d: %w", ino, err)
	}
	fs.PendingBlocks, fs.PendingBytes, fs.LostBlocks = int(pending), pendingB, int(lost)
	// Staged blocks a read-only open found without their staging file
	// wait for nothing: they are lost.
	roBlocks, roBytes, err := roLostIn(ctx, j.core, ino)
	if err != nil {
		return fs, err
	}
	fs.PendingBlocks -= roBlocks
	fs.PendingBytes -= roBytes
	fs.LostBlocks += roBlocks
	// Dirty blocks are pending too.
	j.imu.Lock()
	n := j.inodes[ino]
	if n != nil {
		n.refs++
	}
	j.imu.Unlock()
	if n != nil {
		n.mu.Lock()
		n.amu.Lock()
		size := n.size
		n.amu.Unlock()
		var idxs []int64
		for idx := range n.dirty {
			idxs = append(idxs, idx)
		}
		n.mu.Unlock()
		j.it.putInode(n)
		for _, idx := range idxs {
			ms, err := j.fd.mapRange(ctx, ino, idx, idx)
			if err != nil {
				return fs, err
			}
			if len(ms) == 0 {
				fs.Blocks++
				fs.PendingBlocks++
			} else if ms[0].state != blockStaged {
				fs.PendingBlocks++
			}
			fs.PendingBytes += max(0, min(j.bs, size-idx*j.bs))
		}
	}
	if j.ms != nil {
		p, err := j.md.metaPending(ctx, ino)
		if err != nil {
			return fs, err
		}
		fs.MetaPending = p
	}
	switch {
	case fs.LostBlocks > 0:
		fs.State = StateLost
	case fs.PendingBlocks > 0 || fs.MetaPending:
		fs.State = StateLocal
	case degraded > 0:
		fs.State = StateDegraded
	default:
		fs.State = StateDurable
	}
	return fs, nil
}

// GridBlock is one block of a file whose data is on the grid: reading it
// needs the cache (or a fetch).
type GridBlock struct {
	ID   remote.BlockID
	Len  int64 // plaintext bytes
	Kept bool  // a copy is kept in the journal (Options.KeepSmall)
}

// GridBlocks returns the blocks of a file that are on the grid, in file
// order (a block used twice appears twice). Blocks still dirty or staged
// live in the journal and are not listed, nor are lost ones (nowhere).
// Meant for status reports: a file being written meanwhile may list a
// block its dirty data is replacing.
func (j *gridView) GridBlocks(ctx context.Context, ino Ino) ([]GridBlock, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := j.db.QueryContext(ctx, `SELECT b.id, b.plain_len, EXISTS(SELECT 1 FROM staged s WHERE s.id = b.id)
		FROM blockmap m JOIN blocks b ON b.id = m.block
		WHERE m.ino = ? AND b.state NOT IN (?, ?) ORDER BY m.idx`, ino, blockStaged, blockLost)
	if err != nil {
		return nil, fmt.Errorf("journal: grid blocks of inode %d: %w", ino, err)
	}
	defer rows.Close()
	var out []GridBlock
	for rows.Next() {
		var id []byte
		var b GridBlock
		if err := rows.Scan(&id, &b.Len, &b.Kept); err != nil {
			return nil, fmt.Errorf("journal: grid blocks of inode %d: %w", ino, err)
		}
		copy(b.ID[:], id)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: grid blocks of inode %d: %w", ino, err)
	}
	return out, nil
}

// GridRefs returns where the blocks of a file that are on the grid lie, in
// file order, each block once: what a reader (or a pin) fetches. Like
// GridBlocks it is a report: a file written meanwhile may list a block its
// dirty data is replacing.
func (j *gridView) GridRefs(ctx context.Context, ino Ino) ([]remote.BlockRef, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := j.db.QueryContext(ctx, `SELECT b.id, b.segment, b.seg_off, b.seg_len
		FROM blockmap m JOIN blocks b ON b.id = m.block
		WHERE m.ino = ? AND b.state IN (?, ?) AND b.segment IS NOT NULL ORDER BY m.idx`, ino, blockUploaded, blockGarbage)
	if err != nil {
		return nil, fmt.Errorf("journal: block places of inode %d: %w", ino, err)
	}
	type place struct {
		id       remote.BlockID
		seg      []byte
		off, len int64
	}
	var ps []place
	seen := map[remote.BlockID]bool{}
	for rows.Next() {
		var p place
		var id []byte
		if err := rows.Scan(&id, &p.seg, &p.off, &p.len); err != nil {
			rows.Close()
			return nil, fmt.Errorf("journal: block places of inode %d: %w", ino, err)
		}
		copy(p.id[:], id)
		if !seen[p.id] {
			seen[p.id] = true
			ps = append(ps, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: block places of inode %d: %w", ino, err)
	}
	out := make([]remote.BlockRef, 0, len(ps))
	for _, p := range ps {
		seg, err := j.fd.segment(ctx, p.seg)
		if err != nil {
			return nil, err
		}
		out = append(out, remote.BlockRef{ID: p.id, Seg: seg, Offset: p.off, Length: p.len})
	}
	return out, nil
}

// XattrInodes returns the inodes that have the extended attribute name
// (pins are one: fs.PinXattr).
func (j *gridView) XattrInodes(ctx context.Context, name string) ([]Ino, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := j.db.QueryContext(ctx, `SELECT ino FROM xattrs WHERE name = ?`, name)
	if err != nil {
		return nil, fmt.Errorf("journal: inodes with xattr %s: %w", name, err)
	}
	defer rows.Close()
	var out []Ino
	for rows.Next() {
		var ino Ino
		if err := rows.Scan(&ino); err != nil {
			return nil, fmt.Errorf("journal: inodes with xattr %s: %w", name, err)
		}
		out = append(out, ino)
	}
	return out, rows.Err()
}
