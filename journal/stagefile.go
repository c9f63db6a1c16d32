package journal

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/remote"
)

// Staging files are written with O_DIRECT where the file system takes it:
// the sealed bytes go from the seal buffer to the disk with no copy into
// the page cache (writing 4 MiB through the page cache cost about as much
// CPU as sealing it, and the pages were dropped right after the fsync
// anyway, see writeTemp). The write is padded to directAlign with zeros
// and the file cut back to the sealed length; the fsync that follows
// makes size and data durable as before. A file system that refuses
// O_DIRECT (tmpfs, some FUSE and network file systems) answers EINVAL
// once; the journal then stages through the page cache for good.

// directAlign is the alignment O_DIRECT asks of the buffer's address, the
// file offset and the length (the logical block size; 4096 covers 512).
const directAlign = 4096

// errNoDirect: the staging directory does not take O_DIRECT writes.
var errNoDirect = errors.New("O_DIRECT refused")

// sealBuf returns *pb emptied, reallocated when it cannot take the sealed
// form of plainLen bytes padded for an O_DIRECT write, or is not aligned.
func sealBuf(pb *[]byte, plainLen int) []byte {
	need := roundUp(remote.SealedSizeMax(plainLen), directAlign)
	if cap(*pb) < need || !isAligned(*pb) {
		*pb = alignedSlice(need)
	}
	return (*pb)[:0]
}

// alignedSlice returns n bytes of capacity whose first byte is
// directAlign-aligned.
func alignedSlice(n int) []byte {
	b := make([]byte, n+directAlign)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (directAlign - 1))
	return b[off : off : off+n]
}

func isAligned(b []byte) bool {
	return cap(b) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))&(directAlign-1) == 0
}

func roundUp(n, a int) int { return (n + a - 1) / a * a }

// canWriteDirect reports whether sealed can be written with O_DIRECT as it
// lies: aligned, with room for the padding in its capacity.
func canWriteDirect(sealed []byte) bool {
	return isAligned(sealed) && cap(sealed) >= roundUp(len(sealed), directAlign)
}

// writeDirect writes sealed (canWriteDirect) to the new file name with
// O_DIRECT and fsyncs it. errNoDirect when the file system refuses it.
// ino is the file's inode number once it was created, also on error: the
// caller removes the file then.
func writeDirect(name string, sealed []byte) (ino uint64, err error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, 0o600)
	if errors.Is(err, unix.EINVAL) {
		return 0, errNoDirect
	}
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	if err = unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		os.Remove(name) // not known to be ours by its number: nobody else has it yet
		return 0, err
	}
	padded := sealed[:roundUp(len(sealed), directAlign)]
	clear(padded[len(sealed):])
	_, err = f.Write(padded)
	if errors.Is(err, unix.EINVAL) {
		err = errNoDirect
	}
	if err == nil && len(padded) > len(sealed) {
		err = f.Truncate(int64(len(sealed)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return st.Ino, err
}

// stageDirect stages sealed, a block c that had no row when cutPlain
// looked, under its own staging name instead of a temporary one:
// written with O_DIRECT, fsync'd, and the staging directory fsync'd, all
// before the commit, which then refers to the file with no rename and no
// directory fsync of its own (a write-behind commit holds wmu and the
// inode's lock, and the writer waits for the latter: the directory fsync
// was most of the commit). c.staged records the file's inode number: a
// commit takes the file only if the name still holds it (ownStaged),
// since another flush of the same block may rename its own file over it
// meanwhile. False when the name is taken (another flush is staging the
// block, or its file waits for removal) or O_DIRECT cannot be used; the
// caller stages through a temporary file then.
func (j *flusher) stageDirect(c *cut, sealed []byte) bool {
	if j.bufferedStage.Load() || !canWriteDirect(sealed) {
		return false
	}
	ino, err := writeDirect(j.stagePath(c.id), sealed)
	if err == nil {
		err = syncDir(j.stage)
	}
	if err != nil {
		if ino != 0 {
			c.staged = ino
			j.dropOwnStaged(c)
		}
		return false
	}
	c.staged = ino
	return true
}

// ownStaged reports whether block c's staging name holds the file
// stageDirect wrote for it, and its length. wmu held (renames into and
// removals from the staging directory happen under it).
func (j *flusher) ownStaged(c *cut) (sealedLen int64, ok bool) {
	var st unix.Stat_t
	if err := unix.Stat(j.stagePath(c.id), &st); err != nil {
		return 0, false
	}
	return st.Size, st.Ino == c.staged
}

// dropOwnStaged removes the file stageDirect wrote for c when no commit
// took it: when the name still holds it and no staged block row refers
// to it. Takes wmu.
func (j *flusher) dropOwnStaged(c *cut) {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if _, ok := j.ownStaged(c); ok {
		var state int
		err := j.db.QueryRow(`SELECT state FROM blocks WHERE id = ?`, c.id[:]).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && state != blockStaged) {
			os.Remove(j.stagePath(c.id))
		}
	}
	c.staged = 0
}

// stagingFolderErr returns err as it is unless err is a missing file and
// the staging folder dir is gone too (nothing there, or a link to
// nothing: its disk not mounted, the folder moved or removed); then an
// error that names the folder and says what to do, ending in err (which
// alone named no folder and said nothing to do). It still matches
// fs.ErrNotExist (callers look for a block uploaded or freed meanwhile,
// the uploader for a folder gone), but not err's errno (hideErrno).
func stagingFolderErr(dir string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, serr := os.Stat(dir); !errors.Is(serr, fs.ErrNotExist) {
		return err
	}
	return fmt.Errorf("journal: the staging folder %s is gone (its disk not mounted, or the folder moved or removed): "+
		"put it back and closes, fsyncs and reads of the blocks not yet uploaded go on; if it cannot come back, "+
		"unmount and mount with --drop-missing, which marks the blocks whose only copy it held lost and keeps everything else: %w",
		dir, hideErrno{err})
}

// hideErrno is a missing-file err with its text, matching fs.ErrNotExist
// (whatever err is), but not its errno: ENOENT from a staging file must
// not tell a program that wrote or fsync'd a file that exists "no such
// file or directory", whoever reads the error. (fs answers EIO for any
// ENOENT errno too, and logs it with the message above: fs/errno.go.)
type hideErrno struct{ err error }

func (e hideErrno) Error() string        { return e.err.Error() }
func (e hideErrno) Is(target error) bool { return target == fs.ErrNotExist }
