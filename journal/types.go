package journal

import (
	"errors"
	"time"
)

// Ino is an inode number. Numbers are never reused within a drive and
// survive remount.
type Ino uint64

// RootIno is the root directory.
const RootIno Ino = 1

// Attr is an inode's metadata. Mode carries the file type bits
// (syscall.S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK)
// and the permission bits, as in stat(2).
type Attr struct {
	Ino   Ino
	Mode  uint32
	Nlink uint32
	Uid   uint32
	Gid   uint32
	Rdev  uint32
	Size  uint64
	// Blocks is the number of 512-byte units allocated (holes cost none).
	Blocks uint64
	Atime  time.Time
	Mtime  time.Time
	Ctime  time.Time
}

// SetAttr lists the changes of a setattr call; nil fields are left alone.
// Ctime is updated by the journal whenever anything changes.
type SetAttr struct {
	Mode  *uint32 // permission bits only (07777)
	Uid   *uint32
	Gid   *uint32
	Size  *uint64 // truncate, up or down
	Atime *time.Time
	Mtime *time.Time
	// Ctime is the kernel's own ctime, which its write-back cache sends
	// (FATTR_CTIME) because it, not the journal, owns the times of a
	// file it has written; nil: now. It goes with another change (a
	// SetAttr of Ctime alone changes nothing).
	Ctime *time.Time
}

// DirEntry is one directory entry. Off is the cookie to pass to ReadDir to
// continue after this entry; cookies stay valid while entries come and go.
type DirEntry struct {
	Name string
	Ino  Ino
	Mode uint32
	Off  uint64
}

// Rename flags, as in renameat2(2).
const (
	RenameNoReplace = 1
	RenameExchange  = 2
)

// XattrCreate and XattrReplace are setxattr(2) flags.
const (
	XattrCreate  = 1
	XattrReplace = 2
)

// StatFS is the drive's capacity as df should show it.
type StatFS struct {
	TotalBytes uint64
	FreeBytes  uint64
	Files      uint64
}

// State says how safe a file's data is.
type State int

const (
	// StateLost: some block cannot be read from anywhere (ErrLostBlock):
	// the worst state, below the others (a folder shows its worst file's).
	StateLost State = iota - 1
	// StateLocal: some data, or the metadata naming it, is only in the
	// journal on this machine.
	StateLocal
	// StateDegraded: on the grid, but some segment has fewer than n shards
	// (repair owed).
	StateDegraded
	// StateDurable: every block is in a segment with all n shards stored.
	StateDurable
)

func (s State) String() string {
	switch s {
	case StateLost:
		return "lost"
	case StateLocal:
		return "local"
	case StateDegraded:
		return "degraded"
	case StateDurable:
		return "durable"
	}
	return "unknown"
}

// FileStatus is what `meshdrive status PATH` and the user.meshdrive.status
// xattr report for one file.
type FileStatus struct {
	State         State
	Blocks        int   // non-hole blocks
	PendingBlocks int   // not yet on the grid
	PendingBytes  int64 // plaintext bytes not yet on the grid
	LostBlocks    int   // blocks that cannot be read (ErrLostBlock)
	// MetaPending: the file's metadata (name, attributes, block map)
	// changed since the last metadata record reached the grid, so a
	// recovery from the grid would not find it as it is now.
	MetaPending bool
}

// UploadStats is the uploader's progress.
type UploadStats struct {
	QueuedBlocks  int64
	QueuedBytes   int64
	QueuedFiles   int64
	InFlightBytes int64
	DoneBytes     int64 // plaintext bytes made grid-durable since start
	ShippedBytes  int64 // shard bytes sent to nodes since start
	Errors        int64
	LastError     string
	RepairOwed    int64 // segments stored with fewer than n shards
}

// ReadStats counts the block reads since Open that the journal served
// from its own copies on local disk. They never reach the block reader
// (Options.Blocks), so a cache in front of the grid does not count them.
type ReadStats struct {
	Kept   uint64 // uploaded small blocks read from their kept rows (Options.KeepSmall), a snapshot's included
	Staged uint64 // blocks not yet uploaded, read from staging
}

// ReadStatsOf reports j's ReadStats. It is a function, not a method of
// Journal, whose method set is at the module's limit (methodset_test.go).
func ReadStatsOf(j *Journal) ReadStats {
	return ReadStats{Kept: j.keptReads.Load(), Staged: j.stagedReads.Load()}
}

// Errors of the journal. fs/errno.go maps them to errno values.
var (
	ErrNotFound    = errors.New("no such file or directory")
	ErrExist       = errors.New("file exists")
	ErrNotEmpty    = errors.New("directory not empty")
	ErrNotDir      = errors.New("not a directory")
	ErrIsDir       = errors.New("is a directory")
	ErrInvalid     = errors.New("invalid argument")
	ErrNoXattr     = errors.New("no such extended attribute")
	ErrFull        = errors.New("journal is full: uploads are behind; wait or raise the quota")
	ErrReadOnly    = errors.New("drive is read-only")
	ErrNameTooLong = errors.New("file name too long")
	ErrTooBig      = errors.New("file too large: the drive's files end before 4 EiB (MaxFileSize)")
	ErrOffline     = errors.New("block not cached and no node reachable")
	ErrClosed      = errors.New("journal is closed")
	// ErrNoData: lseek's SEEK_DATA found no data at or after the offset,
	// or the offset is at or past the end of the file (ENXIO).
	ErrNoData = errors.New("no data at or after this offset: it is past the file's last data or its end")
	// ErrLostBlock: the drive was recovered from the grid, and this block
	// had not reached the grid when its file's metadata was shipped.
	ErrLostBlock = errors.New("block is lost (not on the grid when the drive was recovered, or its staging file was gone at a mount with --drop-missing); restore the file from a copy")
	// ErrDiskFull: the disk that holds the journal's database has no
	// room for a change (sqlite's SQLITE_FULL); fs answers ENOSPC.
	ErrDiskFull = errors.New("the journal's disk is full: free space on it (meshdrive cache clear drops the cached blocks kept there) and try again")
)
