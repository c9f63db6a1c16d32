package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// child is the driver's handle on one serving process.
type child struct {
	kind string
	mnt  string
	info string // from the child's "ready" line

	cmd  *exec.Cmd
	in   io.WriteCloser
	out  chan string // lines the child printed; closed at its end
	done chan error  // cmd.Wait's result, once
}

// usage is what one workload cost a daemon.
type usage struct {
	CPU    float64 // seconds of daemon CPU
	Reads  int64   // read requests that reached the daemon (-1: not counted)
	Writes int64
	Fsyncs int64 // fsyncs made by the daemon's flushes (D)
	RSS    int64 // peak resident memory of the daemon during the workload (bytes; -1: unknown)
}

// startChild re-executes this binary to serve kind at mnt and waits for it
// to report the mount ready. The child gets its own process group, so a
// Ctrl-C reaches the driver only, which then unmounts in order.
func startChild(ctx context.Context, exe string, kind, mnt string, args []string, stderr io.Writer) (*child, error) {
	all := append([]string{"--kind", kind, "--mnt", mnt}, args...)
	cmd := exec.Command(exe, all...)
	cmd.Env = append(os.Environ(), serveEnv+"=1")
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", kind, err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", kind, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child %s: %w", kind, err)
	}
	c := &child{kind: kind, mnt: mnt, cmd: cmd, in: in, out: make(chan string), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(outPipe)
		for sc.Scan() {
			c.out <- sc.Text()
		}
		close(c.out)
		c.done <- cmd.Wait()
	}()
	line, err := c.read(ctx, 2*time.Minute)
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("child %s did not mount: %w", kind, err)
	}
	info, ok := strings.CutPrefix(line, "ready")
	if !ok {
		c.stop()
		return nil, fmt.Errorf("child %s did not mount: %s", kind, line)
	}
	c.info = strings.TrimSpace(info)
	return c, nil
}

func (c *child) read(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.out:
		if !ok {
			return "", fmt.Errorf("child %s exited", c.kind)
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("child %s: no answer in %v", c.kind, timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// call sends one command and returns the rest of an "ok" answer.
func (c *child) call(ctx context.Context, timeout time.Duration, command string) (string, error) {
	if _, err := fmt.Fprintln(c.in, command); err != nil {
		return "", fmt.Errorf("child %s: send %q: %w", c.kind, command, err)
	}
	line, err := c.read(ctx, timeout)
	if err != nil {
		return "", fmt.Errorf("%s: %w", command, err)
	}
	if rest, ok := strings.CutPrefix(line, "ok"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("child %s: %s: %s", c.kind, command, line)
}

func (c *child) begin(ctx context.Context, name string) error {
	_, err := c.call(ctx, time.Minute, "begin "+name)
	return err
}

func (c *child) end(ctx context.Context) (usage, error) {
	rest, err := c.call(ctx, time.Minute, "end")
	if err != nil {
		return usage{}, err
	}
	u := usage{RSS: -1}
	for _, kv := range strings.Fields(rest) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "cpu":
			u.CPU, _ = strconv.ParseFloat(v, 64)
		case "reads":
			u.Reads, _ = strconv.ParseInt(v, 10, 64)
		case "writes":
			u.Writes, _ = strconv.ParseInt(v, 10, 64)
		case "fsyncs":
			u.Fsyncs, _ = strconv.ParseInt(v, 10, 64)
		case "rss":
			u.RSS, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return u, nil
}

// settle waits for the daemon's background work; uploading a GiB to a
// local grid on a busy machine can take minutes.
func (c *child) settle(ctx context.Context) error {
	_, err := c.call(ctx, 30*time.Minute, "settle")
	return err
}

// remount unmounts and mounts again; wipe also deletes the drive's disk
// cache.
func (c *child) remount(ctx context.Context, wipe bool) error {
	mode := "keep"
	if wipe {
		mode = "wipe"
	}
	_, err := c.call(ctx, 5*time.Minute, "remount "+mode)
	return err
}

func (c *child) clearCache(ctx context.Context) error {
	_, err := c.call(ctx, 5*time.Minute, "clear")
	return err
}

// stop asks the child to unmount and exit, waits for it, kills it (by its
// pid) if it does not, and lazily unmounts whatever it left mounted.
func (c *child) stop() error {
	var errs []error
	fmt.Fprintln(c.in, "quit")
	c.in.Close()
	go func() {
		for range c.out { // drain so the reader goroutine reaches Wait
		}
	}()
	select {
	case err := <-c.done:
		if err != nil {
			errs = append(errs, fmt.Errorf("child %s: %w", c.kind, err))
		}
	case <-time.After(2 * time.Minute):
		errs = append(errs, fmt.Errorf("child %s (pid %d) did not exit; killed", c.kind, c.cmd.Process.Pid))
		c.cmd.Process.Kill()
		<-c.done
	}
	if isMountPoint(c.mnt) {
		if err := unix.Unmount(c.mnt, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("lazy unmount %s: %w", c.mnt, err))
		}
	}
	return errors.Join(errs...)
}

// isMountPoint reports whether path is a mount point, from /proc/self/mountinfo.
func isMountPoint(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && unescapeMount(f[4]) == abs {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
