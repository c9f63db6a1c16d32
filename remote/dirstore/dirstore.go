package dirstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/meshdrive/meshdrive/remote"
	"github.com/meshdrive/meshdrive/remote/shard"
)

// Version is reported in NodeInfo.Version.
const Version = "meshdrive-dirstore/1"

// DefaultListLimit is used when List is called with limit <= 0; MaxListLimit
// caps larger limits.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 10000
)

// tempPrefix starts every temporary file name. ValidName refuses names that
// start with a dot, so a temporary file never collides with an object.
const tempPrefix = ".put-"

// staleTemp is the age after which New removes leftover temporary files.
const staleTemp = 10 * time.Minute

// Options configure a Store. The zero value is usable.
type Options struct {
	// Logger receives warnings (stale files removed, corrupt objects
	// found). Nil discards.
	Logger *slog.Logger
	// HeaderCache is the number of parsed object headers kept in memory
	// (default 256; negative disables the cache).
	HeaderCache int
	// QuarantineMax bounds the bytes kept in QuarantineDir: past it the
	// oldest quarantined objects are removed (default
	// DefaultQuarantineMax; negative keeps everything).
	QuarantineMax int64
	// MustExist: New opens an existing directory and never makes one. A
	// drive opening a node it used before sets it: a node directory on a
	// disk that is not mounted would otherwise be made, empty, on the
	// file system under it, and filled there by repair. Put and Info
	// then also check that the mark is still there (the disk may go
	// while the store is open).
	MustExist bool
	// Fstab is the file system table whose mount points New checks
	// (default DefaultFstab): a directory on one with nothing mounted
	// there is refused, never made or opened.
	Fstab string
	// ID is the node's id as the drive recorded it ("": not recorded): a
	// directory whose mark holds another id, or that holds files but no
	// mark, is refused (ErrWrongNode), at New and when its disk comes
	// back while the store is open. See MarkName.
	ID string
}

// ErrNoDir is wrapped by New's error when Options.MustExist is set and
// the directory does not exist, or is empty without MarkName.
var ErrNoDir = errors.New("the node's directory does not exist")

// DefaultQuarantineMax is Options.QuarantineMax's default: enough to
// inspect what a failing disk did, not enough to fill it.
const DefaultQuarantineMax = 1 << 30

// Store is a remote.Store over a local directory.
type Store struct {
	dir      string
	marker   string      // dir's MarkName
	id       string      // the node's id, in its mark
	must     bool        // Options.MustExist: writes need the mark (see checkMark)
	away     atomic.Bool // checkMark found the mark gone: recount objects when it is back
	log      *slog.Logger
	qmax     int64                                // Options.QuarantineMax, the default applied
	qmu      sync.Mutex                           // one quarantine prune at a time; guards qbusy
	qbusy    map[string]bool                      // quarantined copies a Quarantine is still checking: not pruned
	headers  *lru.Cache[headerKey, *cachedHeader] // nil when disabled
	objects  atomic.Int64                         // approximate object count, see Info
	recounts sync.WaitGroup                       // recount walks running (recount); tests wait on them

	snapMu sync.Mutex          // guards snaps
	snaps  map[string]*dirSnap // sorted listings of large directories, by path (see sortedDir)

	// markSeen is the mark file whose id checkMark last found to be the
	// node's (nil: none yet): another file there (another disk mounted
	// at the path, even with no call in between to find it gone) has its
	// id read again.
	markSeen atomic.Pointer[os.FileInfo]
}

var _ remote.Store = (*Store)(nil)

type headerKey struct {
	name  string
	size  int64
	mtime int64
	ino   uint64
}

// cachedHeader is immutable once in the cache: readers share it.
type cachedHeader struct {
	h   *shard.Header
	raw []byte // the encoded header, h.Len() bytes
}

