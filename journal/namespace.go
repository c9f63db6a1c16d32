package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"modernc.org/sqlite"
)

const (
	sIFMT   = syscall.S_IFMT
	sIFDIR  = syscall.S_IFDIR
	sIFREG  = syscall.S_IFREG
	sIFLNK  = syscall.S_IFLNK
	maxName = 255
	// maxXattr bounds an xattr value (as Linux does).
	maxXattr = 64 << 10
)

const attrCols = `i.ino, i.mode, i.nlink, i.uid, i.gid, i.rdev, i.size, i.used, i.atime, i.mtime, i.ctime`

func nowNS() int64 { return time.Now().UnixNano() }

type scanner interface{ Scan(dest ...any) error }

func scanAttr(s scanner) (Attr, error) {
	var a Attr
	var used, at, mt, ct int64
	if err := s.Scan(&a.Ino, &a.Mode, &a.Nlink, &a.Uid, &a.Gid, &a.Rdev, &a.Size, &used, &at, &mt, &ct); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return a, ErrNotFound
		}
		return a, fmt.Errorf("journal: read inode: %w", err)
	}
	a.Blocks = uint64(used+511) / 512
	a.Atime, a.Mtime, a.Ctime = time.Unix(0, at), time.Unix(0, mt), time.Unix(0, ct)
	return a, nil
}

func isDir(mode uint32) bool { return mode&sIFMT == sIFDIR }

func checkName(name string) error {
	if len(name) > maxName {
		return fmt.Errorf("%w: %d bytes", ErrNameTooLong, len(name))
	}
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: file name %q", ErrInvalid, name)
	}
	return nil
}

// Lookup finds name in the directory parent.
func (j *namespace) Lookup(ctx context.Context, parent Ino, name string) (Attr, error) {
	if err := j.checkOpen(); err != nil {
		return Attr{}, err
	}
	if len(name) > maxName {
		return Attr{}, ErrNameTooLong
	}
	if a, ok := j.createdOverlay(func() (Attr, bool) { return j.unl.createdAt(parent, name) }); ok {
		return a, nil
	}
	if j.unl.unlinkPending(parent, name) {
		return Attr{}, ErrNotFound
	}
	if p, ok := j.unl.createdAttr(parent); ok && isDir(p.Mode) {
		// In a directory a pending mkdir made, every name is pending
		// (createdAt found none): the database has none under it. (One
		// applied with it is forgotten with it, by one dropApplied.)
		return Attr{}, ErrNotFound
	}
	rs := j.unl.rmSeq.Load()
	for try := 0; ; try++ {
		gen, cached := j.cacheGen()
		a, err := j.lookupOnce(ctx, parent, name, gen, cached)
		if err != nil || try > 0 || !j.flushedSince(gen) {
			if err == nil && isDir(a.Mode) {
				a.Nlink = uint32(int(a.Nlink) + j.unl.pendingNlink(a.Ino)) // as GetAttr shows it
				if !j.unl.rmSeqSame(rs) {
					// Rmdirs or mkdirs were applied meanwhile: the
					// row may count one that the count did too.
					rs, try = j.unl.rmSeqEven(), -1
					continue
				}
			}
			return a, err
		}
	}
}

// flushedSince reports whether a flush committed after commitGen was gen.
// A read that began before it may have read the row from before the
// flush and then found the in-memory attributes gone (the flush clears
// them after its commit): GetAttr and Lookup read once more.
func (j *namespace) flushedSince(gen uint64) bool { return j.flushGen.Load() > gen }

// raiseGen sets g to v unless it is past v already: flushGen only goes
// up, whoever stores it first (a flush's clean runs without wmu).
func raiseGen(g *atomic.Uint64, v uint64) {
	for {
		old := g.Load()
		if old >= v || g.CompareAndSwap(old, v) {
			return
		}
	}
}

