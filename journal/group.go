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
// got there first). It stops with ctx; Close makes the rest durable.
func (j *core) groupCommitter(ctx context.Context) {
	defer close(j.groupDone)
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
		if err := j.barrier(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("journal: group commit failed; closed files since the last fsync may not survive a power cut yet", "err", err)
			j.kickGroup() // retry after the next interval
		}
	}
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

// realAfter is time.After: the group committer's clock outside tests.
func realAfter(d time.Duration) <-chan time.Time { return time.After(d) }