// New opens (creating if needed) a store in dir. It removes temporary
// files older than ten minutes left by interrupted Puts and counts the
// objects present.
func New(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("dirstore: empty directory path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dirstore: directory %q: %w", dir, err)
	}
	fstab := opts.Fstab
	if fstab == "" {
		fstab = DefaultFstab
	}
	if mp := unmountedMount(abs, fstab); mp != "" {
		return nil, fmt.Errorf("dirstore: %w: %s is on %s, a mount point %s names, and nothing is mounted there "+
			"(a disk not mounted): mount it (mount %s), then start again", ErrNoDir, abs, mp, fstab, mp)
	}
	marker := filepath.Join(abs, MarkName)
	if opts.MustExist {
		if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("dirstore: %w: %s (if it is on a disk, mount the disk; if the disk was replaced, "+
				"mkdir %s; touch %s, then run meshdrive check --repair to fill it again)", ErrNoDir, abs, abs, marker)
		}
	} else if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("dirstore: create directory %s: %w", abs, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("dirstore: %s is not a directory", abs)
	}
	if opts.ID != "" && !validID(opts.ID) {
		return nil, fmt.Errorf("dirstore: node id %q: want 32 hex digits (the drive's config is damaged?)", opts.ID)
	}
	id, err := mark(abs, marker, opts.MustExist, opts.ID)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{dir: abs, marker: marker, id: id, must: opts.MustExist, log: log, qmax: opts.QuarantineMax}
	if fi, err := os.Lstat(marker); err == nil {
		s.markSeen.Store(&fi)
	}
	if s.qmax == 0 {
		s.qmax = DefaultQuarantineMax
	}
	n := opts.HeaderCache
	if n == 0 {
		n = 256
	}
	if n > 0 {
		s.headers, err = lru.New[headerKey, *cachedHeader](n)
		if err != nil {
			return nil, fmt.Errorf("dirstore: header cache: %w", err)
		}
	}
	count, err := s.scan()
	if err != nil {
		return nil, fmt.Errorf("dirstore: scan %s: %w", abs, err)
	}
	s.objects.Store(count)
	return s, nil
}

// ID returns the node's id, the one in its directory's mark ("" when the
// directory could not be written to hold one).
func (s *Store) ID() string { return s.id }

// Dir returns the store's absolute directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) String() string { return "dirstore " + s.dir }

// scan counts objects and removes stale temporary files.
func (s *Store) scan() (int64, error) {
	var n int64
	err := walkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				s.log.Warn("dirstore: removing stale temporary file", "path", p)
				_ = os.Remove(p)
			}
			return nil
		}
		if rel, err := filepath.Rel(s.dir, p); err == nil && d.Type().IsRegular() && remote.ValidName(filepath.ToSlash(rel)) == nil {
			n++
		}
		return nil
	})
	return n, err
}

// path maps a name to its file. It validates the name first, so the
// result is always inside s.dir.
func (s *Store) path(op, name string) (string, error) {
	if err := remote.ValidName(name); err != nil {
		return "", fmt.Errorf("%s: %s: %w", s, op, err)
	}
	return filepath.Join(s.dir, filepath.FromSlash(name)), nil
}

// fsErr maps a filesystem error to the remote sentinels.
func (s *Store) fsErr(op, name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%s: %s %s: %w", s, op, name, remote.ErrNotFound)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s: %s %s: %w (%w); free space on the node", s, op, name, remote.ErrFull, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %s %s: %w", s, op, name, err)
	}
	return fmt.Errorf("%s: %s %s: %w", s, op, name, err)
}

