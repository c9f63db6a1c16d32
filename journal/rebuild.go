package journal

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/meshdrive/meshdrive/journal/metalog"
	"github.com/meshdrive/meshdrive/remote"
)

// RebuildOptions configure Rebuild.
type RebuildOptions struct {
	// Dir is the journal directory to create. It must not exist yet;
	// Rebuild builds in a sibling and renames it into place at the end,
	// so a failed rebuild leaves nothing.
	Dir    string
	Grid   MetaGrid
	Sealer *remote.Sealer
	// Seq and Head name the record to rebuild (a root record's, or a
	// snapshot's).
	Seq       uint64
	Head      remote.SegmentInfo
	BlockSize int
	// Progress, when set, is called as records are read ("read") and
	// applied ("apply"), with done and total counts of records.
	Progress func(stage string, done, total int)
	Logger   *slog.Logger
}

// RebuildStats says what Rebuild found.
type RebuildStats struct {
	Records    int   // records read (one full, then deltas)
	Bytes      int64 // their sealed bytes
	Inodes     int64
	LostBlocks int64 // blocks not on the grid when their record was shipped
	// LostFiles is the count of files with a lost block; LostPaths names
	// up to 100 of them.
	LostFiles int64
	LostPaths []string
}

// maxWalk bounds a chain walk: a longer chain is corrupt (the shipper
// writes a full record every maxChain).
const maxWalk = 4 * maxChain

