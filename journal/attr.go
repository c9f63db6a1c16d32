package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// SetAttr changes an inode's attributes; Size truncates (up or down).
// Ctime is set whenever anything changes (to s.Ctime when given). On a
// file with unflushed data the rest waits in memory for its flush, which
// stores it in its own commit (see setPending): utimensat and chmod after
// a copy's write cost no commit of their own.
func (j *attrs) SetAttr(ctx context.Context, ino Ino, s SetAttr) (Attr, error) {
	if err := j.checkWrite(); err != nil {
		return Attr{}, err
	}
	if s.Size != nil {
		if err := j.fd.truncate(ctx, ino, int64(*s.Size)); err != nil {
			return Attr{}, err
		}
	}
	if s.Mode == nil && s.Uid == nil && s.Gid == nil && s.Atime == nil && s.Mtime == nil {
		return j.ns.GetAttr(ctx, ino)
	}
	kept, logged := j.setPending(ino, &s)
	if logged {
		// Its data is safe in the log, and s must be too: apply the
		// close first, which leaves nothing in memory, so s commits.
		if err := j.ul.settle(ctx); err != nil {
			return Attr{}, err
		}
		kept, _ = j.setPending(ino, &s)
	}
	if kept {
		return j.ns.GetAttr(ctx, ino)
	}
	// cmu: no create deferred behind a directory's change (unlinks.go).
	// Not held for the synchronous way, which leaves nothing pending
	// and would keep every create waiting with it for wmu (a chmod of
	// a file, behind the unlinker's apply).
	j.unl.cmu.Lock()
	deferred := s.Size == nil && j.da.deferSet(ctx, ino, &s)
	j.unl.cmu.Unlock()
	if deferred {
		return j.ns.GetAttr(ctx, ino) // a directory's: in the log (dirattr.go)
	}
	j.wmu.Lock()
	var row Attr
	err := j.txLocked(ctx, func(tx *sql.Tx) error {
		j.narrowLocked(ino) // its row alone: the caches keep the others
		var err error
		row, err = j.setAttrTx(ctx, tx, ino, &s)
		return err
	})
	if err == nil {
		// The row as the commit left it, for the reply below (which
		// otherwise reads it back: cp -a sets the times of each
		// directory it copies).
		j.ac.put(ino, row, j.commitGen.Load()) // wmu held: no commit since
	}
	j.wmu.Unlock()
	if err != nil {
		return Attr{}, err
	}
	return j.ns.GetAttr(ctx, ino)
}

// setPending keeps s (all but Size) with ino's unflushed data, its ctime
// raised to now or set to s.Ctime (the kernel's, which owns the times of
// a file it wrote through its write-back cache), and reports whether it
// did; false when ino has none (then s needs a commit). A crash before
// the flush loses s together with the data, as a local disk loses a
// chmod it had not written back; close and fsync flush. logged: ino's
// unflushed state is a close logged and not yet applied (flushlog.go),
// whose data a crash would keep: s is not kept.
func (j *attrs) setPending(ino Ino, s *SetAttr) (kept, logged bool) {
	n := j.it.memInode(ino)
	if n == nil {
		return false, false
	}
	defer j.it.putInode(n)
	// Under n.mu no flush is between its snapshot of the attributes and
	// its commit (it would store the old ones and clear them).
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rec != nil && n.rec.matches(n) {
		return false, true
	}
	n.amu.Lock()
	defer n.amu.Unlock()
	if !n.hasDirty.Load() || !n.attrDirty {
		return false, false
	}
	p := &n.pend
	if s.Mode != nil {
		p.mode, p.hasMode = *s.Mode&07777, true
	}
	if s.Uid != nil {
		p.uid, p.hasUid = *s.Uid, true
	}
	if s.Gid != nil {
		p.gid, p.hasGid = *s.Gid, true
	}
	if s.Atime != nil {
		p.atime, p.hasAtime = s.Atime.UnixNano(), true
	}
	if s.Mtime != nil {
		n.mtime = s.Mtime.UnixNano()
	}
	if s.Ctime != nil {
		n.ctime, p.exactCtime = s.Ctime.UnixNano(), true
	} else {
		n.ctime = max(n.ctime, nowNS())
	}
	return true, false
}

