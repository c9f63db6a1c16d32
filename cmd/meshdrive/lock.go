package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// driveLock is the flock on DATA/lock held while a mount runs. The file
// records the holder's pid and mountpoint for the "already mounted"
// message; the flock, not the file, is the lock, so a killed mount never
// leaves a stale one.
type driveLock struct{ f *os.File }

// errAlreadyMounted: another process holds the drive's lock.
var errAlreadyMounted = errors.New("already mounted")

// acquireLock takes DATA/lock without waiting and records pid and mountpoint.
func acquireLock(dir, mountpoint string) (*driveLock, error) {
	f, err := openLocked(dir)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n%s\n", os.Getpid(), mountpoint)
		f.Sync()
	}
	return &driveLock{f: f}, nil
}

// probeLock checks that the lock is free without keeping it.
func probeLock(dir string) error {
	f, err := openLocked(dir)
	if err != nil {
		return err
	}
	return f.Close() // closing releases the flock
}

func openLocked(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open the drive lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, mp := lockHolder(dir)
			if mp != "" {
				return nil, fmt.Errorf("drive at %s is %w at %s (pid %d); unmount it first: meshdrive unmount %s", dir, errAlreadyMounted, mp, pid, mp)
			}
			return nil, fmt.Errorf("drive at %s is %w (lock %s is held)", dir, errAlreadyMounted, path)
		}
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	return f, nil
}

// lockHolder reads the pid and mountpoint recorded in DATA/lock.
func lockHolder(dir string) (pid int, mountpoint string) {
	b, err := os.ReadFile(filepath.Join(dir, lockFile))
	if err != nil {
		return 0, ""
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 {
		return 0, ""
	}
	pid, _ = strconv.Atoi(lines[0])
	return pid, lines[1]
}

// release empties the record and drops the flock.
func (l *driveLock) release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Truncate(0)
	l.f.Close()
	l.f = nil
}

// lockHeld reports whether some process holds DATA/lock.
func lockHeld(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	return false
}
