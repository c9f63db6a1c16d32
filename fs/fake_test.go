package fs

import (
	"context"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/meshdrive/meshdrive/journal"
)

// fakeJournal is an in-memory Journal: a fast stand-in that tests the fs
// layer alone (FUSE semantics, offsets, errno mapping) without sqlite, the
// cache or a grid. The real stack is tested in the other _test files.
type fakeJournal struct {
	mu     sync.Mutex
	next   journal.Ino
	cookie uint64
	inodes map[journal.Ino]*fakeInode
	fail   error // when set, every data call fails with it
}

type fakeEntry struct {
	ino    journal.Ino
	cookie uint64
}

type fakeInode struct {
	attr    journal.Attr
	data    []byte
	target  string
	entries map[string]fakeEntry
	xattrs  map[string][]byte
	opens   int
}

func newFakeJournal() *fakeJournal {
	f := &fakeJournal{next: journal.RootIno + 1, inodes: map[journal.Ino]*fakeInode{}}
	now := time.Now()
	f.inodes[journal.RootIno] = &fakeInode{
		attr:    journal.Attr{Ino: journal.RootIno, Mode: syscall.S_IFDIR | 0755, Nlink: 2, Atime: now, Mtime: now, Ctime: now},
		entries: map[string]fakeEntry{},
	}
	return f
}

func (f *fakeJournal) get(ino journal.Ino) (*fakeInode, error) {
	in, ok := f.inodes[ino]
	if !ok {
		return nil, journal.ErrNotFound
	}
	return in, nil
}

func (f *fakeJournal) dir(ino journal.Ino) (*fakeInode, error) {
	in, err := f.get(ino)
	if err != nil {
		return nil, err
	}
	if in.entries == nil {
		return nil, journal.ErrNotDir
	}
	return in, nil
}

func (in *fakeInode) out() journal.Attr {
	a := in.attr
	a.Size = uint64(len(in.data))
	if in.attr.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		a.Size = uint64(len(in.target))
	}
	if in.entries != nil {
		a.Size = 4096
	}
	a.Blocks = (uint64(len(in.data)) + 511) / 512
	return a
}

func (f *fakeJournal) Lookup(ctx context.Context, parent journal.Ino, name string) (journal.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dir(parent)
	if err != nil {
		return journal.Attr{}, err
	}
	e, ok := d.entries[name]
	if !ok {
		return journal.Attr{}, journal.ErrNotFound
	}
	return f.inodes[e.ino].out(), nil
}

func (f *fakeJournal) GetAttr(ctx context.Context, ino journal.Ino) (journal.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return journal.Attr{}, err
	}
	return in.out(), nil
}

// SetDirtyTimes: the fake has no unflushed state, so times always go
// through SetAttr.
func (f *fakeJournal) SetDirtyTimes(ino journal.Ino, mtime, ctime time.Time) (journal.Attr, bool) {
	return journal.Attr{}, false
}

func (f *fakeJournal) SetAttr(ctx context.Context, ino journal.Ino, s journal.SetAttr) (journal.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return journal.Attr{}, err
	}
	now := time.Now()
	if s.Mode != nil {
		in.attr.Mode = in.attr.Mode&syscall.S_IFMT | *s.Mode&07777
	}
	if s.Uid != nil {
		in.attr.Uid = *s.Uid
	}
	if s.Gid != nil {
		in.attr.Gid = *s.Gid
	}
	if s.Size != nil {
		if in.entries != nil {
			return journal.Attr{}, journal.ErrIsDir
		}
		if int(*s.Size) != len(in.data) {
			in.data = resize(in.data, int(*s.Size))
			in.attr.Mtime = now
		}
	}
	if s.Atime != nil {
		in.attr.Atime = *s.Atime
	}
	if s.Mtime != nil {
		in.attr.Mtime = *s.Mtime
	}
	in.attr.Ctime = now
	return in.out(), nil
}

func resize(b []byte, n int) []byte {
	if n <= len(b) {
		return b[:n:n]
	}
	return append(b, make([]byte, n-len(b))...)
}

func (f *fakeJournal) add(parent journal.Ino, name string, in *fakeInode) (journal.Attr, error) {
	d, err := f.dir(parent)
	if err != nil {
		return journal.Attr{}, err
	}
	if len(name) > 255 {
		return journal.Attr{}, journal.ErrNameTooLong
	}
	if _, ok := d.entries[name]; ok {
		return journal.Attr{}, journal.ErrExist
	}
	now := time.Now()
	in.attr.Ino = f.next
	f.next++
	in.attr.Atime, in.attr.Mtime, in.attr.Ctime = now, now, now
	if in.attr.Nlink == 0 {
		in.attr.Nlink = 1
	}
	f.inodes[in.attr.Ino] = in
	f.cookie++
	d.entries[name] = fakeEntry{in.attr.Ino, f.cookie}
	d.attr.Mtime, d.attr.Ctime = now, now
	if in.entries != nil {
		d.attr.Nlink++
	}
	return in.out(), nil
}

