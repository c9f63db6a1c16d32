package journal

import (
	"os"

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

// dirtyFile holds a file's unflushed bytes at the file's own offsets:
// in mem while they all lie below memDirtyMax, else in a sparse file at
// path (created on the first write past memDirtyMax). Reads past the end
// read zeros. The owning inode's mu guards it.
type dirtyFile struct {
	path string
	f    *os.File
	mem  []byte
}

// WriteAt stores p at off. p belongs to the caller.
func (d *dirtyFile) WriteAt(p []byte, off int64) (int, error) {
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

// spill moves mem into a new file at path.
func (d *dirtyFile) spill() error {
	f, err := os.OpenFile(d.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
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

// readFull fills p from off; bytes past the end read as zeros.
func (d *dirtyFile) readFull(p []byte, off int64) error {
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

// Truncate cuts the bytes at and past size (growing is a no-op: past the
// end reads zeros anyway).
func (d *dirtyFile) Truncate(size int64) error {
	if d.f != nil {
		return d.f.Truncate(size)
	}
	if size < int64(len(d.mem)) {
		d.mem = d.mem[:size]
	}
	return nil
}

// punch forgets the bytes of [off, off+n) (a committed block's), keeping
// the size.
func (d *dirtyFile) punch(off, n int64) error {
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
	d.mem = d.mem[:0]
	if d.f != nil {
		return d.f.Truncate(0)
	}
	return nil
}

// remove closes and deletes the dirty file, if there is one.
func (d *dirtyFile) remove() {
	d.mem = nil
	if d.f == nil {
		return
	}
	d.f.Close()
	d.f = nil
	// A leftover costs disk space until Open clears the dirty directory.
	os.Remove(d.path)
}
