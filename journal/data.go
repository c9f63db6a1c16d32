package journal

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// mapped is one blockmap row joined with its block.
type mapped struct {
	idx      int64
	id       remote.BlockID
	plainLen int64
	state    int
	seg      []byte
	off, len sql.NullInt64
}

// mapRange returns the mapped blocks of ino in [first, last], in order.
func (j *files) mapRange(ctx context.Context, ino Ino, first, last int64) ([]mapped, error) {
	rows, err := j.st.mapRange.QueryContext(ctx, ino, first, last)
	if err != nil {
		return nil, fmt.Errorf("journal: read block map: %w", err)
	}
	defer rows.Close()
	var out []mapped
	for rows.Next() {
		var m mapped
		var id []byte
		if err := rows.Scan(&m.idx, &id, &m.plainLen, &m.state, &m.seg, &m.off, &m.len); err != nil {
			return nil, fmt.Errorf("journal: read block map: %w", err)
		}
		copy(m.id[:], id)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: read block map: %w", err)
	}
	return out, nil
}

// mapMemoMax bounds the block map rows an inode remembers (mapMemo).
const mapMemoMax = 1024

// memoRow is a remembered block map row; ok is false for a hole.
type memoRow struct {
	m  mapped
	ok bool
}

// mapMemo is mapRange for a read. The row of a read within one block is
// remembered in n until the next commit of the journal (commitGen), which
// is the only way a block map or block row changes: random reads of a
// stored file (a database, a disk image) ask for one block each, and
// would otherwise pay a query per read. n.mu held.
func (j *files) mapMemo(ctx context.Context, n *inode, first, last int64) ([]mapped, error) {
	if first != last {
		return j.mapRange(ctx, n.ino, first, last)
	}
	// Read before the query: a commit during it makes the row it read
	// stale at once.
	gen := j.commitGen.Load()
	if n.memoGen != gen {
		clear(n.memo)
		n.memoGen = gen
	}
	if r, ok := n.memo[first]; ok {
		if !r.ok {
			return nil, nil
		}
		return []mapped{r.m}, nil
	}
	ms, err := j.mapRange(ctx, n.ino, first, last)
	if err != nil {
		return nil, err
	}
	if n.memo == nil || len(n.memo) >= mapMemoMax {
		n.memo = map[int64]memoRow{}
	}
	if len(ms) == 1 {
		n.memo[first] = memoRow{m: ms[0], ok: true}
	} else {
		n.memo[first] = memoRow{}
	}
	return ms, nil
}

// segment returns a segment's info (cached; segments are immutable here).
func (j *files) segment(ctx context.Context, raw []byte) (*remote.SegmentInfo, error) {
	var id remote.SegmentID
	copy(id[:], raw)
	j.segMu.Lock()
	s := j.segs[id]
	j.segMu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := loadSegment(ctx, j.db, id)
	if err != nil {
		return nil, err
	}
	j.segMu.Lock()
	j.segs[id] = s
	j.segMu.Unlock()
	return s, nil
}

func (j *files) ref(ctx context.Context, m mapped) (remote.BlockRef, error) {
	seg, err := j.segment(ctx, m.seg)
	if err != nil {
		return remote.BlockRef{}, err
	}
	return remote.BlockRef{ID: m.id, Seg: seg, Offset: m.off.Int64, Length: m.len.Int64}, nil
}

