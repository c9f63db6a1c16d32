package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPinKeepsDurable: a tester saw a pinned file "local" until the next
// metadata record, then not. The pin never left the disk: the state line
// said local (not yet durable: the pin is an xattr, a metadata change)
// beside "local: fully" (on this disk), and the record made it durable.
// A pin is this machine's choice, not the file's: pinning a durable file
// keeps it durable, the drive too, and the file stays local: fully past
// the next record and a remount.
func TestPinKeepsDurable(t *testing.T) {
	dir, mp, env, _ := newDiskDrive(t, "")
	cleanupMount(t, env, dir, mp)
	// No record ships by the clock during the test; sync ships one.
	mustRun(t, env, "mount", "--daemon", "--metadata-interval", "1h", "--data", dir, mp)
	small, big := filepath.Join(mp, "small"), filepath.Join(mp, "big")
	randomFile(t, small, 1000, 1) // kept in the journal's database
	randomFile(t, big, 3<<20, 2)  // in the disk cache
	mustRun(t, env, "sync", "--data", dir)
	mustRun(t, env, "cache", "clear", "--data", dir)
	for _, p := range []string{small, big} {
		mustRun(t, env, "pin", "--data", dir, p)
		r := waitUntil(t, "status "+p+" to say local: fully", func() pathReport { return pathJSON(t, env, dir, p) },
			func(r pathReport) bool { return r.Local == "fully" })
		if r.State != "durable" || !r.Pinned {
			t.Errorf("%s just pinned: state %q, pinned %v; want durable, pinned", p, r.State, r.Pinned)
		}
	}
	if st := statusJSON(t, env, dir); st.State != "durable" {
		t.Errorf("the drive after pins: state %q, %d metadata changes waiting; want durable", st.State, st.Metadata.PendingRows)
	}
	if err := os.WriteFile(filepath.Join(mp, "later"), []byte("a change for the next record"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "sync", "--data", dir)
	check := func(when string) {
		t.Helper()
		for _, p := range []string{small, big} {
			if r := pathJSON(t, env, dir, p); r.State != "durable" || !r.Pinned || r.Local != "fully" {
				t.Errorf("%s %s: state %q, pinned %v, local %q; want durable, pinned, fully", p, when, r.State, r.Pinned, r.Local)
			}
		}
	}
	check("after the next metadata record")
	mustRun(t, env, "unmount", "--data", dir, mp)
	mustRun(t, env, "mount", "--daemon", "--data", dir, mp)
	check("after a remount")
	if out := mustRun(t, env, "status", "--data", dir, big).stdout; !strings.Contains(out, "): durable") {
		t.Errorf("status of the pinned file:\n%s", out)
	}
	mustRun(t, env, "unmount", "--data", dir, mp)
}
