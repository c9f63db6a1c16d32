package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestCheckpointBesideCommits: every checkpointEvery commits a checkpoint
// copies the WAL into the database file beside the commits, long before
// the write connection's own checkpoint (walBackstop pages) would.
func TestCheckpointBesideCommits(t *testing.T) {
	// A commit per create: no deferred creates.
	e := newEnv(t, func(o *Options) { o.UnlinkDelay = -1 })
	path := filepath.Join(e.opts.Dir, "journal.db")
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	// About 8 pages each: 3 checkpoints' worth of commits, well under
	// walBackstop pages.
	const n = 3 * checkpointEvery
	for i := range n {
		if _, err := e.j.Mknod(bg, RootIno, fmt.Sprintf("f%05d", i), 0o100644, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	e.j.ckpt <- struct{}{} // wait for the running checkpoint, if any
	<-e.j.ckpt
	if after := size(); after <= before {
		t.Fatalf("journal.db is %d bytes after %d creates, %d before: nothing was checkpointed", after, n, before)
	}
}
