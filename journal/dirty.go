package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// memDirtyMax is how far into a file its unflushed bytes stay in memory
// before they move to a dirty file on disk. Creating a file is the most
// expensive thing a small-file flush did (several hundred µs of CPU on a
// small VM's ext4, as much as the rest of the flush), and unflushed data
// is not promised to survive a crash anyway, so a small file written and
// closed never has a dirty file. The quota counts dirty data by whole
// blocks, which bounds this memory to memDirtyMax per Quota/BlockSize.
const memDirtyMax = 128 << 10

// dirtyFile holds a file's unflushed bytes at the file's own offsets.
// Whole blocks past memDirtyMax that were never on disk since the last
// reset live in memory (blocks), as many as the journal's memBlocks
// allows: a sequential writer's bytes then go from the request to the
// sealer with no trip through the page cache of a dirty file. The rest
// (the "base") is in mem while it all lies below memDirtyMax, else in a
// sparse file at path (created on the first write that needs it). Reads
// past the end read zeros. The owning inode's mu guards it.
type dirtyFile struct {
	path string
	f    *os.File
	mem  []byte

	bs     int64            // block size; 0: no in-memory blocks
	mb     *memBlocks       // the journal's budget and buffers
	blocks map[int64][]byte // in-memory whole blocks, cap bs; len: written up to (zeros after)
	inBase map[int64]bool   // blocks with bytes in the base: they stay there
	lent   map[int64]bool   // blocks whose buffer write-behind reads without mu (lend)
}

// maxMemBlocks bounds the in-memory blocks of all files of a journal
// (16 MiB with 4 MiB blocks). Write-behind keeps a sequential writer to
// a few; past the bound, blocks go to the dirty file as before.
const maxMemBlocks = 4

// memBlocks is the journal's budget of in-memory dirty blocks and its
// pool of their buffers.
type memBlocks struct {
	n    atomic.Int64
	pool sync.Pool // *[]byte of cap bs

	mu    sync.Mutex    // mu guards freed
	freed chan struct{} // closed by the next freeBlock; nil when nobody waits
}

// full reports whether the budget is spent.
func (m *memBlocks) full() bool { return m.n.Load() >= maxMemBlocks }

// freedCh returns a channel closed when a block is next given back. Take
// it before looking at full, so a block freed in between is not missed.
func (m *memBlocks) freedCh() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.freed == nil {
		m.freed = make(chan struct{})
	}
	return m.freed
}

// signal wakes the writers waiting for a block (freedCh).
func (m *memBlocks) signal() {
	m.mu.Lock()
	if m.freed != nil {
		close(m.freed)
		m.freed = nil
	}
	m.mu.Unlock()
}

// WriteAt stores p at off. p belongs to the caller.
func (d *dirtyFile) WriteAt(p []byte, off int64) (int, error) {
	if d.bs == 0 {
		return d.writeBase(p, off)
	}
	done := 0
	for done < len(p) {
		idx := off / d.bs
		n := int(min(int64(len(p)-done), (idx+1)*d.bs-off))
		piece := p[done : done+n]
		if b := d.memBlock(idx); b != nil {
			d.blocks[idx] = writeMem(b, piece, int(off-idx*d.bs))
		} else {
			if d.inBase == nil {
				d.inBase = map[int64]bool{}
			}
			d.inBase[idx] = true
			k, err := d.writeBase(piece, off)
			if err != nil {
				return done + k, err
			}
		}
		done += n
		off += int64(n)
	}
	return done, nil
}

// writeMem copies p to in-memory block b at o and returns b grown to
// cover it. b's bytes past its length are stale (a pooled buffer's): a
// gap between its end and o is cleared, nothing else, so a sequential
// writer's block is written once and never zeroed.
func writeMem(b, p []byte, o int) []byte {
	if end := o + len(p); end > len(b) {
		old := len(b)
		b = b[:end]
		if o > old {
			clear(b[old:o])
		}
	}
	copy(b[o:], p)
	return b
}

// memBlock returns block idx's memory (its length how far it was
// written, see writeMem), making it when the block may live in memory
// and the budget allows; nil if it lives in the base. A lent block is
// copied first (see lend).
func (d *dirtyFile) memBlock(idx int64) []byte {
	if b := d.blocks[idx]; b != nil {
		if d.lent[idx] {
			b = d.unlend(idx, b)
		}
		return b
	}
	if idx*d.bs < memDirtyMax || d.inBase[idx] {
		return nil
	}
	if d.mb.n.Add(1) > maxMemBlocks {
		d.mb.n.Add(-1)
		return nil
	}
	b := d.newBuf()
	if d.blocks == nil {
		d.blocks = map[int64][]byte{}
	}
	d.blocks[idx] = b
	return b
}

