package cache

import (
	"container/list"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/remote"
)

const (
	blocksDir = "blocks" // Dir/blocks/ab/abcdef... : one file of sealed bytes per block id
	tmpDir    = "tmp"    // Dir/tmp: files being written; emptied at New

	// maxPendingWrites and maxPendingBytes bound the sealed blocks waiting
	// to be written; past them a block is simply not cached on disk.
	maxPendingWrites = 64
	maxPendingBytes  = 8 << 20
	diskWriters      = 2
	// fullDiskPause is how long disk caching stays off after the disk
	// reported it is full.
	fullDiskPause = time.Minute
	// reserveShare and reserveMax: the disk tier leaves a twentieth of
	// its file system free, at most 2 GiB (diskReserve).
	reserveShare = 20
	reserveMax   = 2 << 30
)

// diskReserve is the free space the disk tier leaves on a file system of
// size bytes: unpinned blocks are evicted, or not kept, rather than take
// it. The cache shares the disk with the journal (whose writes would
// fail with ENOSPC), the default grid's nodes and every other program on
// the machine; a cache that filled the disk to its last byte, as one
// within --cache-size did on a disk with less room than that, broke
// them all.
func diskReserve(size int64) int64 { return min(size/reserveShare, reserveMax) }

// fsSpace reports the size of the file system that holds dir and its
// free bytes for an unprivileged writer.
func fsSpace(dir string) (size, free int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize), nil
}

// disk is the disk tier: sealed blocks, one file each, bounded by bytes,
// in a segmented LRU like mem's (probation, then protected once read
// again; probation's oldest evicted first; see mem.go). The index is
// rebuilt by scanning Dir at New; access order lives in memory (at New
// every block starts in probation, ordered by the files' modification
// times). Pinned ids are in neither segment and never evicted.
//
// Files are written to Dir/tmp and renamed into place, so a file under
// Dir/blocks is complete or absent; its bytes are still checked by the
// Fetcher's OpenBlock on every read, so a damaged file is caught there and
// deleted.
type disk struct {
	dir       string // "" = the tier is disabled (pins still work)
	budget    int64
	log       *slog.Logger
	evictions *atomic.Uint64
	errs      *atomic.Uint64
	now       func() time.Time // the clock (tests set their own)
	// writeFile writes data to a new file in dir and returns its path. A
	// field so tests can make the disk "full".
	writeFile func(dir string, data []byte) (string, error)
	// space is fsSpace; a field so tests can give the tier a small disk.
	space func(dir string) (size, free int64, err error)

	mu       sync.Mutex // mu guards the fields below; taken after mem.mu, never before
	index    map[remote.BlockID]*diskEntry
	lru      *list.List // probation: of *diskEntry, front = most recently used; pinned entries are in neither list
	prot     *list.List // protected: of *diskEntry, read again since they came in
	protB    int64      // bytes in prot
	bytes    int64      // all indexed blocks, pinned included
	pins     map[remote.BlockID]struct{}
	gen      uint64    // bumped by clear: queued writes of an older generation are dropped
	offUntil time.Time // disk caching paused (full disk) until then
	closed   bool
	noAdopt  bool       // adopt deletes: its files are on another file system
	pending  int        // writes queued or running
	pendingB int64      // their bytes
	idle     *sync.Cond // signalled when pending drops to 0

	// fds keeps the files ReadAt read from recently open (a random read
	// then costs one pread, not an open and a close as well): at most
	// maxOpenFiles, the oldest closed first, a file's fd closed when its
	// block leaves the index.
	fds    map[remote.BlockID]*list.Element // of *openFile, in fdLRU
	fdLRU  *list.List
	writeQ chan diskWrite
	wg     sync.WaitGroup // the writers
}

// maxOpenFiles bounds the cached block files kept open for ranged reads.
const maxOpenFiles = 512

type openFile struct {
	id remote.BlockID
	f  *os.File
}

type diskEntry struct {
	id   remote.BlockID
	size int64
	elem *list.Element // in lru, or in prot when prot is set; nil while pinned
	prot bool
	born int64 // when it came in (clock nanoseconds)
}

type diskWrite struct {
	id     remote.BlockID
	sealed []byte // owned by the write queue until written
	gen    uint64
	done   func() // when set, called once sealed is no longer needed
}