func (j *namespace) lookupOnce(ctx context.Context, parent Ino, name string, gen uint64, cached bool) (Attr, error) {
	if a, ok := j.la.get(parent, name, gen); ok && cached {
		j.lastLk.put(parent, name, a, gen)
		return j.it.overlay(a), nil
	}
	if cached && j.names.absent(parent, name, gen) {
		j.lastLk.put(parent, name, Attr{}, gen)
		return Attr{}, ErrNotFound
	}
	var cookie int64
	st, release := j.reader(j.st.lookup, j.wst.lookup)
	a, err := scanAttr(rowScanner{st.QueryRowContext(ctx, parent, name), nil, &cookie})
	release()
	if err == nil && cached {
		j.lastLk.put(parent, name, a, gen)
		switch window, table := j.la.seen(parent, cookie); {
		case window:
			j.fillLookAhead(ctx, parent, cookie, gen)
		case table:
			j.fillTable(ctx, parent, gen)
		}
	}
	if errors.Is(err, ErrNotFound) {
		if !j.dirs.has(parent) {
			// Tell a missing name from a parent that is not a directory.
			if _, perr := j.dirAttr(ctx, nil, parent); perr != nil {
				return Attr{}, perr
			}
			j.dirs.add(parent)
		}
		if cached {
			j.lastLk.put(parent, name, Attr{}, gen)
		}
	}
	if err != nil {
		return Attr{}, err
	}
	return j.it.overlay(a), nil
}

// lastLookup remembers the newest lookup that found its name, as the
// database had it at commitGen gen: an unlink asks again for the name the
// kernel looked up just before (deferUnlink), which the window has
// already given away and which is no reason to read a directory's table.
// It remembers a lookup that found nothing too: a create asks again for
// the name the kernel looked up just before (deferCreate).
type lastLookup struct {
	mu     sync.Mutex
	parent Ino
	name   string
	a      Attr // Ino 0: the name was missing
	gen    uint64
}

func (l *lastLookup) put(parent Ino, name string, a Attr, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parent, l.name, l.a, l.gen = parent, name, a, gen
}

// missing reports whether the newest lookup, at commitGen gen, found no
// name in parent.
func (l *lastLookup) missing(parent Ino, name string, gen uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen == gen && l.parent == parent && l.name == name && l.a.Ino == 0
}

// get returns the remembered answer for name in parent if no commit came
// since it was read.
func (l *lastLookup) get(parent Ino, name string, gen uint64) (Attr, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen || l.parent != parent || l.name != name || l.a.Ino == 0 {
		return Attr{}, false
	}
	return l.a, true
}

// knownDirs remembers inodes seen to be directories, so that a lookup of
// a missing name (every create starts with one) needs no second query to
// tell ENOENT from ENOTDIR. Always right: an inode's type never changes
// and its number is never reused; once the directory is gone its lookups
// find nothing, which is ENOENT either way. Bounded: forgets all at
// knownDirsMax.
type knownDirs struct {
	mu sync.Mutex
	m  map[Ino]struct{}
}

const knownDirsMax = 1 << 16

func (d *knownDirs) has(ino Ino) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.m[ino]
	return ok
}

func (d *knownDirs) add(ino Ino) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || len(d.m) >= knownDirsMax {
		d.m = map[Ino]struct{}{}
	}
	d.m[ino] = struct{}{}
}

// GetAttr returns an inode's attributes, including unflushed writes.
func (j *namespace) GetAttr(ctx context.Context, ino Ino) (Attr, error) {
	if err := j.checkOpen(); err != nil {
		return Attr{}, err
	}
	if a, ok := j.createdOverlay(func() (Attr, bool) { return j.unl.createdAttr(ino) }); ok {
		return a, nil
	}
	// Before the read: an apply in between writes these times. A
	// pending change of the directory's times comes after them
	// (dirattr.go), before the read or after it.
	pend, pending := j.unl.dirPendTime(ino)
	set0, set := j.unl.dirSet(ino)
	rs := j.unl.rmSeq.Load()
	for try := 0; ; try++ {
		gen, cached := j.cacheGen()
		a, err := j.getAttrOnce(ctx, ino, gen, cached)
		if err != nil || try > 0 || !j.flushedSince(gen) {
			if pending && err == nil && pend > a.Mtime.UnixNano() {
				set1, set2 := j.unl.dirSet(ino)
				if (set0.has|set1.has)&setHasMtime == 0 {
					a.Mtime = time.Unix(0, pend)
				}
				if !set && !set2 {
					a.Ctime = a.Mtime
				} // else the change's, applied after the times
			}
			if pending && err == nil {
				a.Nlink = uint32(int(a.Nlink) + j.unl.pendingNlink(ino))
				if !j.unl.rmSeqSame(rs) {
					// Rmdirs or mkdirs were applied meanwhile
					// (unlinkQueue.rmSeq).
					rs, try = j.unl.rmSeqEven(), -1
					continue
				}
			}
			return a, err
		}
	}
}

