package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func runUnmount(e *env) error {
	fl := newFlagSet(e, "unmount", "unmount [--data DIR] [--wait DURATION] MOUNTPOINT", `
Unmount the drive at MOUNTPOINT. The mount process then flushes its journal
to local disk and exits; when the drive's data dir is known (--data, or the
default) and that drive is mounted there, unmount waits for that (up to
--wait). Uses umount(2) as root, fusermount3 -u otherwise.`)
	dataFlag := fl.String("data", "", "the drive's data dir, to wait for its mount process (default as for mount)")
	wait := fl.Duration("wait", 60*time.Second, "how long to wait for the mount process to finish")
	pos, err := parseFlags(e, fl, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("unmount needs exactly one MOUNTPOINT")
	}
	if *wait < 0 {
		return usageError("--wait %v: want a duration like 60s", *wait)
	}
	mp, err := resolveMountpoint(pos[0])
	if err != nil {
		return err
	}
	if !isMounted(mp) {
		return fmt.Errorf("nothing is mounted at %s", mp)
	}
	dir, _ := resolveDataDir(e, *dataFlag)
	ours := false
	if dir != "" {
		_, holder := lockHolder(dir)
		if holder != "" {
			holder, _ = resolveMountpoint(holder) // a mount before symlinks were resolved
		}
		ours = holder == mp && lockHeld(dir)
	}
	if ours {
		// The web app's uploads and downloads hold files of the mount
		// open; a stalled one would make the unmount fail as busy. Best effort: a mount
		// that does not answer is unmounted all the same.
		ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second) // the mount waits 5 s for them
		var ended webEndUploadsReply
		if err := newControlClient(dir).getJSON(ctx, "POST", "/web/end-uploads", &ended); err == nil && ended.Ended > 0 {
			fmt.Fprintf(e.stderr, "meshdrive: ended %d web uploads, downloads or restores in flight (nothing of an upload or restore was kept)\n", ended.Ended)
		}
		cancel()
	}
	if err := unmountPath(mp); err != nil {
		return err
	}
	if ours {
		deadline := time.Now().Add(*wait)
		delay := 20 * time.Millisecond
		for lockHeld(dir) {
			if time.Now().After(deadline) {
				return fmt.Errorf("unmounted %s, but its mount process is still finishing after %v; see %s", mp, *wait, filepath.Join(dir, logFile))
			}
			time.Sleep(jitter(delay))
			delay = min(delay*2, 500*time.Millisecond)
		}
	}
	fmt.Fprintf(e.stdout, "unmounted %s\n", mp)
	return nil
}

// resolveMountpoint makes a mountpoint given on the command line absolute
// and resolves its symlinks, so that om and omlink -> om name one mount:
// the kernel's table (/proc/self/mounts) and DATA/lock then agree with
// what either spelling finds. Its folder is resolved whole and a symlink
// at its end followed once (readlink): the path itself is never looked at
// with stat, which would ask a mounted drive's daemon, and a stopped or
// hung one would never answer an unmount.
func resolveMountpoint(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	resolveDir := func(p string) string {
		if d, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			return filepath.Join(d, filepath.Base(p))
		}
		return p
	}
	abs = resolveDir(abs)
	if t, err := os.Readlink(abs); err == nil {
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(abs), t)
		}
		return resolveDir(filepath.Clean(t)), nil
	}
	return abs, nil
}

// unmountPath unmounts mp: umount(2) first, fusermount3 -u when that is
// not permitted (a user's own FUSE mount).
func unmountPath(mp string) error {
	err := syscall.Unmount(mp, 0)
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("cannot unmount %s: it is busy (a program has a file open or a shell is inside it)", mp)
	}
	bin, lerr := lookFusermount()
	if lerr != nil {
		return fmt.Errorf("cannot unmount %s: %v (and fusermount3 is not installed)", mp, err)
	}
	out, ferr := exec.Command(bin, "-u", mp).CombinedOutput()
	if ferr != nil {
		return fmt.Errorf("cannot unmount %s: %s", mp, strings.TrimSpace(string(out)))
	}
	return nil
}

// lazyUnmount detaches a busy mount.
func lazyUnmount(mp string) {
	if syscall.Unmount(mp, unix.MNT_DETACH) == nil {
		return
	}
	if bin, err := lookFusermount(); err == nil {
		exec.Command(bin, "-u", "-z", mp).Run()
	}
}

func lookFusermount() (string, error) {
	if p, err := exec.LookPath("fusermount3"); err == nil {
		return p, nil
	}
	return exec.LookPath("fusermount")
}

// isMounted reports whether mp is a mountpoint in /proc/self/mounts.
func isMounted(mp string) bool {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return true // cannot tell: let umount decide
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && unescapeMount(fields[1]) == mp {
			return true
		}
	}
	return false
}

// mountedAs reports whether mp is a mountpoint in /proc/self/mounts, and
// the file system type of the topmost mount there. Unlike isMounted it
// answers false when the table cannot be read.
func mountedAs(mp string) (fstype string, ok bool) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && unescapeMount(fields[1]) == mp {
			fstype, ok = fields[2], true
		}
	}
	return fstype, ok
}

// unescapeMount undoes the octal escapes of /proc/mounts (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	isOct := func(c byte) bool { return c >= '0' && c <= '7' }
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOct(s[i+1]) && isOct(s[i+2]) && isOct(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
