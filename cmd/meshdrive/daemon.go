package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// readyTimeout bounds the wait for the detached mount to report. Mounting
// never waits for the grid, so this is only reached when something is
// wrong (a hung disk, say).
const readyTimeout = 2 * time.Minute

// logKeep is the size past which a mount's log is moved aside (to
// meshdrive.log.1, replacing the one before) when the next mount starts:
// a drive mounted for years must not fill its disk with log lines.
const logKeep = 16 << 20

// openDaemonLog opens the log at path for appending, first moving it
// aside when it has grown past logKeep.
func openDaemonLog(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > logKeep {
		if err := os.Rename(path, path+".1"); err != nil {
			return nil, err
		}
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}

// startDaemon re-executes this binary detached (new session, output to
// DATA/meshdrive.log), hands it the master key over a pipe and waits for
// its one-line readiness report: "ok" or "error: MESSAGE".
func startDaemon(ctx context.Context, e *env, o mountOptions, master []byte) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("daemon: cannot find this program: %w", err)
	}
	logPath := filepath.Join(o.dataDir, logFile)
	logf, err := openDaemonLog(logPath)
	if err != nil {
		return fmt.Errorf("daemon: cannot open the log %s: %w", logPath, err)
	}
	defer logf.Close()
	keyR, keyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer keyR.Close()
	defer keyW.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	defer readyW.Close()

	args := []string{"mount", "--data", o.dataDir,
		"--cache-size", strconv.FormatInt(o.cacheSize, 10),
		"--cache-mem", strconv.FormatInt(o.cacheMem, 10),
		"--upload-limit", strconv.FormatInt(int64(o.uploadLimit), 10),
		"--download-limit", strconv.FormatInt(int64(o.downloadLimit), 10),
		"--log-level", o.logLevel,
		"--repair-limit", strconv.FormatInt(int64(o.repairLimit), 10),
		"--repair-below", strconv.Itoa(o.repairBelow),
		"--repair-interval", o.repairInterval.String()}
	if o.allowOther {
		args = append(args, "--allow-other")
	}
	if o.readOnly {
		args = append(args, "--read-only")
	}
	if o.dropMissing {
		args = append(args, "--drop-missing")
	}
	args = append(args, "--gc-interval", o.gcInterval.String())
	if o.metaInterval > 0 {
		args = append(args, "--metadata-interval", o.metaInterval.String())
	}
	web := o.webAddr
	if web == "" {
		web = "off"
	}
	args = append(args, "--web", web, "--web-max-upload", strconv.FormatInt(o.webMaxUpload, 10))
	if o.pinBudget > 0 {
		args = append(args, "--pin-budget", strconv.FormatInt(o.pinBudget, 10))
	}
	args = append(args, "--", o.mountpoint)
	cmd := exec.Command(self, args...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), daemonEnv+"=3,4")
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{keyR, readyW} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("daemon: cannot start: %w", err)
	}
	keyR.Close()
	readyW.Close()
	if _, err := keyW.Write(master); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("daemon: handing over the key: %w", err)
	}
	keyW.Close()

	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(readyR).ReadString('\n')
		got <- result{strings.TrimSpace(line), err}
	}()
	var r result
	select {
	case r = <-got:
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		return errors.New("interrupted before the mount was ready")
	case <-time.After(readyTimeout):
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		return fmt.Errorf("the mount was not ready after %v; see %s", readyTimeout, logPath)
	}
	switch {
	case r.line == "ok" || strings.HasPrefix(r.line, "ok warning: "):
		pid := cmd.Process.Pid
		cmd.Process.Release()
		fmt.Fprintf(e.stdout, "drive at %s mounted at %s (pid %d, log %s)\n", o.dataDir, o.mountpoint, pid, logPath)
		if w, ok := strings.CutPrefix(r.line, "ok warning: "); ok {
			fmt.Fprintf(e.stderr, "meshdrive: warning: %s\n", w)
		}
		return nil
	case strings.HasPrefix(r.line, "error: "):
		cmd.Wait()
		return errors.New(strings.TrimPrefix(r.line, "error: "))
	default:
		cmd.Wait()
		return fmt.Errorf("the mount process exited before the mount was ready; see %s", logPath)
	}
}