// createdOverlay is the attributes of a file a pending create made (found
// by created), with what the inode in memory holds laid over them: its
// size and times once written and closed. The apply that commits the
// create commits the file's logged close with it and cleans the inode
// after: an overlay read across that cleaned inode is the create's empty
// file (CI's go build read an empty go.mod). So the create must still be
// pending after the overlay, and no clean have run meanwhile; else false
// once the create is gone (the caller reads the committed row).
func (j *namespace) createdOverlay(created func() (Attr, bool)) (Attr, bool) {
	for try := 0; ; try++ {
		gen := j.commitGen.Load()
		a, ok := created()
		if !ok {
			return Attr{}, false
		}
		if j.createdHook != nil {
			j.createdHook()
		}
		o := j.it.overlay(a)
		if _, still := created(); !still {
			return Attr{}, false
		}
		if !j.flushedSince(gen) || try >= 3 {
			return o, true
		}
	}
}

func (j *namespace) getAttrOnce(ctx context.Context, ino Ino, gen uint64, cached bool) (Attr, error) {
	a, ok := j.ac.get(ino, gen)
	if !ok || !cached {
		st, release := j.reader(j.st.getattr, j.wst.getattr)
		var err error
		a, err = scanAttr(st.QueryRowContext(ctx, ino))
		release()
		if err != nil {
			return Attr{}, err
		}
		if cached {
			j.ac.put(ino, a, gen)
		}
	}
	if j.attrReadHook != nil {
		j.attrReadHook(ino)
	}
	return j.it.overlay(a), nil
}

// cacheGen returns commitGen for lookAhead and attrCache, and false when
// they must not be used: a read-only journal's database may be written by
// another process, whose commits commitGen does not count.
func (j *namespace) cacheGen() (uint64, bool) {
	return j.commitGen.Load(), !j.o.ReadOnly
}

// getAttrTx reads an inode inside a transaction (no overlay).
func (j *namespace) getAttrTx(ctx context.Context, tx *sql.Tx, ino Ino) (Attr, error) {
	return scanAttr(j.tqrow(ctx, tx, `SELECT `+attrCols+` FROM inodes i WHERE i.ino = ?`, ino))
}

// dirAttr reads ino and checks that it is a directory. tx may be nil.
func (j *namespace) dirAttr(ctx context.Context, tx *sql.Tx, ino Ino) (Attr, error) {
	var a Attr
	var err error
	if c, ok := j.unl.createdAttr(ino); ok && tx == nil {
		if isDir(c.Mode) {
			return c, nil // a deferred mkdir's (creates.go)
		}
		return a, ErrNotDir // a deferred create's regular file
	}
	if tx == nil {
		st, release := j.reader(j.st.getattr, j.wst.getattr)
		a, err = scanAttr(st.QueryRowContext(ctx, ino))
		release()
	} else {
		a, err = j.getAttrTx(ctx, tx, ino)
	}
	if err != nil {
		return a, err
	}
	if !isDir(a.Mode) {
		return a, ErrNotDir
	}
	return a, nil
}

// lookupTx finds an entry's inode inside a transaction.
func (j *namespace) lookupTx(ctx context.Context, tx *sql.Tx, parent Ino, name string) (Ino, uint32, error) {
	var ino Ino
	var mode uint32
	err := j.tqrow(ctx, tx, `SELECT e.ino, i.mode FROM entries e JOIN inodes i ON i.ino = e.ino
		WHERE e.parent = ? AND e.name = ?`, parent, name).Scan(&ino, &mode)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, ErrNotFound
	}
	if err != nil {
		return 0, 0, fmt.Errorf("journal: lookup: %w", err)
	}
	return ino, mode, nil
}

func (j *namespace) touchDir(ctx context.Context, tx *sql.Tx, dir Ino, now int64, dNlink int) error {
	_, err := j.texec(ctx, tx, `UPDATE inodes SET mtime = ?, ctime = ?, nlink = nlink + ? WHERE ino = ?`, now, now, dNlink, dir)
	return err
}

