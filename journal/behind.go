package journal

import (
	"context"
	"database/sql"
	"os"
	"sync"
	"time"
)

// Write-behind: a file written sequentially has the blocks its writer has
// moved past cut, sealed, staged and committed in the background while
// the writer goes on, so the fsync (or close) at the end finds only the
// last blocks dirty instead of the whole file. At most behindWorkers
// write-behind goroutines run in the journal, one per queued block of a
// file at most (blocks that find no free goroutine wait for their flush,
// as before). A goroutine borrows an in-memory block's buffer (or reads
// a block from the dirty file) under n.mu, hashes, seals and stages it
// without n.mu (the writer keeps writing; a write to a lent block goes
// to a copy, dirtyFile.lend), then takes n.mu again and commits it only
// if it did not change meanwhile (its markDirty generation is the one it read); otherwise the
// cut is dropped and the block stays dirty.
//
// A write-behind commit is an ordinary one (synchronous=NORMAL: it
// survives a killed process, and a power cut once a later fsync or the
// group commit commits durably). It records the block and raises the file's size in the
// database to cover it, and leaves times to the file's flush. After a
// crash before that flush the file may show some of its unflushed blocks
// and not others (never bytes it was not given): unflushed data was never
// promised.

// behindWorkers bounds the write-behind goroutines of one journal: one
// sealing while the writer's requests use the other core of a small
// machine is the point; more would compete with the writer.
const behindWorkers = 2

// writeBehind notes that a sequential writer of n has moved past block
// idx, and starts a write-behind goroutine for n when fewer run than
// blocks wait and a slot is free. n.mu held.
func (j *writeBehind) writeBehind(n *inode, idx int64) {
	if !hasKey(n.dirty, idx) || j.o.ReadOnly {
		return
	}
	n.behindQ = append(n.behindQ, idx)
	if n.behindN >= len(n.behindQ) {
		return // a running goroutine will take idx
	}
	select {
	case j.behindSem <- struct{}{}:
	default:
		if n.behindN == 0 {
			n.behindQ = n.behindQ[:0] // no worker free: the flush cuts them
		}
		return
	}
	j.behindMu.Lock()
	if j.closed.Load() {
		j.behindMu.Unlock()
		<-j.behindSem
		if n.behindN == 0 {
			n.behindQ = n.behindQ[:0]
		}
		return
	}
	j.behindWG.Add(1)
	j.behindMu.Unlock()
	if n.behindN == 0 {
		n.behindIdle = make(chan struct{})
	}
	n.behindN++
	j.imu.Lock()
	n.refs++
	j.imu.Unlock()
	j.bigFlushes.Add(1) // the uploader holds back while this runs
	go j.behind(n)
}

// behind is one of n's write-behind goroutines: it cuts and commits
// blocks of n.behindQ until it is empty.
func (j *writeBehind) behind(n *inode) {
	ctx := context.Background()
	defer func() {
		j.behindEnd.Store(time.Now().UnixNano())
		j.bigFlushes.Add(-1)
		j.it.putInode(n)
		j.behindWG.Done()
	}()
	n.mu.Lock()
	for {
		idx, gen, ok := n.nextBehind()
		if !ok || j.closed.Load() || n.f == nil {
			// The slot goes back under n.mu, before a writer waiting
			// for behindIdle (waitMemBlock) wakes: the block it moves
			// past next must find the slot free, or it would be left
			// to the flush.
			<-j.behindSem
			if n.behindN--; n.behindN == 0 {
				n.behindQ = n.behindQ[:0]
				close(n.behindIdle)
				n.behindIdle = nil
			}
			n.mu.Unlock()
			return
		}
		n.amu.Lock()
		size := n.size
		n.amu.Unlock()
		l := min(j.bs, size-idx*j.bs)
		if l <= 0 {
			continue // truncated away meanwhile
		}
		// An in-memory block is sealed from its own buffer (lent until
		// the commit below: the plaintext of a deduplicated cut is used
		// there); a block in the dirty file is read into a pooled one.
		f := n.f
		plain := f.lend(idx, int(l))
		var pb *[]byte
		var err error
		if plain == nil {
			pb = plainBufs.Get().(*[]byte)
			if int64(cap(*pb)) < l {
				*pb = make([]byte, j.bs)
			}
			plain = (*pb)[:l]
			err = f.readFull(plain, idx*j.bs)
		}
		n.mu.Unlock()
		var c cut
		if err == nil {
			c, err = j.fl.cutPlain(ctx, idx, plain, true, false)
		}
		if pb != nil && c.plain == nil {
			plainBufs.Put(pb) // sealed and staged: the bytes are not needed
		}
		n.mu.Lock()
		if err == nil && n.dirty[idx] == gen && n.f != nil {
			err = j.commitBehind(ctx, n, &c, min(size, (idx+1)*j.bs))
		}
		if pb == nil {
			f.giveBack(idx, plain[:0:cap(plain)])
		}
		if c.tmp != "" {
			os.Remove(c.tmp) // not committed, or deduplicated after all
		}
		if c.staged != 0 {
			j.fl.dropOwnStaged(&c) // likewise
		}
		if err != nil {
			// The block stays dirty: its flush will try again, and
			// report what fails.
			j.log.Debug("journal: write-behind of a block failed; its flush will retry", "ino", n.ino, "idx", idx, "err", err)
		}
	}
}

