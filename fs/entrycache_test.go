package fs

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestEntriesOutliveASecond: the kernel keeps a name for the mount's
// entryTimeout, longer than libfuse's second, so an rm or a stat of a file
// made a few seconds before asks the drive for no LOOKUP (every change to
// the names goes through the kernel, which drops or replaces the entry
// itself).
func TestEntriesOutliveASecond(t *testing.T) {
	var lookups atomic.Int64
	s := newStack(t, stackOptions{ObserveOp: func(op string, _ time.Duration, _ bool) {
		if op == "lookup" {
			lookups.Add(1)
		}
	}})
	f := filepath.Join(s.mnt, "made-before")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An open descriptor holds the kernel's entry, so that a drop of the
	// kernel's caches by a test running beside this one (cmd/meshbench's
	// cold rows write /proc/sys/vm/drop_caches) cannot evict it: only
	// its timeout is under test.
	held, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	time.Sleep(1500 * time.Millisecond) // past libfuse's one-second entry timeout
	n0 := lookups.Load()
	if _, err := os.Stat(f); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	if n := lookups.Load() - n0; n != 0 {
		t.Errorf("stat and unlink of a name made 1.5 s before sent %d LOOKUPs, want 0 (entry timeout %v)", n, entryTimeout)
	}
	if _, err := os.Stat(f); !os.IsNotExist(err) {
		t.Fatalf("stat after unlink: %v, want ENOENT", err)
	}
}
