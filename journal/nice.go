package journal

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Background work below the foreground. The unlinker applies deferred
// creates, closes and unlinks to the database and seals small files'
// blocks (sealAhead): CPU that nobody waits for, spent while a program
// such as cp -a waits for each of its FUSE requests in turn. On a
// 2-core machine that program, the FUSE handler and the background work
// share the cores, and every request the handler answers late delays the
// program. So the unlinker runs on an OS thread of its own whose nice
// value is raised: the kernel then runs the handler and the program
// first, and gives the unlinker what they leave (with the spare Ps of
// fs.RaiseProcs, cp -a of $GOROOT/src took about 10% less time:
// docs/BENCHMARKS.md).
//
// Not 19: the unlinker holds wmu while it applies, and a FUSE request
// that needs wmu then waits for it. At nice 10 the thread still gets
// about a tenth of a core that nice-0 work keeps busy, so such a wait is
// stretched, not starved.
const backgroundNice = 10

// lowerThreadPriority locks the calling goroutine to its OS thread for
// the rest of its life and raises that thread's nice value to
// backgroundNice (never lowers it: a drive started with nice 15 keeps
// 15). The caller must not unlock the thread: a goroutine that returns
// while locked takes its thread with it, so no other goroutine ever runs
// on the lowered one. An error of setpriority(2) only costs priority.
func lowerThreadPriority() error {
	runtime.LockOSThread()
	tid := unix.Gettid()
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return err
	}
	if 20-raw >= backgroundNice { // the system call answers 20 - nice
		return nil
	}
	return unix.Setpriority(unix.PRIO_PROCESS, tid, backgroundNice)
}
