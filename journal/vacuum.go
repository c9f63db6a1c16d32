package journal

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// Space. Rows a delete removes (a file's inode, names, block map and
// small blocks' sealed bytes, the metadata shipped, the garbage
// collected) leave their pages on sqlite's free list, where later
// inserts reuse them; the file does not shrink by itself. journal.db is
// made with auto_vacuum=INCREMENTAL (openDB), which lets free pages at
// the end of the file be cut off by `PRAGMA incremental_vacuum(N)`, one
// short write transaction that moves N pages' worth of the file's tail
// into free pages and truncates it (at the next checkpoint, in WAL mode).
// It is never run inside a caller's operation: the group committer,
// after its barrier, gives pages back (space.some) when the free ones
// are many, at most vacuumRound a round, wmu taken for each step alone.
// A journal made before (auto_vacuum=NONE) is converted once, by a
// VACUUM at Open (space.convert). Neither changes a row: a crash in
// either leaves the database as its last commit left it, free pages and
// all.
const (
	// Free pages are given back once they are at least vacuumFree and
	// 1/vacuumShare of the file: fewer stay for the next inserts, so a
	// drive that makes and deletes files all day does not shrink and
	// grow its file over and over.
	vacuumFree  = 1024 // pages (4 MiB)
	vacuumShare = 8
	vacuumStep  = 256 // pages (1 MiB) per transaction, wmu held
	vacuumRound = 16  // steps per group commit round (16 MiB)
)

// space gives journal.db's free pages back: the group committer's
// (some) and Open's (convert). A type of its own, not methods of core,
// which every part embeds.
type space struct{ j *core }

// freePagesLocked returns the database's page count and free pages, on
// the write connection (wmu held).
func (s space) freePagesLocked(ctx context.Context) (pages, free int64, err error) {
	j := s.j
	if err := j.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return 0, 0, err
	}
	if err := j.w.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return 0, 0, err
	}
	return pages, free, nil
}

// manyFree says whether free of pages are enough to give back.
func manyFree(pages, free int64) bool {
	return free >= vacuumFree && free*vacuumShare >= pages
}

// some gives free pages back to the file system when they are
// many: up to vacuumRound steps of vacuumStep pages, each its own
// transaction under wmu, so the commits of callers wait for one step at
// most. When pages are left to give back, it kicks the group committer
// for another round; when it gave some back, it starts a checkpoint,
// which cuts the file to its new size. The group committer calls it.
func (s space) some(ctx context.Context) error {
	j := s.j
	if !j.incremental {
		return nil
	}
	gave := false
	defer func() {
		if gave {
			j.checkpointSoon()
		}
	}()
	for step := 0; ctx.Err() == nil; step++ {
		more, err := s.step(ctx, step == 0)
		if err != nil || !more {
			return err
		}
		gave = true
		if step+1 == vacuumRound {
			j.kickGroup() // the rest in the next round
			return nil
		}
	}
	return nil
}

// spaceRetry spaces out the group committer's space.some after one
// fails. On a full disk (its incremental_vacuum grows the WAL) it failed
// at every group commit, a warning each time, and each time took the
// disk's last bytes for a WAL that could not hold it: now it warns once,
// waits spaceRetryBackoff (a minute at first, up to an hour) before the
// next try, and says when it gives pages back again. The group committer
// owns it.
type spaceRetry struct {
	fails int       // failures in a row
	next  time.Time // no try before
}

// spaceRetryBackoff is the wait after a failed give-back.
var spaceRetryBackoff = remote.Backoff{Min: time.Minute, Max: time.Hour}

// some runs space.some on j's journal unless a failure is too recent.
func (r *spaceRetry) some(ctx context.Context, j *core) {
	now := time.Now()
	if now.Before(r.next) {
		return
	}
	err := space{j}.some(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		wait := spaceRetryBackoff.Delay(r.fails)
		if r.fails == 0 {
			j.log.Warn("journal: cannot give free space in journal.db back (is the disk full?); it stays in the file for later inserts, "+
				"and the journal tries again later, without a warning each time", "err", err, "retry_in", wait.Round(time.Second))
		} else {
			j.log.Debug("journal: still cannot give free space in journal.db back", "err", err, "retry_in", wait.Round(time.Second))
		}
		r.fails++
		r.next = now.Add(wait)
	case err == nil && r.fails > 0:
		j.log.Info("journal: giving journal.db's free space back works again", "failed_tries", r.fails)
		r.fails, r.next = 0, time.Time{}
	}
}

