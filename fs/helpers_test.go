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
	"golang.org/x/sys/unix"
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

// unmountOnCleanup unmounts srv, mounted at mnt, when the test ends.
func unmountOnCleanup(t testing.TB, srv *fuse.Server, mnt string) {
	t.Cleanup(func() { unmount(t, srv, mnt) })
}

// unmount unmounts srv, mounted at mnt. When the kernel refuses (EBUSY: a
// file or a mapping of this process on the mount is still open, most
// often one a t.Fatal skipped the Close or Munmap of), the test fails
// naming what is open, and the mount's connection is aborted and the
// mount detached. Left mounted, the process could never exit: its exit
// closes that file, which sends a FLUSH (and a mapping's end writes its
// dirty pages back) to a server that was this process and is gone.
func unmount(t testing.TB, srv *fuse.Server, mnt string) {
	err := srv.Unmount()
	if err == nil {
		return
	}
	t.Errorf("unmount %s: %v; this process still has open on it: %s (close each in a defer or t.Cleanup, so that a t.Fatal cannot leave it open)",
		mnt, strings.Join(strings.Fields(err.Error()), " "), openOn(mnt))
	if err := abortMount(mnt); err != nil {
		t.Errorf("unmount: aborting the FUSE connection of %s: %v", mnt, err)
	}
	if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
		t.Errorf("unmount: detaching %s: %v", mnt, err)
	}
}

// openOn lists the files this process has open under mnt, by descriptor
// (/proc/self/fd) and by mapping (/proc/self/maps).
func openOn(mnt string) string {
	under := func(p string) bool { return p == mnt || strings.HasPrefix(p, mnt+"/") }
	var open []string
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && under(p) {
			open = append(open, fmt.Sprintf("fd %s %s", fd.Name(), p))
		}
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	for _, line := range strings.Split(string(maps), "\n") {
		// address perms offset dev inode path
		if f := strings.Fields(line); len(f) >= 6 && under(f[5]) {
			open = append(open, fmt.Sprintf("mapping %s %s %s", f[0], f[1], f[5]))
		}
	}
	if len(open) == 0 {
		return "nothing (another process, then)"
	}
	return strings.Join(open, ", ")
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
	unmountOnCleanup(t, srv, mnt)
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
	conn, err := fuseConn(mnt)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join("/sys/fs/fuse/connections", conn, "abort"), []byte("1"), 0)
}

// fuseConn returns the fusectl name of the connection of the mount at mnt
// (its device's minor number), or an error when nothing is mounted there.
func fuseConn(mnt string) (string, error) {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != mnt {
			continue
		}
		if _, minor, ok := strings.Cut(f[2], ":"); ok {
			return minor, nil
		}
	}
	return "", fmt.Errorf("%s not in /proc/self/mountinfo", mnt)
}

// errorsTB records Errorf calls instead of failing the test.
type errorsTB struct {
	testing.TB
	errs []string
}

func (r *errorsTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestUnmountWithFileLeftOpen: a test that ends with a file on its mount
// still open (a t.Fatal before the Close) fails and ends, instead of
// hanging at exit. unmount names the file, aborts the connection and
// detaches the mount, so the process's exit, which closes the file and
// so sends a FLUSH, no longer waits on a server that was itself.
func TestUnmountWithFileLeftOpen(t *testing.T) {
	requireFUSE(t)
	mnt := t.TempDir()
	srv, err := Mount(mnt, newFakeJournal(), MountOptions{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(mnt, "left-open"))
	if err != nil {
		srv.Unmount()
		t.Fatal(err)
	}
	t.Cleanup(func() { // only when unmount failed to detach the mount
		f.Close()
		if _, err := fuseConn(mnt); err == nil {
			srv.Unmount()
		}
	})
	rec := &errorsTB{TB: t}
	unmount(rec, srv, mnt)
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "fd ") || !strings.Contains(rec.errs[0], f.Name()) {
		t.Errorf("unmount with %s open reported %q; want one error that names the file", f.Name(), rec.errs)
	}
	if _, err := fuseConn(mnt); err == nil {
		t.Fatalf("%s is still mounted after unmount with a file left open: the test process would hang at exit", mnt)
	}
	f.Close() // the FLUSH fails at once: the connection is gone
}
