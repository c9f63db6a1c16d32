package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Block states in the blocks table.
const (
	blockStaged   = 0 // sealed bytes in Dir/staging, queued for upload
	blockUploaded = 1 // in a segment on the grid
	blockGarbage  = 2 // uploaded, no reference left; collection is later work
	// blockLost: a recovered drive's block that was not on the grid when
	// the metadata record naming it was shipped (Rebuild); reads fail.
	blockLost = 3
)

// migrations[i] moves the schema from user_version i to i+1. Forward only:
// never edit a shipped step, append a new one.
var migrations = []string{
	`CREATE TABLE inodes(
		ino        INTEGER PRIMARY KEY AUTOINCREMENT,
		mode       INTEGER NOT NULL,
		uid        INTEGER NOT NULL,
		gid        INTEGER NOT NULL,
		rdev       INTEGER NOT NULL DEFAULT 0,
		nlink      INTEGER NOT NULL,
		size       INTEGER NOT NULL DEFAULT 0,
		used       INTEGER NOT NULL DEFAULT 0,
		atime      INTEGER NOT NULL,
		mtime      INTEGER NOT NULL,
		ctime      INTEGER NOT NULL,
		generation INTEGER NOT NULL DEFAULT 1
	);
	CREATE INDEX inodes_orphans ON inodes(nlink) WHERE nlink = 0;
	CREATE TABLE entries(
		cookie INTEGER PRIMARY KEY AUTOINCREMENT,
		parent INTEGER NOT NULL REFERENCES inodes(ino),
		name   TEXT NOT NULL,
		ino    INTEGER NOT NULL REFERENCES inodes(ino),
		UNIQUE(parent, name)
	);
	CREATE INDEX entries_parent_cookie ON entries(parent, cookie);
	CREATE INDEX entries_ino ON entries(ino);
	CREATE TABLE xattrs(
		ino   INTEGER NOT NULL REFERENCES inodes(ino) ON DELETE CASCADE,
		name  TEXT NOT NULL,
		value BLOB NOT NULL,
		PRIMARY KEY(ino, name)
	) WITHOUT ROWID;
	CREATE TABLE symlinks(
		ino    INTEGER PRIMARY KEY REFERENCES inodes(ino) ON DELETE CASCADE,
		target TEXT NOT NULL
	);
	CREATE TABLE segments(
		id         BLOB PRIMARY KEY,
		k          INTEGER NOT NULL,
		m          INTEGER NOT NULL,
		size       INTEGER NOT NULL,
		shard_size INTEGER NOT NULL,
		chunk_size INTEGER NOT NULL,
		nodes      TEXT NOT NULL,
		stored     INTEGER NOT NULL,
		created    INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE blocks(
		id         BLOB PRIMARY KEY,
		plain_len  INTEGER NOT NULL,
		sealed_len INTEGER NOT NULL,
		refcount   INTEGER NOT NULL,
		state      INTEGER NOT NULL,
		prio       INTEGER NOT NULL,
		seq        INTEGER NOT NULL,
		segment    BLOB REFERENCES segments(id),
		seg_off    INTEGER,
		seg_len    INTEGER
	) WITHOUT ROWID;
	CREATE INDEX blocks_queue ON blocks(state, prio, seq);
	CREATE TABLE blockmap(
		ino   INTEGER NOT NULL REFERENCES inodes(ino),
		idx   INTEGER NOT NULL,
		block BLOB NOT NULL REFERENCES blocks(id),
		PRIMARY KEY(ino, idx)
	) WITHOUT ROWID;
	CREATE INDEX blockmap_block ON blockmap(block);
	CREATE TABLE checkpoints(
		seq     INTEGER PRIMARY KEY,
		created INTEGER NOT NULL,
		segment BLOB,
		root    BLOB
	);
	CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;`,
	// 1 -> 2: small staged blocks live in the database (stagedInlineMax).
	`CREATE TABLE staged(
		id     BLOB PRIMARY KEY REFERENCES blocks(id),
		sealed BLOB NOT NULL
	);`,
	// 2 -> 3: the metadata log (metaship.go). Triggers note every changed
	// row's key in mdirty (append-only: the shipper deletes what it
	// shipped by id); mlog lists the records shipped to the grid.
	`CREATE TABLE mdirty(id INTEGER PRIMARY KEY, tbl INTEGER NOT NULL, a, b);
	CREATE TABLE mlog(
		seq     INTEGER PRIMARY KEY,
		kind    INTEGER NOT NULL,
		base    INTEGER NOT NULL,
		prev    INTEGER NOT NULL,
		created INTEGER NOT NULL,
		seg     BLOB NOT NULL,
		bytes   INTEGER NOT NULL,
		name    TEXT UNIQUE,
		deleted INTEGER NOT NULL DEFAULT 0
	);
	CREATE TRIGGER md_inodes_i AFTER INSERT ON inodes BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(1, NEW.ino, 0); END;
	CREATE TRIGGER md_inodes_d AFTER DELETE ON inodes BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(1, OLD.ino, 0); END;
	CREATE TRIGGER md_inodes_u AFTER UPDATE ON inodes BEGIN
		INSERT INTO mdirty(tbl, a, b) VALUES(1, NEW.ino, 0);
		INSERT INTO mdirty(tbl, a, b) SELECT 1, OLD.ino, 0 WHERE OLD.ino IS NOT NEW.ino;
	END;
	CREATE TRIGGER md_entries_i AFTER INSERT ON entries BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(2, NEW.parent, NEW.name); END;
	CREATE TRIGGER md_entries_d AFTER DELETE ON entries BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(2, OLD.parent, OLD.name); END;
	CREATE TRIGGER md_entries_u AFTER UPDATE ON entries BEGIN
		INSERT INTO mdirty(tbl, a, b) VALUES(2, NEW.parent, NEW.name);
		INSERT INTO mdirty(tbl, a, b) SELECT 2, OLD.parent, OLD.name WHERE OLD.parent IS NOT NEW.parent OR OLD.name IS NOT NEW.name;
	END;
	CREATE TRIGGER md_xattrs_i AFTER INSERT ON xattrs BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(3, NEW.ino, NEW.name); END;
	CREATE TRIGGER md_xattrs_d AFTER DELETE ON xattrs BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(3, OLD.ino, OLD.name); END;
	CREATE TRIGGER md_xattrs_u AFTER UPDATE ON xattrs BEGIN
		INSERT INTO mdirty(tbl, a, b) VALUES(3, NEW.ino, NEW.name);
		INSERT INTO mdirty(tbl, a, b) SELECT 3, OLD.ino, OLD.name WHERE OLD.ino IS NOT NEW.ino OR OLD.name IS NOT NEW.name;
	END;
	CREATE TRIGGER md_symlinks_i AFTER INSERT ON symlinks BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(4, NEW.ino, 0); END;
	CREATE TRIGGER md_symlinks_d AFTER DELETE ON symlinks BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(4, OLD.ino, 0); END;
	CREATE TRIGGER md_symlinks_u AFTER UPDATE ON symlinks BEGIN
		INSERT INTO mdirty(tbl, a, b) VALUES(4, NEW.ino, 0);
		INSERT INTO mdirty(tbl, a, b) SELECT 4, OLD.ino, 0 WHERE OLD.ino IS NOT NEW.ino;
	END;
	CREATE TRIGGER md_blockmap_i AFTER INSERT ON blockmap BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(5, NEW.ino, NEW.idx); END;
	CREATE TRIGGER md_blockmap_d AFTER DELETE ON blockmap BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(5, OLD.ino, OLD.idx); END;
	CREATE TRIGGER md_blockmap_u AFTER UPDATE ON blockmap BEGIN
		INSERT INTO mdirty(tbl, a, b) VALUES(5, NEW.ino, NEW.idx);
		INSERT INTO mdirty(tbl, a, b) SELECT 5, OLD.ino, OLD.idx WHERE OLD.ino IS NOT NEW.ino OR OLD.idx IS NOT NEW.idx;
	END;
	CREATE TRIGGER md_blocks_i AFTER INSERT ON blocks BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(6, NEW.id, 0); END;
	CREATE TRIGGER md_blocks_d AFTER DELETE ON blocks BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(6, OLD.id, 0); END;
	CREATE TRIGGER md_blocks_u AFTER UPDATE OF plain_len, sealed_len, state, segment, seg_off, seg_len ON blocks BEGIN
		INSERT INTO mdirty(tbl, a, b) VALUES(6, NEW.id, 0);
		INSERT INTO mdirty(tbl, a, b) SELECT 6, OLD.id, 0 WHERE OLD.id IS NOT NEW.id;
	END;
	CREATE TRIGGER md_segments_i AFTER INSERT ON segments BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(7, NEW.id, 0); END;
	CREATE TRIGGER md_segments_d AFTER DELETE ON segments BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(7, OLD.id, 0); END;
	CREATE TRIGGER md_segments_u AFTER UPDATE ON segments BEGIN
		INSERT INTO mdirty(tbl, a, b) VALUES(7, NEW.id, 0);
		INSERT INTO mdirty(tbl, a, b) SELECT 7, OLD.id, 0 WHERE OLD.id IS NOT NEW.id;
	END;
	CREATE TRIGGER md_mlog_i AFTER INSERT ON mlog BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(8, NEW.seq, 0); END;
	CREATE TRIGGER md_mlog_u AFTER UPDATE ON mlog BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(8, NEW.seq, 0); END;
	CREATE TRIGGER md_mlog_d AFTER DELETE ON mlog BEGIN INSERT INTO mdirty(tbl, a, b) VALUES(8, OLD.seq, 0); END;`,
	// 3 -> 4: garbage collection (gc.go). born: the first metadata record
	// that names the block; freed: the first one that no longer does
	// (set when a record is shipped after its last reference went).
	`ALTER TABLE blocks ADD COLUMN born INTEGER;
	ALTER TABLE blocks ADD COLUMN freed INTEGER;
	CREATE TRIGGER gc_revive AFTER UPDATE OF state ON blocks WHEN NEW.state = 1 AND OLD.state = 2 BEGIN
		UPDATE blocks SET freed = NULL WHERE id = NEW.id;
	END;`,
}

