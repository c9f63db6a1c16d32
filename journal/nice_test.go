package journal

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadNice reads the nice value of thread dir (/proc/self/task/TID or
// /proc/thread-self) from its stat file; ok false when it is gone.
func threadNice(t *testing.T, dir string) (nice int, ok bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, false // the thread exited meanwhile
	}
	// pid (comm) state ppid ... : nice is the 17th field after the comm,
	// which may hold spaces and parentheses itself.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 17 {
		t.Fatalf("%s/stat: %q", dir, b)
	}
	n, err := strconv.Atoi(f[16])
	if err != nil {
		t.Fatalf("%s/stat: nice %q: %v", dir, f[16], err)
	}
	return n, true
}

// nicedThreads is the set of the process's threads whose nice value is
// at least backgroundNice.
func nicedThreads(t *testing.T) map[string]bool {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("no /proc/self/task: %v", err)
	}
	out := map[string]bool{}
	for _, e := range tasks {
		if n, ok := threadNice(t, filepath.Join("/proc/self/task", e.Name())); ok && n >= backgroundNice {
			out[e.Name()] = true
		}
	}
	return out
}

// TestUnlinkerThreadNiced: an open journal's unlinker runs on a thread of
// its own at backgroundNice, so the FUSE handlers and the program
// waiting on them run first (nice.go), and that thread ends with
// the journal: no other goroutine is left running on it.
func TestUnlinkerThreadNiced(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own, ok := threadNice(t, "/proc/thread-self")
	if !ok || own >= backgroundNice {
		t.Skipf("the test itself runs at nice %d (ok %t): nothing to tell apart", own, ok)
	}
	before := nicedThreads(t)
	e := newEnv(t, nil)
	var tid string
	for deadline := time.Now().Add(10 * time.Second); tid == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for id := range nicedThreads(t) {
			if !before[id] {
				tid = id
			}
		}
	}
	if tid == "" {
		t.Fatalf("no thread of nice %d or more appeared after Open", backgroundNice)
	}
	if n, _ := threadNice(t, "/proc/thread-self"); n != own {
		t.Errorf("the test's own thread went from nice %d to %d", own, n)
	}
	// Work still runs: a deferred create is applied by the unlinker.
	a := must[Attr](t)(e.j.Mknod(bg, RootIno, "f", 0o644, 0, 0, 0))
	for deadline := time.Now().Add(10 * time.Second); e.j.unl.unlN.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the create of inode %d is still pending after 10 s", a.Ino)
		}
	}
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	e.j = nil
	for deadline := time.Now().Add(10 * time.Second); nicedThreads(t)[tid]; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("thread %s still runs at nice %d or more after Close", tid, backgroundNice)
		}
	}
}

// TestLowerThreadPriorityKeepsHigherNice: a thread already nicer than
// backgroundNice keeps its value (raising priority back would need
// privileges the drive does not have).
func TestLowerThreadPriorityKeepsHigherNice(t *testing.T) {
	done := make(chan [2]int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		var got [2]int
		self := "/proc/thread-self"
		if err := setNiceForTest(backgroundNice + 5); err != nil {
			got[0] = -100
			done <- got
			return
		}
		if err := lowerThreadPriority(); err != nil {
			got[0] = -200
			done <- got
			return
		}
		got[0], _ = threadNice(t, self)
		got[1] = backgroundNice + 5
		done <- got
	}()
	got := <-done
	switch {
	case got[0] == -100:
		t.Skip("cannot set a thread's nice value here")
	case got[0] == -200:
		t.Fatal("lowerThreadPriority failed on a thread that was nicer already")
	case got[0] != got[1]:
		t.Errorf("a thread at nice %d is at %d after lowerThreadPriority", got[1], got[0])
	}
}

// setNiceForTest sets the calling (locked) thread's nice value.
func setNiceForTest(n int) error {
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), n)
}
