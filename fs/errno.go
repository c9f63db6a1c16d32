package fs

import (
	"context"
	"errors"
	"log/slog"
	"syscall"

	"github.com/meshdrive/meshdrive/journal"
	"github.com/meshdrive/meshdrive/remote"
)

// errnoTable is the one place where meshdrive errors become errno values.
// Order matters: the first sentinel that errors.Is matches wins, so an
// interrupted call reports EINTR even when the layer below wrapped the
// cancellation into its own error.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
}{
	{context.Canceled, syscall.EINTR},
	{journal.ErrNotFound, syscall.ENOENT},
	{journal.ErrExist, syscall.EEXIST},
	{journal.ErrNotEmpty, syscall.ENOTEMPTY},
	{journal.ErrNotDir, syscall.ENOTDIR},
	{journal.ErrIsDir, syscall.EISDIR},
	{journal.ErrInvalid, syscall.EINVAL},
	{journal.ErrNoXattr, syscall.ENODATA},
	{journal.ErrFull, syscall.ENOSPC},
	{journal.ErrDiskFull, syscall.ENOSPC},
	{ErrPinBudget, syscall.ENOSPC},
	{journal.ErrReadOnly, syscall.EROFS},
	{journal.ErrNameTooLong, syscall.ENAMETOOLONG},
	{journal.ErrTooBig, syscall.EFBIG},
	{journal.ErrOffline, syscall.EIO},
	{journal.ErrClosed, syscall.EIO},
	{journal.ErrNoData, syscall.ENXIO},
	{journal.ErrLostBlock, syscall.EIO},
	{remote.ErrTooFewShards, syscall.EIO},
	{remote.ErrCorrupt, syscall.EIO},
	{remote.ErrFull, syscall.ENOSPC},
	// A deadline is the grid being too slow to answer: to an application
	// that is an I/O error, the same as a node being down (DESIGN promise
	// 4: an uncached read fails fast with EIO).
	{context.DeadlineExceeded, syscall.EIO},
}

// expected reports whether an errno is an ordinary answer (a missing
// name, a full directory...) rather than a failure worth a log line.
func expected(e syscall.Errno) bool {
	switch e {
	case syscall.EIO, syscall.ENOSPC:
		return false
	}
	return true
}

// toErrno maps err to the errno an application should see. known is false
// when err matched nothing in the table and is not a syscall.Errno, or is
// ENOENT: the caller then answers EIO and logs the cause.
//
// A name the program asked for and that is missing is journal.ErrNotFound,
// matched above. An ENOENT errno is the drive's own local file missing (a
// staging, dirty or cache file, the journal folder's, found in an
// *os.PathError): answered as it is, it would tell the program that its
// file, which exists, is gone, and nobody would learn why. No fs call
// hands errno a bare ENOENT meant for the program (Getattr and the
// snapshots' Lookup answer it themselves).
func toErrno(err error) (e syscall.Errno, known bool) {
	if err == nil {
		return 0, true
	}
	for _, row := range errnoTable {
		if errors.Is(err, row.err) {
			return row.errno, true
		}
	}
	var se syscall.Errno
	if errors.As(err, &se) {
		if se == 0 || se == syscall.ENOENT {
			return syscall.EIO, false
		}
		return se, true
	}
	return syscall.EIO, false
}

// errno converts err for go-fuse and logs what an application cannot see:
// the cause of every EIO or ENOSPC and of anything unknown. op and ino say
// which call failed. It never hands a domain error to go-fuse's ToErrno
// (which would answer ENOSYS for it).
func errno(log *slog.Logger, op string, ino journal.Ino, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	e, known := toErrno(err)
	if !known {
		log.Error("fs: unexpected error; answering EIO", "op", op, "ino", uint64(ino), "err", err)
	} else if !expected(e) {
		log.Warn("fs: operation failed", "op", op, "ino", uint64(ino), "errno", e.Error(), "err", err)
	}
	return e
}

// settled returns ctx without its cancellation. Journal calls other than
// ReadAt and WriteAt are short local transactions: once started they run
// to completion, so an interrupt (a signal delivered to the caller) never
// makes the drive answer EINTR for a call that has taken effect, and
// tools that do not retry on EINTR never see it from a stat or a create.
// Reads and writes, which may wait on the grid or on the journal's quota,
// stay interruptible: they stop before they change anything.
func settled(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