// Rebuild builds a journal from the metadata log on the grid: it reads the
// record o.Seq and its predecessors back to a full record, applies them in
// order to a new database in o.Dir, and derives what is local state
// (reference counts; blocks the records name but the grid never got are
// marked lost, so reading them fails instead of returning zeros). Every
// page of every record is authenticated before any row is applied. The
// data stays on the grid: blocks are fetched when read.
func Rebuild(ctx context.Context, o RebuildOptions) (*RebuildStats, error) {
	if o.Dir == "" || o.Grid == nil || o.Sealer == nil {
		return nil, fmt.Errorf("journal: rebuild: %w: Dir, Grid and Sealer are required", ErrInvalid)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BlockSize <= 0 {
		o.BlockSize = 4 << 20
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string, int, int) {}
	}
	if _, err := os.Stat(o.Dir); err == nil {
		return nil, fmt.Errorf("journal: rebuild: %s already exists; remove it or choose another data dir", o.Dir)
	}

	// Read the chain, newest first. Each record is opened (every page
	// authenticated) before the next is read.
	type rec struct {
		h    *metalog.Header
		rows func(func(metalog.Row) error) error
	}
	var chain []rec
	st := &RebuildStats{}
	seq, seg := o.Seq, o.Head
	for {
		if len(chain) >= maxWalk {
			return nil, fmt.Errorf("journal: rebuild: %w: more than %d records without a full one", metalog.ErrCorrupt, maxWalk)
		}
		if seg.Size <= 0 || seg.Size > 1<<34 {
			return nil, fmt.Errorf("journal: rebuild: %w: record %d of %d bytes", metalog.ErrCorrupt, seq, seg.Size)
		}
		data := make([]byte, seg.Size)
		if err := o.Grid.ReadSegment(ctx, &seg, 0, data); err != nil {
			return nil, fmt.Errorf("journal: rebuild: read metadata record %d: %w", seq, err)
		}
		h, rows, err := metalog.Open(o.Sealer, seq, data)
		if err != nil {
			return nil, fmt.Errorf("journal: rebuild: %w", err)
		}
		chain = append(chain, rec{h, rows})
		st.Records++
		st.Bytes += seg.Size
		progress("read", len(chain), 0)
		if h.Kind == metalog.Full {
			break
		}
		seq, seg = h.Prev, *h.PrevSeg
	}

	parent := filepath.Dir(o.Dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".rebuild-")
	if err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	db, err := openDB(ctx, filepath.Join(tmp, "journal.db"), false)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	j := newShared(&shared{o: Options{Dir: tmp, BlockSize: o.BlockSize}, db: db, bs: int64(o.BlockSize), log: o.Logger})
	if err := j.c.migrate(ctx); err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	defer conn.Close()
	// Rows arrive table by table, not in foreign-key order.
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	defer tx.Rollback()
	// The empty database has a root inode of its own; the records bring
	// the drive's.
	if _, err := tx.ExecContext(ctx, `DELETE FROM inodes`); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	ap, err := newApplier(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if err := chain[i].rows(func(r metalog.Row) error { return ap.apply(ctx, r) }); err != nil {
			return nil, fmt.Errorf("journal: rebuild: apply record %d: %w", chain[i].h.Seq, err)
		}
		progress("apply", len(chain)-i, len(chain))
	}
	// The walked chain's own records (the newest is not in any record).
	for i, r := range chain {
		var segBytes []byte
		if i == 0 {
			segBytes = remote.AppendSegmentInfo(nil, &o.Head)
		} else {
			segBytes = remote.AppendSegmentInfo(nil, chain[i-1].h.PrevSeg)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO mlog(seq, kind, base, prev, created, seg, bytes) VALUES(?, ?, ?, ?, ?, ?, 0)`,
			r.h.Seq, r.h.Kind, r.h.Base, r.h.Prev, r.h.Created.UnixNano(), segBytes); err != nil {
			return nil, fmt.Errorf("journal: rebuild: %w", err)
		}
	}
	for _, q := range []string{
		// Files deleted while open when the record was made: nothing can
		// have them open here. Open would reap them, a change the grid
		// never needed, and status would count it as waiting for the
		// grid until the next record; their rows go with the dangling
		// ones below.
		`DELETE FROM inodes WHERE nlink = 0`,
		// A consistent record has no dangling row; these guard the drive
		// against one that has (a bug), at the cost of the dangling rows.
		`DELETE FROM entries WHERE ino NOT IN (SELECT ino FROM inodes) OR parent NOT IN (SELECT ino FROM inodes)`,
		`DELETE FROM xattrs WHERE ino NOT IN (SELECT ino FROM inodes)`,
		`DELETE FROM symlinks WHERE ino NOT IN (SELECT ino FROM inodes)`,
		`DELETE FROM blockmap WHERE ino NOT IN (SELECT ino FROM inodes)`,
		// Blocks a map names but no record listed, and blocks that were
		// still staged when their record was shipped: lost.
		`INSERT OR IGNORE INTO blocks(id, plain_len, sealed_len, refcount, state, prio, seq)
			SELECT DISTINCT block, 0, 0, 0, 3, 0, 0 FROM blockmap`,
		`UPDATE blocks SET state = 3, segment = NULL, seg_off = NULL, seg_len = NULL
			WHERE state = 0 OR (segment IS NOT NULL AND segment NOT IN (SELECT id FROM segments))`,
		`UPDATE blocks SET refcount = (SELECT count(*) FROM blockmap m WHERE m.block = blocks.id)`,
		// A record that left out a file rewritten in place (its blocks
		// queued: metadefer.go) lists its older version's blocks as
		// garbage, which they were on the machine that wrote it; here
		// that version is the file's, and its blocks are live.
		`UPDATE blocks SET state = CASE WHEN segment IS NULL THEN 3 ELSE 1 END WHERE refcount > 0 AND state = 2`,
		`UPDATE blocks SET state = 2 WHERE refcount = 0 AND state = 1`,
		`DELETE FROM blocks WHERE refcount = 0 AND state = 3`,
		`DELETE FROM mdirty`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("journal: rebuild: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES('mlog_next', ?), ('recovered', ?)`,
		fmt.Sprint(o.Seq+1), time.Now().UTC().Format(time.RFC3339)); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	var root int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM inodes WHERE ino = 1`).Scan(&root); err != nil || root != 1 {
		return nil, fmt.Errorf("journal: rebuild: %w: the records hold no root directory", metalog.ErrCorrupt)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM inodes`).Scan(&st.Inodes); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM blocks WHERE state = 3`).Scan(&st.LostBlocks); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	if st.LostBlocks > 0 {
		if st.LostFiles, st.LostPaths, err = lostFiles(ctx, tx); err != nil {
			return nil, fmt.Errorf("journal: rebuild: name the files with lost blocks: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("journal: rebuild: commit: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = ON"); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	if n, err := countRows(ctx, conn, "PRAGMA foreign_key_check"); err != nil || n > 0 {
		return nil, fmt.Errorf("journal: rebuild: %w: the rebuilt tables do not agree (%d foreign-key violations, %v)", metalog.ErrCorrupt, n, err)
	}
	conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	conn.Close()
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	if err := os.Rename(tmp, o.Dir); err != nil {
		return nil, fmt.Errorf("journal: rebuild: %w", err)
	}
	ok = true
	return st, nil
}

func countRows(ctx context.Context, conn *sql.Conn, q string) (int, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}