func (f *fakeJournal) Mknod(ctx context.Context, parent journal.Ino, name string, mode, rdev, uid, gid uint32) (journal.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.add(parent, name, &fakeInode{attr: journal.Attr{Mode: mode, Uid: uid, Gid: gid, Rdev: rdev}, xattrs: map[string][]byte{}})
}

func (f *fakeJournal) Mkdir(ctx context.Context, parent journal.Ino, name string, mode, uid, gid uint32) (journal.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.add(parent, name, &fakeInode{attr: journal.Attr{Mode: syscall.S_IFDIR | mode&07777, Uid: uid, Gid: gid, Nlink: 2},
		entries: map[string]fakeEntry{}, xattrs: map[string][]byte{}})
}

func (f *fakeJournal) Symlink(ctx context.Context, parent journal.Ino, name, target string, uid, gid uint32) (journal.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.add(parent, name, &fakeInode{attr: journal.Attr{Mode: syscall.S_IFLNK | 0777, Uid: uid, Gid: gid}, target: target, xattrs: map[string][]byte{}})
}

func (f *fakeJournal) Readlink(ctx context.Context, ino journal.Ino) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return "", err
	}
	if in.attr.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return "", journal.ErrInvalid
	}
	return in.target, nil
}

func (f *fakeJournal) Link(ctx context.Context, ino, newParent journal.Ino, newName string) (journal.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return journal.Attr{}, err
	}
	if in.entries != nil {
		return journal.Attr{}, journal.ErrIsDir
	}
	d, err := f.dir(newParent)
	if err != nil {
		return journal.Attr{}, err
	}
	if _, ok := d.entries[newName]; ok {
		return journal.Attr{}, journal.ErrExist
	}
	f.cookie++
	d.entries[newName] = fakeEntry{ino, f.cookie}
	now := time.Now()
	d.attr.Mtime, d.attr.Ctime = now, now
	in.attr.Nlink++
	in.attr.Ctime = now
	return in.out(), nil
}

// drop removes one link to in and frees it when nothing holds it.
func (f *fakeJournal) drop(in *fakeInode) {
	if in.entries != nil {
		in.attr.Nlink = 0
	} else if in.attr.Nlink > 0 {
		in.attr.Nlink--
	}
	in.attr.Ctime = time.Now()
	if in.attr.Nlink == 0 && in.opens == 0 {
		delete(f.inodes, in.attr.Ino)
	}
}

func (f *fakeJournal) remove(parent journal.Ino, name string, wantDir bool) error {
	d, err := f.dir(parent)
	if err != nil {
		return err
	}
	e, ok := d.entries[name]
	if !ok {
		return journal.ErrNotFound
	}
	in := f.inodes[e.ino]
	isDir := in.entries != nil
	switch {
	case wantDir && !isDir:
		return journal.ErrNotDir
	case !wantDir && isDir:
		return journal.ErrIsDir
	case isDir && len(in.entries) > 0:
		return journal.ErrNotEmpty
	}
	delete(d.entries, name)
	now := time.Now()
	d.attr.Mtime, d.attr.Ctime = now, now
	if isDir {
		d.attr.Nlink--
	}
	f.drop(in)
	return nil
}

func (f *fakeJournal) Unlink(ctx context.Context, parent journal.Ino, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remove(parent, name, false)
}

func (f *fakeJournal) Rmdir(ctx context.Context, parent journal.Ino, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remove(parent, name, true)
}

func (f *fakeJournal) Rename(ctx context.Context, op journal.Ino, on string, np journal.Ino, nn string, flags uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	od, err := f.dir(op)
	if err != nil {
		return err
	}
	nd, err := f.dir(np)
	if err != nil {
		return err
	}
	e, ok := od.entries[on]
	if !ok {
		return journal.ErrNotFound
	}
	src := f.inodes[e.ino]
	t, exists := nd.entries[nn]
	now := time.Now()
	switch {
	case flags&journal.RenameExchange != 0:
		if !exists {
			return journal.ErrNotFound
		}
		od.entries[on] = fakeEntry{t.ino, e.cookie}
		nd.entries[nn] = fakeEntry{e.ino, t.cookie}
	case exists && flags&journal.RenameNoReplace != 0:
		return journal.ErrExist
	default:
		if exists {
			if t.ino == e.ino {
				return nil
			}
			dst := f.inodes[t.ino]
			if dst.entries != nil && src.entries == nil {
				return journal.ErrIsDir
			}
			if dst.entries == nil && src.entries != nil {
				return journal.ErrNotDir
			}
			if dst.entries != nil && len(dst.entries) > 0 {
				return journal.ErrNotEmpty
			}
			if dst.entries != nil {
				nd.attr.Nlink--
			}
			f.drop(dst)
		}
		delete(od.entries, on)
		f.cookie++
		nd.entries[nn] = fakeEntry{e.ino, f.cookie}
		if src.entries != nil {
			od.attr.Nlink--
			nd.attr.Nlink++
		}
	}
	src.attr.Ctime = now
	od.attr.Mtime, od.attr.Ctime = now, now
	nd.attr.Mtime, nd.attr.Ctime = now, now
	return nil
}