// create makes a new inode and its entry.
func (j *namespace) create(ctx context.Context, parent Ino, name string, mode, rdev, uid, gid uint32, target string) (Attr, error) {
	if err := j.checkWrite(); err != nil {
		return Attr{}, err
	}
	if err := checkName(name); err != nil {
		return Attr{}, err
	}
	var a, parentAttr Attr
	j.unl.cmu.Lock()
	a, done, err := j.ul.deferCreate(ctx, parent, name, mode, uid, gid)
	if done && err == nil && mode&sIFMT == sIFREG {
		j.imu.Lock()
		j.created = created{ino: a.Ino, mode: mode, gen: j.commitGen.Load()}
		j.imu.Unlock()
	}
	j.unl.cmu.Unlock()
	if done {
		return a, err
	}
	// The synchronous way: wmu, then cmu (unlinks.go) for the checks of
	// its transaction and crNext. A deferred create in another
	// directory waits for this transaction, not for wmu before it.
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.unl.cmu.Lock()
	defer j.unl.cmu.Unlock()
	// Three statements: the parent's update (which also checks that it
	// is a directory), the inode, the entry (whose UNIQUE(parent, name)
	// says whether the name is taken); the reply is built from what was
	// inserted rather than read back.
	j.foldLight = true // no file's row but the new one
	err = j.txLocked(ctx, func(tx *sql.Tx) error {
		now := nowNS()
		nlink, dl := 1, 0
		if isDir(mode) {
			nlink, dl = 2, 1
		}
		pa, err := scanAttr(j.tqrow(ctx, tx, `UPDATE inodes SET mtime = ?, ctime = ?, nlink = nlink + ? WHERE ino = ? AND mode & ? = ?
			RETURNING `+strings.ReplaceAll(attrCols, "i.", ""), now, now, dl, parent, sIFMT, sIFDIR))
		if errors.Is(err, ErrNotFound) {
			if _, err := j.dirAttr(ctx, tx, parent); err != nil {
				return err // ErrNotFound or ErrNotDir
			}
			return fmt.Errorf("journal: update parent %d: no row changed", parent)
		}
		if err != nil {
			return fmt.Errorf("journal: update parent: %w", err)
		}
		parentAttr = pa
		size := len(target)
		res, err := j.texec(ctx, tx, `INSERT INTO inodes(mode, uid, gid, rdev, nlink, size, atime, mtime, ctime)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`, mode, uid, gid, rdev, nlink, size, now, now, now)
		if err != nil {
			return fmt.Errorf("journal: create inode: %w", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("journal: create inode: %w", err)
		}
		if _, err := j.texec(ctx, tx, `INSERT INTO entries(parent, name, ino) VALUES(?, ?, ?)`, parent, name, id); err != nil {
			if isUniqueViolation(err) {
				return ErrExist
			}
			return fmt.Errorf("journal: create entry: %w", err)
		}
		var made Ino
		if isDir(mode) {
			made = Ino(id)
		}
		j.entryAddedLocked(parent, name, made)
		if target != "" {
			if _, err := j.texec(ctx, tx, `INSERT INTO symlinks(ino, target) VALUES(?, ?)`, id, target); err != nil {
				return fmt.Errorf("journal: create symlink: %w", err)
			}
		}
		t := time.Unix(0, now)
		a = Attr{Ino: Ino(id), Mode: mode, Nlink: uint32(nlink), Uid: uid, Gid: gid, Rdev: rdev, Size: uint64(size),
			Atime: t, Mtime: t, Ctime: t}
		return nil
	})
	if err != nil {
		// The creates it folded are rolled back, pending still: crNext
		// stays past their numbers (reset, the next deferred create
		// took sqlite_sequence's next, one of theirs).
		return a, err
	}
	// AUTOINCREMENT took the number, past every create pending (the
	// commit applied them all first): the next deferred one reads it.
	j.unl.crNext = 0
	gen := j.commitGen.Load() // wmu held: no commit since this one
	j.ac.put(parent, parentAttr, gen)
	j.ac.put(a.Ino, a, gen)
	if mode&sIFMT == sIFREG {
		j.imu.Lock()
		j.created = created{ino: a.Ino, mode: mode, gen: gen}
		j.imu.Unlock()
	}
	return a, nil
}

// created is the newest regular file made: its open (which comes next
// when it was made by open(O_CREAT)) knows its mode and size without a
// query, as long as no commit came between (OpenFile).
type created struct {
	ino  Ino
	mode uint32
	gen  uint64 // commitGen after its commit
}

// isUniqueViolation reports whether err is sqlite's UNIQUE or PRIMARY KEY
// constraint failing.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	const constraintUnique, constraintPrimaryKey = 2067, 1555 // SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY
	return se.Code() == constraintUnique || se.Code() == constraintPrimaryKey
}

// Mknod creates a regular file, fifo, socket or device node. A mode
// without type bits is a regular file.
func (j *namespace) Mknod(ctx context.Context, parent Ino, name string, mode, rdev, uid, gid uint32) (Attr, error) {
	switch mode & sIFMT {
	case 0:
		mode |= sIFREG
	case sIFREG, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	default:
		return Attr{}, fmt.Errorf("%w: mknod of type %#o", ErrInvalid, mode&sIFMT)
	}
	return j.create(ctx, parent, name, mode, rdev, uid, gid, "")
}

