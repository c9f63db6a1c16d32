package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/remote"
)

func TestErrnoTable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("journal: lookup 7/%q: %w", "x", err) }
	for _, c := range []struct {
		err   error
		want  syscall.Errno
		known bool
	}{
		{nil, 0, true},
		{journal.ErrNotFound, syscall.ENOENT, true},
		{wrap(journal.ErrNotFound), syscall.ENOENT, true},
		{wrap(journal.ErrExist), syscall.EEXIST, true},
		{wrap(journal.ErrNotEmpty), syscall.ENOTEMPTY, true},
		{wrap(journal.ErrNotDir), syscall.ENOTDIR, true},
		{wrap(journal.ErrIsDir), syscall.EISDIR, true},
		{wrap(journal.ErrInvalid), syscall.EINVAL, true},
		{wrap(journal.ErrNoXattr), syscall.ENODATA, true},
		{wrap(journal.ErrFull), syscall.ENOSPC, true},
		{wrap(journal.ErrDiskFull), syscall.ENOSPC, true},
		{wrap(journal.ErrReadOnly), syscall.EROFS, true},
		{wrap(journal.ErrNameTooLong), syscall.ENAMETOOLONG, true},
		{wrap(journal.ErrOffline), syscall.EIO, true},
		{wrap(journal.ErrClosed), syscall.EIO, true},
		{wrap(&remote.TooFewShardsError{Usable: 3, Need: 4}), syscall.EIO, true},
		{wrap(remote.ErrTooFewShards), syscall.EIO, true},
		{wrap(remote.ErrCorrupt), syscall.EIO, true},
		{wrap(context.Canceled), syscall.EINTR, true},
		// Cancellation wins over what the layer below made of it.
		{errors.Join(journal.ErrOffline, context.Canceled), syscall.EINTR, true},
		{wrap(context.DeadlineExceeded), syscall.EIO, true},
		{syscall.ENOSPC, syscall.ENOSPC, true},
		{&os.PathError{Op: "write", Path: "dirty/7", Err: syscall.EDQUOT}, syscall.EDQUOT, true},
		{syscall.Errno(0), syscall.EIO, false},
		{errors.New("something nobody expected"), syscall.EIO, false},
		{fs.ErrNotExist, syscall.EIO, false}, // a missing cache file is not a missing name
		// ENOENT of the drive's own files: the program's file exists.
		{&os.PathError{Op: "open", Path: "dirty/7", Err: syscall.ENOENT}, syscall.EIO, false},
		{wrap(&os.PathError{Op: "stat", Path: "staging/ab.tmp", Err: syscall.ENOENT}), syscall.EIO, false},
		{syscall.ENOENT, syscall.EIO, false},
	} {
		got, known := toErrno(c.err)
		if got != c.want || known != c.known {
			t.Errorf("toErrno(%v) = %v, known %v; want %v, known %v", c.err, got, known, c.want, c.known)
		}
	}
}

func TestErrnoLogsUnknownCauses(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	if e := errno(log, "read", 42, errors.New("disk on fire")); e != syscall.EIO {
		t.Fatalf("got %v", e)
	}
	if !strings.Contains(b.String(), "disk on fire") || !strings.Contains(b.String(), "ino=42") {
		t.Errorf("cause not logged: %q", b.String())
	}
	b.Reset()
	if e := errno(log, "lookup", 1, journal.ErrNotFound); e != syscall.ENOENT {
		t.Fatalf("got %v", e)
	}
	if b.Len() != 0 {
		t.Errorf("an ordinary ENOENT was logged: %q", b.String())
	}
}

// TestErrnoLogsOwnFileGone: an ENOENT from one of the drive's own files
// reaches the program as EIO, and the log names the file; a missing name
// (journal.ErrNotFound) stays a silent ENOENT.
func TestErrnoLogsOwnFileGone(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	own := fmt.Errorf("journal: write dirty data of inode 7: %w",
		&os.PathError{Op: "open", Path: "journal/dirty/7", Err: syscall.ENOENT})
	if e := errno(log, "write", 7, own); e != syscall.EIO {
		t.Fatalf("own file gone: got %v, want EIO", e)
	}
	if !strings.Contains(b.String(), "journal/dirty/7") || !strings.Contains(b.String(), "ino=7") {
		t.Errorf("cause not logged: %q", b.String())
	}
	b.Reset()
	if e := errno(log, "lookup", 1, fmt.Errorf("journal: lookup 1/%q: %w", "x", journal.ErrNotFound)); e != syscall.ENOENT {
		t.Fatalf("missing name: got %v, want ENOENT", e)
	}
	if b.Len() != 0 {
		t.Errorf("an ordinary ENOENT was logged: %q", b.String())
	}
}

// TestOwnFileGoneIsEIO: a write that needs one of the drive's own local
// files, which cannot be made (the dirty folder a link to nothing, as when
// its disk is not mounted), fails with EIO through the real FUSE path:
// ENOENT would tell the program that the file it holds open is gone.
func TestOwnFileGoneIsEIO(t *testing.T) {
	// Blocks larger than the bytes a file keeps in memory (128 KiB), so
	// that the write below moves them to a dirty file.
	s := newStack(t, stackOptions{BlockSize: 1 << 20})
	dirty := filepath.Join(s.base, "data", "journal", "dirty")
	f, err := os.Create(filepath.Join(s.mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.RemoveAll(dirty); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.base, "not-mounted", "dirty"), dirty); err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(make([]byte, 256<<10))
	if err == nil {
		err = f.Sync() // the kernel's write-back cache kept the bytes
	}
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("write with the dirty folder a link to nothing: %v, want EIO", err)
	}
}

// TestOfflineReadIsEIO: a read the journal cannot serve reaches the
// application as EIO, through the real FUSE path.
func TestOfflineReadIsEIO(t *testing.T) {
	mnt, j := mountFake(t)
	if err := os.WriteFile(mnt+"/f", []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	j.fail = fmt.Errorf("journal: read: %w", journal.ErrOffline)
	j.mu.Unlock()
	f, err := os.OpenFile(mnt+"/f", os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.Read(buf); !errors.Is(err, syscall.EIO) {
		t.Errorf("read while offline: %v, want EIO", err)
	}
	j.mu.Lock()
	j.fail = fmt.Errorf("journal: write: %w", journal.ErrFull)
	j.mu.Unlock()
	w, err := os.OpenFile(mnt+"/f", os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(buf); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write with a full journal: %v, want ENOSPC", err)
	}
}