func openDB(ctx context.Context, path string, readOnly bool) (*sql.DB, error) {
	if !readOnly {
		if err := makeDB(ctx, path); err != nil {
			return nil, err
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL: commits reach the WAL but are fsync'd only by the next
	// durable commit (fsync, the group commit; see durableTxLocked) or
	// checkpoint. A process crash loses nothing committed; a power cut
	// may lose what was committed since the last durable commit, at most
	// about GroupCommit's worth, as POSIX allows.
	q.Add("_pragma", "synchronous(NORMAL)")
	// No mmap: sqlite maps the database once per connection, and every
	// page a connection touched through its map counts in the process's
	// RSS once per mapping (35 MiB of a 100,000-entry database in two
	// maps at the peak of a create), beside the Go heap and outside its
	// limit. Pages come from the OS page cache by pread instead, into each
	// connection's own cache (4 MiB; sqlite's memory, outside the Go heap,
	// so it stays small: 8 connections of 16 MiB each were up to 128 MiB).
	// Measured against the map: a cold readdir of 100,000 entries peaked
	// at 119-122 MiB instead of 137-147, for no more CPU; stat may cost
	// a little more (docs/BENCHMARKS.md).
	q.Add("_pragma", "mmap_size(0)")
	q.Add("_pragma", "cache_size(-4096)")
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	db, err := sql.Open("sqlite", "file:"+uriPath(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("journal: open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: open database %s: %w", path, err)
	}
	return db, nil
}

// makeDB makes the database at path, when it does not exist or is empty,
// with auto_vacuum=INCREMENTAL, so that the space deletes free can go
// back to the disk (vacuum.go). The mode is set by the first write of the
// file, the header that the switch to WAL writes, so on a connection of
// its own: set on every connection of the pool, it would be a write
// transaction each time one opens (sqlite records the mode in the header
// again), which waits behind the write connection's transactions.
func makeDB(ctx context.Context, path string) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+uriPath(path)+"?_pragma=auto_vacuum(INCREMENTAL)&_pragma=journal_mode(WAL)")
	if err == nil {
		err = db.PingContext(ctx)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("journal: make database %s: %w", path, err)
	}
	return nil
}

func (j *core) migrate(ctx context.Context) error {
	var v int
	if err := j.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("journal: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("journal: database schema version %d is newer than this program (%d); upgrade meshdrive", v, len(migrations))
	}
	if v == len(migrations) {
		return j.checkBlockSize(ctx)
	}
	if j.o.ReadOnly {
		return fmt.Errorf("journal: %w: database needs migration from version %d", ErrReadOnly, v)
	}
	for ; v < len(migrations); v++ {
		err := j.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			if v == 0 {
				now := nowNS()
				if _, err := tx.ExecContext(ctx, `INSERT INTO inodes(ino, mode, uid, gid, nlink, atime, mtime, ctime)
					VALUES(1, ?, ?, ?, 2, ?, ?, ?)`, sIFDIR|0o755, uint32(os.Getuid()), uint32(os.Getgid()), now, now, now); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES('block_size', ?)`, fmt.Sprint(j.bs)); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("journal: migrate schema %d -> %d: %w", v, v+1, err)
		}
	}
	return j.checkBlockSize(ctx)
}

func (j *core) checkBlockSize(ctx context.Context) error {
	var s string
	if err := j.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='block_size'`).Scan(&s); err != nil {
		return fmt.Errorf("journal: read block size: %w", err)
	}
	if s != fmt.Sprint(j.bs) {
		return fmt.Errorf("journal: %w: the journal was made with block size %s, Options.BlockSize is %d; use the original size", ErrInvalid, s, j.bs)
	}
	return nil
}

// tx runs fn in one write transaction under wmu.
func (j *core) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	return j.txLocked(ctx, fn)
}

// txLocked is tx for callers that hold wmu.
func (j *core) txLocked(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	defer func() {
		if err = diskFull(err); errors.Is(err, ErrDiskFull) && j.o.MakeRoom != nil {
			// Not tried again here (fn may have changed more than the
			// database): room for the caller's next try, and for the
			// uploader's and the group commit's, which retry.
			madeRoom(&j.o, j.log, syscall.ENOSPC, sqliteRoom)
		}
	}()
	// The commit must not be cut short by a cancelled caller once the
	// transaction has started: run it on a context without cancellation.
	ctx0 := context.WithoutCancel(ctx)
	// Deferred unlinks and creates first: this transaction may read or
	// change what they change (unlinks.go, creates.go). Creates alone
	// are applied inside it (a flush of a file just made commits its
	// create with its data); with unlinks, in a transaction of their
	// own, which holds imu.
	var folded []unlinkRec
	foldN, light := 0, j.foldLight
	j.foldLight = false
	if j.unl.unlN.Load() > 0 && !j.unl.unlApplying {
		// Creates are made under cmu, unlinks under umu alone: more
		// may come before this commit, after the records folded here,
		// which are the log's first foldN (dropApplied).
		if recs := j.unl.pending(); !slices.ContainsFunc(recs, func(r unlinkRec) bool { return !r.create && r.fl == nil && r.set == nil }) {
			folded, foldN = recs, len(recs)
			if light {
				// The caller changes no file's row or data: the closes
				// stay pending for the unlinker, off the caller's path.
				folded = slices.DeleteFunc(slices.Clone(recs), func(r unlinkRec) bool { return r.fl != nil })
			}
		} else {
			// That transaction says for itself which rows it changes:
			// this one's scope is not its.
			scope := j.scope
			j.scope = scopeAll
			if err := j.ul.applyUnlinksLocked(ctx0); err != nil {
				return err // scopeAll for the next one, as below
			}
			j.scope = scope
		}
	}
	if slices.ContainsFunc(folded, changesNlink) {
		j.unl.rmSeq.Add(1) // odd until dropApplied forgot them: see rmSeq
		defer j.unl.rmSeq.Add(1)
	}
	scope := j.scope
	j.scope = scopeAll // for the next transaction, whatever becomes of this one
	j.narrow = j.narrow[:0]
	j.ents.reset()
	var tx *sql.Tx
	if j.w != nil {
		tx, err = j.w.BeginTx(ctx0, nil)
	} else {
		tx, err = j.db.BeginTx(ctx0, nil) // before prepare (migrate)
	}
	if err != nil {
		return fmt.Errorf("journal: begin: %w", err)
	}
	var applied []Ino     // rows the folded creates changed (their parents), and the folded flushes (their files)
	var parentRows []Attr // and the parents' rows as they left them
	j.unl.fa = flushApplied{}
	j.unl.setsApplied = false
	// A failed transaction's deferred flushes stay pending; the staging
	// files their apply renamed into place (blocks too big for the
	// database) are named by no row now, and the next apply writes them
	// again.
	forget := func() {
		j.fl.unstage(j.unl.fa.added)
		j.unl.fa = flushApplied{}
	}
	if len(folded) > 0 {
		if applied, parentRows, err = j.applyFolded(ctx0, tx, folded); err != nil {
			tx.Rollback()
			forget()
			return err
		}
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		forget()
		return err
	}
	if err := tx.Commit(); err != nil {
		forget()
		return fmt.Errorf("journal: commit: %w", err)
	}
	// After the commit: whoever reads the new value sees it.
	gen := j.commitGen.Add(1)
	if j.unl.setsApplied {
		j.unl.dropSetsLocked(&j.flushGen, gen) // dirattr.go
	}
	if len(folded) > 0 {
		if len(folded) == foldN {
			j.ul.dropApplied(foldN)
		} else {
			j.ul.dropAppliedOf(foldN, func(r unlinkRec) bool { return r.fl == nil })
		}
	}
	if keep := j.keptRows(scope, applied); len(keep) > 0 {
		j.ac.carry(gen-1, gen, keep...)
		j.la.carry(gen-1, gen, keep...)
		// The folded creates' parents as they are now, unless fn may
		// have changed them after the creates did: the kernel asks for
		// a directory's attributes after each create in it (a copied
		// tree's flush commits the create of the file before).
		for _, a := range parentRows {
			if !slices.Contains(keep[:len(keep)-len(applied)], a.Ino) {
				j.ac.put(a.Ino, a, gen)
			}
		}
		j.ul.afterFlushRecsLocked(gen, true, keep[:len(keep)-len(applied)])
	} else {
		j.ul.afterFlushRecsLocked(gen, false, nil)
	}
	j.ents.known = j.ents.known || scope != scopeAll || len(j.narrow) > 0 // see nameSets
	j.names.commit(gen-1, gen, &j.ents)
	j.kickGroup() // an ordinary commit: durable within GroupCommit
	if gen%checkpointEvery == 0 {
		j.checkpointSoon()
	}
	return nil
}

// sqliteRoom is what a commit that found the disk full asks MakeRoom to
// free: the write-ahead log grows by the pages a commit changes, a few
// MiB for the largest (an upload's, a metadata record's).
const sqliteRoom = 32 << 20

// madeRoom reports whether err is a full disk and o.MakeRoom freed some
// of it for a write of need bytes, which is then worth trying again. (A
// function, not a method: every part of the journal would carry it.)
func madeRoom(o *Options, log *slog.Logger, err error, need int) bool {
	if !errors.Is(err, syscall.ENOSPC) || o.MakeRoom == nil {
		return false
	}
	freed := o.MakeRoom(int64(need))
	if freed > 0 {
		log.Info("journal: the disk is full; the disk cache gave back room", "need", need, "freed", freed)
	}
	return freed > 0
}

// applyFolded applies the pending creates, flushes and directory
// changes folded into the transaction tx: the creates first (a flush's
// file may be one of them), the directory changes last (dirattr.go). It
// returns the rows they changed, and the rows of the creates' parents as
// they left them. wmu held.
func (j *core) applyFolded(ctx context.Context, tx *sql.Tx, recs []unlinkRec) ([]Ino, []Attr, error) {
	var cr, fl, st []unlinkRec
	for _, r := range recs {
		switch {
		case r.fl != nil:
			fl = append(fl, r)
		case r.set != nil:
			st = append(st, r)
		default:
			cr = append(cr, r)
		}
	}
	var applied []Ino
	var rows []Attr
	if len(cr) > 0 {
		var err error
		if applied, rows, err = j.ul.applyCreates(ctx, tx, cr); err != nil {
			return nil, nil, fmt.Errorf("journal: apply %d deferred creates: %w", len(cr), err)
		}
	}
	if len(fl) > 0 {
		if err := j.ul.applyFlushRecs(ctx, tx, fl, &j.unl.fa.fr); err != nil {
			return nil, nil, fmt.Errorf("journal: apply %d deferred flushes: %w", len(fl), err)
		}
		applied = append(applied, j.unl.fa.inos...)
	}
	if len(st) > 0 {
		inos, err := j.da.apply(ctx, tx, st)
		if err != nil {
			return nil, nil, err
		}
		applied = append(applied, inos...)
		// A parent's row as the creates left it is not the row now.
		rows = slices.DeleteFunc(rows, func(a Attr) bool { return slices.Contains(inos, a.Ino) })
	}
	return applied, rows, nil
}

// keptRows says which rows a commit changed, for the caches to drop only
// those (attrCache.carry, lookAhead.carry): none when it may have changed
// any (nil), else its scope or its narrowed rows, and the rows that the
// deferred creates folded into it changed. wmu held.
func (j *core) keptRows(scope Ino, applied []Ino) []Ino {
	var rows []Ino
	switch {
	case scope != scopeAll:
		rows = []Ino{scope}
	case len(j.narrow) > 0:
		rows = j.narrow
	default:
		return nil
	}
	if len(applied) == 0 {
		return rows
	}
	if len(rows) == 1 && rows[0] == scopeNone {
		return applied
	}
	return append(rows, applied...)
}

// Scopes of a transaction (Journal.scope): which inode rows it may change.
const (
	scopeAll  Ino = 0       // any
	scopeNone Ino = ^Ino(0) // none (the upload queue, segments, meta)
	// any other value: that inode's row only
)

// scopeLocked says that the next transaction changes no inode row but
// ino's (or none, scopeNone): the caches valid until a commit (attrCache,
// lookAhead) keep the other rows across it. wmu held; txLocked resets it.
func (j *core) scopeLocked(ino Ino) { j.scope = ino }

// narrowLocked says, from inside a transaction, that it changes no inode
// row but those of inos, and no entry but ones that name them (an unlink
// or rmdir: the inode unlinked and its parent): the caches keep the
// other rows, so a scan that unlinks what it looks up (rm -rf, rm *)
// keeps its look-ahead window. Calls in one transaction add up (the
// deferred unlinks and the rmdir that follows them). wmu held, within
// txLocked's fn.
func (j *core) narrowLocked(inos ...Ino) { j.narrow = append(j.narrow, inos...) }

// durableTxLocked is txLocked with synchronous=FULL for its commit,
// which fsyncs the WAL: it and every earlier commit survive a power cut.
// wmu held.
func (j *core) durableTxLocked(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if j.durableStartHook != nil {
		j.durableStartHook()
	}
	ctx0 := context.WithoutCancel(ctx)
	if _, err := j.w.ExecContext(ctx0, "PRAGMA synchronous = FULL"); err != nil {
		j.scope = scopeAll
		return fmt.Errorf("journal: set synchronous: %w", err)
	}
	err := j.txLocked(ctx, fn)
	if _, serr := j.w.ExecContext(ctx0, "PRAGMA synchronous = NORMAL"); serr != nil && err == nil {
		// The commit is made; the next ones would fsync for nothing.
		j.log.Warn("journal: cannot set synchronous back to NORMAL", "err", serr)
	}
	if err == nil {
		j.durableLocked()
	}
	return err
}

// durableLocked runs after a durable commit: every commit so far
// survives a power cut, so the staging files of blocks that ordinary
// commits freed (lazyFree) may go now. wmu held.
func (j *core) durableLocked() {
	j.durableGen = j.commitGen.Load()
	for id := range j.lazyFree {
		if err := os.Remove(j.stagePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.log.Warn("journal: remove staged block", "id", id, "err", err)
		}
	}
	clear(j.lazyFree)
	if j.durableHook != nil {
		j.durableHook()
	}
}

// barrier makes every commit so far survive a power cut.
func (j *core) barrier(ctx context.Context) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	return j.barrierLocked(ctx)
}