// checkMark is what a store opened with MustExist does before it writes
// or reports itself: its directory still carries the mark. A disk that is
// unmounted (or fails) while the store is open leaves the directory gone,
// or its mount point empty, on the file system under it; writing there
// would make the directory again, and repair would fill it.
func (s *Store) checkMark(op string) error {
	if !s.must {
		return nil
	}
	fi, err := os.Lstat(s.marker)
	if err == nil {
		seen := s.markSeen.Load()
		changed := seen == nil || !os.SameFile(fi, *seen)
		if s.away.Load() || changed {
			// Back, or another mark file in its place: the same disk, or
			// another one (mounted over the node's path between two
			// calls). Another node's is refused as the directory's
			// absence was.
			id, err := s.markID()
			if err == nil && s.id != "" && id != s.id {
				err = wrongNode(s.dir, s.marker, id, s.id)
			}
			if err != nil {
				return fmt.Errorf("%s: %s: %w (%w)", s, op, remote.ErrUnavailable, err)
			}
			now := fi
			if fi, err := os.Lstat(s.marker); err == nil { // markID may have written it
				now = fi
			}
			// One count again per change, however many calls met it.
			won := s.markSeen.CompareAndSwap(seen, &now)
			if s.away.CompareAndSwap(true, false) || changed && won {
				s.recount()
			}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s: %s: %w", s, op, err)
	}
	s.away.Store(true)
	return fmt.Errorf("%s: %s: %w (%w): %s no longer holds its mark %s; its disk may have been unmounted: "+
		"mount it again (if the disk was replaced: mkdir -p %s; touch %s, then run meshdrive check --repair to fill it)",
		s, op, remote.ErrUnavailable, ErrNoDir, s.dir, MarkName, s.dir, s.marker)
}

// recount counts the objects again, in the background: the mark is back
// (another disk, or the same one mounted again), and what the store
// counted was another disk's. On a big node the walk takes minutes, and
// no Put or Info waits for it (it ran inside the first one, past any
// deadline its caller had). Until it ends Info reports the old count;
// objects put or deleted while it walks may be counted once too many or
// too few, as when other processes write to the directory.
func (s *Store) recount() {
	s.recounts.Add(1)
	go func() {
		defer s.recounts.Done()
		n, err := s.scan()
		switch {
		case err != nil:
			s.log.Warn("dirstore: could not count the objects of the node's directory again; the count in its info stays approximate",
				"dir", s.dir, "err", err)
		case s.away.Load():
			// Gone again meanwhile: the next return counts again.
		default:
			s.objects.Store(n)
		}
	}()
}

// Put verifies data as a shard object and stores it atomically under name.
// data is only read, and not kept after Put returns.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	p, err := s.path("put", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: put %s: %w", s, name, err)
	}
	if _, _, err := shard.Verify(data); err != nil {
		return fmt.Errorf("%s: put %s: refusing object of %d bytes: %w: %w", s, name, len(data), remote.ErrCorrupt, err)
	}
	if err := s.checkMark("put " + name); err != nil {
		return err
	}
	parent := filepath.Dir(p)
	if err := s.mkdirs(parent); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("%s: put %s: a parent of the name is an object: %w", s, name, remote.ErrInvalidName)
		}
		return s.fsErr("put", name, err)
	}
	f, err := os.CreateTemp(parent, tempPrefix+"*")
	if err != nil {
		return s.fsErr("put", name, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return s.fsErr("put", name, err)
	}
	if err := f.Sync(); err != nil {
		return s.fsErr("put", name, err)
	}
	if err := f.Close(); err != nil {
		return s.fsErr("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: put %s: %w", s, name, err)
	}
	// Rename without replacing first, so the object count stays exact
	// when Puts of one new name race; replace when the name exists.
	created := true
	err = renameNoReplace(tmp, p)
	if err != nil && !errors.Is(err, syscall.EISDIR) {
		created = !errors.Is(err, syscall.EEXIST)
		if created {
			// No RENAME_NOREPLACE here: count by a look before renaming.
			_, statErr := os.Lstat(p)
			created = statErr != nil
		}
		err = os.Rename(tmp, p)
	}
	if err != nil {
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("%s: put %s: the name is a directory of other objects: %w", s, name, remote.ErrInvalidName)
		}
		return s.fsErr("put", name, err)
	}
	ok = true
	if created {
		s.objects.Add(1)
	}
	if err := syncDir(parent); err != nil {
		return s.fsErr("put", name, err)
	}
	return nil
}

