package fs

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshdrive/meshdrive/journal"
)

// mountOpts returns the per-mount options of the mount at mnt, from
// /proc/self/mountinfo (its sixth field).
func mountOpts(t *testing.T, mnt string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == mnt {
			return strings.Split(f[5], ",")
		}
	}
	t.Fatalf("no mount at %s in /proc/self/mountinfo", mnt)
	return nil
}

// TestMountNoatime: reads never move atime, so the mount says noatime
// (it said relatime, the kernel's default), and keeps its other flags:
// a read-only mount stays ro, and nosuid and nodev stay.
func TestMountNoatime(t *testing.T) {
	mnt, _ := mountFake(t)
	opts := strings.Join(mountOpts(t, mnt), ",")
	for _, want := range []string{"rw", "noatime", "nosuid", "nodev"} {
		if !strings.Contains(","+opts+",", ","+want+",") {
			t.Errorf("mount options %q lack %s", opts, want)
		}
	}
	if strings.Contains(opts, "relatime") {
		t.Errorf("mount options %q say relatime; reads do not move atime", opts)
	}

	requireFUSE(t)
	ro := t.TempDir()
	srv, err := Mount(ro, newFakeJournal(), MountOptions{ReadOnly: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	unmountOnCleanup(t, srv, ro)
	if opts := mountOpts(t, ro); opts[0] != "ro" || !strings.Contains(strings.Join(opts, ","), "noatime") {
		t.Errorf("read-only mount's options %q: want ro and noatime", opts)
	}
}

// statfsCounting is a journal whose StatFS calls are counted.
type statfsCounting struct {
	*fakeJournal
	calls atomic.Int32
}

func (j *statfsCounting) StatFS(ctx context.Context) (journal.StatFS, error) {
	j.calls.Add(1)
	return j.fakeJournal.StatFS(ctx)
}

// TestMountNoatimeNoStatfs: the noatime remount read the mount's flags
// with statfs(2), a call into the drive, whose StatFS asks every node for
// its capacity: a node that did not answer held every mount back for the
// health timeout (3 s). The flags come from /proc/self/mountinfo now; the
// mount makes no StatFS call.
func TestMountNoatimeNoStatfs(t *testing.T) {
	requireFUSE(t)
	for _, ro := range []bool{false, true} {
		j := &statfsCounting{fakeJournal: newFakeJournal()}
		mnt := t.TempDir()
		srv, err := Mount(mnt, j, MountOptions{ReadOnly: ro, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		unmountOnCleanup(t, srv, mnt)
		if n := j.calls.Load(); n != 0 {
			t.Errorf("read-only %v: the mount called the journal's StatFS %d times (every node asked for its capacity before the mount returned)", ro, n)
		}
		if opts := strings.Join(mountOpts(t, mnt), ","); !strings.Contains(","+opts+",", ",noatime,") {
			t.Errorf("read-only %v: mount options %q lack noatime", ro, opts)
		}
	}
}