// step gives back up to vacuumStep free pages: when first, only if
// they are many (manyFree); else while any are left. It reports whether
// it gave any back.
func (s space) step(ctx context.Context, first bool) (bool, error) {
	j := s.j
	j.wmu.Lock()
	defer j.wmu.Unlock()
	pages, free, err := s.freePagesLocked(ctx)
	if err != nil {
		return false, fmt.Errorf("journal: count free pages: %w", err)
	}
	if free == 0 || first && !manyFree(pages, free) {
		return false, nil
	}
	// Not cancelled halfway: a step is one short transaction.
	if _, err := j.w.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA incremental_vacuum(%d)", vacuumStep)); err != nil {
		return false, fmt.Errorf("journal: give %d free pages back (incremental_vacuum): %w", min(free, vacuumStep), err)
	}
	return true, nil
}

// convert makes a journal made before auto_vacuum=INCREMENTAL able
// to give free pages back: one VACUUM, at Open before anything else runs,
// which rewrites the whole database (about a second per 100 MiB of live
// data, and about as much free disk twice: the copy and the WAL) in one
// transaction. A crash, kill or cancelled ctx during it leaves the
// journal as it was;
// any error is logged, the WAL it grew is cut back, and the journal is
// used as it is, to be converted at a later Open. (A VACUUM may renumber the rowids of tables without
// an INTEGER PRIMARY KEY; the only one read is staged's, as an order
// (kept.go), and the copy keeps their order.) It reports whether the
// journal is INCREMENTAL now.
func (s space) convert(ctx context.Context) bool {
	j := s.j
	conn, err := j.db.Conn(ctx)
	if err != nil {
		j.log.Warn("journal: cannot check journal.db's auto_vacuum; it keeps the space deletes free", "err", err)
		return false
	}
	defer conn.Close()
	var mode int
	if err := conn.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
		j.log.Warn("journal: cannot check journal.db's auto_vacuum; it keeps the space deletes free", "err", err)
		return false
	}
	const incremental = 2
	if mode == incremental {
		return true
	}
	size, free := fileBytes(ctx, conn)
	if size-free > convertMax {
		// The VACUUM rewrites every live page before the mount can
		// answer (about a second per 100 MiB on a fast disk, ten times
		// that on an SD card or a spinning disk), and the mount's parent
		// gives up after two minutes: a kill would leave it unconverted,
		// and every mount would try again. A journal this big stays as
		// it is: its free pages are reused by later inserts.
		j.log.Info("journal: journal.db is too big to convert at mount without delaying it; it keeps its size, and later inserts reuse its free pages",
			"size_mib", size>>20, "free_mib", free>>20, "limit_mib", convertMax>>20)
		return false
	}
	j.log.Info("journal: converting journal.db once so that it gives back the space deletes free; this rewrites it",
		"size_mib", size>>20, "free_mib", free>>20)
	t0 := time.Now()
	if err := convertIncremental(ctx, conn); err != nil {
		// The VACUUM wrote its copy into the WAL, on a full disk up to
		// its last byte, and the rollback leaves the file that size:
		// background checkpoints do not truncate it, so without this
		// the disk stayed full until Close.
		if _, terr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA wal_checkpoint(TRUNCATE)"); terr != nil {
			j.log.Warn("journal: cannot truncate journal.db-wal after the failed conversion; it keeps its size until the drive is unmounted", "err", terr)
		}
		j.log.Warn("journal: could not convert journal.db (it needs free disk about twice its size); it keeps its size and the next mount tries again",
			"err", err)
		return false
	}
	size, _ = fileBytes(ctx, conn)
	j.log.Info("journal: journal.db converted", "size_mib", size>>20, "took", time.Since(t0).Round(time.Millisecond))
	return true
}

// convertMax bounds the live bytes (pages in use) of an old journal.db
// that Open converts: at most a few seconds on a fast disk, well under
// the two minutes a mount's parent waits on a slow one. A variable for
// tests.
var convertMax int64 = 256 << 20

// fileBytes returns the database's size and its free pages' in bytes (0
// when it cannot tell: they are only logged).
func fileBytes(ctx context.Context, conn *sql.Conn) (size, free int64) {
	var pageSize, pages, freePages int64
	conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize)
	conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages)
	conn.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&freePages)
	return pages * pageSize, freePages * pageSize
}

// convertIncremental sets auto_vacuum=INCREMENTAL on conn, runs VACUUM
// (which makes the setting take effect) and checkpoints the WAL the
// VACUUM filled, so that its space comes back at once.
func convertIncremental(ctx context.Context, conn *sql.Conn) error {
	for _, q := range []string{"PRAGMA auto_vacuum = INCREMENTAL", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	var mode int
	if err := conn.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
		return err
	}
	if mode != 2 {
		return fmt.Errorf("auto_vacuum is %d after VACUUM, not 2 (INCREMENTAL)", mode)
	}
	return nil
}