// mkdirs creates dir (inside s.dir) and fsyncs the parents of the
// directories it created.
func (s *Store) mkdirs(dir string) error {
	if dir == s.dir {
		// The store's own directory is gone (a wiped disk): make it
		// again, so the node can be repaired back to its shards.
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("dirstore: the store's directory was gone; made it again", "dir", dir)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
		}
		// A directory made again, or wiped of everything (its mark too)
		// while the store was open, gets its mark and id back before
		// objects go in, or the next open would take it for another
		// node's directory (files, no mark). A store opened with
		// MustExist gets here only with its mark in place (checkMark).
		if s.id != "" {
			if _, err := os.Lstat(s.marker); errors.Is(err, fs.ErrNotExist) {
				if _, err := writeMark(dir, s.marker, s.id); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return syscall.ENOTDIR
		}
		return nil
	}
	if err := s.mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if st, err2 := os.Stat(dir); err2 == nil && st.IsDir() {
				return nil
			}
		}
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get reads len(p) bytes of name at off into p, verifying the checksums of
// every payload chunk the range touches. On error p's contents are
// unspecified (zeroed when verification failed), never unverified bytes.
func (s *Store) Get(ctx context.Context, name string, off int64, p []byte) error {
	path, err := s.path("get", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: get %s: %w", s, name, err)
	}
	f, fi, err := s.openFile(name, path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.readAt(name, f, fi, off, p)
}

// openFile opens the object file at path for reading.
func (s *Store) openFile(name, path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, s.fsErr("get", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, s.fsErr("get", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: get %s: %w", s, name, remote.ErrNotFound)
	}
	return f, fi, nil
}

// readAt is Get on the open object file f.
func (s *Store) readAt(name string, f *os.File, fi os.FileInfo, off int64, p []byte) error {
	size := fi.Size()
	n := int64(len(p))
	if off < 0 || off > size || n > size-off {
		return fmt.Errorf("%s: get %s [%d,+%d) of %d bytes: %w", s, name, off, n, size, remote.ErrRange)
	}
	ch, err := s.header(name, f, fi)
	if err != nil {
		return err
	}
	if ch.h.ObjectLen() != size {
		return fmt.Errorf("%s: get %s: file is %d bytes, its header says %d: %w", s, name, size, ch.h.ObjectLen(), remote.ErrCorrupt)
	}
	hl := ch.h.Len()
	// The part inside the header: served from the verified header bytes.
	if off < hl {
		m := copy(p, ch.raw[off:])
		p = p[m:]
		off += int64(m)
	}
	if len(p) == 0 {
		return nil
	}
	poff := off - hl // payload offset of p[0]
	start, end := ch.h.ChunkSpan(poff, int64(len(p)))
	var buf []byte
	aligned := start == poff && end == poff+int64(len(p))
	if aligned {
		buf = p // read straight into the caller's buffer, verify in place
	} else {
		buf = make([]byte, end-start)
	}
	if _, err := f.ReadAt(buf, hl+start); err != nil {
		if aligned {
			clear(p)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: get %s: file shorter than its header says: %w", s, name, remote.ErrCorrupt)
		}
		return s.fsErr("get", name, err)
	}
	if err := ch.h.VerifyRange(start, buf); err != nil {
		if aligned {
			clear(p)
		}
		s.log.Warn("dirstore: corrupt object", "dir", s.dir, "name", name, "err", err)
		return fmt.Errorf("%s: get %s: %w: %w", s, name, remote.ErrCorrupt, err)
	}
	if !aligned {
		copy(p, buf[poff-start:])
	}
	return nil
}

// Open opens the present version of name for reading in parts
// (remote.Opener): a Put that replaces the name meanwhile does not change
// what the returned object reads.
func (s *Store) Open(ctx context.Context, name string) (remote.Object, error) {
	path, err := s.path("get", name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: get %s: %w", s, name, err)
	}
	f, fi, err := s.openFile(name, path)
	if err != nil {
		return nil, err
	}
	return &object{s: s, name: name, f: f, fi: fi}, nil
}

var _ remote.Opener = (*Store)(nil)

// object is one open version of an object (Open).
type object struct {
	s    *Store
	name string
	f    *os.File
	fi   os.FileInfo
}

func (o *object) Info() remote.ObjectInfo {
	return remote.ObjectInfo{Name: o.name, Size: o.fi.Size(), ModTime: o.fi.ModTime()}
}

func (o *object) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: get %s: %w", o.s, o.name, err)
	}
	return o.s.readAt(o.name, o.f, o.fi, off, p)
}

