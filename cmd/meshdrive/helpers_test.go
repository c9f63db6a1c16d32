package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// binDir holds the meshdrive binary, built on first use (so -list and
// fuzz workers, which run no end-to-end test, build nothing).
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

// testKDFEnv=1 makes a test binary derive keys cheaply (testhooks.go).
const testKDFEnv = "MESHDRIVE_INSECURE_TEST_KDF"

// meshdriveBin builds the binary once per test process, with the test
// hooks (testhooks.go), and returns its path.
func meshdriveBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		os.Chmod(binDir, 0o755) // the no-permission test runs it as another user
		p := filepath.Join(binDir, "meshdrive")
		out, err := exec.Command("go", "build", "-tags", "meshdrive_testhooks", "-o", p, ".").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("building meshdrive: %v\n%s", err, out)
			return
		}
		binPath = p
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meshdrive-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// longTest marks one of the package's longest tests (each tens of seconds
// on 2 cores, mostly waiting on its own nodes and mount) to run beside
// another such test (go test -parallel, GOMAXPROCS at a time) once the
// short ones are done: they share nothing but the binary (own temporary
// directories, kernel-chosen ports, own mountpoints). The package's tests
// otherwise run one by one: the suite's longest package by minutes, still
// running long after the others are done.
func longTest(t *testing.T) {
	t.Helper()
	t.Parallel()
}

// requireFuse skips without /dev/fuse, except under CI where that fails.
func requireFuse(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("/dev/fuse is missing under CI: %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
}

// result of one command run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// cmdEnv is the environment for the binary: ours minus MESHDRIVE_*, plus
// cheap key derivation (see testhooks.go), plus extra.
func cmdEnv(extra ...string) []string {
	env := []string{testKDFEnv + "=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESHDRIVE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// run runs the binary to completion (bounded by 3 minutes).
func runBin(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, meshdriveBin(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("meshdrive %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustRun runs the binary and fails the test unless it exits 0.
func mustRun(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := runBin(t, env, args...)
	if r.code != 0 {
		t.Fatalf("meshdrive %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// nodeProc is a running `meshdrive node serve`.
type nodeProc struct {
	cmd     *exec.Cmd
	addr    string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// startNode starts a node on 127.0.0.1 with a kernel-chosen port and
// stops it (SIGTERM, then SIGKILL) at cleanup. The node is started with
// --new: dir is made and marked when it is not a node's directory yet.
func startNode(t *testing.T, dir string, extra ...string) *nodeProc {
	t.Helper()
	return startNodeArgs(t, append([]string{"--dir", dir, "--new", "--listen", "127.0.0.1:0", "--log-level", "warn"}, extra...)...)
}

// startNodeArgs is startNode with node serve's every flag given.
func startNodeArgs(t *testing.T, flags ...string) *nodeProc {
	t.Helper()
	return startNodeStderr(t, os.Stderr, flags...)
}

// startNodeStderr is startNodeArgs with the node's stderr going to
// stderr (a file: what the node wrote before it listened is in it once
// it has).
func startNodeStderr(t *testing.T, stderr *os.File, flags ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(meshdriveBin(t), append([]string{"node", "serve"}, flags...)...)
	cmd.Env = cmdEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nodeProc{cmd: cmd, done: make(chan struct{})}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() {
		io.Copy(io.Discard, stdout)
		n.waitErr = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() { n.stop(t, syscall.SIGTERM) })
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("node serve printed %q (%v)", line, err)
	}
	n.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	return n
}

func (n *nodeProc) url() string { return "http://" + n.addr }

// stop signals the node and waits for it; a node that does not stop in
// 20 s is killed and the test fails. It returns the exit error.
func (n *nodeProc) stop(t *testing.T, sig syscall.Signal) error {
	select {
	case <-n.done:
		return n.waitErr
	default:
	}
	n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		t.Errorf("node %s did not stop on %v", n.addr, sig)
		<-n.done
	}
	return n.waitErr
}

// mounted reports whether mp is in /proc/self/mounts.
func mounted(mp string) bool { return isMounted(mp) }

// lockFree reports whether DATA/lock can be taken now.
func lockFree(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

// cleanupMount makes sure mp is unmounted and the drive's mount process
// gone at the end of the test.
func cleanupMount(t *testing.T, env []string, dir, mp string) {
	t.Cleanup(func() {
		if mounted(mp) {
			r := runBin(t, env, "unmount", "--data", dir, "--wait", "30s", mp)
			if r.code != 0 {
				t.Logf("cleanup unmount: %s", r)
				syscall.Unmount(mp, unix.MNT_DETACH)
			}
		}
		if pid, _ := lockHolder(dir); pid > 0 && !lockFree(t, dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// assertRefusal checks a refusal: non-zero exit, one line on stderr that
// contains every want, and no mount or lock left behind.
func assertRefusal(t *testing.T, r result, dir, mp string, want ...string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("expected a refusal, got success: %s", r)
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if strings.Contains(msg, "\n") || msg == "" {
		t.Errorf("stderr is not one line: %q", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not contain %q", msg, w)
		}
	}
	if mp != "" && mounted(mp) {
		t.Errorf("a mount was left at %s", mp)
		syscall.Unmount(mp, unix.MNT_DETACH)
	}
	if dir != "" && !lockFree(t, dir) {
		t.Errorf("the lock %s was left held", filepath.Join(dir, lockFile))
	}
}
