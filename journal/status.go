package journal

import (
	"context"
	"fmt"
)

// Status reports how safe a file's data is: local while any block is
// dirty or staged, degraded while any segment lacks shards, else durable.
func (j *Journal) Status(ctx context.Context, ino Ino) (FileStatus, error) {
	if err := j.checkOpen(); err != nil {
		return FileStatus{}, err
	}
	if _, err := j.GetAttr(ctx, ino); err != nil {
		return FileStatus{}, err
	}
	var fs FileStatus
	var pending, pendingB, degraded int64
	err := j.db.QueryRowContext(ctx, `SELECT count(*),
			coalesce(sum(b.state = ?), 0),
			coalesce(sum(CASE WHEN b.state = ? THEN b.plain_len ELSE 0 END), 0),
			coalesce(sum(CASE WHEN b.state != ? AND s.stored < s.k + s.m THEN 1 ELSE 0 END), 0)
		FROM blockmap m JOIN blocks b ON b.id = m.block LEFT JOIN segments s ON s.id = b.segment
		WHERE m.ino = ?`, blockStaged, blockStaged, blockStaged, ino).Scan(&fs.Blocks, &pending, &pendingB, &degraded)
	if err != nil {
		return fs, fmt.Errorf("journal: status of inode %d: %w", ino, err)
	}
	fs.PendingBlocks, fs.PendingBytes = int(pending), pendingB
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
		j.putInode(n)
		for _, idx := range idxs {
			ms, err := j.mapRange(ctx, ino, idx, idx)
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
	switch {
	case fs.PendingBlocks > 0:
		fs.State = StateLocal
	case degraded > 0:
		fs.State = StateDegraded
	default:
		fs.State = StateDurable
	}
	return fs, nil
}