// ctime is the ctime a SetAttr stores, in ns.
func (s *SetAttr) ctime() int64 {
	if s.Ctime != nil {
		return s.Ctime.UnixNano()
	}
	return nowNS()
}

// setAttrTx applies s (all but Size) to ino inside tx, in one statement
// (a NULL argument keeps the column), and returns the row it leaves.
// wmu held.
func (j *attrs) setAttrTx(ctx context.Context, tx *sql.Tx, ino Ino, s *SetAttr) (Attr, error) {
	opt := func(p *uint32) any {
		if p == nil {
			return nil
		}
		return int64(*p)
	}
	optTime := func(t *time.Time) any {
		if t == nil {
			return nil
		}
		return t.UnixNano()
	}
	a, err := scanAttr(j.tqrow(ctx, tx, `UPDATE inodes SET
		mode = CASE WHEN ?1 IS NULL THEN mode ELSE (mode & ?2) | (?1 & 4095) END,
		uid = coalesce(?3, uid), gid = coalesce(?4, gid),
		atime = coalesce(?5, atime), mtime = coalesce(?6, mtime), ctime = ?7
		WHERE ino = ?8 RETURNING `+strings.ReplaceAll(attrCols, "i.", ""),
		opt(s.Mode), sIFMT, opt(s.Uid), opt(s.Gid), optTime(s.Atime), optTime(s.Mtime), s.ctime(), ino))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return a, fmt.Errorf("journal: setattr: %w", err)
	}
	return a, err
}

// SetDirtyTimes is the kernel's write-back cache telling the times it
// keeps for a file it has written: when the file has unflushed data they
// replace the journal's in memory (its flush stores them) and it returns
// the attributes and true, with no transaction; otherwise false, and the
// caller sets them with SetAttr. The kernel cannot be told apart from a
// user's mtime-only utimensat on such a file (both arrive with
// FATTR_CTIME), which is then kept with the file's unflushed data: a
// crash before the flush loses both together.
func (j *attrs) SetDirtyTimes(ino Ino, mtime, ctime time.Time) (Attr, bool) {
	if j.checkWrite() != nil {
		return Attr{}, false
	}
	if kept, _ := j.setPending(ino, &SetAttr{Mtime: &mtime, Ctime: &ctime}); !kept {
		return Attr{}, false // a logged close: the caller's SetAttr applies it first
	}
	a, err := j.ns.GetAttr(context.Background(), ino)
	return a, err == nil
}

