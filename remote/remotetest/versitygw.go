package remotetest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Credentials of the gateways StartVersitygw starts.
const (
	VersitygwAccess = "meshdrive-test-ak"
	VersitygwSecret = "meshdrive-test-secret-key"
)

// FindVersitygw returns the versitygw binary from PATH or
// $(go env GOPATH)/bin. When it is missing the test is skipped, or fails
// when the environment variable CI is set.
func FindVersitygw(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "versitygw not found on PATH or in $(go env GOPATH)/bin; install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// lockedBuffer collects a child's output; the child writes while the test
// may read it for a message.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartVersitygw starts a real versitygw S3 gateway serving a fresh
// temporary directory on 127.0.0.1, with the credentials VersitygwAccess
// and VersitygwSecret, and returns its host:port once it accepts
// connections. The command is
//
//	versitygw --access AK --secret SK --port 127.0.0.1:PORT --quiet posix DIR
//
// The process is stopped by its PID when the test ends.
func StartVersitygw(t testing.TB) string {
	t.Helper()
	bin := FindVersitygw(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root := t.TempDir()
	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "--access", VersitygwAccess, "--secret", VersitygwSecret,
		"--port", addr, "--quiet", "posix", root)
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case err := <-exited:
			t.Fatalf("versitygw exited before accepting connections: %v\n%s", err, logs.String())
		case <-time.After(wait):
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not accept connections on %s within 15s\n%s", addr, logs.String())
		}
	}
}
