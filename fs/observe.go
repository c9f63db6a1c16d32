package fs

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// OpObserver is told of every FUSE request the drive answers: its kind
// ("lookup", "read", ...), how long it took and whether it failed. It is
// called from many goroutines at once and must be quick (a metrics
// histogram).
type OpObserver func(op string, d time.Duration, failed bool)

// observedFS wraps the node file system's raw one and times the requests
// that carry the drive's work; the rest pass through untimed.
type observedFS struct {
	fuse.RawFileSystem
	obs OpObserver
}

func (o *observedFS) done(op string, t0 time.Time, st fuse.Status) fuse.Status {
	o.obs(op, time.Since(t0), !st.Ok() && st != fuse.ENOENT && st != fuse.ENOATTR)
	return st
}

func (o *observedFS) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("lookup", time.Now(), o.RawFileSystem.Lookup(c, h, name, out))
}

func (o *observedFS) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	return o.done("getattr", time.Now(), o.RawFileSystem.GetAttr(c, in, out))
}

func (o *observedFS) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return o.done("setattr", time.Now(), o.RawFileSystem.SetAttr(c, in, out))
}

func (o *observedFS) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("mkdir", time.Now(), o.RawFileSystem.Mkdir(c, in, name, out))
}

func (o *observedFS) Unlink(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return o.done("unlink", time.Now(), o.RawFileSystem.Unlink(c, h, name))
}

func (o *observedFS) Rmdir(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return o.done("rmdir", time.Now(), o.RawFileSystem.Rmdir(c, h, name))
}

func (o *observedFS) Rename(c <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return o.done("rename", time.Now(), o.RawFileSystem.Rename(c, in, oldName, newName))
}

func (o *observedFS) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return o.done("create", time.Now(), o.RawFileSystem.Create(c, in, name, out))
}

func (o *observedFS) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return o.done("open", time.Now(), o.RawFileSystem.Open(c, in, out))
}

func (o *observedFS) Read(c <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	t0 := time.Now()
	r, st := o.RawFileSystem.Read(c, in, buf)
	return r, o.done("read", t0, st)
}

func (o *observedFS) Write(c <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	t0 := time.Now()
	n, st := o.RawFileSystem.Write(c, in, data)
	return n, o.done("write", t0, st)
}

func (o *observedFS) Writev(c <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	t0 := time.Now()
	n, st := o.RawFileSystem.Writev(c, in, data)
	return n, o.done("write", t0, st)
}

func (o *observedFS) Flush(c <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return o.done("flush", time.Now(), o.RawFileSystem.Flush(c, in))
}

func (o *observedFS) Fsync(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return o.done("fsync", time.Now(), o.RawFileSystem.Fsync(c, in))
}

func (o *observedFS) Release(c <-chan struct{}, in *fuse.ReleaseIn) {
	t0 := time.Now()
	o.RawFileSystem.Release(c, in)
	o.done("release", t0, fuse.OK)
}

func (o *observedFS) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return o.done("opendir", time.Now(), o.RawFileSystem.OpenDir(c, in, out))
}

func (o *observedFS) ReadDir(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return o.done("readdir", time.Now(), o.RawFileSystem.ReadDir(c, in, out))
}

func (o *observedFS) ReadDirPlus(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return o.done("readdirplus", time.Now(), o.RawFileSystem.ReadDirPlus(c, in, out))
}

func (o *observedFS) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	return o.done("statfs", time.Now(), o.RawFileSystem.StatFs(c, h, out))
}

func (o *observedFS) GetXAttr(c <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	t0 := time.Now()
	n, st := o.RawFileSystem.GetXAttr(c, h, attr, dest)
	return n, o.done("getxattr", t0, st)
}

func (o *observedFS) SetXAttr(c <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	return o.done("setxattr", time.Now(), o.RawFileSystem.SetXAttr(c, in, attr, data))
}