// Mkdir creates a directory; like a regular file's create, it is
// deferred when it can be (creates.go).
func (j *namespace) Mkdir(ctx context.Context, parent Ino, name string, mode, uid, gid uint32) (Attr, error) {
	return j.create(ctx, parent, name, sIFDIR|mode&07777, 0, uid, gid, "")
}

// Symlink creates a symbolic link to target.
func (j *namespace) Symlink(ctx context.Context, parent Ino, name, target string, uid, gid uint32) (Attr, error) {
	if target == "" || len(target) > 4096 {
		return Attr{}, fmt.Errorf("%w: symlink target of %d bytes", ErrInvalid, len(target))
	}
	return j.create(ctx, parent, name, sIFLNK|0o777, 0, uid, gid, target)
}

// Readlink returns a symlink's target.
func (j *namespace) Readlink(ctx context.Context, ino Ino) (string, error) {
	if err := j.checkOpen(); err != nil {
		return "", err
	}
	var t string
	err := j.qrow(ctx, `SELECT target FROM symlinks WHERE ino = ?`, ino).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		if _, gerr := j.GetAttr(ctx, ino); gerr != nil {
			return "", gerr
		}
		return "", fmt.Errorf("%w: inode %d is not a symlink", ErrInvalid, ino)
	}
	if err != nil {
		return "", fmt.Errorf("journal: readlink: %w", err)
	}
	return t, nil
}

// Link adds a hard link newParent/newName to ino.
func (j *namespace) Link(ctx context.Context, ino, newParent Ino, newName string) (Attr, error) {
	if err := j.checkWrite(); err != nil {
		return Attr{}, err
	}
	if err := checkName(newName); err != nil {
		return Attr{}, err
	}
	var a Attr
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.unl.cmu.Lock() // a name added: unlinks.go
	defer j.unl.cmu.Unlock()
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		src, err := j.getAttrTx(ctx, tx, ino)
		if err != nil {
			return err
		}
		if isDir(src.Mode) {
			return fmt.Errorf("%w: cannot hard-link a directory", ErrIsDir)
		}
		if src.Nlink == 0 && !j.it.isOpen(ino) {
			// An open file with no name (open(O_TMPFILE), or unlinked
			// while open) may be given one: linkat(2) of the descriptor.
			// The handle keeps the reaper off it until the link commits
			// (reclaimBatch skips open inodes, freeTx those with links).
			return fmt.Errorf("%w: inode %d was unlinked", ErrNotFound, ino)
		}
		if _, err := j.dirAttr(ctx, tx, newParent); err != nil {
			return err
		}
		if _, _, err := j.lookupTx(ctx, tx, newParent, newName); err == nil {
			return ErrExist
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		now := nowNS()
		if _, err := j.texec(ctx, tx, `INSERT INTO entries(parent, name, ino) VALUES(?, ?, ?)`, newParent, newName, ino); err != nil {
			return fmt.Errorf("journal: link: %w", err)
		}
		if _, err := j.texec(ctx, tx, `UPDATE inodes SET nlink = nlink + 1, ctime = ? WHERE ino = ?`, now, ino); err != nil {
			return fmt.Errorf("journal: link: %w", err)
		}
		if err := j.touchDir(ctx, tx, newParent, now, 0); err != nil {
			return err
		}
		a, err = j.getAttrTx(ctx, tx, ino)
		return err
	})
	if err != nil {
		return Attr{}, err
	}
	return j.it.overlay(a), nil
}

