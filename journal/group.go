package journal

import (
	"context"
	"time"

	"github.com/meshdrive/meshdrive/remote"
)

// Group commit. Ordinary commits (synchronous=NORMAL: a create, the flush
// of a close, an unlink, the reaper's) survive a killed process at once,
// and a power cut once a durable commit follows them. The group committer
// makes that happen at most GroupCommit after the first of them: one WAL
// fsync for every close and namespace change of that interval, where
// close used to pay one each. Fsync does not wait for it (durableTxLocked
// or barrier at once).

// kickGroup tells the group committer that an ordinary commit was made.
// Cheap and non-blocking: the committer counts one interval from the
// first kick it sees.
func (j *core) kickGroup() {
	select {
	case j.groupKick <- struct{}{}:
	default:
	}
}

// groupCommitter is the goroutine that makes ordinary commits durable:
// GroupCommit after a kick, one barrier (which does nothing when a fsync
// got there first), then gives free pages back when they are many
// (space.some; not for a while after that failed, spaceRetry). It stops with ctx; Close makes the rest durable.
func (j *core) groupCommitter(ctx context.Context) {
	defer close(j.groupDone)
	var retry spaceRetry
	var failing repeatWarn
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.groupKick:
		}
		select {
		case <-ctx.Done():
			return
		case <-j.after(j.o.GroupCommit):
		}
		// Kicks during the wait are covered by this barrier (they come
		// from commits before it) or leave a kick for the next round.
		if err := j.barrier(ctx); err != nil {
			if ctx.Err() != nil {
				return // Close cut it short, and makes the rest durable itself: no recovery to report
			}
			if n, ok := failing.fail(time.Now()); ok {
				j.log.Warn("journal: group commit failed; closed files since the last fsync may not survive a power cut yet "+
					"(it is tried again every interval; a full disk is the usual cause: free some room)", "err", err, "failures", n)
			}
			j.kickGroup() // retry after the next interval
			continue
		}
		if n, since, ok := failing.ok(); ok {
			j.log.Info("journal: group commit works again", "failures", n, "failing_since", since.Format(time.RFC3339))
		}
		// Then space, off every caller's path (vacuum.go), unless it
		// failed lately.
		retry.some(ctx, j)
	}
}

// repeatWarn keeps a failure that repeats every interval (the group
// commit on a full disk, every GroupCommit) from filling the log: the
// first failure is logged, then one a minute (repeatWarnEvery) with the
// count so far, and ok reports the recovery once.
type repeatWarn struct {
	n      int       // failures since the last success
	since  time.Time // the first of them
	logged time.Time // the last one logged
}

const repeatWarnEvery = time.Minute

// fail counts a failure at now and reports whether to log it, with the
// failures counted since the last success.
func (w *repeatWarn) fail(now time.Time) (int, bool) {
	w.n++
	if w.n == 1 {
		w.since = now
	}
	if w.n > 1 && now.Sub(w.logged) < repeatWarnEvery {
		return w.n, false
	}
	w.logged = now
	return w.n, true
}

// ok records a success and reports, once, the failures it ends.
func (w *repeatWarn) ok() (int, time.Time, bool) {
	n, since := w.n, w.since
	*w = repeatWarn{}
	return n, since, n > 0
}

// freeLaterLocked records the staging files of blocks an ordinary commit
// deleted: they are removed after the next durable commit (durableLocked),
// never before, or a power cut could undo the commit but not the removal
// and bring back a staged block without its bytes. wmu held.
func (j *core) freeLaterLocked(ids []remote.BlockID) {
	for _, id := range ids {
		j.lazyFree[id] = struct{}{}
	}
}

// keepStagedLocked takes id off the removals waiting for a durable commit:
// a new block of the same id is being staged under the same name. wmu held.
func (j *core) keepStagedLocked(id remote.BlockID) {
	delete(j.lazyFree, id)
}

// WAL checkpoints. sqlite's own (wal_autocheckpoint, 1000 pages) run
// inside the commit that crosses the mark, on the write connection with
// wmu held: that commit, and every create, unlink or close queued behind
// it, waits for the copy of the WAL into the database and its two
// fsyncs. Instead every checkpointEvery commits a PASSIVE checkpoint runs
// on a pool connection on a goroutine of its own, beside the commits
// (WAL mode lets a checkpoint run beside a writer; it copies what no
// reader still needs and never blocks one), and the write connection
// checkpoints itself only past walBackstop pages. While commits go on,
// the WAL cannot start over (a background checkpoint never catches up
// with the last frame), so it grows to walBackstop and the write
// connection's checkpoint then copies only the frames since the last
// background one. A checkpoint changes nothing of what a crash keeps:
// the WAL's committed frames are the truth until they are in the
// database file. BenchmarkOpLog's journal figures, three runs in turns
// with the old autocheckpoint (1000 pages, inline): wall µs per create
// 187, 169, 309 against 278, 294, 427; per unlink 248, 154, 468 against
// 307, 270, 369; CPU the same or lower.
const (
	checkpointEvery = 256  // commits (a create or unlink writes about 8 pages)
	walBackstop     = 8192 // pages (32 MiB)
)

// checkpointSoon starts a background checkpoint unless one is running.
func (j *core) checkpointSoon() {
	select {
	case j.ckpt <- struct{}{}:
	default:
		return // one is running, or Close has begun
	}
	go func() {
		defer func() { <-j.ckpt }()
		if _, err := j.db.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
			j.log.Warn("journal: background checkpoint", "err", err)
		}
	}()
}

// realAfter is time.After: the group committer's clock outside tests.
func realAfter(d time.Duration) <-chan time.Time { return time.After(d) }