func (o *object) Close() error { return o.f.Close() }

// header returns the verified header of the open file f, from the cache
// when the file is unchanged.
func (s *Store) header(name string, f *os.File, fi os.FileInfo) (*cachedHeader, error) {
	key := headerKey{name: name, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.ino = st.Ino
	}
	if s.headers != nil {
		if ch, ok := s.headers.Get(key); ok {
			return ch, nil
		}
	}
	h, err := shard.ReadHeader(f)
	if err != nil {
		if errors.Is(err, shard.ErrFormat) || errors.Is(err, shard.ErrCorrupt) {
			s.log.Warn("dirstore: corrupt object header", "dir", s.dir, "name", name, "err", err)
			return nil, fmt.Errorf("%s: get %s: bad header: %w: %w", s, name, remote.ErrCorrupt, err)
		}
		return nil, s.fsErr("get", name, err)
	}
	raw := make([]byte, h.Len())
	if _, err := f.ReadAt(raw, 0); err != nil {
		return nil, s.fsErr("get", name, err)
	}
	// Re-parse the bytes we keep, so raw is exactly what was verified.
	h, err = shard.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: get %s: header changed while reading: %w: %w", s, name, remote.ErrCorrupt, err)
	}
	ch := &cachedHeader{h: h, raw: raw}
	if s.headers != nil {
		s.headers.Add(key, ch)
	}
	return ch, nil
}

// Stat returns the size and modification time of name.
func (s *Store) Stat(ctx context.Context, name string) (remote.ObjectInfo, error) {
	p, err := s.path("stat", name)
	if err != nil {
		return remote.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return remote.ObjectInfo{}, fmt.Errorf("%s: stat %s: %w", s, name, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return remote.ObjectInfo{}, s.fsErr("stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		return remote.ObjectInfo{}, fmt.Errorf("%s: stat %s: %w", s, name, remote.ErrNotFound)
	}
	return remote.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes name; a missing name is not an error. Directories left
// empty are kept (a later Put reuses them).
func (s *Store) Delete(ctx context.Context, name string) error {
	p, err := s.path("delete", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: delete %s: %w", s, name, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return s.fsErr("delete", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil // a directory of other objects, not an object
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return s.fsErr("delete", name, err)
	}
	s.objects.Add(-1)
	return nil
}

// List returns up to limit objects whose names start with prefix and sort
// after `after`, in name order.
func (s *Store) List(ctx context.Context, prefix, after string, limit int) ([]remote.ObjectInfo, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	l := lister{s: s, ctx: ctx, prefix: prefix, after: after, limit: limit}
	if err := l.walk(s.dir, ""); err != nil && !errors.Is(err, errListDone) {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // the store's directory is gone: it holds nothing
		}
		return nil, s.fsErr("list", fmt.Sprintf("prefix %q", prefix), err)
	}
	return l.out, nil
}

var errListDone = errors.New("list page full")

type lister struct {
	s             *Store
	ctx           context.Context
	prefix, after string
	limit         int
	out           []remote.ObjectInfo
}

type listEntry struct {
	key  string // full name, with "/" appended for directories
	name string
	dir  bool
}

// walk visits dir (whose objects are named rel+...) in global name order.
// Sorting a directory's entries by name, with "/" appended to
// subdirectories, gives the order of the full names: every name under a
// subdirectory d starts with "d/" and no other entry does.
func (l *lister) walk(dir, rel string) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	all, err := l.s.sortedDir(dir, rel, l.after == "")
	if err != nil {
		if rel != "" && errors.Is(err, fs.ErrNotExist) {
			return nil // removed while listing
		}
		return err
	}
	// Start at the first entry after l.after, or at the subdirectory
	// that holds it.
	i := sort.Search(len(all), func(i int) bool { return all[i].key > l.after })
	if i > 0 && all[i-1].dir && strings.HasPrefix(l.after, all[i-1].key) {
		i--
	}
	for _, e := range all[i:] {
		if e.dir {
			// Prune subtrees outside the prefix.
			if !strings.HasPrefix(e.key, l.prefix) && !strings.HasPrefix(l.prefix, e.key) {
				continue
			}
			if err := l.walk(filepath.Join(dir, filepath.Base(e.name)), e.key); err != nil {
				return err
			}
			continue
		}
		if !strings.HasPrefix(e.name, l.prefix) {
			if e.name > l.prefix {
				break // sorted: no later name has the prefix
			}
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, filepath.Base(e.name)))
		if err != nil {
			continue // removed while listing
		}
		l.out = append(l.out, remote.ObjectInfo{Name: e.name, Size: fi.Size(), ModTime: fi.ModTime()})
		if len(l.out) >= l.limit {
			return errListDone
		}
	}
	return nil
}