// Unlink removes a non-directory entry. The inode's data lives on while
// the file is open (see OpenFile/ReleaseFile).
func (j *namespace) Unlink(ctx context.Context, parent Ino, name string) error {
	if err := j.checkWrite(); err != nil {
		return err
	}
	if len(name) > maxName {
		return ErrNameTooLong
	}
	if done, err := j.ul.deferUnlink(ctx, parent, name); done {
		return err
	}
	var gone Ino
	var parentAttr Attr
	j.wmu.Lock()
	defer j.wmu.Unlock()
	// imuHeld: the transaction took imu to drop the inode row itself (see
	// below); it is held until the commit or rollback is over.
	imuHeld := false
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		// Three statements: the entry goes, the inode loses a link (or,
		// when it is the last and nothing else is left of the file, its
		// row goes), the parent's times move (its row comes back for the
		// kernel's GETATTR of the directory that follows); a directory's
		// entry comes back with the rollback, and no entry at all asks
		// whether parent is one.
		var ino Ino
		err := j.tqrow(ctx, tx, `DELETE FROM entries WHERE parent = ? AND name = ? RETURNING ino`, parent, name).Scan(&ino)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := j.dirAttr(ctx, tx, parent); err != nil {
				return err
			}
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("journal: unlink: %w", err)
		}
		now := nowNS()
		// A file with no handle, no dirty data and no in-memory state
		// (not in j.inodes), no block map row and no other link is
		// freed here and now: that is one DELETE instead of the UPDATE
		// below plus the reaper's transaction. imu is held from the look
		// at j.inodes until the commit, so no OpenFile of it comes in
		// between (lock order wmu -> imu); any other file takes the
		// reaper's way.
		j.imu.Lock()
		imuHeld = true
		if j.inodes[ino] == nil {
			dropped, err := j.dropEmptyInode(ctx, tx, ino)
			if err != nil {
				return err
			}
			if dropped {
				return j.unlinkParent(ctx, tx, parent, now, ino, &parentAttr)
			}
		}
		j.imu.Unlock()
		imuHeld = false
		var mode uint32
		if err := j.tqrow(ctx, tx, `UPDATE inodes SET nlink = nlink - 1, ctime = ? WHERE ino = ? RETURNING mode`, now, ino).Scan(&mode); err != nil {
			return fmt.Errorf("journal: unlink: %w", err)
		}
		if isDir(mode) {
			return ErrIsDir
		}
		gone = ino
		return j.unlinkParent(ctx, tx, parent, now, ino, &parentAttr)
	})
	if imuHeld {
		j.imu.Unlock()
	}
	if err != nil {
		return err
	}
	j.ac.put(parent, parentAttr, j.commitGen.Load()) // wmu held: no commit since this one
	j.it.reclaimLater(gone)
	return nil
}

// dropEmptyInode deletes ino's row when its last link is going and
// nothing else is left of it (not a directory, no block map row), and
// reports whether it did. The caller holds imu and saw ino absent from
// j.inodes; within txLocked's fn.
func (j *namespace) dropEmptyInode(ctx context.Context, tx *sql.Tx, ino Ino) (bool, error) {
	var mode uint32
	err := j.tqrow(ctx, tx, `DELETE FROM inodes WHERE ino = ?1 AND nlink = 1 AND mode & ?2 != ?3
		AND NOT EXISTS(SELECT 1 FROM blockmap WHERE ino = ?1) RETURNING mode`, ino, sIFMT, sIFDIR).Scan(&mode)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("journal: unlink: %w", err)
	}
	return true, nil
}

// unlinkParent is the last statement of an unlink of ino from parent:
// the parent's times move, and its row comes back in pa. wmu held,
// within txLocked's fn.
func (j *namespace) unlinkParent(ctx context.Context, tx *sql.Tx, parent Ino, now int64, ino Ino, pa *Attr) error {
	var err error
	*pa, err = scanAttr(j.tqrow(ctx, tx, `UPDATE inodes SET mtime = ?1, ctime = ?1 WHERE ino = ?2
		RETURNING `+strings.ReplaceAll(attrCols, "i.", ""), now, parent))
	if err != nil {
		return fmt.Errorf("journal: unlink: update parent: %w", err)
	}
	j.narrowLocked(ino, parent)
	return nil
}

