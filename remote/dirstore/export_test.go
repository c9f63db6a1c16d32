package dirstore

import (
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
)

// CountReadDirs counts the directory reads of every Store until restore.
func CountReadDirs() (n *atomic.Int64, restore func()) {
	n = new(atomic.Int64)
	readDir = func(name string) ([]os.DirEntry, error) {
		n.Add(1)
		return os.ReadDir(name)
	}
	return n, func() { readDir = os.ReadDir }
}

// HoldWalks makes every Store's object count walk wait until release is
// closed; walking receives the directory of each as it starts waiting.
// restore undoes it.
func HoldWalks(release <-chan struct{}) (walking <-chan string, restore func()) {
	ch := make(chan string, 16)
	walkDir = func(root string, fn fs.WalkDirFunc) error {
		ch <- root
		<-release
		return filepath.WalkDir(root, fn)
	}
	return ch, func() { walkDir = filepath.WalkDir }
}

// WaitRecount waits for the recounts s started to end.
func WaitRecount(s *Store) { s.recounts.Wait() }
