package fs

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSequentialReadsInLargeRequests reads a file the kernel has not
// cached, from start to end, and counts the READs that reach the drive:
// with the mount's read-ahead raised to 1 MiB they are 1 MiB each, not
// the 128 KiB of the kernel's default (eight times as many). The fake
// journal's replies are copies (dataResult): go-fuse must write them
// without trying a splice, which logs an error for each 1 MiB READ.
func TestSequentialReadsInLargeRequests(t *testing.T) {
	requireFUSE(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root: the mount's read-ahead can only be raised by root")
		}
		t.Skip("raising the mount's read-ahead needs root")
	}
	j := newFakeJournal()
	var reads atomic.Int64
	var logged syncBuffer
	o := MountOptions{Logger: slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, &logged), nil)), Observe: func(op string, _ time.Duration, _ bool) {
		if op == "read" {
			reads.Add(1)
		}
	}}
	const size = 16 << 20
	want := make([]byte, size)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}

	// Written through a first mount, read through a second: the second
	// kernel mount has none of the file's pages.
	mnt := t.TempDir()
	srv, err := Mount(mnt, j, o)
	if err != nil {
		t.Fatal(err)
	}
	werr := os.WriteFile(filepath.Join(mnt, "big"), want, 0o644)
	unmount(t, srv, mnt)
	if werr != nil {
		t.Fatal(werr)
	}
	mnt = t.TempDir()
	srv, err = Mount(mnt, j, o)
	if err != nil {
		t.Fatal(err)
	}
	unmountOnCleanup(t, srv, mnt)

	p, err := readAheadPath(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if kb, ok := readAheadKB(p); !ok || kb != 1024 {
		t.Errorf("%s = %d (read: %v), want 1024", p, kb, ok)
	}

	f, err := os.Open(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reads.Store(0)
	got, err := io.ReadAll(io.LimitReader(f, size+1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
	// 16 READs of 1 MiB, and a few for the end of the file; at 128 KiB
	// it would be 128. Fewer than 16 would mean the pages were cached.
	if n := reads.Load(); n < size>>20 || n > 2*size>>20 {
		t.Errorf("reading %d MiB from start to end took %d READs, want %d to %d (1 MiB each)", size>>20, n, size>>20, 2*size>>20)
	}
	if s := logged.String(); strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		t.Errorf("the mounts logged warnings:\n%s", s)
	}
}

// syncBuffer is a bytes.Buffer for many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReadAheadNotRaisedIsLogged: a mount whose read-ahead cannot be
// raised (here: no such mountpoint to find its device by) says so, with
// what a user may do, and goes on.
func TestReadAheadNotRaisedIsLogged(t *testing.T) {
	var logged syncBuffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	raiseReadAhead(filepath.Join(t.TempDir(), "missing"), 1<<20, log)
	s := logged.String()
	for _, want := range []string{"level=INFO", "read-ahead", "needs root", "want_kb=1024", "no such file"} {
		if !strings.Contains(s, want) {
			t.Errorf("log %q lacks %q", s, want)
		}
	}
}
