package fs

import "testing"

// TestPosix runs go-fuse's posixtest suite, every test in it, against a
// drive whose grid is six real node servers on 127.0.0.1.
func TestPosix(t *testing.T) {
	s := newStack(t, stackOptions{HTTP: true})
	runPosixtest(t, s.mnt)
}