func newDisk(dir string, budget int64, log *slog.Logger, evictions, errs *atomic.Uint64, now func() time.Time) (*disk, error) {
	d := &disk{
		now:       now,
		budget:    budget,
		log:       log,
		evictions: evictions,
		errs:      errs,
		writeFile: writeTemp,
		space:     fsSpace,
		index:     make(map[remote.BlockID]*diskEntry),
		lru:       list.New(),
		prot:      list.New(),
		pins:      make(map[remote.BlockID]struct{}),
		fds:       make(map[remote.BlockID]*list.Element),
		fdLRU:     list.New(),
	}
	d.idle = sync.NewCond(&d.mu)
	if dir == "" || budget <= 0 {
		return d, nil
	}
	d.dir = dir
	if err := os.MkdirAll(filepath.Join(dir, blocksDir), 0o700); err != nil {
		return nil, fmt.Errorf("cache: create cache directory %s: %w (check the data dir's permissions)", dir, err)
	}
	// Leftovers of writes interrupted by a crash.
	if err := os.RemoveAll(filepath.Join(dir, tmpDir)); err != nil {
		return nil, fmt.Errorf("cache: clean %s: %w", filepath.Join(dir, tmpDir), err)
	}
	if err := os.MkdirAll(filepath.Join(dir, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("cache: create cache directory %s: %w", dir, err)
	}
	if err := d.scan(); err != nil {
		return nil, err
	}
	d.writeQ = make(chan diskWrite, maxPendingWrites)
	for range diskWriters {
		d.wg.Add(1)
		go d.writer()
	}
	return d, nil
}

// scan rebuilds the index from Dir/blocks. Files whose names are not block
// ids are left alone.
func (d *disk) scan() error {
	type found struct {
		e     *diskEntry
		mtime time.Time
	}
	var all []found
	root := filepath.Join(d.dir, blocksDir)
	subs, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("cache: read cache directory %s: %w", root, err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, sub.Name()))
		if err != nil {
			return fmt.Errorf("cache: read cache directory %s: %w", filepath.Join(root, sub.Name()), err)
		}
		for _, f := range files {
			id, ok := parseBlockName(sub.Name(), f.Name())
			if !ok || !f.Type().IsRegular() {
				d.log.Debug("cache: ignoring foreign file", "name", filepath.Join(root, sub.Name(), f.Name()))
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue // removed meanwhile
			}
			all = append(all, found{&diskEntry{id: id, size: info.Size()}, info.ModTime()})
		}
	}
	// Oldest first, each pushed to the front: the newest ends up in front.
	sort.Slice(all, func(i, j int) bool { return all[i].mtime.Before(all[j].mtime) })
	for _, f := range all {
		f.e.elem = d.lru.PushFront(f.e)
		d.index[f.e.id] = f.e
		d.bytes += f.e.size
	}
	return nil
}

// parseBlockName accepts "ab" / "ab<62 more hex digits>".
func parseBlockName(sub, name string) (remote.BlockID, bool) {
	var id remote.BlockID
	if len(name) != 2*len(id) || name[:2] != sub {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(name)); err != nil {
		return id, false
	}
	if hex.EncodeToString(id[:]) != name { // upper-case hex is not ours
		return id, false
	}
	return id, true
}

func (d *disk) path(id remote.BlockID) string {
	s := id.String()
	return filepath.Join(d.dir, blocksDir, s[:2], s)
}

