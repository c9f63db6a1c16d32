package integration

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// interruptedCalls makes file system calls on dir while signals hit the
// calling thread every 500 µs (a handler with SA_RESTART, as most programs
// install), the way stress-ng's SIGALRM or any timer does. The kernel then
// sends FUSE INTERRUPT for calls in flight. A call may fail with EINTR, but
// a call that failed must not have happened: a program that sees creat()
// fail does not unlink the file, and one that sees unlink() fail thinks the
// file is still there. It returns the number of EINTR results and the
// calls that failed with EINTR yet took effect.
func interruptedCalls(t *testing.T, dir string, rounds int) (eintr int, effects []string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := os.Getpid(), unix.Gettid()
	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-sigs:
			case <-tick.C:
				unix.Tgkill(pid, tid, syscall.SIGUSR1)
			}
		}
	}()
	defer func() { close(stop); <-done }()

	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	for i := range rounds {
		f := filepath.Join(dir, fmt.Sprintf("c-%04d", i))
		fd, err := syscall.Open(f, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		switch {
		case errors.Is(err, syscall.EINTR):
			eintr++
			if exists(f) {
				effects = append(effects, "creat "+filepath.Base(f)+": EINTR, but the file exists")
				os.Remove(f)
			}
			continue
		case err != nil:
			t.Errorf("creat %s: %v", f, err)
			continue
		}
		syscall.Close(fd)
		if err := syscall.Unlink(f); errors.Is(err, syscall.EINTR) {
			eintr++
			if !exists(f) {
				effects = append(effects, "unlink "+filepath.Base(f)+": EINTR, but the file is gone")
			}
			os.Remove(f)
		} else if err != nil {
			t.Errorf("unlink %s: %v", f, err)
		}
		d := f + ".d"
		if err := syscall.Mkdir(d, 0o755); errors.Is(err, syscall.EINTR) {
			eintr++
			if exists(d) {
				effects = append(effects, "mkdir "+filepath.Base(d)+": EINTR, but the directory exists")
				os.Remove(d)
			}
			continue
		} else if err != nil {
			t.Errorf("mkdir %s: %v", d, err)
			continue
		}
		if err := syscall.Rmdir(d); errors.Is(err, syscall.EINTR) {
			eintr++
			if !exists(d) {
				effects = append(effects, "rmdir "+filepath.Base(d)+": EINTR, but the directory is gone")
			}
			os.Remove(d)
		} else if err != nil {
			t.Errorf("rmdir %s: %v", d, err)
		}
	}
	return eintr, effects
}