// blockPlain returns the plaintext of a stored block (read-only; it may
// be shared with the cache or n's last-block memo). n.mu held.
func (j *files) blockPlain(ctx context.Context, n *inode, m mapped) ([]byte, error) {
	if n.lastIdx == m.idx && n.lastID == m.id && n.lastPlain != nil {
		return n.lastPlain, nil
	}
	var plain []byte
	var hold BlockHold
	for attempt := 0; ; attempt++ {
		var err error
		if m.state == blockStaged && j.roLost.ids[m.id] {
			err = ErrLostBlock // read-only: its staging file is gone (roMissing)
		} else if m.state == blockStaged {
			plain, err = j.readStaged(m.id)
			if err == nil {
				j.stagedReads.Add(1)
			}
			if errors.Is(err, fs.ErrNotExist) && attempt == 0 {
				// Uploaded (and unstaged) since we looked: look again.
				ms, qerr := j.mapRange(ctx, n.ino, m.idx, m.idx)
				if qerr != nil {
					return nil, qerr
				}
				if len(ms) == 1 {
					m = ms[0]
					continue
				}
			}
		} else if m.state == blockLost {
			err = ErrLostBlock
		} else if kept, ok := j.kp.plain(ctx, m); ok {
			plain = kept
		} else {
			if j.o.Blocks == nil {
				return nil, fmt.Errorf("journal: block %s of inode %d: %w", m.id, n.ino, ErrOffline)
			}
			var ref remote.BlockRef
			if ref, err = j.ref(ctx, m); err == nil {
				j.appReads.Add(1)
				if a, ok := j.o.Blocks.(BlockAcquirer); ok {
					plain, hold, err = a.AcquireBlock(ctx, ref)
				} else {
					plain, err = j.o.Blocks.ReadBlock(ctx, ref)
				}
				j.appReads.Add(-1)
			}
			if err != nil && attempt == 0 && ctx.Err() == nil {
				// Garbage collection may have moved the block (compaction)
				// and deleted its old segment since we looked.
				if nm, moved := j.relocate(ctx, m); moved {
					m = nm
					continue
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("journal: read block %d of inode %d: %w", m.idx, n.ino, err)
		}
		break
	}
	n.dropLast()
	n.lastIdx, n.lastID, n.lastPlain, n.lastHold = m.idx, m.id, plain, hold
	return plain, nil
}

// BlockHold is a counted reference to a block's plaintext from the block
// reader (cache.Hold): Retain adds one, Release drops one, and once all
// are released the reader may reuse the memory.
type BlockHold = interface {
	Retain()
	Release()
}

// BlockAcquirer is a BlockReader whose blocks are released when done with
// (*cache.Cache): the memo and the FUSE replies that share a block's
// plaintext each hold a reference, so the cache can reuse the memory.
type BlockAcquirer interface {
	AcquireBlock(ctx context.Context, ref remote.BlockRef) (b []byte, h BlockHold, err error)
}

func (j *core) stagePath(id remote.BlockID) string { return j.stage + "/" + id.String() }

// stagedBytes returns staged block id's sealed bytes, from its staging
// file or its row in table staged, read into dst's spare capacity when
// they fit (see readFileInto). sealedLen, when known (else 0), says which
// to try first. A block in neither is os.ErrNotExist (stagingFolderErr's
// when the staging folder itself is gone).
func (j *files) stagedBytes(id remote.BlockID, dst []byte, sealedLen int64) ([]byte, error) {
	row := func() ([]byte, error) {
		var b []byte
		err := j.qrow(context.Background(), `SELECT sealed FROM staged WHERE id = ?`, id[:]).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("journal: staged block %s: %w", id, os.ErrNotExist)
		}
		if err != nil {
			return nil, fmt.Errorf("journal: read staged block %s: %w", id, err)
		}
		if len(b) <= cap(dst) {
			return append(dst[:0], b...), nil
		}
		return b, nil
	}
	if sealedLen > 0 && sealedLen <= int64(j.fl.inlineMax()) {
		if b, err := row(); !errors.Is(err, os.ErrNotExist) {
			return b, err
		}
		b, err := readFileInto(j.stagePath(id), dst)
		return b, stagingFolderErr(j.stage, err)
	}
	b, err := readFileInto(j.stagePath(id), dst)
	if !errors.Is(err, os.ErrNotExist) {
		return b, err
	}
	b, err = row()
	return b, stagingFolderErr(j.stage, err)
}

func (j *files) readStaged(id remote.BlockID) ([]byte, error) {
	sealed, err := j.stagedBytes(id, nil, 0)
	if err != nil {
		return nil, err
	}
	plain, err := j.seal.Open(nil, id, sealed)
	if err != nil {
		return nil, fmt.Errorf("staged block %s fails to open (local disk corrupted it?): %w", id, err)
	}
	return plain, nil
}

// readMapped fills dst with a stored block's bytes from offset s of the
// block (zeros past its end). A random read (one that does not go on from
// the previous read) of an uploaded block reads just its range (the cache
// then reads only the frames holding it); other reads take the whole
// block, kept for the next read. n.mu held.
func (j *files) readMapped(ctx context.Context, n *inode, m mapped, dst []byte, s int64, random bool) error {
	memo := n.lastIdx == m.idx && n.lastID == m.id && n.lastPlain != nil
	if random && !memo && m.state != blockStaged && m.state != blockLost && j.o.Blocks != nil && !j.kp.mayBe(m) {
		var c int
		var err error
		for attempt := 0; ; attempt++ {
			var ref remote.BlockRef
			ref, err = j.ref(ctx, m)
			if err == nil {
				j.appReads.Add(1)
				c, err = j.o.Blocks.ReadAt(ctx, ref, dst, s)
				j.appReads.Add(-1)
			}
			if err == nil || attempt > 0 || ctx.Err() != nil {
				break
			}
			// Moved by garbage collection since we looked (blockPlain).
			nm, moved := j.relocate(ctx, m)
			if !moved {
				break
			}
			m = nm
		}
		if err != nil {
			return fmt.Errorf("journal: read block %d of inode %d: %w", m.idx, n.ino, err)
		}
		clear(dst[c:])
		return nil
	}
	plain, err := j.blockPlain(ctx, n, m)
	if err != nil {
		return err
	}
	c := 0
	if s < int64(len(plain)) {
		c = copy(dst, plain[s:min(int64(len(plain)), s+int64(len(dst)))])
	}
	clear(dst[c:])
	return nil
}

// ReadAt reads into p (owned by the caller) from offset off. It returns
// len(p) bytes, or fewer only at end of file (never io.EOF).
func (j *files) ReadAt(ctx context.Context, ino Ino, p []byte, off int64) (int, error) {
	b, err := j.Read(ctx, ino, p, off)
	if len(b) > 0 && &b[0] != &p[0] {
		copy(p, b)
	}
	return len(b), err
}

// Read returns the bytes of ino at [off, off+len(p)), fewer only at end
// of file (never io.EOF), in p (owned by the caller) or in a slice of a
// block's plaintext shared with the cache and read-only (ReadShared).
func (j *files) Read(ctx context.Context, ino Ino, p []byte, off int64) ([]byte, error) {
	b, release, err := j.ReadShared(ctx, ino, p, off)
	if release != nil {
		b = p[:copy(p, b)]
		release()
	}
	return b, err
}

// ReadShared returns the bytes of ino at [off, off+len(p)), fewer only at
// end of file (never io.EOF): p (owned by the caller) filled, or, for a
// sequential read that lies in one stored block, a slice of that block's
// plaintext, shared with the cache and read-only, so the bytes reach the
// FUSE reply without a copy into p (a 1 MiB request copied 1 MiB). A
// non-nil release must then be called, once, when the caller is done with
// the bytes (the cache reuses the block's memory after that).
func (j *files) ReadShared(ctx context.Context, ino Ino, p []byte, off int64) (b []byte, release func(), err error) {
	if err := j.checkOpen(); err != nil {
		return nil, nil, err
	}
	if off < 0 {
		return nil, nil, ErrInvalid
	}
	n := j.it.getInode(ino)
	defer j.it.putInode(n)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := j.it.regular(ctx, n); err != nil {
		return nil, nil, err
	}
	n.amu.Lock()
	size := n.size
	n.amu.Unlock()
	if off >= size || len(p) == 0 {
		return p[:0], nil, nil
	}
	end := min(off+int64(len(p)), size)
	p = p[:end-off]
	first, last := off/j.bs, (end-1)/j.bs
	ms, err := j.mapMemo(ctx, n, first, last)
	if err != nil {
		return nil, nil, err
	}
	if b, release, ok, err := j.readShared(ctx, n, ms, off, end); ok || err != nil {
		if err == nil {
			j.readAhead(ctx, n, off, end, size)
		}
		return b, release, err
	}
	mi := 0
	for idx := first; idx <= last; idx++ {
		bstart := idx * j.bs
		lo, hi := max(off, bstart), min(end, bstart+j.bs)
		dst := p[lo-off : hi-off]
		for mi < len(ms) && ms[mi].idx < idx {
			mi++
		}
		switch {
		case hasKey(n.dirty, idx):
			if err := n.f.readFull(dst, lo); err != nil {
				return nil, nil, fmt.Errorf("journal: read dirty data of inode %d: %w", ino, err)
			}
		case mi < len(ms) && ms[mi].idx == idx:
			if err := j.readMapped(ctx, n, ms[mi], dst, lo-bstart, off != n.nextOff); err != nil {
				return nil, nil, err
			}
		default:
			clear(dst)
		}
	}
	j.readAhead(ctx, n, off, end, size)
	return p, nil, nil
}

// readShared is ReadShared's path without a copy: [off, end) continues
// the previous read and lies in one stored, clean block whose plaintext
// covers it. ok false: take the copying path. The bytes outlive n.mu (the
// FUSE reply writes them after the request returns), so the caller gets a
// reference of its own to the block (release), beside the memo's. n.mu
// held.
func (j *files) readShared(ctx context.Context, n *inode, ms []mapped, off, end int64) (b []byte, release func(), ok bool, err error) {
	idx := off / j.bs
	if off != n.nextOff || (end-1)/j.bs != idx || len(ms) != 1 || ms[0].idx != idx || hasKey(n.dirty, idx) {
		return nil, nil, false, nil
	}
	plain, err := j.blockPlain(ctx, n, ms[0])
	if err != nil {
		return nil, nil, false, err
	}
	s, e := off-idx*j.bs, end-idx*j.bs
	if e > int64(len(plain)) {
		return nil, nil, false, nil // the block's tail reads as zeros: copy
	}
	if h := n.lastHold; h != nil {
		h.Retain()
		release = h.Release
	}
	return plain[s:e:e], release, true, nil
}

// readAhead detects sequential reads and hints the next blocks to the
// block reader. n.mu held.
func (j *files) readAhead(ctx context.Context, n *inode, off, end, size int64) {
	if off == n.nextOff {
		n.seqRun++
	} else {
		n.seqRun, n.prefTo = 0, 0
	}
	n.nextOff = end
	if n.seqRun < 2 || j.o.Blocks == nil {
		return
	}
	const ahead = 4
	cur := (end - 1) / j.bs
	lastBlock := (size - 1) / j.bs
	from := max(cur+1, n.prefTo+1)
	to := min(cur+ahead, lastBlock)
	if from > to {
		return
	}
	n.prefTo = to
	ms, err := j.mapRange(ctx, n.ino, from, to)
	if err != nil {
		return
	}
	var refs []remote.BlockRef
	for _, m := range ms {
		if m.state == blockStaged || hasKey(n.dirty, m.idx) || j.kp.mayBe(m) {
			continue // local already, or a small block the journal may keep
		}
		if r, err := j.ref(ctx, m); err == nil {
			refs = append(refs, r)
		}
	}
	if len(refs) > 0 {
		j.o.Blocks.Prefetch(ctx, refs)
	}
}

func hasKey[V any](m map[int64]V, k int64) bool { _, ok := m[k]; return ok }

// preadFull fills p from f at off; bytes past f's end read as zeros.
func preadFull(f *os.File, p []byte, off int64) error {
	if f == nil {
		clear(p)
		return nil
	}
	c, err := f.ReadAt(p, off)
	if err == io.EOF {
		clear(p[c:])
		return nil
	}
	return err
}

// WriteAt writes p (owned by the caller, used only during the call) at
// off. The bytes go to the inode's dirty file; Flush makes them blocks.
func (j *files) WriteAt(ctx context.Context, ino Ino, p []byte, off int64) (int, error) {
	if err := j.checkWrite(); err != nil {
		return 0, err
	}
	if off < 0 || off+int64(len(p)) < off {
		return 0, ErrInvalid
	}
	if off+int64(len(p)) > MaxFileSize {
		return 0, ErrTooBig
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := j.it.getInode(ino)
	defer j.it.putInode(n)
	n.mu.Lock()
	defer n.mu.Unlock()
	end := off + int64(len(p))
	first, last := off/j.bs, (end-1)/j.bs
	if err := j.waitMemBlock(ctx, n, first, last); err != nil {
		return 0, err
	}
	if err := j.it.regular(ctx, n); err != nil {
		return 0, err
	}
	n.chargeBack(j.c)
	reserved, err := j.reserve(ctx, n, first, last)
	if err != nil {
		return 0, err
	}
	if err := j.openDirty(n); err != nil {
		j.unreserve(reserved)
		return 0, err
	}
	n.amu.Lock()
	size := n.size
	n.amu.Unlock()
	// Partially written edge blocks that exist must be filled first so the
	// dirty file holds whole blocks.
	var filled int64
	for _, idx := range []int64{first, last} {
		if hasKey(n.dirty, idx) {
			continue
		}
		bstart := idx * j.bs
		if (off <= bstart && end >= bstart+j.bs) || bstart >= size {
			continue
		}
		if err := j.fill(ctx, n, idx); err != nil {
			// A block fill already made dirty keeps its share of the quota.
			j.unreserve(reserved - filled*j.bs)
			return 0, err
		}
		filled++
	}
	_, err = n.f.WriteAt(p, off)
	if madeRoom(&j.o, j.log, err, len(p)) {
		_, err = n.f.WriteAt(p, off)
	}
	if err != nil {
		// The dirty file may now hold part of p: the blocks are dirty
		// either way, which is safe (they are re-read from the file).
		for idx := first; idx <= last; idx++ {
			n.markDirty(idx)
		}
		return 0, fmt.Errorf("journal: write dirty data of inode %d: %w", ino, err)
	}
	for idx := first; idx <= last; idx++ {
		n.markDirty(idx)
	}
	if n.lastIdx >= first && n.lastIdx <= last {
		n.dropLast()
	}
	if off == n.wend && off > 0 && (off-1)/j.bs < first {
		// A sequential writer has moved on from the block before.
		j.wb.writeBehind(n, (off-1)/j.bs)
	}
	n.wend = end
	now := nowNS()
	n.amu.Lock()
	n.size = max(n.size, end)
	n.mtime, n.ctime, n.attrDirty = now, now, true
	n.amu.Unlock()
	n.hasDirty.Store(true)
	j.armIdle(n)
	return len(p), nil
}

// waitMemBlock holds back a sequential writer that is about to start a
// new block while every in-memory dirty block is taken and its own
// write-behind is running: it waits (without n.mu) until write-behind
// gives a block back, or has nothing left to do. Otherwise the block
// would go to the dirty file, whose bytes cost a write into the page
// cache now and a read back when the block is cut (a write-behind that
// falls behind its writer used to spill about four blocks in ten of a
// big file there). The wait is bounded by n's write-behind goroutines,
// which end once their queue is empty. n.mu held (released meanwhile).
func (j *files) waitMemBlock(ctx context.Context, n *inode, first, last int64) error {
	for n.behindN > 0 && n.f != nil && n.f.needsMemBlock(first, last) {
		freed := j.memBlocks.freedCh()
		if !j.memBlocks.full() {
			return nil
		}
		idle := n.behindIdle
		n.mu.Unlock()
		select {
		case <-freed:
		case <-idle:
		case <-ctx.Done():
		}
		n.mu.Lock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// fill copies stored block idx into the dirty file and marks it dirty.
// n.mu held; the caller reserved quota for it.
func (j *files) fill(ctx context.Context, n *inode, idx int64) error {
	ms, err := j.mapRange(ctx, n.ino, idx, idx)
	if err != nil {
		return err
	}
	if len(ms) == 1 {
		plain, err := j.blockPlain(ctx, n, ms[0])
		if err != nil {
			return err
		}
		n.amu.Lock()
		keep := min(int64(len(plain)), n.size-idx*j.bs)
		n.amu.Unlock()
		if keep > 0 {
			// On a full disk as the write itself does (WriteAt): the
			// disk cache gives room, and the copy is tried once more.
			_, err := n.f.WriteAt(plain[:keep], idx*j.bs)
			if madeRoom(&j.o, j.log, err, int(keep)) {
				_, err = n.f.WriteAt(plain[:keep], idx*j.bs)
			}
			if err != nil {
				return fmt.Errorf("journal: write dirty data of inode %d: %w", n.ino, err)
			}
		}
	}
	n.markDirty(idx)
	return nil
}

// openDirty gives n its dirty data store (in memory until it outgrows
// memDirtyMax, see dirty.go). n.mu held.
func (j *files) openDirty(n *inode) error {
	if n.f == nil {
		n.f = &dirtyFile{path: j.it.dirtyPath(n.ino), bs: j.bs, mb: &j.memBlocks}
	}
	return nil
}

// armIdle (re)starts n's idle-flush timer.
func (j *files) armIdle(n *inode) {
	n.amu.Lock()
	defer n.amu.Unlock()
	if n.timer != nil {
		n.timer.Reset(j.o.IdleFlush)
		return
	}
	ino := n.ino
	n.timer = time.AfterFunc(j.o.IdleFlush, func() {
		if j.closed.Load() {
			return
		}
		if err := j.flushIno(context.Background(), ino, false); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotFound) {
			j.log.Warn("journal: idle flush failed; will retry on the next write or fsync", "ino", ino, "err", err)
		}
	})
}

// reserve takes quota for the blocks in [first, last] that are not dirty
// yet, waiting up to QuotaWait for the uploader; it returns the bytes
// taken. n.mu held.
func (j *files) reserve(ctx context.Context, n *inode, first, last int64) (int64, error) {
	var deadline <-chan time.Time
	flushed := false
	for {
		var fresh int64
		for idx := first; idx <= last; idx++ {
			if !hasKey(n.dirty, idx) {
				fresh++
			}
		}
		bytes := fresh * j.bs
		if bytes == 0 {
			return 0, nil
		}
		j.qmu.Lock()
		if j.dirtyB+j.stagedB+bytes <= j.o.Quota || j.dirtyB+j.stagedB == 0 {
			j.dirtyB += bytes
			j.qmu.Unlock()
			return bytes, nil
		}
		ch := j.quotaFree
		j.force = true
		j.qmu.Unlock()
		j.up.poke()
		if !flushed && len(n.dirty) > 0 {
			// Our own dirty data can only leave once it is staged.
			flushed = true
			if err := j.fl.flushLocked(ctx, n, false); err != nil {
				return 0, err
			}
			continue
		}
		if deadline == nil {
			t := time.NewTimer(j.o.QuotaWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-ch:
		case <-deadline:
			return 0, fmt.Errorf("journal: %w (quota %d bytes)", ErrFull, j.o.Quota)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (j *files) unreserve(bytes int64) {
	j.qmu.Lock()
	j.dirtyB -= bytes
	j.qmu.Unlock()
}

// Flush cuts the file's dirty data into blocks, seals and stages them and
// commits the block map, or, for a small file, logs them for a commit
// soon with others (flushlog.go): afterwards the data survives a killed
// process, and a power cut once the group commit (Options.GroupCommit)
// or an Fsync has followed. Flush does not fsync the journal itself.
func (j *files) Flush(ctx context.Context, ino Ino) error {
	if err := j.checkWrite(); err != nil {
		if errors.Is(err, ErrReadOnly) {
			return nil
		}
		return err
	}
	return j.flushInoHow(ctx, ino, false, true)
}

// Fsync is Flush with a durable commit: the file, and every earlier
// commit of the drive, survive a power cut (one WAL fsync, none when
// nothing was committed since the last durable commit).
func (j *files) Fsync(ctx context.Context, ino Ino) error {
	if err := j.checkWrite(); err != nil {
		if errors.Is(err, ErrReadOnly) {
			return nil
		}
		return err
	}
	if err := j.flushIno(ctx, ino, true); err != nil {
		return err
	}
	if err := j.barrier(ctx); err != nil {
		return fmt.Errorf("journal: fsync: %w", err)
	}
	j.md.prioritize(ctx, ino) // fsync'd data goes before bulk uploads
	return nil
}

// flushIno flushes ino (see flushLocked for durable).
func (j *files) flushIno(ctx context.Context, ino Ino, durable bool) error {
	return j.flushInoHow(ctx, ino, durable, false)
}

// flushInoHow is flushIno; mayLog: a close's (see flushHowLocked).
func (j *files) flushInoHow(ctx context.Context, ino Ino, durable, mayLog bool) error {
	n := j.it.memInode(ino)
	if n == nil {
		return nil // nothing in memory: nothing dirty
	}
	defer j.it.putInode(n)
	n.waitBehind() // locks n.mu
	defer n.mu.Unlock()
	return j.fl.flushHowLocked(ctx, n, durable, mayLog)
}

// truncate sets the file's size. n.mu is taken here.
// MaxFileSize is the largest size a file may have: far beyond any disk,
// and far enough below 2^63 that a block's end (its start plus the block
// size) never overflows.
const MaxFileSize = 1 << 62

func (j *files) truncate(ctx context.Context, ino Ino, size int64) error {
	if size < 0 {
		return ErrInvalid
	}
	if size > MaxFileSize {
		return ErrTooBig
	}
	n := j.it.getInode(ino)
	defer j.it.putInode(n)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := j.it.regular(ctx, n); err != nil {
		return err
	}
	n.wgen++ // a logged close's state is not this one (flushRec.matches)
	n.recBlocks.Store(0)
	n.chargeBack(j.c)
	n.amu.Lock()
	old := n.size
	n.amu.Unlock()
	if size < old {
		keep := (size + j.bs - 1) / j.bs
		for idx := range n.dirty {
			if idx >= keep {
				delete(n.dirty, idx)
				j.unreserve(j.bs)
			}
		}
		if n.f != nil {
			if err := n.f.Truncate(size); err != nil {
				return fmt.Errorf("journal: truncate dirty file of inode %d: %w", ino, err)
			}
			if hasKey(n.dirty, size/j.bs) {
				n.markDirty(size / j.bs) // its tail is gone
			}
		}
		n.dropLast()
		if tail := size % j.bs; tail != 0 && !hasKey(n.dirty, size/j.bs) {
			// The last block keeps only its head: re-cut it.
			j.qmu.Lock()
			j.dirtyB += j.bs
			j.qmu.Unlock()
			if err := j.openDirty(n); err != nil {
				j.unreserve(j.bs)
				return err
			}
			n.amu.Lock()
			n.size = size
			n.amu.Unlock()
			if err := j.fill(ctx, n, size/j.bs); err != nil {
				j.unreserve(j.bs)
				return err
			}
		}
	}
	now := nowNS()
	n.amu.Lock()
	n.size = size
	n.mtime, n.ctime, n.attrDirty = now, now, true
	n.amu.Unlock()
	n.hasDirty.Store(true)
	return j.fl.flushLocked(ctx, n, false)
}

// BlockPlace is where a block lives now: its state and segment place.
type BlockPlace struct {
	State    int
	Seg      []byte
	Off, Len int64
	Info     *remote.SegmentInfo // of Seg
}

// BlockPlace looks up block id's row (for snapshot journals, whose own
// records may name a segment compaction has since replaced).
func (j *files) BlockPlace(ctx context.Context, id remote.BlockID) (BlockPlace, bool) {
	var p BlockPlace
	var off, n sql.NullInt64
	err := j.db.QueryRowContext(ctx, `SELECT state, segment, seg_off, seg_len FROM blocks WHERE id = ?`, id[:]).Scan(&p.State, &p.Seg, &off, &n)
	if err != nil || p.Seg == nil {
		return p, false
	}
	p.Off, p.Len = off.Int64, n.Int64
	if p.Info, err = j.segment(ctx, p.Seg); err != nil {
		return p, false
	}
	return p, true
}

// relocate returns m with the block's current place when it differs from
// m's (from this journal, or the drive's for a snapshot journal).
func (j *files) relocate(ctx context.Context, m mapped) (mapped, bool) {
	look := j.BlockPlace
	if j.o.Places != nil {
		look = j.o.Places
	}
	p, ok := look(ctx, m.id)
	if !ok || p.State != blockUploaded && p.State != blockGarbage {
		return m, false
	}
	if bytes.Equal(p.Seg, m.seg) && p.Off == m.off.Int64 && p.Len == m.len.Int64 {
		return m, false
	}
	j.segMu.Lock()
	j.segs[p.Info.ID] = p.Info // a snapshot journal's own table may lack it
	j.segMu.Unlock()
	m.seg, m.state = p.Seg, p.State
	m.off = sql.NullInt64{Int64: p.Off, Valid: true}
	m.len = sql.NullInt64{Int64: p.Len, Valid: true}
	return m, true
}