// touch marks id used and returns its size, or false when it is not in the
// tier.
func (d *disk) touch(id remote.BlockID) (int64, bool) {
	if d.dir == "" {
		return 0, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.index[id]
	if !ok {
		return 0, false
	}
	switch {
	case e.elem == nil: // pinned
	case e.prot:
		d.prot.MoveToFront(e.elem)
	case d.now().UnixNano()-e.born >= int64(correlatedPeriod):
		d.protectLocked(e)
	default:
		d.lru.MoveToFront(e.elem)
	}
	return e.size, true
}

// promote moves id to the protected segment (memory saw it used again).
func (d *disk) promote(id remote.BlockID) {
	if d.dir == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.index[id]; ok && e.elem != nil && !e.prot {
		d.protectLocked(e)
	}
}

// protectLocked moves e (in probation) to protected, and protected's
// oldest back to probation while it holds more than its share. d.mu held.
func (d *disk) protectLocked(e *diskEntry) {
	d.lru.Remove(e.elem)
	e.elem, e.prot = d.prot.PushFront(e), true
	d.protB += e.size
	limit := d.budget * protectedNum / protectedDen
	for d.protB > limit && d.prot.Len() > 1 {
		old := d.prot.Remove(d.prot.Back()).(*diskEntry)
		d.protB -= old.size
		old.elem, old.prot, old.born = d.lru.PushFront(old), false, d.now().UnixNano()
	}
}

// unlistLocked takes e out of whichever segment holds it. d.mu held.
func (d *disk) unlistLocked(e *diskEntry) {
	if e.elem == nil {
		return
	}
	if e.prot {
		d.prot.Remove(e.elem)
		d.protB -= e.size
	} else {
		d.lru.Remove(e.elem)
	}
	e.elem, e.prot = nil, false
}

// oldestLocked is the next block to evict: probation's oldest, else
// protected's; nil when only pinned blocks are left. d.mu held.
func (d *disk) oldestLocked() *diskEntry {
	if el := d.lru.Back(); el != nil {
		return el.Value.(*diskEntry)
	}
	if el := d.prot.Back(); el != nil {
		return el.Value.(*diskEntry)
	}
	return nil
}

// read returns the whole sealed block cached for ref, read into buf when
// it has the capacity (else a new slice; either way owned by the caller),
// or false. A file that vanished or has the wrong length is dropped from
// the index.
func (d *disk) read(ref remote.BlockRef, buf []byte) ([]byte, bool) {
	return d.readAt(ref, 0, -1, buf)
}

// readAt returns n sealed bytes at off of the block cached for ref, read
// into buf when it has the capacity (else a new slice; either way owned by
// the caller), or false: a ranged read of the file (n < 0: to its end). A
// file that vanished or has the wrong length is dropped from the index.
func (d *disk) readAt(ref remote.BlockRef, off, n int64, buf []byte) ([]byte, bool) {
	size, ok := d.touch(ref.ID)
	if !ok || off < 0 || off > size {
		return nil, false
	}
	if n < 0 {
		n = size - off
	}
	if ref.Length > 0 && size != ref.Length || off+n > size {
		d.errs.Add(1)
		d.log.Warn("cache: cached block has the wrong length; deleting it", "block", ref.ID, "have", size, "want", ref.Length)
		d.remove(ref.ID)
		return nil, false
	}
	f, err := d.open(ref.ID)
	if err == nil {
		b := buf[:0]
		if int64(cap(b)) >= n {
			b = b[:n]
		} else {
			b = make([]byte, n)
		}
		if _, err = f.ReadAt(b, off); err == nil {
			return b, true
		}
		if errors.Is(err, fs.ErrClosed) {
			return nil, false // dropped meanwhile (evicted, cleared): a miss
		}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		d.errs.Add(1)
		d.log.Warn("cache: cannot read cached block; fetching it from the grid", "block", ref.ID, "err", err)
	}
	d.remove(ref.ID)
	return nil, false
}

// open returns an open file of block id for ReadAt: the one kept open, or
// a new one kept from now on. The file is closed when the block leaves the
// index, so a read racing with that fails with fs.ErrClosed.
func (d *disk) open(id remote.BlockID) (*os.File, error) {
	d.mu.Lock()
	if el, ok := d.fds[id]; ok {
		d.fdLRU.MoveToFront(el)
		f := el.Value.(*openFile).f
		d.mu.Unlock()
		return f, nil
	}
	d.mu.Unlock()
	f, err := os.Open(d.path(id))
	if err != nil {
		return nil, err
	}
	// Ranged reads of frames are random: no read-ahead of the rest of the
	// block by the kernel (a whole-block read asks for all of it anyway).
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM) // only a hint
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.fds[id]; ok { // opened meanwhile
		f.Close()
		return el.Value.(*openFile).f, nil
	}
	if _, ok := d.index[id]; !ok || d.closed { // dropped meanwhile: a miss
		f.Close()
		return nil, fs.ErrNotExist
	}
	d.fds[id] = d.fdLRU.PushFront(&openFile{id, f})
	for d.fdLRU.Len() > maxOpenFiles {
		d.closeFD(d.fdLRU.Back().Value.(*openFile).id)
	}
	return f, nil
}

// willNeed asks the kernel to read id's file into the page cache in the
// background (the block is about to be read whole: read-ahead), so its
// pread does not wait for the device. A block not in the tier, or a
// failure, is ignored: it is only a hint.
func (d *disk) willNeed(id remote.BlockID) {
	if !d.has(id) {
		return
	}
	f, err := d.open(id)
	if err != nil {
		return
	}
	// Control holds the fd, so an eviction closing the file meanwhile
	// cannot hand the hint to a reused descriptor.
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.Fadvise(int(fd), 0, 0, unix.FADV_WILLNEED) })
	}
}

// closeFD closes the kept-open file of id, if any. d.mu must be held.
func (d *disk) closeFD(id remote.BlockID) {
	if el, ok := d.fds[id]; ok {
		d.fdLRU.Remove(el)
		delete(d.fds, id)
		el.Value.(*openFile).f.Close()
	}
}