// plainBufs holds block buffers for write-behind reads of the dirty file.
var plainBufs = sync.Pool{New: func() any { return new([]byte) }}

// nextBehind pops the next queued block that is still dirty. n.mu held.
func (n *inode) nextBehind() (idx int64, gen uint64, ok bool) {
	for len(n.behindQ) > 0 {
		idx = n.behindQ[0]
		n.behindQ = n.behindQ[1:]
		if gen, ok = n.dirty[idx]; ok {
			return idx, gen, true
		}
	}
	return 0, 0, false
}

// waitBehind waits until n has no write-behind goroutine and returns with
// n.mu held, so a flush does not cut a block that is being cut.
func (n *inode) waitBehind() {
	for {
		n.mu.Lock()
		ch := n.behindIdle
		if ch == nil {
			return
		}
		n.mu.Unlock()
		<-ch
	}
}

// commitBehind commits the cut block c of n, which covers the file up to
// end, and forgets it as dirty; c.tmp is left set when its file was not
// moved into staging. On error the block stays dirty. n.mu held.
func (j *writeBehind) commitBehind(ctx context.Context, n *inode, c *cut, end int64) error {
	prio := 1
	var fr freed
	var added []qitem
	n.mapEmpty = false
	j.wmu.Lock()
	j.scopeLocked(n.ino)
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		if err := j.fl.inodeExists(ctx, tx, n.ino); err != nil {
			return err
		}
		var oldLen int64
		err := j.tqrow(ctx, tx, `SELECT coalesce((SELECT b.plain_len FROM blockmap m JOIN blocks b ON b.id = m.block
			WHERE m.ino = ? AND m.idx = ?), 0)`, n.ino, c.idx).Scan(&oldLen)
		if err != nil {
			return err
		}
		cs := []cut{*c}
		renamed, err := j.fl.applyCuts(ctx, tx, n.ino, cs, prio, &fr, &added, false)
		if err != nil {
			return err
		}
		c.tmp, c.staged = cs[0].tmp, cs[0].staged
		if _, err := j.texec(ctx, tx, `UPDATE inodes SET size = max(size, ?), used = max(0, used + ? - ?) WHERE ino = ?`,
			end, c.plainLen, oldLen, n.ino); err != nil {
			return err
		}
		return j.fl.syncStagingIf(renamed)
	})
	if err != nil {
		j.fl.unstage(added)
		j.wmu.Unlock()
		return err
	}
	j.fl.afterFreeLocked(&fr)
	j.up.enqueue(added)
	j.wmu.Unlock()
	n.chargeBack(j.c)
	delete(n.dirty, c.idx)
	j.qmu.Lock()
	j.dirtyB -= j.bs
	j.up.signalFreeLocked()
	j.qmu.Unlock()
	// The committed block's bytes need not stay in the dirty file.
	if err := n.f.punch(c.idx*j.bs, j.bs); err != nil {
		j.log.Debug("journal: punch committed block out of the dirty file", "ino", n.ino, "err", err)
	}
	return nil
}
