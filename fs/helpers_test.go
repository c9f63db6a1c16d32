package fs

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/posixtest"
)

// requireFUSE skips a test that needs /dev/fuse when it is missing, except
// under CI, where a missing /dev/fuse is a failure.
func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("/dev/fuse is required under CI: %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// unmountOnCleanup unmounts srv when the test ends.
func unmountOnCleanup(t testing.TB, srv *fuse.Server) {
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
}

// mountFake mounts an in-memory fake journal.
func mountFake(t testing.TB) (string, *fakeJournal) {
	requireFUSE(t)
	j := newFakeJournal()
	mnt := t.TempDir()
	srv, err := Mount(mnt, j, MountOptions{AllowOther: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	unmountOnCleanup(t, srv)
	return mnt, j
}

// posixNotRun lists the posixtest tests we do not run, each with the
// reason. Keep it empty unless a test is wrong for every file system.
var posixNotRun = map[string]string{
	// The test takes a write lock through one descriptor and expects a
	// read lock through a second descriptor of the same process to fail
	// with EAGAIN. Classic POSIX (F_SETLK) locks belong to the process,
	// so the second lock converts the first and succeeds: the test fails
	// the same way on ext4 and tmpfs, and go-fuse's own TestAll skips it
	// ("TODO - fix this test"). TestLocksPerDescription checks what it
	// means to check with open-file-description locks (F_OFD_SETLK),
	// and that a lock held by another process conflicts.
	"FcntlFlockLocksFile": "wrong for POSIX locks; see TestLocksPerDescription",
}

// posixSkipsAllowed lists the posixtest tests allowed to skip, each with
// the reason. Any other skip fails: a skip is not a pass.
var posixSkipsAllowed = map[string]string{}

// runPosixtest runs every test of go-fuse's posixtest suite, each in a
// fresh directory of the mount at mnt.
func runPosixtest(t *testing.T, mnt string) {
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			if reason, ok := posixNotRun[name]; ok {
				t.Skip(reason)
			}
			dir := filepath.Join(mnt, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if t.Skipped() {
					if reason, ok := posixSkipsAllowed[name]; ok {
						t.Logf("allowed skip: %s", reason)
					} else {
						t.Errorf("posixtest %s skipped; a skip is not a pass", name)
					}
				}
			}()
			defer watchdog(t, mnt, time.Minute)()
			fn(t, dir)
		})
	}
}

func TestPosixFake(t *testing.T) {
	mnt, _ := mountFake(t)
	runPosixtest(t, mnt)
}

// watchdog guards against a hung FUSE request: a test process that waits
// on its own mount can never exit. After d it prints every goroutine's
// stack and aborts the mount's FUSE connection, so the blocked system
// calls fail and the test ends with a report. Call the result to disarm.
func watchdog(t testing.TB, mnt string, d time.Duration) (stop func()) {
	timer := time.AfterFunc(d, func() {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "watchdog: %s hung for %v; goroutines:\n%s\n", t.Name(), d, buf)
		if err := abortMount(mnt); err != nil {
			fmt.Fprintf(os.Stderr, "watchdog: abort %s: %v\n", mnt, err)
		}
	})
	return func() { timer.Stop() }
}

// abortMount aborts the FUSE connection of the mount at mnt through
// fusectl (/sys/fs/fuse/connections/DEV/abort).
func abortMount(mnt string) error {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != mnt {
			continue
		}
		_, minor, ok := strings.Cut(f[2], ":")
		if !ok {
			continue
		}
		return os.WriteFile(filepath.Join("/sys/fs/fuse/connections", minor, "abort"), []byte("1"), 0)
	}
	return fmt.Errorf("%s not in /proc/self/mountinfo", mnt)
}
