package fs

import (
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTmpfileNameNotKept: O_TMPFILE makes its file under a hidden name
// and unlinks it at once, in the mount process, not through the kernel.
// A listing that saw the name in that instant (ls -l, a READDIRPLUS)
// left a kernel entry for it, which the mount's entryTimeout (a minute)
// kept: the name stood for a file that was gone. The kernel is told to
// forget it.
func TestTmpfileNameNotKept(t *testing.T) {
	s := newStack(t, stackOptions{})
	dir := filepath.Join(s.mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			f, err := os.Open(dir)
			if err != nil {
				continue
			}
			ents, _ := f.ReadDir(-1)
			f.Close()
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".meshdrive-tmpfile-") {
					e.Info() // a stat, as ls -l does
					mu.Lock()
					seen[e.Name()] = true
					mu.Unlock()
				}
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 3 {
			break
		}
	}
	close(stop)
	wg.Wait()
	if len(seen) == 0 {
		t.Skip("no listing saw an O_TMPFILE's hidden name in 10 s: nothing to check")
	}
	time.Sleep(1500 * time.Millisecond)
	for name := range seen {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("lstat of O_TMPFILE's hidden name %s, gone from the drive 1.5 s ago: %v, want ENOENT", name, err)
		}
	}
}