// newBuf returns an empty block buffer (cap bs) from the pool; the
// caller counted it in the budget.
func (d *dirtyFile) newBuf() []byte {
	pb, _ := d.mb.pool.Get().(*[]byte)
	if pb == nil || int64(cap(*pb)) < d.bs {
		pb = new([]byte)
		*pb = make([]byte, d.bs)
	}
	return (*pb)[:0]
}

// putBuf gives a block buffer back to the pool and the budget.
func (d *dirtyFile) putBuf(b []byte) {
	d.mb.n.Add(-1)
	d.mb.pool.Put(&b)
	d.mb.signal()
}

// freeBlock gives block idx's memory back; a lent block's goes back when
// its borrower is done with it (giveBack).
func (d *dirtyFile) freeBlock(idx int64) {
	b := d.blocks[idx]
	if b == nil {
		return
	}
	delete(d.blocks, idx)
	if d.lent[idx] {
		delete(d.lent, idx) // the borrower owns the buffer now
		return
	}
	d.putBuf(b)
}

// lend returns in-memory block idx's first l bytes (zeros past how far
// it was written) for write-behind to hash and seal without mu and
// without a copy of its own, or nil when the block is not in memory or
// is lent already. Until giveBack the buffer is read-only: a write to
// the block first moves it to a copy (unlend, counted in the budget
// beyond its bound for that while), and freeing the block leaves the
// buffer to the borrower. mu held.
func (d *dirtyFile) lend(idx int64, l int) []byte {
	b := d.blocks[idx]
	if b == nil || d.lent[idx] || int64(l) > d.bs {
		return nil
	}
	if len(b) < l {
		old := len(b)
		b = b[:l]
		clear(b[old:]) // a pooled buffer's stale bytes
		d.blocks[idx] = b
	}
	if d.lent == nil {
		d.lent = map[int64]bool{}
	}
	d.lent[idx] = true
	return b[:l]
}

// unlend moves lent block idx (buffer b) to a copy the writer may change;
// the borrower keeps b. mu held.
func (d *dirtyFile) unlend(idx int64, b []byte) []byte {
	d.mb.n.Add(1)
	nb := append(d.newBuf(), b...)
	d.blocks[idx] = nb
	delete(d.lent, idx)
	return nb
}

// giveBack ends the loan of block idx's buffer b (from lend): it stays
// the block's if nothing changed it meanwhile, else it goes back to the
// pool. mu held (of the inode that owned d, which may have dropped d
// since).
func (d *dirtyFile) giveBack(idx int64, b []byte) {
	if d.lent[idx] && unsafe.SliceData(d.blocks[idx]) == unsafe.SliceData(b) {
		delete(d.lent, idx)
		return
	}
	d.putBuf(b)
}

// needsMemBlock reports whether a write to blocks [first, last] would
// take a new in-memory block (one past memDirtyMax that is neither in
// memory nor in the base).
func (d *dirtyFile) needsMemBlock(first, last int64) bool {
	if d.bs == 0 {
		return false
	}
	for idx := first; idx <= last; idx++ {
		if d.blocks[idx] == nil && idx*d.bs >= memDirtyMax && !d.inBase[idx] {
			return true
		}
	}
	return false
}

func (d *dirtyFile) dropBlocks() {
	for idx := range d.blocks {
		d.freeBlock(idx)
	}
	clear(d.inBase)
}

// readFull fills p from off; bytes past the end read as zeros.
func (d *dirtyFile) readFull(p []byte, off int64) error {
	if len(d.blocks) == 0 {
		return d.readBase(p, off)
	}
	done := 0
	for done < len(p) {
		idx := off / d.bs
		n := int(min(int64(len(p)-done), (idx+1)*d.bs-off))
		if b := d.blocks[idx]; b != nil {
			c := 0
			if o := off - idx*d.bs; o < int64(len(b)) {
				c = copy(p[done:done+n], b[o:])
			}
			clear(p[done+c : done+n])
		} else if err := d.readBase(p[done:done+n], off); err != nil {
			return err
		}
		done += n
		off += int64(n)
	}
	return nil
}

