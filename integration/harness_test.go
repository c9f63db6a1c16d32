package integration

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var long = flag.Bool("long", false, "run the long variants of the reliability suites")

// meshdriveBin is the meshdrive binary TestMain built; buildErr says why there is
// none. They are written once by TestMain before any test runs.
var (
	meshdriveBin string
	buildErr     error
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "meshdrive-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		os.Exit(1)
	}
	meshdriveBin, buildErr = buildBinary(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary builds ./cmd/meshdrive from the module root into dir.
func buildBinary(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("cannot find the module root (go env GOMOD is empty)")
	}
	bin := filepath.Join(dir, "meshdrive")
	// The test hooks: the negative control's corrupted reads.
	cmd := exec.Command(goBin, "build", "-tags", "meshdrive_testhooks", "-o", bin, "./cmd/meshdrive")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/meshdrive failed: %w\n%s", err, out)
	}
	return bin, nil
}

// requireEnv fails when the binary did not build, and skips (fails under
// CI) when /dev/fuse or one of the tools is missing.
func requireEnv(t *testing.T, tools ...string) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("cannot test without the meshdrive binary: %v", buildErr)
	}
	missing := func(what string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and %s", what)
		}
		t.Skipf("%s (set CI=1 to make this a failure)", what)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing("/dev/fuse is missing: " + err.Error())
	}
	for _, tool := range append([]string{"fusermount3"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing(tool + " is not installed (apt-get install fio stress-ng fuse3)")
		}
	}
}

// requireRoot skips (fails under CI) when the test cannot mount tmpfs.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and this test needs root (to mount tmpfs)")
	}
	t.Skipf("needs root to mount tmpfs")
}

// suite counts the subtests of one suite and prints its one-line result
// when the suite's test ends.
type suite struct {
	name             string
	mu               sync.Mutex // guards the fields below
	pass, fail, skip int
	figures          []string
}

func newSuite(t *testing.T, name string) *suite {
	s := &suite{name: name}
	start := time.Now()
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if t.Failed() && s.fail == 0 {
			s.fail++ // the suite's own setup or final check failed
		}
		for _, f := range s.figures {
			t.Logf("%s figure: %s", s.name, f)
		}
		line := fmt.Sprintf("%s: %d passed, %d failed", s.name, s.pass, s.fail)
		if s.skip > 0 {
			line += fmt.Sprintf(", %d skipped", s.skip)
		}
		fmt.Println(line)
		t.Logf("%s took %v", s.name, time.Since(start).Round(time.Second))
	})
	return s
}

// run runs f as a subtest and counts the result.
func (s *suite) run(t *testing.T, name string, f func(t *testing.T)) bool {
	t.Helper()
	ran, skipped := false, false
	ok := t.Run(name, func(t *testing.T) {
		ran = true
		defer func() { skipped = t.Skipped() }()
		f(t)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !ran: // filtered out by -run
	case skipped:
		s.skip++
	case ok:
		s.pass++
	default:
		s.fail++
	}
	return ok
}

// figure records a number for docs/RELIABILITY.md; it is logged when the
// suite ends.
func (s *suite) figure(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.figures = append(s.figures, fmt.Sprintf(format, args...))
}

// waitFor polls cond with a capped, jittered backoff until it is true, it
// fails, or timeout passes.
func waitFor(timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %v", what, timeout)
		}
		time.Sleep(delay/2 + rand.N(delay/2+1))
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// proc is a subprocess with its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status; read after done
}

// startProc starts the binary with args; its stdout and stderr go to
// logPath (appended). The caller owns stopping it.
func startProc(name, logPath string, env []string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== %s %s: meshdrive %s\n", time.Now().Format(time.TimeOnly), name, strings.Join(args, " "))
	cmd := exec.Command(meshdriveBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group (a ^C at the terminal is for go test, not the
	// daemons); die with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to exit.
func (p *proc) wait(timeout time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s (pid %d) has already exited: %v", p.name, p.pid(), p.err)
	}
	return syscall.Kill(p.pid(), sig)
}

// kill SIGKILLs the process (resuming it first if stopped) and waits.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	syscall.Kill(p.pid(), syscall.SIGKILL)
	syscall.Kill(p.pid(), syscall.SIGCONT)
	<-p.done
}

// logTail returns the last n bytes of the process log.
func (p *proc) logTail(n int) string { return fileTail(p.logPath, n) }

func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// cli runs the binary with args and returns its combined output.
func cli(ctx context.Context, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, meshdriveBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("meshdrive %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// run runs an external tool with a timeout and returns its combined output.
func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// isMounted reports whether mp is a mountpoint (per /proc/self/mountinfo).
func isMounted(mp string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.ReplaceAll(f[4], `\040`, " ") == mp {
			return true
		}
	}
	return false
}

// detach lazily unmounts mp (after its daemon died): fusermount3 -u -z,
// then umount2(MNT_DETACH), and waits until it is gone.
func detach(mp string) error {
	if !isMounted(mp) {
		return nil
	}
	if out, err := exec.Command("fusermount3", "-u", "-z", mp).CombinedOutput(); err != nil {
		if err2 := syscall.Unmount(mp, syscall.MNT_DETACH); err2 != nil && isMounted(mp) {
			return fmt.Errorf("detach %s: fusermount3: %v %s; umount2: %v", mp, err, out, err2)
		}
	}
	return waitFor(10*time.Second, "mount at "+mp+" to go away", func() (bool, error) { return !isMounted(mp), nil })
}

// mib formats a byte count.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
