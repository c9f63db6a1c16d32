package fs

import (
	"context"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/meshdrive/meshdrive/journal"
)

// dirPage is how many entries one journal.ReadDir call returns.
const dirPage = 256

// Directory offsets (telldir cookies) as the kernel and applications see
// them: 1 and 2 follow "." and "..", and an entry with journal cookie c
// has offset c+dirOffBase. The journal's cookies stay valid while entries
// come and go, so a seekdir to any offset handed out resumes exactly after
// that entry, and a listing taken while the directory changes returns
// every surviving entry once.
const (
	offDot     = 1
	offDotDot  = 2
	dirOffBase = 2
)

// dirHandle is one opendir(3). go-fuse serialises calls on one handle.
type dirHandle struct {
	n *node

	mu     sync.Mutex // guards the fields below
	next   uint64     // offset of the next entry to return
	buf    []journal.DirEntry
	eof    bool
	cookie uint64 // journal cookie to continue after buf
}

var (
	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fusefs.FileFsyncdirer   = (*dirHandle)(nil)
	_ fusefs.FileReleasedirer = (*dirHandle)(nil)
)

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	// No FOPEN_CACHE_DIR: listings change under open handles.
	return &dirHandle{n: n}, 0, 0
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next = off
	d.buf = nil
	d.eof = false
	if off > dirOffBase {
		d.cookie = off - dirOffBase
	} else {
		d.cookie = 0
	}
	return 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.next {
	case 0:
		d.next = offDot
		return &fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.n.StableAttr().Ino, Off: offDot}, 0
	case offDot:
		d.next = offDotDot
		ino := d.n.StableAttr().Ino
		if _, p := d.n.Parent(); p != nil {
			ino = p.StableAttr().Ino
		}
		return &fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: ino, Off: offDotDot}, 0
	}
	if len(d.buf) == 0 {
		if d.eof {
			return nil, 0
		}
		ents, err := d.n.fsys.j.ReadDir(settled(ctx), d.n.ino(), d.cookie, dirPage)
		if err != nil {
			return nil, d.n.errno("readdir", err)
		}
		if len(ents) == 0 {
			d.eof = true
			return nil, 0
		}
		d.buf = ents
		d.cookie = ents[len(ents)-1].Off
	}
	e := d.buf[0]
	d.buf = d.buf[1:]
	d.next = e.Off + dirOffBase
	return &fuse.DirEntry{Name: e.Name, Mode: e.Mode & syscall.S_IFMT, Ino: uint64(e.Ino) + d.n.fsys.inoOff, Off: d.next}, 0
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.n.Fsync(ctx, nil, flags)
}

func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {}