// remove deletes id's file (a corrupt or vanished one), pinned or not.
func (d *disk) remove(id remote.BlockID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.index[id]
	if !ok {
		return
	}
	d.drop(e)
}

// drop removes e from the index and deletes its file. d.mu must be held.
func (d *disk) drop(e *diskEntry) {
	d.closeFD(e.id)
	d.unlistLocked(e)
	delete(d.index, e.id)
	d.bytes -= e.size
	if err := os.Remove(d.path(e.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.errs.Add(1)
		d.log.Warn("cache: cannot delete cached block", "block", e.id, "err", err)
	}
}

// makeRoom drops the oldest unpinned blocks until need bytes are freed
// or none is left; it returns the bytes freed (Cache.MakeRoom).
func (d *disk) makeRoom(need int64) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var freed int64
	for freed < need {
		n, ok := d.evictOldestLocked()
		if !ok {
			break
		}
		freed += n
	}
	return freed
}

// evictOldestLocked drops the next block to evict (oldestLocked) and
// returns its size; false when only pinned blocks are left. d.mu held.
func (d *disk) evictOldestLocked() (int64, bool) {
	old := d.oldestLocked()
	if old == nil {
		return 0, false
	}
	d.drop(old)
	d.evictions.Add(1)
	return old.size, true
}

// store queues sealed (owned by the disk tier from now on) to be written.
// When the queue is full it writes the block itself before returning
// (backpressure: the fetch that brought the block pays for its write, and
// a sequential read that outruns the writers still leaves every block on
// disk for the next read). The caller holds sealed either way, so this
// costs no memory beyond the queue's bound.
// done, when set, is called once sealed is no longer needed (written,
// or not to be written), so the caller can reuse its buffer.
func (d *disk) store(id remote.BlockID, sealed []byte, done func()) {
	if d.dir == "" {
		if done != nil {
			done()
		}
		return
	}
	w, full, queued := d.enqueue(id, sealed, done)
	switch {
	case full:
		d.write(w)
		if done != nil {
			done()
		}
	case !queued && done != nil:
		done()
	}
}

// enqueue queues the write of id (queued: the writer calls done), or
// returns it (full) when the queue has no room; nothing is queued or
// returned when the block need not be written.
func (d *disk) enqueue(id remote.BlockID, sealed []byte, done func()) (w diskWrite, full, queued bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || time.Now().Before(d.offUntil) {
		return w, false, false
	}
	if _, ok := d.index[id]; ok {
		return w, false, false
	}
	if _, pinned := d.pins[id]; !pinned && int64(len(sealed)) > d.budget {
		return w, false, false
	}
	w = diskWrite{id: id, sealed: sealed, gen: d.gen}
	if d.pendingB+int64(len(sealed)) > maxPendingBytes && d.pending > 0 {
		return w, true, false
	}
	w.done = done
	select {
	case d.writeQ <- w:
		d.pending++
		d.pendingB += int64(len(sealed))
		return diskWrite{}, false, true
	default:
		w.done = nil
		return w, true, false
	}
}

// writeNow writes id's block before returning, not through the queue.
func (d *disk) writeNow(id remote.BlockID, sealed []byte) {
	d.mu.Lock()
	gen := d.gen
	d.mu.Unlock()
	d.write(diskWrite{id: id, sealed: sealed, gen: gen})
}

func (d *disk) writer() {
	defer d.wg.Done()
	for w := range d.writeQ {
		d.write(w)
		if w.done != nil {
			w.done()
		}
		d.mu.Lock()
		d.pending--
		d.pendingB -= int64(len(w.sealed))
		if d.pending == 0 {
			d.idle.Broadcast()
		}
		d.mu.Unlock()
	}
}

// write puts one block on disk: temp file, then (under mu) make room,
// rename, index. A failure is logged and ignored: the cache is only a cache.
func (d *disk) write(w diskWrite) {
	d.mu.Lock()
	skip := w.gen != d.gen || time.Now().Before(d.offUntil) || d.index[w.id] != nil
	d.mu.Unlock()
	if skip {
		return
	}
	tmp, err := d.writeFile(filepath.Join(d.dir, tmpDir), w.sealed)
	if err == nil {
		err = d.commit(w, int64(len(w.sealed)), tmp)
	}
	if err != nil {
		d.writeFailed(w.id, err)
	}
}