// GetXattr returns the value of an extended attribute.
func (j *attrs) GetXattr(ctx context.Context, ino Ino, name string) ([]byte, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	var v []byte
	st, release := j.reader(j.st.getxattr, j.wst.getxattr)
	err := st.QueryRowContext(ctx, ino, name).Scan(&v)
	release()
	if errors.Is(err, sql.ErrNoRows) {
		// No such attribute, or no such inode. An open file's row lives
		// until its last release: skip asking (the kernel asks for
		// security.capability at a file's first write).
		if !j.it.isOpen(ino) {
			if _, gerr := j.ns.GetAttr(ctx, ino); gerr != nil {
				return nil, gerr
			}
		}
		return nil, ErrNoXattr
	}
	if err != nil {
		return nil, fmt.Errorf("journal: getxattr: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// SetXattr sets an extended attribute; flags are XattrCreate (fail with
// ErrExist if present) or XattrReplace (fail with ErrNoXattr if absent).
func (j *attrs) SetXattr(ctx context.Context, ino Ino, name string, value []byte, flags uint32) error {
	if err := j.checkWrite(); err != nil {
		return err
	}
	if name == "" || flags&^(XattrCreate|XattrReplace) != 0 || flags == XattrCreate|XattrReplace {
		return fmt.Errorf("%w: xattr name %q flags %#x", ErrInvalid, name, flags)
	}
	if len(name) > maxName {
		return ErrNameTooLong
	}
	if len(value) > maxXattr {
		return fmt.Errorf("%w: xattr value of %d bytes (max %d)", ErrInvalid, len(value), maxXattr)
	}
	if value == nil {
		value = []byte{}
	}
	return j.tx(ctx, func(tx *sql.Tx) error {
		if _, err := j.ns.getAttrTx(ctx, tx, ino); err != nil {
			return err
		}
		var one int
		err := j.tqrow(ctx, tx, `SELECT 1 FROM xattrs WHERE ino = ? AND name = ?`, ino, name).Scan(&one)
		exists := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("journal: setxattr: %w", err)
		}
		if exists && flags&XattrCreate != 0 {
			return ErrExist
		}
		if !exists && flags&XattrReplace != 0 {
			return ErrNoXattr
		}
		if _, err := j.texec(ctx, tx, `INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES(?, ?, ?)`, ino, name, value); err != nil {
			return fmt.Errorf("journal: setxattr: %w", err)
		}
		j.narrowLocked(ino) // its row alone: the caches keep the others
		if slices.Contains(j.o.LocalXattrs, name) {
			return nil // this machine's choice, not a change of the file: its ctime stays
		}
		_, err = j.texec(ctx, tx, `UPDATE inodes SET ctime = ? WHERE ino = ?`, nowNS(), ino)
		return err
	})
}

// ListXattr lists the names of an inode's extended attributes, sorted.
func (j *attrs) ListXattr(ctx context.Context, ino Ino) ([]string, error) {
	if err := j.checkOpen(); err != nil {
		return nil, err
	}
	if _, err := j.ns.GetAttr(ctx, ino); err != nil {
		return nil, err
	}
	rows, err := j.db.QueryContext(ctx, `SELECT name FROM xattrs WHERE ino = ?`, ino)
	if err != nil {
		return nil, fmt.Errorf("journal: listxattr: %w", err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("journal: listxattr: %w", err)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, rows.Err()
}

// RemoveXattr removes an extended attribute.
func (j *attrs) RemoveXattr(ctx context.Context, ino Ino, name string) error {
	if err := j.checkWrite(); err != nil {
		return err
	}
	return j.tx(ctx, func(tx *sql.Tx) error {
		if _, err := j.ns.getAttrTx(ctx, tx, ino); err != nil {
			return err
		}
		res, err := j.texec(ctx, tx, `DELETE FROM xattrs WHERE ino = ? AND name = ?`, ino, name)
		if err != nil {
			return fmt.Errorf("journal: removexattr: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoXattr
		}
		j.narrowLocked(ino) // its row alone: the caches keep the others
		if slices.Contains(j.o.LocalXattrs, name) {
			return nil // this machine's choice, not a change of the file: its ctime stays
		}
		_, err = j.texec(ctx, tx, `UPDATE inodes SET ctime = ? WHERE ino = ?`, nowNS(), ino)
		return err
	})
}

// StatFS reports the grid's capacity scaled by k/n (what data can use).
func (j *attrs) StatFS(ctx context.Context) (StatFS, error) {
	if err := j.checkOpen(); err != nil {
		return StatFS{}, err
	}
	var s StatFS
	if err := j.db.QueryRowContext(ctx, `SELECT count(*) FROM inodes`).Scan(&s.Files); err != nil {
		return s, fmt.Errorf("journal: statfs: %w", err)
	}
	s.Files += uint64(j.unl.crN.Load()) // deferred creates (creates.go)
	if j.o.Grid == nil {
		return s, nil
	}
	total, free := j.o.Grid.Capacity(ctx)
	k, m := j.o.Grid.K(), j.o.Grid.M()
	if k <= 0 || total <= 0 {
		return s, nil
	}
	s.TotalBytes = uint64(total) / uint64(k+m) * uint64(k)
	if free > 0 {
		s.FreeBytes = uint64(free) / uint64(k+m) * uint64(k)
	}
	return s, nil
}