// Rmdir removes an empty directory.
func (j *namespace) Rmdir(ctx context.Context, parent Ino, name string) error {
	if err := j.checkWrite(); err != nil {
		return err
	}
	if len(name) > maxName {
		return ErrNameTooLong
	}
	if name == "." {
		return ErrInvalid
	}
	if name == ".." {
		return ErrNotEmpty
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.unl.cmu.Lock() // no create in the directory meanwhile: unlinks.go
	defer j.unl.cmu.Unlock()
	if done, err := j.ul.deferRmdirLocked(ctx, parent, name); done {
		return err
	}
	// The unlinks pending in the directory are applied in the rmdir's
	// transaction.
	return j.ul.txApplyingLocked(ctx, func(tx *sql.Tx) error {
		if _, err := j.dirAttr(ctx, tx, parent); err != nil {
			return err
		}
		ino, mode, err := j.lookupTx(ctx, tx, parent, name)
		if err != nil {
			return err
		}
		if !isDir(mode) {
			return ErrNotDir
		}
		if err := j.dirEmpty(ctx, tx, ino); err != nil {
			return err
		}
		return j.dropDirTx(ctx, tx, parent, name, ino, nowNS())
	})
}

// dropDirTx removes the empty directory ino, name in parent: its entry,
// its inode, and its parent's link, with the parent's times set to t.
// Rmdir and a deferred rmdir's apply. wmu held, within txLocked's fn.
func (j *namespace) dropDirTx(ctx context.Context, tx *sql.Tx, parent Ino, name string, ino Ino, t int64) error {
	if _, err := j.texec(ctx, tx, `DELETE FROM entries WHERE parent = ? AND name = ?`, parent, name); err != nil {
		return fmt.Errorf("journal: rmdir: %w", err)
	}
	if _, err := j.texec(ctx, tx, `DELETE FROM inodes WHERE ino = ?`, ino); err != nil {
		return fmt.Errorf("journal: rmdir: %w", err)
	}
	j.narrowLocked(ino, parent)
	j.ents.removed = append(j.ents.removed, ino)
	return j.touchDir(ctx, tx, parent, t, -1)
}

func (j *namespace) dirEmpty(ctx context.Context, tx *sql.Tx, dir Ino) error {
	var one int
	err := j.tqrow(ctx, tx, `SELECT 1 FROM entries WHERE parent = ? LIMIT 1`, dir).Scan(&one)
	if err == nil {
		return ErrNotEmpty
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return fmt.Errorf("journal: read directory: %w", err)
}

// isAncestor reports whether anc is dir or one of its ancestors.
func (j *namespace) isAncestor(ctx context.Context, tx *sql.Tx, anc, dir Ino) (bool, error) {
	for i := 0; ; i++ {
		if dir == anc {
			return true, nil
		}
		if dir == RootIno || i > 1<<16 {
			return false, nil
		}
		if err := j.tqrow(ctx, tx, `SELECT parent FROM entries WHERE ino = ? LIMIT 1`, dir).Scan(&dir); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil
			}
			return false, fmt.Errorf("journal: walk up the tree: %w", err)
		}
	}
}