func (f *fakeJournal) ReadDir(ctx context.Context, dir journal.Ino, off uint64, max int) ([]journal.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dir(dir)
	if err != nil {
		return nil, err
	}
	var out []journal.DirEntry
	for name, e := range d.entries {
		if e.cookie > off {
			out = append(out, journal.DirEntry{Name: name, Ino: e.ino, Mode: f.inodes[e.ino].attr.Mode, Off: e.cookie})
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Off < out[k].Off })
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}

func (f *fakeJournal) GetXattr(ctx context.Context, ino journal.Ino, name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return nil, err
	}
	v, ok := in.xattrs[name]
	if !ok {
		return nil, journal.ErrNoXattr
	}
	return append([]byte(nil), v...), nil
}

func (f *fakeJournal) SetXattr(ctx context.Context, ino journal.Ino, name string, value []byte, flags uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return err
	}
	_, ok := in.xattrs[name]
	if ok && flags&journal.XattrCreate != 0 {
		return journal.ErrExist
	}
	if !ok && flags&journal.XattrReplace != 0 {
		return journal.ErrNoXattr
	}
	if in.xattrs == nil {
		in.xattrs = map[string][]byte{}
	}
	in.xattrs[name] = append([]byte(nil), value...)
	in.attr.Ctime = time.Now()
	return nil
}

func (f *fakeJournal) ListXattr(ctx context.Context, ino journal.Ino) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return nil, err
	}
	var names []string
	for k := range in.xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, nil
}

func (f *fakeJournal) RemoveXattr(ctx context.Context, ino journal.Ino, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return err
	}
	if _, ok := in.xattrs[name]; !ok {
		return journal.ErrNoXattr
	}
	delete(in.xattrs, name)
	return nil
}

func (f *fakeJournal) StatFS(ctx context.Context) (journal.StatFS, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return journal.StatFS{TotalBytes: 1 << 40, FreeBytes: 1 << 39, Files: uint64(len(f.inodes))}, nil
}

func (f *fakeJournal) OpenFile(ino journal.Ino) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in, ok := f.inodes[ino]; ok {
		in.opens++
	}
}

func (f *fakeJournal) OpenExisting(ctx context.Context, ino journal.Ino) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.inodes[ino]
	if !ok {
		return journal.ErrNotFound
	}
	in.opens++
	return nil
}

func (f *fakeJournal) ReleaseFile(ino journal.Ino) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in, ok := f.inodes[ino]; ok {
		in.opens--
		if in.opens == 0 && in.attr.Nlink == 0 {
			delete(f.inodes, ino)
		}
	}
}

func (f *fakeJournal) ReadShared(ctx context.Context, ino journal.Ino, p []byte, off int64) ([]byte, func(), error) {
	b, err := f.read(ctx, ino, p, off)
	return b, nil, err
}

// Seek reports the whole file as data, as POSIX allows.
func (f *fakeJournal) Seek(ctx context.Context, ino journal.Ino, off int64, hole bool) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return 0, err
	}
	size := int64(len(in.data))
	switch {
	case off < 0 || off >= size:
		return 0, journal.ErrNoData
	case hole:
		return size, nil
	}
	return off, nil
}

func (f *fakeJournal) read(ctx context.Context, ino journal.Ino, p []byte, off int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	in, err := f.get(ino)
	if err != nil {
		return nil, err
	}
	if off >= int64(len(in.data)) {
		return p[:0], nil
	}
	return p[:copy(p, in.data[off:])], nil
}

func (f *fakeJournal) WriteAt(ctx context.Context, ino journal.Ino, p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	in, err := f.get(ino)
	if err != nil {
		return 0, err
	}
	if end := int(off) + len(p); end > len(in.data) {
		in.data = resize(in.data, end)
	}
	copy(in.data[off:], p)
	now := time.Now()
	in.attr.Mtime, in.attr.Ctime = now, now
	return len(p), nil
}

func (f *fakeJournal) Flush(ctx context.Context, ino journal.Ino) error { return nil }
func (f *fakeJournal) Fsync(ctx context.Context, ino journal.Ino) error { return nil }

func (f *fakeJournal) Status(ctx context.Context, ino journal.Ino) (journal.FileStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.get(ino)
	if err != nil {
		return journal.FileStatus{}, err
	}
	return journal.FileStatus{State: journal.StateLocal, PendingBytes: int64(len(in.data))}, nil
}