// barrierLocked is barrier for callers that hold wmu. With no commit
// since the last durable one it has nothing to do.
func (j *core) barrierLocked(ctx context.Context) error {
	if err := j.ul.applyUnlinksLocked(ctx); err != nil {
		return err
	}
	if j.durableGen == j.commitGen.Load() && len(j.lazyFree) == 0 {
		return nil
	}
	j.scopeLocked(scopeNone)
	return j.durableTxLocked(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES('sync', ?)`, fmt.Sprint(nowNS()))
		return err
	})
}

// prep returns q prepared on the database (cached for the journal's
// life), for use in a transaction via tx.StmtContext.
func (j *core) prep(ctx context.Context, q string) (*sql.Stmt, error) {
	j.pmu.Lock()
	defer j.pmu.Unlock()
	if st := j.pcache[q]; st != nil {
		return st, nil
	}
	st, err := j.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if j.pcache == nil {
		j.pcache = map[string]*sql.Stmt{}
	}
	j.pcache[q] = st
	return st, nil
}

// texec, tqrow and tquery run a cached prepared statement in tx.
// qrow runs a one-row query of a hot path outside a transaction on its
// cached prepared statement (parsing it each time costs more than
// running it).
func (j *core) qrow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := j.prep(ctx, q)
	if err != nil {
		return j.db.QueryRowContext(ctx, q, args...) // the error surfaces through Scan
	}
	return st.QueryRowContext(ctx, args...)
}

func (j *core) texec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	st, err := j.prep(ctx, q)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

func (j *core) tqrow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	st, err := j.prep(ctx, q)
	if err != nil {
		// Let the error surface through Scan.
		return tx.QueryRowContext(ctx, q, args...)
	}
	return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

func (j *core) tquery(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	st, err := j.prep(ctx, q)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

// stmts are the prepared statements of the hot paths.
type stmts struct {
	lookup, lookAhead, getattr, readdir, mapRange, blockExists, getxattr *sql.Stmt
}

func (j *core) prepare(ctx context.Context) error {
	var err error
	if !j.o.ReadOnly {
		if j.w, err = j.db.Conn(ctx); err != nil {
			return fmt.Errorf("journal: open write connection: %w", err)
		}
		// Checkpoints run beside the commits (checkpointSoon); the
		// write connection checkpoints itself only when they fall far
		// behind.
		if _, err = j.w.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", walBackstop)); err != nil {
			return fmt.Errorf("journal: set wal_autocheckpoint: %w", err)
		}
	}
	// on returns a preparer on db or on w that keeps the first error.
	on := func(prep func(context.Context, string) (*sql.Stmt, error)) func(string) *sql.Stmt {
		return func(q string) *sql.Stmt {
			if err != nil {
				return nil
			}
			var s *sql.Stmt
			s, err = prep(ctx, q)
			return s
		}
	}
	p := on(j.db.PrepareContext)
	j.st.prepareHot(p)
	j.st.readdir = p(`SELECT e.name, e.ino, i.mode, e.cookie FROM entries e JOIN inodes i ON i.ino = e.ino
		WHERE e.parent = ? AND e.cookie > ? ORDER BY e.cookie LIMIT ?`)
	j.st.mapRange = p(`SELECT m.idx, b.id, b.plain_len, b.state, b.segment, b.seg_off, b.seg_len
		FROM blockmap m JOIN blocks b ON b.id = m.block WHERE m.ino = ? AND m.idx BETWEEN ? AND ? ORDER BY m.idx`)
	if j.w != nil {
		// The same reads on the write connection (see reader).
		j.wst.prepareHot(on(j.w.PrepareContext))
	}
	if err != nil {
		j.st.close()
		j.wst.close()
		return fmt.Errorf("journal: prepare statements: %w", err)
	}
	return nil
}

// The hot reads prepared on the pool and on the write connection.
const (
	lookupQ    = `SELECT e.cookie, ` + attrCols + ` FROM entries e JOIN inodes i ON i.ino = e.ino WHERE e.parent = ? AND e.name = ?`
	lookAheadQ = `SELECT e.name, e.cookie, ` + attrCols + ` FROM entries e JOIN inodes i ON i.ino = e.ino
		WHERE e.parent = ? AND e.cookie > ? ORDER BY e.cookie LIMIT ?`
	getattrQ     = `SELECT ` + attrCols + ` FROM inodes i WHERE i.ino = ?`
	blockExistsQ = `SELECT state, seq, sealed_len FROM blocks WHERE id = ?`
	getxattrQ    = `SELECT value FROM xattrs WHERE ino = ? AND name = ?`
)

// prepareHot prepares the hot reads (the statements reader chooses
// between) with p.
func (s *stmts) prepareHot(p func(string) *sql.Stmt) {
	s.lookup = p(lookupQ)
	s.lookAhead = p(lookAheadQ)
	s.getattr = p(getattrQ)
	s.blockExists = p(blockExistsQ)
	s.getxattr = p(getxattrQ)
}

// reader picks where a hot read runs: on the write connection when no
// transaction holds it, else on the pool. The write connection's page
// cache has every commit; a pool connection reads again, from the WAL,
// the pages that commits since its last read changed (most of them,
// while files are being made). Call release after the last Scan.
func (j *core) reader(pool, w *sql.Stmt) (st *sql.Stmt, release func()) {
	if w != nil && j.wmu.TryLock() {
		return w, j.wmu.Unlock
	}
	return pool, func() {}
}

func (j *core) closeStmts() {
	j.st.close()
	j.wst.close()
	j.pmu.Lock()
	for _, st := range j.pcache {
		st.Close()
	}
	j.pcache = nil
	j.pmu.Unlock()
}

func (s *stmts) close() {
	for _, st := range []*sql.Stmt{s.lookup, s.lookAhead, s.getattr, s.readdir, s.mapRange, s.blockExists, s.getxattr} {
		if st != nil {
			st.Close()
		}
	}
}

// uriPath escapes a file path for a "file:" URI: sqlite decodes %XX in the
// path, and an unescaped '?' or '#' would end it early (a data dir named
// "a#1" would otherwise open the database "a").
func uriPath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}