// Rename moves oldParent/oldName to newParent/newName, replacing a
// target (a directory only if it is empty) unless flags say otherwise.
func (j *namespace) Rename(ctx context.Context, oldParent Ino, oldName string, newParent Ino, newName string, flags uint32) error {
	if err := j.checkWrite(); err != nil {
		return err
	}
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return fmt.Errorf("%w: rename flags %#x", ErrInvalid, flags)
	}
	if len(oldName) > maxName {
		return ErrNameTooLong
	}
	if err := checkName(newName); err != nil {
		return err
	}
	if oldName == "" || oldName == "." || oldName == ".." {
		return ErrInvalid
	}
	var gone Ino
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.unl.cmu.Lock() // a name added: unlinks.go
	defer j.unl.cmu.Unlock()
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		if _, err := j.dirAttr(ctx, tx, oldParent); err != nil {
			return err
		}
		if _, err := j.dirAttr(ctx, tx, newParent); err != nil {
			return err
		}
		src, smode, err := j.lookupTx(ctx, tx, oldParent, oldName)
		if err != nil {
			return err
		}
		dst, dmode, err := j.lookupTx(ctx, tx, newParent, newName)
		dstExists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if oldParent == newParent && oldName == newName {
			if flags&RenameExchange != 0 || !dstExists {
				return nil
			}
			if flags&RenameNoReplace != 0 {
				return ErrExist
			}
			return nil
		}
		// A directory may not move into its own subtree.
		if isDir(smode) && oldParent != newParent {
			if in, err := j.isAncestor(ctx, tx, src, newParent); err != nil {
				return err
			} else if in {
				return fmt.Errorf("%w: cannot move a directory into itself", ErrInvalid)
			}
		}
		now := nowNS()
		if flags&RenameExchange != 0 {
			if !dstExists {
				return ErrNotFound
			}
			if isDir(dmode) && oldParent != newParent {
				if in, err := j.isAncestor(ctx, tx, dst, oldParent); err != nil {
					return err
				} else if in {
					return fmt.Errorf("%w: cannot move a directory into itself", ErrInvalid)
				}
			}
			if _, err := j.texec(ctx, tx, `UPDATE entries SET ino = ? WHERE parent = ? AND name = ?`, dst, oldParent, oldName); err != nil {
				return fmt.Errorf("journal: rename: %w", err)
			}
			if _, err := j.texec(ctx, tx, `UPDATE entries SET ino = ? WHERE parent = ? AND name = ?`, src, newParent, newName); err != nil {
				return fmt.Errorf("journal: rename: %w", err)
			}
			// Both names now lead elsewhere: noted once more each, so
			// that a metadata record leaves neither out (metadefer.go).
			if _, err := j.texec(ctx, tx, `INSERT INTO mdirty(tbl, a, b) VALUES(2, ?, ?), (2, ?, ?)`, oldParent, oldName, newParent, newName); err != nil {
				return fmt.Errorf("journal: rename: %w", err)
			}
			dOld, dNew := 0, 0
			if oldParent != newParent {
				if isDir(smode) {
					dOld--
					dNew++
				}
				if isDir(dmode) {
					dOld++
					dNew--
				}
			}
			if err := j.touchDir(ctx, tx, oldParent, now, dOld); err != nil {
				return err
			}
			if err := j.touchDir(ctx, tx, newParent, now, dNew); err != nil {
				return err
			}
			_, err := j.texec(ctx, tx, `UPDATE inodes SET ctime = ? WHERE ino IN (?, ?)`, now, src, dst)
			return err
		}
		if dstExists {
			if flags&RenameNoReplace != 0 {
				return ErrExist
			}
			if dst == src {
				// Two links to one inode: POSIX says do nothing.
				return nil
			}
			switch {
			case isDir(smode) && !isDir(dmode):
				return ErrNotDir
			case !isDir(smode) && isDir(dmode):
				return ErrIsDir
			case isDir(dmode):
				if err := j.dirEmpty(ctx, tx, dst); err != nil {
					return err
				}
			}
			if _, err := j.texec(ctx, tx, `DELETE FROM entries WHERE parent = ? AND name = ?`, newParent, newName); err != nil {
				return fmt.Errorf("journal: rename: %w", err)
			}
			if isDir(dmode) {
				if _, err := j.texec(ctx, tx, `DELETE FROM inodes WHERE ino = ?`, dst); err != nil {
					return fmt.Errorf("journal: rename: %w", err)
				}
				if err := j.touchDir(ctx, tx, newParent, now, -1); err != nil {
					return err
				}
			} else {
				if _, err := j.texec(ctx, tx, `UPDATE inodes SET nlink = nlink - 1, ctime = ? WHERE ino = ?`, now, dst); err != nil {
					return fmt.Errorf("journal: rename: %w", err)
				}
				gone = dst
			}
		}
		// A new cookie for the moved entry: delete and insert.
		if _, err := j.texec(ctx, tx, `DELETE FROM entries WHERE parent = ? AND name = ?`, oldParent, oldName); err != nil {
			return fmt.Errorf("journal: rename: %w", err)
		}
		if _, err := j.texec(ctx, tx, `INSERT INTO entries(parent, name, ino) VALUES(?, ?, ?)`, newParent, newName, src); err != nil {
			return fmt.Errorf("journal: rename: %w", err)
		}
		dl := 0
		if isDir(smode) && oldParent != newParent {
			dl = 1
		}
		if err := j.touchDir(ctx, tx, oldParent, now, -dl); err != nil {
			return err
		}
		if err := j.touchDir(ctx, tx, newParent, now, dl); err != nil {
			return err
		}
		_, err = j.texec(ctx, tx, `UPDATE inodes SET ctime = ? WHERE ino = ?`, now, src)
		return err
	})
	if err != nil {
		return err
	}
	if gone != 0 {
		j.it.reclaimLater(gone)
	}
	return nil
}

// ReadDir returns up to max entries of dir after cookie off (0 = start).
// "." and ".." are not included.
func (j *namespace) ReadDir(ctx context.Context, dir Ino, off uint64, max int) ([]DirEntry, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1024
	}
	if err := j.ul.applyUnlinksFor(ctx, dir); err != nil {
		return nil, err
	}
	rows, err := j.st.readdir.QueryContext(ctx, dir, int64(off), max)
	if err != nil {
		return nil, fmt.Errorf("journal: readdir: %w", err)
	}
	defer rows.Close()
	var out []DirEntry
	for rows.Next() {
		var e DirEntry
		if err := rows.Scan(&e.Name, &e.Ino, &e.Mode, &e.Off); err != nil {
			return nil, fmt.Errorf("journal: readdir: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: readdir: %w", err)
	}
	if len(out) == 0 && off == 0 {
		if _, err := j.dirAttr(ctx, nil, dir); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ResolvePath walks a slash-separated path relative to the root.
func (j *namespace) ResolvePath(ctx context.Context, path string) (Ino, error) {
	ino := RootIno
	for _, part := range strings.Split(path, "/") {
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			return 0, fmt.Errorf("%w: %q contains ..", ErrInvalid, path)
		}
		a, err := j.Lookup(ctx, ino, part)
		if err != nil {
			return 0, fmt.Errorf("resolve %q: %w", path, err)
		}
		ino = a.Ino
	}
	return ino, nil
}