// Listing a large directory a page at a time read and sorted all of it
// for every page: 150 ms a page at 100,000 objects, so a full listing
// (a repair survey, gc) grew with the square of the objects. A page that
// continues a listing (after != "") now takes the sorted entries of a
// directory from the page before, when they are younger than snapTTL; a
// listing that starts reads the directory again. Objects made while a
// listing runs may be left out of it, as any paged listing may; objects
// removed are not listed (each one is looked at before it is).
const (
	snapMin = 4096 // entries: smaller directories are read for every page
	snapTTL = time.Minute
)

// dirSnap is a directory's entries, sorted by key, as sortedDir read them.
type dirSnap struct {
	ents []listEntry
	at   time.Time
}

// walkDir is filepath.WalkDir (scan's walk); tests hold it.
var walkDir = filepath.WalkDir

// readDir is os.ReadDir; tests count the calls.
var readDir = os.ReadDir

// sortedDir returns the entries of dir (whose objects are named rel+...)
// that can be listed, sorted by key: from the last read when fresh is
// false and it is recent enough, else read now.
func (s *Store) sortedDir(dir, rel string, fresh bool) ([]listEntry, error) {
	now := time.Now()
	s.snapMu.Lock()
	if sn := s.snaps[dir]; sn != nil && !fresh && now.Sub(sn.at) < snapTTL {
		s.snapMu.Unlock()
		return sn.ents, nil
	}
	s.snapMu.Unlock()
	des, err := readDir(dir)
	if err != nil {
		return nil, err
	}
	ents := make([]listEntry, 0, len(des))
	for _, de := range des {
		n := de.Name()
		if n == "" || n[0] == '.' {
			continue
		}
		full := rel + n
		switch {
		case de.IsDir():
			ents = append(ents, listEntry{key: full + "/", name: full, dir: true})
		case de.Type().IsRegular():
			if remote.ValidName(full) != nil {
				continue // a stray file no Put could have made
			}
			ents = append(ents, listEntry{key: full, name: full})
		}
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].key < ents[j].key })
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	for d, sn := range s.snaps {
		if now.Sub(sn.at) >= snapTTL {
			delete(s.snaps, d)
		}
	}
	if len(ents) >= snapMin {
		if s.snaps == nil {
			s.snaps = map[string]*dirSnap{}
		}
		s.snaps[dir] = &dirSnap{ents: ents, at: now}
	} else {
		delete(s.snaps, dir)
	}
	return ents, nil
}