// Truncate cuts the bytes at and past size (growing is a no-op: past the
// end reads zeros anyway).
func (d *dirtyFile) Truncate(size int64) error {
	for idx, b := range d.blocks {
		switch start := idx * d.bs; {
		case start >= size:
			d.freeBlock(idx)
		case start+d.bs > size:
			d.blocks[idx] = b[:min(int64(len(b)), size-start)]
		}
	}
	for idx := range d.inBase {
		if idx*d.bs >= size {
			delete(d.inBase, idx)
		}
	}
	return d.truncateBase(size)
}

// punch forgets the bytes of [off, off+n) (a committed block's), keeping
// the size.
func (d *dirtyFile) punch(off, n int64) error {
	if d.bs > 0 && off%d.bs == 0 && n == d.bs {
		idx := off / d.bs
		if d.blocks[idx] != nil {
			d.freeBlock(idx)
			return nil
		}
		delete(d.inBase, idx)
	}
	return d.punchBase(off, n)
}

// writeBase stores p at off in mem or the file.
func (d *dirtyFile) writeBase(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if d.f == nil && end <= memDirtyMax {
		if end > int64(len(d.mem)) {
			if end > int64(cap(d.mem)) {
				m := make([]byte, end, min(max(2*cap(d.mem), int(end)), memDirtyMax))
				copy(m, d.mem)
				d.mem = m
			} else {
				// Truncate and reset keep the old bytes in the spare
				// capacity: what was cut must read as zeros again.
				old := len(d.mem)
				d.mem = d.mem[:end]
				clear(d.mem[old:])
			}
		}
		return copy(d.mem[off:], p), nil
	}
	if d.f == nil {
		if err := d.spill(); err != nil {
			return 0, err
		}
	}
	return d.f.WriteAt(p, off)
}

// spill moves mem into a new file at path. The dirty folder holds only
// this run's unflushed bytes (Open empties it), and a file spilled before
// keeps them through its open descriptor: when the folder is gone (removed
// by hand or by a cleaner of old files) spill makes it again, with nothing
// lost. It makes only the folder, not the journal folder above it: that
// one gone is its disk not mounted, which writes must not hide by filling
// the disk under it.
func (d *dirtyFile) spill() error {
	const flags = os.O_RDWR | os.O_CREATE | os.O_TRUNC
	f, err := os.OpenFile(d.path, flags, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(d.path)
		if merr := os.Mkdir(dir, 0o700); merr == nil || errors.Is(merr, fs.ErrExist) {
			f, err = os.OpenFile(d.path, flags, 0o600)
		}
		if err != nil {
			return fmt.Errorf("the dirty folder %s, where files being written keep their bytes until closed, is gone "+
				"and cannot be made again (the journal folder gone, or the folder a link to nothing: its disk not mounted?): "+
				"put it back, or unmount and mount again, then write again: %w", dir, err)
		}
	}
	if err != nil {
		return err
	}
	if len(d.mem) > 0 {
		if _, err := f.WriteAt(d.mem, 0); err != nil {
			f.Close()
			os.Remove(d.path)
			return err
		}
	}
	d.f, d.mem = f, nil
	return nil
}

// readBase fills p from off out of mem or the file; bytes past the end
// read as zeros.
func (d *dirtyFile) readBase(p []byte, off int64) error {
	if d.f != nil {
		return preadFull(d.f, p, off)
	}
	c := 0
	if off < int64(len(d.mem)) {
		c = copy(p, d.mem[off:])
	}
	clear(p[c:])
	return nil
}

// truncateBase cuts mem or the file at size.
func (d *dirtyFile) truncateBase(size int64) error {
	if d.f != nil {
		return d.f.Truncate(size)
	}
	if size < int64(len(d.mem)) {
		d.mem = d.mem[:size]
	}
	return nil
}

// punchBase forgets [off, off+n) of mem or the file.
func (d *dirtyFile) punchBase(off, n int64) error {
	if d.f != nil {
		return unix.Fallocate(int(d.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}
	if off < int64(len(d.mem)) {
		clear(d.mem[off:min(off+n, int64(len(d.mem)))])
	}
	return nil
}

// reset drops every byte and keeps the dirty file, if any, for the next
// writes.
func (d *dirtyFile) reset() error {
	d.dropBlocks()
	d.mem = d.mem[:0]
	if d.f != nil {
		return d.f.Truncate(0)
	}
	return nil
}

// remove closes and deletes the dirty file, if there is one.
func (d *dirtyFile) remove() {
	d.dropBlocks()
	d.mem = nil
	if d.f == nil {
		return
	}
	d.f.Close()
	d.f = nil
	// A leftover costs disk space until Open clears the dirty directory.
	os.Remove(d.path)
}
