package dirstore

import (
	"os"
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