// Info reports the filesystem's capacity and free bytes (for an
// unprivileged writer; -1 when the file system does not tell) and the
// number of objects.
func (s *Store) Info(ctx context.Context) (remote.NodeInfo, error) {
	if err := ctx.Err(); err != nil {
		return remote.NodeInfo{}, fmt.Errorf("%s: info: %w", s, err)
	}
	if err := s.checkMark("info"); err != nil {
		return remote.NodeInfo{}, err
	}
	dir := s.dir
	var st syscall.Statfs_t
	err := syscall.Statfs(dir, &st)
	if errors.Is(err, syscall.ENOENT) { // the directory is gone (wiped): its disk is the parent's
		dir = filepath.Dir(s.dir)
		err = syscall.Statfs(dir, &st)
	}
	if err != nil {
		return remote.NodeInfo{}, fmt.Errorf("%s: statfs: %w", s, err)
	}
	capacity, free := int64(st.Blocks)*int64(st.Bsize), int64(st.Bavail)*int64(st.Bsize)
	if st.Blocks == 0 {
		// The file system does not tell (a tmpfs without a size, a FUSE
		// one without statfs): its 0 bytes free are no full disk, and
		// the grid must not leave the node out for them.
		capacity, free = -1, -1
	}
	return remote.NodeInfo{
		Capacity: capacity,
		Free:     free,
		Objects:  max(s.objects.Load(), 0),
		Version:  Version,
		ID:       s.id,
		Volume:   volume(dir),
	}, nil
}

// volume names the file system that holds dir: this machine's host name
// and id (machineID) and the file system's device number, the same for
// every directory of one disk (bind mounts included) and different
// across disks. Empty when dir cannot be stat'ed.
func volume(dir string) string {
	fi, err := os.Stat(dir)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	host, _ := os.Hostname()
	return volumeName(host, machineID(), uint64(st.Dev))
}

// volumeName is volume's name of device dev on the machine called host
// with id machine. The host name alone does not tell machines apart:
// node servers made from one image share it ("raspberrypi") and the
// device numbers of their disks (179:2), and df then counted a grid of
// such machines as one disk.
func volumeName(host, machine string, dev uint64) string {
	if machine == "" {
		return fmt.Sprintf("%s:%x", host, dev)
	}
	return fmt.Sprintf("%s:%s:%x", host, machine, dev)
}

// machineID is the machine's id (systemd's /etc/machine-id, or D-Bus's),
// made at a system's first boot; "" where there is none.
func machineID() string {
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil {
			if id := strings.TrimSpace(string(b)); id != "" {
				return id
			}
		}
	}
	return ""
}

// verifyPiece is how much of an object Verify reads at a time.
const verifyPiece = 1 << 20

var _ remote.Verifier = (*Store)(nil)

// Verify reads the whole object name and checks its header and every
// payload chunk against their checksums: nil when intact, ErrCorrupt
// (naming the chunk) when not, ErrNotFound when absent. It reads in 1 MiB
// pieces, so any object size costs bounded memory.
func (s *Store) Verify(ctx context.Context, name string) error {
	path, err := s.path("verify", name)
	if err != nil {
		return err
	}
	return s.verifyFile(ctx, name, path)
}

// verifyFile is Verify of the file at path, which holds object name.
func (s *Store) verifyFile(ctx context.Context, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return s.fsErr("verify", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return s.fsErr("verify", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: verify %s: %w", s, name, remote.ErrNotFound)
	}
	h, err := shard.ReadHeader(f)
	if err != nil {
		if errors.Is(err, shard.ErrFormat) || errors.Is(err, shard.ErrCorrupt) {
			return fmt.Errorf("%s: verify %s: bad header: %w: %w", s, name, remote.ErrCorrupt, err)
		}
		return s.fsErr("verify", name, err)
	}
	if h.ObjectLen() != fi.Size() {
		return fmt.Errorf("%s: verify %s: file is %d bytes, its header says %d: %w", s, name, fi.Size(), h.ObjectLen(), remote.ErrCorrupt)
	}
	piece := max(int64(verifyPiece)/int64(h.ChunkSize), 1) * int64(h.ChunkSize)
	buf := make([]byte, min(piece, h.PayloadLen))
	hl := h.Len()
	for off := int64(0); off < h.PayloadLen; off += piece {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: verify %s: %w", s, name, err)
		}
		b := buf[:min(piece, h.PayloadLen-off)]
		if _, err := f.ReadAt(b, hl+off); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: verify %s: file shorter than its header says: %w", s, name, remote.ErrCorrupt)
			}
			return s.fsErr("verify", name, err)
		}
		if err := h.VerifyRange(off, b); err != nil {
			return fmt.Errorf("%s: verify %s: %w: %w", s, name, remote.ErrCorrupt, err)
		}
	}
	return nil
}