// adopt takes path, a file of id's sealed bytes (size of them) that
// someone else wrote, into the tier by renaming it into place, as a
// write's temp file is (commit). The file is deleted when the tier does
// not take it: disabled, closed, paused, holding id already, or full of
// pinned blocks. A rename across file systems fails (EXDEV); adopt then
// deletes from then on, with no copy: the cache is only a cache.
func (d *disk) adopt(id remote.BlockID, path string, size int64) {
	d.mu.Lock()
	skip := d.dir == "" || d.closed || d.noAdopt || time.Now().Before(d.offUntil) || d.index[id] != nil
	gen := d.gen
	d.mu.Unlock()
	if skip {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("cache: cannot delete a block file it did not keep", "path", path, "err", err)
		}
		return
	}
	err := d.commit(diskWrite{id: id, gen: gen}, size, path)
	switch {
	case errors.Is(err, syscall.EXDEV):
		d.mu.Lock()
		d.noAdopt = true
		d.mu.Unlock()
		d.log.Info("cache: the cache is on another file system than the journal; blocks just uploaded are not kept in it (they are fetched from the grid when read)", "dir", d.dir)
	case err != nil:
		d.writeFailed(id, err)
	}
}

// commit makes room for the block of size bytes written to tmp, renames
// it into place and indexes it. tmp is removed whenever it is not
// renamed. Room is the budget, and for an unpinned block the disk's
// reserve (diskReserve): tmp is on the disk already, so the block stays
// only when the disk has the reserve free with it, after evicting older
// blocks if need be.
func (d *disk) commit(w diskWrite, size int64, tmp string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, pinned := d.pins[w.id]
	if w.gen != d.gen || d.index[w.id] != nil {
		os.Remove(tmp)
		return nil
	}
	free, reserve := int64(0), int64(0)
	if !pinned {
		if fsSize, f, err := d.space(d.dir); err == nil {
			free, reserve = f, diskReserve(fsSize)
		}
	}
	for d.bytes+size > d.budget || free < reserve {
		n, ok := d.evictOldestLocked()
		if !ok {
			break
		}
		free += n
	}
	if (d.bytes+size > d.budget || free < reserve) && !pinned {
		// Everything left is pinned: no room for an unpinned block
		// within the budget, or without taking the disk's reserve.
		os.Remove(tmp)
		return nil
	}
	final := d.path(w.id)
	err := os.Rename(tmp, final)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(final), 0o700); err == nil {
			err = os.Rename(tmp, final)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	e := &diskEntry{id: w.id, size: size, born: d.now().UnixNano()}
	if !pinned {
		e.elem = d.lru.PushFront(e)
	}
	d.index[w.id] = e
	d.bytes += size
	return nil
}

func (d *disk) writeFailed(id remote.BlockID, err error) {
	d.errs.Add(1)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		d.mu.Lock()
		d.offUntil = time.Now().Add(fullDiskPause)
		d.mu.Unlock()
		d.log.Warn("cache: disk is full; caching on disk paused (reads are not affected)", "dir", d.dir, "pause", fullDiskPause, "err", err)
		return
	}
	d.log.Warn("cache: cannot write block to the disk cache; ignoring", "block", id, "err", err)
}

// writeTemp writes data to a new file in dir and returns its name.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, "blk-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// pin marks id as never to be evicted (whether it is cached yet or not).
func (d *disk) pin(id remote.BlockID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pins[id] = struct{}{}
	if e, ok := d.index[id]; ok {
		d.unlistLocked(e)
	}
}

func (d *disk) unpin(id remote.BlockID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pins, id)
	if e, ok := d.index[id]; ok && e.elem == nil {
		e.elem, e.born = d.lru.PushFront(e), d.now().UnixNano()
	}
}

// has reports whether id is in the disk tier's index (written and renamed
// into place). It takes d.mu.
func (d *disk) has(id remote.BlockID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.index[id]
	return ok
}

// isPinned reports whether id is pinned. It takes d.mu.
func (d *disk) isPinned(id remote.BlockID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.pins[id]
	return ok
}

// clear deletes every unpinned block and drops queued writes.
func (d *disk) clear() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	var errs []error
	for e := d.oldestLocked(); e != nil; e = d.oldestLocked() {
		d.unlistLocked(e)
		d.closeFD(e.id)
		delete(d.index, e.id)
		d.bytes -= e.size
		if err := os.Remove(d.path(e.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cache: clear %s: %w", d.dir, err)
	}
	return nil
}

// waitIdle blocks until no write is queued or running.
func (d *disk) waitIdle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.pending > 0 {
		d.idle.Wait()
	}
}

// close stops taking writes, finishes the queued ones and stops the writers.
func (d *disk) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	if d.writeQ != nil {
		close(d.writeQ)
	}
	for id := range d.fds {
		d.closeFD(id)
	}
	d.mu.Unlock()
	d.wg.Wait()
}

func (d *disk) stats() (bytes, blocks int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bytes, int64(len(d.index))
}
