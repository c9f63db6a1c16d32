package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCommandWaitsForStartingMount: the folder shows as mounted a moment
// before the mount's control socket listens. A command run in that moment
// (here: the lock held with a mountpoint recorded, and the socket coming
// up 300 ms later) waits for the socket instead of saying the drive is not
// mounted; with the lock free it says so at once; a mount that holds the
// lock and never answers gets a message naming its pid after the wait.
func TestCommandWaitsForStartingMount(t *testing.T) {
	dir := t.TempDir()
	lock, err := acquireLock(dir, "/somewhere/Drive")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.release()
	sock := filepath.Join(dir, controlSock)
	go func() {
		time.Sleep(300 * time.Millisecond)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Error(err)
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
		t.Cleanup(func() { srv.Close() })
		srv.Serve(ln)
	}()
	c := newControlClient(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.do(ctx, "GET", "/status")
	if err != nil {
		t.Fatalf("a command right after the mount appeared: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("answer %q", b)
	}

	// A mount that holds the lock and never answers: named, after the wait.
	dir2 := t.TempDir()
	lock2, err := acquireLock(dir2, "/elsewhere/Drive")
	if err != nil {
		t.Fatal(err)
	}
	old := mountStartWait
	mountStartWait = 200 * time.Millisecond
	defer func() { mountStartWait = old }()
	_, err = newControlClient(dir2).do(ctx, "GET", "/status")
	if err == nil || !strings.Contains(err.Error(), "held by its mount process (pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), "meshdrive unmount /elsewhere/Drive") {
		t.Fatalf("a mount that never answers: %v", err)
	}
	lock2.release()

	// No mount at all: an answer at once, not after the wait.
	mountStartWait = time.Minute
	start := time.Now()
	if _, err = newControlClient(dir2).do(ctx, "GET", "/status"); err == nil {
		t.Fatal("no mount: a command succeeded")
	}
	if waited := time.Since(start); waited > 20*time.Second {
		t.Fatalf("no mount: the command waited %v for a mount that is not there", waited)
	}
}