// QuarantineDir is where Quarantine moves corrupt objects, inside the
// store's directory; its dot keeps it out of List.
const QuarantineDir = ".quarantine"

// Quarantine moves object name aside into QuarantineDir (its slashes
// turned into '#'), so it is no longer served or listed and the next
// repair regenerates it; the bytes stay for a person to inspect.
func (s *Store) Quarantine(ctx context.Context, name string) error {
	path, err := s.path("quarantine", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	qdir := filepath.Join(s.dir, QuarantineDir)
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		return s.fsErr("quarantine", name, err)
	}
	base := strings.ReplaceAll(name, "/", "#") + "." + time.Now().UTC().Format(quarantineStamp)
	dst := filepath.Join(qdir, base)
	// Another Quarantine's prune must not remove this copy before it is
	// checked below: it may be a good one that goes back.
	s.qmu.Lock()
	if s.qbusy == nil {
		s.qbusy = make(map[string]bool)
	}
	s.qbusy[base] = true
	s.qmu.Unlock()
	defer s.pruneQuarantine(qdir)
	defer func() {
		s.qmu.Lock()
		delete(s.qbusy, base)
		s.qmu.Unlock()
	}()
	if err := os.Rename(path, dst); err != nil {
		return s.fsErr("quarantine", name, err)
	}
	s.objects.Add(-1)
	// A Put may have replaced the corrupt object with a good copy between
	// the caller's Verify and the rename: what was moved is checked again,
	// and a good copy goes back (unless yet another Put has the name now,
	// which is good too).
	if err := s.verifyFile(ctx, name, dst); err == nil {
		err = renameNoReplace(dst, path)
		switch {
		case err == nil:
			s.objects.Add(1)
		case errors.Is(err, syscall.EEXIST):
			os.Remove(dst)
		default:
			return s.fsErr("quarantine (putting a good copy back)", name, err)
		}
		return fmt.Errorf("%s: quarantine %s: %w", s, name, ErrReplaced)
	}
	return nil
}

// quarantineStamp ends a quarantined copy's name: the time it was moved,
// which sorts as text.
const quarantineStamp = "20060102T150405.000000000"

// pruneQuarantine removes the oldest quarantined objects (by the time in
// their names, which sorts as text) while the directory holds more than
// s.qmax bytes: a disk that keeps corrupting objects must not fill up
// with their copies. Copies a Quarantine is still checking (qbusy) stay.
func (s *Store) pruneQuarantine(qdir string) {
	if s.qmax < 0 {
		return
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	ents, err := os.ReadDir(qdir)
	if err != nil {
		return
	}
	type qfile struct {
		name, stamp string
		size        int64
	}
	var files []qfile
	var total int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		n := e.Name()
		if s.qbusy[n] {
			continue
		}
		stamp := n[max(0, len(n)-len(quarantineStamp)):]
		files = append(files, qfile{n, stamp, fi.Size()})
		total += fi.Size()
	}
	if total <= s.qmax {
		return
	}
	slices.SortFunc(files, func(a, b qfile) int {
		return cmp.Or(strings.Compare(a.stamp, b.stamp), strings.Compare(a.name, b.name))
	})
	removed, freed := 0, int64(0)
	for _, f := range files {
		if total <= s.qmax {
			break
		}
		if err := os.Remove(filepath.Join(qdir, f.name)); err != nil {
			continue
		}
		total -= f.size
		removed++
		freed += f.size
	}
	if removed > 0 {
		s.log.Warn("dirstore: quarantine full; removed the oldest corrupt copies kept for inspection",
			"dir", qdir, "removed", removed, "bytes", freed, "kept_bytes", total, "limit", s.qmax)
	}
}

// ErrReplaced: Quarantine found a good copy under the name (written since
// the object was found corrupt) and left it there.
var ErrReplaced = errors.New("a good copy replaced the corrupt object meanwhile; it was left in place")
